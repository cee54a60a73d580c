//! SMTP PIPELINING (RFC 2920) against real servers on 127.0.0.1: `scripted_smtpd.py`, which
//! offers it and misbehaves on demand, Postfix's smtp-sink (which offers it) and aiosmtpd (which
//! does not). What a user checks: every letter arrives exactly once, a refusal in a pipelined
//! group is a refusal (never "may have been delivered") and leaves no archive copy, and a server
//! that hangs up after its 354 gets nothing and the letter can go again.

use std::collections::BTreeMap;

use crate::harness::Campaign;
use crate::servers::{Aiosmtpd, AiosmtpdOptions, Received, Scripted, ScriptedOptions, SmtpSink};
use crate::smtp::{small_for_smtp, use_server};

fn count_by_rcpt(msgs: &[Received]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in msgs {
        for to in &r.rcpt_to {
            *m.entry(to.clone()).or_default() += 1;
        }
    }
    m
}

fn record(c: &Campaign, key: &str) -> serde_json::Value {
    c.status_json()["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no record for {key}"))
        .clone()
}

/// The archive files of the letter to this kommunekode.
fn archived(c: &Campaign, kommunekode: &str) -> Vec<String> {
    c.files("archive")
        .into_iter()
        .filter(|n| n.contains(&format!("_{kommunekode}_")))
        .collect()
}

fn many_recipients(c: &Campaign, n: usize) {
    let mut csv = String::from("kommunekode,navn,region,email\n");
    for i in 1..=n {
        csv.push_str(&format!(
            "{i:05},Modtager {i} Kommune,Region Sjælland,post{i}@modtager{i}.dk\n"
        ));
    }
    c.write("recipients/kommuner.csv", csv);
}

#[test]
fn smtp_pipelined_letters_arrive_exactly_once_each_envelope_in_one_write() {
    let server = Scripted::start(ScriptedOptions::default());
    let c = Campaign::shipped();
    many_recipients(&c, 40);
    use_server(&c, server.port(), "connections = 2");
    c.run(&["send", "--yes"]).expect(0);

    let got = server.messages();
    let by_rcpt = count_by_rcpt(&got);
    assert_eq!(by_rcpt.len(), 40);
    assert!(by_rcpt.values().all(|&n| n == 1), "{by_rcpt:?}");
    assert!(c.states().values().all(|s| s == "delivered"));
    // The server received exactly the bytes the archive keeps (dot-stuffing undone).
    for m in &got {
        let key = &m.rcpt_to[0]["post".len()..m.rcpt_to[0].find('@').unwrap()];
        let files = archived(&c, &format!("{:05}", key.parse::<u32>().unwrap()));
        assert_eq!(files.len(), 1, "{files:?}");
        let kept = std::fs::read(c.path(&format!("archive/{}", files[0]))).unwrap();
        assert_eq!(kept, m.raw, "the server got the archived bytes");
    }
    // MAIL FROM, RCPT TO and DATA of each letter came in one read: pipelined.
    let groups: Vec<String> = server
        .command_reads()
        .into_iter()
        .filter(|r| r.contains("MAIL"))
        .collect();
    assert_eq!(groups.len(), 40, "{groups:?}");
    assert!(
        groups.iter().all(|g| g == "MAIL RCPT DATA"),
        "every envelope as one group: {groups:?}"
    );
}

#[test]
fn smtp_pipelined_550_at_rcpt_fails_that_letter_for_good_and_the_next_goes_on_the_same_connection()
{
    let server = Scripted::start(ScriptedOptions {
        refuse: vec![(
            "post@aeroe.dk".into(),
            "550 5.1.1 <post@aeroe.dk>: Recipient address rejected: User unknown".into(),
        )],
        ..Default::default()
    });
    let c = small_for_smtp();
    use_server(&c, server.port(), "retries = 3");
    let run = c.run(&["send", "--yes"]).expect(1);
    run.stdout_has("1 letter was not delivered (0 for now, 1 refused for good)");

    let r = record(&c, "492");
    assert_eq!(r["state"], "failed-permanent", "{r}");
    assert_eq!(r["attempts"], 1, "a refusal is not retried");
    assert_eq!(r["last_code"], 550);
    assert!(
        r["last_reply"].as_str().unwrap().contains("User unknown"),
        "{r}"
    );
    assert_eq!(record(&c, "101")["state"], "delivered");
    assert_eq!(record(&c, "607")["state"], "delivered");
    assert!(
        archived(&c, "492").is_empty(),
        "a refused letter is not in the archive: {:?}",
        c.files("archive")
    );
    assert_eq!(archived(&c, "607").len(), 1);
    let got = count_by_rcpt(&server.messages());
    assert_eq!(got.get("post@aeroe.dk"), None);
    assert_eq!(got.len(), 2);
    assert_eq!(
        server.sessions(),
        1,
        "the letters after the refused one went over the same connection"
    );
}

#[test]
fn smtp_pipelined_refused_bcc_copy_fails_every_letter_and_delivers_nothing() {
    // The recipient is accepted, the Bcc copy refused: the server still answers DATA with 354,
    // and the letter must not go to anyone (as when the commands went one at a time).
    let server = Scripted::start(ScriptedOptions {
        refuse: vec![(
            "journal@uim.dk".into(),
            "550 5.7.1 Journal is closed".into(),
        )],
        ..Default::default()
    });
    let c = small_for_smtp();
    use_server(&c, server.port(), "max_connection_failures = 2");
    c.edit(
        "config.toml",
        "# bcc = [\"journal@uim.dk\"]",
        "bcc = [\"journal@uim.dk\"]",
    );
    let run = c.run(&["send", "--yes"]).expect(1);
    run.stdout_has("3 letters were not delivered (0 for now, 3 refused for good)");
    for key in ["101", "492", "607"] {
        let r = record(&c, key);
        assert_eq!(r["state"], "failed-permanent", "{r}");
        assert!(
            r["last_reply"]
                .as_str()
                .unwrap()
                .contains("Journal is closed"),
            "{r}"
        );
    }
    assert!(server.messages().is_empty(), "nothing was delivered");
    assert!(c.files("archive").is_empty(), "{:?}", c.files("archive"));
}

#[test]
fn smtp_pipelined_450_at_rcpt_is_temporary_and_retried_as_configured() {
    let server = Scripted::start(ScriptedOptions {
        refuse: vec![("post@aeroe.dk".into(), "450 4.2.1 Mailbox busy".into())],
        ..Default::default()
    });
    let c = small_for_smtp();
    use_server(&c, server.port(), "retries = 2");
    let run = c.run(&["send", "--yes"]).expect(1);
    run.stdout_has("1 letter was not delivered (1 for now, 0 refused for good)");
    let r = record(&c, "492");
    assert_eq!(r["state"], "failed-temporary", "{r}");
    assert_eq!(r["attempts"], 3, "the first try and two retries");
    assert_eq!(r["last_code"], 450);
    assert!(archived(&c, "492").is_empty());
    assert_eq!(record(&c, "101")["state"], "delivered");
    assert_eq!(count_by_rcpt(&server.messages()).get("post@aeroe.dk"), None);
}

#[test]
fn smtp_a_server_that_hangs_up_after_354_gets_nothing_and_the_letter_goes_again_once() {
    for no_pipelining in [false, true] {
        let server = Scripted::start(ScriptedOptions {
            no_pipelining,
            drop_after_354: vec![("post@aeroe.dk".into(), 1)],
            ..Default::default()
        });
        let c = small_for_smtp();
        use_server(&c, server.port(), "retries = 0");
        let run = c.run(&["send", "--yes"]).expect(1);
        assert_eq!(server.drops(), 1, "{}", server.log());
        let r = record(&c, "492");
        assert_eq!(
            r["state"], "failed-temporary",
            "nothing of the letter went out, so it is not unknown (pipelining {}): {r}\n{}",
            !no_pipelining, run.stdout
        );
        assert!(archived(&c, "492").is_empty());
        assert_eq!(record(&c, "607")["state"], "delivered");

        c.run(&["resend", "--failed", "--yes"]).expect(0);
        assert!(c.states().values().all(|s| s == "delivered"));
        let got = count_by_rcpt(&server.messages());
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got.values().all(|&n| n == 1), "no duplicate: {got:?}");
        assert_eq!(archived(&c, "492").len(), 1);
    }
}

#[test]
fn smtp_without_pipelining_the_commands_go_one_at_a_time_and_every_letter_arrives() {
    let scripted = Scripted::start(ScriptedOptions {
        no_pipelining: true,
        ..Default::default()
    });
    let c = small_for_smtp();
    use_server(&c, scripted.port(), "");
    c.run(&["send", "--yes"]).expect(0);
    let got = count_by_rcpt(&scripted.messages());
    assert_eq!(got.len(), 3);
    assert!(got.values().all(|&n| n == 1));
    let reads: Vec<String> = scripted
        .command_reads()
        .into_iter()
        .filter(|r| !r.starts_with("EHLO") && !r.starts_with("QUIT"))
        .collect();
    assert!(
        reads.iter().all(|r| !r.contains(' ')),
        "one command per read: {reads:?}"
    );

    // aiosmtpd does not offer PIPELINING either.
    let aiosmtpd = Aiosmtpd::start(AiosmtpdOptions::default());
    let c = small_for_smtp();
    use_server(&c, aiosmtpd.port(), "connections = 2");
    c.run(&["send", "--yes"]).expect(0);
    let got = count_by_rcpt(&aiosmtpd.messages());
    assert_eq!(got.len(), 3);
    assert!(got.values().all(|&n| n == 1));
    assert!(c.states().values().all(|s| s == "delivered"));
}

#[test]
fn smtp_sink_with_and_without_pipelining_counts_every_letter_once() {
    for flags in [&[][..], &["-p"][..]] {
        let sink = SmtpSink::start_counting(flags);
        let c = Campaign::shipped();
        many_recipients(&c, 300);
        use_server(&c, sink.port(), "connections = 4");
        c.run(&["--quiet", "send", "--yes"]).expect(0);
        assert_eq!(sink.count(), 300, "smtp-sink {flags:?}");
        let states = c.states();
        assert_eq!(states.len(), 300);
        assert!(states.values().all(|s| s == "delivered"));
    }
}
