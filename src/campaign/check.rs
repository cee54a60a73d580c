//! Checking every letter before the first one leaves: each row, each Akt-id, and each letter
//! merged and checked in memory on every core: composed, or, when nothing but its size depends
//! on composing it and no run keeps it, checked on its headers with its size bounded
//! (`Prepared::check_merged`), which finds the same problems.
//!
//! It collects every problem with its place (file, line, column, template line) so that `check`
//! can list them all at once. It writes nothing and sends nothing, and keeps no letter unless a
//! run hands it a `Keeper`: then each letter it composed without a problem goes to the keeper on
//! the thread that composed it, and what the keeper made of it comes back in file order, so that
//! a preview need not compose the letters again. The check decides; the keeper does the writing.

use std::collections::{BTreeMap, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::Mutex;

use chrono::{DateTime, Utc};

use crate::campaign::in_order::InOrder;
use crate::campaign::recipients::{self, RowChecker, Table};
use crate::campaign::{AktIds, Letter, Made, Prepared, MAX_PROBLEMS};
use crate::config::AktIdSource;
use crate::digest::{Exact, Repeats};
use crate::problem::Problem;
use crate::record::ledger::Ledger;

/// What merging one letter found wrong.
enum MergeProblem {
    Missing {
        var: String,
        which: &'static str,
        line: u64,
    },
    Other(Problem),
}

/// What a run keeps of the letters the check composes, so that it need not make them again.
pub(crate) struct Keeper<'a, T> {
    /// Runs on the checking thread that composed the letter, on each letter that merged and
    /// composed without a problem, for as long as the check has found none (what is kept is of
    /// no use once one is found). Its first error is handed back; keeping stops there, the
    /// check goes on.
    pub keep: &'a (dyn Fn(&Prepared, &Letter, Made) -> anyhow::Result<T> + Sync),
    /// Gets what `keep` returned, on the thread that reads the file, in file order; an error
    /// stops the keeping as `keep`'s does.
    pub kept: &'a mut dyn FnMut(&Prepared, T) -> anyhow::Result<()>,
}

/// Merges one letter and checks it in memory: composed (the letter, for a keeper), or, when
/// `light`, checked without composing it (`Prepared::check_merged`, which finds the same
/// problems); or what stops it.
fn merge(
    p: &Prepared,
    letter: &Letter,
    now: DateTime<Utc>,
    light: bool,
) -> Result<Option<Made>, MergeProblem> {
    let merged = match p.merge(letter) {
        Ok(m) => m,
        Err(e) => {
            return Err(match e.missing_variable {
                Some(var) => MergeProblem::Missing {
                    var,
                    which: e.which,
                    line: letter.line,
                },
                None => MergeProblem::Other(Problem::new(
                    &p.shown(&p.config.template),
                    format!(
                        "cannot merge the letter for {} of {}: {}",
                        p.table.row_name(letter.line),
                        p.table.file.display(),
                        e.message
                    ),
                )),
            })
        }
    };
    if let Some((at_char, c, what)) = recipients::find_header_hazard(&merged.subject) {
        return Err(MergeProblem::Other(p.table.at(
            Problem::new(
                &p.table.file,
                format!(
                    "the subject for this recipient contains {what} (U+{:04X}) at character {at_char}; remove it from the data or campaign.subject",
                    u32::from(c)
                ),
            ),
            letter.line,
            None,
        )));
    }
    let length = merged.subject.chars().count();
    if length > recipients::MAX_SUBJECT_CHARS {
        return Err(MergeProblem::Other(p.table.at(
            Problem::new(
                &p.table.file,
                format!(
                    "the subject for this recipient is {length} characters long; at most {} fit in an e-mail header",
                    recipients::MAX_SUBJECT_CHARS
                ),
            ),
            letter.line,
            None,
        )));
    }
    let checked = if light {
        p.check_merged(letter, merged, now).map(|()| None)
    } else {
        p.make_rendered(
            letter,
            merged.render(),
            &p.envelope,
            &letter.to,
            &letter.stamp,
            now,
        )
        .map(Some)
    };
    checked.map_err(|e| {
        // A bad address is the email column's problem; anything else the row's.
        let column = e.is_bad_address().then_some(p.cols.email);
        MergeProblem::Other(p.table.at(
            Problem::new(&p.table.file, format!("cannot build the e-mail: {e}")),
            letter.line,
            column,
        ))
    })
}

/// A panic while merging one letter, as that letter's problem.
fn fault(p: &Prepared, letter: &Letter, payload: &(dyn std::any::Any + Send)) -> MergeProblem {
    MergeProblem::Other(p.table.at(
        Problem::new(
            &p.table.file,
            format!(
                "rundbrev failed unexpectedly while merging the letter for this row ({}); this is a fault in rundbrev, please report it",
                crate::sanitize::panic_text(payload)
            ),
        ),
        letter.line,
        None,
    ))
}

/// Letters handed to a checking thread at a time.
const CHUNK: usize = 32;

/// With a keeper: how many chunks may be handed out beyond the oldest whose kept letters have
/// not come back, so that what waits to be put in order stays small however large the file.
const WINDOW: u64 = 64;

/// The letters a thread kept of one chunk, sent back to the reading thread when the chunk is
/// done (also if keeping panics, so that the reader never waits for a chunk that cannot come).
struct Back<'a, T> {
    number: u64,
    kept: Vec<T>,
    to: &'a Sender<(u64, Vec<T>)>,
}

impl<T> Drop for Back<'_, T> {
    fn drop(&mut self) {
        let _ = self.to.send((self.number, std::mem::take(&mut self.kept)));
    }
}

/// The reading thread's side of keeping: the chunks' kept letters put back in file order and
/// handed to `Keeper::kept`.
struct Taking<'k, T> {
    kept: &'k mut dyn FnMut(&Prepared, T) -> anyhow::Result<()>,
    order: InOrder<Vec<T>>,
    back: Receiver<(u64, Vec<T>)>,
}

impl<T> Taking<'_, T> {
    /// Takes what has come back of the `handed_out` chunks: waits only while more than
    /// `WINDOW` of them are not back in order, or, with `all`, until every thread is done.
    fn take(&mut self, p: &Prepared, handed_out: u64, all: bool, keeping: &Keeping) {
        loop {
            let next = if all || handed_out - self.order.next() > WINDOW {
                self.back.recv().ok()
            } else {
                self.back.try_recv().ok()
            };
            let Some((number, letters)) = next else {
                return;
            };
            let kept = &mut self.kept;
            self.order.put(number, letters, |letters| {
                for letter in letters {
                    if keeping.stopped() {
                        return;
                    }
                    if let Err(e) = kept(p, letter) {
                        keeping.fail(e);
                    }
                }
            });
        }
    }
}

/// Whether the letters are still kept, and the first error of keeping.
#[derive(Default)]
struct Keeping {
    stopped: AtomicBool,
    failed: Mutex<Option<anyhow::Error>>,
}

impl Keeping {
    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// A problem was found: what is kept from now on would not be used.
    fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    fn fail(&self, e: anyhow::Error) {
        self.stop();
        if let Ok(mut failed) = self.failed.lock() {
            failed.get_or_insert(e);
        }
    }

    fn outcome(self) -> anyhow::Result<()> {
        match self.failed.into_inner() {
            Ok(Some(e)) => Err(e),
            Ok(None) => Ok(()),
            Err(_) => Err(anyhow::anyhow!("a checking thread failed")),
        }
    }
}

/// Reads every row once: checks it, and merges and composes its letter in memory on every core,
/// handing each letter that composed without a problem to the `keeper`, if any (see `Keeper`).
/// Returns the problems, the number of rows, and how the keeping went.
pub(super) fn check_all<T: Send>(
    p: &Prepared,
    template_src: &str,
    ledger: Option<&Ledger>,
    now: DateTime<Utc>,
    see: &mut dyn FnMut(&Letter),
    keeper: Option<Keeper<'_, T>>,
) -> (Vec<Problem>, usize, anyhow::Result<()>) {
    let rows = match p.table.rows() {
        Ok(rows) => rows,
        Err(e) => {
            return (
                vec![Problem::new(
                    &p.table.file,
                    format!("cannot read the recipients file: {e}"),
                )],
                0,
                Ok(()),
            )
        }
    };
    let mut problems = Vec::new();
    let mut merge_problems = Vec::new();
    // Akt-ids already on letters that went out, also to recipients no longer in the file.
    let akt_used: HashMap<String, String> = match ledger.map(Ledger::akt_ids).transpose() {
        Ok(used) => used.unwrap_or_default(),
        Err(e) => {
            return (
                vec![Problem::new(
                    &p.table.file,
                    format!("cannot read the ledger: {e:#}"),
                )],
                0,
                Ok(()),
            )
        }
    };
    // A sequence counts up, so it cannot repeat unless letters carry Akt-ids frozen earlier.
    let akt_may_repeat = match p.config.stamps.akt_id {
        AktIdSource::Same(_) => false,
        AktIdSource::Column(_) => true,
        AktIdSource::Sequence(_) => !akt_used.is_empty(),
    };
    let mut akt_seen = Repeats::default();
    let mut checker = RowChecker::new(&p.table, &p.cols);
    let mut akt = AktIds::new(&p.config.stamps.akt_id, p.cols.akt_id);
    let mut count = 0usize;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    // Letters go to the threads in chunks: one hand-over (and wake-up) per chunk, not per letter.
    // Chunks are numbered as they are handed out, so that what is kept can be put back in order.
    let (letter_tx, letter_rx) = std::sync::mpsc::sync_channel::<(u64, Vec<Letter>)>(8);
    let letter_rx = Mutex::new(letter_rx);
    let mut chunk = Vec::with_capacity(CHUNK);
    let mut handed_out = 0u64;
    let (problem_tx, problem_rx) = std::sync::mpsc::channel::<MergeProblem>();
    let keeping = Keeping::default();
    // A run that keeps the letters wants them composed; otherwise each is composed only if
    // its size needs it.
    let light = keeper.is_none() && p.checks_light();
    let (keep, mut taking, back_tx) = match keeper {
        Some(Keeper { keep, kept }) => {
            let (back_tx, back) = std::sync::mpsc::channel();
            let taking = Taking {
                kept,
                order: InOrder::new(),
                back,
            };
            (Some(keep), Some(taking), Some(back_tx))
        }
        None => (None, None, None),
    };
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (letters, found, keeping) = (&letter_rx, problem_tx.clone(), &keeping);
            let back_tx = back_tx.clone();
            scope.spawn(move || loop {
                let next = letters.lock().map(|rx| rx.recv());
                let Ok(Ok((number, chunk))) = next else { break };
                let mut back = back_tx.as_ref().map(|to| Back {
                    number,
                    kept: Vec::with_capacity(chunk.len()),
                    to,
                });
                for letter in &chunk {
                    // A fault in rundbrev (a panic) while merging or keeping a letter is that
                    // letter's problem: the thread lives on, so the reader never waits for ever
                    // on a thread that died, and nothing is sent or kept.
                    let merged = catch_unwind(AssertUnwindSafe(|| merge(p, letter, now, light)))
                        .unwrap_or_else(|payload| Err(fault(p, letter, payload.as_ref())));
                    match merged {
                        Err(problem) => {
                            keeping.stop();
                            let _ = found.send(problem);
                        }
                        Ok(None) => {}
                        Ok(Some(made)) => {
                            let (Some(keep), Some(back)) = (keep, back.as_mut()) else {
                                continue;
                            };
                            if keeping.stopped() {
                                continue;
                            }
                            let kept = catch_unwind(AssertUnwindSafe(|| keep(p, letter, made)))
                                .unwrap_or_else(|payload| {
                                    Err(anyhow::anyhow!(
                                        "rundbrev failed unexpectedly while writing the letter on {} ({}); this is a fault in rundbrev, please report it",
                                        p.table.row_name(letter.line),
                                        crate::sanitize::panic_text(payload.as_ref())
                                    ))
                                });
                            match kept {
                                Ok(kept) => back.kept.push(kept),
                                Err(e) => keeping.fail(e),
                            }
                        }
                    }
                }
            });
        }
        drop(problem_tx);
        // The threads hold the only senders: when they are done, taking ends.
        drop(back_tx);
        for (index, row) in rows.enumerate() {
            count += 1;
            let row = match row {
                Ok(row) => row,
                Err(problem) => {
                    problems.push(problem);
                    continue;
                }
            };
            let row_problems = checker.check(&row);
            let fine = row_problems.is_empty();
            problems.extend(row_problems);
            let akt_id = akt.next(&row);
            let letter = match p.letter(index, row, akt_id, ledger) {
                Ok(l) => l,
                Err(e) => {
                    problems.push(Problem::new(
                        &p.table.file,
                        format!("cannot read the ledger: {e:#}"),
                    ));
                    continue;
                }
            };
            if !matches!(p.config.stamps.akt_id, AktIdSource::Same(_))
                && !letter.stamp.akt_id.is_empty()
            {
                if akt_may_repeat {
                    akt_seen.add(&letter.stamp.akt_id);
                }
                if let Some(owner) = akt_used
                    .get(&letter.stamp.akt_id)
                    .filter(|k| **k != letter.key)
                {
                    problems.push(p.table.at(
                        Problem::new(
                            &p.table.file,
                            format!(
                                "Akt-id {} was already used on the letter to {} (see the ledger); each letter needs its own. Were rows removed or reordered? Then give the new letters Akt-ids of their own (e.g. an akt_id column)",
                                letter.stamp.akt_id,
                                crate::sanitize::printable(owner)
                            ),
                        ),
                        letter.line,
                        p.cols.akt_id,
                    ));
                }
            }
            see(&letter);
            // One problem per cause: a bad row is not merged as well.
            if fine {
                chunk.push(letter);
                if chunk.len() == CHUNK {
                    if !problems.is_empty() {
                        keeping.stop();
                    }
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
                    if letter_tx.send((handed_out, full)).is_err() {
                        break;
                    }
                    handed_out += 1;
                    if let Some(taking) = taking.as_mut() {
                        taking.take(p, handed_out, false, &keeping);
                    }
                }
            }
        }
        if !problems.is_empty() {
            keeping.stop();
        }
        if !chunk.is_empty() {
            let _ = letter_tx.send((handed_out, chunk));
        }
        drop(letter_tx);
        if let Some(taking) = taking.as_mut() {
            taking.take(p, handed_out, true, &keeping);
        }
        merge_problems.extend(problem_rx.iter());
    });
    problems.extend(checker.repeats());
    if let Some(exact) = akt_seen.suspects() {
        problems.extend(repeated_akt_ids(p, ledger, exact));
    }
    let mut missing: BTreeMap<(String, &'static str), Vec<u64>> = BTreeMap::new();
    for m in merge_problems {
        match m {
            MergeProblem::Missing { var, which, line } => {
                missing.entry((var, which)).or_default().push(line)
            }
            MergeProblem::Other(problem) => problems.push(problem),
        }
    }
    for ((var, which), mut lines) in missing {
        lines.sort_unstable();
        let (file, source) = if which == "subject" {
            (p.shown(&p.config.path), p.config.campaign.subject.as_str())
        } else {
            (p.shown(&p.config.template), template_src)
        };
        let mut problem = Problem::new(
            &file,
            format!(
                "the {which} template uses `{var}`, but {} has no such column or value for {} (columns: {})",
                p.table.file.display(),
                describe_lines(&lines, count, &p.table),
                p.table.headers.join(", ")
            ),
        );
        if which == "subject" {
            problem = problem.at_key("campaign.subject");
        } else if let Some(l) = first_use(source, &var) {
            problem = problem.at_line(l);
        }
        problems.push(problem);
    }
    if count == 0 && problems.is_empty() {
        problems.push(p.table.at_header(Problem::new(
            &p.table.file,
            "there are no recipients: there is a header but no rows below it",
        )));
    }
    // Rows in file order, then the rest, whatever order the threads found them in.
    problems.sort_by_key(|p| (p.file.clone(), p.line.is_none(), p.line));
    if problems.len() > MAX_PROBLEMS {
        let more = problems.len() - MAX_PROBLEMS;
        problems.truncate(MAX_PROBLEMS);
        problems.push(Problem::new(
            &p.table.file,
            format!("… and {more} more problems"),
        ));
    }
    (problems, count, keeping.outcome())
}

/// The letters whose Akt-id an earlier letter in the file has too (a second pass, only when a
/// fingerprint came up twice).
fn repeated_akt_ids(p: &Prepared, ledger: Option<&Ledger>, mut exact: Exact) -> Vec<Problem> {
    let mut problems = Vec::new();
    let Ok(letters) = p.letters(ledger) else {
        return problems;
    };
    for letter in letters.flatten() {
        let akt_id = &letter.stamp.akt_id;
        if matches!(p.config.stamps.akt_id, AktIdSource::Same(_)) || akt_id.is_empty() {
            continue;
        }
        if let Some(first) = exact.again(akt_id, letter.line) {
            problems.push(p.table.at(
                Problem::new(
                    &p.table.file,
                    format!("Akt-id {akt_id} is also the Akt-id of the letter on {}; each letter needs its own", p.table.row_name(first)),
                ),
                letter.line,
                p.cols.akt_id,
            ));
        }
    }
    problems
}

fn describe_lines(lines: &[u64], total: usize, table: &Table) -> String {
    if lines.len() == total && total > 3 {
        return format!(
            "any row ({} {}–{})",
            table.row_word(true),
            lines[0],
            lines[lines.len() - 1]
        );
    }
    let shown: Vec<String> = lines.iter().take(10).map(u64::to_string).collect();
    let more = if lines.len() > 10 {
        format!(" and {} more", lines.len() - 10)
    } else {
        String::new()
    };
    format!(
        "the row{} on {} {}{more}",
        if lines.len() == 1 { "" } else { "s" },
        table.row_word(lines.len() != 1),
        shown.join(", ")
    )
}

/// The first line of a template that uses a variable inside `{{ }}` or `{% %}`.
fn first_use(template: &str, var: &str) -> Option<u64> {
    let root = var.split('.').next().unwrap_or(var);
    let mut in_comment = false;
    for (i, line) in template.lines().enumerate() {
        if line.contains("{#") {
            in_comment = true;
        }
        if !in_comment
            && (line.contains("{{") || line.contains("{%"))
            && recipients::mentions(line, root)
        {
            return Some(i as u64 + 1);
        }
        if line.contains("#}") {
            in_comment = false;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::letter::compose;
    use crate::test_rng::Rng;

    #[test]
    fn a_missing_variable_is_found_on_its_template_line() {
        assert_eq!(first_use("{# {{ x }} #}\nHej\n{{ x }}\n", "x"), Some(3));
    }

    /// A campaign of `n` recipients in a temporary folder; `bad` rows get an address that is
    /// not one.
    fn campaign(n: usize, bad: &[usize]) -> (tempfile::TempDir, crate::config::Config) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut csv = String::from("kommunekode,navn,email\n");
        for i in 0..n {
            let email = if bad.contains(&i) {
                format!("post{i}(at)k.dk")
            } else {
                format!("post{i}@k{i}.dk")
            };
            csv.push_str(&format!("{:04},Kommune {i},{email}\n", i + 1));
        }
        std::fs::write(root.join("kommuner.csv"), csv).unwrap();
        std::fs::write(root.join("brev.md"), "Til {{ navn }}\n\nEt brev.\n").unwrap();
        let text = r#"
[campaign]
id = "test"
subject = "Brev til {{ navn }}"

[sender]
from = "Ministeriet <uim@uim.dk>"

[stamps]
letter_date = "2020-06-29"
sags_nr = "2020-1"
akt_id_first = "1000"

[recipients]
file = "kommuner.csv"

[template]
file = "brev.md"
"#;
        let path = root.join("config.toml");
        std::fs::write(&path, text).unwrap();
        let config = crate::config::load(&path).unwrap_or_else(|p| panic!("{p:?}"));
        (dir, config)
    }

    /// Prepares the campaign keeping each letter's row number and Message-ID; returns the
    /// problems or what was kept, in the order it came, and how the keeping went.
    #[allow(clippy::type_complexity)]
    fn keep_all(
        config: &crate::config::Config,
        fail_at: Option<usize>,
    ) -> Result<(Vec<(usize, String)>, anyhow::Result<()>), Vec<Problem>> {
        let now = crate::clock::now();
        let main = std::thread::current().id();
        let keep = |_: &Prepared, letter: &Letter, made: Made| {
            assert_ne!(
                std::thread::current().id(),
                main,
                "kept on a checking thread"
            );
            if Some(letter.index) == fail_at {
                anyhow::bail!("cannot keep letter {}", letter.index);
            }
            let text = String::from_utf8_lossy(&made.composed.bytes).into_owned();
            assert!(text.contains(&letter.stamp.message_id), "the letter's own");
            Ok((letter.index, letter.stamp.message_id.clone()))
        };
        let mut got = Vec::new();
        let mut kept = |_: &Prepared, k: (usize, String)| {
            assert_eq!(
                std::thread::current().id(),
                main,
                "handed back to the reader"
            );
            got.push(k);
            Ok(())
        };
        let keeper = Keeper {
            keep: &keep,
            kept: &mut kept,
        };
        let (_, outcome) =
            crate::campaign::prepare_keeping(config.clone(), None, now, &mut |_| {}, Some(keeper))?;
        Ok((got, outcome))
    }

    #[test]
    fn a_keeper_gets_every_letter_once_in_file_order_across_many_chunks() {
        let (_dir, config) = campaign(700, &[]);
        let (kept, outcome) = keep_all(&config, None).unwrap();
        outcome.unwrap();
        let rows: Vec<usize> = kept.iter().map(|(i, _)| *i).collect();
        assert_eq!(rows, (0..700).collect::<Vec<_>>());
        let ids: std::collections::HashSet<&String> = kept.iter().map(|(_, id)| id).collect();
        assert_eq!(ids.len(), 700, "each letter its own Message-ID");
    }

    #[test]
    fn a_keeper_does_not_change_what_the_check_finds() {
        let (_dir, config) = campaign(200, &[4, 150]);
        let plain = crate::campaign::prepare(config.clone(), None, crate::clock::now())
            .err()
            .expect("two bad rows");
        let kept = keep_all(&config, None).expect_err("two bad rows");
        let shown = |ps: &[Problem]| ps.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        assert_eq!(shown(&kept), shown(&plain));
        assert_eq!(plain.len(), 2, "{:?}", shown(&plain));
    }

    #[test]
    fn a_keeping_error_is_handed_back_and_the_check_still_passes() {
        let (_dir, config) = campaign(300, &[]);
        let (kept, outcome) = keep_all(&config, Some(100)).unwrap();
        assert_eq!(outcome.unwrap_err().to_string(), "cannot keep letter 100");
        assert!(
            kept.iter().all(|(i, _)| *i != 100),
            "the letter that failed is not handed back"
        );
    }

    #[test]
    fn a_panic_while_keeping_is_a_keeping_error_and_the_check_does_not_hang() {
        let (_dir, config) = campaign(4000, &[]);
        // Every checking thread panics, again and again. Before, the threads died and the
        // reader waited for ever to hand them the next chunk; run apart, so that a hang fails.
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let keep = |_: &Prepared, letter: &Letter, _: Made| -> anyhow::Result<usize> {
                if letter.index.is_multiple_of(320) {
                    panic!("a scripted fault at letter {}", letter.index);
                }
                Ok(letter.index)
            };
            let mut count = 0;
            let mut kept = |_: &Prepared, _: usize| {
                count += 1;
                Ok(())
            };
            let keeper = Keeper {
                keep: &keep,
                kept: &mut kept,
            };
            let now = crate::clock::now();
            let result =
                crate::campaign::prepare_keeping(config, None, now, &mut |_| {}, Some(keeper))
                    .map(|(_, outcome)| outcome.map_err(|e| e.to_string()));
            let _ = done_tx.send(result.map_err(|problems| problems.len()));
        });
        let result = done_rx
            .recv_timeout(std::time::Duration::from_secs(60))
            .expect("the check came back");
        let error = result.expect("no problem in the file").unwrap_err();
        // Whichever thread's fault is recorded first: the threads race (letter 0 and 320 …).
        let letter: usize = error
            .split("a scripted fault at letter ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("names a faulting letter: {error}"));
        assert!(letter.is_multiple_of(320) && letter < 4000, "{error}");
        assert!(error.contains("fault in rundbrev"), "{error}");
    }

    /// A campaign in a temporary folder: the recipients file, the letter template, what the
    /// config says besides the usual, and files beside them.
    fn campaign_of(
        csv: &str,
        template: &str,
        subject: &str,
        letter: &str,
        files: &[(&str, Vec<u8>)],
    ) -> (tempfile::TempDir, crate::config::Config) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("kommuner.csv"), csv).unwrap();
        std::fs::write(root.join("brev.md"), template).unwrap();
        for (name, bytes) in files {
            let path = root.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let subject = toml::Value::String(subject.to_string());
        let text = format!(
            r#"
[campaign]
id = "test"
subject = {subject}

[sender]
from = "Ministeriet <uim@uim.dk>"
bcc = ["journal@uim.dk"]

[stamps]
letter_date = "2020-06-29"
sags_nr = "2020-1"
akt_id_first = "1000"

[recipients]
file = "kommuner.csv"

[template]
file = "brev.md"

[letter]
{letter}
"#
        );
        let path = root.join("config.toml");
        std::fs::write(&path, text).unwrap();
        let config = crate::config::load(&path).unwrap_or_else(|p| panic!("{p:?}"));
        (dir, config)
    }

    fn shown(problems: &[Problem]) -> Vec<String> {
        problems.iter().map(|p| p.to_string()).collect()
    }

    /// The problems the check finds with the letters composed (as a preview checks them) and
    /// without (as `check` and `send` do).
    fn both_ways(config: &crate::config::Config, now: DateTime<Utc>) -> (Vec<String>, Vec<String>) {
        let light = match crate::campaign::prepare(config.clone(), None, now) {
            Ok(p) => {
                assert!(p.checks_light());
                Vec::new()
            }
            Err(problems) => shown(&problems),
        };
        let keep = |_: &Prepared, _: &Letter, _: Made| Ok(());
        let mut kept = |_: &Prepared, _: ()| Ok(());
        let keeper = Keeper {
            keep: &keep,
            kept: &mut kept,
        };
        let full = match crate::campaign::prepare_keeping(
            config.clone(),
            None,
            now,
            &mut |_| {},
            Some(keeper),
        ) {
            Ok(_) => Vec::new(),
            Err(problems) => shown(&problems),
        };
        (light, full)
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2020-06-29T10:00:00+02:00")
            .unwrap()
            .with_timezone(&Utc)
    }

    /// Rows of every kind of trouble: addresses that are not, names and subjects that cannot
    /// go in a header or are too long, a variable one row's letter lacks, and attached files,
    /// small and too large.
    fn generated_rows(rng: &mut Rng, n: usize, attach: &[&str]) -> String {
        let mut csv = String::from("kommunekode,navn,email,region,fyld,bilag\n");
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        for i in 0..n {
            let name = match rng.below(12) {
                0 => "Ærø Kommune – Børne- og Ungeforvaltningen, Sundhedsplejen ".repeat(3),
                1 => format!("Kommune \"{i}\" \\ nr. {i}"),
                2 => format!("Kommune\u{202e}{i}"),
                3 => "Å".repeat(201),
                4 => "Æ".repeat(199),
                _ => format!("Kommune {i}"),
            };
            let email = match rng.below(10) {
                0 => format!("post{i}(at)k.dk"),
                1 => format!("post {i}@k.dk"),
                2 => format!("\"post.{i}\"@k{i}.dk"),
                3 => format!("post{i}@[127.0.0.1]"),
                _ => format!("post{i}@k{i}.dk"),
            };
            let region = rng.pick(&["Nord", "Syd", "mangler", "emne", "lang", "skjult"]);
            let fyld = match rng.below(4) {
                0 => "<&\"'æ*_[x] ".repeat(rng.below(60)),
                1 => "x".repeat(380 + rng.below(40)),
                _ => String::new(),
            };
            let bilag = if attach.is_empty() || rng.below(3) > 0 {
                String::new()
            } else {
                rng.pick(attach).to_string()
            };
            let fields = [
                format!("{:04}", i + 1),
                name,
                email,
                region.to_string(),
                fyld,
                bilag,
            ];
            let line: Vec<String> = fields.iter().map(|f| quote(f)).collect();
            csv.push_str(&line.join(","));
            csv.push('\n');
        }
        csv
    }

    const GENERATED_TEMPLATE: &str = "Til {{ navn }}\n\n{% if region == \"mangler\" %}{{ borgmester }}{% endif %}\n\n> - {{ fyld }}\n\n[Læs mere][uim] om {{ region }}.\n\n[uim]: https://uim.dk/'{{ kommunekode }}' \"UIM\"\n";

    const GENERATED_SUBJECT: &str = "Brev til {{ navn }}{% if region == \"emne\" %}{{ ukendt }}{% elif region == \"lang\" %} {{ fyld }}{% elif region == \"skjult\" %}\u{202e}{% endif %}";

    #[test]
    fn the_light_check_finds_what_composing_finds_on_hundreds_of_generated_rows() {
        let attach = ["bilag/a.pdf", "bilag/b.txt", "bilag/stor.bin"];
        let files = [
            (
                "bilag/a.pdf",
                (0..3_000u32).map(|i| (i * 7) as u8).collect(),
            ),
            ("bilag/b.txt", b"Bilag\n".repeat(200)),
            (
                "bilag/stor.bin",
                (0..60_000u32).map(|i| (i * 13) as u8).collect(),
            ),
        ];
        let mut rng = Rng(0xc4ec_0001_0000_0001);
        let mut found = 0;
        for round in 0..3 {
            let csv = generated_rows(&mut rng, 150, &attach);
            // The limit lets most letters through, not those with the large file.
            let letter = "attachments_column = \"bilag\"\nmax_size_mb = 0.05\n";
            let (_dir, config) =
                campaign_of(&csv, GENERATED_TEMPLATE, GENERATED_SUBJECT, letter, &files);
            let (light, full) = both_ways(&config, now());
            assert_eq!(light, full, "round {round}");
            found += light.len();
            for what in [
                "more than the limit",
                "the subject for this recipient is",
                "uses `borgmester`",
                "uses `ukendt`",
                "subject for this recipient contains",
                "not a valid e-mail address",
            ] {
                assert!(light.iter().any(|p| p.contains(what)), "{what}: {light:#?}");
            }
        }
        assert!(found > 150, "{found}");
        // An attached file that is not there is found as it always was.
        let mut csv = generated_rows(&mut rng, 20, &attach);
        csv.push_str("9999,Kommune,post@k.dk,Nord,,bilag/findes-ikke.pdf\n");
        let letter = "attachments_column = \"bilag\"\n";
        let (_dir, config) =
            campaign_of(&csv, GENERATED_TEMPLATE, GENERATED_SUBJECT, letter, &files);
        let (light, full) = both_ways(&config, now());
        assert_eq!(light, full);
        assert!(
            light.iter().any(|p| p.contains("findes-ikke.pdf")),
            "{light:#?}"
        );
    }

    #[test]
    fn a_letter_just_over_the_limit_is_refused_as_when_it_is_composed() {
        let mut csv = String::from("kommunekode,navn,email,fyld\n");
        for i in 0..40 {
            csv.push_str(&format!(
                "{:04},Kommune {i},post{i}@k{i}.dk,{}\n",
                i + 1,
                "x".repeat(i)
            ));
        }
        let template = "Til {{ navn }}\n\n{{ fyld }}\n\nMed venlig hilsen\n";
        let (_dir, mut config) = campaign_of(&csv, template, "Brev til {{ navn }}", "", &[]);
        let p = crate::campaign::prepare(config.clone(), None, now()).expect("no problem");
        // Each letter's real size, and the bound the light check holds it to.
        let mut sizes = Vec::new();
        for letter in p.letters(None).unwrap() {
            let letter = letter.unwrap();
            let real = p.make(&letter, now()).unwrap().composed.bytes.len() as u64;
            let merged = p.merge(&letter).unwrap();
            let files = p.enclosures.files(&letter.fields).unwrap();
            let frame = compose::frame(
                &p.envelope,
                &letter.to,
                &merged.subject,
                &letter.stamp,
                now(),
                &files,
            )
            .unwrap();
            let bound = crate::campaign::size_at_most(&frame, &merged);
            assert!(real <= bound);
            sizes.push((letter.line, real, bound));
        }
        // The limit is the size of one letter: the next one, a byte or two larger, is over it.
        let (at, limit, _) = sizes[20];
        let (over, next, _) = sizes[21];
        assert!(next > limit && next <= limit + 4, "{sizes:?}");
        config.letter.max_size = limit;
        // Every bound is over the limit: each letter is made, and its real size decides.
        assert!(sizes.iter().all(|&(_, _, bound)| bound > limit));
        let (light, full) = both_ways(&config, now());
        assert_eq!(light, full);
        let refused: Vec<u64> = sizes
            .iter()
            .filter(|&&(_, real, _)| real > limit)
            .map(|&(line, ..)| line)
            .collect();
        assert_eq!(light.len(), refused.len(), "{light:#?}");
        assert!(refused.contains(&over) && !refused.contains(&at));
        // Kommune 21 is on line 23.
        assert_eq!(over, 23);
        assert!(
            light.contains(&"kommuner.csv, line 23: cannot build the e-mail: the letter to Kommune 21 would be 0.0 MB with its attachments, more than the limit of 0.0 MB (letter.max_size_mb in config.toml)".to_string()),
            "{light:#?}"
        );
    }

    /// The shipped campaign: every letter's bound is above its real size and far below the
    /// limit, so the check never makes the message to know its size.
    #[test]
    fn the_shipped_letters_are_checked_without_being_composed() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config.toml");
        let config = crate::config::load(&path).unwrap_or_else(|p| panic!("{p:?}"));
        let p = crate::campaign::prepare(config, None, now()).expect("the samples are fine");
        assert!(p.checks_light());
        for letter in p.letters(None).unwrap() {
            let letter = letter.unwrap();
            let real = p.make(&letter, now()).unwrap().composed.bytes.len() as u64;
            let merged = p.merge(&letter).unwrap();
            let frame = compose::frame(
                &p.envelope,
                &letter.to,
                &merged.subject,
                &letter.stamp,
                now(),
                &[],
            )
            .unwrap();
            let bound = crate::campaign::size_at_most(&frame, &merged);
            assert!(real <= bound && bound < 10 * real && bound < p.enclosures.max_size / 100);
        }
    }
}
