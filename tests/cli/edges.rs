//! The edges of the input and of a run: header-bending characters and sizes in the recipients
//! file, an accepted change remembered, test domains, an empty file, the lock file, the login
//! message and the archive after refusals.

use std::process::Command;

use crate::harness::{Campaign, SMALL_CSV};
use crate::servers::{SmtpSink, TlsMode};
use crate::smtp::{small_for_smtp, tls_server, use_server, use_tls_server};

fn lock_path(c: &Campaign) -> std::path::PathBuf {
    let mut p = c.ledger_path().into_os_string();
    p.push(".lock");
    p.into()
}

// ---------------------------------------------------------------- 2. headers

#[test]
fn bidi_controls_and_unicode_line_separators_are_refused_with_line_and_column() {
    let c = Campaign::small();
    c.write(
        "recipients/kommuner.csv",
        "kommunekode,navn,region,email\n\
         101,K\u{202E}enummoK,Region Hovedstaden,post@kk.dk\n\
         492,Ærø Kommune\u{2028}Bcc: spion@evil.test,Region Syddanmark,post@aeroe.dk\n\
         607,Fredericia\u{2029} Kommune,Region Syddanmark,kommunen@fredericia.dk\n\
         630,Vejle\u{0085} Kommune,Region Syddanmark,post@vejle.dk\n\
         751,Aarhus\u{2066} Kommune,Region Midtjylland,post@aarhus.dk\n",
    );
    let run = c.run(&["check"]).expect(2);
    run.stderr_has("line 2, column \"navn\": the value contains a bidirectional control character (U+202E) at character 2");
    run.stderr_has("line 3, column \"navn\": the value contains a Unicode line separator (U+2028) at character 12");
    run.stderr_has("line 4, column \"navn\": the value contains a Unicode paragraph separator (U+2029) at character 11");
    run.stderr_has(
        "line 5, column \"navn\": the value contains a line break (U+0085) at character 6",
    );
    run.stderr_has(
        "line 6, column \"navn\": the value contains a bidirectional control character (U+2066)",
    );
    assert!(
        !run.all().contains('\u{202E}'),
        "the character itself is never printed"
    );
    c.run(&["send"]).expect(2);
    assert!(c.files("outbox").is_empty());
}

#[test]
fn a_field_used_in_the_subject_is_checked_like_the_name() {
    let c = Campaign::small();
    let config = c.read("config.toml");
    let subject_line = config
        .lines()
        .find(|l| l.starts_with("subject"))
        .expect("a subject in the shipped config");
    c.edit(
        "config.toml",
        subject_line,
        "subject = \"Æresrelaterede konflikter – {{ region }}\"",
    );
    c.edit(
        "recipients/kommuner.csv",
        "Region Syddanmark,post@aeroe.dk",
        "Region\u{2028}Syddanmark,post@aeroe.dk",
    );
    let run = c.run(&["check"]).expect(2);
    run.stderr_has(
        "line 3, column \"region\": the value contains a Unicode line separator (U+2028)",
    );
}

#[test]
fn line_breaks_and_control_characters_in_the_key_are_refused() {
    let c = Campaign::small();
    c.write(
        "recipients/kommuner.csv",
        "kommunekode,navn,region,email\n\
         \"101\n102\",Københavns Kommune,Region Hovedstaden,post@kk.dk\n\
         492\u{7},Ærø Kommune,Region Syddanmark,post@aeroe.dk\n",
    );
    let run = c.run(&["check"]).expect(2);
    run.stderr_has("line 2, column \"kommunekode\": the value contains a line break (U+000A) at character 4, which would end up in the Message-ID");
    run.stderr_has(
        "line 4, column \"kommunekode\": the value contains a control character (U+0007)",
    );
}

#[test]
fn a_name_too_long_for_a_header_is_refused_and_a_long_danish_name_folds() {
    let c = Campaign::small();
    c.edit(
        "recipients/kommuner.csv",
        "Københavns Kommune",
        &"Æ".repeat(1000),
    );
    let run = c.run(&["check"]).expect(2);
    run.stderr_has("line 2, column \"navn\": the name is 1000 characters long; at most 200 fit in an e-mail header");

    // 200 characters of æøå go out folded: no header line over 78 octets, and it decodes back.
    let name: String = "æøå ÆØÅ Kommune ".chars().cycle().take(200).collect();
    let name = name.trim().to_string();
    c.write(
        "recipients/kommuner.csv",
        SMALL_CSV.replace("Københavns Kommune", &name),
    );
    c.run(&["send", "--only", "101"]).expect(0);
    let eml = c
        .files("outbox")
        .into_iter()
        .find(|f| f.contains("101"))
        .unwrap();
    let raw = std::fs::read(c.path(&format!("outbox/{eml}"))).unwrap();
    let text = String::from_utf8_lossy(&raw);
    let head = text.split("\r\n\r\n").next().unwrap();
    for line in head.split("\r\n") {
        assert!(line.len() <= 998, "{} octets: {line}", line.len());
    }
    let mail = crate::harness::Mail { raw };
    assert!(mail.to().starts_with(&name), "{}", mail.to());
}

#[test]
fn a_50_mb_field_is_refused_naming_its_line_and_memory_stays_small() {
    let c = Campaign::small();
    let mut csv = String::from(SMALL_CSV);
    csv.push_str("630,");
    csv.push_str(&"x".repeat(50 * 1024 * 1024));
    csv.push_str(",Region Syddanmark,post@vejle.dk\n");
    c.write("recipients/kommuner.csv", csv);

    let time = std::path::Path::new("/usr/bin/time");
    assert!(
        time.exists(),
        "GNU time is needed to measure memory: apt-get install time (or bash .ci/install-test-servers)"
    );
    let inner = c.command(&["check"]);
    let mut cmd = Command::new(time);
    cmd.args(["-f", "max-rss-kb=%M"])
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(c.root())
        .env_clear();
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            cmd.env(k, v);
        }
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "recipients/kommuner.csv, line 5: cannot read this row: the row is longer than 1 MiB"
        ),
        "{stderr}"
    );
    let rss: u64 = stderr
        .rsplit("max-rss-kb=")
        .next()
        .and_then(|s| s.trim().parse().ok())
        .expect("max RSS from GNU time");
    assert!(rss < 60 * 1024, "check used {rss} KiB for a 50 MB field");
}

// ---------------------------------------------------------------- 3. accepted changes

#[test]
fn an_accepted_change_to_a_sent_recipient_is_remembered() {
    let c = Campaign::shipped();
    c.run(&["send", "--limit", "49"]).expect(0);
    c.edit(
        "recipients/kommuner.csv",
        "101,Københavns Kommune,",
        "101,Københavns Kommune (ny),",
    );
    let run = c.run(&["send"]).expect(2);
    run.stderr_has("101 (line 2)");
    c.run(&["send", "--accept-changes"]).expect(0);
    assert_eq!(c.files("outbox").len(), 98);

    // Before the fix, every later plain send refused this forever.
    let run = c.run(&["send"]).expect(0);
    run.stdout_has("Nothing to send");
    c.run(&["check"]).expect(0);

    // A further change is a new change, and refused again.
    c.edit(
        "recipients/kommuner.csv",
        "Københavns Kommune (ny)",
        "Københavns Kommune (nyere)",
    );
    let run = c.run(&["send"]).expect(2);
    run.stderr_has("101 (line 2)");
}

#[test]
fn a_change_accepted_for_a_send_that_was_not_confirmed_is_not_remembered() {
    let c = Campaign::small();
    c.run(&["send", "--limit", "1"]).expect(0);
    c.edit(
        "recipients/kommuner.csv",
        "101,Københavns Kommune,",
        "101,Københavns Kommune (ny),",
    );
    // Over SMTP a send must be confirmed; without a terminal and without --yes it is not, so
    // nothing goes ahead, and the accepted change must not be recorded either. (Nothing listens
    // on the port: the run never gets that far.)
    let config = c
        .read("config.toml")
        .replace("kind = \"outbox\"", "kind = \"smtp\"")
        .replace(
            "# [transport.smtp]",
            "[transport.smtp]\nhost = \"127.0.0.1\"\nport = 9\nsecurity = \"none\"\n# was: [transport.smtp]",
        );
    c.write("config.toml", config);
    let run = c.run(&["send", "--accept-changes"]).expect(2);
    run.stderr_has("confirmation is needed");
    let run = c.run(&["send", "--yes"]).expect(2);
    run.stderr_has("refusing to send")
        .stderr_has("101 (line 2)");
}

// ---------------------------------------------------------------- 4. small things

fn on_test_domain(c: &Campaign) {
    c.write(
        "recipients/kommuner.csv",
        SMALL_CSV
            .replace("@kk.dk", "@kk.kommuner.test")
            .replace("@aeroe.dk", "@aeroe.kommuner.test")
            .replace("@fredericia.dk", "@fredericia.kommuner.test"),
    );
}

#[test]
fn named_test_domains_can_be_sent_to_over_smtp_but_invalid_never() {
    let sink = SmtpSink::start(&[]);
    let c = small_for_smtp();
    on_test_domain(&c);
    use_server(&c, sink.port(), "");
    let run = c.run(&["check"]).expect(2);
    run.stderr_has("post@kk.kommuner.test is a placeholder on a reserved domain");
    run.stderr_has("allow_test_domains");

    use_server(&c, sink.port(), "allow_test_domains = [\"kommuner.test\"]");
    c.run(&["check"]).expect(0);
    c.run(&["send", "--yes"]).expect(0);
    assert_eq!(sink.messages().len(), 3);

    use_server(&c, sink.port(), "allow_test_domains = [\"invalid\"]");
    let run = c.run(&["check"]).expect(2);
    run.stderr_has(".invalid marks placeholder addresses and is never sent to");
}

#[test]
fn an_empty_recipients_file_is_refused_and_creates_no_ledger() {
    let c = Campaign::small();
    c.write("recipients/kommuner.csv", "kommunekode,navn,region,email\n");
    let run = c.run(&["check"]).expect(2);
    run.stderr_has("there are no recipients");
    let run = c.run(&["send"]).expect(2);
    run.stderr_has("there are no recipients");
    assert!(!c.ledger_path().exists(), "no ledger for an empty campaign");
    assert!(!lock_path(&c).exists(), "no lock file left behind");
}

#[test]
fn a_refused_send_leaves_no_lock_file() {
    let c = Campaign::shipped();
    use_server(&c, 2, "");
    let run = c.run(&["send", "--yes"]).expect(2);
    run.stderr_has("placeholder on a reserved domain");
    assert!(
        !lock_path(&c).exists(),
        "a refused send left {}",
        lock_path(&c).display()
    );

    let c = Campaign::small();
    c.run(&["send"]).expect(0);
    assert!(
        !lock_path(&c).exists(),
        "a finished send left its lock file"
    );
}

#[test]
fn a_wrong_password_is_reported_once_with_the_servers_reply() {
    let server = tls_server(TlsMode::StartTls);
    let mut c = small_for_smtp();
    use_tls_server(&c, &server, "starttls", true, "");
    c.set_env("RUNDBREV_SMTP_PASSWORD", "forkert");
    let run = c.run(&["send", "--yes"]).expect(2);
    run.stderr_has("the server refused the login for rundbrev@uim.dk (it said: 535");
    assert_eq!(
        run.stderr.matches("refused the login").count(),
        1,
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr.matches("rundbrev@uim.dk").count(),
        1,
        "{}",
        run.stderr
    );
}

#[test]
fn the_archive_keeps_only_letters_whose_data_went_out() {
    let sink = SmtpSink::start(&[]);
    let c = small_for_smtp();
    use_server(&c, sink.port(), "");
    c.run(&["send", "--yes", "--only", "101"]).expect(0);
    assert_eq!(c.files("archive").len(), 1);
    drop(sink);

    // The other two are refused at RCPT TO: their data never goes out.
    let refusing = SmtpSink::start(&["-f", "RCPT"]);
    use_server(&c, refusing.port(), "");
    c.run(&["send", "--yes"]).expect(1);
    let states = c.states();
    assert_eq!(states["492"], "failed-permanent");
    let delivered = states.values().filter(|s| *s == "delivered").count();
    assert_eq!(
        c.files("archive").len(),
        delivered,
        "{:?}",
        c.files("archive")
    );
}

// ---------------------------------------------------------------- kill -9 and whole files

/// The shipped campaign with `n` synthetic recipients, so that a run lasts long enough to be
/// killed in the middle.
fn many_recipients(n: usize) -> Campaign {
    let c = Campaign::shipped();
    let mut csv = String::from("kommunekode,navn,region,email\n");
    for i in 1..=n {
        csv.push_str(&format!(
            "{i:06},Kommune nr. {i},Region Hovedstaden,post{i}@kommune{i}.dk.invalid\n"
        ));
    }
    c.write("recipients/kommuner.csv", csv);
    c
}

/// Whether an `.eml` file holds a whole letter: it ends with its MIME closing boundary.
fn whole_letter(bytes: &[u8]) -> bool {
    let text = String::from_utf8_lossy(bytes);
    let boundary = text
        .split("boundary=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("no boundary");
    text.trim_end().ends_with(&format!("--{boundary}--"))
}

/// Every file in the folder under a letter's name is whole; returns how many there are.
#[track_caller]
fn no_partial_letter(c: &Campaign, folder: &str) -> usize {
    let files = c.files(folder);
    for f in &files {
        // Not under a letter's name: the index, written last, and the outbox's files, which are
        // forced to disk before they are renamed into place.
        if f == "index.html.partial" || (folder == "outbox" && f.ends_with(".eml.partial")) {
            continue;
        }
        assert!(!f.ends_with(".partial"), "{folder}/{f} is left over");
        let bytes = std::fs::read(c.path(&format!("{folder}/{f}"))).unwrap();
        if f.ends_with(".eml") {
            assert!(whole_letter(&bytes), "{folder}/{f} is not a whole letter");
        } else if f.ends_with(".html") {
            assert!(
                String::from_utf8_lossy(&bytes)
                    .trim_end()
                    .ends_with("</html>"),
                "{folder}/{f} is not a whole page"
            );
        }
    }
    files.len()
}

/// Starts rundbrev and kills it (SIGKILL) once `folder` holds at least `files` files.
fn kill_9_when(c: &Campaign, args: &[&str], folder: &str, files: usize) {
    let mut child = c
        .command(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while c.files(folder).len() < files && start.elapsed() < std::time::Duration::from_secs(60) {
        if child.try_wait().unwrap().is_some() {
            panic!("rundbrev {args:?} ended before it could be killed");
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
}

#[test]
fn kill_9_during_a_preview_leaves_no_part_of_a_letter_under_a_letters_name() {
    let c = many_recipients(1500);
    kill_9_when(&c, &["preview"], "preview", 300);
    let left = no_partial_letter(&c, "preview");
    assert!(left >= 300, "{left}");
    assert!(
        !c.path("preview/index.html").exists(),
        "a killed preview has no index: it does not look whole"
    );
    // The next preview replaces it whole.
    c.run(&["preview"]).expect(0);
    assert_eq!(no_partial_letter(&c, "preview"), 2 * 1500 + 1);
}

#[test]
fn kill_9_during_a_send_leaves_no_part_of_a_letter_in_the_archive_and_a_retry_keeps_all() {
    let c = many_recipients(600);
    kill_9_when(&c, &["send", "--yes"], "archive", 60);
    no_partial_letter(&c, "archive");
    no_partial_letter(&c, "outbox");

    c.run(&["send", "--yes"]).expect(0);
    no_partial_letter(&c, "archive");
    let states = c.states();
    // The letter in hand when the run was killed may be left unknown (archived, and perhaps
    // written to the outbox and moved away since: the next run cannot tell); all others went.
    let unknown = states.values().filter(|s| *s == "unknown").count();
    assert!(
        unknown <= 1 && states.values().all(|s| s == "delivered" || s == "unknown"),
        "{states:?}"
    );
    // Every letter as delivered is in the archive, byte for byte; an earlier copy (of a letter
    // archived but not handed over when the first run was killed) is kept beside it.
    // (An `.eml.partial` the killed run left in the outbox is not a letter; see above.)
    for f in c
        .files("outbox")
        .iter()
        .filter(|f| !f.ends_with(".partial"))
    {
        assert_eq!(
            std::fs::read(c.path(&format!("outbox/{f}"))).unwrap(),
            std::fs::read(c.path(&format!("archive/{f}"))).unwrap(),
            "{f}"
        );
    }
    let current = c
        .files("archive")
        .iter()
        .filter(|f| !f.contains(".earlier-"))
        .count();
    assert_eq!(current, 600);
}

#[test]
fn a_letter_sent_again_with_other_bytes_keeps_the_earlier_copy_in_the_archive() {
    // The server takes the data, then answers 4xx: the letter may be tried again.
    let soft = SmtpSink::start(&["-r", "."]);
    let c = small_for_smtp();
    use_server(&c, soft.port(), "retries = 0");
    c.run(&["send", "--yes", "--only", "101"]).expect(1);
    assert_eq!(c.states()["101"], "failed-temporary");
    let name = c.files("archive").remove(0);
    let first = std::fs::read(c.path(&format!("archive/{name}"))).unwrap();
    drop(soft);

    // The letter is changed (the template), the change accepted, and the letter sent again:
    // other bytes under the same name.
    c.edit(
        "templates/rundbrev.md",
        "Med venlig hilsen",
        "Rettet udgave.\n\nMed venlig hilsen",
    );
    let sink = SmtpSink::start(&[]);
    use_server(&c, sink.port(), "");
    c.run(&["resend", "--failed", "--yes", "--accept-changes"])
        .expect(0);
    assert_eq!(c.states()["101"], "delivered");
    let earlier = name.replace(".eml", ".earlier-1.eml");
    let mut expected = vec![name.clone(), earlier.clone()];
    expected.sort();
    assert_eq!(c.files("archive"), expected);
    assert_eq!(
        std::fs::read(c.path(&format!("archive/{earlier}"))).unwrap(),
        first,
        "the copy whose data went out first is kept"
    );
    let second = std::fs::read(c.path(&format!("archive/{name}"))).unwrap();
    assert_ne!(second, first);
    assert!(whole_letter(&second));
    assert_eq!(sink.messages().len(), 1);
}
