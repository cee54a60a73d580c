//! A full disk: the archive, the outbox, the ledger, the preview or the report folder on a small
//! tmpfs that fills up. Each run stops in plain words and leaves a record that matches the files;
//! moved to a roomy disk, the same command delivers every letter exactly once.
//!
//! The small disks are tmpfs mounts inside the test's folder, so these tests need root (CI runs
//! as root). Without it they fail with a hint; they never pass without having filled a disk.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{Campaign, Mail, Run};

const LEDGER_FILE: &str = "uim-2020-aeresrelaterede-konflikter.ledger.sqlite";

/// A small tmpfs mounted at a folder of a campaign, unmounted when dropped (also when a test
/// fails). Declare it after the campaign, so that it goes first.
struct SmallDisk {
    at: PathBuf,
}

impl SmallDisk {
    #[track_caller]
    fn mount(at: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(at).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output();
        match out {
            Ok(o) if o.status.success() => SmallDisk { at: at.to_path_buf() },
            Ok(o) => panic!(
                "cannot mount a {size} tmpfs at {}: {}\nThese tests fill a small disk and need root (CI runs them as root); run them as root or in a container that may mount tmpfs.",
                at.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => panic!("cannot run mount ({e}); these tests need root and mount(8)"),
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.at).status();
        }
    }
}

/// The shipped campaign (98 letters) with its ledger in the folder `ledger`.
fn campaign_with_ledger_folder() -> Campaign {
    let c = Campaign::shipped();
    c.edit("config.toml", "[ledger]\n", "[ledger]\ndir = \"ledger\"\n");
    c
}

/// key → state, as the ledger itself has it (`sending` is not shown as unknown here).
fn states(ledger: &Path) -> BTreeMap<String, String> {
    let conn =
        rusqlite::Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn.prepare("SELECT key, state FROM recipients").unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows
}

/// The keys of the letters whose data had started to go out and whose outcome is not recorded.
fn data_started(ledger: &Path) -> BTreeSet<String> {
    let conn =
        rusqlite::Connection::open_with_flags(ledger, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn
        .prepare("SELECT key FROM attempts WHERE finished_at IS NULL AND data_at IS NOT NULL")
        .unwrap();
    let rows = stmt
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows
}

fn keys_in(states: &BTreeMap<String, String>, state: &str) -> BTreeSet<String> {
    states
        .iter()
        .filter(|(_, s)| *s == state)
        .map(|(k, _)| k.clone())
        .collect()
}

/// The recipients' keys of the letters in a folder (`<Akt-id>_<key>_<name>.eml`).
fn letter_keys(c: &Campaign, folder: &str) -> BTreeSet<String> {
    c.files(folder)
        .iter()
        .map(|f| f.split('_').nth(1).expect("a letter file name").to_string())
        .collect()
}

/// The record and the files agree: every delivered letter is in the outbox and in the archive
/// with the same bytes; besides those, only letters whose outcome was not recorded (`sending`)
/// may be there; no half-written file is anywhere.
#[track_caller]
fn assert_consistent(c: &Campaign, home: &str, ledger: &Path) -> BTreeMap<String, String> {
    let (outbox, archive) = (format!("{home}outbox"), format!("{home}archive"));
    let states = states(ledger);
    assert_eq!(states.len(), 98);
    for folder in [&outbox, &archive] {
        let partial: Vec<String> = c
            .files(folder)
            .into_iter()
            .filter(|f| !f.ends_with(".eml"))
            .collect();
        assert!(partial.is_empty(), "{folder} holds {partial:?}");
    }
    assert_eq!(c.files(&outbox), c.files(&archive));
    for f in c.files(&outbox) {
        assert_eq!(
            std::fs::read(c.path(&format!("{outbox}/{f}"))).unwrap(),
            std::fs::read(c.path(&format!("{archive}/{f}"))).unwrap(),
            "{f} differs between the outbox and the archive"
        );
    }
    let delivered = keys_in(&states, "delivered");
    let sending = keys_in(&states, "sending");
    let outbox = letter_keys(c, &outbox);
    assert!(
        delivered.is_subset(&outbox),
        "a delivered letter is missing"
    );
    let extra: BTreeSet<_> = outbox.difference(&delivered).cloned().collect();
    assert!(
        extra.is_subset(&sending),
        "{extra:?} are in the outbox but neither delivered nor sending"
    );
    assert!(keys_in(&states, "unknown").is_empty());
    let pending = keys_in(&states, "pending").len();
    assert_eq!(pending + delivered.len() + sending.len(), 98, "{states:?}");
    states
}

/// The campaign copied to a roomy disk, everything on the small one included; then the small
/// disk goes.
fn moved(c: &Campaign, disk: SmallDisk) -> Campaign {
    let roomy = c.copy();
    drop(disk);
    roomy
}

/// The same command delivers the rest: every letter once, none unknown, and no letter already
/// in the outbox written again.
#[track_caller]
fn assert_finishes(roomy: &Campaign, home: &str, ledger_rel: &str) -> Run {
    let outbox = format!("{home}outbox");
    let before: BTreeMap<String, u64> = roomy
        .files(&outbox)
        .into_iter()
        .map(|f| {
            let ino = std::fs::metadata(roomy.path(&format!("{outbox}/{f}")))
                .unwrap()
                .ino();
            (f, ino)
        })
        .collect();
    let config = format!("{home}config.toml");
    let run = roomy.run(&["send", "--yes", "--config", &config]).expect(0);
    run.stdout_has("Delivered");
    let ledger = roomy.path(ledger_rel);
    let states = assert_consistent(roomy, home, &ledger);
    assert_eq!(keys_in(&states, "delivered").len(), 98, "{states:?}");
    assert_eq!(roomy.files(&outbox).len(), 98);
    assert_eq!(
        roomy.files(&format!("{home}archive")).len(),
        98,
        "no earlier copies either"
    );
    for (f, ino) in before {
        let now = std::fs::metadata(roomy.path(&format!("{outbox}/{f}")))
            .unwrap()
            .ino();
        assert_eq!(now, ino, "{f} was written again");
    }
    let conn = rusqlite::Connection::open(&ledger).unwrap();
    let twice: i64 = conn
        .query_row(
            "SELECT count(*) FROM (SELECT key FROM attempts WHERE state = 'delivered'
             GROUP BY key HAVING count(*) > 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(twice, 0, "a letter was delivered twice");
    run
}

#[test]
fn a_full_archive_stops_the_run_in_plain_words_and_a_roomy_disk_finishes_it() {
    let c = Campaign::shipped();
    let disk = SmallDisk::mount(&c.path("archive"), "64k");
    let run = c.run(&["send", "--yes"]).expect(2);
    run.stdout_has("The run stopped: cannot keep the letter in the archive")
        .stdout_has("the disk is full (No space left on device")
        .stdout_has("it was not sent")
        .stdout_has("stay pending; nothing is lost");
    let states = assert_consistent(&c, "", &c.ledger_path());
    let delivered = keys_in(&states, "delivered").len();
    assert!(delivered > 0 && delivered < 98, "{delivered} delivered");
    assert!(keys_in(&states, "sending").is_empty());
    assert_finishes(&moved(&c, disk), "", LEDGER_FILE);
}

#[test]
fn a_full_outbox_stops_the_run_in_plain_words_and_a_roomy_disk_finishes_it() {
    let c = Campaign::shipped();
    let disk = SmallDisk::mount(&c.path("outbox"), "64k");
    let run = c.run(&["send", "--yes"]).expect(2);
    run.stdout_has("The run stopped: cannot write")
        .stdout_has("to the outbox: the disk is full (No space left on device")
        .stdout_has("stay pending; nothing is lost");
    let states = assert_consistent(&c, "", &c.ledger_path());
    let delivered = keys_in(&states, "delivered").len();
    assert!(delivered > 0 && delivered < 98, "{delivered} delivered");
    assert!(keys_in(&states, "sending").is_empty());
    assert_finishes(&moved(&c, disk), "", LEDGER_FILE);
}

/// Where the ledger's disk ran out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Hit {
    BeforeSending,
    SendingMark,
    Outcome,
}

#[test]
fn a_full_ledger_disk_is_told_once_in_plain_words_and_the_outbox_settles_what_it_could_not_record()
{
    let ledger_rel = format!("ledger/{LEDGER_FILE}");
    let mut hits = BTreeSet::new();
    // The ledger's disk fills before the first letter at 100k. Above that, each letter takes
    // some 40k of the ledger's disk (a page is 4k): a sweep over 48k in steps of 4k fills it at
    // `sending` marks and at outcomes, whatever the exact sizes of the ledger's writes.
    let sizes = std::iter::once(100).chain((256..=304).step_by(4));
    for size in sizes.map(|k| format!("{k}k")) {
        let c = campaign_with_ledger_folder();
        let disk = SmallDisk::mount(&c.path("ledger"), &size);
        let run = c.run(&["send", "--yes"]).expect(2);
        let all = run.all();
        let context = format!("with a {size} ledger disk:\n{all}");
        assert_eq!(
            all.matches("cannot write to the ledger ledger/uim-2020-aeresrelaterede-konflikter.ledger.sqlite: the disk that holds it is full")
                .count(),
            1,
            "{context}"
        );
        assert!(
            all.contains("What to do: make room on the disk that holds the ledger"),
            "{context}"
        );
        assert!(!all.contains("Error code"), "{context}");
        if all.contains("No letter was sent in this run") {
            assert!(c.files("outbox").is_empty(), "{context}");
            assert!(c.files("archive").is_empty(), "{context}");
            // A first run that records nothing leaves no ledger behind.
            if c.path(&ledger_rel).exists() {
                assert_consistent(&c, "", &c.path(&ledger_rel));
            }
            if hits.insert(Hit::BeforeSending) {
                assert_finishes(&moved(&c, disk), "", &ledger_rel);
            }
            continue;
        }
        let states = assert_consistent(&c, "", &c.path(&ledger_rel));
        let sending = keys_in(&states, "sending");
        // A letter whose data had started was handed over; only its outcome is missing. A
        // letter taken but not yet at its data (waiting for the connection, or held at its gate
        // when the ledger filled) was not handed over at all.
        let started = data_started(&c.path(&ledger_rel));
        let hit = if sending.is_empty() {
            run.stdout_has("were not sent and stay pending");
            Hit::SendingMark
        } else {
            let outbox = letter_keys(&c, "outbox");
            for key in &sending {
                assert_eq!(
                    started.contains(key),
                    outbox.contains(key),
                    "{key} {context}"
                );
            }
            run.stdout_has("being handed over when the ledger stopped taking changes")
                .stdout_has("The next run looks for it in the outbox");
            Hit::Outcome
        };
        // Moved to a roomy disk, once for each kind (the runs before are the same).
        if !hits.insert(hit) {
            continue;
        }
        let rerun = assert_finishes(&moved(&c, disk), "", &ledger_rel);
        if hit == Hit::Outcome && !started.is_empty() {
            rerun.stderr_has(&format!(
                "settled from the outbox: {} letter",
                started.len()
            ));
            rerun.stderr_has("found there exactly as archived, now recorded as delivered");
        }
    }
    // During a run the ledger writes in turns, each holding the outcomes that came back, the
    // data marks and the next `sending` marks: once letters are in flight, a turn that fails
    // leaves some `sending`. Only a run that fails at its very first turn leaves none.
    assert!(
        hits.contains(&Hit::BeforeSending) && hits.contains(&Hit::Outcome),
        "the sizes no longer hit every kind of ledger write ({hits:?}); find new ones"
    );
}

#[test]
fn a_whole_campaign_on_a_disk_that_fills_stops_in_plain_words_and_finishes_on_a_roomy_one() {
    // As the problem was found: the campaign folder itself on a small disk.
    for size in ["400k", "700k", "1500k"] {
        let c = Campaign::shipped();
        let disk = SmallDisk::mount(&c.path("disk"), size);
        for f in [
            "config.toml",
            "templates/rundbrev.md",
            "recipients/kommuner.csv",
        ] {
            c.write(&format!("disk/{f}"), c.read(f));
        }
        let run = c
            .run(&["send", "--yes", "--config", "disk/config.toml"])
            .expect(2);
        let all = run.all();
        assert!(
            all.contains("the disk that holds it is full")
                || all.contains("No space left on device"),
            "with a {size} disk:\n{all}"
        );
        assert!(!all.contains("Error code"), "with a {size} disk:\n{all}");
        let ledger = c.path(&format!("disk/{LEDGER_FILE}"));
        assert_consistent(&c, "disk/", &ledger);
        assert_finishes(&moved(&c, disk), "disk/", &format!("disk/{LEDGER_FILE}"));
    }
}

#[test]
fn a_letter_marked_sending_but_not_in_the_outbox_goes_back_to_pending_and_is_sent_once() {
    let c = Campaign::small();
    c.run(&["preview"]).expect(0);
    let preview = c.files("preview");
    let stem = preview.iter().find(|f| f.contains("_492_")).unwrap();
    let message_id = Mail::from_file(&c.path(&format!("preview/{stem}"))).message_id();
    c.run(&["send", "--limit", "1"]).expect(0);
    // A run that stopped after marking 492 `sending`, before its file reached the outbox.
    let conn = c.ledger();
    conn.execute(
        "UPDATE recipients SET state = 'sending', attempts = 1, akt_id = '1286556',
             message_id = ?1, letter_date = '2020-06-29', sags_nr = '2020-12345'
         WHERE key = '492'",
        [&message_id],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO attempts (key, transport, started_at, state) VALUES ('492', 'outbox', 't', 'sending')",
        [],
    )
    .unwrap();
    drop(conn);
    let run = c.run(&["send"]).expect(0);
    run.stderr_has("an earlier run stopped before it recorded what became of 1 letter")
        .stderr_has(
            "settled from the outbox: 1 letter neither there nor in the archive, so never handed over; pending again (492).",
        )
        .stdout_has("Delivered 2 letters");
    let states = c.states();
    assert!(states.values().all(|s| s == "delivered"), "{states:?}");
    assert_eq!(c.files("outbox").len(), 3);
}

#[test]
fn a_letter_whose_outbox_file_differs_from_the_archive_stays_unknown_with_the_reason() {
    let c = Campaign::small();
    c.run(&["send", "--limit", "1"]).expect(0);
    let file = c.files("outbox").remove(0);
    c.write(
        &format!("outbox/{file}"),
        "not the letter that was archived",
    );
    let conn = c.ledger();
    conn.execute(
        "UPDATE recipients SET state = 'sending' WHERE key = '101'",
        [],
    )
    .unwrap();
    drop(conn);
    let run = c.run(&["send"]).expect(0);
    run.stderr_has("still unknown: 101, because")
        .stderr_has("differs from the copy archived before hand-over");
    assert_eq!(c.states()["101"], "unknown");
}

#[test]
fn a_letter_archived_but_gone_from_the_outbox_stays_unknown_and_is_not_sent_again() {
    let c = Campaign::small();
    c.run(&["send", "--limit", "1"]).expect(0);
    let file = c.files("outbox").remove(0);
    // Written to the outbox, then moved away (picked up?) before the outcome was recorded.
    std::fs::remove_file(c.path(&format!("outbox/{file}"))).unwrap();
    let conn = c.ledger();
    conn.execute(
        "UPDATE recipients SET state = 'sending' WHERE key = '101'",
        [],
    )
    .unwrap();
    drop(conn);
    let run = c.run(&["send"]).expect(0);
    run.stderr_has("still unknown: 101, because")
        .stderr_has("the archive holds the copy made before hand-over")
        .stdout_has("Delivered 2 letters");
    assert_eq!(c.states()["101"], "unknown");
    assert!(
        !c.path(&format!("outbox/{file}")).exists(),
        "not sent again"
    );
}

#[test]
fn a_full_preview_folder_says_so_and_leaves_no_part_of_a_preview() {
    let c = Campaign::shipped();
    let disk = SmallDisk::mount(&c.path("preview"), "64k");
    let run = c.run(&["preview"]).expect(2);
    run.stderr_has("cannot write the preview to preview: the disk that holds it is full")
        .stderr_has("What to do: make room on the disk that holds the preview folder (or write the preview elsewhere with `--out FOLDER`)");
    assert_eq!(c.files("preview"), Vec::<String>::new());
    drop(disk);
}

#[test]
fn a_full_report_folder_says_so_and_leaves_no_half_written_report() {
    let c = Campaign::shipped();
    c.run(&["send"]).expect(0);
    let disk = SmallDisk::mount(&c.path("report"), "16k");
    let run = c.run(&["report"]).expect(2);
    run.stderr_has("cannot write the delivery report to report: the disk that holds it is full")
        .stderr_has("No report file was changed");
    assert_eq!(c.files("report"), Vec::<String>::new());
    drop(disk);
    c.run(&["report"]).expect(0);
    assert_eq!(c.files("report").len(), 2);
}

#[test]
fn without_the_archive_a_letter_gone_from_the_outbox_stays_unknown_and_is_not_sent_again() {
    let c = Campaign::small();
    c.edit(
        "config.toml",
        "dir = \"archive\"",
        "dir = \"archive\"\nenabled = false",
    );
    c.run(&["send", "--limit", "1"]).expect(0);
    let file = c.files("outbox").remove(0);
    // Written to the outbox, then collected, before the outcome was recorded. With no archived
    // copy, a missing outbox file proves nothing: the letter may well have gone out.
    std::fs::remove_file(c.path(&format!("outbox/{file}"))).unwrap();
    let conn = c.ledger();
    conn.execute(
        "UPDATE recipients SET state = 'sending' WHERE key = '101'",
        [],
    )
    .unwrap();
    drop(conn);
    let run = c.run(&["send"]).expect(0);
    run.stdout_has("Delivered 2 letters");
    assert_eq!(c.states()["101"], "unknown");
    assert!(
        !c.path(&format!("outbox/{file}")).exists(),
        "101 was sent again"
    );
}
