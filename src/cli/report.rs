//! `rundbrev report`: writes the delivery record for the case file (journalisering).
//!
//! The facts come from the ledger (the stamps frozen at the first send); the letter's text is the
//! first delivered letter, merged again from the template with its frozen stamps. The files are
//! made by `record::report`; this command gathers, writes and says where they are. It never
//! changes the ledger and never sends anything.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::campaign;
use crate::cli::args::{OutputFormat, ReportArgs};
use crate::cli::exit::Exit;
use crate::cli::output::Output;
use crate::cli::storage;
use crate::clock;
use crate::config::Config;
use crate::delivery::archive;
use crate::problem::display_path;
use crate::record::ledger::{Ledger, State};
use crate::record::report::{self, Facts, PdfEntry, ShownLetter};
use crate::record::status::{self, StatusRow};
use crate::record::storage::Cause;
use crate::sanitize::printable;

#[derive(Serialize)]
struct JsonReport<'a> {
    #[serde(flatten)]
    facts: &'a Facts,
    csv: String,
    html: String,
    counts: std::collections::BTreeMap<&'static str, usize>,
    recipients: &'a [StatusRow],
}

/// Reads the ledger, writes both files, says where they are.
pub(super) fn run(config: &Config, args: &ReportArgs, out: &Output) -> Result<Exit> {
    let ledger_path = Ledger::path_for(&config.ledger_dir, &config.campaign.id);
    let shown = |p: &Path| display_path(p, &config.base).display().to_string();
    let Some(ledger) = Ledger::open_existing(&ledger_path)? else {
        bail!(
            "there is nothing to report yet: no letter of campaign {} has been sent (there is no ledger at {}). Run `rundbrev send` first.",
            config.campaign.id,
            shown(&ledger_path)
        );
    };
    let rows = status::rows(
        &ledger.records()?,
        &ledger.receipts()?,
        Ledger::is_locked(&ledger_path),
    );
    let frozen = ledger.frozen()?;
    let facts = Facts {
        campaign: config.campaign.id.clone(),
        sags_nr: frozen
            .as_ref()
            .map(|f| f.sags_nr.clone())
            .unwrap_or_else(|| config.stamps.sags_nr.clone()),
        letter_date: frozen
            .as_ref()
            .map(|f| f.letter_date.clone())
            .or_else(|| config.stamps.letter_date.map(|d| d.to_string()))
            .unwrap_or_default(),
        sender: config.sender.from.clone(),
        frozen_at: frozen.as_ref().map(|f| f.frozen_at.clone()),
        made_at: clock::stamp_time(clock::now()),
    };
    let letter = match shown_letter(config, &ledger, &rows) {
        Ok(l) => l,
        Err(e) => {
            out.note(format!("the report leaves out the letter's text: {e:#}"));
            None
        }
    };

    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| config.base.join("report"));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the report folder {}", dir.display()))?;
    let stem = format!("leveringsrapport-{}", config.campaign.id);
    let csv_path = dir.join(format!("{stem}.csv"));
    let html_path = dir.join(format!("{stem}.html"));
    let pdfs = match pdf_letters(config, &ledger) {
        Ok(p) => p,
        Err(e) => {
            out.note(format!("the report leaves out the PDF letters: {e:#}"));
            Default::default()
        }
    };
    let mut csv = Vec::new();
    report::write_csv(&mut csv, &config.recipients.key, &rows, &pdfs)?;
    let html = report::html(&facts, &rows, letter.as_ref(), &pdfs);
    // Both files or neither: never a new table beside an old summary.
    crate::whole_file::write_all_or_none(&[(&csv_path, &csv), (&html_path, html.as_bytes())])
        .map_err(|e| cannot_write(&dir, &shown(&dir), e))?;

    if args.format == OutputFormat::Json {
        let report = JsonReport {
            facts: &facts,
            csv: shown(&csv_path),
            html: shown(&html_path),
            counts: status::counts(&rows),
            recipients: &rows,
        };
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut stdout, &report)?;
        writeln!(stdout)?;
        return Ok(Exit::Done);
    }
    out.always(format!(
        "Wrote the delivery report for the case file:\n  {}  (one row per recipient; opens in Excel)\n  {}  (a printable summary with the letter's text)\n{} recipients: {}.",
        shown(&csv_path),
        shown(&html_path),
        rows.len(),
        status::counts_line(&rows)
    ));
    Ok(Exit::Done)
}

/// A report that could not be written, in plain words when the disk is the reason.
fn cannot_write(dir: &Path, shown_dir: &str, e: std::io::Error) -> anyhow::Error {
    match Cause::of_io(&e) {
        Some(cause) => anyhow::anyhow!(
            "cannot write the delivery report to {shown_dir}: {}. No report file was changed: any earlier report there is as it was, and nothing half-written was kept.\nWhat to do: {}.",
            storage::why(cause),
            storage::fix(
                cause,
                "the report folder",
                "write the report elsewhere with `--out FOLDER`",
                "run `rundbrev report` again"
            )
        ),
        None => anyhow::Error::new(e).context(format!(
            "cannot write the delivery report to {}",
            dir.display()
        )),
    }
}

/// The PDF of every letter that was handed over, by recipient key; empty when the campaign sends
/// no PDFs. A PDF letter is a pure function of the letter and its frozen stamps, so it is made
/// again here: the same bytes as went out (a changed template or file is refused at send unless
/// accepted, and then the digest shown is the current one).
fn pdf_letters(config: &Config, ledger: &Ledger) -> Result<BTreeMap<String, PdfEntry>> {
    let mut out = BTreeMap::new();
    if !config.letter.pdf {
        return Ok(out);
    }
    let p = campaign::prepare(config.clone(), Some(ledger), clock::now())
        .map_err(crate::problem::Problems)
        .context("the campaign's files no longer check")?;
    for letter in p.letters(Some(ledger))? {
        let letter = letter?;
        // Only a letter handed over has frozen stamps, and so a PDF that went out.
        let handed_over = letter.recorded.as_ref().and_then(|r| r.stamp.as_ref());
        if handed_over.is_none() {
            continue;
        }
        let rendered = p.render(&letter).map_err(|e| anyhow::anyhow!(e.message))?;
        if let Some(pdf) = p.pdf(&letter, &rendered).map_err(anyhow::Error::msg)? {
            let sha256 = crate::digest::hex(&Sha256::digest(pdf.bytes.as_slice()));
            out.insert(
                letter.key.clone(),
                PdfEntry {
                    file: pdf.name,
                    sha256,
                },
            );
        }
    }
    Ok(out)
}

/// The first delivered letter, merged again with its frozen stamps.
fn shown_letter(
    config: &Config,
    ledger: &Ledger,
    rows: &[StatusRow],
) -> Result<Option<ShownLetter>> {
    let Some(row) = rows.iter().find(|r| r.state == State::Delivered.as_str()) else {
        return Ok(None);
    };
    let p = campaign::prepare(config.clone(), Some(ledger), clock::now())
        .map_err(crate::problem::Problems)
        .context("the campaign's files no longer check")?;
    let letter = campaign::find_letters(&p, Some(ledger), std::slice::from_ref(&row.key))
        .with_context(|| {
            format!(
                "{} is no longer in the recipients file",
                printable(&row.key)
            )
        })?
        .remove(0);
    let letter = &letter;
    let rendered = p.render(letter).map_err(|e| anyhow::anyhow!(e.message))?;
    let archived = archive::path_for(&config.archive_dir, &p.file_stem(letter));
    Ok(Some(ShownLetter {
        name: letter.to.name.clone(),
        akt_id: letter.stamp.akt_id.clone(),
        subject: rendered.subject,
        html_body: rendered.html_body,
        archived: archived
            .exists()
            .then(|| display_path(&archived, &config.base).display().to_string()),
    }))
}
