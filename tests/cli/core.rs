//! The core on the built-in outbox: merge, stamp, preview, send, status, and bad input.

use std::collections::BTreeSet;

use crate::harness::{Campaign, Mail, SMALL_CSV};

fn outbox_mail(c: &Campaign, prefix: &str) -> Mail {
    let name = c
        .files("outbox")
        .into_iter()
        .find(|f| f.starts_with(prefix))
        .unwrap_or_else(|| {
            panic!(
                "no outbox file starting with {prefix}: {:?}",
                c.files("outbox")
            )
        });
    Mail::from_file(&c.path(&format!("outbox/{name}")))
}

#[test]
fn the_shipped_campaign_sends_all_98_letters_to_the_outbox() {
    let c = Campaign::shipped();
    let run = c.run(&["send"]).expect(0);
    run.stdout_has("About to send 98 letters via the outbox folder outbox, from Udlændinge- og Integrationsministeriet <uim@uim.dk>.");
    run.stdout_has("Delivered 98 letters to outbox");
    run.stdout_has("rundbrev status");

    let files = c.files("outbox");
    assert_eq!(files.len(), 98, "{files:?}");
    assert!(files.iter().all(|f| f.ends_with(".eml")));
    assert!(
        files.contains(&"1286555_101_Koebenhavns-Kommune.eml".to_string()),
        "{files:?}"
    );

    // Every recipient got exactly one letter with its own Akt-id and Message-ID.
    let mut akt_ids = BTreeSet::new();
    let mut message_ids = BTreeSet::new();
    for f in &files {
        let mail = Mail::from_file(&c.path(&format!("outbox/{f}")));
        let text = mail.text();
        let akt = text
            .lines()
            .find_map(|l| l.strip_prefix("Akt-id "))
            .expect("Akt-id on the letter")
            .to_string();
        assert!(f.starts_with(&akt), "{f} is named by its Akt-id {akt}");
        akt_ids.insert(akt);
        message_ids.insert(mail.message_id());
    }
    assert_eq!(akt_ids.len(), 98);
    assert_eq!(message_ids.len(), 98);

    let states = c.states();
    assert_eq!(states.len(), 98);
    assert!(states.values().all(|s| s == "delivered"), "{states:?}");
}

#[test]
fn a_letter_carries_the_model_text_the_recipient_and_its_stamps() {
    let c = Campaign::shipped();
    c.run(&["send"]).expect(0);
    let mail = outbox_mail(&c, "1286555_101_");
    assert_eq!(mail.to(), "Københavns Kommune <postkasse@kk.dk.invalid>");
    assert_eq!(
        mail.subject(),
        "Øget opmærksomhed på æresrelaterede konflikter og negativ social kontrol – Københavns Kommune"
    );
    assert!(mail.header("From").unwrap().ends_with("<uim@uim.dk>"));
    assert!(
        mail.message_id().ends_with("@uim.dk"),
        "{}",
        mail.message_id()
    );
    // The Date header is the moment of hand-over (the pinned clock), not the letter date.
    assert_eq!(
        mail.header("Date").unwrap(),
        "Mon, 29 Jun 2020 08:00:00 +0000"
    );

    let text = mail.text();
    for expected in [
        "Københavns Kommune\n\nTil samtlige kommuner\n",
        "Jeg skriver til jer, fordi jeg er blevet opmærksom på",
        "Mattias Tesfaye\n\n29. juni 2020\n",
        "Slotsholmsgade 10\n1216 København K",
        "CVR-nr. 36977191",
        "Sags nr. 2020-12345\nAkt-id 1286555",
        "https://uim.dk/arbejdsomrader/aeresrelaterede-konflikter-og-negativ-social-kontrol/tilbud-og-vaerktojer-til-fagfolk/copy_of_radgivning-og-kurser",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
    let html = mail.html();
    assert!(
        html.contains("<a href=\"https://red-center.dk/\">"),
        "{html}"
    );
    assert!(
        html.contains("<a href=\"mailto:uim@uim.dk\">uim@uim.dk</a>"),
        "{html}"
    );
    assert!(html.contains("29. juni 2020"));
    assert!(html.contains("Til samtlige kommuner"));
}

#[test]
fn preview_writes_every_letter_and_leaves_the_ledger_unchanged() {
    let c = Campaign::shipped();
    let run = c.run(&["preview", "--recipient", "492"]).expect(0);
    assert!(
        run.stdout
            .contains("To:         Ærø Kommune <postkasse@aeroekommune.dk.invalid>"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("\nÆrø Kommune\n\nTil samtlige kommuner\n"),
        "{}",
        run.stdout
    );
    run.stdout_has("Nothing was sent");
    assert!(
        !c.ledger_path().exists(),
        "preview must not create the ledger"
    );
    assert!(
        c.files("outbox").is_empty(),
        "preview must not write to the outbox"
    );

    let files = c.files("preview");
    assert_eq!(files.iter().filter(|f| f.ends_with(".eml")).count(), 98);
    assert_eq!(files.iter().filter(|f| f.ends_with(".html")).count(), 99); // 98 letters and the index
    let index = c.read("preview/index.html");
    for f in files
        .iter()
        .filter(|f| f.ends_with(".html") && *f != "index.html")
    {
        assert!(index.contains(&format!("href=\"{f}\"")), "index links {f}");
    }
    let page = c.read("preview/1286610_492_Aeroe-Kommune.html");
    assert!(page.contains("Ærø Kommune"), "{page}");
    assert!(page.contains("Til samtlige kommuner"));

    // After a send, a preview reads the ledger but does not change it.
    c.run(&["send", "--limit", "3"]).expect(0);
    let before = std::fs::read(c.ledger_path()).unwrap();
    let status_before = c.status_json();
    c.run(&["preview"]).expect(0);
    assert_eq!(std::fs::read(c.ledger_path()).unwrap(), before);
    assert_eq!(c.status_json(), status_before);
}

/// A campaign of `n` municipalities, the rows in `bad` (from 1) with an address that is not one.
fn numbered(n: usize, bad: &[usize]) -> Campaign {
    let c = Campaign::shipped();
    let mut csv = String::from("kommunekode,navn,region,email\n");
    for i in 1..=n {
        let at = if bad.contains(&i) { "(at)" } else { "@" };
        csv.push_str(&format!(
            "{i:04},Kommune nr. {i},Region Hovedstaden,post{i}{at}kommune{i}.dk\n"
        ));
    }
    c.write("recipients/kommuner.csv", csv);
    c
}

/// The letter files and the index in the preview folder (none when there is no folder).
fn preview_files(c: &Campaign) -> Vec<String> {
    c.files("preview")
        .into_iter()
        .filter(|f| {
            [".eml", ".html", ".pdf", ".partial"]
                .iter()
                .any(|e| f.ends_with(e))
        })
        .collect()
}

#[test]
fn a_preview_with_a_bad_row_lists_it_as_check_does_and_leaves_no_letter_and_no_index() {
    // A bad row early, and one late, after hundreds of letters were written.
    for (n, bad, line) in [(20, 5, 6), (700, 690, 691)] {
        let c = numbered(n, &[bad]);
        let check = c.run(&["check"]).expect(2);
        let expected = format!(
            "recipients/kommuner.csv, line {line}, column \"email\": \"post{bad}(at)kommune{bad}.dk\" is not a valid e-mail address"
        );
        check.stderr_has(&expected);
        let preview = c.run(&["preview"]).expect(2);
        assert_eq!(
            preview.stderr, check.stderr,
            "the same problems, in the same words"
        );
        assert_eq!(preview.stdout, check.stdout);
        assert_eq!(preview_files(&c), Vec::<String>::new(), "{n} rows");
        assert!(!c.path("preview").exists(), "no folder is left either");

        // An earlier preview's folder is kept, emptied of letters; the others' files stay.
        c.write("preview/noter.txt", "mine");
        assert_eq!(c.run(&["preview"]).expect(2).stderr, check.stderr);
        assert_eq!(c.files("preview"), ["noter.txt"]);
    }
}

#[test]
fn a_preview_for_an_unknown_recipient_says_so_and_leaves_nothing() {
    let c = numbered(40, &[]);
    let run = c.run(&["preview", "--recipient", "9999"]).expect(2);
    run.stderr_has("there is no recipient with kommunekode \"9999\" in recipients/kommuner.csv");
    assert_eq!(run.stdout, "");
    assert!(!c.path("preview").exists());
}

#[test]
fn the_preview_index_lists_more_letters_than_a_batch_in_file_order() {
    let c = numbered(700, &[]);
    let run = c.run(&["preview", "--recipient", "0650"]).expect(0);
    run.stdout_has("To:         Kommune nr. 650 <post650@kommune650.dk>")
        .stdout_has("Preview: wrote 700 letters to preview");
    let index = c.read("preview/index.html");
    let keys: Vec<&str> = index
        .split("<td class=\"key\">")
        .skip(1)
        .map(|row| row.split('<').next().unwrap())
        .collect();
    let expected: Vec<String> = (1..=700).map(|i| format!("{i:04}")).collect();
    assert_eq!(keys, expected);
    assert!(
        index.contains("<p>700 breve.</p>"),
        "the count below the list"
    );
    let files = preview_files(&c);
    assert_eq!(files.iter().filter(|f| f.ends_with(".eml")).count(), 700);
    assert_eq!(
        files.len(),
        2 * 700 + 1,
        "the letters and the index, no partial file"
    );
}

#[test]
fn a_second_send_sends_nothing() {
    let mut c = Campaign::small();
    c.run(&["send"]).expect(0);
    let first: Vec<Vec<u8>> = c
        .files("outbox")
        .iter()
        .map(|f| std::fs::read(c.path(&format!("outbox/{f}"))).unwrap())
        .collect();
    c.set_env("RUNDBREV_NOW", "2020-07-01T09:00:00+02:00");
    let run = c.run(&["send"]).expect(0);
    assert!(
        run.stdout
            .contains("Nothing to send. Recipients: 3 already delivered"),
        "{}",
        run.stdout
    );
    let again: Vec<Vec<u8>> = c
        .files("outbox")
        .iter()
        .map(|f| std::fs::read(c.path(&format!("outbox/{f}"))).unwrap())
        .collect();
    assert_eq!(first, again, "no letter was written again");
    let json = c.status_json();
    assert!(json["recipients"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["attempts"] == 1));
}

#[test]
fn stamps_stay_frozen_when_the_config_date_changes() {
    let c = Campaign::small();
    c.run(&["send", "--limit", "1"]).expect(0);
    c.edit(
        "config.toml",
        "letter_date = \"2020-06-29\"",
        "letter_date = \"2021-01-05\"",
    );
    c.edit(
        "config.toml",
        "sags_nr = \"2020-12345\"",
        "sags_nr = \"2021-999\"",
    );
    let run = c.run(&["send"]).expect(0);
    assert!(
        run.stderr.contains("frozen"),
        "the user is told the config's stamps are not used: {}",
        run.stderr
    );
    for f in c.files("outbox") {
        let text = Mail::from_file(&c.path(&format!("outbox/{f}"))).text();
        assert!(text.contains("29. juni 2020"), "{f}: {text}");
        assert!(text.contains("Sags nr. 2020-12345"), "{f}");
        assert!(!text.contains("2021"), "{f}");
    }
}

#[test]
fn an_unset_letter_date_is_today_in_denmark_and_stays_frozen_the_next_day() {
    let mut c = Campaign::small();
    c.edit("config.toml", "letter_date = \"2020-06-29\"", "");
    // 23:30 UTC on 1 March is already 2 March in Copenhagen.
    c.set_env("RUNDBREV_NOW", "2021-03-01T23:30:00Z");
    c.run(&["send", "--limit", "1"]).expect(0);
    c.set_env("RUNDBREV_NOW", "2021-03-09T10:00:00+01:00");
    c.run(&["send"]).expect(0);
    for f in c.files("outbox") {
        let text = Mail::from_file(&c.path(&format!("outbox/{f}"))).text();
        assert!(text.contains("\n2. marts 2021\n"), "{f}: {text}");
    }
}

#[test]
fn a_golden_letter_is_byte_for_byte_the_same() {
    let c = Campaign::small();
    c.run(&["send", "--only", "492"]).expect(0);
    let got = std::fs::read(c.path("outbox/1286556_492_Aeroe-Kommune.eml")).unwrap();
    let golden_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden/1286556_492_Aeroe-Kommune.eml");
    if std::env::var_os("RUNDBREV_BLESS").is_some() {
        std::fs::write(&golden_path, &got).unwrap();
    }
    let golden = std::fs::read(&golden_path)
        .expect("golden file missing: run once with RUNDBREV_BLESS=1 and review it");
    assert!(
        got == golden,
        "the letter differs from {}:\n{}",
        golden_path.display(),
        String::from_utf8_lossy(&got)
    );
}

#[test]
fn the_template_changed_after_letters_went_out_is_refused_unless_accepted() {
    let c = Campaign::small();
    c.run(&["send", "--limit", "1"]).expect(0);
    c.edit(
        "templates/rundbrev.md",
        "Med venlig hilsen",
        "Med venlige hilsner",
    );
    let run = c.run(&["send"]).expect(2);
    run.stderr_has("templates/rundbrev.md has changed");
    run.stderr_has("--accept-changes");
    assert_eq!(c.files("outbox").len(), 1, "nothing more was sent");

    c.edit(
        "config.toml",
        "subject = \"Øget",
        "subject = \"Vigtigt: Øget",
    );
    let run = c.run(&["send"]).expect(2);
    run.stderr_has("`campaign.subject` has changed");

    c.run(&["send", "--accept-changes"]).expect(0);
    assert_eq!(c.files("outbox").len(), 3);
}

#[test]
fn a_recipients_data_changed_after_their_letter_went_out_is_refused() {
    let c = Campaign::small();
    c.run(&["send", "--limit", "1"]).expect(0);
    c.edit(
        "recipients/kommuner.csv",
        "101,Københavns Kommune",
        "101,Københavns Kommune (ny)",
    );
    let run = c.run(&["send"]).expect(2);
    run.stderr_has("101 (line 2)");
}

#[test]
fn a_second_run_on_the_same_campaign_is_refused() {
    let c = Campaign::small();
    c.run(&["send", "--limit", "1"]).expect(0);
    let lock_path = format!("{}.lock", c.ledger_path().display());
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .unwrap();
    lock.try_lock().unwrap(); // as a running `rundbrev send` holds it
    let run = c.run(&["send"]).expect(2);
    assert!(
        run.stderr
            .contains("another rundbrev run is sending this campaign"),
        "{}",
        run.stderr
    );
    assert_eq!(c.files("outbox").len(), 1);
    drop(lock);
    c.run(&["send"]).expect(0);
    assert_eq!(c.files("outbox").len(), 3);
}

#[test]
fn a_letter_caught_mid_send_by_a_crash_is_unknown_and_not_sent_again() {
    let c = Campaign::small();
    c.run(&["send", "--only", "101"]).expect(0);
    // What a crash between `sending` and the outcome leaves behind:
    c.ledger()
        .execute(
            "UPDATE recipients SET state = 'sending', attempts = attempts + 1 WHERE key = '101'",
            [],
        )
        .unwrap();
    std::fs::remove_file(c.path("outbox/1286555_101_Koebenhavns-Kommune.eml")).unwrap();
    assert_eq!(c.states()["101"], "unknown", "status shows it as unknown");

    let run = c.run(&["send"]).expect(0);
    run.stderr_has("may have been delivered");
    assert!(
        !c.path("outbox/1286555_101_Koebenhavns-Kommune.eml")
            .exists(),
        "101 was not sent again"
    );
    assert_eq!(c.states()["101"], "unknown");
    assert_eq!(c.states()["492"], "delivered");

    c.run(&["resend", "--failed"]).expect(0);
    assert!(
        !c.path("outbox/1286555_101_Koebenhavns-Kommune.eml")
            .exists(),
        "not without --include-unknown"
    );
    c.run(&["resend", "--failed", "--include-unknown"])
        .expect(0);
    assert!(c
        .path("outbox/1286555_101_Koebenhavns-Kommune.eml")
        .exists());
    assert_eq!(c.states()["101"], "delivered");
}

#[test]
fn status_filters_by_state_and_writes_csv_for_the_case_file() {
    let c = Campaign::small();
    let run = c.run(&["status"]).expect(0);
    run.stdout_has("Nothing has been sent yet");
    c.run(&["send", "--only", "492"]).expect(0);
    let run = c.run(&["status"]).expect(0);
    run.stdout_has("3 recipients: 2 pending, 1 delivered");
    let run = c
        .run(&["status", "--state", "delivered", "--format", "csv"])
        .expect(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines[0],
        "kommunekode,name,address,state,attempts,last_code,last_reply,time,akt_id,message_id,receipt,receipt_detail"
    );
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert!(
        lines[1].starts_with("492,Ærø Kommune,post@aeroe.dk,delivered,1,"),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains(",1286556,"), "{}", lines[1]);
}

#[test]
fn akt_ids_from_a_column_keep_their_leading_zeros() {
    let c = Campaign::small();
    c.edit(
        "config.toml",
        "akt_id_first = \"1286555\"",
        "akt_id_column = \"akt\"",
    );
    c.write(
        "recipients/kommuner.csv",
        "kommunekode,navn,email,akt\n0101,Københavns Kommune,post@kk.dk,000123\n0492,Ærø Kommune,post@aeroe.dk,000124\n",
    );
    c.run(&["send"]).expect(0);
    let mail = outbox_mail(&c, "000123_0101_");
    assert!(mail.text().contains("Akt-id 000123"));
    assert_eq!(
        c.states().keys().cloned().collect::<Vec<_>>(),
        vec!["0101", "0492"]
    );
}

#[test]
fn a_windows_1252_semicolon_file_keeps_aeoeaa() {
    let c = Campaign::small();
    let text = SMALL_CSV.replace(',', ";").replace('\n', "\r\n");
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(&text);
    assert!(!unmappable);
    c.write("recipients/kommuner.csv", &bytes);
    let run = c.run(&["send"]).expect(0);
    run.stderr_has("read as Windows-1252");
    let mail = outbox_mail(&c, "1286556_492_");
    assert_eq!(mail.to(), "Ærø Kommune <post@aeroe.dk>");
    assert!(mail.subject().ends_with("– Ærø Kommune"));
    assert!(mail.text().starts_with("Ærø Kommune\n"));
}

#[test]
fn a_utf8_file_with_a_byte_order_mark_keeps_aeoeaa() {
    let c = Campaign::small();
    c.write("recipients/kommuner.csv", format!("\u{feff}{SMALL_CSV}"));
    c.run(&["send"]).expect(0);
    let mail = outbox_mail(&c, "1286556_492_");
    assert_eq!(mail.to(), "Ærø Kommune <post@aeroe.dk>");
    assert!(
        c.states().contains_key("101"),
        "the first column's name is not spoiled by the BOM"
    );
}

#[test]
fn windows_1252_bytes_with_encoding_set_to_utf8_are_refused_not_garbled() {
    let c = Campaign::small();
    let (bytes, _, _) = encoding_rs::WINDOWS_1252.encode(SMALL_CSV);
    c.write("recipients/kommuner.csv", &bytes);
    let run = c.run(&["--encoding", "utf-8", "send"]).expect(2);
    assert!(
        run.stderr
            .contains("recipients/kommuner.csv, line 2: the file is not valid UTF-8"),
        "{}",
        run.stderr
    );
    assert!(!c.ledger_path().exists());
}

/// Runs `send` on bad input and checks the error names the place, and nothing was written.
#[track_caller]
fn refused(c: &Campaign, expected: &[&str]) {
    let run = c.run(&["send"]).expect(2);
    for e in expected {
        assert!(run.stderr.contains(e), "expected {e:?} in:\n{}", run.stderr);
    }
    run.stderr_has("nothing was sent");
    assert!(!c.ledger_path().exists(), "the ledger was created");
    assert!(c.files("outbox").is_empty(), "something reached the outbox");
    let check = c.run(&["check"]).expect(2);
    for e in expected {
        assert!(
            check.stderr.contains(e),
            "check should say {e:?} too:\n{}",
            check.stderr
        );
    }
}

fn with_recipients(csv: &str) -> Campaign {
    let c = Campaign::small();
    c.write("recipients/kommuner.csv", csv);
    c
}

#[test]
fn a_missing_required_column_is_named() {
    let c = with_recipients("kommunekode,navn\n101,Københavns Kommune\n");
    refused(
        &c,
        &[
            "recipients/kommuner.csv, line 1: the required column \"email\"",
            "the header has: kommunekode, navn",
        ],
    );
}

#[test]
fn an_empty_or_invalid_address_is_named_by_line_and_column() {
    let c = with_recipients(
        "kommunekode,navn,email\n101,København,\n147,Frederiksberg,post(at)frederiksberg.dk\n",
    );
    refused(
        &c,
        &[
            "recipients/kommuner.csv, line 2, column \"email\": the e-mail address is empty",
            "recipients/kommuner.csv, line 3, column \"email\": \"post(at)frederiksberg.dk\" is not a valid e-mail address",
        ],
    );
}

#[test]
fn duplicate_addresses_and_keys_are_named() {
    let c =
        with_recipients("kommunekode,navn,email\n101,A,a@kk.dk\n147,B,A@KK.dk\n101,C,c@kk.dk\n");
    refused(
        &c,
        &[
            "line 3, column \"email\": A@KK.dk appears twice (also on line 2)",
            "line 4, column \"kommunekode\": \"101\" appears twice (also on line 2)",
        ],
    );
}

#[test]
fn a_line_break_or_control_character_bound_for_a_header_is_refused() {
    let c = with_recipients(
        "kommunekode,navn,email\n101,\"Køben\nhavn\",a@kk.dk\n147,\"Frederiks\u{7}berg\",b@f.dk\n",
    );
    refused(
        &c,
        &[
            "line 2, column \"navn\": the value contains a line break",
            "line 4, column \"navn\": the value contains a control character",
        ],
    );
}

#[test]
fn a_template_variable_the_data_lacks_is_named_with_the_row() {
    let c = Campaign::small();
    c.edit(
        "templates/rundbrev.md",
        "{{ navn }}\n\nTil samtlige",
        "{{ navn }}\nAtt.: {{ borgmester }}\n\nTil samtlige",
    );
    refused(
        &c,
        &[
            "templates/rundbrev.md, line 6: the letter template uses `borgmester`",
            "for the rows on lines 2, 3, 4",
        ],
    );
}

#[test]
fn unknown_config_keys_and_wrong_types_are_named() {
    let c = Campaign::small();
    c.edit("config.toml", "reply_to = ", "replyto = ");
    c.edit("config.toml", "sags_nr = \"2020-12345\"", "sags_nr = 2020");
    let run = c.run(&["send"]).expect(2);
    run.stderr_has("config.toml, line 22, key `stamps.sags_nr`: invalid type: integer `2020`, expected a string");
    assert!(!c.ledger_path().exists());
    c.edit("config.toml", "sags_nr = 2020", "sags_nr = \"2020-12345\"");
    let run = c.run(&["check"]).expect(2);
    assert!(
        run.stderr
            .contains("config.toml, line 13, key `sender.replyto`: unknown key"),
        "{}",
        run.stderr
    );
}

#[test]
fn check_lists_every_problem_not_only_the_first() {
    let c = with_recipients("kommunekode,navn,email\n101,A,\n147,B,b@f.dk\n147,C,b@f.dk\n");
    let run = c.run(&["check"]).expect(2);
    run.stderr_has("found 3 problems");
    assert!(run.stderr.contains("line 2, column \"email\""));
    assert!(run.stderr.contains("line 4, column \"kommunekode\""));
    assert!(run.stderr.contains("line 4, column \"email\""));
}

#[test]
fn check_passes_on_the_shipped_campaign_and_writes_nothing() {
    let c = Campaign::shipped();
    let run = c.run(&["check"]).expect(0);
    run.stdout_has("All 98 letters are ready");
    assert!(!c.ledger_path().exists());
    assert!(c.files("outbox").is_empty());
}

#[test]
fn only_and_limit_send_a_subset() {
    let c = Campaign::small();
    let run = c.run(&["send", "--only", "999"]).expect(2);
    assert!(
        run.stderr
            .contains("--only: there is no recipient with kommunekode \"999\""),
        "{}",
        run.stderr
    );
    c.run(&["send", "--only", "607", "101"]).expect(0);
    assert_eq!(c.files("outbox").len(), 2);
    assert_eq!(c.states()["492"], "pending");
}

#[test]
fn a_key_changed_after_the_letter_went_out_does_not_send_it_again() {
    let c = Campaign::small();
    // One Akt-id for all letters, so that only the address can tell it is the same recipient.
    c.edit(
        "config.toml",
        "akt_id_first = \"1286555\"",
        "akt_id = \"1286555\"",
    );
    c.run(&["send", "--only", "101"]).expect(0);
    // Excel "helpfully" adds a leading zero, or someone retypes the code.
    c.edit(
        "recipients/kommuner.csv",
        "101,Københavns",
        "0101,Københavns",
    );
    let run = c.run(&["send"]).expect(2);
    assert!(
        run.stderr
            .contains("post@kk.dk (line 2, 0101) already has the letter as 101"),
        "{}",
        run.stderr
    );
    assert_eq!(c.files("outbox").len(), 1, "nothing more was sent");
    assert!(
        !c.states().contains_key("0101"),
        "the ledger was not touched"
    );
}

#[test]
fn an_akt_id_already_used_is_not_given_to_another_letter() {
    let c = Campaign::small();
    c.run(&["send", "--only", "101", "492"]).expect(0);
    // 492 (Akt-id 1286556) leaves the file: 607 would now be numbered 1286556.
    c.edit(
        "recipients/kommuner.csv",
        "492,Ærø Kommune,Region Syddanmark,post@aeroe.dk\n",
        "",
    );
    let run = c.run(&["send"]).expect(2);
    assert!(
        run.stderr
            .contains("Akt-id 1286556 was already used on the letter to 492"),
        "{}",
        run.stderr
    );
    assert_eq!(c.files("outbox").len(), 2);
}

#[test]
fn a_run_that_stops_before_handing_anything_over_freezes_nothing() {
    let c = Campaign::small();
    c.write("outbox", "a file where the outbox folder should be");
    let run = c.run(&["send"]).expect(2);
    run.stdout_has("The run stopped");
    assert!(c.states().values().all(|s| s == "pending"));
    // Nothing went out, so the data may still change without --accept-changes.
    std::fs::remove_file(c.path("outbox")).unwrap();
    c.edit("recipients/kommuner.csv", "post@kk.dk", "kommunen@kk.dk");
    c.edit(
        "config.toml",
        "letter_date = \"2020-06-29\"",
        "letter_date = \"2020-07-01\"",
    );
    c.run(&["send"]).expect(0);
    let mail = outbox_mail(&c, "1286555_101_");
    assert_eq!(mail.to(), "Københavns Kommune <kommunen@kk.dk>");
    assert!(
        mail.text().contains("1. juli 2020"),
        "the date was not frozen by the failed run"
    );
}

#[test]
fn stamps_stay_frozen_when_a_crash_took_back_every_earlier_hand_over() {
    let c = Campaign::small();
    c.run(&["send", "--limit", "1"]).expect(0);
    // As if that run had been killed after taking 101 but before any of its text went out:
    // nothing of the campaign was handed over, so the next run takes the hand-over back.
    for dir in ["outbox", "archive"] {
        for f in c.files(dir) {
            std::fs::remove_file(c.path(&format!("{dir}/{f}"))).unwrap();
        }
    }
    let conn = c.ledger();
    conn.execute_batch(
        "UPDATE recipients SET state = 'sending' WHERE key = '101';
         UPDATE attempts SET state = 'sending', finished_at = NULL, was = 'pending', data_at = NULL
             WHERE key = '101';",
    )
    .unwrap();
    drop(conn);
    c.run(&["send", "--limit", "1"]).expect(0);
    // The letters that went out now froze the stamps again: a changed template is refused.
    c.edit(
        "templates/rundbrev.md",
        "Til samtlige kommuner",
        "Til alle kommuner",
    );
    let run = c.run(&["send"]).expect(2);
    run.stderr_has("refusing to send").stderr_has("has changed");
}
