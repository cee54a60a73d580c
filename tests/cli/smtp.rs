//! Delivery over real SMTP servers on 127.0.0.1: Postfix's smtp-sink (with its fault flags) and
//! aiosmtpd (STARTTLS, implicit TLS, AUTH). The tests start the servers themselves; without them
//! installed they fail with an install hint (see `servers.rs`).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::harness::{Campaign, Mail};
use crate::servers::{Aiosmtpd, AiosmtpdOptions, Received, SmtpSink, TlsMode};

/// The shipped campaign with real-looking addresses (only ever sent to the loopback sink).
fn shipped_for_smtp() -> Campaign {
    let c = Campaign::shipped();
    let csv = c.read("recipients/kommuner.csv").replace(".invalid,", ",");
    c.write("recipients/kommuner.csv", csv);
    c
}

pub(crate) fn small_for_smtp() -> Campaign {
    Campaign::small()
}

/// The config up to the SMTP section, with SMTP chosen.
fn config_without_smtp(c: &Campaign) -> String {
    let text = c
        .read("config.toml")
        .replace("kind = \"outbox\"", "kind = \"smtp\"");
    let cut = text
        .find("# [transport.smtp]")
        .or_else(|| text.find("[transport.smtp]"))
        .unwrap_or(text.len());
    text[..cut].to_string()
}

/// Writes the SMTP section: `settings` ("key = value" lines) override the defaults.
fn write_smtp(c: &Campaign, defaults: &[(&str, String)], settings: &str) {
    let mut keys: Vec<(String, String)> = defaults
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    for line in settings.lines().filter(|l| l.contains('=')) {
        let (k, v) = line.split_once('=').unwrap();
        let (k, v) = (k.trim().to_string(), v.trim().to_string());
        match keys.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v,
            None => keys.push((k, v)),
        }
    }
    let section: String = keys.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    c.write(
        "config.toml",
        format!("{}[transport.smtp]\n{section}", config_without_smtp(c)),
    );
}

/// Points the campaign at a plain SMTP server on 127.0.0.1 with quick retries and timeouts.
pub(crate) fn use_server(c: &Campaign, port: u16, settings: &str) {
    let defaults = [
        ("host", "\"127.0.0.1\"".to_string()),
        ("port", port.to_string()),
        ("security", "\"none\"".to_string()),
        ("retries", "1".to_string()),
        ("retry_delay_secs", "0".to_string()),
        ("connect_timeout_secs", "5".to_string()),
        ("command_timeout_secs", "5".to_string()),
        ("connections", "1".to_string()),
    ];
    write_smtp(c, &defaults, settings);
}

fn received_by_rcpt(msgs: &[Received]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in msgs {
        for to in &r.rcpt_to {
            *m.entry(to.clone()).or_default() += 1;
        }
    }
    m
}

fn address_of(c: &Campaign) -> BTreeMap<String, String> {
    c.status_json()["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_string(),
                r["address"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn all_98_letters_arrive_at_the_sink_each_exactly_once_with_correct_headers() {
    let sink = SmtpSink::start(&[]);
    let c = shipped_for_smtp();
    use_server(&c, sink.port(), "");
    let run = c.run(&["send", "--yes"]).expect(0);
    assert!(
        run.stdout
            .contains("About to send 98 letters via 127.0.0.1:"),
        "{}",
        run.stdout
    );
    run.stdout_has(
        "(no encryption, no login), from Udlændinge- og Integrationsministeriet <uim@uim.dk>.",
    );

    let msgs = sink.messages();
    assert_eq!(msgs.len(), 98);
    let by_rcpt = received_by_rcpt(&msgs);
    assert_eq!(by_rcpt.len(), 98);
    assert!(
        by_rcpt.values().all(|&n| n == 1),
        "each recipient exactly once"
    );

    let status = c.status_json();
    let records = status["recipients"].as_array().unwrap();
    for r in records {
        assert_eq!(r["state"], "delivered");
        assert!(r["last_reply"].as_str().unwrap().starts_with("250 "), "{r}");
    }
    for m in &msgs {
        assert_eq!(m.mail_from, "uim@uim.dk");
        let mail = Mail { raw: m.raw.clone() };
        let record = records
            .iter()
            .find(|r| r["address"] == m.rcpt_to[0])
            .expect("a ledger record for every message");
        assert_eq!(
            mail.to(),
            format!("{} <{}>", record["name"].as_str().unwrap(), m.rcpt_to[0])
        );
        assert_eq!(
            mail.subject(),
            format!(
                "Øget opmærksomhed på æresrelaterede konflikter og negativ social kontrol – {}",
                record["name"].as_str().unwrap()
            )
        );
        assert_eq!(
            format!("<{}>", mail.message_id()),
            format!("<{}>", record["message_id"].as_str().unwrap())
        );
        assert_eq!(
            mail.header("Date").unwrap(),
            "Mon, 29 Jun 2020 08:00:00 +0000"
        );
        let text = mail.text();
        assert!(text.contains(
            "Til samtlige kommuner\n\nJeg skriver til jer, fordi jeg er blevet opmærksom på"
        ));
        assert!(text.contains(&format!("Akt-id {}\n", record["akt_id"].as_str().unwrap())));
        assert!(text.contains("29. juni 2020"));
    }
}

#[test]
fn smtp_refuses_placeholder_addresses_and_lists_their_rows() {
    let sink = SmtpSink::start(&[]);
    let c = Campaign::shipped();
    use_server(&c, sink.port(), "");
    let run = c.run(&["send", "--yes"]).expect(2);
    run.stderr_has("found 92 problems");
    run.stderr_has("recipients/kommuner.csv, line 2, column \"email\": postkasse@kk.dk.invalid is a placeholder");
    for real in [
        "balk.dk",
        "albertslund.dk",
        "htk.dk",
        "vordingborg.dk",
        "fredericia.dk",
        "herning.dk",
    ] {
        assert!(
            !run.stderr.contains(real),
            "the six sourced addresses are fine: {real}"
        );
    }
    assert_eq!(sink.count(), 0);
    assert!(!c.ledger_path().exists());
}

#[test]
fn without_a_terminal_send_needs_yes() {
    let sink = SmtpSink::start(&[]);
    let c = small_for_smtp();
    use_server(&c, sink.port(), "");
    let run = c.run(&["send"]).expect(2);
    run.stderr_has("pass --yes");
    assert_eq!(sink.count(), 0);
    assert!(c.states().values().all(|s| s == "pending"));
}

#[test]
fn a_soft_reject_is_failed_temporary_and_resend_delivers_exactly_those() {
    let c = small_for_smtp();
    let healthy = SmtpSink::start(&[]);
    use_server(&c, healthy.port(), "");
    c.run(&["send", "--yes", "--only", "101"]).expect(0);

    let soft = SmtpSink::start(&["-r", "RCPT"]);
    use_server(&c, soft.port(), "");
    let run = c.run(&["send", "--yes"]).expect(1);
    assert!(
        run.stdout
            .contains("2 letters were not delivered (2 for now, 0 refused for good)"),
        "{}",
        run.stdout
    );
    let status = c.status_json();
    for r in status["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["key"] != "101")
    {
        assert_eq!(r["state"], "failed-temporary");
        assert_eq!(r["attempts"], 2, "one retry within the run");
        assert!(r["last_reply"].as_str().unwrap().starts_with("450 "), "{r}");
    }
    assert_eq!(soft.count(), 0);

    let healthy2 = SmtpSink::start(&[]);
    use_server(&c, healthy2.port(), "");
    c.run(&["resend", "--failed", "--yes"]).expect(0);
    let got: BTreeSet<String> = healthy2
        .messages()
        .iter()
        .flat_map(|m| m.rcpt_to.clone())
        .collect();
    assert_eq!(
        got,
        BTreeSet::from([
            "post@aeroe.dk".to_string(),
            "kommunen@fredericia.dk".to_string()
        ])
    );
    // The resent letter is the frozen one: its Message-ID and Akt-id are the ledger's.
    let status = c.status_json();
    for m in healthy2.messages() {
        let mail = Mail { raw: m.raw.clone() };
        let r = status["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["address"] == m.rcpt_to[0])
            .unwrap();
        assert_eq!(mail.message_id(), r["message_id"].as_str().unwrap());
        assert!(mail
            .text()
            .contains(&format!("Akt-id {}", r["akt_id"].as_str().unwrap())));
        assert_eq!(r["state"], "delivered");
    }
    let run = c.run(&["resend", "--failed", "--yes"]).expect(0);
    run.stdout_has("Nothing to send");
    assert_eq!(healthy.count(), 1);
}

#[test]
fn a_hard_reject_is_failed_permanent_with_the_servers_words_and_not_retried() {
    let sink = SmtpSink::start(&["-f", "RCPT", "-B", "550 5.1.1 No such user"]);
    let c = small_for_smtp();
    use_server(&c, sink.port(), "retries = 3");
    let run = c.run(&["send", "--yes"]).expect(1);
    assert!(
        run.stdout
            .contains("3 letters were not delivered (0 for now, 3 refused for good)"),
        "{}",
        run.stdout
    );
    for r in c.status_json()["recipients"].as_array().unwrap() {
        assert_eq!(r["state"], "failed-permanent");
        assert_eq!(r["attempts"], 1);
        assert_eq!(r["last_code"], 550);
        assert!(
            r["last_reply"]
                .as_str()
                .unwrap()
                .contains("5.1.1 No such user"),
            "{r}"
        );
    }
    let failed = c.run(&["status", "--state", "failed"]).expect(0);
    failed.stdout_has("3 recipients: 3 failed-permanent");
}

#[test]
fn a_421_and_disconnect_stops_the_run_after_three_breaks_and_loses_nothing() {
    let bad = SmtpSink::start(&["-Q", "MAIL"]);
    let c = small_for_smtp();
    use_server(&c, bad.port(), "retries = 5");
    let run = c.run(&["send", "--yes"]).expect(2);
    assert!(
        run.stdout
            .contains("The run stopped: the connection to the mail server failed 3 times in a row"),
        "{}",
        run.stdout
    );
    let states = c.states();
    assert_eq!(states["101"], "failed-temporary");
    assert_eq!(states["492"], "pending");
    assert_eq!(states["607"], "pending");

    let good = SmtpSink::start(&[]);
    use_server(&c, good.port(), "");
    c.run(&["send", "--yes"]).expect(0);
    c.run(&["resend", "--failed", "--yes"]).expect(0);
    assert!(c.states().values().all(|s| s == "delivered"));
    let got = received_by_rcpt(&good.messages());
    assert_eq!(got.len(), 3);
    assert!(got.values().all(|&n| n == 1));
}

#[test]
fn a_silent_disconnect_after_the_message_is_unknown_and_never_resent_by_itself() {
    let sink = SmtpSink::start(&["-q", "."]);
    let c = small_for_smtp();
    use_server(&c, sink.port(), "retries = 5\nmax_connection_failures = 2");
    let run = c.run(&["send", "--yes"]).expect(2);
    run.stdout_has("may or may not have arrived");
    let states = c.states();
    assert_eq!(
        (
            states["101"].as_str(),
            states["492"].as_str(),
            states["607"].as_str()
        ),
        ("unknown", "unknown", "pending")
    );
    assert_eq!(
        c.status_json()["recipients"][0]["attempts"],
        1,
        "an unknown letter is not retried"
    );

    let good = SmtpSink::start(&[]);
    use_server(&c, good.port(), "");
    let run = c.run(&["send", "--yes"]).expect(0);
    assert!(
        run.stdout
            .contains("2 unknown: may have been delivered, not sent again"),
        "{}",
        run.stdout
    );
    assert_eq!(
        good.messages()
            .iter()
            .flat_map(|m| m.rcpt_to.clone())
            .collect::<Vec<_>>(),
        vec!["kommunen@fredericia.dk"]
    );
}

#[test]
fn the_sink_exiting_mid_campaign_loses_nothing_and_a_second_send_finishes() {
    let c = shipped_for_smtp();
    let first = SmtpSink::start(&["-M", "10"]);
    use_server(&c, first.port(), "max_connection_failures = 2");
    c.run(&["send", "--yes"]).expect(2);
    let first_msgs = first.messages();
    let states = c.states();
    let delivered = states.values().filter(|s| *s == "delivered").count();
    let unknown: BTreeSet<String> = states
        .iter()
        .filter(|(_, s)| *s == "unknown")
        .map(|(k, _)| k.clone())
        .collect();
    assert!((9..=10).contains(&delivered), "{states:?}");
    assert!(
        states
            .values()
            .all(|s| ["delivered", "unknown", "pending", "failed-temporary"].contains(&s.as_str())),
        "{states:?}"
    );

    let second = SmtpSink::start(&[]);
    use_server(&c, second.port(), "");
    c.run(&["send", "--yes"]).expect(0);
    c.run(&["resend", "--failed", "--temporary-only", "--yes"])
        .expect(0);
    let addresses = address_of(&c);
    let mut all = received_by_rcpt(&first_msgs);
    for (k, n) in received_by_rcpt(&second.messages()) {
        *all.entry(k).or_default() += n;
    }
    for (key, state) in c.states() {
        let n = all.get(&addresses[&key]).copied().unwrap_or(0);
        if unknown.contains(&key) {
            assert!(n <= 1, "{key} unknown but received {n} times");
        } else {
            assert_eq!(state, "delivered", "{key}");
            assert_eq!(n, 1, "{key} received {n} times");
        }
    }
}

#[test]
fn a_slow_server_times_out_as_a_temporary_failure() {
    let sink = SmtpSink::start(&["-w", "4"]);
    let c = small_for_smtp();
    use_server(&c, sink.port(), "");
    use_server(&c, sink.port(), "command_timeout_secs = 1");
    let started = Instant::now();
    let run = c.run(&["send", "--yes", "--only", "101"]).expect(1);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "the timeout is honoured"
    );
    let r = &c.status_json()["recipients"][0];
    assert_eq!(r["state"], "failed-temporary", "{}", run.stdout);
    assert!(
        r["last_reply"]
            .as_str()
            .unwrap()
            .contains("no answer within 1s"),
        "{r}"
    );
}

#[test]
fn an_unreachable_server_stops_before_anything_is_marked() {
    let port = crate::servers::free_port();
    let c = small_for_smtp();
    use_server(&c, port, "");
    let run = c.run(&["send", "--yes"]).expect(2);
    run.stderr_has("cannot connect to the mail server");
    run.stderr_has("nothing was sent");
    assert!(c.states().values().all(|s| s == "pending"));
}

pub(crate) fn use_tls_server(
    c: &Campaign,
    server: &Aiosmtpd,
    security: &str,
    ca: bool,
    settings: &str,
) {
    let mut defaults = vec![
        ("host", "\"localhost\"".to_string()),
        ("port", server.port().to_string()),
        ("security", format!("\"{security}\"")),
        ("user", "\"rundbrev@uim.dk\"".to_string()),
        ("retries", "0".to_string()),
        ("connect_timeout_secs", "5".to_string()),
        ("command_timeout_secs", "5".to_string()),
    ];
    if ca {
        defaults.push((
            "ca_file",
            format!("\"{}\"", server.ca_cert_path().display()),
        ));
    }
    write_smtp(c, &defaults, settings);
}

pub(crate) const PASSWORD: &str = "Kodeord-med-æøå-ÆØÅ";

pub(crate) fn tls_server(tls: TlsMode) -> Aiosmtpd {
    Aiosmtpd::start(AiosmtpdOptions {
        require_starttls: tls == TlsMode::StartTls,
        tls,
        auth: Some(("rundbrev@uim.dk".into(), PASSWORD.into())),
        ..AiosmtpdOptions::default()
    })
}

#[test]
fn starttls_with_login_delivers_when_the_ca_file_is_set() {
    let server = tls_server(TlsMode::StartTls);
    let mut c = small_for_smtp();
    use_tls_server(&c, &server, "starttls", true, "");
    c.set_env("RUNDBREV_SMTP_PASSWORD", PASSWORD);
    let run = c.run(&["send", "--yes"]).expect(0);
    run.stdout_has("(STARTTLS) as rundbrev@uim.dk");
    assert_eq!(server.messages().len(), 3);
    assert!(c.states().values().all(|s| s == "delivered"));
    // The secret is nowhere: not in the output, the ledger or the config.
    assert!(!run.all().contains(PASSWORD));
    assert!(!String::from_utf8_lossy(&std::fs::read(c.ledger_path()).unwrap()).contains(PASSWORD));
}

#[test]
fn implicit_tls_with_a_password_command_delivers() {
    let server = tls_server(TlsMode::Implicit);
    let c = small_for_smtp();
    c.write("secret.txt", format!("{PASSWORD}\n"));
    use_tls_server(
        &c,
        &server,
        "tls",
        true,
        "password_command = \"cat secret.txt\"",
    );
    c.run(&["send", "--yes", "--only", "492"]).expect(0);
    assert_eq!(server.messages().len(), 1);
    let mail = Mail {
        raw: server.messages()[0].raw.clone(),
    };
    assert_eq!(mail.to(), "Ærø Kommune <post@aeroe.dk>");
}

#[test]
fn an_untrusted_certificate_is_a_clear_error_and_nothing_is_sent() {
    let server = tls_server(TlsMode::StartTls);
    let mut c = small_for_smtp();
    use_tls_server(&c, &server, "starttls", false, "");
    c.set_env("RUNDBREV_SMTP_PASSWORD", PASSWORD);
    let run = c.run(&["send", "--yes"]).expect(2);
    run.stderr_has("certificate is not trusted");
    run.stderr_has("ca_file");
    assert!(server.messages().is_empty());
    assert!(c.states().values().all(|s| s == "pending"));
}

#[test]
fn a_wrong_password_stops_the_run_and_marks_no_one_failed() {
    let server = tls_server(TlsMode::StartTls);
    let mut c = small_for_smtp();
    use_tls_server(&c, &server, "starttls", true, "");
    c.set_env("RUNDBREV_SMTP_PASSWORD", "forkert-æøå");
    let run = c.run(&["send", "--yes"]).expect(2);
    assert!(
        run.stderr
            .contains("the server refused the login for rundbrev@uim.dk"),
        "{}",
        run.stderr
    );
    assert!(
        !run.all().contains("forkert-æøå"),
        "the password is never shown"
    );
    assert!(server.messages().is_empty());
    assert!(c.states().values().all(|s| s == "pending"));
}

#[test]
fn check_smtp_logs_in_and_sends_nothing() {
    let server = tls_server(TlsMode::StartTls);
    let mut c = small_for_smtp();
    use_tls_server(&c, &server, "starttls", true, "");
    c.set_env("RUNDBREV_SMTP_PASSWORD", PASSWORD);
    let run = c.run(&["check-smtp"]).expect(0);
    run.stdout_has("STARTTLS started and the certificate verified, logged in as rundbrev@uim.dk. Nothing was sent.");
    assert!(server.messages().is_empty());
    c.set_env("RUNDBREV_SMTP_PASSWORD", "nope");
    c.run(&["check-smtp"]).expect(2);
}

#[test]
fn test_send_goes_only_to_the_operator_and_does_not_count() {
    let sink = SmtpSink::start(&[]);
    let c = small_for_smtp();
    use_server(&c, sink.port(), "");
    c.edit(
        "config.toml",
        "# bcc = [\"journal@uim.dk\"]",
        "bcc = [\"journal@uim.dk\"]",
    );
    let run = c
        .run(&[
            "test-send",
            "--to",
            "sagsbehandler@uim.dk",
            "--recipient",
            "492",
        ])
        .expect(0);
    assert!(
        run.stdout
            .contains("does not count as Ærø Kommune's delivery"),
        "{}",
        run.stdout
    );
    let msgs = sink.messages();
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        msgs[0].rcpt_to,
        vec!["sagsbehandler@uim.dk"],
        "no copy to the Bcc journal, nothing to the municipality"
    );
    let mail = Mail {
        raw: msgs[0].raw.clone(),
    };
    assert!(mail.text().starts_with("Ærø Kommune\n"));
    assert!(!c.ledger_path().exists() || c.states().values().all(|s| s == "pending"));
}

#[test]
fn bcc_copies_are_announced_and_sent_with_every_letter() {
    let sink = SmtpSink::start(&[]);
    let c = small_for_smtp();
    use_server(&c, sink.port(), "");
    c.edit(
        "config.toml",
        "# bcc = [\"journal@uim.dk\"]",
        "bcc = [\"journal@uim.dk\"]",
    );
    let run = c.run(&["send", "--yes"]).expect(0);
    assert!(
        run.stdout
            .contains("Bcc: journal@uim.dk gets a copy of every letter (3 copies)"),
        "{}",
        run.stdout
    );
    for m in sink.messages() {
        assert_eq!(m.rcpt_to.len(), 2);
        assert_eq!(m.rcpt_to[1], "journal@uim.dk");
        assert!(
            !String::from_utf8_lossy(&m.raw).contains("journal@uim.dk"),
            "Bcc is not in the headers"
        );
    }
}

#[test]
fn a_rate_limit_spaces_the_letters() {
    let sink = SmtpSink::start(&[]);
    let c = shipped_for_smtp();
    use_server(&c, sink.port(), "rate_per_minute = 600");
    let started = Instant::now();
    c.run(&["send", "--yes", "--limit", "11"]).expect(0);
    // 11 letters at 10 a second: the last starts no earlier than 1 s after the first.
    assert!(
        started.elapsed() >= Duration::from_millis(1000),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(sink.count(), 11);
}

fn wait_for_delivered(c: &Campaign, at_least: usize, within: Duration) {
    wait_for_state(c, "delivered", at_least, within);
}

fn wait_for_state(c: &Campaign, state: &str, at_least: usize, within: Duration) {
    let start = Instant::now();
    while start.elapsed() < within {
        if c.ledger_path().exists() {
            let n: i64 = c
                .ledger()
                .query_row(
                    "SELECT count(*) FROM recipients WHERE state = ?1",
                    [state],
                    |r| r.get(0),
                )
                .unwrap_or(0);
            if n as usize >= at_least {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("fewer than {at_least} letters were {state} within {within:?}");
}

#[test]
fn kill_9_before_any_data_went_out_leaves_no_letter_unknown_and_none_twice() {
    // The server holds every RCPT for 10 s: four letters are taken by connections, none gets to
    // DATA, so none has reached its gate.
    let slow = SmtpSink::start(&["-W", "RCPT:10"]);
    let c = shipped_for_smtp();
    use_server(&c, slow.port(), "connections = 4");
    let mut child = c
        .command(&["send", "--yes"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Every letter is in the ledger once the run has begun; the connections then take theirs
    // within milliseconds, and the server holds them for seconds.
    wait_for_state(&c, "pending", 98, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let first = slow.messages();
    assert!(first.is_empty(), "no letter got to DATA: {first:?}");

    let fast = SmtpSink::start(&[]);
    use_server(&c, fast.port(), "connections = 4");
    let run = c.run(&["send", "--yes"]).expect(0);
    let states = c.states();
    assert!(
        states.values().all(|s| s == "delivered"),
        "the letters whose data never went out were sent, not left unknown: {states:?}\n{}",
        run.all()
    );
    let got = received_by_rcpt(&fast.messages());
    let addresses = address_of(&c);
    for (key, address) in &addresses {
        assert_eq!(got.get(address), Some(&1), "{key} gets exactly one letter");
    }
    assert_eq!(got.len(), addresses.len());
}

#[test]
fn kill_9_mid_campaign_loses_nothing_and_sends_no_duplicate() {
    let slow = SmtpSink::start(&["-w", "1"]);
    let c = shipped_for_smtp();
    use_server(&c, slow.port(), "");
    let mut child = c
        .command(&["send", "--yes", "--limit", "12"])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    wait_for_delivered(&c, 3, Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500)); // into the next letter's DATA wait
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let first = slow.messages();

    let fast = SmtpSink::start(&[]);
    use_server(&c, fast.port(), "");
    let run = c.run(&["send", "--yes", "--limit", "12"]).expect(0);
    let states = c.states();
    let addresses = address_of(&c);
    let mut all = received_by_rcpt(&first);
    for (k, n) in received_by_rcpt(&fast.messages()) {
        *all.entry(k).or_default() += n;
    }
    let mut unknown = 0;
    for (key, state) in &states {
        let n = all.get(&addresses[key]).copied().unwrap_or(0);
        match state.as_str() {
            "delivered" => assert_eq!(n, 1, "{key} delivered but received {n} times"),
            "unknown" => {
                unknown += 1;
                assert!(n <= 1)
            }
            "pending" => assert_eq!(n, 0),
            other => panic!("{key} is {other}"),
        }
    }
    assert!(
        unknown <= 1,
        "at most the letter in flight is unknown: {states:?}\n{}",
        run.stdout
    );
}

#[test]
fn ctrl_c_finishes_the_letter_in_flight_and_leaves_the_rest_pending() {
    let slow = SmtpSink::start(&["-w", "1"]);
    let c = shipped_for_smtp();
    use_server(&c, slow.port(), "");
    let child = c
        .command(&["send", "--yes", "--limit", "10"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_delivered(&c, 2, Duration::from_secs(30));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stdout).contains("The run stopped: stopped by Ctrl-C"));
    let states = c.states();
    assert!(
        states.values().all(|s| s == "delivered" || s == "pending"),
        "no letter is left sending or unknown: {states:?}"
    );
    let delivered = states.values().filter(|s| *s == "delivered").count();
    assert_eq!(delivered, slow.count(), "the ledger and the sink agree");
}

#[test]
fn two_thousand_letters_over_four_connections_arrive_exactly_once() {
    let sink = SmtpSink::start(&[]);
    let c = Campaign::shipped();
    let mut csv = String::from("kommunekode,navn,region,email\n");
    for i in 1..=2000 {
        csv.push_str(&format!(
            "{i:05},Modtager {i} Kommune,Region Sjælland,post{i}@modtager{i}.dk\n"
        ));
    }
    c.write("recipients/kommuner.csv", csv);
    use_server(&c, sink.port(), "connections = 4");
    c.run(&["--quiet", "send", "--yes"]).expect(0);
    let got = received_by_rcpt(&sink.messages());
    assert_eq!(got.len(), 2000);
    assert!(
        got.values().all(|&n| n == 1),
        "every recipient exactly once"
    );
    let status = c.status_json();
    let records = status["recipients"].as_array().unwrap();
    assert_eq!(records.len(), 2000);
    for r in records {
        assert_eq!(r["state"], "delivered", "{r}");
        assert_eq!(r["attempts"], 1);
        assert!(
            got.contains_key(r["address"].as_str().unwrap()),
            "the ledger and the sink agree on {r}"
        );
    }
}

#[test]
fn a_corrected_address_is_resent_to_and_recorded_with_accept_changes() {
    let sink = SmtpSink::start(&["-f", "RCPT", "-B", "550 5.1.1 No such user"]);
    let c = small_for_smtp();
    use_server(&c, sink.port(), "");
    c.run(&["send", "--yes", "--only", "492"]).expect(1);
    assert_eq!(c.states()["492"], "failed-permanent");
    c.edit(
        "recipients/kommuner.csv",
        "post@aeroe.dk",
        "kommune@aeroe.dk",
    );
    let run = c.run(&["resend", "--failed", "--yes"]).expect(2);
    run.stderr_has("492 (line 3)");

    let good = SmtpSink::start(&[]);
    use_server(&c, good.port(), "");
    c.run(&["resend", "--failed", "--yes", "--accept-changes"])
        .expect(0);
    assert_eq!(good.messages()[0].rcpt_to, vec!["kommune@aeroe.dk"]);
    let status = c.status_json();
    let r = status["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == "492")
        .unwrap()
        .clone();
    assert_eq!(
        r["address"], "kommune@aeroe.dk",
        "the record says where it really went"
    );
    assert_eq!(r["state"], "delivered");
    // The correction is now the letter as sent: the rest go without --accept-changes.
    c.run(&["send", "--yes"]).expect(0);
    assert!(c.states().values().all(|s| s == "delivered"));
}

#[test]
fn a_refused_sender_stops_the_run_instead_of_failing_every_letter() {
    let sink = SmtpSink::start(&["-f", "MAIL", "-B", "554 5.7.1 Relay access denied"]);
    let c = small_for_smtp();
    use_server(&c, sink.port(), "");
    let run = c.run(&["send", "--yes"]).expect(2);
    assert!(
        run.stdout
            .contains("the server refused the sender uim@uim.dk"),
        "{}",
        run.stdout
    );
    run.stdout_has("Relay access denied");
    assert!(
        c.states().values().all(|s| s == "pending"),
        "{:?}",
        c.states()
    );
}
