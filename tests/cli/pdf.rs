//! The letter as a PDF on the letterhead, and attachments: checked with the tools a clerk or a
//! case system would use. poppler's `pdftotext`, `pdfinfo` and `pdftoppm`, `qpdf --check`, and
//! Python's own e-mail parser for what arrives at the server. Without the tools the tests fail
//! with an install hint (`bash .ci/install-test-servers` installs them).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::harness::{Campaign, Mail};
use crate::servers::SmtpSink;

/// A tool on PATH, or a failed test that says how to install it.
fn tool(name: &str, package: &str) -> PathBuf {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed (Debian package {package}); run `bash .ci/install-test-servers` as root")
        })
}

/// Runs a tool; fails the test with its output unless it succeeds. Returns standard output.
fn run_tool(name: &str, package: &str, args: &[&str]) -> String {
    let out = Command::new(tool(name, package))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {name}: {e}"));
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The shipped campaign (three recipients) with the PDF letter switched on.
fn with_pdf(c: &Campaign) {
    c.edit("config.toml", "pdf = false", "pdf = true");
}

/// Text without any whitespace, so lines broken differently still compare.
fn squeezed(s: &str) -> String {
    s.split_whitespace().collect()
}

#[test]
fn each_pdf_letter_is_a4_pdfa_and_carries_the_whole_letter_the_recipient_and_the_stamps() {
    let c = Campaign::small();
    with_pdf(&c);
    c.run(&["preview"])
        .expect(0)
        .stdout_has("and the letter as a PDF");
    let pdfs: Vec<String> = c
        .files("preview")
        .into_iter()
        .filter(|f| f.ends_with(".pdf"))
        .collect();
    assert_eq!(pdfs.len(), 3, "{:?}", c.files("preview"));
    let index = c.read("preview/index.html");
    for pdf in &pdfs {
        assert!(index.contains(&format!("href=\"{pdf}\"")), "{index}");
    }

    for (pdf, akt, name) in [
        (&pdfs[0], "1286555", "Københavns Kommune"),
        (&pdfs[1], "1286556", "Ærø Kommune"),
        (&pdfs[2], "1286557", "Fredericia Kommune"),
    ] {
        let path = c.path(&format!("preview/{pdf}"));
        let p = path.to_str().unwrap();
        let info = run_tool("pdfinfo", "poppler-utils", &[p]);
        let field = |name: &str| -> String {
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("{name}:")))
                .unwrap_or_else(|| panic!("pdfinfo shows no {name}:\n{info}"))
                .trim()
                .to_string()
        };
        assert_eq!(field("Page size"), "595.28 x 841.89 pts (A4)");
        assert_eq!(field("Pages"), "2");
        assert_eq!(field("Tagged"), "yes");
        assert_eq!(field("Author"), "Udlændinge- og Integrationsministeriet");
        assert_eq!(
            field("Title"),
            format!(
                "Øget opmærksomhed på æresrelaterede konflikter og negativ social kontrol – {name}"
            )
        );
        assert_eq!(
            field("Keywords"),
            format!("Sags nr. 2020-12345, Akt-id {akt}")
        );
        assert_eq!(field("CreationDate"), "Mon Jun 29 00:00:00 2020 UTC");
        let meta = run_tool("pdfinfo", "poppler-utils", &["-meta", p]);
        assert!(meta.contains("<pdfaid:part>2</pdfaid:part>"), "{meta}");
        assert!(
            meta.contains("<pdfaid:conformance>B</pdfaid:conformance>"),
            "{meta}"
        );
        let fonts = run_tool("pdffonts", "poppler-utils", &[p]);
        assert!(fonts.contains("LiberationSans"), "{fonts}");
        for line in fonts.lines().skip(2) {
            // name, type, encoding, emb, sub, uni, object, id: every font embedded.
            let cols: Vec<&str> = line.split_whitespace().collect();
            assert_eq!(cols[cols.len() - 5], "yes", "not embedded: {line}");
        }
        let check = run_tool("qpdf", "qpdf", &["--check", p]);
        assert!(
            check.contains("No syntax or stream encoding errors found"),
            "{check}"
        );

        // The text as a case system extracts it: the letter, the recipient and the stamps.
        let text = run_tool("pdftotext", "poppler-utils", &["-layout", p, "-"]);
        let eml = c.path(&format!("preview/{}", pdf.replace(".pdf", ".eml")));
        let letter_text = Mail::from_file(&eml).text();
        let body: String = text
            .lines()
            .filter(|l| !l.contains("Side 1 af 2") && !l.contains("Side 2 af 2"))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(body.contains("• Håndbog om æresrelaterede sager"), "{text}");
        let body = squeezed(&body).replace('•', "");
        for paragraph in letter_text.split("\n\n") {
            // The text part marks list items with "- " where the PDF has bullets.
            let words: String = paragraph
                .lines()
                .map(|l| l.trim_start().strip_prefix("- ").unwrap_or(l))
                .collect::<Vec<_>>()
                .join(" ");
            assert!(
                body.contains(&squeezed(&words)),
                "{pdf} lacks {paragraph:?}\n--- pdftotext\n{text}"
            );
        }
        assert!(letter_text.contains("Jeg skriver til jer"), "{letter_text}");
        assert!(text.contains(name), "{text}");
        assert!(text.contains("29. juni 2020"), "{text}");
        assert!(text.contains(&format!("Akt-id {akt}")), "{text}");
        assert!(text.contains("Sags nr. 2020-12345"), "{text}");
        assert!(
            text.contains("Side 1 af 2") && text.contains("Side 2 af 2"),
            "{text}"
        );
        assert!(text.contains("CVR-nr. 36977191"), "{text}");
    }

    // Twice the same: a resend, the archive and the preview are the same bytes.
    let first: Vec<Vec<u8>> = pdfs
        .iter()
        .map(|f| std::fs::read(c.path(&format!("preview/{f}"))).unwrap())
        .collect();
    c.run(&["preview"]).expect(0);
    for (f, bytes) in pdfs.iter().zip(&first) {
        assert!(
            std::fs::read(c.path(&format!("preview/{f}"))).unwrap() == *bytes,
            "{f} differs between two runs"
        );
    }

    // One page as a picture, for a person to look at.
    let pages = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pdf-letter");
    std::fs::create_dir_all(&pages).unwrap();
    let stem = pages.join("aeroe-side");
    run_tool(
        "pdftoppm",
        "poppler-utils",
        &[
            "-png",
            "-r",
            "80",
            c.path(&format!("preview/{}", pdfs[1])).to_str().unwrap(),
            stem.to_str().unwrap(),
        ],
    );
    let png = pages.join("aeroe-side-1.png");
    let bytes = std::fs::read(&png).unwrap_or_else(|e| panic!("{}: {e}", png.display()));
    assert!(bytes.starts_with(b"\x89PNG"), "{}", png.display());
    eprintln!("page 1 of Ærø Kommune's letter: {}", png.display());
}

/// What Python's e-mail parser makes of a message: the plain text and each attachment's file
/// name, content type and SHA-256 of the decoded bytes.
fn python_reads(raw: &[u8], dir: &Path) -> serde_json::Value {
    let file = dir.join("message.eml");
    std::fs::write(&file, raw).unwrap();
    let script = r#"
import email, hashlib, json, sys
from email import policy
msg = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=policy.default)
files = []
for part in msg.iter_attachments():
    data = part.get_payload(decode=True)
    files.append({"name": part.get_filename(), "type": part.get_content_type(),
                  "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
print(json.dumps({"text": msg.get_body(("plain",)).get_content(), "files": files}))
"#;
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg("-c")
        .arg(script)
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python} (install python3): {e}"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn the_pdf_and_the_attachments_arrive_intact_with_their_danish_file_names() {
    let sink = SmtpSink::start(&[]);
    let c = Campaign::small();
    with_pdf(&c);
    let guide: Vec<u8> = (0..50_000u32).map(|i| (i * 7 % 251) as u8).collect();
    c.write("bilag/Vejledning om æresrelaterede konflikter.pdf", &guide);
    c.write(
        "bilag/kort over Ærø.png",
        b"\x89PNG\r\n\x1a\n not really a picture",
    );
    c.write("bilag/tal for 607.csv", "år;antal\n2020;12\n");
    c.write(
        "recipients/kommuner.csv",
        "kommunekode,navn,region,email,adresse,postnr_by,bilag\n\
101,Københavns Kommune,Region Hovedstaden,post@kk.dk,Rådhuspladsen 1,1550 København V,\n\
492,Ærø Kommune,Region Syddanmark,post@aeroe.dk,Statene 2,5970 Ærøskøbing,bilag/kort over Ærø.png\n\
607,Fredericia Kommune,Region Syddanmark,kommunen@fredericia.dk,,,bilag/tal for 607.csv; bilag/kort over Ærø.png\n",
    );
    c.write(
        "templates/følgebrev.md",
        "Til {{ navn }}\n\nVedhæftet er brevet om æresrelaterede konflikter (Akt-id {{ stamp.akt_id }}).\n",
    );
    let config = c.read("config.toml").replacen(
        "\npdf = true\n",
        "\npdf = true\ncover = \"templates/følgebrev.md\"\nattachments = [\"bilag/Vejledning om æresrelaterede konflikter.pdf\"]\nattachments_column = \"bilag\"\n",
        1,
    );
    let cut = config.find("# [transport.smtp]").unwrap();
    c.write(
        "config.toml",
        format!(
            "{}[transport.smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nretries = 0\nconnections = 1\n",
            config[..cut].replace("kind = \"outbox\"", "kind = \"smtp\""),
            sink.port()
        ),
    );
    c.run(&["send", "--yes"]).expect(0);

    let msgs = sink.messages();
    assert_eq!(msgs.len(), 3);
    let by_rcpt: BTreeMap<&str, &[u8]> = msgs
        .iter()
        .map(|m| (m.rcpt_to[0].as_str(), m.raw.as_slice()))
        .collect();
    let tmp = tempfile::tempdir().unwrap();
    let kort = sha256(&std::fs::read(c.path("bilag/kort over Ærø.png")).unwrap());
    for (address, akt, name, own) in [
        ("post@kk.dk", "1286555", "Københavns Kommune", vec![]),
        (
            "post@aeroe.dk",
            "1286556",
            "Ærø Kommune",
            vec![("kort over Ærø.png", "image/png", kort.clone())],
        ),
        (
            "kommunen@fredericia.dk",
            "1286557",
            "Fredericia Kommune",
            vec![
                (
                    "tal for 607.csv",
                    "text/csv",
                    sha256(b"\xc3\xa5r;antal\n2020;12\n"),
                ),
                ("kort over Ærø.png", "image/png", kort.clone()),
            ],
        ),
    ] {
        let got = python_reads(by_rcpt[address], tmp.path());
        let text = got["text"].as_str().unwrap();
        assert!(
            text.contains(&format!("Til {name}")) && text.contains("Vedhæftet er brevet"),
            "the cover text is the e-mail's body: {text}"
        );
        assert!(!text.contains("Jeg skriver til jer"), "{text}");
        let files = got["files"].as_array().unwrap();
        assert_eq!(files.len(), 2 + own.len(), "{files:?}");
        assert_eq!(files[0]["name"], format!("{akt} {name}.pdf"));
        assert_eq!(files[0]["type"], "application/pdf");
        assert_eq!(
            files[1]["name"],
            "Vejledning om æresrelaterede konflikter.pdf"
        );
        assert_eq!(files[1]["sha256"], sha256(&guide));
        for (file, (n, t, h)) in files[2..].iter().zip(&own) {
            assert_eq!(file["name"], *n);
            assert_eq!(file["type"], *t);
            assert_eq!(file["sha256"], *h);
        }
        // The PDF that arrived is the letter, for this recipient, with the address block.
        let pdf_path = tmp.path().join("arrived.pdf");
        let parsed = mail_parser::MessageParser::default()
            .parse(by_rcpt[address])
            .unwrap();
        let pdf = parsed.attachment(0).unwrap().contents().to_vec();
        assert_eq!(sha256(&pdf), files[0]["sha256"].as_str().unwrap());
        std::fs::write(&pdf_path, &pdf).unwrap();
        let pdf_text = run_tool(
            "pdftotext",
            "poppler-utils",
            &[pdf_path.to_str().unwrap(), "-"],
        );
        assert!(pdf_text.contains("Jeg skriver til jer"), "{pdf_text}");
        assert!(pdf_text.contains(name), "{pdf_text}");
        if address == "post@aeroe.dk" {
            assert!(
                pdf_text.contains("Statene 2") && pdf_text.contains("5970 Ærøskøbing"),
                "{pdf_text}"
            );
        }
    }

    // The archive keeps the exact message, PDF included; the report names each PDF's SHA-256.
    c.run(&["report"]).expect(0);
    let csv = c.read("report/leveringsrapport-uim-2020-aeresrelaterede-konflikter.csv");
    assert!(csv.contains(";pdf_file;pdf_sha256"), "{csv}");
    for m in &msgs {
        let parsed = mail_parser::MessageParser::default().parse(&m.raw).unwrap();
        let pdf = parsed.attachment(0).unwrap().contents();
        assert!(csv.contains(&sha256(pdf)), "{csv}");
    }
    let archived = c.files("archive");
    assert_eq!(archived.len(), 3, "{archived:?}");
    for f in &archived {
        let mail = Mail::from_file(&c.path(&format!("archive/{f}")));
        let parsed = mail_parser::MessageParser::default()
            .parse(&mail.raw)
            .unwrap();
        let pdf = parsed.attachment(0).unwrap().contents();
        assert!(csv.contains(&sha256(pdf)), "{f}: {csv}");
    }
}

#[test]
fn a_missing_attachment_or_a_letter_over_the_size_limit_stops_everything_before_the_first_letter() {
    let c = Campaign::small();
    let csv = crate::harness::SMALL_CSV
        .replace("email\n", "email,bilag\n")
        .replace("post@kk.dk\n", "post@kk.dk,\n")
        .replace("post@aeroe.dk\n", "post@aeroe.dk,bilag/findes ikke.pdf\n")
        .replace("fredericia.dk\n", "fredericia.dk,\n");
    c.write("recipients/kommuner.csv", csv);
    c.edit(
        "config.toml",
        "pdf = false",
        "pdf = false\nattachments = [\"bilag/mangler.pdf\"]\nattachments_column = \"bilag\"",
    );
    let run = c.run(&["send"]).expect(2);
    run.stderr_has("config.toml")
        .stderr_has("cannot read the attachment bilag/mangler.pdf")
        .stderr_has("recipients/kommuner.csv, line 3, column \"bilag\"")
        .stderr_has("cannot read the attachment bilag/findes ikke.pdf");
    assert!(c.files("outbox").is_empty());

    // All files there, but one recipient's letter too large for the limit.
    c.write("bilag/mangler.pdf", vec![b'x'; 100_000]);
    c.write("bilag/findes ikke.pdf", vec![b'y'; 600_000]);
    c.edit(
        "config.toml",
        "pdf = false",
        "pdf = false\nmax_size_mb = 0.5",
    );
    let run = c.run(&["send"]).expect(2);
    run.stderr_has("the letter to Ærø Kommune would be")
        .stderr_has("more than the limit of 0.5 MB");
    assert!(
        !run.all().contains("Københavns Kommune would be"),
        "{}",
        run.all()
    );
    assert!(c.files("outbox").is_empty());
}

#[test]
fn an_attachment_changed_after_the_first_send_is_refused_unless_accepted() {
    let c = Campaign::small();
    c.write("bilag/vejledning.pdf", "første udgave");
    c.edit(
        "config.toml",
        "pdf = false",
        "pdf = false\nattachments = [\"bilag/vejledning.pdf\"]",
    );
    c.run(&["send", "--limit", "1"]).expect(0);
    c.write("bilag/vejledning.pdf", "anden udgave");
    let run = c.run(&["send"]).expect(2);
    run.stderr_has("the file bilag/vejledning.pdf has changed");
    assert_eq!(c.files("outbox").len(), 1);
    c.run(&["send", "--accept-changes"]).expect(0);
    assert_eq!(c.files("outbox").len(), 3);
}
