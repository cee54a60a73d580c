//! Asking for delivery reports, and reading them back: DSN parameters against servers that offer
//! DSN and servers that do not, `check-smtp`'s list of extensions, the read-receipt request, and
//! `receipts fetch` end to end through a real Postfix relay and a real Dovecot mailbox (see
//! `mailhost.rs`), all on 127.0.0.1.

use std::time::{Duration, Instant};

use crate::harness::Campaign;
use crate::mailhost::{MailHost, Plan};
use crate::servers::{Aiosmtpd, AiosmtpdOptions, Received};

/// The small campaign sending to a plain SMTP server on 127.0.0.1; `extra` is appended to the
/// config (e.g. a `[receipts]` section).
pub(crate) fn smtp_campaign(port: u16, extra: &str) -> Campaign {
    let c = Campaign::small();
    c.edit("config.toml", "kind = \"outbox\"", "kind = \"smtp\"");
    let config = c.read("config.toml");
    c.write(
        "config.toml",
        format!(
            "{config}\n[transport.smtp]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\n\
             retries = 0\nconnections = 1\nconnect_timeout_secs = 5\ncommand_timeout_secs = 10\n\n{extra}"
        ),
    );
    c
}

fn aiosmtpd(dsn: bool) -> Aiosmtpd {
    Aiosmtpd::start(AiosmtpdOptions {
        dsn,
        ..AiosmtpdOptions::default()
    })
}

/// The message sent to `address`.
fn to<'a>(messages: &'a [Received], address: &str) -> &'a Received {
    messages
        .iter()
        .find(|m| m.rcpt_to.first().map(String::as_str) == Some(address))
        .unwrap_or_else(|| panic!("no message to {address}"))
}

#[test]
fn each_letter_asks_for_reports_when_the_server_offers_dsn() {
    let server = aiosmtpd(true);
    let c = smtp_campaign(server.port(), "");
    c.run(&["send", "--yes"]).expect(0);

    let messages = server.messages();
    assert_eq!(messages.len(), 3);
    for address in ["post@kk.dk", "post@aeroe.dk", "kommunen@fredericia.dk"] {
        let m = to(&messages, address);
        let message_id = m.message_id().expect("a Message-ID");
        assert_eq!(
            m.mail_params,
            format!("RET=HDRS ENVID={message_id}"),
            "MAIL FROM of the letter to {address}"
        );
        assert_eq!(
            m.rcpt_params,
            [format!(
                "NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;{address}"
            )],
            "RCPT TO of the letter to {address}"
        );
    }
    let states = c.states();
    assert!(states.values().all(|s| s == "delivered"), "{states:?}");
}

#[test]
fn a_server_without_dsn_gets_no_dsn_parameters_and_takes_every_letter() {
    // This server refuses unknown MAIL and RCPT parameters with 555, as many do.
    let server = aiosmtpd(false);
    let c = smtp_campaign(server.port(), "");
    c.run(&["send", "--yes"]).expect(0);

    let messages = server.messages();
    assert_eq!(messages.len(), 3);
    for m in &messages {
        assert_eq!(m.mail_params, "", "MAIL FROM to {:?}", m.rcpt_to);
        assert_eq!(m.rcpt_params, [""], "RCPT TO to {:?}", m.rcpt_to);
    }
    let states = c.states();
    assert!(states.values().all(|s| s == "delivered"), "{states:?}");
}

#[test]
fn the_receipts_section_chooses_the_notifications_and_what_comes_back() {
    let server = aiosmtpd(true);
    let c = smtp_campaign(
        server.port(),
        "[receipts]\nnotify = [\"failure\", \"delay\"]\nret = \"full\"\n",
    );
    c.run(&["send", "--yes", "--only", "101"]).expect(0);
    let messages = server.messages();
    let m = to(&messages, "post@kk.dk");
    assert!(
        m.mail_params.starts_with("RET=FULL ENVID="),
        "{}",
        m.mail_params
    );
    assert_eq!(
        m.rcpt_params,
        ["NOTIFY=FAILURE,DELAY ORCPT=rfc822;post@kk.dk"]
    );

    // notify = [] asks for nothing, even of a server that offers DSN.
    let server = aiosmtpd(true);
    let c = smtp_campaign(server.port(), "[receipts]\nnotify = []\n");
    c.run(&["send", "--yes", "--only", "101"]).expect(0);
    let messages = server.messages();
    let m = to(&messages, "post@kk.dk");
    assert_eq!(
        (m.mail_params.as_str(), m.rcpt_params.as_slice()),
        ("", &[String::new()][..])
    );

    // A misspelt notification is named with its key, and nothing is sent.
    let server = aiosmtpd(true);
    let c = smtp_campaign(server.port(), "[receipts]\nnotify = [\"sucess\"]\n");
    c.run(&["send", "--yes"])
        .expect(2)
        .stderr_has("receipts.notify")
        .stderr_has("`sucess` is not a notification");
    assert!(server.messages().is_empty());
}

#[test]
fn check_smtp_lists_the_extensions_and_says_whether_dsn_is_offered() {
    let with = aiosmtpd(true);
    let c = smtp_campaign(with.port(), "");
    c.run(&["check-smtp"])
        .expect(0)
        .stdout_has("It offers: ")
        .stdout_has("8BITMIME")
        .stdout_has(
            "It offers DSN: each letter asks for delivery reports (NOTIFY=SUCCESS,FAILURE,DELAY).",
        );

    let without = aiosmtpd(false);
    let c = smtp_campaign(without.port(), "");
    let run = c.run(&["check-smtp"]).expect(0);
    run.stdout_has("It does not offer DSN");
    assert!(!run.stdout.contains("It offers DSN"), "{}", run.stdout);
    assert!(without.messages().is_empty(), "check-smtp sends nothing");
}

#[test]
fn a_read_receipt_is_requested_only_when_switched_on() {
    let server = aiosmtpd(false);
    let c = smtp_campaign(server.port(), "");
    c.run(&["send", "--yes", "--only", "101"]).expect(0);
    let messages = server.messages();
    assert_eq!(
        to(&messages, "post@kk.dk").header("Disposition-Notification-To"),
        None
    );
    // Switched on after letters went out, it would change the remaining letters: refused.
    let config = c.read("config.toml");
    c.write(
        "config.toml",
        format!("{config}\n[receipts]\nread_receipt = true\n"),
    );
    c.run(&["send", "--yes"])
        .expect(2)
        .stderr_has("receipts.read_receipt");
    assert_eq!(server.messages().len(), 1);

    let server = aiosmtpd(false);
    let c = smtp_campaign(server.port(), "[receipts]\nread_receipt = true\n");
    c.run(&["send", "--yes", "--only", "101"]).expect(0);
    let messages = server.messages();
    assert_eq!(
        to(&messages, "post@kk.dk")
            .header("Disposition-Notification-To")
            .as_deref(),
        Some("<uim@uim.dk>")
    );
}

const IMAP_USER: &str = "uim@uim.dk";
const IMAP_PASSWORD: &str = "Kodeord-æøå-1";

/// The relay's plan for the small campaign: Ærø's mailbox does not exist (a bounce after 250),
/// København and Fredericia get their letters, and the reports go to the sender uim@uim.dk.
fn small_mail_host() -> MailHost {
    MailHost::start(&Plan {
        mailboxes: &["post@kk.dk", "kommunen@fredericia.dk", IMAP_USER],
        bouncing: &[("aeroe.dk", "5.1.1 the mailbox does not exist")],
        imap_user: IMAP_USER,
        imap_password: IMAP_PASSWORD,
    })
}

/// The `[receipts.imap]` section for the host's Dovecot; `extra` lines override or add keys.
fn imap_section(host: &MailHost, extra: &str) -> String {
    format!(
        "[receipts.imap]\nhost = \"127.0.0.1\"\nport = {}\nsecurity = \"starttls\"\n\
         user = \"{IMAP_USER}\"\nfolders = [\"INBOX\"]\nconnect_timeout_secs = 5\n\
         command_timeout_secs = 10\n{extra}",
        host.imap_port()
    )
}

fn ca_line(host: &MailHost) -> String {
    format!("ca_file = \"{}\"\n", host.ca_file().display())
}

/// key → (kind, action, status) of every stored receipt, from the ledger.
fn receipts(c: &Campaign) -> Vec<(String, String, String, String, String)> {
    let db = c.ledger();
    let mut stmt = db
        .prepare(
            "SELECT key, kind, action, IFNULL(status, ''), origin FROM receipts ORDER BY key, id",
        )
        .unwrap();
    stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

#[test]
fn a_real_relay_bounces_after_250_and_fetch_reads_its_reports_back_over_imap() {
    let host = small_mail_host();
    let mut c = smtp_campaign(host.smtp_port(), &imap_section(&host, &ca_line(&host)));
    c.set_env("RUNDBREV_IMAP_PASSWORD", IMAP_PASSWORD);

    let started = Instant::now();
    c.run(&["send", "--yes"]).expect(0);
    // The relay took all three with 250: today's record says delivered for all.
    let states = c.states();
    assert!(states.values().all(|s| s == "delivered"), "{states:?}");
    // The relay delivers after its 250, in its own time.
    host.wait_for_messages("post@kk.dk", 1, Duration::from_secs(40));
    host.wait_for_messages("kommunen@fredericia.dk", 1, Duration::from_secs(40));
    assert_eq!(host.mailbox_files("post@kk.dk").len(), 1);
    assert_eq!(host.mailbox_files("kommunen@fredericia.dk").len(), 1);

    // Postfix reports: two deliveries (NOTIFY=SUCCESS) and one bounce, to the sender.
    host.wait_for_messages(IMAP_USER, 3, Duration::from_secs(40));
    let run = c.run(&["receipts", "fetch"]).expect(0);
    run.stdout_has("INBOX: 3 new messages.")
        .stdout_has("492 post@aeroe.dk: now bounced (was delivered)")
        .stdout_has("(5.1.1)")
        .stdout_has("Read 3 messages: 1 bounced, 2 recorded, 0 already recorded before, 0 not matched to a letter, 0 skipped.");
    let states = c.states();
    assert_eq!(states["492"], "bounced", "{states:?}\n{}", run.stdout);
    assert_eq!(states["101"], "delivered");
    assert_eq!(states["607"], "delivered");
    let stored = receipts(&c);
    let of = |key: &str| -> Vec<(String, String, String)> {
        stored
            .iter()
            .filter(|r| r.0 == key)
            .map(|r| (r.1.clone(), r.2.clone(), r.3.clone()))
            .collect()
    };
    assert_eq!(
        of("492"),
        [("bounce".into(), "failed".into(), "5.1.1".into())]
    );
    for key in ["101", "607"] {
        assert_eq!(
            of(key),
            [("delivered".into(), "delivered".into(), "2.0.0".into())]
        );
    }
    assert!(
        stored
            .iter()
            .all(|r| r.4.starts_with("IMAP INBOX (UIDVALIDITY ")),
        "{stored:?}"
    );
    // `status` shows it among the bounced.
    c.run(&["status"]).expect(0).stdout_has("bounced");

    // A second fetch reads nothing new and changes nothing.
    let again = c.run(&["receipts", "fetch"]).expect(0);
    again
        .stdout_has("INBOX: no new messages.")
        .stdout_has("Read 0 messages: 0 bounced, 0 recorded");
    assert_eq!(c.states(), states);
    assert_eq!(receipts(&c), stored);

    // When the server numbers the folder anew, it is read again: nothing is counted twice.
    host.renumber(IMAP_USER);
    let reread = c.run(&["receipts", "fetch"]).expect(0);
    reread
        .stdout_has("INBOX: the server renumbered this folder")
        .stdout_has("Read 3 messages: 0 bounced, 0 recorded, 3 already recorded before");
    assert_eq!(c.states(), states);
    assert_eq!(receipts(&c), stored);

    // The mailbox is as it was: three messages, none marked read, moved or deleted.
    let files = host.mailbox_files(IMAP_USER);
    assert_eq!(files.len(), 3, "{files:?}");
    assert!(
        files.iter().all(|f| !f
            .rsplit_once(":2,")
            .is_some_and(|(_, flags)| flags.contains(['S', 'T']))),
        "a message was flagged: {files:?}\n{}",
        host.imap_log()
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn fetch_with_a_wrong_password_or_an_untrusted_certificate_says_so_and_records_nothing() {
    let host = small_mail_host();
    let mut c = smtp_campaign(host.smtp_port(), &imap_section(&host, &ca_line(&host)));
    c.run(&["send", "--yes", "--only", "492"]).expect(0);
    host.wait_for_messages(IMAP_USER, 1, Duration::from_secs(40));

    c.set_env("RUNDBREV_IMAP_PASSWORD", "forkert");
    let run = c.run(&["receipts", "fetch"]).expect(2);
    run.stderr_has("the IMAP server refused the login of user \"uim@uim.dk\"")
        .stderr_has("Nothing was recorded; the next `rundbrev receipts fetch` goes on from there");
    assert!(!run.all().contains("forkert"), "{}", run.all());
    assert_eq!(c.states()["492"], "delivered");

    // Without ca_file the self-made CA is not trusted, and nothing is sent to the server.
    let c2 = smtp_campaign(host.smtp_port(), &imap_section(&host, ""));
    std::fs::copy(c.ledger_path(), c2.ledger_path()).unwrap();
    let mut c2 = c2;
    c2.set_env("RUNDBREV_IMAP_PASSWORD", IMAP_PASSWORD);
    c2.run(&["receipts", "fetch"])
        .expect(2)
        .stderr_has("the server's certificate is not trusted")
        .stderr_has("set ca_file");
    assert!(receipts(&c2).is_empty());
    assert_eq!(c2.states()["492"], "delivered");

    // With the right password the bounce is read; the IMAP library's own trace of the login
    // never shows the password, whatever RUST_LOG asks for.
    c.set_env("RUNDBREV_IMAP_PASSWORD", IMAP_PASSWORD);
    c.set_env("RUST_LOG", "trace");
    let run = c.run(&["receipts", "fetch"]).expect(0);
    assert!(!run.all().contains(IMAP_PASSWORD), "{}", run.all());
    assert_eq!(c.states()["492"], "bounced");
}

#[test]
fn fetch_from_a_server_that_hangs_up_is_a_plain_error_and_changes_nothing() {
    // A "server" that greets and closes the connection at once.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        use std::io::Write as _;
        if let Ok((mut stream, _)) = listener.accept() {
            let _ = stream.write_all(b"* OK ready\r\n");
        }
    });
    let sink = aiosmtpd(false);
    let mut c = smtp_campaign(
        sink.port(),
        &format!(
            "[receipts.imap]\nhost = \"127.0.0.1\"\nport = {port}\nuser = \"u\"\nconnect_timeout_secs = 5\ncommand_timeout_secs = 5\n"
        ),
    );
    c.run(&["send", "--yes", "--only", "101"]).expect(0);
    c.set_env("RUNDBREV_IMAP_PASSWORD", "x");
    let run = c.run(&["receipts", "fetch"]).expect(2);
    run.stderr_has("the IMAP server closed the connection")
        .stderr_has("Nothing was recorded");
    server.join().unwrap();
    assert_eq!(c.states()["101"], "delivered");
}
