//! Checking every letter before the first one leaves: each row, each Akt-id, and each letter
//! merged and composed in memory on every core.
//!
//! It collects every problem with its place (file, line, column, template line) so that `check`
//! can list them all at once. It keeps no letter, writes nothing and sends nothing.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use crate::campaign::recipients::{self, RowChecker, Table};
use crate::campaign::{AktIds, Letter, Prepared, MAX_PROBLEMS};
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

/// Merges and composes one letter in memory, to find what would stop it.
fn merge_problem(p: &Prepared, letter: &Letter, now: DateTime<Utc>) -> Option<MergeProblem> {
    let rendered = match p.render(letter) {
        Ok(r) => r,
        Err(e) => {
            return Some(match e.missing_variable {
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
    if let Some((at_char, c, what)) = recipients::find_header_hazard(&rendered.subject) {
        return Some(MergeProblem::Other(p.table.at(
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
    let length = rendered.subject.chars().count();
    if length > recipients::MAX_SUBJECT_CHARS {
        return Some(MergeProblem::Other(p.table.at(
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
    p.make_rendered(
        letter,
        rendered,
        &p.envelope,
        &letter.to,
        &letter.stamp,
        now,
    )
    .err()
    .map(|e| {
        // A bad address is the email column's problem; anything else the row's.
        let column = e.is_bad_address().then_some(p.cols.email);
        MergeProblem::Other(p.table.at(
            Problem::new(&p.table.file, format!("cannot build the e-mail: {e}")),
            letter.line,
            column,
        ))
    })
}

/// Letters handed to a checking thread at a time.
const CHUNK: usize = 32;

/// Reads every row once: checks it, and merges and composes its letter in memory on every core,
/// without keeping it. Returns the problems and the number of rows.
pub(super) fn check_all(
    p: &Prepared,
    template_src: &str,
    ledger: Option<&Ledger>,
    now: DateTime<Utc>,
    see: &mut dyn FnMut(&Letter),
) -> (Vec<Problem>, usize) {
    let rows = match p.table.rows() {
        Ok(rows) => rows,
        Err(e) => {
            return (
                vec![Problem::new(
                    &p.table.file,
                    format!("cannot read the recipients file: {e}"),
                )],
                0,
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
    let (letter_tx, letter_rx) = std::sync::mpsc::sync_channel::<Vec<Letter>>(8);
    let letter_rx = std::sync::Mutex::new(letter_rx);
    let mut chunk = Vec::with_capacity(CHUNK);
    let (problem_tx, problem_rx) = std::sync::mpsc::channel::<MergeProblem>();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (letters, found) = (&letter_rx, problem_tx.clone());
            scope.spawn(move || loop {
                let next = letters.lock().map(|rx| rx.recv());
                let Ok(Ok(chunk)) = next else { break };
                for letter in &chunk {
                    if let Some(problem) = merge_problem(p, letter, now) {
                        let _ = found.send(problem);
                    }
                }
            });
        }
        drop(problem_tx);
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
                if chunk.len() == CHUNK
                    && letter_tx
                        .send(std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK)))
                        .is_err()
                {
                    break;
                }
            }
        }
        if !chunk.is_empty() {
            let _ = letter_tx.send(chunk);
        }
        drop(letter_tx);
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
    (problems, count)
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

    #[test]
    fn a_missing_variable_is_found_on_its_template_line() {
        assert_eq!(first_use("{# {{ x }} #}\nHej\n{{ x }}\n", "x"), Some(3));
    }
}
