//! The e-mail: a merged letter becomes a MIME message (multipart/alternative, text and HTML),
//! inside multipart/mixed with the attached files when there are any.
//!
//! Headers: From, To with the recipient's name, Date (the moment of hand-over, given by the
//! caller), the frozen Message-ID, Reply-To, Cc and Bcc, and when asked a read-receipt request
//! (`Disposition-Notification-To`, RFC 8098) to the sender. lettre encodes every header value
//! (RFC 2047) and makes the MIME structure; the text bodies are encoded by `body` (the same bytes
//! lettre would make, faster); the multipart boundary is derived from the Message-ID so the same
//! letter composed at the same moment is the same bytes. What all letters of a campaign have in
//! common (the sender's header lines, the envelope's sender and copies) lettre's builder makes
//! once; a letter without attached files to an ordinary address is then put together from those
//! lines and lettre's values of its own headers, byte for byte the message the builder makes
//! (the tests compare the two), without the builder parsing every header back. `frame` makes
//! every check of a message without its texts and files, whose size is then all there is to
//! know of it: the check bounds that instead of composing the message. This module is pure: it
//! never reads the clock.

use std::fmt;
use std::io::Write as _;
use std::time::SystemTime;

use chrono::{DateTime, Datelike as _, Utc};
use lettre::message::header::{Header as _, HeaderValue, Headers};
use lettre::message::{
    header, Attachment, Mailbox, Mailboxes, MessageBuilder, MultiPart, SinglePart,
};
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

/// The sender's mailboxes, parsed once for a whole campaign, and what every letter's message has
/// in common.
#[derive(Debug, Clone)]
pub(crate) struct Envelope {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    cc: Vec<Mailbox>,
    bcc: Vec<Mailbox>,
    read_receipt: bool,
    /// `None` when lettre makes no message for this sender: every letter then takes lettre's
    /// whole way, and fails the way it always did.
    common: Option<Common>,
}

/// The parts of every letter's message that do not depend on the letter, as lettre's builder
/// makes them.
#[derive(Debug, Clone)]
struct Common {
    /// The header lines before the letter's own (From).
    before: Vec<u8>,
    /// The header lines after the letter's own (MIME-Version, Reply-To, Cc,
    /// Disposition-Notification-To: those there are, in lettre's order).
    after: Vec<u8>,
    /// The envelope's sender, and the copies (Cc, then Bcc) after the recipient.
    envelope_from: String,
    copies: Vec<String>,
    /// The Content-Type line of the text part and of the HTML part.
    plain: Vec<u8>,
    html: Vec<u8>,
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
            common: None,
        }
        .with_common())
    }

    /// The same sender, asking (or not) for a read receipt in every letter.
    pub(crate) fn asking_read_receipt(self, on: bool) -> Envelope {
        Envelope {
            read_receipt: on,
            ..self
        }
        .with_common()
    }

    /// The same sender, without Cc and Bcc copies (for a test letter).
    pub(crate) fn without_copies(&self) -> Envelope {
        Envelope {
            cc: Vec::new(),
            bcc: Vec::new(),
            ..self.clone()
        }
        .with_common()
    }

    fn with_common(self) -> Envelope {
        let common = Common::of(&self);
        Envelope { common, ..self }
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

    /// lettre's builder with the message's headers, in the order they are written.
    fn builder(
        &self,
        to: Mailbox,
        subject: String,
        message_id: &str,
        date: SystemTime,
    ) -> MessageBuilder {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .message_id(Some(format!("<{message_id}>")))
            .date(date)
            .header(header::MIME_VERSION_1_0);
        if let Some(r) = &self.reply_to {
            builder = builder.reply_to(r.clone());
        }
        for m in &self.cc {
            builder = builder.cc(m.clone());
        }
        for m in &self.bcc {
            builder = builder.bcc(m.clone());
        }
        if self.read_receipt {
            builder = builder.raw_header(header::HeaderValue::new(
                header::HeaderName::new_from_ascii_str("Disposition-Notification-To"),
                format!("<{}>", self.from.email),
            ));
        }
        builder
    }
}

/// The headers each letter has of its own, between `Common::before` and `Common::after`.
const OWN_HEADERS: [&str; 4] = ["To", "Subject", "Message-ID", "Date"];

impl Common {
    /// Asks lettre's builder for a message to a stand-in recipient and keeps what is not that
    /// letter's own: the header values as lettre encoded them, and the envelope as lettre
    /// derived it (the sender and the copies read back from the headers).
    fn of(envelope: &Envelope) -> Option<Common> {
        let stand_in = Address::new("rundbrev", "example.invalid").ok()?;
        let mut probe = envelope
            .builder(
                Mailbox::new(None, stand_in),
                String::new(),
                "rundbrev@example.invalid",
                SystemTime::UNIX_EPOCH,
            )
            .multipart(MultiPart::alternative().singlepart(SinglePart::plain(String::new())))
            .ok()?;
        let derived = probe.envelope().clone();
        let headers = probe.headers_mut();
        let mut before = Headers::new();
        before.insert_raw(headers.remove_raw("From")?);
        for own in OWN_HEADERS {
            headers.remove_raw(own)?;
        }
        let line = |content_type: header::ContentType| {
            let mut h = Headers::new();
            h.set(content_type);
            h.to_string().into_bytes()
        };
        Some(Common {
            before: before.to_string().into_bytes(),
            after: headers.to_string().into_bytes(),
            envelope_from: derived.from().map(ToString::to_string).unwrap_or_default(),
            copies: derived
                .to()
                .get(1..)?
                .iter()
                .map(ToString::to_string)
                .collect(),
            plain: line(header::ContentType::TEXT_PLAIN),
            html: line(header::ContentType::TEXT_HTML),
        })
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
    let html = html_document(&letter.subject, &letter.html_body);
    let texts = Texts {
        subject: &letter.subject,
        plain: &letter.text,
        html: &html,
    };
    compose_texts(envelope, to, texts, stamp, date, files)
}

/// A letter's texts as its message carries them: the subject, and the two text parts (the
/// plain text and the whole HTML document).
#[derive(Clone, Copy)]
struct Texts<'a> {
    subject: &'a str,
    plain: &'a str,
    html: &'a str,
}

/// The message with these texts. Every check of the message is made here, and none of them
/// looks at the two text parts: `frame` relies on that.
fn compose_texts(
    envelope: &Envelope,
    to: &Addressee,
    texts: Texts<'_>,
    stamp: &Stamp,
    date: DateTime<Utc>,
    files: &[Attached],
) -> Result<Composed, ComposeError> {
    let address: Address = to.email.parse().map_err(|e| ComposeError {
        kind: Kind::Address,
        message: format!("`{}` is not a valid address ({e})", to.email),
    })?;
    match &envelope.common {
        Some(common) if files.is_empty() && plain_recipient(to) && plain_date(date) => {
            checked(assemble(common, to, address, texts, stamp, date))
        }
        _ => compose_by_builder(envelope, to, address, texts, stamp, date, files),
    }
}

/// A letter's message apart from its texts and files: their size is all that is left to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The message's bytes without the bodies of its parts (the two texts and the files) and
    /// without the names of their transfer encodings.
    bare: usize,
    /// The most bytes the attached files' bodies and their encodings' names take.
    files: usize,
}

/// The longest name of a transfer encoding lettre writes for a part.
const LONGEST_ENCODING: &str = "quoted-printable";

/// Makes every check `compose_with` makes of a letter's message — the recipient's address, the
/// headers lettre builds and derives the envelope from, the attached files' content types, the
/// header lines' length — with the same errors, without the letter's text or the files' bytes:
/// no check looks at them (see `compose_texts`). What is left to know of the message is its
/// size, and the frame bounds that (`Frame::at_most`).
///
/// The message is made with empty texts and empty files, by the same way as the real one (which
/// way depends on the recipient, the date and whether files go with it, never on the texts).
/// An empty body goes as 7bit and adds nothing, so the bare frame is that message less a "7bit"
/// for each part; the files' bodies are bounded by `body::file_at_most`.
pub(crate) fn frame(
    envelope: &Envelope,
    to: &Addressee,
    subject: &str,
    stamp: &Stamp,
    date: DateTime<Utc>,
    files: &[Attached],
) -> Result<Frame, ComposeError> {
    let empty: Vec<Attached> = files
        .iter()
        .map(|f| Attached {
            bytes: std::sync::Arc::new(Vec::new()),
            ..f.clone()
        })
        .collect();
    let texts = Texts {
        subject,
        plain: "",
        html: "",
    };
    let message = compose_texts(envelope, to, texts, stamp, date, &empty)?;
    let parts = 2 + files.len();
    Ok(Frame {
        bare: message.bytes.len() - parts * "7bit".len(),
        files: files
            .iter()
            .map(|f| body::file_at_most(&f.bytes) + LONGEST_ENCODING.len())
            .sum(),
    })
}

impl Frame {
    /// The most bytes the letter's message can have when its text part's text has at most
    /// `plain` bytes and its HTML document at most `html`: the frame, the files, and each text
    /// as large as `body::text_at_most` allows, with the longest encoding's name.
    pub(crate) fn at_most(&self, plain: usize, html: usize) -> usize {
        self.bare
            .saturating_add(self.files)
            .saturating_add(body::text_at_most(plain))
            .saturating_add(body::text_at_most(html))
            .saturating_add(2 * LONGEST_ENCODING.len())
    }
}

/// The message as lettre's builder makes it: its headers, read back from the headers it
/// wrote, give the envelope.
fn compose_by_builder(
    envelope: &Envelope,
    to: &Addressee,
    address: Address,
    texts: Texts<'_>,
    stamp: &Stamp,
    date: DateTime<Utc>,
    files: &[Attached],
) -> Result<Composed, ComposeError> {
    let name = (!to.name.is_empty()).then(|| to.name.clone());
    let builder = envelope.builder(
        Mailbox::new(name, address),
        texts.subject.to_owned(),
        &stamp.message_id,
        SystemTime::from(date),
    );
    let body = MultiPart::alternative()
        .boundary(boundary(&stamp.message_id))
        .singlepart(text_part(header::ContentType::TEXT_PLAIN, texts.plain))
        .singlepart(text_part(header::ContentType::TEXT_HTML, texts.html));
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
    checked(Composed {
        bytes: message.formatted(),
        envelope_from: env.from().map(|a| a.to_string()).unwrap_or_default(),
        envelope_to: env.to().iter().map(|a| a.to_string()).collect(),
        message_id: stamp.message_id.clone(),
    })
}

/// The message refused when a header line is longer than e-mail allows.
fn checked(composed: Composed) -> Result<Composed, ComposeError> {
    match overlong_header_line(&composed.bytes) {
        Some((header, octets)) => Err(ComposeError {
            kind: Kind::Message,
            message: format!(
                "its {header} header would have a line of {octets} octets, more than the {MAX_LINE_OCTETS} that e-mail allows"
            ),
        }),
        None => Ok(composed),
    }
}

/// Whether lettre's builder takes the envelope's recipient straight from this address. It
/// reads the address back from the To header it wrote (`"name" <address>`); for a dot-atom
/// address (letters, digits, `_`, `+` and `-` between single dots, one `@`) and a name without
/// control characters, quotes or backslashes, what it reads back is the address itself (the
/// tests check that on many names and addresses). Anything else takes the builder's way.
fn plain_recipient(to: &Addressee) -> bool {
    let dot_atom = |s: &str, more: &[u8]| {
        !s.is_empty()
            && s.split('.').all(|atom| {
                !atom.is_empty()
                    && atom
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || more.contains(&b))
            })
    };
    let address = match to.email.split_once('@') {
        Some((local, domain)) => dot_atom(local, b"_+") && dot_atom(domain, b""),
        None => false,
    };
    address
        && !to
            .name
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
}

/// Whether the date is one lettre writes and reads back as it is (from 1970 to 9999).
fn plain_date(date: DateTime<Utc>) -> bool {
    date.timestamp() >= 0 && date.year() <= 9999
}

/// The message for a letter without files, put together as lettre's builder puts it: the
/// common header lines around the letter's own (encoded by lettre), the multipart/alternative
/// Content-Type, and the two text parts.
fn assemble(
    common: &Common,
    to: &Addressee,
    address: Address,
    texts: Texts<'_>,
    stamp: &Stamp,
    date: DateTime<Utc>,
) -> Composed {
    let envelope_to = std::iter::once(address.to_string())
        .chain(common.copies.iter().cloned())
        .collect();
    let name = (!to.name.is_empty()).then(|| to.name.clone());
    let mut own = Headers::with_capacity(OWN_HEADERS.len());
    own.set(header::To::from(Mailboxes::from(Mailbox::new(
        name, address,
    ))));
    own.set(header::Subject::from(texts.subject.to_owned()));
    own.set(header::MessageId::from(format!("<{}>", stamp.message_id)));
    own.set(header::Date::new(SystemTime::from(date)));
    let boundary = boundary(&stamp.message_id);
    let mut content_type = Headers::new();
    content_type.insert_raw(HeaderValue::new(
        header::ContentType::name(),
        format!("multipart/alternative; boundary=\"{boundary}\""),
    ));
    let text = body::encode_text(texts.plain);
    let html = body::encode_text(texts.html);

    let mut bytes = Vec::with_capacity(
        common.before.len() + common.after.len() + text.len() + html.len() + 1024,
    );
    bytes.extend_from_slice(&common.before);
    write!(bytes, "{own}").expect("writing to a Vec");
    bytes.extend_from_slice(&common.after);
    write!(bytes, "{content_type}\r\n").expect("writing to a Vec");
    for (content_type, part) in [(&common.plain, &text), (&common.html, &html)] {
        write!(bytes, "--{boundary}\r\n").expect("writing to a Vec");
        bytes.extend_from_slice(content_type);
        write!(
            bytes,
            "Content-Transfer-Encoding: {}\r\n\r\n",
            part.encoding()
        )
        .expect("writing to a Vec");
        bytes.extend_from_slice(part.as_ref());
        bytes.extend_from_slice(b"\r\n");
    }
    write!(bytes, "--{boundary}--\r\n").expect("writing to a Vec");
    Composed {
        bytes,
        envelope_from: common.envelope_from.clone(),
        envelope_to,
        message_id: stamp.message_id.clone(),
    }
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
    let mut name_line: &[u8] = b"";
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', message).chain([message.len()]);
    for end in ends {
        let line = &message[start..end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        start = end + 1;
        if line.is_empty() {
            return None; // the end of the header block
        }
        if !line.starts_with(b" ") && !line.starts_with(b"\t") {
            name_line = line;
        }
        if line.len() > MAX_LINE_OCTETS {
            let name = name_line.split(|&b| b == b':').next().unwrap_or_default();
            return Some((String::from_utf8_lossy(name).into_owned(), line.len()));
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
    use crate::test_rng::Rng;
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

    /// The message as lettre's builder makes it, whatever way `compose_with` takes.
    fn by_builder(
        env: &Envelope,
        to: &Addressee,
        letter: &Rendered,
        stamp: &Stamp,
        date: DateTime<Utc>,
    ) -> Result<Composed, ComposeError> {
        let address: Address = to.email.parse().map_err(|e| ComposeError {
            kind: Kind::Address,
            message: format!("`{}` is not a valid address ({e})", to.email),
        })?;
        let html = html_document(&letter.subject, &letter.html_body);
        let texts = Texts {
            subject: &letter.subject,
            plain: &letter.text,
            html: &html,
        };
        compose_by_builder(env, to, address, texts, stamp, date, &[])
    }

    fn same_as_builder(
        env: &Envelope,
        to: &Addressee,
        letter: &Rendered,
        stamp: &Stamp,
        date: DateTime<Utc>,
    ) {
        let ours = compose(env, to, letter, stamp, date);
        let theirs = by_builder(env, to, letter, stamp, date);
        match (ours, theirs) {
            (Ok(a), Ok(b)) => {
                assert!(
                    a.bytes == b.bytes,
                    "{to:?}\nours:\n{}\nlettre's:\n{}",
                    String::from_utf8_lossy(&a.bytes),
                    String::from_utf8_lossy(&b.bytes)
                );
                assert_eq!(
                    (&a.envelope_from, &a.envelope_to, &a.message_id),
                    (&b.envelope_from, &b.envelope_to, &b.message_id),
                    "{to:?}"
                );
            }
            (Err(a), Err(b)) => assert_eq!(a, b, "{to:?}"),
            (a, b) => panic!("{to:?}: ours {a:?}, lettre's {b:?}"),
        }
    }

    const NAME_PIECES: &[&str] = &[
        "Ærø",
        "Kommune",
        " ",
        "  ",
        "nr.",
        "1",
        "æ",
        "ø",
        "å",
        "Å",
        "é",
        "ß",
        "–",
        "—",
        "’",
        "😀",
        "中文",
        "עברית",
        "e\u{301}",
        "\u{200b}",
        "\u{a0}",
        "=?utf-8?b?",
        "?=",
        "<",
        ">",
        "@",
        ",",
        ";",
        ":",
        "(",
        ")",
        "[",
        "]",
        ".",
        "'",
        "!",
        "#",
        "$",
        "%",
        "&",
        "*",
        "+",
        "/",
        "=",
        "?",
        "^",
        "_",
        "`",
        "{",
        "|",
        "}",
        "~",
        "-",
        "\"",
        "\\",
        "\t",
        "\u{7f}",
        "\u{85}",
        "Socialforvaltningen, Børne- og Ungeområdet",
    ];

    const LOCAL_PIECES: &[&str] = &[
        "post", "a", "Z", "0", "_", "+", "-", "x.y", ".", "..", "!", "#", "$", "%", "&", "'", "*",
        "/", "=", "?", "^", "`", "{", "|", "}", "~", "æ", "\"q\"",
    ];

    const DOMAIN_PIECES: &[&str] = &["kommune", "dk", "-", "x1", ".", "a-b", "æ", "[127.0.0.1]"];

    fn name(rng: &mut Rng) -> String {
        let mut name = String::new();
        for _ in 0..rng.below(12) {
            name.push_str(rng.pick(NAME_PIECES));
        }
        if rng.below(10) == 0 {
            name = name.repeat(1 + rng.below(8));
        }
        name
    }

    fn address(rng: &mut Rng) -> String {
        let mut local = String::new();
        for _ in 0..1 + rng.below(3) {
            local.push_str(if rng.below(3) == 0 {
                rng.pick(LOCAL_PIECES)
            } else {
                "post"
            });
        }
        let mut domain = String::from("kommune");
        for _ in 0..rng.below(3) {
            domain.push_str(if rng.below(3) == 0 {
                rng.pick(DOMAIN_PIECES)
            } else {
                ".dk"
            });
        }
        format!("{local}@{domain}")
    }

    fn envelope(rng: &mut Rng) -> Envelope {
        let mailboxes = [
            "Udlændinge- og Integrationsministeriet <uim@uim.dk>",
            "uim@uim.dk",
            "\"Journal, UIM\" <journal@uim.dk>",
            "Ærø Kommune <post@aeroe.dk>",
            "a.b+c@x-y.dk",
        ];
        let pick = |rng: &mut Rng, n: usize| -> Vec<String> {
            (0..n).map(|_| rng.pick(&mailboxes).to_string()).collect()
        };
        let (cc, bcc) = (rng.below(3), rng.below(3));
        let sender = Sender {
            from: rng.pick(&mailboxes).into(),
            reply_to: (rng.below(2) == 0).then(|| rng.pick(&mailboxes).into()),
            cc: pick(rng, cc),
            bcc: pick(rng, bcc),
        };
        Envelope::new(&sender)
            .unwrap()
            .asking_read_receipt(rng.below(2) == 0)
    }

    #[test]
    fn an_ordinary_letter_is_put_together_without_the_builder() {
        let (env, to, ..) = sample();
        assert!(env.common.is_some());
        assert!(plain_recipient(&to));
        assert!(plain_date(at("2020-06-29T10:00:00+02:00")));
        assert!(!plain_date(at("1969-12-31T23:59:59+00:00")));
    }

    #[test]
    fn a_letter_put_together_is_the_message_lettres_builder_makes() {
        let (_, _, mut letter, mut stamp) = sample();
        let texts = [
            "Til samtlige kommuner\n".to_string(),
            "Short ASCII lines\nonly\n".to_string(),
            "Æblegrød med fløde og en lang linje, der skal foldes. ".repeat(20),
            "📬📬📬📬📬📬📬📬📬📬".to_string(),
        ];
        let subjects = [
            "Æresrelaterede konflikter – Ærø Kommune".to_string(),
            "Plain subject".to_string(),
            "\"Quoted\" and =?utf-8?q?lookalike?= ".repeat(6),
            String::new(),
        ];
        let dates = [
            at("2020-06-29T10:00:00+02:00"),
            at("1970-01-01T00:00:00+00:00"),
            at("2038-01-19T03:14:08.5+00:00"),
        ];
        let mut rng = Rng(0x00c0_ffee_1234_5678);
        let mut put_together = 0;
        for round in 0..3_000 {
            let (env, to, date) = generated(
                &mut rng,
                (&subjects, &texts, &dates),
                (&mut letter, &mut stamp),
                round,
            );
            if env.common.is_some() && plain_recipient(&to) && plain_date(date) {
                put_together += 1;
            }
            same_as_builder(&env, &to, &letter, &stamp, date);
        }
        // Both ways were taken often.
        assert!((1_000..2_800).contains(&put_together), "{put_together}");
    }

    /// A generated letter for round `round`: an envelope and a recipient, and `letter` given a
    /// subject and texts from these, `stamp` a Message-ID; the date is one of `dates`.
    fn generated(
        rng: &mut Rng,
        (subjects, texts, dates): (&[String], &[String], &[DateTime<Utc>]),
        (letter, stamp): (&mut Rendered, &mut Stamp),
        round: usize,
    ) -> (Envelope, Addressee, DateTime<Utc>) {
        let env = envelope(rng);
        let to = Addressee {
            name: name(rng),
            email: address(rng),
        };
        let pick = |rng: &mut Rng, from: &[String]| from[rng.below(from.len())].clone();
        letter.subject = pick(rng, subjects);
        letter.text = pick(rng, texts);
        letter.html_body = format!("<p>{}</p>\n", pick(rng, texts));
        stamp.message_id = format!("rundbrev.{round}@uim.dk");
        let date = dates[rng.below(dates.len())];
        (env, to, date)
    }

    /// Files of every kind: binary, ASCII with short and long lines, empty, under names lettre
    /// has to encode.
    fn files(rng: &mut Rng) -> Vec<Attached> {
        let names = [
            "bilag.pdf",
            "Vejledning om æresrelaterede konflikter.pdf",
            "kort over Ærø.png",
            "notat.txt",
            "uden-endelse",
            "😀.csv",
        ];
        (0..rng.below(4))
            .map(|_| {
                let n = rng.below(3_000);
                let bytes: Vec<u8> = match rng.below(4) {
                    0 => (0..n).map(|i| (i * 7 + n) as u8).collect(),
                    1 => (0..n)
                        .map(|i| if i % 60 == 59 { b'\n' } else { b'a' })
                        .collect(),
                    2 => (0..n).map(|i| [b'x', b'=', b'\r', 1][i % 4]).collect(),
                    _ => Vec::new(),
                };
                let name = format!("{}{}", "lang ".repeat(rng.below(3) * 20), rng.pick(&names));
                Attached::new(name, std::sync::Arc::new(bytes))
            })
            .collect()
    }

    #[test]
    fn the_frame_is_the_message_without_its_texts_and_fails_as_the_message_does() {
        let (_, _, mut letter, mut stamp) = sample();
        let texts = [
            "Til samtlige kommuner\n".to_string(),
            "Æblegrød med fløde og en lang linje, der skal foldes. ".repeat(20),
            "📬📬📬📬📬📬📬📬📬📬".to_string(),
            String::new(),
        ];
        let subjects = [
            "Æresrelaterede konflikter – Ærø Kommune".to_string(),
            "Plain subject".to_string(),
            "\"Quoted\" and =?utf-8?q?lookalike?= ".repeat(6),
            "Ø".repeat(400),
            "A".repeat(990),
            String::new(),
        ];
        let dates = [
            at("2020-06-29T10:00:00+02:00"),
            at("2038-01-19T03:14:08.5+00:00"),
        ];
        let mut rng = Rng(0x00f7_a3e0_0000_0001);
        let (mut framed, mut refused) = (0, 0);
        for round in 0..2_000 {
            let (env, to, date) = generated(
                &mut rng,
                (&subjects, &texts, &dates),
                (&mut letter, &mut stamp),
                round,
            );
            let files = files(&mut rng);
            let message = compose_with(&env, &to, &letter, &stamp, date, &files);
            let frame = frame(&env, &to, &letter.subject, &stamp, date, &files);
            match (message, frame) {
                (Ok(message), Ok(frame)) => {
                    framed += 1;
                    let html = html_document(&letter.subject, &letter.html_body);
                    let text_parts: usize = [&letter.text, &html]
                        .iter()
                        .map(|t| {
                            let b = body::encode_text(t);
                            b.len() + b.encoding().to_string().len()
                        })
                        .sum();
                    let file_parts: usize = files
                        .iter()
                        .map(|f| {
                            let b = lettre::message::Body::new(f.bytes.to_vec());
                            assert!(
                                b.len() + b.encoding().to_string().len()
                                    <= body::file_at_most(&f.bytes) + LONGEST_ENCODING.len()
                            );
                            b.len() + b.encoding().to_string().len()
                        })
                        .sum();
                    assert_eq!(
                        frame.bare + text_parts + file_parts,
                        message.bytes.len(),
                        "{to:?} {files:?}"
                    );
                    let at_most = frame.at_most(letter.text.len(), html.len());
                    assert!(
                        message.bytes.len() <= at_most,
                        "{} > {at_most}",
                        message.bytes.len()
                    );
                }
                (Err(a), Err(b)) => {
                    refused += 1;
                    assert_eq!(a, b, "{to:?}");
                }
                (a, b) => panic!("{to:?}: the message {a:?}, the frame {b:?}"),
            }
        }
        // Both happened often.
        assert!(
            framed > 500 && refused > 100,
            "{framed} framed, {refused} refused"
        );
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
