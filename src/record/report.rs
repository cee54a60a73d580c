//! The delivery record for the case file (journalisering), as the files `rundbrev report` writes.
//!
//! Two files, in Danish: a CSV with one row per recipient (kommunekode, navn, adresse, akt_id,
//! status, tidspunkt, serverens_svar, message_id), and a printable HTML summary with the campaign, the
//! Sags nr., the letter date, the count in each state, the letter's text once and the same table.
//! The facts come from the ledger (the stamps frozen at the first send); the letter's text is the
//! first delivered letter, merged again from the template with its frozen stamps. This module only
//! reads the ledger; it never changes it and never sends anything.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use crate::letter::render::escape_html;
use crate::letter::stamp;
use crate::record::ledger::State;
use crate::record::status::{self, StatusRow};
use crate::record::wording;
use crate::sanitize::printable;

/// The campaign-wide facts at the top of the report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Facts {
    pub campaign: String,
    pub sags_nr: String,
    /// ISO date, as frozen in the ledger.
    pub letter_date: String,
    pub sender: String,
    /// When the stamps were frozen (the first send), if they were.
    pub frozen_at: Option<String>,
    /// When this report was made.
    pub made_at: String,
}

/// The one letter shown in full.
pub(crate) struct ShownLetter {
    pub name: String,
    pub akt_id: String,
    pub subject: String,
    pub html_body: String,
    /// The archived .eml, as the report shows its path.
    pub archived: Option<String>,
}

/// One letter's PDF as the report lists it: the attached file's name and its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct PdfEntry {
    pub file: String,
    pub sha256: String,
}

/// The CSV for the case file: UTF-8 with a byte-order mark and `;` between fields, which is what
/// Danish Excel opens without a question.
/// When the letters went as PDFs, two more columns name each letter's PDF and its SHA-256.
pub(crate) fn write_csv(
    out: &mut dyn std::io::Write,
    key_header: &str,
    rows: &[StatusRow],
    pdfs: &BTreeMap<String, PdfEntry>,
) -> Result<()> {
    out.write_all("\u{feff}".as_bytes())?;
    let mut w = csv::WriterBuilder::new().delimiter(b';').from_writer(out);
    let mut header: Vec<&str> = std::iter::once(key_header)
        .chain(wording::REPORT_COLUMNS)
        .collect();
    if !pdfs.is_empty() {
        header.extend(["pdf_file", "pdf_sha256"]);
    }
    w.write_record(&header)?;
    for r in rows {
        let receipt = r.fact.as_ref().map(wording::receipt).unwrap_or_default();
        let mut record = vec![
            r.key.as_str(),
            &r.name,
            &r.address,
            &r.akt_id,
            wording::state_named(r.state),
            &r.time,
            &r.last_reply,
            &r.message_id,
            &receipt,
        ];
        if !pdfs.is_empty() {
            let pdf = pdfs.get(&r.key);
            record.push(pdf.map(|p| p.file.as_str()).unwrap_or(""));
            record.push(pdf.map(|p| p.sha256.as_str()).unwrap_or(""));
        }
        w.write_record(&record)?;
    }
    w.flush()?;
    Ok(())
}

/// Text from the recipients file or a server, for HTML: control and bidi characters shown
/// escaped (so nothing can reorder what is printed), then HTML-escaped.
fn cell(s: &str) -> String {
    escape_html(&printable(s))
}

/// The printable summary.
pub(crate) fn html(
    facts: &Facts,
    rows: &[StatusRow],
    letter: Option<&ShownLetter>,
    pdfs: &BTreeMap<String, PdfEntry>,
) -> String {
    let date = facts
        .letter_date
        .parse()
        .map(stamp::danish_date)
        .unwrap_or_else(|_| facts.letter_date.clone());
    let counts = status::counts(rows);
    let count_rows: String = State::ALL
        .iter()
        .map(|s| {
            format!(
                "<tr><td>{}</td><td class=\"n\">{}</td></tr>\n",
                wording::state(*s),
                counts[s.as_str()]
            )
        })
        .collect();
    let table: String = rows
        .iter()
        .map(|r| {
            format!(
                "<tr class=\"{state}\"><td class=\"nw\">{}</td><td>{}</td><td class=\"w\">{}</td><td class=\"nw\">{}</td><td class=\"nw\">{}</td><td class=\"w\">{}</td><td>{}</td><td class=\"w\">{}</td><td>{}</td></tr>\n",
                cell(&r.key),
                cell(&r.name),
                cell(&r.address),
                cell(&r.akt_id),
                wording::state_named(r.state),
                cell(&r.time),
                cell(&r.last_reply),
                cell(&r.fact.as_ref().map(wording::receipt).unwrap_or_default()),
                cell(&r.message_id),
                state = r.state,
            )
        })
        .collect();
    let letter = match letter {
        Some(l) => format!(
            "<h2>Brevet</h2>\n<p class=\"note\">Som det blev sendt til {} (Akt-id {}){}. Hver modtager fik sit eget brev med sit navn og sit Akt-id.</p>\n<p><strong>Emne:</strong> {}</p>\n<div class=\"letter\">\n{}</div>\n",
            cell(&l.name),
            cell(&l.akt_id),
            l.archived
                .as_deref()
                .map(|a| format!("; arkiveret som {}", escape_html(a)))
                .unwrap_or_default(),
            cell(&l.subject),
            l.html_body
        ),
        None => "<h2>Brevet</h2>\n<p class=\"note\">Intet brev er leveret endnu, så brevets tekst vises ikke.</p>\n".into(),
    };
    let letter = if pdfs.is_empty() {
        letter
    } else {
        let list: String = rows
            .iter()
            .filter_map(|r| pdfs.get(&r.key).map(|p| (r, p)))
            .map(|(r, p)| {
                format!(
                    "<tr><td>{}</td><td>{}</td><td class=\"mid\"><code>{}</code></td></tr>\n",
                    cell(&r.key),
                    cell(&p.file),
                    cell(&p.sha256)
                )
            })
            .collect();
        format!(
            "{letter}<h2>Brevene som PDF</h2>\n<p class=\"note\">Hvert brev blev vedhæftet som PDF/A. SHA-256 identificerer filen præcist.</p>\n<table class=\"rows\">\n<tr><th>Kode</th><th>Fil</th><th>SHA-256</th></tr>\n{list}</table>\n"
        )
    };
    format!(
        "<!DOCTYPE html>\n<html lang=\"da\">\n<head>\n<meta charset=\"utf-8\">\n<title>Leveringsrapport: {campaign}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n\
<h1>Leveringsrapport</h1>\n<table class=\"facts\">\n\
<tr><th>Kampagne</th><td>{campaign}</td></tr>\n<tr><th>Sags nr.</th><td>{sags}</td></tr>\n<tr><th>Brevdato</th><td>{date}</td></tr>\n\
<tr><th>Afsender</th><td>{sender}</td></tr>\n<tr><th>Første afsendelse</th><td>{frozen}</td></tr>\n<tr><th>Rapporten er lavet</th><td>{made}</td></tr>\n\
<tr><th>Modtagere</th><td>{n}</td></tr>\n</table>\n\
<h2>Status</h2>\n<table class=\"counts\">\n{count_rows}</table>\n\
{letter}\
<h2>Modtagere</h2>\n<table class=\"rows\">\n<tr><th>Kode</th><th>Modtager</th><th>Adresse</th><th>Akt-id</th><th>Status</th><th>Tid</th><th>Serverens svar</th><th>Kvittering</th><th>Message-ID</th></tr>\n{table}</table>\n</body>\n</html>\n",
        campaign = cell(&facts.campaign),
        sags = cell(&facts.sags_nr),
        date = escape_html(&date),
        sender = cell(&facts.sender),
        frozen = escape_html(facts.frozen_at.as_deref().unwrap_or("intet sendt endnu")),
        made = escape_html(&facts.made_at),
        n = rows.len(),
    )
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:70em;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin-bottom:1em}td,th{padding:.25em .5em;border-bottom:1px solid #ccc;text-align:left;vertical-align:top}\
.facts th{font-weight:normal;color:#555}.n{text-align:right}\
.rows{font-size:.85em;width:100%}.rows td{overflow-wrap:anywhere}.rows .nw{white-space:nowrap}.rows .w{overflow-wrap:break-word}\
.failed-permanent td,.failed-temporary td,.unknown td,.bounced td{background:#fdecea}.pending td{background:#fff8e1}\
.letter{border:1px solid #ccc;padding:1.5em 2em;font-family:Georgia,serif;line-height:1.45;overflow-wrap:anywhere}.note{color:#555}\
@media print{body{margin:0;max-width:none}.letter{page-break-inside:avoid}}";

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, name: &str, state: &'static str) -> StatusRow {
        StatusRow {
            key: key.into(),
            name: name.into(),
            address: format!("post@{key}.dk"),
            state,
            attempts: 1,
            last_code: Some(250),
            last_reply: "250 2.0.0 Ok".into(),
            time: "2020-06-29 10:00:00+02:00".into(),
            akt_id: "0101".into(),
            message_id: format!("{key}@uim.dk"),
            receipt: None,
            receipt_detail: String::new(),
            fact: None,
        }
    }

    #[test]
    fn the_csv_keeps_leading_zeros_and_opens_in_danish_excel() {
        let mut out = Vec::new();
        write_csv(
            &mut out,
            "kommunekode",
            &[row("0101", "Ærø; Kommune", "delivered")],
            &BTreeMap::new(),
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with(
                "\u{feff}kommunekode;navn;adresse;akt_id;status;tidspunkt;serverens_svar;message_id;kvittering\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("0101;\"Ærø; Kommune\";post@0101.dk;0101;leveret;"),
            "{text}"
        );
    }

    #[test]
    fn the_summary_escapes_names_and_shows_every_state() {
        let facts = Facts {
            campaign: "c".into(),
            sags_nr: "2020-1".into(),
            letter_date: "2020-06-29".into(),
            sender: "UIM <uim@uim.dk>".into(),
            frozen_at: None,
            made_at: "now".into(),
        };
        let page = html(
            &facts,
            &[row("1", "<b>\u{202E}x</b>", "delivered")],
            None,
            &BTreeMap::new(),
        );
        assert!(page.contains("&lt;b&gt;\\u{202e}x&lt;/b&gt;"), "{page}");
        assert!(page.contains("29. juni 2020"));
        assert!(page.contains("<tr><td>afvist</td><td class=\"n\">0</td></tr>"));
        assert!(page.contains("<td class=\"nw\">leveret</td>"), "{page}");
        assert!(!page.contains(">delivered<"), "{page}");
        assert!(page.contains("UIM &lt;uim@uim.dk&gt;"));
    }
}
