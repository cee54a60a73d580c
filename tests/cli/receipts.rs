//! Receipts: real bounces from many mail systems read by `receipts inspect`, and bounces,
//! delivery reports and replies to letters of a real outbox send read into the ledger by
//! `receipts import`, as a clerk would check them with `status`, `report` and `resend`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::harness::Campaign;

/// Real bounces from many mail systems (the sisimai project's set, BSD licence, with its licence
/// in the folder), kept in the repository; `BOUNCE_FIXTURES` names another place.
fn fixtures() -> PathBuf {
    let dir = std::env::var_os("BOUNCE_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bounces"));
    assert!(
        dir.join("expected.json").is_file(),
        "the bounce fixtures are missing: expected {} with expected.json and the .eml files beside it (or set BOUNCE_FIXTURES to their folder)",
        dir.display()
    );
    dir
}

fn class(status: &str) -> Option<char> {
    status
        .chars()
        .next()
        .filter(|c| matches!(c, '2' | '4' | '5'))
}

#[test]
fn inspect_reads_the_recipients_and_status_class_of_real_bounces() {
    let dir = fixtures();
    let expected: BTreeMap<String, Vec<Value>> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap()).unwrap();
    let mut args = vec![
        "receipts".to_string(),
        "inspect".into(),
        "--format".into(),
        "json".into(),
    ];
    for name in expected.keys() {
        args.push(dir.join(name).display().to_string());
    }
    // No campaign here: inspect needs none, and touches no ledger.
    let c = Campaign::empty();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = c.run(&args).expect(0);
    assert!(c.files(".").is_empty(), "inspect wrote {:?}", c.files("."));
    let messages: Vec<Value> = serde_json::from_str(&run.stdout).unwrap();

    // One file may hold several messages (an mbox): its recipients in order.
    let mut got: BTreeMap<String, (Vec<String>, Vec<Value>)> = BTreeMap::new();
    for m in &messages {
        let name = Path::new(m["file"].as_str().unwrap())
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let entry = got.entry(name).or_default();
        entry.0.push(m["kind"].as_str().unwrap().to_string());
        entry
            .1
            .extend(m["recipients"].as_array().unwrap().iter().cloned());
    }

    let (mut right, mut total) = (0, 0);
    let mut wrong = Vec::new();
    for (file, want) in &expected {
        let (kinds, recipients) = got
            .get(file)
            .unwrap_or_else(|| panic!("inspect said nothing about {file}"));
        let raw = String::from_utf8_lossy(&std::fs::read(dir.join(file)).unwrap()).to_lowercase();
        let automatic = want
            .iter()
            .all(|w| matches!(w["reason"].as_str(), Some("vacation" | "feedback")));
        if automatic {
            // Automatic replies and feedback reports are never failures.
            assert!(
                recipients.iter().all(|r| r["action"] != "failed")
                    && kinds.iter().all(|k| k != "bounce" && k != "delay"),
                "{file} is an automatic reply or feedback report, but inspect says {kinds:?} {recipients:?}"
            );
        }
        for (i, w) in want.iter().enumerate() {
            total += 1;
            let want_class = class(w["status"].as_str().unwrap());
            // No failure is ever reported as delivered.
            if matches!(want_class, Some('4' | '5')) {
                assert!(
                    recipients.iter().all(|r| !matches!(
                        r["action"].as_str(),
                        Some("delivered" | "relayed" | "expanded")
                    )) && kinds.iter().all(|k| k != "delivered" && k != "relayed"),
                    "{file} reports a failure, but inspect says {kinds:?} {recipients:?}"
                );
            }
            // The address must be one the message itself names.
            let named = |a: &str| a.contains('@') && raw.contains(&a.to_lowercase());
            let ok = if automatic {
                true
            } else {
                let r = recipients.get(i);
                recipients.len() == want.len()
                    && r.is_some_and(|r| {
                        r["address"].as_str().is_some_and(named)
                            && class(r["status"].as_str().unwrap_or("")) == want_class
                    })
            };
            if ok {
                right += 1;
            } else {
                wrong.push(format!(
                    "{file} #{i}: want {} ({}), got {:?}",
                    w["status"],
                    w["reason"],
                    recipients
                        .iter()
                        .map(|r| format!("{} {}", r["address"], r["status"]))
                        .collect::<Vec<_>>()
                ));
            }
        }
    }
    let share = right as f64 / total as f64;
    println!(
        "receipts inspect: {right} of {total} fixture recipients ({:.1}%) have the right address and status class",
        share * 100.0
    );
    assert!(
        share >= 0.9,
        "only {right} of {total} right:\n{}",
        wrong.join("\n")
    );
}

/// xtext (RFC 3461), as the sending side writes ENVID.
fn xtext(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
                (b as char).to_string()
            } else {
                format!("+{b:02X}")
            }
        })
        .collect()
}

/// A Postfix-style DSN (RET=HDRS) about one recipient.
struct Dsn<'a> {
    envid: Option<&'a str>,
    recipient: &'a str,
    action: &'a str,
    status: &'a str,
    returned_id: Option<&'a str>,
    message_id: &'a str,
}

impl Dsn<'_> {
    fn text(&self) -> String {
        let envid = self
            .envid
            .map(|e| format!("Original-Envelope-Id: {}\r\n", xtext(e)))
            .unwrap_or_default();
        let returned = self
            .returned_id
            .map(|id| {
                format!(
                    "--B\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: uim@uim.dk\r\nTo: {}\r\nMessage-ID: <{id}>\r\nSubject: Rundbrev\r\n\r\n",
                    self.recipient
                )
            })
            .unwrap_or_default();
        format!(
            "From: MAILER-DAEMON@relay.uim.dk (Mail Delivery System)\r\n\
To: uim@uim.dk\r\n\
Subject: Delivery Status Notification\r\n\
Date: Mon, 29 Jun 2020 10:03:00 +0200\r\n\
Message-ID: <{mid}>\r\n\
Auto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\
\r\n\
--B\r\n\
Content-Type: text/plain\r\n\
\r\n\
This is the mail system at host relay.uim.dk.\r\n\
\r\n\
--B\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; relay.uim.dk\r\n\
{envid}\r\n\
Final-Recipient: rfc822; {rcpt}\r\n\
Original-Recipient: rfc822;{rcpt}\r\n\
Action: {action}\r\n\
Status: {status}\r\n\
Remote-MTA: dns; mx.kommune.dk\r\n\
Diagnostic-Code: smtp; {code} {status} <{rcpt}>: Recipient address rejected\r\n\
\r\n\
{returned}--B--\r\n",
            mid = self.message_id,
            rcpt = self.recipient,
            action = self.action,
            status = self.status,
            code = match self.status.chars().next() {
                Some('2') => "250",
                Some('4') => "450",
                _ => "550",
            },
        )
    }
}

/// key → (address, Message-ID) from `status --format json`.
fn letters(c: &Campaign) -> BTreeMap<String, (String, String)> {
    c.status_json()["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["key"].as_str().unwrap().to_string(),
                (
                    r["address"].as_str().unwrap().to_string(),
                    r["message_id"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

fn row(c: &Campaign, key: &str) -> Value {
    c.status_json()["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"] == key)
        .unwrap_or_else(|| panic!("no recipient {key}"))
        .clone()
}

/// The reports that come back after a send of the shipped campaign: Læsø's mailbox does not
/// exist (matched by ENVID), Ærø's server confirms delivery (by the returned Message-ID) and
/// replies automatically, Fanø's delivery is delayed (matched by address only), and one report
/// names a letter of another campaign.
fn reports(c: &Campaign) -> Vec<(String, String)> {
    let l = letters(c);
    let (laesoe, laesoe_id) = &l["825"];
    let (aeroe, aeroe_id) = &l["492"];
    let (fanoe, _) = &l["563"];
    vec![
        (
            "laesoe-bounce.eml".into(),
            Dsn {
                envid: Some(laesoe_id),
                recipient: laesoe,
                action: "failed",
                status: "5.1.1",
                returned_id: None,
                message_id: "b1@relay.uim.dk",
            }
            .text(),
        ),
        (
            "aeroe-delivered.eml".into(),
            Dsn {
                envid: None,
                recipient: aeroe,
                action: "delivered",
                status: "2.0.0",
                returned_id: Some(aeroe_id),
                message_id: "b2@relay.uim.dk",
            }
            .text(),
        ),
        (
            "fanoe-delay.eml".into(),
            Dsn {
                envid: None,
                recipient: fanoe,
                action: "delayed",
                status: "4.4.1",
                returned_id: None,
                message_id: "b3@relay.uim.dk",
            }
            .text(),
        ),
        (
            "forged.eml".into(),
            Dsn {
                envid: Some("rundbrev.another-campaign.1286555.492.0123456789abcdef@uim.dk"),
                recipient: aeroe,
                action: "failed",
                status: "5.1.1",
                returned_id: None,
                message_id: "b4@elsewhere.example",
            }
            .text(),
        ),
        (
            "aeroe-ferie.eml".into(),
            format!(
                "From: Borgerservice <{aeroe}>\r\nTo: uim@uim.dk\r\nSubject: Automatisk svar: Rundbrev\r\nDate: Mon, 29 Jun 2020 10:05:00 +0200\r\nMessage-ID: <ooo1@aeroe>\r\nAuto-Submitted: auto-replied\r\nIn-Reply-To: <{aeroe_id}>\r\n\r\nJeg er på ferie til 1. august.\r\n"
            ),
        ),
    ]
}

#[test]
fn imported_reports_mark_letters_bounced_or_confirmed_and_resend_waits_for_a_corrected_address() {
    let c = Campaign::shipped();
    c.run(&["send"]).expect(0);
    let sent = c.files("outbox").len();
    assert_eq!(sent, 98);
    for (name, text) in reports(&c) {
        c.write(&format!("returned/{name}"), text);
    }

    let run = c.run(&["receipts", "import", "returned"]).expect(0);
    run.stdout_has("825 postkasse@laesoe.dk.invalid: now bounced (was delivered): the municipality's mail server says the mailbox does not exist (5.1.1)");
    run.stderr_has("another campaign");
    run.stdout_has("Read 5 messages: 1 bounced");

    let laesoe = row(&c, "825");
    assert_eq!(laesoe["state"], "bounced");
    assert_eq!(laesoe["receipt"], "bounced");
    assert_eq!(
        laesoe["receipt_detail"],
        "the municipality's mail server says the mailbox does not exist (5.1.1)"
    );
    let aeroe = row(&c, "492");
    assert_eq!(
        aeroe["state"], "delivered",
        "the forged report changed nothing"
    );
    assert_eq!(aeroe["receipt"], "confirmed");
    assert_eq!(
        aeroe["receipt_detail"],
        "delivered to the municipality's mail server at 10:03 on 2020-06-29, by its own report"
    );
    let fanoe = row(&c, "563");
    assert_eq!(
        (fanoe["state"].as_str(), fanoe["receipt"].as_str()),
        (Some("delivered"), Some("delayed"))
    );
    assert_eq!(row(&c, "101")["receipt"], Value::Null);

    // status, report (CSV and HTML) carry it.
    let table = c.run(&["status"]).expect(0);
    table.stdout_has("bounced");
    table.stdout_has("1 bounced");
    let only = c
        .run(&["status", "--state", "bounced", "--format", "csv"])
        .expect(0);
    assert_eq!(only.stdout.lines().count(), 2, "{}", only.stdout);
    c.run(&["report"]).expect(0);
    let csv = c.read("report/leveringsrapport-uim-2020-aeresrelaterede-konflikter.csv");
    let laesoe_line = csv.lines().find(|l| l.starts_with("825;")).unwrap();
    // The case report is Danish.
    assert!(laesoe_line.contains(";returneret;"), "{laesoe_line}");
    assert!(
        laesoe_line.ends_with(";kommunens mailserver siger, at postkassen ikke findes (5.1.1)"),
        "{laesoe_line}"
    );
    let header = csv.lines().next().unwrap();
    assert!(header.ends_with(";message_id;kvittering"), "{header}");
    let html = c.read("report/leveringsrapport-uim-2020-aeresrelaterede-konflikter.html");
    assert!(
        html.contains("kommunens mailserver siger, at postkassen ikke findes (5.1.1)"),
        "the HTML report names the reason"
    );

    // Importing the same messages again changes nothing and stores nothing twice.
    let count = |c: &Campaign| -> i64 {
        c.ledger()
            .query_row("SELECT count(*) FROM receipts", [], |r| r.get(0))
            .unwrap()
    };
    let stored = count(&c);
    assert_eq!(stored, 4, "four receipts matched a letter");
    // Each by the strongest key it carried.
    let matched: Vec<(String, String, String)> = {
        let db = c.ledger();
        let mut stmt = db
            .prepare("SELECT key, kind, matched_by FROM receipts ORDER BY key, kind")
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    let matched: Vec<(&str, &str, &str)> = matched
        .iter()
        .map(|(a, b, c)| (a.as_str(), b.as_str(), c.as_str()))
        .collect();
    assert_eq!(
        matched,
        [
            ("492", "auto-reply", "message-id"),
            ("492", "delivered", "message-id"),
            ("563", "delay", "address"),
            ("825", "bounce", "envid"),
        ]
    );
    let before = c.status_json();
    c.run(&["receipts", "import", "returned"])
        .expect(0)
        .stdout_has("4 already recorded before");
    assert_eq!(count(&c), stored);
    assert_eq!(c.status_json()["recipients"], before["recipients"]);

    // A bounced letter is not sent to the same address again.
    let run = c.run(&["resend", "--failed"]).expect(0);
    run.stdout_has("Nothing to send");
    assert!(run.all().contains("bounced back"), "{}", run.all());
    assert_eq!(c.files("outbox").len(), sent);

    // Once the address is corrected, resend --failed takes it, and only it.
    c.edit(
        "recipients/kommuner.csv",
        "postkasse@laesoe.dk.invalid",
        "kommune@laesoe.dk.invalid",
    );
    c.run(&["resend", "--failed"])
        .expect(2)
        .stderr_has("--accept-changes");
    c.run(&["resend", "--failed", "--accept-changes"])
        .expect(0)
        .stdout_has("About to send 1 letter");
    // The outbox names a letter by Akt-id and key: the new one takes the old one's place.
    let outbox = c.files("outbox");
    assert_eq!(outbox.len(), sent);
    let file = outbox.iter().find(|f| f.contains("_825_")).unwrap();
    let mail = crate::harness::Mail::from_file(&c.path(&format!("outbox/{file}")));
    assert!(
        mail.to().contains("kommune@laesoe.dk.invalid"),
        "{}",
        mail.to()
    );
    let laesoe = row(&c, "825");
    assert_eq!(laesoe["state"], "delivered");
    assert_eq!(laesoe["attempts"], 2);
    assert_eq!(laesoe["address"], "kommune@laesoe.dk.invalid");
    assert_eq!(
        laesoe["receipt"],
        Value::Null,
        "the bounce was for the old address"
    );

    // The old bounce read again does not undo the delivery to the new address.
    c.run(&["receipts", "import", "returned/laesoe-bounce.eml"])
        .expect(0);
    assert_eq!(row(&c, "825")["state"], "delivered");
}

#[test]
fn a_report_settles_a_letter_whose_outcome_was_unknown() {
    let c = Campaign::small();
    c.run(&["send"]).expect(0);
    let l = letters(&c);
    // As after a run that stopped while handing the letter over.
    c.ledger()
        .execute(
            "UPDATE recipients SET state = 'unknown' WHERE key = '492'",
            [],
        )
        .unwrap();
    let (address, id) = &l["492"];
    c.write(
        "in/relayed.eml",
        Dsn {
            envid: Some(id),
            recipient: address,
            action: "relayed",
            status: "2.0.0",
            returned_id: None,
            message_id: "r1@relay",
        }
        .text(),
    );
    c.run(&["receipts", "import", "in"])
        .expect(0)
        .stdout_has("now delivered (was unknown)");
    assert_eq!(row(&c, "492")["state"], "delivered");
    assert_eq!(row(&c, "492")["receipt"], "relayed");
}

#[test]
fn a_folder_an_mbox_and_a_maildir_give_the_same_record() {
    let kinds = ["folder", "mbox", "maildir"];
    let mut results = Vec::new();
    for kind in kinds {
        let c = Campaign::shipped();
        c.run(&["send"]).expect(0);
        let reports = reports(&c);
        let path = match kind {
            "folder" => {
                for (name, text) in &reports {
                    c.write(&format!("in/{name}"), text);
                }
                "in"
            }
            "mbox" => {
                let mut mbox = String::new();
                for (_, text) in &reports {
                    mbox.push_str("From MAILER-DAEMON  Mon Jun 29 10:03:00 2020\n");
                    mbox.push_str(&text.replace("\r\n", "\n"));
                    mbox.push('\n');
                }
                c.write("Bounces.mbox", mbox);
                "Bounces.mbox"
            }
            _ => {
                std::fs::create_dir_all(c.path("Maildir/tmp")).unwrap();
                for (i, (_, text)) in reports.iter().enumerate() {
                    let sub = if i % 2 == 0 { "cur" } else { "new" };
                    c.write(&format!("Maildir/{sub}/{i}.host:2,S"), text);
                }
                "Maildir"
            }
        };
        c.run(&["receipts", "import", path])
            .expect(0)
            .stdout_has("Read 5 messages");
        let status = c.status_json();
        let receipts: Vec<(String, String, String, String)> = {
            let db = c.ledger();
            let mut stmt = db
                .prepare("SELECT key, recipient, kind, action FROM receipts ORDER BY key, kind")
                .unwrap();
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        assert_eq!(receipts.len(), 4, "{kind}: {receipts:?}");
        // The same messages from another store are the same messages: stored once.
        if kind == "mbox" {
            for (name, text) in &reports {
                c.write(&format!("again/{name}"), text);
            }
            c.run(&["receipts", "import", "again"]).expect(0);
            let n: i64 = c
                .ledger()
                .query_row("SELECT count(*) FROM receipts", [], |r| r.get(0))
                .unwrap();
            assert_eq!(
                n, 4,
                "the .eml copies of the mbox's messages were stored again"
            );
        }
        results.push((status["recipients"].clone(), receipts));
    }
    assert_eq!(results[0], results[1], "a folder and an mbox differ");
    assert_eq!(results[0], results[2], "a folder and a Maildir differ");
}

#[test]
fn junk_oversize_and_unmatched_messages_are_noted_and_change_nothing() {
    let c = Campaign::small();
    c.edit(
        "config.toml",
        "[transport]",
        "[receipts]\nmax_message_size = 4000\n\n[transport]",
    );
    c.run(&["send"]).expect(0);
    let before = c.status_json();
    c.write(
        "in/junk.eml",
        b"\x00\x01\x02\xff\xfe binary junk\x00".as_slice(),
    );
    c.write(
        "in/big.eml",
        format!("From: a@b.dk\nSubject: x\n\n{}\n", "x".repeat(5000)),
    );
    c.write("in/broken.eml", "From: MAILER-DAEMON@x.dk\nSubject: Undelivered Mail\nContent-Type: multipart/report; boundary=\"never-closed\"\n\n--never-closed\nContent-Type: message/delivery-status\n\nFinal-Recipient: rfc822; someone@nowhere.example\nAction: failed\nStatus: 5.1.1\n");
    c.write(
        "in/newsletter.eml",
        "From: news@shop.example\nTo: uim@uim.dk\nSubject: Tilbud\n\nKøb nu.\n",
    );
    let run = c.run(&["receipts", "import", "in"]).expect(0);
    run.stderr_has("junk.eml: cannot be read");
    run.stderr_has("big.eml: it is 4.9 KB, more than the 3.9 KB allowed ([receipts] max_message_size); skipped");
    run.stderr_has("someone@nowhere.example not matched, nothing changed: no letter of this campaign went to someone@nowhere.example");
    run.stderr_has("newsletter.eml: not a bounce");
    run.stdout_has("Read 4 messages: 0 bounced, 0 recorded");
    assert_eq!(c.status_json()["recipients"], before["recipients"]);
    let n: i64 = c
        .ledger()
        .query_row("SELECT count(*) FROM receipts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn import_before_anything_was_sent_says_so() {
    let c = Campaign::small();
    c.write("in/x.eml", "From: a@b.dk\n\nx\n");
    c.run(&["receipts", "import", "in"])
        .expect(2)
        .stderr_has("no letter of campaign uim-2020-aeresrelaterede-konflikter has been sent");
    c.run(&["receipts", "import", "nowhere"])
        .expect(2)
        .stderr_has("nowhere: there is no such file or folder");
}

#[test]
fn a_reply_and_a_read_receipt_are_shown_with_sender_and_date() {
    let c = Campaign::small();
    c.run(&["send"]).expect(0);
    let l = letters(&c);
    let (_, kk_id) = &l["101"];
    let (aeroe, aeroe_id) = &l["492"];
    c.write(
        "in/reply.eml",
        format!("From: Jens Hansen <jens.hansen@kk.dk>\r\nTo: uim@uim.dk\r\nSubject: SV: Øget opmærksomhed\r\nDate: Tue, 30 Jun 2020 09:15:00 +0200\r\nMessage-ID: <svar1@kk.dk>\r\nIn-Reply-To: <{kk_id}>\r\nReferences: <{kk_id}>\r\n\r\nTak for brevet.\r\n"),
    );
    c.write(
        "in/read.eml",
        format!("From: {aeroe}\r\nTo: uim@uim.dk\r\nSubject: Læst: Øget opmærksomhed\r\nDate: Mon, 29 Jun 2020 11:00:00 +0200\r\nMessage-ID: <mdn1@aeroe>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=disposition-notification; boundary=\"M\"\r\n\r\n--M\r\nContent-Type: text/plain\r\n\r\nLæst.\r\n--M\r\nContent-Type: message/disposition-notification\r\n\r\nReporting-UA: mail.aeroe.dk; Outlook\r\nFinal-Recipient: rfc822;{aeroe}\r\nOriginal-Message-ID: <{aeroe_id}>\r\nDisposition: manual-action/MDN-sent-manually; displayed\r\n\r\n--M--\r\n"),
    );
    c.run(&["receipts", "import", "in"])
        .expect(0)
        .stdout_has("Read 2 messages: 0 bounced, 2 recorded");
    let kk = row(&c, "101");
    assert_eq!(
        (kk["state"].as_str(), kk["receipt"].as_str()),
        (Some("delivered"), Some("replied"))
    );
    assert_eq!(
        kk["receipt_detail"],
        "replied by jens.hansen@kk.dk at 09:15 on 2020-06-30"
    );
    let aeroe = row(&c, "492");
    assert_eq!(aeroe["receipt"], "read");
    assert!(aeroe["receipt_detail"]
        .as_str()
        .unwrap()
        .contains("11:00 on 2020-06-29"));
    assert_eq!(row(&c, "607")["receipt"], Value::Null);
}

#[test]
fn cut_off_and_garbled_messages_are_read_without_crashing() {
    let dir = fixtures();
    let c = Campaign::empty();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "eml") {
            continue;
        }
        let raw = std::fs::read(&path).unwrap();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        // Cut off in the middle of the headers, of a MIME part, and near the end.
        for (i, cut) in [raw.len() / 7, raw.len() / 2, raw.len() - raw.len() / 20]
            .into_iter()
            .enumerate()
        {
            c.write(&format!("bad/{name}-cut{i}.eml"), &raw[..cut]);
            n += 1;
        }
        // Every boundary line broken.
        let garbled = String::from_utf8_lossy(&raw).replace("\n--", "\n-\u{0}-");
        c.write(&format!("bad/{name}-garbled.eml"), garbled);
        n += 1;
    }
    let run = c
        .run(&["receipts", "inspect", "--format", "json", "bad"])
        .expect(0);
    let messages: Vec<Value> = serde_json::from_str(&run.stdout).unwrap();
    // Every file is answered for (an mbox file may hold more than one message).
    let files: std::collections::BTreeSet<&str> = messages
        .iter()
        .map(|m| m["file"].as_str().unwrap())
        .collect();
    assert_eq!(files.len(), n);
}

#[test]
fn a_report_is_matched_by_the_relays_queue_id_when_it_names_no_letter() {
    let c = Campaign::small();
    c.run(&["send"]).expect(0);
    // As the relay answered the hand-over.
    c.ledger()
        .execute(
            "UPDATE recipients SET last_reply = '250 2.0.0 Ok: queued as 4dLx7Q2kQfz9vB' WHERE key = '492'",
            [],
        )
        .unwrap();
    let (address, _) = &letters(&c)["492"];
    let dsn = Dsn {
        envid: None,
        recipient: address,
        action: "failed",
        status: "5.2.2",
        returned_id: None,
        message_id: "q1@relay",
    }
    .text()
    .replace(
        "Reporting-MTA: dns; relay.uim.dk\r\n",
        "Reporting-MTA: dns; relay.uim.dk\r\nX-Postfix-Queue-ID: 4dLx7Q2kQfz9vB\r\n",
    );
    c.write("in/full.eml", dsn);
    c.run(&["receipts", "import", "in"])
        .expect(0)
        .stdout_has("now bounced (was delivered): the municipality's mail server says the mailbox is full (5.2.2)");
    let by: String = c
        .ledger()
        .query_row("SELECT matched_by FROM receipts", [], |r| r.get(0))
        .unwrap();
    assert_eq!(by, "queue-id");
}

#[test]
fn a_bounce_matched_by_address_alone_changes_a_letter_only_when_it_is_dated_after_the_send() {
    let c = Campaign::shipped();
    c.run(&["send"]).expect(0);
    let l = letters(&c);
    let bounce = |key: &str, id: &str| {
        Dsn {
            envid: None,
            recipient: &l[key].0,
            action: "failed",
            status: "5.1.1",
            returned_id: None,
            message_id: id,
        }
        .text()
    };
    // An old bounce, from before this campaign's letters went out (say from an earlier
    // mailing), names Læsø's address and nothing else: it must not undo the delivery.
    let old = bounce("825", "old@relay.uim.dk").replace(
        "Mon, 29 Jun 2020 10:03:00 +0200",
        "Fri, 26 Jun 2020 09:00:00 +0200",
    );
    c.write("returned/old.eml", old);
    // One dated after the send, about Fanø, still counts by the address.
    c.write("returned/new.eml", bounce("563", "new@relay.uim.dk"));
    c.run(&["receipts", "import", "returned"]).expect(0);
    assert_eq!(row(&c, "825")["state"], "delivered");
    assert_eq!(row(&c, "563")["state"], "bounced");
}
