//! A campaign: check every letter, stream the letters, and plan who gets one in a run.
//!
//! `prepare` opens the template and the recipients and checks every letter (merged and checked
//! in memory, one at a time: composed, or, where only its size depends on composing it, checked
//! on its headers with its size bounded, see `check_merged`); it writes nothing, and a run that
//! wants the composed letters (the preview) has them handed to its `Keeper` as the check makes
//! them, instead of composing them again. `Prepared::letters` streams the letters again,
//! each with its stamps (frozen ones from the ledger first), so no campaign is ever held in
//! memory whole. `plan` is a pure function of the letters' states and the mode. The send loop
//! itself is in `delivery`. This module prints nothing and never writes to the ledger.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use chrono::{DateTime, NaiveDate, Utc};
use sha2::{Digest, Sha256};

use crate::clock;
use crate::config::{self, AktIdSource, Config};
use crate::letter::attachment::{self, Attached};
use crate::letter::bound;
use crate::letter::compose::{self, Addressee, ComposeError, Composed, Envelope, Frame};
use crate::letter::pdf;
use crate::letter::render::{html_document, Merged, Rendered, Renderer, TemplateError};
use crate::letter::stamp::{self, Stamp};
use crate::problem::{display_path, Problem};
use crate::record::ledger::{Frozen, Ledger, Recorded, State};
pub(crate) use check::Keeper;
use enclosures::Enclosures;
use recipients::{Columns, Row, Table};

/// At most this many problems are listed; the rest are counted.
pub(crate) const MAX_PROBLEMS: usize = 200;

pub(crate) mod check;
pub(crate) mod enclosures;
pub(crate) mod guard;
mod in_order;
pub(crate) mod plan;
pub(crate) mod recipients;
pub(crate) mod workbook;

/// Everything needed to make each letter, checked.
pub(crate) struct Prepared {
    pub config: Config,
    pub table: Table,
    pub cols: Columns,
    pub renderer: Renderer,
    /// The PDF letter, the cover text and the attachments.
    pub enclosures: Enclosures,
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

/// One letter made: the e-mail's text, the message, and the PDF letter when there is one.
pub(crate) struct Made {
    pub body: Rendered,
    pub composed: Composed,
    pub pdf: Option<Attached>,
}

/// One recipient's letter, before rendering.
#[derive(Debug, Clone)]
pub(crate) struct Letter {
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
    pub(crate) fn state(&self) -> State {
        self.recorded
            .as_ref()
            .map(|r| r.state)
            .unwrap_or(State::Pending)
    }

    /// Whether the row differs from the one the letter went out with, and that change was not
    /// accepted (with --accept-changes) as the row now is.
    pub(crate) fn row_changed_since_sent(&self) -> bool {
        let Some(recorded) = &self.recorded else {
            return false;
        };
        let sent_as = recorded.row_hash.as_deref();
        let accepted = recorded.accepted_row_hash.as_deref();
        sent_as.is_some_and(|h| h != self.row_hash) && accepted != Some(self.row_hash.as_str())
    }

    /// Whether the recipients file now gives another address than the one the letter last went
    /// to: a bounced letter is sent again only then.
    pub(crate) fn address_corrected(&self) -> bool {
        self.recorded
            .as_ref()
            .is_some_and(|r| !r.address.trim().eq_ignore_ascii_case(self.to.email.trim()))
    }
}

impl Prepared {
    /// The recipient's fields by header name, for the template.
    pub(crate) fn fields<'a>(&'a self, letter: &'a Letter) -> BTreeMap<&'a str, &'a str> {
        self.table
            .headers
            .iter()
            .map(String::as_str)
            .zip(letter.fields.iter().map(String::as_str))
            .collect()
    }

    pub(crate) fn render(&self, letter: &Letter) -> Result<Rendered, TemplateError> {
        self.renderer.render(&self.fields(letter), &letter.stamp)
    }

    /// The letter's subject and Markdown, merged but not rendered (see `Renderer::merge`).
    pub(crate) fn merge(&self, letter: &Letter) -> Result<Merged, TemplateError> {
        self.renderer.merge(&self.fields(letter), &letter.stamp)
    }

    /// Whether a merged letter can be checked without making its message (`check_merged`):
    /// when the message is the letter's own text and its files, and only its size depends on
    /// making it. A letter on the letterhead (its PDF is set from the text) or under a cover
    /// (another template) can fail in ways only making it shows.
    pub(crate) fn checks_light(&self) -> bool {
        self.enclosures.letterhead.is_none() && self.enclosures.cover.is_none()
    }

    /// Renders and composes a letter dated `date`: the e-mail's text and the message.
    pub(crate) fn compose(
        &self,
        letter: &Letter,
        date: DateTime<Utc>,
    ) -> Result<(Rendered, Composed), ComposeError> {
        let made = self.make(letter, date)?;
        Ok((made.body, made.composed))
    }

    /// Renders and composes a letter dated `date`, with its PDF and attachments.
    pub(crate) fn make(&self, letter: &Letter, date: DateTime<Utc>) -> Result<Made, ComposeError> {
        let rendered = self.render(letter)?;
        self.make_own(letter, rendered, date)
    }

    /// `make_rendered` to the letter's own recipient, with its own stamps.
    fn make_own(
        &self,
        letter: &Letter,
        rendered: Rendered,
        date: DateTime<Utc>,
    ) -> Result<Made, ComposeError> {
        self.make_rendered(
            letter,
            rendered,
            &self.envelope,
            &letter.to,
            &letter.stamp,
            date,
        )
    }

    /// The letter as a PDF on the letterhead, named "<Akt-id> <navn>.pdf", when the campaign
    /// sends PDFs.
    pub(crate) fn pdf(
        &self,
        letter: &Letter,
        rendered: &Rendered,
    ) -> Result<Option<Attached>, ComposeError> {
        let Some(head) = &self.enclosures.letterhead else {
            return Ok(None);
        };
        let recipient = self
            .enclosures
            .recipient_lines(&letter.to.name, &letter.fields);
        let bytes = pdf::render(
            head,
            &pdf::Letter {
                title: &rendered.subject,
                recipient: &recipient,
                stamp: &letter.stamp,
                markdown: &rendered.markdown,
            },
        )
        .map_err(ComposeError::files)?;
        Ok(Some(Attached::new(
            attachment::pdf_name(&letter.stamp.akt_id, &letter.to.name),
            std::sync::Arc::new(bytes),
        )))
    }

    /// Makes the message from a merged letter, to `to` with `stamp` (a test letter has its own).
    /// A message larger than the campaign's limit is refused, naming the recipient.
    pub(crate) fn make_rendered(
        &self,
        letter: &Letter,
        rendered: Rendered,
        envelope: &Envelope,
        to: &Addressee,
        stamp: &Stamp,
        date: DateTime<Utc>,
    ) -> Result<Made, ComposeError> {
        let e = &self.enclosures;
        let pdf = self.pdf(letter, &rendered)?;
        let body = match &e.cover {
            Some(cover) => cover
                .render(&self.fields(letter), &letter.stamp)
                .map_err(|e| {
                    ComposeError::from(crate::letter::render::TemplateError {
                        message: format!("the cover template: {}", e.message),
                        ..e
                    })
                })?,
            None => rendered,
        };
        let mut files: Vec<Attached> = pdf.iter().cloned().collect();
        files.extend(e.files(&letter.fields).map_err(ComposeError::files)?);
        let composed = compose::compose_with(envelope, to, &body, stamp, date, &files)?;
        let size = composed.bytes.len() as u64;
        if size > e.max_size {
            return Err(ComposeError::files(format!(
                "the letter to {} would be {:.1} MB with its attachments, more than the limit of {:.1} MB (letter.max_size_mb in {})",
                crate::sanitize::printable(&letter.to.name),
                size as f64 / 1e6,
                e.max_size as f64 / 1e6,
                self.shown(&self.config.path).display()
            )));
        }
        Ok(Made {
            body,
            composed,
            pdf,
        })
    }

    /// Checks a merged letter dated `date` as `make_rendered` checks it, with the same errors,
    /// for a campaign that `checks_light`: its files are read, every check of the message is
    /// made on its frame (`compose::frame`), and its size is bounded from the Markdown
    /// (`letter::bound`) without rendering the Markdown or encoding anything. Only when that
    /// bound is over the limit is the message made, and its real size decides: a letter is
    /// refused exactly when `make_rendered` refuses it.
    pub(crate) fn check_merged(
        &self,
        letter: &Letter,
        merged: Merged,
        date: DateTime<Utc>,
    ) -> Result<(), ComposeError> {
        let files = self
            .enclosures
            .files(&letter.fields)
            .map_err(ComposeError::files)?;
        let frame = compose::frame(
            &self.envelope,
            &letter.to,
            &merged.subject,
            &letter.stamp,
            date,
            &files,
        )?;
        if size_at_most(&frame, &merged) <= self.enclosures.max_size {
            return Ok(());
        }
        self.make_own(letter, merged.render(), date).map(drop)
    }

    /// A file name a person can find a letter by: Akt-id, key and name.
    pub(crate) fn file_stem(&self, letter: &Letter) -> String {
        file_stem(&letter.stamp.akt_id, &letter.key, &letter.to.name)
    }

    /// The stamps to freeze in the ledger at this run: the campaign's own on the first run; after
    /// `--accept-changes`, the frozen date and Sags nr. kept with the accepted template and
    /// settings; `None` when the frozen stamps stay as they are.
    pub(crate) fn freeze(
        &self,
        frozen: Option<&Frozen>,
        accept_changes: bool,
        now: &str,
    ) -> Option<Frozen> {
        if frozen.is_some() && !accept_changes {
            return None;
        }
        Some(Frozen {
            campaign_id: self.config.campaign.id.clone(),
            letter_date: frozen
                .map(|f| f.letter_date.clone())
                .unwrap_or_else(|| self.letter_date.to_string()),
            sags_nr: frozen
                .map(|f| f.sags_nr.clone())
                .unwrap_or_else(|| self.sags_nr.clone()),
            template_hash: self.template_hash.clone(),
            content_hash: self.content_hash.clone(),
            content_desc: self.content_desc.clone(),
            frozen_at: frozen
                .map(|f| f.frozen_at.clone())
                .unwrap_or_else(|| now.to_string()),
        })
    }

    pub(crate) fn shown(&self, path: &Path) -> PathBuf {
        display_path(path, &self.config.base)
    }

    /// Streams the letters in file order, each with its stamps: the frozen ones from `ledger`
    /// when the letter was handed over before, otherwise the campaign's. Reads the file again;
    /// a row that cannot be read now (the file changed since the check) is an error.
    pub(crate) fn letters<'a>(
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

    pub(crate) fn letter(
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

/// The most bytes the message of a merged letter with this frame can have: the frame with a
/// text part and an HTML document as large as `letter::bound` allows, the HTML document being
/// the page `html_document` puts the HTML body in.
fn size_at_most(frame: &Frame, merged: &Merged) -> u64 {
    let parts = bound::parts_at_most(&merged.markdown);
    let html = html_document(&merged.subject, "")
        .len()
        .saturating_add(parts.html_body);
    frame.at_most(parts.text, html) as u64
}

/// The file stem of a letter with this Akt-id, key and name: `<Akt-id>_<key>_<name>`, the name
/// spelt in ASCII. The archive and the outbox name a letter's files by it.
pub(crate) fn file_stem(akt_id: &str, key: &str, to_name: &str) -> String {
    let mut name = String::new();
    for c in to_name.chars() {
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
    let mut stem = format!("{}_{}", stamp::safe_token(akt_id), stamp::safe_token(key));
    if !name.is_empty() {
        stem.push('_');
        stem.extend(name.chars().take(60));
    }
    stem
}

/// Hands out each row's Akt-id from the configured source.
pub(crate) struct AktIds<'a> {
    source: &'a AktIdSource,
    column: Option<usize>,
    next: String,
}

impl<'a> AktIds<'a> {
    pub(crate) fn new(source: &'a AktIdSource, column: Option<usize>) -> AktIds<'a> {
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

    pub(crate) fn next(&mut self, row: &Row) -> String {
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
pub(crate) fn prepare(
    config: Config,
    ledger: Option<&Ledger>,
    now: DateTime<Utc>,
) -> Result<Prepared, Vec<Problem>> {
    prepare_seeing(config, ledger, now, &mut |_| {})
}

/// `prepare`, showing every readable letter to `see` as the check passes it (for the checks
/// a run adds, such as the `guard`'s, without reading the file again).
pub(crate) fn prepare_seeing(
    config: Config,
    ledger: Option<&Ledger>,
    now: DateTime<Utc>,
    see: &mut dyn FnMut(&Letter),
) -> Result<Prepared, Vec<Problem>> {
    prepare_keeping::<()>(config, ledger, now, see, None).map(|(prepared, _)| prepared)
}

/// `prepare_seeing`, handing each letter the check composed without a problem to `keeper`, if
/// any (see `Keeper`); with the campaign comes how the keeping went (its first error).
pub(crate) fn prepare_keeping<T: Send>(
    config: Config,
    ledger: Option<&Ledger>,
    now: DateTime<Utc>,
    see: &mut dyn FnMut(&Letter),
    keeper: Option<Keeper<'_, T>>,
) -> Result<(Prepared, Result<()>), Vec<Problem>> {
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
        .map_err(|msg| vec![Problem::new(&shown(&config.path), msg).at_key("sender")])?
        .asking_read_receipt(config.receipts.read_receipt);
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
    let enclosures = enclosures::load(&config, &table)?;
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
    let (content_hash, content_desc) = content_fingerprint(&config, &enclosures);
    let mut prepared = Prepared {
        template_hash: hex_digest(template_src.as_bytes()),
        content_hash,
        content_desc,
        config,
        table,
        cols,
        renderer,
        enclosures,
        envelope,
        count: 0,
        letter_date,
        sags_nr,
        notes,
    };
    let (problems, count, kept) =
        check::check_all(&prepared, &template_src, ledger, now, see, keeper);
    prepared.count = count;
    if problems.is_empty() {
        Ok((prepared, kept))
    } else {
        Err(problems)
    }
}

/// The letters with these keys, in file order; an unknown key is an error.
pub(crate) fn find_letters(
    p: &Prepared,
    ledger: Option<&Ledger>,
    keys: &[String],
) -> Result<Vec<Letter>> {
    let mut found = Vec::new();
    for letter in p.letters(ledger)? {
        let letter = letter?;
        if keys.contains(&letter.key) {
            found.push(letter);
        }
    }
    for key in keys {
        if !found.iter().any(|l| &l.key == key) {
            return Err(no_recipient(p, key));
        }
    }
    Ok(found)
}

/// The error for a key that no recipient has.
pub(crate) fn no_recipient(p: &Prepared, key: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "there is no recipient with {} \"{key}\" in {}",
        p.config.recipients.key,
        p.table.file.display()
    )
}

fn hex_digest(bytes: &[u8]) -> String {
    crate::digest::hex(&Sha256::digest(bytes))
}

fn row_hash(headers: &[String], fields: &[String]) -> String {
    let mut h = Sha256::new();
    for (k, v) in headers.iter().zip(fields) {
        h.update(k.as_bytes());
        h.update([0]);
        h.update(v.as_bytes());
        h.update([0]);
    }
    crate::digest::hex(&h.finalize())
}

fn content_fingerprint(config: &Config, enclosures: &Enclosures) -> (String, String) {
    let desc: String = config::content_fingerprint_parts(config)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain(enclosures.fingerprint.clone())
        .map(|(k, v)| format!("{k} = {v}\n"))
        .collect();
    (hex_digest(desc.as_bytes()), desc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(akt_id: &str) -> Row {
        Row {
            line: 2,
            fields: vec![akt_id.to_string()],
        }
    }

    #[test]
    fn akt_ids_are_numbered_on_keeping_leading_zeros() {
        let source = AktIdSource::Sequence("0098".into());
        let mut akt = AktIds::new(&source, None);
        let ids: Vec<String> = (0..3).map(|_| akt.next(&row(""))).collect();
        assert_eq!(ids, vec!["0098", "0099", "0100"]);
    }

    #[test]
    fn the_same_akt_id_goes_on_every_letter_or_comes_from_a_column() {
        let same = AktIdSource::Same("1286555".into());
        let mut akt = AktIds::new(&same, None);
        assert_eq!(
            [akt.next(&row("x")), akt.next(&row("y"))],
            ["1286555", "1286555"]
        );
        let column = AktIdSource::Column("akt_id".into());
        let mut akt = AktIds::new(&column, Some(0));
        assert_eq!(akt.next(&row("0042")), "0042");
    }
}
