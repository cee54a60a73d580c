//! A campaign run: check every letter, plan who gets one, hand them over one by one, record each.
//!
//! `prepare` loads and checks the config's template and recipients and resolves every letter's
//! stamps (frozen ones from the ledger first); it writes nothing. `plan` is a pure function of the
//! letters, the ledger records and the mode. `execute` is the send loop: each letter is marked
//! `sending` in the ledger before the transport sees it, and its outcome is recorded right after.
//! This module prints nothing itself; it reports through `Observer`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};

use crate::clock;
use crate::compose::{self, Addressee, Composed, Envelope};
use crate::config::{self, AktIdSource, Config};
use crate::ledger::{Frozen, Ledger, Record, State};
use crate::problem::{display_path, Problem};
use crate::recipients::{self, Columns, Table};
use crate::render::{Rendered, Renderer};
use crate::stamp::{self, Stamp};
use crate::transport::{Outcome, Transport};

/// Everything needed to make each letter, checked.
pub struct Prepared {
    pub config: Config,
    pub table: Table,
    pub cols: Columns,
    pub renderer: Renderer,
    pub envelope: Envelope,
    pub letters: Vec<Letter>,
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
    /// Index into `table.rows`.
    pub row: usize,
    pub key: String,
    pub to: Addressee,
    pub stamp: Stamp,
    pub row_hash: String,
}

impl Prepared {
    /// The recipient's fields by header name, for the template.
    pub fn fields(&self, letter: &Letter) -> BTreeMap<&str, &str> {
        let row = &self.table.rows[letter.row];
        self.table
            .headers
            .iter()
            .map(String::as_str)
            .zip(row.fields.iter().map(String::as_str))
            .collect()
    }

    pub fn render(&self, letter: &Letter) -> Result<Rendered, crate::render::TemplateError> {
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
        let name: String = letter
            .to
            .name
            .chars()
            .map(|c| match c {
                'æ' => "ae".to_string(),
                'ø' => "oe".to_string(),
                'å' => "aa".to_string(),
                'Æ' => "Ae".to_string(),
                'Ø' => "Oe".to_string(),
                'Å' => "Aa".to_string(),
                c if c.is_ascii_alphanumeric() => c.to_string(),
                _ => "-".to_string(),
            })
            .collect::<String>()
            .split('-')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("-");
        let safe = |s: &str| -> String {
            s.chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        };
        let mut stem = format!("{}_{}", safe(&letter.stamp.akt_id), safe(&letter.key));
        if !name.is_empty() {
            stem.push('_');
            stem.push_str(&name.chars().take(60).collect::<String>());
        }
        stem
    }

    pub fn shown(&self, path: &std::path::Path) -> PathBuf {
        display_path(path, &self.config.base)
    }
}

/// Loads the template and the recipients and checks every letter, without writing anything.
/// `ledger` supplies frozen stamps when the campaign has started.
pub fn prepare(
    config: Config,
    ledger: Option<&Ledger>,
    now: DateTime<Utc>,
) -> Result<Prepared, Vec<Problem>> {
    let base = config.base.clone();
    let shown = |p: &std::path::Path| display_path(p, &base);
    let mut problems = Vec::new();

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
    let envelope = Envelope::new(&config.sender);

    let (renderer, table, template_src) = match (renderer, table, template_src) {
        (Ok(r), Ok(t), Ok(src)) => (r, t, src),
        (r, t, _) => {
            if let Err(p) = r {
                problems.extend(p);
            }
            if let Err(p) = t {
                problems.extend(p);
            }
            return Err(problems);
        }
    };
    let envelope = match envelope {
        Ok(e) => e,
        Err(msg) => {
            return Err(vec![
                Problem::new(&shown(&config.path), msg).at_key("sender")
            ])
        }
    };
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
    problems.extend(recipients::check_rows(&table, &cols));

    let frozen = match ledger.map(Ledger::frozen).transpose() {
        Ok(f) => f.flatten(),
        Err(e) => {
            return Err(vec![Problem::new(
                &shown(&config.path),
                format!("cannot read the ledger: {e:#}"),
            )])
        }
    };
    let records: HashMap<String, Record> = match ledger.map(Ledger::records).transpose() {
        Ok(r) => r
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.key.clone(), r))
            .collect(),
        Err(e) => {
            return Err(vec![Problem::new(
                &shown(&config.path),
                format!("cannot read the ledger: {e:#}"),
            )])
        }
    };

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

    let akt_values = cols
        .akt_id
        .map(|c| table.rows.iter().map(|r| r.fields[c].clone()).collect());
    let akt_ids = stamp::akt_ids(&config.stamps.akt_id, table.rows.len(), akt_values);
    let mut letters = Vec::with_capacity(table.rows.len());
    let mut akt_seen: HashMap<String, u64> = HashMap::new();
    for (i, row) in table.rows.iter().enumerate() {
        let key = row.fields[cols.key].clone();
        let record = records.get(&key);
        let stamp = record
            .and_then(Record::frozen_stamp)
            .unwrap_or_else(|| Stamp {
                letter_date,
                sags_nr: sags_nr.clone(),
                akt_id: akt_ids[i].clone(),
                message_id: stamp::message_id(
                    &config.campaign.id,
                    &key,
                    &akt_ids[i],
                    envelope.domain(),
                ),
            });
        if !matches!(config.stamps.akt_id, AktIdSource::Same(_)) {
            if let Some(first) = akt_seen.insert(stamp.akt_id.clone(), row.line) {
                let mut p = Problem::new(
                    &table.file,
                    format!("Akt-id {} is also the Akt-id of the letter on line {first}; each letter needs its own", stamp.akt_id),
                )
                .at_line(row.line);
                if let Some(c) = cols.akt_id {
                    p = p.in_column(&table.headers[c]);
                }
                problems.push(p);
            }
        }
        letters.push(Letter {
            row: i,
            key,
            to: Addressee {
                name: row.fields[cols.name].clone(),
                email: row.fields[cols.email].clone(),
            },
            stamp,
            row_hash: row_hash(&table.headers, &row.fields),
        });
    }

    let (content_hash, content_desc) = content_fingerprint(&config);
    let prepared = Prepared {
        template_hash: hex_digest(template_src.as_bytes()),
        content_hash,
        content_desc,
        config,
        table,
        cols,
        renderer,
        envelope,
        letters,
        letter_date,
        sags_nr,
        notes,
    };
    // Letters whose row already has a problem are not merged: one problem per cause.
    let bad_lines: std::collections::HashSet<u64> = problems
        .iter()
        .filter(|p| p.file == prepared.table.file)
        .filter_map(|p| p.line)
        .collect();
    problems.extend(check_letters(&prepared, &template_src, &bad_lines, now));
    if problems.is_empty() {
        Ok(prepared)
    } else {
        Err(problems)
    }
}

/// Renders and composes every letter in memory; groups template problems by variable.
fn check_letters(
    p: &Prepared,
    template_src: &str,
    bad_lines: &std::collections::HashSet<u64>,
    now: DateTime<Utc>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut missing: BTreeMap<(String, &'static str), Vec<u64>> = BTreeMap::new();
    let template_file = p.shown(&p.config.template);
    for letter in &p.letters {
        let line = p.table.rows[letter.row].line;
        if bad_lines.contains(&line) {
            continue;
        }
        let rendered = match p.render(letter) {
            Ok(r) => r,
            Err(e) => {
                match e.missing_variable {
                    Some(var) => missing.entry((var, e.which)).or_default().push(line),
                    None => problems.push(Problem::new(
                        &template_file,
                        format!(
                            "cannot merge the letter for line {line} of {}: {}",
                            p.table.file.display(),
                            e.message
                        ),
                    )),
                }
                continue;
            }
        };
        if let Some(c) = rendered.subject.chars().find(|c| c.is_control()) {
            problems.push(
                Problem::new(
                    &p.table.file,
                    format!("the subject for this recipient contains a control character ({c:?})"),
                )
                .at_line(line),
            );
            continue;
        }
        if let Err(msg) = compose::compose(&p.envelope, &letter.to, &rendered, &letter.stamp, now) {
            problems.push(
                Problem::new(&p.table.file, format!("cannot build the e-mail: {msg}"))
                    .at_line(line),
            );
        }
    }
    for ((var, which), lines) in missing {
        let (file, source) = if which == "subject" {
            (p.shown(&p.config.path), p.config.campaign.subject.as_str())
        } else {
            (template_file.clone(), template_src)
        };
        let mut problem = Problem::new(
            &file,
            format!(
                "the {which} template uses `{var}`, but {} has no such column or value for {} (columns: {})",
                p.table.file.display(),
                describe_lines(&lines, p.letters.len()),
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
    problems
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
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn row_hash(headers: &[String], fields: &[String]) -> String {
    let mut h = Sha256::new();
    for (k, v) in headers.iter().zip(fields) {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
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

/// Who gets a letter in this run, and why the others do not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Indices into `Prepared::letters`, in file order.
    pub send: Vec<usize>,
    pub already_delivered: usize,
    /// Unknown (may have been delivered): skipped unless asked for.
    pub unknown: usize,
    /// Failed earlier; `send` leaves them to `resend --failed`.
    pub failed: usize,
    /// Not attempted yet; `resend` leaves them to `send`.
    pub pending: usize,
    /// Left out by --only or --limit.
    pub not_selected: usize,
}

/// Decides who gets a letter. Pure: the ledger's records and the mode decide everything.
pub fn plan(
    letters: &[Letter],
    records: &HashMap<String, Record>,
    mode: Mode,
    selection: &Selection,
) -> Plan {
    let mut plan = Plan::default();
    for (i, letter) in letters.iter().enumerate() {
        let state = records
            .get(&letter.key)
            .map(|r| r.state)
            .unwrap_or(State::Pending);
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
        if !selection.only.is_empty() && !selection.only.iter().any(|k| k == &letter.key) {
            plan.not_selected += 1;
            continue;
        }
        if selection.limit.is_some_and(|n| plan.send.len() >= n) {
            plan.not_selected += 1;
            continue;
        }
        plan.send.push(i);
    }
    plan
}

/// What the run found out about what changed since the first letters went out.
pub fn changes_since_freeze(
    p: &Prepared,
    frozen: &Frozen,
    records: &HashMap<String, Record>,
) -> Vec<String> {
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
                    "{} `{key}` has changed in {}",
                    "the setting",
                    p.shown(&p.config.path).display()
                ));
            }
        }
    }
    let mut changed_rows = Vec::new();
    for letter in &p.letters {
        if let Some(r) = records.get(&letter.key) {
            if r.row_hash.as_deref().is_some_and(|h| h != letter.row_hash) {
                changed_rows.push(format!(
                    "{} (line {})",
                    letter.key, p.table.rows[letter.row].line
                ));
            }
        }
    }
    if !changed_rows.is_empty() {
        changes.push(format!(
            "the recipients file has changed for recipients who were already sent a letter: {}",
            changed_rows.join(", ")
        ));
    }
    changes
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

/// What the send loop tells the person watching.
pub trait Observer {
    fn letter_done(
        &mut self,
        done: usize,
        total: usize,
        letter: &Letter,
        state: State,
        reply: &str,
    );
    fn retrying(&mut self, letter: &Letter, attempt: u32, wait: Duration, reply: &str);
}

/// Retry and pacing rules for a run.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub retries: u32,
    pub retry_delay: Duration,
    pub rate_per_minute: Option<u32>,
}

/// Set by Ctrl-C: the letter in flight finishes, no new one starts.
pub static STOP: AtomicBool = AtomicBool::new(false);

/// The send loop. Each letter: `sending` is committed, the message is composed with the current
/// time as its Date, handed over, and its outcome committed, before the next one starts.
pub fn execute(
    p: &Prepared,
    ledger: &mut Ledger,
    transport: &mut dyn Transport,
    plan: &Plan,
    pace: Pace,
    observer: &mut dyn Observer,
) -> Result<Summary> {
    let mut summary = Summary::default();
    let started = Instant::now();
    let interval = pace
        .rate_per_minute
        .map(|r| Duration::from_secs_f64(60.0 / r as f64));
    let mut handed = 0u32;
    for (n, &i) in plan.send.iter().enumerate() {
        if STOP.load(Ordering::SeqCst) {
            summary.stopped = Some("stopped by Ctrl-C".into());
            summary.left = plan.send.len() - n;
            break;
        }
        let letter = &p.letters[i];
        let mut attempt = 0u32;
        let final_state = loop {
            if let Some(interval) = interval {
                let due = interval * handed;
                if let Some(wait) = due.checked_sub(started.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            let now = clock::now();
            let (_, composed) = p.compose(letter, now).map_err(anyhow::Error::msg)?;
            let id = ledger.start(
                &letter.key,
                &letter.stamp,
                &letter.row_hash,
                transport.kind(),
                &clock::stamp_time(now),
            )?;
            handed += 1;
            let outcome = transport.send(&composed, &p.file_stem(letter));
            let done_at = clock::stamp_time(clock::now());
            let outcome = match outcome {
                Ok(o) => o,
                Err(stop) => {
                    // Nothing was handed over: the letter goes back to where it was.
                    let before = if attempt == 0 {
                        previous_state(ledger, &letter.key)?
                    } else {
                        State::FailedTemporary
                    };
                    ledger.finish(
                        id,
                        &letter.key,
                        before,
                        None,
                        &format!("not sent: {stop}"),
                        &done_at,
                    )?;
                    summary.stopped = Some(stop.to_string());
                    summary.left = plan.send.len() - n;
                    return Ok(summary);
                }
            };
            let (state, code, reply) = outcome.parts();
            ledger.finish(id, &letter.key, state, code, reply, &done_at)?;
            if state == State::FailedTemporary
                && attempt < pace.retries
                && !STOP.load(Ordering::SeqCst)
            {
                attempt += 1;
                let wait = pace.retry_delay * 2u32.saturating_pow(attempt - 1);
                observer.retrying(letter, attempt, wait, reply);
                std::thread::sleep(wait);
                continue;
            }
            observer.letter_done(n + 1, plan.send.len(), letter, state, reply);
            break state;
        };
        match final_state {
            State::Delivered => summary.delivered += 1,
            State::FailedTemporary => summary.failed_temporary += 1,
            State::FailedPermanent => summary.failed_permanent += 1,
            _ => summary.unknown += 1,
        }
    }
    Ok(summary)
}

/// The state a letter had before this run touched it (pending, or failed for a resend).
fn previous_state(ledger: &Ledger, key: &str) -> Result<State> {
    let attempts = ledger.attempts()?;
    let earlier = attempts
        .iter()
        .rfind(|a| a.key == key && a.finished_at.is_some());
    Ok(earlier.map(|a| a.state).unwrap_or(State::Pending))
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

    fn letters(keys: &[&str]) -> Vec<Letter> {
        keys.iter()
            .enumerate()
            .map(|(i, k)| Letter {
                row: i,
                key: k.to_string(),
                to: Addressee {
                    name: k.to_string(),
                    email: format!("{k}@x.dk"),
                },
                stamp: Stamp {
                    letter_date: NaiveDate::from_ymd_opt(2020, 6, 29).unwrap(),
                    sags_nr: "S".into(),
                    akt_id: i.to_string(),
                    message_id: format!("{i}@x"),
                },
                row_hash: String::new(),
            })
            .collect()
    }

    fn records(states: &[(&str, State)]) -> HashMap<String, Record> {
        states
            .iter()
            .map(|(k, s)| {
                (
                    k.to_string(),
                    Record {
                        key: k.to_string(),
                        position: 0,
                        address: String::new(),
                        name: String::new(),
                        state: *s,
                        attempts: 1,
                        last_code: None,
                        last_reply: None,
                        message_id: None,
                        letter_date: None,
                        sags_nr: None,
                        akt_id: None,
                        row_hash: None,
                        updated_at: String::new(),
                        delivered_at: None,
                    },
                )
            })
            .collect()
    }

    const ALL: [&str; 6] = ["p", "d", "t", "f", "u", "s"];

    fn mixed() -> HashMap<String, Record> {
        records(&[
            ("p", State::Pending),
            ("d", State::Delivered),
            ("t", State::FailedTemporary),
            ("f", State::FailedPermanent),
            ("u", State::Unknown),
            ("s", State::Sending),
        ])
    }

    fn keys(plan: &Plan, letters: &[Letter]) -> Vec<String> {
        plan.send.iter().map(|&i| letters[i].key.clone()).collect()
    }

    #[test]
    fn send_takes_only_letters_never_handed_over() {
        let l = letters(&ALL);
        let plan = plan(&l, &mixed(), Mode::Send, &Selection::default());
        assert_eq!(keys(&plan, &l), vec!["p"]);
        assert_eq!(
            (plan.already_delivered, plan.failed, plan.unknown),
            (1, 2, 2)
        );
    }

    #[test]
    fn resend_takes_the_failed_and_never_the_delivered() {
        let l = letters(&ALL);
        let all = Mode::Resend {
            temporary_only: false,
            include_unknown: false,
        };
        assert_eq!(
            keys(&plan(&l, &mixed(), all, &Selection::default()), &l),
            vec!["t", "f"]
        );
        let temp = Mode::Resend {
            temporary_only: true,
            include_unknown: false,
        };
        assert_eq!(
            keys(&plan(&l, &mixed(), temp, &Selection::default()), &l),
            vec!["t"]
        );
        let unknown = Mode::Resend {
            temporary_only: false,
            include_unknown: true,
        };
        assert_eq!(
            keys(&plan(&l, &mixed(), unknown, &Selection::default()), &l),
            vec!["t", "f", "u", "s"]
        );
    }

    #[test]
    fn only_and_limit_narrow_the_run() {
        let l = letters(&["a", "b", "c", "d"]);
        let none = HashMap::new();
        let only = Selection {
            only: vec!["c".into(), "a".into()],
            limit: None,
        };
        assert_eq!(
            keys(&plan(&l, &none, Mode::Send, &only), &l),
            vec!["a", "c"]
        );
        let limit = Selection {
            only: vec![],
            limit: Some(3),
        };
        let p = plan(&l, &none, Mode::Send, &limit);
        assert_eq!(keys(&p, &l), vec!["a", "b", "c"]);
        assert_eq!(p.not_selected, 1);
    }

    #[test]
    fn a_missing_variable_is_found_on_its_template_line() {
        assert_eq!(first_use("{# {{ x }} #}\nHej\n{{ x }}\n", "x"), Some(3));
    }
}
