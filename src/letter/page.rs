//! The preview folder: every letter as an `.eml` and as a readable `.html` page, and an index.
//!
//! The pages show a letter as a mail client would: the headers above the body. The HTML here is
//! built from escaped values only. Nothing is sent and the ledger is not touched; this module only
//! builds pages (the caller writes them).

use crate::letter::render::escape_html;

/// One letter's entry in the index.
pub(crate) struct Entry {
    pub key: String,
    pub name: String,
    pub address: String,
    pub akt_id: String,
    pub subject: String,
    /// Where the letter stands, in Danish words (the caller names it).
    pub state: String,
    pub file_stem: String,
    /// The PDF letter's file in the preview folder, when letters go as PDFs.
    pub pdf_file: Option<String>,
}

/// The headers shown above a letter.
pub(crate) struct Shown<'a> {
    pub from: &'a str,
    pub to: &'a str,
    pub copies: Vec<(&'static str, String)>,
    pub subject: &'a str,
    pub date: &'a str,
    pub message_id: &'a str,
}

/// Readable from a 1280 px wide window down: the index may use the width (the subject column
/// keeps room for its words; long addresses and links break instead of widening the page).
const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;padding:0 1em;color:#222}\
body.index{max-width:96em}h1{overflow-wrap:anywhere}\
table{border-collapse:collapse}td,th{padding:.3em .6em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}\
.headers th{color:#555;font-weight:normal;white-space:nowrap}.headers td{overflow-wrap:anywhere}\
.letter{border:1px solid #ccc;padding:1.5em 2em;margin-top:1em;font-family:Georgia,serif;line-height:1.45;overflow-wrap:anywhere}\
nav{margin-bottom:1em}table.list{width:100%;font-size:.9em}.list .subject{min-width:26em}.list .addr{overflow-wrap:break-word}\
.list .key,.list .akt,.list .state,.list .file{white-space:nowrap}";

/// A page showing one letter with its headers.
pub(crate) fn letter_page(h: &Shown<'_>, html_body: &str, eml_file: &str) -> String {
    let mut rows = vec![("Fra", h.from.to_string()), ("Til", h.to.to_string())];
    for (kind, addr) in &h.copies {
        rows.push((if *kind == "Cc" { "Cc" } else { "Bcc" }, addr.clone()));
    }
    rows.push(("Emne", h.subject.to_string()));
    rows.push(("Dato", h.date.to_string()));
    rows.push(("Message-ID", format!("<{}>", h.message_id)));
    let headers: String = rows
        .iter()
        .map(|(k, v)| format!("<tr><th>{k}</th><td>{}</td></tr>\n", escape_html(v)))
        .collect();
    format!(
        "<!DOCTYPE html>\n<html lang=\"da\">\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<nav><a href=\"index.html\">← Alle breve</a> · <a href=\"{eml}\">Hent som .eml</a></nav>\n<table class=\"headers\">\n{headers}</table>\n<div class=\"letter\">\n{html_body}</div>\n</body>\n</html>\n",
        title = escape_html(h.subject),
        eml = escape_html(eml_file),
    )
}

/// The top of the index page; rows follow one by one (`index_row`), then `index_tail`.
pub(crate) fn index_head(campaign: &str, transport: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"da\">\n<head>\n<meta charset=\"utf-8\">\n<title>Forhåndsvisning: {c}</title>\n<style>{STYLE}</style>\n</head>\n<body class=\"index\">\n<h1>Forhåndsvisning: {c}</h1>\n<p>Intet er sendt. Afsendes via {t}.</p>\n<table class=\"list\">\n<tr><th>Kode</th><th>Modtager</th><th>Adresse</th><th>Akt-id</th><th>Emne</th><th>Status</th><th></th></tr>\n",
        c = escape_html(campaign),
        t = escape_html(transport),
    )
}

/// One letter's line in the index, linking to its page and its .eml.
pub(crate) fn index_row(e: &Entry) -> String {
    format!(
        "<tr><td class=\"key\">{key}</td><td><a href=\"{stem}.html\">{name}</a></td><td class=\"addr\">{addr}</td><td class=\"akt\">{akt}</td><td class=\"subject\">{subject}</td><td class=\"state\">{state}</td><td class=\"file\"><a href=\"{stem}.eml\">.eml</a>{pdf}</td></tr>\n",
        key = escape_html(&e.key),
        stem = escape_html(&e.file_stem),
        name = escape_html(&e.name),
        addr = escape_html(&e.address),
        akt = escape_html(&e.akt_id),
        subject = escape_html(&e.subject),
        state = escape_html(&e.state),
        pdf = e
            .pdf_file
            .as_deref()
            .map(|f| format!(" · <a href=\"{}\">PDF</a>", escape_html(f)))
            .unwrap_or_default(),
    )
}

pub(crate) fn index_tail(count: usize) -> String {
    format!("</table>\n<p>{count} breve.</p>\n</body>\n</html>\n")
}
