//! The e-mail: a merged letter becomes a MIME message (multipart/alternative, text and HTML),
//! inside multipart/mixed with the attached files when there are any.
//!
//! Headers: From, To with the recipient's name, Date (the moment of hand-over, given by the
//! caller), the frozen Message-ID, Reply-To, Cc and Bcc, and when asked a read-receipt request
//! (`Disposition-Notification-To`, RFC 8098) to the sender. lettre does the RFC 2047 work
//! and the MIME structure; the text bodies are encoded by `body` (the same bytes lettre would
//! make, faster); the multipart boundary is derived from the Message-ID so the same letter
//! composed at the same moment is the same bytes. This module is pure: it never reads the clock.

use std::fmt;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use lettre::message::{header, Attachment, Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};
use sha2::{Digest, Sha256};

use crate::config::Sender;
use crate::letter::attachment::Attached;
use crate::letter::body;
use crate::letter::render::{html_document, Rendered, TemplateError};
use crate::letter::stamp::Stamp;

/// Who one letter goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Addressee {
    pub name: String,
    pub email: String,
}

/// A message ready for a transport: its bytes and its SMTP envelope.
#[derive(Debug, Clone)]
pub(crate) struct Composed {
    pub bytes: Vec<u8>,
    pub envelope_from: String,
    /// The recipient first, then Cc and Bcc copies.
    pub envelope_to: Vec<String>,
    /// The Message-ID without angle brackets; it names the letter in delivery reports (ENVID).
    pub message_id: String,
}

/// Why one letter could not become an e-mail. Callers ask what it concerns instead of reading
/// the words: a bad recipient address belongs to the recipients file, the rest to the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ComposeError {
    kind: Kind,
    message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// The recipient's address is not one an e-mail can go to.
    Address,
    /// The template could not be merged with the recipient's fields.
    Merge,
    /// lettre could not build the message.
    Message,
    /// What goes with the letter (its PDF, an attachment) could not be made or read, or makes
    /// the message too large.
    Files,
}

impl ComposeError {
    /// A problem with what goes with the letter: its PDF, an attachment, the size limit.
    pub(crate) fn files(message: String) -> ComposeError {
        ComposeError {
            kind: Kind::Files,
            message,
        }
    }

    /// True when the recipient's e-mail address is the problem (the file's email column).
    pub(crate) fn is_bad_address(&self) -> bool {
        self.kind == Kind::Address
    }
}

impl From<TemplateError> for ComposeError {
    fn from(e: TemplateError) -> ComposeError {
        ComposeError {
            kind: Kind::Merge,
            message: e.message,
        }
    }
}

impl fmt::Display for ComposeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ComposeError {}

/// The sender's mailboxes, parsed once for a whole campaign.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    cc: Vec<Mailbox>,
    bcc: Vec<Mailbox>,
    read_receipt: bool,
}

impl Envelope {
    pub(crate) fn new(sender: &Sender) -> Result<Envelope, String> {
        let parse = |s: &str| -> Result<Mailbox, String> {
            s.parse::<Mailbox>()
                .map_err(|e| format!("`{s}` is not a valid address ({e})"))
        };
        Ok(Envelope {
            from: parse(&sender.from)?,
            reply_to: sender.reply_to.as_deref().map(parse).transpose()?,
            cc: sender
                .cc
                .iter()
                .map(|s| parse(s))
                .collect::<Result<_, _>>()?,
            bcc: sender
                .bcc
                .iter()
                .map(|s| parse(s))
                .collect::<Result<_, _>>()?,
            read_receipt: false,
        })
    }

    /// The same sender, asking (or not) for a read receipt in every letter.
    pub(crate) fn asking_read_receipt(self, on: bool) -> Envelope {
        Envelope {
            read_receipt: on,
            ..self
        }
    }

    /// The same sender, without Cc and Bcc copies (for a test letter).
    pub(crate) fn without_copies(&self) -> Envelope {
        Envelope {
            cc: Vec::new(),
            bcc: Vec::new(),
            ..self.clone()
        }
    }

    /// The sender's domain, on which Message-IDs are made.
    pub(crate) fn domain(&self) -> &str {
        self.from.email.domain()
    }

    pub(crate) fn copies(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        self.cc
            .iter()
            .map(|m| ("Cc", m.email.to_string()))
            .chain(self.bcc.iter().map(|m| ("Bcc", m.email.to_string())))
    }
}

/// Builds the message for one letter, dated `date` (the moment it is handed to the transport).
#[cfg(test)]
pub(crate) fn compose(
    envelope: &Envelope,
    to: &Addressee,
    letter: &Rendered,
    stamp: &Stamp,
    date: DateTime<Utc>,
) -> Result<Composed, ComposeError> {
    compose_with(envelope, to, letter, stamp, date, &[])
}

/// Like `compose`, with files attached after the letter (multipart/mixed). Without files the
/// message is exactly what `compose` makes.
pub(crate) fn compose_with(
    envelope: &Envelope,
    to: &Addressee,
    letter: &Rendered,
    stamp: &Stamp,
    date: DateTime<Utc>,
    files: &[Attached],
) -> Result<Composed, ComposeError> {
    let address: Address = to.email.parse().map_err(|e| ComposeError {
        kind: Kind::Address,
        message: format!("`{}` is not a valid address ({e})", to.email),
    })?;
    let name = (!to.name.is_empty()).then(|| to.name.clone());
    let mut builder = Message::builder()
        .from(envelope.from.clone())
        .to(Mailbox::new(name, address))
        .subject(letter.subject.clone())
        .message_id(Some(format!("<{}>", stamp.message_id)))
        .date(SystemTime::from(date))
        .header(header::MIME_VERSION_1_0);
    if let Some(r) = &envelope.reply_to {
        builder = builder.reply_to(r.clone());
    }
    for m in &envelope.cc {
        builder = builder.cc(m.clone());
    }
    for m in &envelope.bcc {
        builder = builder.bcc(m.clone());
    }
    if envelope.read_receipt {
        builder = builder.raw_header(header::HeaderValue::new(
            header::HeaderName::new_from_ascii_str("Disposition-Notification-To"),
            format!("<{}>", envelope.from.email),
        ));
    }
    let body = MultiPart::alternative()
        .boundary(boundary(&stamp.message_id))
        .singlepart(text_part(header::ContentType::TEXT_PLAIN, &letter.text))
        .singlepart(text_part(
            header::ContentType::TEXT_HTML,
            &html_document(&letter.subject, &letter.html_body),
        ));
    let body = if files.is_empty() {
        body
    } else {
        let mut mixed = MultiPart::mixed()
            .boundary(format!("{}_mixed", boundary(&stamp.message_id)))
            .multipart(body);
        for file in files {
            let content_type =
                header::ContentType::parse(file.content_type).map_err(|e| ComposeError {
                    kind: Kind::Message,
                    message: format!("`{}`: {e}", file.content_type),
                })?;
            mixed = mixed.singlepart(
                Attachment::new(file.name.clone()).body(file.bytes.to_vec(), content_type),
            );
        }
        mixed
    };
    let message = builder.multipart(body).map_err(|e| ComposeError {
        kind: Kind::Message,
        message: format!("cannot build the message: {e}"),
    })?;
    let env = message.envelope();
    let bytes = message.formatted();
    if let Some((header, octets)) = overlong_header_line(&bytes) {
        return Err(ComposeError {
            kind: Kind::Message,
            message: format!(
                "its {header} header would have a line of {octets} octets, more than the {MAX_LINE_OCTETS} that e-mail allows"
            ),
        });
    }
    Ok(Composed {
        bytes,
        envelope_from: env.from().map(|a| a.to_string()).unwrap_or_default(),
        envelope_to: env.to().iter().map(|a| a.to_string()).collect(),
        message_id: stamp.message_id.clone(),
    })
}

/// A text part: what `SinglePart::plain` or `SinglePart::html` make of the text, byte for
/// byte, with the body encoded by `body::encode_text`.
fn text_part(content_type: header::ContentType, text: &str) -> SinglePart {
    SinglePart::builder()
        .header(content_type)
        .body(body::encode_text(text))
}

/// The longest line RFC 5322 allows, without its CRLF.
const MAX_LINE_OCTETS: usize = 998;

/// The first header line (of the message's own header block) longer than RFC 5322 allows: the
/// header's name and the line's length. Nothing longer ever leaves rundbrev.
fn overlong_header_line(message: &[u8]) -> Option<(String, usize)> {
    let mut name = String::new();
    for line in message.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return None; // the end of the header block
        }
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            let end = line.iter().position(|&b| b == b':').unwrap_or(line.len());
            name = String::from_utf8_lossy(&line[..end]).into_owned();
        }
        if line.len() > MAX_LINE_OCTETS {
            return Some((name, line.len()));
        }
    }
    None
}

/// A multipart boundary that cannot occur in the parts and is the same for the same letter.
fn boundary(message_id: &str) -> String {
    let digest = Sha256::digest(message_id.as_bytes());
    let hex = crate::digest::hex(&digest[..12]);
    format!("=_rundbrev_{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn sample() -> (Envelope, Addressee, Rendered, Stamp) {
        let sender = Sender {
            from: "Udlændinge- og Integrationsministeriet <uim@uim.dk>".into(),
            reply_to: None,
            cc: vec![],
            bcc: vec!["journal@uim.dk".into()],
        };
        (
            Envelope::new(&sender).unwrap(),
            Addressee {
                name: "Ærø Kommune".into(),
                email: "post@aeroe.dk".into(),
            },
            Rendered {
                subject: "Æresrelaterede konflikter – Ærø Kommune".into(),
                text: "Til samtlige kommuner\n".into(),
                html_body: "<p>Til samtlige kommuner</p>\n".into(),
                markdown: "Til samtlige kommuner\n".into(),
            },
            Stamp {
                letter_date: NaiveDate::from_ymd_opt(2020, 6, 29).unwrap(),
                sags_nr: "1".into(),
                akt_id: "1286555".into(),
                message_id: "rundbrev.x@uim.dk".into(),
            },
        )
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn headers_are_encoded_only_where_needed_and_bcc_is_hidden() {
        let (env, to, letter, stamp) = sample();
        let c = compose(&env, &to, &letter, &stamp, at("2020-06-29T10:00:00+02:00")).unwrap();
        let text = String::from_utf8(c.bytes.clone()).unwrap();
        assert!(text.contains("To: =?utf-8?b?"), "{text}");
        assert!(
            text.contains("<post@aeroe.dk>"),
            "address stays readable: {text}"
        );
        assert!(text.contains("Message-ID: <rundbrev.x@uim.dk>"));
        assert!(
            text.contains("Date: Mon, 29 Jun 2020 08:00:00 +0000"),
            "{text}"
        );
        assert!(
            !text.contains("journal@uim.dk"),
            "Bcc must not show: {text}"
        );
        assert_eq!(c.envelope_to, vec!["post@aeroe.dk", "journal@uim.dk"]);
        assert_eq!(c.envelope_from, "uim@uim.dk");
    }

    /// Every header line of the message's own header block, unfolded pieces as sent.
    fn header_lines(bytes: &[u8]) -> Vec<String> {
        let text = String::from_utf8_lossy(bytes);
        let head = text.split("\r\n\r\n").next().unwrap().to_owned();
        head.split("\r\n").map(str::to_owned).collect()
    }

    #[test]
    fn a_long_danish_name_and_subject_are_folded_into_short_lines_and_decode_back() {
        let (env, mut to, mut letter, stamp) = sample();
        to.name = "Æbleø Kommune – Børne- og Ungeforvaltningen, Sundhedsplejen ".repeat(3);
        to.name.truncate(to.name.trim_end().len());
        letter.subject = format!("Æresrelaterede konflikter – {}", to.name);
        let c = compose(&env, &to, &letter, &stamp, at("2020-06-29T10:00:00+02:00")).unwrap();
        let lines = header_lines(&c.bytes);
        for line in &lines {
            assert!(line.len() <= 998, "{} octets: {line}", line.len());
        }
        // To and Subject (about 600 octets each, encoded) are folded over several lines.
        let folded = lines.iter().filter(|l| l.starts_with(' ')).count();
        assert!(folded >= 6, "{lines:#?}");
        let parsed = mail_parser::MessageParser::default()
            .parse(&c.bytes)
            .unwrap();
        assert_eq!(parsed.subject(), Some(letter.subject.as_str()));
        let first = parsed.to().unwrap().first().unwrap();
        assert_eq!(first.name(), Some(to.name.as_str()));
    }

    #[test]
    fn a_header_line_over_998_octets_is_refused() {
        let (env, mut to, letter, stamp) = sample();
        to.name = "A".repeat(1000);
        let err = compose(&env, &to, &letter, &stamp, at("2020-06-29T10:00:00+02:00"))
            .map(|c| String::from_utf8_lossy(&c.bytes).into_owned())
            .unwrap_err()
            .to_string();
        assert!(err.contains("its To header would have a line of"), "{err}");
        assert!(err.contains("more than the 998"), "{err}");
    }

    #[test]
    fn a_read_receipt_is_asked_of_the_sender_only_when_switched_on() {
        let (env, to, letter, stamp) = sample();
        let t = at("2020-06-29T10:00:00+02:00");
        let plain = compose(&env, &to, &letter, &stamp, t).unwrap();
        let text = String::from_utf8(plain.bytes).unwrap();
        assert!(!text.contains("Disposition-Notification-To"), "{text}");
        assert_eq!(plain.message_id, "rundbrev.x@uim.dk");

        let asking = env.asking_read_receipt(true);
        let c = compose(&asking, &to, &letter, &stamp, t).unwrap();
        let text = String::from_utf8(c.bytes).unwrap();
        assert!(
            text.contains("\r\nDisposition-Notification-To: <uim@uim.dk>\r\n"),
            "{text}"
        );
    }

    #[test]
    fn a_bad_recipient_address_is_told_apart_from_other_problems() {
        let (env, mut to, letter, stamp) = sample();
        to.email = "post at aeroe.dk".into();
        let e = compose(&env, &to, &letter, &stamp, at("2020-06-29T10:00:00+02:00")).unwrap_err();
        assert!(e.is_bad_address(), "{e}");
        assert!(e.to_string().contains("`post at aeroe.dk`"), "{e}");
        let merge = ComposeError::from(TemplateError {
            which: "letter",
            missing_variable: None,
            message: "unexpected end of template".into(),
        });
        assert!(!merge.is_bad_address());
    }

    #[test]
    fn a_text_part_is_the_part_lettre_makes_of_the_string() {
        let html = html_document(
            "Æresrelaterede konflikter",
            "<p>Til samtlige kommuner</p>\n",
        );
        let long = format!("{} \n", "Æblegrød med fløde ".repeat(9));
        for text in [
            "Til samtlige kommuner\n",
            "Ærø Kommune\n",
            &html,
            &long,
            "📬📬📬📬",
        ] {
            assert_eq!(
                text_part(header::ContentType::TEXT_PLAIN, text).formatted(),
                SinglePart::plain(text.to_owned()).formatted()
            );
            assert_eq!(
                text_part(header::ContentType::TEXT_HTML, text).formatted(),
                SinglePart::html(text.to_owned()).formatted()
            );
        }
    }

    #[test]
    fn the_same_letter_at_the_same_moment_is_the_same_bytes() {
        let (env, to, letter, stamp) = sample();
        let t = at("2020-06-29T10:00:00+02:00");
        assert_eq!(
            compose(&env, &to, &letter, &stamp, t).unwrap().bytes,
            compose(&env, &to, &letter, &stamp, t).unwrap().bytes
        );
    }
}
