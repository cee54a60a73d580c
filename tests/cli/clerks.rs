//! What a clerk sees and keeps: plain progress lines, `init`, the case report, the archive, the
//! preview in a real browser, `--open`, completions, the man page and JSON summaries.
//!
//! The browser test runs Debian's `chromium` headless; without it, it fails with an install hint.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Campaign, Mail};
use crate::servers::SmtpSink;

/// Five municipalities on real-looking addresses (only ever sent to the loopback sink).
const FIVE_CSV: &str = "kommunekode,navn,region,email\n\
101,Københavns Kommune,Region Hovedstaden,post@kk.dk\n\
147,Frederiksberg Kommune,Region Hovedstaden,post@frederiksberg.dk\n\
151,Ballerup Kommune,Region Hovedstaden,post@balk.dk\n\
492,Ærø Kommune,Region Syddanmark,post@aeroe.dk\n\
607,Fredericia Kommune,Region Syddanmark,kommunen@fredericia.dk\n";

/// Points the campaign at smtp-sink on 127.0.0.1 without retries.
fn use_sink(c: &Campaign, sink: &SmtpSink) {
    let config = c
        .read("config.toml")
        .replace("kind = \"outbox\"", "kind = \"smtp\"");
    let cut = config
        .find("# [transport.smtp]")
        .or_else(|| config.find("[transport.smtp]"))
        .unwrap_or(config.len());
    c.write(
        "config.toml",
        format!(
            "{}[transport.smtp]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"none\"\nretries = 0\nretry_delay_secs = 0\nconnect_timeout_secs = 5\ncommand_timeout_secs = 5\nmax_connection_failures = 1\n",
            &config[..cut],
            sink.port()
        ),
    );
}

fn no_terminal_codes(text: &str) {
    assert!(!text.contains('\u{1b}'), "an escape sequence in {text:?}");
    assert!(!text.contains('\r'), "a carriage return in {text:?}");
}

#[test]
fn without_a_terminal_send_prints_one_plain_line_per_letter() {
    let c = Campaign::small();
    // A bidi override in a name is refused (it would reach the To header), and the refusal
    // never passes the character itself to the terminal.
    c.edit(
        "recipients/kommuner.csv",
        "Ærø Kommune",
        "Ærø\u{202E} Kommune",
    );
    let run = c.run(&["send"]).expect(2);
    run.stderr_has(
        "line 3, column \"navn\": the value contains a bidirectional control character (U+202E)",
    );
    assert!(!run.all().contains('\u{202E}'));
    c.edit(
        "recipients/kommuner.csv",
        "Ærø\u{202E} Kommune",
        "Ærø Kommune",
    );
    let run = c.run(&["send"]).expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(
        lines[0].starts_with("About to send 3 letters"),
        "{}",
        run.stdout
    );
    assert_eq!(
        lines[1],
        "[1/3] 101 Københavns Kommune <post@kk.dk>: delivered (written to ./outbox/1286555_101_Koebenhavns-Kommune.eml)"
    );
    assert_eq!(
        lines[2],
        "[2/3] 492 Ærø Kommune <post@aeroe.dk>: delivered (written to ./outbox/1286556_492_Aeroe-Kommune.eml)"
    );
    assert!(
        lines[3].starts_with("[3/3] 607 Fredericia Kommune <kommunen@fredericia.dk>: delivered (")
    );
    assert!(
        lines[4].starts_with("Delivered 3 letters to outbox"),
        "{}",
        run.stdout
    );
    no_terminal_codes(&run.all());

    // --quiet leaves only the summary; delivered letters are not listed.
    let c = Campaign::small();
    let run = c.run(&["--quiet", "send"]).expect(0);
    assert!(!run.stdout.contains("[1/3]"), "{}", run.stdout);
    run.stdout_has("Delivered 3 letters");
}

#[test]
fn send_with_format_json_prints_only_json_on_stdout() {
    let c = Campaign::small();
    let run = c.run(&["send", "--format", "json"]).expect(0);
    let json: serde_json::Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", run.stdout));
    assert_eq!(json["delivered"], 3);
    assert_eq!(json["sent"], 3);
    assert_eq!(json["ledger_counts"]["delivered"], 3);
    run.stderr_has("About to send 3 letters");

    let again = c.run(&["send", "--format", "json"]).expect(0);
    let json: serde_json::Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(json["sent"], 0);
    assert_eq!(json["ledger_counts"]["delivered"], 3);
}

#[test]
fn init_makes_a_campaign_that_checks_and_never_overwrites() {
    let c = Campaign::empty();
    let run = c.run(&["init", "kampagne"]).expect(0);
    run.stdout_has("kampagne/config.toml");
    let check = c
        .run(&["--config", "kampagne/config.toml", "check"])
        .expect(0);
    check.stdout_has("All 3 letters are ready");
    assert!(
        c.read("kampagne/config.toml").contains("# "),
        "the config is commented"
    );
    assert!(c
        .read("kampagne/recipients/kommuner.csv")
        .lines()
        .skip(1)
        .all(|l| l.contains(".invalid,pladsholder")));

    // A second init refuses, names the files and changes nothing.
    c.write("kampagne/config.toml", "# mine\n");
    let again = c.run(&["init", "kampagne"]).expect(2);
    again.stderr_has("kampagne/config.toml");
    again.stderr_has("nothing was written");
    assert_eq!(c.read("kampagne/config.toml"), "# mine\n");

    // One existing file is enough to write nothing at all.
    let d = Campaign::empty();
    d.write("recipients/kommuner.csv", "kommunekode\n");
    let run = d.run(&["init"]).expect(2);
    run.stderr_has("recipients/kommuner.csv");
    assert!(!d.path("config.toml").exists());
    assert!(!d.path("templates").exists());
    assert_eq!(d.read("recipients/kommuner.csv"), "kommunekode\n");
}

/// The recipients' states in the report CSV, by kommunekode.
fn report_csv(c: &Campaign) -> Vec<BTreeMap<String, String>> {
    let text = c.read("report/leveringsrapport-uim-2020-aeresrelaterede-konflikter.csv");
    let text = text
        .strip_prefix('\u{feff}')
        .expect("a byte-order mark for Excel");
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(b';')
        .from_reader(text.as_bytes());
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            headers
                .iter()
                .zip(r.unwrap().iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

#[test]
fn the_report_shows_every_state_for_the_case_file() {
    let c = Campaign::shipped();
    c.write("recipients/kommuner.csv", FIVE_CSV);
    let healthy = SmtpSink::start(&[]);
    use_sink(&c, &healthy);
    c.run(&["send", "--yes", "--only", "101"]).expect(0);

    let soft = SmtpSink::start(&["-r", "RCPT"]);
    use_sink(&c, &soft);
    c.run(&["send", "--yes", "--only", "147"]).expect(1);

    let hard = SmtpSink::start(&["-f", "RCPT", "-B", "550 5.1.1 No such user"]);
    use_sink(&c, &hard);
    let run = c.run(&["send", "--yes", "--only", "151"]).expect(1);
    run.stdout_has("1 letter was not delivered (0 for now, 1 refused for good): the server said the mailbox does not exist (the server's reply: \"550 5.1.1 No such user\"). See `rundbrev status --state failed`");

    let silent = SmtpSink::start(&["-q", "."]);
    use_sink(&c, &silent);
    c.run(&["send", "--yes", "--only", "492"]); // stops: the connection broke
    let states = c.states();
    assert_eq!(states["492"], "unknown", "{states:?}");
    assert_eq!(states["607"], "pending", "{states:?}");

    let run = c.run(&["report"]).expect(0);
    assert!(
        run.stdout
            .contains("report/leveringsrapport-uim-2020-aeresrelaterede-konflikter.csv"),
        "{}",
        run.stdout
    );
    let rows = report_csv(&c);
    let state: BTreeMap<&str, &str> = rows
        .iter()
        .map(|r| (r["kommunekode"].as_str(), r["status"].as_str()))
        .collect();
    assert_eq!(
        state,
        BTreeMap::from([
            ("101", "leveret"),
            ("147", "midlertidig fejl"),
            ("151", "afvist"),
            ("492", "ukendt"),
            ("607", "afventer"),
        ])
    );
    // Danish column names, in the order the README gives.
    assert_eq!(
        rows[0].keys().collect::<Vec<_>>(),
        [
            "adresse",
            "akt_id",
            "kommunekode",
            "kvittering",
            "message_id",
            "navn",
            "serverens_svar",
            "status",
            "tidspunkt"
        ]
    );
    assert!(c
        .read("report/leveringsrapport-uim-2020-aeresrelaterede-konflikter.csv")
        .starts_with(
            "\u{feff}kommunekode;navn;adresse;akt_id;status;tidspunkt;serverens_svar;message_id;kvittering\n"
        ));
    let kk = &rows[0];
    assert_eq!(kk["navn"], "Københavns Kommune");
    assert_eq!(kk["adresse"], "post@kk.dk");
    assert_eq!(kk["akt_id"], "1286555");
    assert!(kk["serverens_svar"].starts_with("250 "), "{kk:?}");
    assert!(kk["message_id"].ends_with("@uim.dk"), "{kk:?}");
    assert_eq!(kk["tidspunkt"], "2020-06-29 10:00:00+02:00");
    assert!(rows[2]["serverens_svar"].contains("5.1.1 No such user"));

    let html = c.read("report/leveringsrapport-uim-2020-aeresrelaterede-konflikter.html");
    for expected in [
        "<tr><th>Sags nr.</th><td>2020-12345</td></tr>",
        "<tr><th>Brevdato</th><td>29. juni 2020</td></tr>",
        "<tr><td>leveret</td><td class=\"n\">1</td></tr>",
        "<tr><td>midlertidig fejl</td><td class=\"n\">1</td></tr>",
        "<tr><td>afvist</td><td class=\"n\">1</td></tr>",
        "<tr><td>ukendt</td><td class=\"n\">1</td></tr>",
        "<tr><td>afventer</td><td class=\"n\">1</td></tr>",
        "Som det blev sendt til Københavns Kommune (Akt-id 1286555)",
        "Til samtlige kommuner",
        "Jeg skriver til jer, fordi jeg er blevet opmærksom på",
        "Ærø Kommune",
    ] {
        assert!(
            html.contains(expected),
            "missing {expected:?} in the report"
        );
    }
    assert_eq!(
        html.matches("Jeg skriver til jer").count(),
        1,
        "the letter once"
    );

    let json = c.run(&["report", "--format", "json"]).expect(0);
    let json: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(json["sags_nr"], "2020-12345");
    assert_eq!(json["letter_date"], "2020-06-29");
    for s in [
        "delivered",
        "failed-temporary",
        "failed-permanent",
        "unknown",
        "pending",
    ] {
        assert_eq!(json["counts"][s], 1, "{s}: {json}");
    }
    assert_eq!(json["recipients"].as_array().unwrap().len(), 5);
}

#[test]
fn report_before_anything_was_sent_says_so() {
    let c = Campaign::small();
    let run = c.run(&["report"]).expect(2);
    run.stderr_has("nothing to report yet");
}

#[test]
fn the_archive_holds_exactly_what_the_server_received() {
    let sink = SmtpSink::start(&[]);
    let c = Campaign::shipped();
    c.write("recipients/kommuner.csv", FIVE_CSV);
    use_sink(&c, &sink);
    c.run(&["send", "--yes"]).expect(0);

    let archived = c.files("archive");
    assert_eq!(archived.len(), 5, "{archived:?}");
    let messages = sink.messages();
    assert_eq!(messages.len(), 5);
    for m in &messages {
        let mail = Mail { raw: m.raw.clone() };
        let akt = mail
            .text()
            .lines()
            .find_map(|l| l.strip_prefix("Akt-id ").map(str::to_string))
            .unwrap();
        let name = archived
            .iter()
            .find(|f| f.starts_with(&format!("{akt}_")))
            .unwrap_or_else(|| panic!("no archive file for Akt-id {akt}: {archived:?}"));
        let bytes = std::fs::read(c.path(&format!("archive/{name}"))).unwrap();
        assert!(
            bytes == m.raw,
            "archive/{name} differs from what the server received"
        );
    }
}

#[test]
fn the_outbox_run_is_archived_too() {
    let c = Campaign::small();
    c.run(&["send"]).expect(0);
    assert_eq!(c.files("archive"), c.files("outbox"));
    for f in c.files("outbox") {
        assert_eq!(
            std::fs::read(c.path(&format!("archive/{f}"))).unwrap(),
            std::fs::read(c.path(&format!("outbox/{f}"))).unwrap()
        );
    }
}

// ---- the preview in a browser ----------------------------------------------------------------

fn find_chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
            let p = dir.join(name);
            if p.is_file() {
                return p;
            }
        }
    }
    panic!("chromium is not installed; run `bash .ci/install-test-servers` (as root on Debian: apt-get install chromium)")
}

/// Runs headless chromium with `args` and the given URL, and returns its standard output.
fn chromium(args: &[String], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(find_chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start chromium");
    let started = Instant::now();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "chromium {args:?} {url}: {status}");
            break;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium {args:?} {url} did not finish in 90 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    reader.join().unwrap()
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.canonicalize().unwrap().display())
}

/// Every href in a DOM; relative ones must name a file beside the page.
fn check_links(dom: &str, dir: &Path) -> usize {
    let mut relative = 0;
    for part in dom.split("href=\"").skip(1) {
        let href = part.split('"').next().unwrap().replace("&amp;", "&");
        if href.contains(':') || href.starts_with('#') {
            continue; // https:, mailto: and in-page anchors
        }
        let target = dir.join(href.split('#').next().unwrap());
        assert!(
            target.is_file(),
            "broken link {href:?}: {} is missing",
            target.display()
        );
        relative += 1;
    }
    relative
}

#[test]
fn the_preview_renders_in_a_real_browser_with_danish_text_and_no_broken_links() {
    let c = Campaign::shipped();
    c.run(&["preview"]).expect(0);
    let dir = c.path("preview");

    let index = chromium(&["--dump-dom".into()], &file_url(&dir.join("index.html")));
    for expected in [
        "Københavns Kommune",
        "Ærø Kommune",
        "Øget opmærksomhed på æresrelaterede konflikter og negativ social kontrol – Københavns Kommune",
        "postkasse@kk.dk.invalid",
        "1286555",
    ] {
        assert!(index.contains(expected), "the rendered index lacks {expected:?}");
    }
    assert_eq!(
        check_links(&index, &dir),
        2 * 98,
        "a page and an .eml link per letter"
    );

    let letter = dir.join("1286555_101_Koebenhavns-Kommune.html");
    let page = chromium(&["--dump-dom".into()], &file_url(&letter));
    for expected in [
        "Københavns Kommune",
        "Til samtlige kommuner",
        "Jeg skriver til jer, fordi jeg er blevet opmærksom på",
        "Udlændinge- og Integrationsministeriet",
        "29. juni 2020",
    ] {
        assert!(
            page.contains(expected),
            "the rendered letter lacks {expected:?}"
        );
    }
    assert!(
        check_links(&page, &dir) >= 2,
        "links back to the index and to the .eml"
    );

    let shots = tempfile::tempdir().unwrap();
    let png = shots.path().join("index.png");
    chromium(
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1200,1600".into(),
        ],
        &file_url(&letter),
    );
    let bytes = std::fs::read(&png).expect("chromium wrote no screenshot");
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(
        bytes.len() > 10_000,
        "a nearly empty screenshot ({} bytes)",
        bytes.len()
    );
}

/// How a page lays out in a 1280 × 900 window: a copy of it beside it, with a script that writes
/// the measures into the title, is loaded in chromium.
struct Layout {
    /// The page's full width and the window's width inside the scroll bar, in CSS pixels.
    scroll_width: u32,
    client_width: u32,
    /// The most lines any subject cell of the index wraps onto (0 on a page without them).
    subject_lines: u32,
}

fn layout(page: &Path) -> Layout {
    const SCRIPT: &str = "<script>\nconst d = document.documentElement;\n\
const lines = Math.max(0, ...[...document.querySelectorAll('td.subject')].map(c => {\n\
  const r = document.createRange(); r.selectNodeContents(c); return r.getClientRects().length; }));\n\
document.title = 'layout ' + d.scrollWidth + ' ' + d.clientWidth + ' ' + lines;\n</script>\n";
    let html = std::fs::read_to_string(page).unwrap();
    let measured = page.with_extension("measured.html");
    std::fs::write(
        &measured,
        html.replace("</body>", &format!("{SCRIPT}</body>")),
    )
    .unwrap();
    let dom = chromium(
        &["--dump-dom".into(), "--window-size=1280,900".into()],
        &file_url(&measured),
    );
    std::fs::remove_file(&measured).unwrap();
    let title = dom
        .split("<title>layout ")
        .nth(1)
        .and_then(|t| t.split('<').next())
        .unwrap_or_else(|| panic!("the layout script did not run on {}", page.display()));
    let n: Vec<u32> = title.split(' ').map(|x| x.parse().unwrap()).collect();
    Layout {
        scroll_width: n[0],
        client_width: n[1],
        subject_lines: n[2],
    }
}

/// A screenshot at 1280 px, kept under the target folder for a person to look at.
fn screenshot(page: &Path, name: &str) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join(name);
    chromium(
        &[
            format!("--screenshot={}", png.display()),
            "--window-size=1280,900".into(),
        ],
        &file_url(page),
    );
    assert!(std::fs::read(&png).unwrap().starts_with(b"\x89PNG"));
}

#[test]
fn the_preview_index_and_the_report_are_danish_and_fit_a_1280_px_window() {
    let c = Campaign::shipped();
    c.run(&["send", "--limit", "3"]).expect(0);
    c.run(&["preview"]).expect(0);
    c.run(&["report"]).expect(0);

    let index = c.path("preview/index.html");
    let text = c.read("preview/index.html");
    assert!(
        text.contains("Afsendes via udbakkemappen outbox."),
        "{text}"
    );
    assert_eq!(text.matches("<td class=\"state\">leveret</td>").count(), 3);
    assert_eq!(
        text.matches("<td class=\"state\">afventer</td>").count(),
        95
    );
    for english in ["delivered", "pending", "not sent", " via the "] {
        assert!(!text.contains(english), "{english:?} in the index");
    }
    let letter = c.read("preview/1286555_101_Koebenhavns-Kommune.html");
    assert!(letter.contains("<tr><th>Dato</th><td>29. juni 2020 kl. 10.00</td></tr>"));

    let shown = layout(&index);
    assert!(
        shown.scroll_width <= shown.client_width,
        "the index scrolls sideways: {} px wide in a {} px window",
        shown.scroll_width,
        shown.client_width
    );
    // Today's subject is about 95 characters: two lines, not one word per line.
    assert!(
        (1..=2).contains(&shown.subject_lines),
        "the subject wraps onto {} lines",
        shown.subject_lines
    );
    screenshot(&index, "preview-index-1280.png");

    let report = c.path("report/leveringsrapport-uim-2020-aeresrelaterede-konflikter.html");
    let shown = layout(&report);
    assert!(
        shown.scroll_width <= shown.client_width,
        "the report scrolls sideways: {} px wide in a {} px window",
        shown.scroll_width,
        shown.client_width
    );
    screenshot(&report, "report-1280.png");
}

#[test]
fn preview_open_hands_the_index_to_the_desktop_or_says_where_it_is() {
    let mut c = Campaign::small();
    let bin = tempfile::tempdir().unwrap();
    let opened = c.path("opened.txt");
    let script = bin.path().join("xdg-open");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > '{}'\n", opened.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    c.set_env("PATH", &bin.path().display().to_string());
    c.run(&["preview", "--open"]).expect(0);
    let target = std::fs::read_to_string(&opened).expect("xdg-open was not called");
    assert!(target.ends_with("preview/index.html"), "{target}");

    // No opener at all: the command still succeeds and names the file.
    let empty = tempfile::tempdir().unwrap();
    c.set_env("PATH", &empty.path().display().to_string());
    let run = c.run(&["preview", "--open"]).expect(0);
    run.stdout_has("Could not open a browser");
    run.stdout_has("preview/index.html");
}

#[test]
fn completions_man_version_and_examples_come_from_the_command_line_definition() {
    let c = Campaign::empty();
    let bash = c.run(&["completions", "bash"]).expect(0);
    for word in ["_rundbrev", "report", "init", "--open", "--format"] {
        assert!(bash.stdout.contains(word), "bash completions lack {word}");
    }
    c.run(&["completions", "zsh"]).expect(0);
    let man = c.run(&["man"]).expect(0);
    man.stdout_has(".TH rundbrev 1");
    assert!(man.stdout.contains("report"));
    let version = c.run(&["--version"]).expect(0);
    assert_eq!(
        version.stdout.trim(),
        format!("rundbrev {}", env!("CARGO_PKG_VERSION"))
    );
    for command in [
        "check",
        "preview",
        "send",
        "resend",
        "status",
        "test-send",
        "check-smtp",
        "report",
        "init",
        "completions",
        "man",
    ] {
        let help = c.run(&[command, "--help"]).expect(0);
        assert!(
            help.stdout.contains("Example"),
            "{command} --help has no example"
        );
    }
}

#[test]
fn rust_log_shows_diagnostics_on_stderr_and_stdout_stays_the_same() {
    let mut c = Campaign::small();
    c.set_env("RUST_LOG", "rundbrev=debug");
    let run = c.run(&["send"]).expect(0);
    run.stderr_has("archived before hand-over");
    assert!(!run.stdout.contains("DEBUG"), "{}", run.stdout);
    no_terminal_codes(&run.all());

    let quiet = Campaign::small();
    let run = quiet.run(&["send"]).expect(0);
    assert!(!run.stderr.contains("DEBUG"), "{}", run.stderr);
}
