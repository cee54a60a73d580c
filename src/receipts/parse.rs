//! What a message that came back says: a bounce, a delay, a delivery or relay report, a read
//! receipt, an automatic reply, a genuine reply, a feedback report, or nothing we understand.
//!
//! `mail-parser` reads the MIME; the DSN status block is read by `dsn`, and the home-made
//! bounces of Exim, qmail, Sendmail, Postfix, Exchange and others by `text`. Pure: bytes in,
//! an `Understood` out. It never looks at the ledger and never decides which letter a message is
//! about (see `matching`); an automatic reply is never made into a failure.

use mail_parser::{Message, MessageParser, MessagePart, MimeHeaders as _, PartType};

use crate::receipts::dsn;
pub(crate) use crate::receipts::kind::{Kind, Reported};
use crate::receipts::text;

/// How deep message/rfc822 and multipart parts may nest before a message is refused as unreadable.
pub(crate) const MAX_DEPTH: usize = 12;

/// A message understood.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Understood {
    pub kind: Option<Kind>,
    pub recipients: Vec<Reported>,
    /// The Message-ID of the letter the message is about (returned headers, MDN), without <>.
    pub original_message_id: Option<String>,
    /// The envelope id (ENVID) the letter was sent with, decoded.
    pub envid: Option<String>,
    /// The relay's queue id for the letter (Postfix's X-Postfix-Queue-ID).
    pub queue_id: Option<String>,
    /// Message-IDs named by In-Reply-To and References, without <>.
    pub references: Vec<String>,
    /// The server or person that sent the message (Reporting-MTA, or From).
    pub reporter: Option<String>,
    /// The message's Date, as RFC 3339, if it has a readable one.
    pub date: Option<String>,
    /// Why the message could not be read, if it could not.
    pub unreadable: Option<String>,
}

impl Understood {
    pub(crate) fn kind(&self) -> Kind {
        self.kind.unwrap_or(Kind::Unknown)
    }
}

/// Reads one raw message.
pub(crate) fn understand(raw: &[u8]) -> Understood {
    // Some programs save a message with a byte-order mark or blank lines before the headers.
    let raw = raw.strip_prefix(b"\xef\xbb\xbf").unwrap_or(raw);
    let start = raw
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(raw.len());
    let raw = &raw[start..];
    if let Some(why) = junk(raw) {
        return Understood {
            unreadable: Some(why),
            ..Understood::default()
        };
    }
    let Some(msg) = MessageParser::default().parse(raw) else {
        return Understood {
            unreadable: Some("it has no mail headers".into()),
            ..Understood::default()
        };
    };
    if depth(&msg, 0) > MAX_DEPTH {
        return Understood {
            unreadable: Some(format!("its parts are nested more than {MAX_DEPTH} deep")),
            ..Understood::default()
        };
    }
    let mut u = Understood {
        date: msg.date().map(|d| d.to_rfc3339()),
        references: references(&msg),
        reporter: from_address(&msg),
        ..Understood::default()
    };
    let blocks: Vec<String> = msg
        .parts
        .iter()
        .filter(|p| is_part(p, &["delivery-status", "global-delivery-status"]))
        .map(part_text)
        .collect();
    if !blocks.is_empty() {
        let mut block = dsn::StatusBlock::default();
        for text in &blocks {
            let b = dsn::read(text);
            if block.recipients.is_empty() {
                block.message = b.message;
            }
            block.recipients.extend(b.recipients);
        }
        read_dsn(&msg, &block, &mut u);
    } else if let Some(part) = find_part(
        &msg,
        &[
            "disposition-notification",
            "global-disposition-notification",
        ],
    ) {
        read_mdn(&msg, &dsn::read(&part_text(part)), &mut u);
    } else if find_part(&msg, &["feedback-report"]).is_some() {
        u.kind = Some(Kind::Feedback);
        u.original_message_id = returned_message_id(&msg);
    } else if let Some(block) = status_block_in_text(&msg) {
        // A status block in the body of a message whose MIME header was lost.
        read_dsn(&msg, &block, &mut u);
    } else if let Some(t) = text::read(&msg) {
        u.kind = Some(t.kind);
        u.recipients = t.recipients;
        u.original_message_id = returned_message_id(&msg);
        if u.queue_id.is_none() {
            u.queue_id = header_text(&msg, "X-Postfix-Queue-ID");
        }
    } else if is_auto_reply(&msg) {
        u.kind = Some(Kind::AutoReply);
        u.recipients = sender_as_recipient(&msg, "auto-replied");
    } else if !u.references.is_empty() {
        u.kind = Some(Kind::Reply);
        u.recipients = sender_as_recipient(&msg, "replied");
    } else {
        u.kind = Some(Kind::Unknown);
    }
    u
}

/// Binary junk: NUL bytes in the headers, or no header line at all at the start.
fn junk(raw: &[u8]) -> Option<String> {
    if raw.starts_with(&[0xd0, 0xcf, 0x11, 0xe0]) {
        return Some(
            "it is an Outlook .msg file, not an e-mail file; in Outlook save or drag the message as .eml and read that".into(),
        );
    }
    if raw.is_empty() {
        return Some("it is empty".into());
    }
    let head_end = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .or_else(|| raw.windows(4).position(|w| w == b"\r\n\r\n"))
        .unwrap_or(raw.len().min(4096));
    let head = &raw[..head_end.min(raw.len())];
    if head.contains(&0) {
        return Some("it is not a mail message (binary data)".into());
    }
    let first = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let is_field = first
        .iter()
        .position(|&b| b == b':')
        .is_some_and(|colon| colon > 0 && first[..colon].iter().all(|b| b.is_ascii_graphic()));
    let is_mbox_line = first.starts_with(b"From ");
    (!is_field && !is_mbox_line).then(|| "it does not start with mail headers".into())
}

/// How deep parts nest: each multipart inside a multipart and each enclosed message is a level.
fn depth(msg: &Message<'_>, level: usize) -> usize {
    let mut deepest = level + multipart_chain(msg);
    if deepest > MAX_DEPTH {
        return deepest;
    }
    for part in &msg.parts {
        if let PartType::Message(inner) = &part.body {
            deepest = deepest.max(depth(inner, level + 1));
        }
    }
    deepest
}

/// The longest chain of multipart inside multipart in one message.
fn multipart_chain(msg: &Message<'_>) -> usize {
    fn chain(msg: &Message<'_>, id: usize, seen: usize) -> usize {
        if seen > MAX_DEPTH {
            return seen;
        }
        match msg.parts.get(id).map(|p| &p.body) {
            Some(PartType::Multipart(children)) => children
                .iter()
                .map(|&c| chain(msg, c as usize, seen + 1))
                .max()
                .unwrap_or(seen + 1),
            _ => seen,
        }
    }
    chain(msg, 0, 0)
}

/// The first part of type message/<subtype> or text/<subtype>, for one of the subtypes.
fn find_part<'a>(msg: &'a Message<'a>, subtypes: &[&str]) -> Option<&'a MessagePart<'a>> {
    msg.parts.iter().find(|p| is_part(p, subtypes))
}

fn is_part(part: &MessagePart<'_>, subtypes: &[&str]) -> bool {
    part.content_type().is_some_and(|ct| {
        matches!(ct.ctype().to_ascii_lowercase().as_str(), "message" | "text")
            && ct
                .subtype()
                .is_some_and(|s| subtypes.iter().any(|w| s.eq_ignore_ascii_case(w)))
    })
}

/// A status block written in the text itself (a multipart/report whose MIME header was lost, or
/// a notice that quotes one): from its per-message group to the next MIME boundary or returned
/// header.
fn status_block_in_text(msg: &Message<'_>) -> Option<dsn::StatusBlock> {
    let raw = msg.raw_message();
    let body_start = msg.parts.first().map(|p| p.offset_body as usize)?;
    let body = String::from_utf8_lossy(raw.get(body_start..)?);
    let starts = |l: &str, f: &str| l.get(..f.len()).is_some_and(|h| h.eq_ignore_ascii_case(f));
    let blank = |l: &str| l.trim().is_empty();
    let lines: Vec<&str> = body.lines().collect();
    let first = lines.iter().position(|l| starts(l, "Final-Recipient:"))?;
    // The recipient's group starts after a blank line; the per-message group is the one before.
    let mut start = first;
    while start > 0 && !blank(lines[start - 1]) {
        start -= 1;
    }
    let mut before = start;
    while before > 0 && blank(lines[before - 1]) {
        before -= 1;
    }
    let mut group = before;
    while group > 0 && !blank(lines[group - 1]) {
        group -= 1;
    }
    if lines[group..before]
        .iter()
        .any(|l| starts(l, "Reporting-MTA:") || starts(l, "Original-Envelope-Id:"))
    {
        start = group;
    }
    let end = lines[first..]
        .iter()
        .position(|l| l.starts_with("--") || starts(l, "Return-Path:") || starts(l, "Received:"))
        .map_or(lines.len(), |n| first + n);
    let block = dsn::read(&lines[start..end].join("\n"));
    (!block.recipients.is_empty()).then_some(block)
}

/// A part's body as text, decoded.
fn part_text(part: &MessagePart<'_>) -> String {
    match &part.body {
        PartType::Text(t) | PartType::Html(t) => t.to_string(),
        PartType::Binary(b) | PartType::InlineBinary(b) => String::from_utf8_lossy(b).into_owned(),
        PartType::Message(m) => String::from_utf8_lossy(m.raw_message()).into_owned(),
        PartType::Multipart(_) => String::new(),
    }
}

fn read_dsn(msg: &Message<'_>, block: &dsn::StatusBlock, u: &mut Understood) {
    u.envid = block
        .message
        .get("Original-Envelope-Id")
        .map(|v| dsn::xtext_decode(v.trim()));
    u.queue_id = block
        .message
        .get("X-Postfix-Queue-ID")
        .map(str::to_string)
        .or_else(|| header_text(msg, "X-Postfix-Queue-ID"));
    if let Some(mta) = block.message.get("Reporting-MTA") {
        u.reporter = Some(dsn::typed_value(mta));
    }
    for r in &block.recipients {
        let Some(address) = r
            .get("Final-Recipient")
            .and_then(dsn::address)
            .or_else(|| r.get("Original-Recipient").and_then(dsn::address))
        else {
            continue;
        };
        let diagnostic = r.get("Diagnostic-Code").map(dsn::typed_value);
        let status = r
            .get("Status")
            .and_then(dsn::status_code)
            .or_else(|| diagnostic.as_deref().and_then(dsn::status_code))
            .or_else(|| {
                diagnostic
                    .as_deref()
                    .and_then(text::cause_code)
                    .map(str::to_string)
            })
            .or_else(|| {
                diagnostic
                    .as_deref()
                    .and_then(dsn::reply_code)
                    .map(|c| format!("{}.0.0", c / 100))
            });
        let action = r
            .get("Action")
            .map(|a| {
                a.split(|c: char| c.is_whitespace() || c == '(')
                    .next()
                    .unwrap_or_default()
                    .to_ascii_lowercase()
            })
            .map(|a| match a.as_str() {
                // Words some servers use instead of RFC 3464's.
                "expired" | "failure" | "bounced" => "failed".to_string(),
                "deliverable" | "success" => "delivered".to_string(),
                _ => a,
            })
            .filter(|a| {
                ["failed", "delayed", "delivered", "relayed", "expanded"].contains(&a.as_str())
            })
            .unwrap_or_else(|| action_from_status(status.as_deref()).to_string());
        // A report without a code still has a class: its action's.
        let status = status.or_else(|| {
            Some(
                match action.as_str() {
                    "failed" => "5.0.0",
                    "delayed" => "4.0.0",
                    _ => "2.0.0",
                }
                .to_string(),
            )
        });
        // Some servers say "failed" with a 2.x.x code: the code is the fact, the action wins only
        // where the code does not disagree.
        let action = match (
            action.as_str(),
            status.as_deref().and_then(|s| s.chars().next()),
        ) {
            ("delivered" | "relayed" | "expanded", Some('4' | '5')) => {
                action_from_status(status.as_deref()).to_string()
            }
            _ => action,
        };
        u.recipients.push(Reported {
            address,
            original: r.get("Original-Recipient").and_then(dsn::address),
            action,
            status,
            diagnostic,
            remote: r.get("Remote-MTA").map(dsn::typed_value),
        });
    }
    if u.recipients.is_empty() {
        // A status block without recipients: try the words of the message instead.
        if let Some(t) = text::read(msg) {
            u.recipients = t.recipients;
        }
    }
    u.original_message_id = returned_message_id(msg);
    u.kind = Some(kind_of(&u.recipients));
}

fn action_from_status(status: Option<&str>) -> &'static str {
    match status.and_then(|s| s.chars().next()) {
        Some('2') => "delivered",
        Some('4') => "delayed",
        _ => "failed",
    }
}

/// A report's kind from its recipients: any failure makes it a bounce, then a delay, then a
/// delivery, then a relay.
fn kind_of(recipients: &[Reported]) -> Kind {
    let has = |a: &str| recipients.iter().any(|r| r.action == a);
    if has("failed") {
        Kind::Bounce
    } else if has("delayed") {
        Kind::Delay
    } else if has("delivered") {
        Kind::Delivered
    } else if has("relayed") || has("expanded") {
        Kind::Relayed
    } else {
        Kind::Unknown
    }
}

fn read_mdn(msg: &Message<'_>, block: &dsn::StatusBlock, u: &mut Understood) {
    // An MDN has a single group: the per-message fields carry the recipient.
    let fields = block.recipients.first().unwrap_or(&block.message);
    let get = |n: &str| fields.get(n).or_else(|| block.message.get(n));
    u.original_message_id = get("Original-Message-ID").and_then(bracketed_id);
    if let Some(ua) = get("Reporting-UA") {
        u.reporter = Some(dsn::typed_value(ua));
    }
    let disposition = get("Disposition")
        .and_then(|d| d.rsplit(';').next())
        .map(|d| {
            d.split('/')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_else(|| "displayed".into());
    let address = get("Final-Recipient")
        .and_then(dsn::address)
        .or_else(|| get("Original-Recipient").and_then(dsn::address))
        .or_else(|| from_address(msg));
    if let Some(address) = address {
        u.recipients.push(Reported {
            address,
            original: get("Original-Recipient").and_then(dsn::address),
            action: disposition.clone(),
            ..Reported::default()
        });
    }
    // "deleted" means it was thrown away unread; it still arrived. Only "displayed" is a read.
    u.kind = Some(if disposition == "displayed" {
        Kind::Read
    } else {
        Kind::Delivered
    });
}

/// The Message-ID of the returned letter: from an enclosed message or headers part, else from
/// a "Message-ID:" line in the body of a home-made bounce.
pub(crate) fn returned_message_id(msg: &Message<'_>) -> Option<String> {
    for part in msg.parts.iter().skip(1) {
        match &part.body {
            PartType::Message(inner) => {
                if let Some(id) = inner.message_id() {
                    return Some(id.to_string());
                }
            }
            _ => {
                let is_headers = part.content_type().is_some_and(|ct| {
                    ct.subtype()
                        .is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers"))
                });
                if is_headers {
                    let text = part_text(part);
                    if let Some(id) = MessageParser::default()
                        .parse_headers(text.as_bytes())
                        .and_then(|h| h.message_id().map(str::to_string))
                    {
                        return Some(id);
                    }
                }
            }
        }
    }
    // Home-made bounces quote the letter's headers in their text.
    let raw = msg.raw_message();
    let body_start = msg
        .parts
        .first()
        .map(|p| p.offset_body as usize)
        .unwrap_or(0);
    let body = String::from_utf8_lossy(raw.get(body_start..).unwrap_or_default());
    body.lines().find_map(|line| {
        let line = line.trim_start_matches(['>', ' ', '\t']);
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("message-id")
            .then(|| bracketed_id(value))
            .flatten()
    })
}

/// "<a@b>" → "a@b"; a value without brackets is taken as it is if it looks like an id.
pub(crate) fn bracketed_id(value: &str) -> Option<String> {
    let v = value.trim();
    let inner = match (v.find('<'), v.rfind('>')) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        // A bracket opened and never closed: cut off (a folded or quoted line).
        (Some(_), _) => return None,
        _ => v,
    };
    let inner = inner.trim();
    (!inner.is_empty() && inner.contains('@') && !inner.contains(char::is_whitespace))
        .then(|| inner.to_string())
}

fn references(msg: &Message<'_>) -> Vec<String> {
    let mut ids = Vec::new();
    for v in [msg.in_reply_to(), msg.references()] {
        if let Some(list) = v.as_text_list() {
            ids.extend(list.iter().map(|s| s.to_string()));
        } else if let Some(t) = v.as_text() {
            ids.push(t.to_string());
        }
    }
    ids.retain(|id| id.contains('@'));
    ids.dedup();
    ids
}

fn from_address(msg: &Message<'_>) -> Option<String> {
    msg.from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(str::to_string)
}

fn header_text(msg: &Message<'_>, name: &str) -> Option<String> {
    msg.header_raw(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

fn sender_as_recipient(msg: &Message<'_>, action: &str) -> Vec<Reported> {
    from_address(msg)
        .map(|address| Reported {
            address,
            action: action.into(),
            ..Reported::default()
        })
        .into_iter()
        .collect()
}

/// RFC 3834 `Auto-Submitted: auto-replied`, the older vacation headers, or an out-of-office
/// subject.
fn is_auto_reply(msg: &Message<'_>) -> bool {
    let header = |n: &str| header_text(msg, n).map(|v| v.to_ascii_lowercase());
    if header("Auto-Submitted").is_some_and(|v| !v.starts_with("no")) {
        return true;
    }
    if header("X-Autoreply").is_some()
        || header("X-Autorespond").is_some()
        || header("X-Auto-Response-Suppress").is_some_and(|v| v.contains("oof"))
        || header("Precedence").is_some_and(|v| v.contains("auto_reply"))
    {
        return true;
    }
    let subject = msg.subject().unwrap_or_default().to_lowercase();
    [
        "out of office",
        "out of the office",
        "automatic reply",
        "auto reply",
        "autoreply",
        "auto-reply",
        "automatisk svar",
        "autosvar",
        "fraværende",
        "fravær",
        "vacation",
        "abwesenheit",
    ]
    .iter()
    .any(|w| subject.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn postfix_dsn(action: &str, status: &str) -> String {
        format!(
            "From: MAILER-DAEMON@relay.uim.dk (Mail Delivery System)\r\n\
Subject: Undelivered Mail Returned to Sender\r\n\
To: rundbrev@uim.dk\r\n\
Date: Mon, 29 Jun 2020 10:03:00 +0200\r\n\
Auto-Submitted: auto-replied\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n\
\r\n\
--B\r\n\
Content-Type: text/plain\r\n\
\r\n\
I'm sorry to have to inform you that your message could not be delivered.\r\n\
\r\n\
--B\r\n\
Content-Type: message/delivery-status\r\n\
\r\n\
Reporting-MTA: dns; relay.uim.dk\r\n\
X-Postfix-Queue-ID: 4dLx7Q\r\n\
Original-Envelope-Id: rundbrev.c.1.101.ab+2Bx@uim.dk\r\n\
\r\n\
Final-Recipient: rfc822; post@laesoe.dk\r\n\
Original-Recipient: rfc822;post@laesoe.dk\r\n\
Action: {action}\r\n\
Status: {status}\r\n\
Diagnostic-Code: smtp; 550 {status} User unknown\r\n\
\r\n\
--B\r\n\
Content-Type: text/rfc822-headers\r\n\
\r\n\
From: rundbrev@uim.dk\r\n\
Message-ID: <rundbrev.c.1.101.ab@uim.dk>\r\n\
Subject: Rundbrev\r\n\
\r\n\
--B--\r\n"
        )
    }

    #[test]
    fn a_postfix_dsn_is_a_bounce_with_its_keys() {
        let u = understand(postfix_dsn("failed", "5.1.1").as_bytes());
        assert_eq!(u.kind(), Kind::Bounce, "{u:?}");
        assert_eq!(u.envid.as_deref(), Some("rundbrev.c.1.101.ab+x@uim.dk"));
        assert_eq!(u.queue_id.as_deref(), Some("4dLx7Q"));
        assert_eq!(
            u.original_message_id.as_deref(),
            Some("rundbrev.c.1.101.ab@uim.dk")
        );
        assert_eq!(u.reporter.as_deref(), Some("relay.uim.dk"));
        let r = &u.recipients[0];
        assert_eq!(
            (r.address.as_str(), r.action.as_str(), r.status.as_deref()),
            ("post@laesoe.dk", "failed", Some("5.1.1"))
        );
        // Auto-Submitted on a DSN does not make it an automatic reply.
        assert!(r.is_failure());
    }

    #[test]
    fn delays_and_deliveries_are_told_apart() {
        assert_eq!(
            understand(postfix_dsn("delayed", "4.4.1").as_bytes()).kind(),
            Kind::Delay
        );
        assert_eq!(
            understand(postfix_dsn("delivered", "2.0.0").as_bytes()).kind(),
            Kind::Delivered
        );
        assert_eq!(
            understand(postfix_dsn("relayed", "2.0.0").as_bytes()).kind(),
            Kind::Relayed
        );
        // A "delivered" with a 5.x.x code is not trusted as a delivery.
        assert_eq!(
            understand(postfix_dsn("delivered", "5.1.1").as_bytes()).kind(),
            Kind::Bounce
        );
    }

    #[test]
    fn an_out_of_office_is_an_auto_reply_never_a_failure() {
        let raw = "From: Borgerservice <post@laesoe.dk>\nTo: rundbrev@uim.dk\nSubject: Automatisk svar: Rundbrev\nAuto-Submitted: auto-replied\nIn-Reply-To: <rundbrev.c.1.101.ab@uim.dk>\n\nJeg er på ferie.\n";
        let u = understand(raw.as_bytes());
        assert_eq!(u.kind(), Kind::AutoReply);
        assert!(u.recipients.iter().all(|r| !r.is_failure()));
        assert_eq!(u.references, vec!["rundbrev.c.1.101.ab@uim.dk".to_string()]);
    }

    #[test]
    fn a_reply_names_the_letter_and_its_sender() {
        let raw = "From: Jens <jens@laesoe.dk>\nTo: rundbrev@uim.dk\nSubject: Re: Rundbrev\nDate: Tue, 30 Jun 2020 09:00:00 +0200\nIn-Reply-To: <rundbrev.c.1.101.ab@uim.dk>\nReferences: <rundbrev.c.1.101.ab@uim.dk>\n\nTak.\n";
        let u = understand(raw.as_bytes());
        assert_eq!(u.kind(), Kind::Reply);
        assert_eq!(u.recipients[0].address, "jens@laesoe.dk");
        assert_eq!(u.date.as_deref(), Some("2020-06-30T09:00:00+02:00"));
    }

    #[test]
    fn a_read_receipt_names_the_original() {
        let raw = "From: post@laesoe.dk\nTo: rundbrev@uim.dk\nSubject: Read: Rundbrev\nMIME-Version: 1.0\nContent-Type: multipart/report; report-type=disposition-notification; boundary=\"X\"\n\n--X\nContent-Type: text/plain\n\nRead.\n--X\nContent-Type: message/disposition-notification\n\nReporting-UA: mail.laesoe.dk; Outlook\nFinal-Recipient: rfc822; post@laesoe.dk\nOriginal-Message-ID: <rundbrev.c.1.101.ab@uim.dk>\nDisposition: manual-action/MDN-sent-manually; displayed\n\n--X--\n";
        let u = understand(raw.as_bytes());
        assert_eq!(u.kind(), Kind::Read);
        assert_eq!(
            u.original_message_id.as_deref(),
            Some("rundbrev.c.1.101.ab@uim.dk")
        );
        assert_eq!(u.recipients[0].address, "post@laesoe.dk");
    }

    #[test]
    fn a_byte_order_mark_or_blank_lines_before_the_headers_are_skipped() {
        let raw = format!("\u{feff}\r\n{}", postfix_dsn("failed", "5.1.1"));
        let u = understand(raw.as_bytes());
        assert_eq!(u.kind(), Kind::Bounce, "{u:?}");
        assert_eq!(u.recipients[0].address, "post@laesoe.dk");
    }

    #[test]
    fn junk_and_deep_nesting_are_unreadable() {
        assert!(understand(b"").unreadable.is_some());
        let msg = understand(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00");
        assert!(msg.unreadable.is_some_and(|w| w.contains(".msg")));
        assert!(understand(b"\x00\x01\x02binary\xff\xfe")
            .unreadable
            .is_some());
        assert!(understand(b"just some words\nand more\n")
            .unreadable
            .is_some());
        let mut deep =
            String::from("From: a@b.dk\nContent-Type: multipart/mixed; boundary=\"b0\"\n\n");
        for i in 1..40 {
            deep.push_str(&format!(
                "--b{}\nContent-Type: multipart/mixed; boundary=\"b{i}\"\n\n",
                i - 1
            ));
        }
        deep.push_str("--b39\nContent-Type: text/plain\n\nx\n");
        let u = understand(deep.as_bytes());
        assert!(
            u.unreadable
                .as_deref()
                .is_some_and(|w| w.contains("nested")),
            "{u:?}"
        );
        // Messages enclosed in messages, as deep: read without trouble, and nothing in them.
        let mut inner = String::from("From: x@y.dk\nSubject: innermost\n\nx\n");
        for _ in 0..30 {
            inner = format!(
                "From: MAILER-DAEMON@y.dk\nSubject: Undelivered Mail\nContent-Type: message/rfc822\n\n{inner}"
            );
        }
        let u = understand(inner.as_bytes());
        assert!(u.unreadable.is_some() || u.recipients.is_empty(), "{u:?}");
    }
}
