//! Merging: the Tera letter template and the subject with one recipient's fields and stamps.
//!
//! The template is Markdown. One rendering gives both parts of the e-mail: a plain-text part and
//! an HTML part, made from the same parsed text, so they always say the same thing. Values from
//! the recipients file are escaped, so a name can never inject HTML or Markdown. The templates are
//! compiled once. This module is pure: no files, no clock, no network.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use pulldown_cmark::{Event, HeadingLevel, Options, Parser, Tag, TagEnd};
use serde::Serialize;

use crate::letter::stamp::Stamp;

const LETTER: &str = "letter";
const SUBJECT: &str = "subject";

/// The compiled letter and subject templates.
pub(crate) struct Renderer {
    tera: tera::Tera,
}

/// One merged letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rendered {
    pub subject: String,
    pub text: String,
    /// The letter body as an HTML fragment (no `<html>` wrapper).
    pub html_body: String,
    /// The merged Markdown both parts were made from (the PDF letter is set from it too).
    pub markdown: String,
}

/// One letter merged with its recipient's fields: the subject and the Markdown, before the
/// Markdown is made into the e-mail's two parts (`render`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Merged {
    pub subject: String,
    pub markdown: String,
}

/// Why a template could not be compiled or rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TemplateError {
    /// Which template: the letter or the subject.
    pub which: &'static str,
    /// The variable the data lacks, when that is the cause.
    pub missing_variable: Option<String>,
    /// The whole cause chain, in plain words.
    pub message: String,
}

/// What a template may use: the recipient's columns by header name, and `stamp.*`.
#[derive(Serialize)]
struct StampView<'a> {
    letter_date: String,
    letter_date_iso: String,
    sags_nr: &'a str,
    akt_id: &'a str,
    message_id: &'a str,
}

impl Renderer {
    /// Compiles the letter template (Markdown) and the subject template.
    pub(crate) fn new(letter: &str, subject: &str) -> Result<Renderer, TemplateError> {
        let mut tera = tera::Tera::default();
        tera.add_raw_template(LETTER, letter)
            .map_err(|e| template_error("letter", &e))?;
        tera.add_raw_template(SUBJECT, subject)
            .map_err(|e| template_error("subject", &e))?;
        tera.autoescape_on(vec![LETTER]);
        tera.set_escape_fn(escape_markdown);
        Ok(Renderer { tera })
    }

    /// Merges one recipient's fields (header name → value) and stamps into a letter.
    pub(crate) fn render(
        &self,
        fields: &BTreeMap<&str, &str>,
        stamp: &Stamp,
    ) -> Result<Rendered, TemplateError> {
        Ok(self.merge(fields, stamp)?.render())
    }

    /// Merges one recipient's fields and stamps into the letter's subject and Markdown, without
    /// rendering the Markdown: every error `render` can give, at a fraction of the work.
    pub(crate) fn merge(
        &self,
        fields: &BTreeMap<&str, &str>,
        stamp: &Stamp,
    ) -> Result<Merged, TemplateError> {
        let mut ctx = tera::Context::new();
        for (k, v) in fields {
            ctx.insert(*k, v);
        }
        ctx.insert(
            "stamp",
            &StampView {
                letter_date: stamp.letter_date_text(),
                letter_date_iso: stamp.letter_date.to_string(),
                sags_nr: &stamp.sags_nr,
                akt_id: &stamp.akt_id,
                message_id: &stamp.message_id,
            },
        );
        let markdown = self
            .tera
            .render(LETTER, &ctx)
            .map_err(|e| template_error("letter", &e))?;
        let subject = self
            .tera
            .render(SUBJECT, &ctx)
            .map_err(|e| template_error("subject", &e))?;
        Ok(Merged {
            subject: subject.trim().to_string(),
            markdown,
        })
    }
}

impl Merged {
    /// The letter's two parts, made from the Markdown.
    pub(crate) fn render(self) -> Rendered {
        // Parsed once; both parts are made from the same events, as they come.
        let mut text = TextWriter::default();
        let html_body = events_to_html(parser(&self.markdown).inspect(|e| text.event(e)));
        Rendered {
            subject: self.subject,
            text: text.finish(),
            html_body,
            markdown: self.markdown,
        }
    }
}

fn template_error(which: &'static str, e: &tera::Error) -> TemplateError {
    // Tera's top-level message is only "Failed to render"; the cause is in the chain.
    let mut parts = vec![e.to_string()];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        parts.push(s.to_string());
        source = s.source();
    }
    let missing_variable = parts.iter().find_map(|p| {
        let rest = p.strip_prefix("Variable `")?;
        let end = rest.find('`')?;
        Some(rest[..end].to_string())
    });
    TemplateError {
        which,
        missing_variable,
        message: parts.join(": "),
    }
}

/// Escapes a value for Markdown, so that it shows exactly as written in the CSV.
fn escape_markdown(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    // At the start of a line, "29. juni 2020" or "- x" would become a list item.
    let digits = value.bytes().take_while(u8::is_ascii_digit).count();
    let list_marker = match value.as_bytes().get(digits) {
        Some(b'.' | b')') if digits > 0 => Some(digits),
        Some(b'-' | b'+') if digits == 0 => Some(0),
        _ => None,
    };
    for (i, c) in value.chars().enumerate() {
        if Some(i) == list_marker {
            out.push('\\');
        }
        if matches!(
            c,
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '#' | '!' | '|' | '&' | '{' | '}'
        ) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

pub(crate) fn parser(markdown: &str) -> impl Iterator<Item = Event<'_>> {
    // Raw HTML in the template or the data is shown as text, never passed through.
    Parser::new_ext(markdown, Options::empty()).map(|e| match e {
        Event::Html(s) | Event::InlineHtml(s) => Event::Text(s),
        other => other,
    })
}

/// The letter as an HTML fragment.
#[cfg(test)]
pub(crate) fn markdown_to_html(markdown: &str) -> String {
    events_to_html(parser(markdown))
}

fn events_to_html<'a>(events: impl Iterator<Item = Event<'a>>) -> String {
    let mut out = String::with_capacity(8 * 1024);
    pulldown_cmark::html::push_html(&mut out, events);
    out
}

/// The letter as plain text, the way a careful person would type it: paragraphs separated by a
/// blank line, list items with "- ", and each link's address after its text.
#[cfg(test)]
pub(crate) fn markdown_to_text(markdown: &str) -> String {
    let mut text = TextWriter::default();
    parser(markdown).for_each(|e| text.event(&e));
    text.finish()
}

/// Writes the plain text of the events it is shown, one at a time (see `markdown_to_text`).
struct TextWriter {
    out: String,
    /// The link being written: its destination and where its text starts.
    link: Option<(String, usize)>,
    list_depth: usize,
}

impl Default for TextWriter {
    fn default() -> TextWriter {
        TextWriter {
            out: String::with_capacity(8 * 1024),
            link: None,
            list_depth: 0,
        }
    }
}

impl TextWriter {
    fn indent(&mut self, depth: usize) {
        for _ in 0..depth {
            self.out.push_str("  ");
        }
    }

    fn event(&mut self, event: &Event<'_>) {
        let out = &mut self.out;
        match event {
            Event::Start(Tag::Item) => {
                self.indent(self.list_depth.saturating_sub(1));
                self.out.push_str("- ");
            }
            Event::End(TagEnd::Item) => end_line(out),
            Event::Start(Tag::List(_)) => {
                if self.list_depth > 0 {
                    end_line(out);
                }
                self.list_depth += 1;
            }
            Event::End(TagEnd::List(_)) => {
                self.list_depth -= 1;
                if self.list_depth == 0 {
                    out.push('\n');
                }
            }
            Event::End(TagEnd::Paragraph) if self.list_depth == 0 => out.push_str("\n\n"),
            Event::Start(Tag::Heading { .. }) => {}
            Event::End(TagEnd::Heading(level)) => {
                if *level <= HeadingLevel::H2 {
                    let title_len = out.lines().last().map(|l| l.chars().count()).unwrap_or(0);
                    out.push('\n');
                    out.push_str(&"-".repeat(title_len));
                }
                out.push_str("\n\n");
            }
            Event::Start(Tag::Link { dest_url, .. }) => {
                self.link = Some((dest_url.to_string(), out.len()))
            }
            Event::End(TagEnd::Link) => {
                if let Some((dest, start)) = self.link.take() {
                    let text = &out[start..];
                    let shown = dest.strip_prefix("mailto:").unwrap_or(&dest);
                    let same = shown == text
                        || dest.trim_end_matches('/')
                            == format!("http://{text}").trim_end_matches('/')
                        || dest.trim_end_matches('/')
                            == format!("https://{text}").trim_end_matches('/');
                    if !same {
                        let _ = write!(out, " <{dest}>");
                    }
                }
            }
            Event::SoftBreak | Event::HardBreak => {
                out.push('\n');
                if self.list_depth > 0 {
                    self.indent(self.list_depth);
                }
            }
            Event::Rule => out.push_str("----\n\n"),
            Event::Text(t) | Event::Code(t) => out.push_str(t),
            _ => {}
        }
    }

    /// The text, every line without trailing white space and ended by a line feed.
    fn finish(self) -> String {
        let trimmed = self.out.trim_end();
        let mut text = String::with_capacity(trimmed.len() + 1);
        if trimmed.is_empty() {
            return text;
        }
        let mut start = 0;
        let ends = memchr::memchr_iter(b'\n', trimmed.as_bytes()).chain([trimmed.len()]);
        for end in ends {
            text.push_str(trimmed[start..end].trim_end());
            text.push('\n');
            start = end + 1;
        }
        text
    }
}

fn end_line(out: &mut String) {
    if !out.ends_with('\n') {
        out.push('\n');
    }
}

/// Escapes text for HTML attribute and element content.
pub(crate) fn escape_html(s: &str) -> String {
    if !s.contains(['&', '<', '>', '"', '\'']) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A whole HTML document around a letter body, as sent in the e-mail's HTML part.
pub(crate) fn html_document(subject: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"da\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n</head>\n<body style=\"font-family: Georgia, 'Times New Roman', serif; font-size: 16px; line-height: 1.45; max-width: 42em;\">\n{}</body>\n</html>\n",
        escape_html(subject),
        body
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn stamp() -> Stamp {
        Stamp {
            letter_date: NaiveDate::from_ymd_opt(2020, 6, 29).unwrap(),
            sags_nr: "2020-1".into(),
            akt_id: "0042".into(),
            message_id: "x@uim.dk".into(),
        }
    }

    fn fields<'a>(pairs: &[(&'a str, &'a str)]) -> BTreeMap<&'a str, &'a str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn stamps_and_fields_reach_both_parts() {
        let r = Renderer::new(
            "{{ navn }}\n\nDato {{ stamp.letter_date }}, Akt-id {{ stamp.akt_id }}\n",
            "Til {{ navn }}",
        )
        .unwrap();
        let out = r
            .render(&fields(&[("navn", "Ærø Kommune")]), &stamp())
            .unwrap();
        assert_eq!(out.subject, "Til Ærø Kommune");
        assert_eq!(out.text, "Ærø Kommune\n\nDato 29. juni 2020, Akt-id 0042\n");
        assert!(out
            .html_body
            .contains("<p>Dato 29. juni 2020, Akt-id 0042</p>"));
    }

    #[test]
    fn a_danish_date_at_the_start_of_a_line_stays_text() {
        let r = Renderer::new("{{ stamp.letter_date }}\n\n{{ navn }}\n", "x").unwrap();
        let out = r
            .render(&fields(&[("navn", "- 3. Kommune")]), &stamp())
            .unwrap();
        assert_eq!(out.text, "29. juni 2020\n\n- 3. Kommune\n");
        assert!(
            out.html_body.starts_with("<p>29. juni 2020</p>"),
            "{}",
            out.html_body
        );
    }

    #[test]
    fn a_missing_variable_is_named() {
        let r = Renderer::new("Hej {{ borgmester }}\n", "x").unwrap();
        let e = r.render(&fields(&[("navn", "x")]), &stamp()).unwrap_err();
        assert_eq!(e.missing_variable.as_deref(), Some("borgmester"));
        assert_eq!(e.which, "letter");
    }

    #[test]
    fn a_syntax_error_says_where() {
        let e = Renderer::new("linje 1\n{{ navn \n", "x")
            .map(|_| ())
            .unwrap_err();
        assert!(e.message.contains("--> 3:1"), "{}", e.message);
    }

    #[test]
    fn data_cannot_inject_html_or_markdown() {
        let r = Renderer::new("Til {{ navn }}\n", "x").unwrap();
        let out = r
            .render(&fields(&[("navn", "<b>*x*</b> & [y](z)")]), &stamp())
            .unwrap();
        assert!(
            out.html_body
                .contains("&lt;b&gt;*x*&lt;/b&gt; &amp; [y](z)"),
            "{}",
            out.html_body
        );
        assert_eq!(out.text, "Til <b>*x*</b> & [y](z)\n");
    }

    #[test]
    fn the_text_part_follows_the_markdown_block_by_block() {
        // (Markdown, its text part). The shipped letter's text part is held byte for byte by the
        // golden letter test.
        let cases = [
            ("", ""),
            (" \n\n", ""),
            ("Til samtlige kommuner\n", "Til samtlige kommuner\n"),
            (
                "# Overskrift\n\nTekst  \nmed hårdt linjeskift\n\n## Under\n\n### Tredje\n",
                "Overskrift\n----------\n\nTekst\nmed hårdt linjeskift\n\nUnder\n-----\n\nTredje\n",
            ),
            (
                "- a\n- b\n  - c\n    - d  \n      e\n- f\n\n1. x\n2. y\n",
                "- a\n- b\n  - c\n    - d\n      e\n- f\n\n- x\n- y\n",
            ),
            (
                "Mail [uim@uim.dk](mailto:uim@uim.dk) og <https://x.dk/> og [side](https://x.dk/a_b)\n",
                "Mail uim@uim.dk og https://x.dk/ og side <https://x.dk/a_b>\n",
            ),
            (
                "Tekst med `kode` og *fremhævet*\n\n----\n\nSlut \t \n",
                "Tekst med kode og fremhævet\n\n----\n\nSlut\n",
            ),
            (
                "<b>html</b> & entity &amp; \\*escaped\\*\n\n> citat\n> videre\n",
                "<b>html</b> & entity & *escaped*\n\ncitat\nvidere\n",
            ),
            (
                "    indrykket kode\n    linje 2\n\nTekst\r\nmed CRLF\r\n",
                "indrykket kode\nlinje 2\nTekst\nmed CRLF\n",
            ),
            (
                "[tom]()\n\n![billede](x.png)\n\n- [link i liste](http://y.dk)\n  fortsat\n",
                "tom <>\n\nbillede\n\n- link i liste <http://y.dk>\n  fortsat\n",
            ),
            ("Ærø  \nÆblegrød\u{a0}\n\n\u{a0}\n", "Ærø\nÆblegrød\n"),
        ];
        for (md, text) in cases {
            assert_eq!(markdown_to_text(md), text, "{md:?}");
        }
    }

    #[test]
    fn links_keep_their_address_in_the_text_part() {
        let md = "Mail [uim@uim.dk](mailto:uim@uim.dk)  \nWeb [www.uim.dk](http://www.uim.dk)\n\n- Håndbog  \n<https://red-center.dk/>\n- Kursus  \n[side](https://x.dk/a_b)\n";
        let text = markdown_to_text(md);
        assert_eq!(
            text,
            "Mail uim@uim.dk\nWeb www.uim.dk\n\n- Håndbog\n  https://red-center.dk/\n- Kursus\n  side <https://x.dk/a_b>\n"
        );
        let html = markdown_to_html(md);
        assert!(html.contains("<a href=\"https://red-center.dk/\">https://red-center.dk/</a>"));
    }
}
