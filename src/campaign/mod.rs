//! A campaign: check every letter, stream the letters, and plan who gets one in a run.
//!
//! `prepare` opens the template and the recipients and checks every letter (merged and composed
//! in memory, one at a time); it writes nothing. `Prepared::letters` streams the letters again,
//! each with its stamps (frozen ones from the ledger first), so no campaign is ever held in
//! memory whole. `plan` is a pure function of the letters' states and the mode. The send loop
//! itself is in `delivery`. This module prints nothing and never writes to the ledger.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};

use crate::clock;
use crate::config::{self, AktIdSource, Config};
use crate::delivery::transport::Outcome;
use crate::letter::compose::{self, Addressee, Composed, Envelope};
use crate::letter::render::{Rendered, Renderer, TemplateError};
use crate::letter::stamp::{self, Stamp};
use crate::problem::{display_path, Problem};
use crate::record::ledger::{Frozen, Ledger, Recorded, State};
use recipients::{Columns, Row, RowChecker, Table};

/// At most this many problems are listed; the rest are counted.
const MAX_PROBLEMS: usize = 200;

pub mod recipients;

/// Everything needed to make each letter, checked.
pub struct Prepared {
    pub config: Config,
    pub table: Table,
    pub cols: Columns,
    pub renderer: Renderer,
    pub envelope: Envelope,
    /// How many letters (rows) the campaign has.
    pub count: usize,
    /// The campaign's letter date and Sags nr. as the letters carry them.
    pub letter_date: NaiveDate,
    pub sags_nr: String,
    pub template_hash: String,
    pub content_hash: String,
    pub content_desc: String,
    /// Things the user should know that are not errors.
    pub notes: Vec<String>,
}

/// One recipient's letter, before rendering.
#[derive(Debug, Clone)]
pub struct Letter {
    /// The row's place among the rows, from 0.
    pub index: usize,
    pub line: u64,
    pub key: String,
    pub to: Addressee,
    pub stamp: Stamp,
    pub row_hash: String,
    pub fields: Vec<String>,
    /// What the ledger says about this recipient, if anything.
    pub recorded: Option<Recorded>,
}

impl Letter {
    /// The state the ledger has for this letter (pending when it has none).
    pub fn state(&self) -> State {
        self.recorded
            .as_ref()
            .map(|r| r.state)
            .unwrap_or(State::Pending)
    }
}

impl Prepared {
    /// The recipient's fields by header name, for the template.
    pub fn fields<'a>(&'a self, letter: &'a Letter) -> BTreeMap<&'a str, &'a str> {
        self.table
            .headers
            .iter()
            .map(String::as_str)
            .zip(letter.fields.iter().map(String::as_str))
            .collect()
    }

    pub fn render(&self, letter: &Letter) -> Result<Rendered, TemplateError> {
        self.renderer.render(&self.fields(letter), &letter.stamp)
    }

    /// Renders and composes a letter dated `date`.
    pub fn compose(
        &self,
        letter: &Letter,
        date: DateTime<Utc>,
    ) -> Result<(Rendered, Composed), String> {
        let rendered = self.render(letter).map_err(|e| e.message)?;
        let composed =
            compose::compose(&self.envelope, &letter.to, &rendered, &letter.stamp, date)?;
        Ok((rendered, composed))
    }

    /// A file name a person can find a letter by: Akt-id, key and name.
    pub fn file_stem(&self, letter: &Letter) -> String {
        let mut name = String::new();
        for c in letter.to.name.chars() {
            match c {
                'æ' => name.push_str("ae"),
                'ø' => name.push_str("oe"),
                'å' => name.push_str("aa"),
                'Æ' => name.push_str("Ae"),
                'Ø' => name.push_str("Oe"),
                'Å' => name.push_str("Aa"),
                c if c.is_ascii_alphanumeric() => name.push(c),
                _ => {
                    if !name.is_empty() && !name.ends_with('-') {
                        name.push('-');
                    }
                }
            }
        }
        let name = name.trim_end_matches('-');
        let mut stem = format!(
            "{}_{}",
            stamp::safe_token(&letter.stamp.akt_id),
            stamp::safe_token(&letter.key)
        );
        if !name.is_empty() {
            stem.push('_');
            stem.extend(name.chars().take(60));
        }
        stem
    }

    pub fn shown(&self, path: &Path) -> PathBuf {
        display_path(path, &self.config.base)
    }

    /// Streams the letters in file order, each with its stamps: the frozen ones from `ledger`
    /// when the letter was handed over before, otherwise the campaign's. Reads the file again;
    /// a row that cannot be read now (the file changed since the check) is an error.
    pub fn letters<'a>(
        &'a self,
        ledger: Option<&'a Ledger>,
    ) -> Result<impl Iterator<Item = Result<Letter>> + 'a> {
        let rows = self
            .table
            .rows()
            .with_context(|| format!("cannot read {}", self.table.file.display()))?;
        let mut akt = AktIds::new(&self.config.stamps.akt_id, self.cols.akt_id);
        Ok(rows.enumerate().map(move |(index, row)| {
            let row = row.map_err(|p| {
                anyhow::anyhow!("{p} (the file changed while rundbrev was using it; run again)")
            })?;
            let akt_id = akt.next(&row);
            self.letter(index, row, akt_id, ledger)
        }))
    }

    fn letter(
        &self,
        index: usize,
        row: Row,
        akt_id: String,
        ledger: Option<&Ledger>,
    ) -> Result<Letter> {
        let key = row.fields[self.cols.key].clone();
        let recorded = match ledger {
            Some(l) => l.lookup(&key)?,
            None => None,
        };
        let stamp = recorded
            .as_ref()
            .and_then(|r| r.stamp.clone())
            .unwrap_or_else(|| Stamp {
                letter_date: self.letter_date,
                sags_nr: self.sags_nr.clone(),
                message_id: stamp::message_id(
                    &self.config.campaign.id,
                    &key,
                    &akt_id,
                    self.envelope.domain(),
                ),
                akt_id,
            });
        Ok(Letter {
            index,
            line: row.line,
            to: Addressee {
                name: row.fields[self.cols.name].clone(),
                email: row.fields[self.cols.email].clone(),
            },
            stamp,
            row_hash: row_hash(&self.table.headers, &row.fields),
            key,
            fields: row.fields,
            recorded,
        })
    }
}

/// Hands out each row's Akt-id from the configured source.
struct AktIds<'a> {
    source: &'a AktIdSource,
    column: Option<usize>,
    next: String,
}

impl<'a> AktIds<'a> {
    fn new(source: &'a AktIdSource, column: Option<usize>) -> AktIds<'a> {
        let next = match source {
            AktIdSource::Same(id) | AktIdSource::Sequence(id) => id.clone(),
            AktIdSource::Column(_) => String::new(),
        };
        AktIds {
            source,
            column,
            next,
        }
    }

    fn next(&mut self, row: &Row) -> String {
        match self.source {
            AktIdSource::Column(_) => self
                .column
                .map(|c| row.fields[c].clone())
                .unwrap_or_default(),
            AktIdSource::Same(id) => id.clone(),
            AktIdSource::Sequence(_) => {
                let after = stamp::next_number(&self.next);
                std::mem::replace(&mut self.next, after)
            }
        }
    }
}

/// Opens the template and the recipients and checks every letter, without writing anything.
/// `ledger` supplies frozen stamps when the campaign has started.
pub fn prepare(
    config: Config,
    ledger: Option<&Ledger>,
    now: DateTime<Utc>,
) -> Result<Prepared, Vec<Problem>> {
    let shown = |p: &Path| display_path(p, &config.base);
    let template_path = shown(&config.template);
    let template_src = std::fs::read_to_string(&config.template).map_err(|e| {
        vec![Problem::new(
            &template_path,
            format!("cannot read the letter template: {e}"),
        )]
    });
    let renderer = template_src.as_ref().map_err(Clone::clone).and_then(|src| {
        Renderer::new(src, &config.campaign.subject).map_err(|e| {
            let file = if e.which == "subject" {
                shown(&config.path)
            } else {
                template_path.clone()
            };
            let mut p = Problem::new(
                &file,
                format!("the {} template has an error: {}", e.which, e.message),
            );
            if e.which == "subject" {
                p = p.at_key("campaign.subject");
            }
            vec![p]
        })
    });
    let table = recipients::load(&config.recipients, &shown(&config.recipients.file));
    let (renderer, table, template_src) = match (renderer, table, template_src) {
        (Ok(r), Ok(t), Ok(src)) => (r, t, src),
        (r, t, _) => {
            let mut problems = Vec::new();
            problems.extend(r.err().unwrap_or_default());
            problems.extend(t.err().unwrap_or_default());
            return Err(problems);
        }
    };
    let envelope = Envelope::new(&config.sender)
        .map_err(|msg| vec![Problem::new(&shown(&config.path), msg).at_key("sender")])?;
    let akt_column = match &config.stamps.akt_id {
        AktIdSource::Column(c) => Some(c.as_str()),
        _ => None,
    };
    let cols = recipients::columns(
        &table,
        &config.recipients,
        akt_column,
        &config.campaign.subject,
    )?;
    let frozen = ledger
        .map(Ledger::frozen)
        .transpose()
        .map_err(|e| {
            vec![Problem::new(
                &shown(&config.path),
                format!("cannot read the ledger: {e:#}"),
            )]
        })?
        .flatten();

    let mut notes = Vec::new();
    let (letter_date, sags_nr) = match &frozen {
        Some(f) => {
            let date: NaiveDate = f
                .letter_date
                .parse()
                .unwrap_or_else(|_| clock::danish_date_at(now));
            let configured = config.stamps.letter_date.unwrap_or(date);
            if configured != date || config.stamps.sags_nr != f.sags_nr {
                notes.push(format!(
                    "the campaign's stamps were frozen when the first letter went out ({}): letter date {}, Sags nr. {}; the config now says {}, Sags nr. {}, which is not used, so every letter stays the same",
                    f.frozen_at,
                    stamp::danish_date(date),
                    f.sags_nr,
                    config.stamps.letter_date.map(stamp::danish_date).unwrap_or_else(|| "today".into()),
                    config.stamps.sags_nr
                ));
            }
            (date, f.sags_nr.clone())
        }
        None => (
            config
                .stamps
                .letter_date
                .unwrap_or_else(|| clock::danish_date_at(now)),
            config.stamps.sags_nr.clone(),
        ),
    };
    let (content_hash, content_desc) = content_fingerprint(&config);
    let mut prepared = Prepared {
        template_hash: hex_digest(template_src.as_bytes()),
        content_hash,
        content_desc,
        config,
        table,
        cols,
        renderer,
        envelope,
        count: 0,
        letter_date,
        sags_nr,
        notes,
    };
    let (problems, count) = check_all(&prepared, &template_src, ledger, now);
    prepared.count = count;
    if problems.is_empty() {
        Ok(prepared)
    } else {
        Err(problems)
    }
}

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
                        "cannot merge the letter for line {} of {}: {}",
                        letter.line,
                        p.table.file.display(),
                        e.message
                    ),
                )),
            })
        }
    };
    if let Some(c) = rendered.subject.chars().find(|c| c.is_control()) {
        return Some(MergeProblem::Other(
            Problem::new(
                &p.table.file,
                format!("the subject for this recipient contains a control character ({c:?})"),
            )
            .at_line(letter.line),
        ));
    }
    compose::compose(&p.envelope, &letter.to, &rendered, &letter.stamp, now)
        .err()
        .map(|msg| {
            MergeProblem::Other(
                Problem::new(&p.table.file, format!("cannot build the e-mail: {msg}"))
                    .at_line(letter.line),
            )
        })
}

/// Reads every row once: checks it, and merges and composes its letter in memory on every core,
/// without keeping it. Returns the problems and the number of rows.
fn check_all(
    p: &Prepared,
    template_src: &str,
    ledger: Option<&Ledger>,
    now: DateTime<Utc>,
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
    let mut akt_seen: HashMap<u64, u64> = HashMap::new();
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
    let mut checker = RowChecker::new(&p.table, &p.cols);
    let mut akt = AktIds::new(&p.config.stamps.akt_id, p.cols.akt_id);
    let mut count = 0usize;
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 8);
    let (letter_tx, letter_rx) = std::sync::mpsc::sync_channel::<Letter>(256);
    let letter_rx = std::sync::Mutex::new(letter_rx);
    let (problem_tx, problem_rx) = std::sync::mpsc::channel::<MergeProblem>();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            let (letters, found) = (&letter_rx, problem_tx.clone());
            scope.spawn(move || loop {
                let next = letters.lock().map(|rx| rx.recv());
                let Ok(Ok(letter)) = next else { break };
                if let Some(problem) = merge_problem(p, &letter, now) {
                    let _ = found.send(problem);
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
                if let Some(first) =
                    akt_seen.insert(recipients::fingerprint(&letter.stamp.akt_id), letter.line)
                {
                    let mut problem = Problem::new(
                        &p.table.file,
                        format!("Akt-id {} is also the Akt-id of the letter on line {first}; each letter needs its own", letter.stamp.akt_id),
                    )
                    .at_line(letter.line);
                    if let Some(c) = p.cols.akt_id {
                        problem = problem.in_column(&p.table.headers[c]);
                    }
                    problems.push(problem);
                }
                if let Some(owner) = akt_used
                    .get(&letter.stamp.akt_id)
                    .filter(|k| **k != letter.key)
                {
                    let mut problem = Problem::new(
                        &p.table.file,
                        format!(
                            "Akt-id {} was already used on the letter to {} (see the ledger); each letter needs its own. Were rows removed or reordered? Then give the new letters Akt-ids of their own (e.g. an akt_id column)",
                            letter.stamp.akt_id,
                            recipients::printable(owner)
                        ),
                    )
                    .at_line(letter.line);
                    if let Some(c) = p.cols.akt_id {
                        problem = problem.in_column(&p.table.headers[c]);
                    }
                    problems.push(problem);
                }
            }
            // One problem per cause: a bad row is not merged as well.
            if fine && letter_tx.send(letter).is_err() {
                break;
            }
        }
        drop(letter_tx);
        merge_problems.extend(problem_rx.iter());
    });
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
                describe_lines(&lines, count),
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

/// The letters with these keys, in file order; an unknown key is an error.
pub fn find_letters(p: &Prepared, ledger: Option<&Ledger>, keys: &[String]) -> Result<Vec<Letter>> {
    let mut found = Vec::new();
    for letter in p.letters(ledger)? {
        let letter = letter?;
        if keys.contains(&letter.key) {
            found.push(letter);
        }
    }
    for key in keys {
        if !found.iter().any(|l| &l.key == key) {
            bail!(
                "there is no recipient with {} \"{key}\" in {}",
                p.config.recipients.key,
                p.table.file.display()
            );
        }
    }
    Ok(found)
}

fn describe_lines(lines: &[u64], total: usize) -> String {
    if lines.len() == total && total > 3 {
        return format!("any row (lines {}–{})", lines[0], lines[lines.len() - 1]);
    }
    let shown: Vec<String> = lines.iter().take(10).map(u64::to_string).collect();
    let more = if lines.len() > 10 {
        format!(" and {} more", lines.len() - 10)
    } else {
        String::new()
    };
    format!(
        "the row{} on line{} {}{more}",
        if lines.len() == 1 { "" } else { "s" },
        if lines.len() == 1 { "" } else { "s" },
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

fn hex_digest(bytes: &[u8]) -> String {
    stamp::hex(&Sha256::digest(bytes))
}

fn row_hash(headers: &[String], fields: &[String]) -> String {
    let mut h = Sha256::new();
    for (k, v) in headers.iter().zip(fields) {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    stamp::hex(&h.finalize())
}

fn content_fingerprint(config: &Config) -> (String, String) {
    let desc: String = config::content_fingerprint_parts(config)
        .into_iter()
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    (hex_digest(desc.as_bytes()), desc)
}

/// What a run does with the recipients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Letters never handed over.
    Send,
    /// Letters that failed; never delivered ones, and unknown ones only when asked.
    Resend {
        temporary_only: bool,
        include_unknown: bool,
    },
}

/// Narrowing of a run to some recipients.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub only: Vec<String>,
    pub limit: Option<usize>,
}

/// One letter a run will send, and the state it had before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub index: usize,
    /// The fingerprint of the recipient's key (`recipients::fingerprint`), to make sure the row at
    /// `index` is still theirs when it is sent.
    pub key: u64,
    pub before: State,
}

/// Who gets a letter in this run, and why the others do not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// The letters to send, in file order.
    pub send: Vec<Planned>,
    pub already_delivered: usize,
    /// Unknown (may have been delivered): skipped unless asked for.
    pub unknown: usize,
    /// Failed earlier; `send` leaves them to `resend --failed`.
    pub failed: usize,
    /// Not attempted yet; `resend` leaves them to `send`.
    pub pending: usize,
    /// Left out by --only, --limit or --temporary-only.
    pub not_selected: usize,
}

/// Decides who gets a letter, from each letter's index, key and ledger state. Pure: the states
/// and the mode decide everything.
pub fn plan<K: AsRef<str>>(
    letters: impl IntoIterator<Item = (usize, K, State)>,
    mode: Mode,
    selection: &Selection,
) -> Plan {
    let mut plan = Plan::default();
    for (index, key, state) in letters {
        let key = key.as_ref();
        let wanted = match (state, mode) {
            (State::Delivered, _) => {
                plan.already_delivered += 1;
                false
            }
            (
                State::Unknown | State::Sending,
                Mode::Resend {
                    include_unknown: true,
                    ..
                },
            ) => true,
            (State::Unknown | State::Sending, _) => {
                plan.unknown += 1;
                false
            }
            (State::Pending, Mode::Send) => true,
            (State::Pending, Mode::Resend { .. }) => {
                plan.pending += 1;
                false
            }
            (State::FailedTemporary | State::FailedPermanent, Mode::Send) => {
                plan.failed += 1;
                false
            }
            (
                State::FailedPermanent,
                Mode::Resend {
                    temporary_only: true,
                    ..
                },
            ) => {
                plan.not_selected += 1;
                false
            }
            (State::FailedTemporary | State::FailedPermanent, Mode::Resend { .. }) => true,
        };
        if !wanted {
            continue;
        }
        if !selection.only.is_empty() && !selection.only.iter().any(|k| k == key) {
            plan.not_selected += 1;
            continue;
        }
        if selection.limit.is_some_and(|n| plan.send.len() >= n) {
            plan.not_selected += 1;
            continue;
        }
        plan.send.push(Planned {
            index,
            key: recipients::fingerprint(key),
            before: state,
        });
    }
    plan
}

/// What changed since the first letters went out that would make the remaining letters differ.
pub fn changes_since_freeze(p: &Prepared, frozen: &Frozen, ledger: &Ledger) -> Result<Vec<String>> {
    let mut changes = Vec::new();
    if frozen.template_hash != p.template_hash {
        changes.push(format!(
            "the letter template {} has changed",
            p.shown(&p.config.template).display()
        ));
    }
    if frozen.content_hash != p.content_hash {
        let before: Vec<&str> = frozen.content_desc.lines().collect();
        for line in p.content_desc.lines() {
            if !before.contains(&line) {
                let key = line.split(" = ").next().unwrap_or(line);
                changes.push(format!(
                    "the setting `{key}` has changed in {}",
                    p.shown(&p.config.path).display()
                ));
            }
        }
    }
    let mut changed_rows = Vec::new();
    for letter in p.letters(Some(ledger))? {
        let letter = letter?;
        let recorded_hash = letter.recorded.as_ref().and_then(|r| r.row_hash.as_deref());
        if recorded_hash.is_some_and(|h| h != letter.row_hash) {
            changed_rows.push(format!("{} (line {})", letter.key, letter.line));
        }
    }
    if !changed_rows.is_empty() {
        changes.push(format!(
            "the recipients file has changed for recipients who were already sent a letter: {}",
            changed_rows.join(", ")
        ));
    }
    Ok(changes)
}

/// How a run went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub delivered: usize,
    pub failed_temporary: usize,
    pub failed_permanent: usize,
    pub unknown: usize,
    /// Set when the run stopped early for a reason that concerns all letters.
    pub stopped: Option<String>,
    /// Letters left for a later run because the run stopped.
    pub left: usize,
}

impl Summary {
    pub fn failed(&self) -> usize {
        self.failed_temporary + self.failed_permanent + self.unknown
    }
}

/// What the send loop tells the person watching. Called only after the outcome is in the ledger.
pub trait Observer {
    fn letter_done(
        &mut self,
        done: usize,
        total: usize,
        letter: &Letter,
        state: State,
        reply: &str,
    );
    fn retrying(&mut self, letter: &Letter, attempt: u32, wait: std::time::Duration, reply: &str);
}

/// Retry and pacing rules for a run.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub retries: u32,
    pub retry_delay: std::time::Duration,
    pub rate_per_minute: Option<u32>,
}

impl Outcome {
    pub fn parts(&self) -> (State, Option<u16>, &str) {
        match self {
            Outcome::Delivered { code, reply } => (State::Delivered, *code, reply),
            Outcome::Temporary { code, reply } => (State::FailedTemporary, *code, reply),
            Outcome::Permanent { code, reply } => (State::FailedPermanent, *code, reply),
            Outcome::Unknown { reply } => (State::Unknown, None, reply),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: [(&str, State); 6] = [
        ("p", State::Pending),
        ("d", State::Delivered),
        ("t", State::FailedTemporary),
        ("f", State::FailedPermanent),
        ("u", State::Unknown),
        ("s", State::Sending),
    ];

    fn run(
        states: &[(&'static str, State)],
        mode: Mode,
        selection: &Selection,
    ) -> (Vec<&'static str>, Plan) {
        let p = plan(
            states.iter().enumerate().map(|(i, (k, s))| (i, *k, *s)),
            mode,
            selection,
        );
        (p.send.iter().map(|x| states[x.index].0).collect(), p)
    }

    #[test]
    fn send_takes_only_letters_never_handed_over() {
        let (keys, plan) = run(&ALL, Mode::Send, &Selection::default());
        assert_eq!(keys, vec!["p"]);
        assert_eq!(
            (plan.already_delivered, plan.failed, plan.unknown),
            (1, 2, 2)
        );
        assert_eq!(plan.send[0].before, State::Pending);
    }

    #[test]
    fn resend_takes_the_failed_and_never_the_delivered() {
        let all = Mode::Resend {
            temporary_only: false,
            include_unknown: false,
        };
        assert_eq!(run(&ALL, all, &Selection::default()).0, vec!["t", "f"]);
        let temp = Mode::Resend {
            temporary_only: true,
            include_unknown: false,
        };
        assert_eq!(run(&ALL, temp, &Selection::default()).0, vec!["t"]);
        let unknown = Mode::Resend {
            temporary_only: false,
            include_unknown: true,
        };
        assert_eq!(
            run(&ALL, unknown, &Selection::default()).0,
            vec!["t", "f", "u", "s"]
        );
    }

    #[test]
    fn only_and_limit_narrow_the_run() {
        let pending = [
            ("a", State::Pending),
            ("b", State::Pending),
            ("c", State::Pending),
            ("d", State::Pending),
        ];
        let only = Selection {
            only: vec!["c".into(), "a".into()],
            limit: None,
        };
        assert_eq!(run(&pending, Mode::Send, &only).0, vec!["a", "c"]);
        let limit = Selection {
            only: vec![],
            limit: Some(3),
        };
        let (keys, plan) = run(&pending, Mode::Send, &limit);
        assert_eq!(keys, vec!["a", "b", "c"]);
        assert_eq!(plan.not_selected, 1);
    }

    #[test]
    fn a_missing_variable_is_found_on_its_template_line() {
        assert_eq!(first_use("{# {{ x }} #}\nHej\n{{ x }}\n", "x"), Some(3));
    }
}
