//! Home-made bounces: the plain-text failure notices of Exim (`X-Failed-Recipients`), qmail,
//! Sendmail, Postfix, old Exchange and others that carry no RFC 3464 status block.
//!
//! Pure reading of a message's own text: who it names as failed, and the status code near each
//! address. It recognises a bounce by its sender, subject or wording, and declines anything
//! else, so an ordinary message or an automatic reply is never made into a failure here.

use mail_parser::{Message, PartType};

use crate::receipts::dsn;
use crate::receipts::kind::{Kind, Reported};

/// A home-made bounce read.
pub(crate) struct TextBounce {
    pub kind: Kind,
    pub recipients: Vec<Reported>,
}

const SUBJECTS: &[&str] = &[
    "undeliver",
    "undelivered",
    "delivery status notification",
    "delivery failure",
    "delivery failed",
    "delivery has failed",
    "mail delivery failed",
    "failure notice",
    "returned mail",
    "returned to sender",
    "non remis",
    "nicht zustellbar",
    "kunne ikke leveres",
    "unzustellbar",
    "delivery notification",
    "mail system error",
    "could not send message",
    "message not delivered",
    "rejected",
    "warning: could not send",
    "delayed mail",
    "delivery delayed",
    "mail could not be delivered",
    "mail delivery problem",
    "permanent error",
    "mail failure",
    "nondeliverable",
    "not delivered",
    "error sending message",
    "message delivery failure",
    "failed delivery",
    "unable to deliver",
];

const SENDERS: &[&str] = &[
    "mailer-daemon",
    "mailer_daemon",
    "mail-daemon",
    "maildaemon",
    "postmaster",
    "mail.delivery",
    "mail-delivery",
    "mailerdaemon",
    "bounce",
    "mdaemon",
    "nobody",
];

/// Local parts that are the mail system itself, never a recipient named as failed.
const SYSTEM: &[&str] = &[
    "mailer-daemon",
    "mailer_daemon",
    "mail-daemon",
    "maildaemon",
];

/// Subjects that say "bounce" on their own, without a matching phrase in the text.
const STRONG_SUBJECTS: &[&str] = &[
    "undeliver",
    "returned mail",
    "delivery status notification",
    "failure notice",
    "mail delivery failed",
    "delivery failure",
    "returned to sender",
    "nondeliverable",
    "mail system error",
    "delivery has failed",
    "warning: could not send",
    "delayed mail",
    "delivery delayed",
    "unzustellbar",
    "nicht zustellbar",
    "kunne ikke leveres",
];

/// Words that name a cause when a notice gives no code, with the code (RFC 3463) they mean.
const CAUSES: &[(&str, &str)] = &[
    ("retry timeout exceeded", "4.4.7"),
    ("dns lookup failure", "5.1.2"),
    ("host not found", "5.1.2"),
    ("host unknown", "5.1.2"),
    ("domain not found", "5.1.2"),
    ("no such domain", "5.1.2"),
    ("user unknown", "5.1.1"),
    ("unknown user", "5.1.1"),
    ("no such user", "5.1.1"),
    ("does not exist", "5.1.1"),
    ("mailbox not found", "5.1.1"),
    ("recipient not found", "5.1.1"),
    ("no mailbox", "5.1.1"),
    ("mailbox full", "5.2.2"),
    ("mailbox is full", "5.2.2"),
    ("over quota", "5.2.2"),
    ("quota exceeded", "5.2.2"),
    ("too large", "5.3.4"),
    ("too big", "5.3.4"),
    ("size limit", "5.3.4"),
];

/// A status code inferred from the words of a notice, when it gives none.
pub(crate) fn cause_code(text: &str) -> Option<&'static str> {
    let lower = text.to_lowercase();
    CAUSES
        .iter()
        .find(|(words, _)| lower.contains(words))
        .map(|(_, code)| *code)
}

const PHRASES: &[&str] = &[
    "could not be delivered",
    "was not delivered",
    "wasn't able to deliver",
    "was unable to deliver",
    "could not deliver",
    "couldn't be delivered",
    "delivery to the following recipient",
    "did not reach the following recipient",
    "following address(es) failed",
    "following addresses had permanent fatal errors",
    "permanent error",
    "undeliverable",
    "message delivery has failed",
    "delivery has failed",
    "has been delayed",
    "unable to deliver",
    "your message cannot be delivered",
    "user unknown",
    "does not exist",
    "returned to you",
    "delivery failed",
    "error delivering",
    "failure reason",
    "was rejected",
    "not able to be delivered",
    "could not be sent",
];

const DELAY: &[&str] = &[
    "has been delayed",
    "have been delayed",
    "delivery delayed",
    "delayed mail",
    "will retry",
    "will continue trying",
    "still trying",
    "not yet been delivered",
    "(delay)",
    "warning: could not send message for past",
    "this is a warning message only",
    "you do not need to resend",
];

const GIVEN_UP: &[&str] = &[
    "permanent",
    "given up",
    "giving up",
    "gave up",
    "failed permanently",
    "could not be delivered",
    "undeliverable",
];

/// Where the notice ends and the returned letter begins.
const COPY_MARKERS: &[&str] = &[
    "copy of the message",
    "copy of your message",
    "copy of the original message",
    "original message follows",
    "original message ----",
    "original message headers",
    "message header follows",
    "below this line is a copy",
    "enclosed is a copy",
    "unsent message below",
    "undelivered message headers",
    "returned message",
    "headers of your message",
    "received: from",
    "return-path:",
];

/// Reads a home-made bounce, or declines (None) when the message does not look like one.
pub(crate) fn read(msg: &Message<'_>) -> Option<TextBounce> {
    let failed_header: Vec<String> = msg
        .header_values("X-Failed-Recipients")
        .filter_map(|v| v.as_text())
        .flat_map(|t| t.split(','))
        .map(|a| a.trim().trim_matches(['<', '>']).to_string())
        .filter(|a| a.contains('@'))
        .collect();
    let subject = msg.subject().unwrap_or_default().to_lowercase();
    let from = msg
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_lowercase();
    let text = notice_text(msg);
    let lower = text.to_lowercase();
    let strong = !failed_header.is_empty() || STRONG_SUBJECTS.iter().any(|w| subject.contains(w));
    let looks_like = SUBJECTS.iter().any(|w| subject.contains(w))
        || SENDERS
            .iter()
            .any(|w| from.split('@').next().unwrap_or("").contains(w));
    let says_so = looks_like && PHRASES.iter().any(|p| lower.contains(p));
    if !(strong || says_so) {
        return None;
    }
    let delay = (DELAY
        .iter()
        .any(|w| lower.contains(w) || subject.contains(w)))
        && !GIVEN_UP.iter().any(|w| lower.contains(w));

    // The notice's own addresses (sender, receiver of the notice) are not recipients of the letter.
    let mut own: Vec<String> = vec![from.clone()];
    for a in msg.to().into_iter().flat_map(|a| a.iter()) {
        if let Some(addr) = a.address() {
            own.push(addr.to_lowercase());
        }
    }
    let mut candidates = failed_header.clone();
    if candidates.is_empty() {
        for a in line_addresses(&text) {
            let l = a.to_lowercase();
            let local = l.split('@').next().unwrap_or("");
            if own.contains(&l) || SYSTEM.contains(&local) {
                continue;
            }
            if !candidates.iter().any(|c| c.eq_ignore_ascii_case(&a)) {
                candidates.push(a);
            }
        }
    }
    if candidates.is_empty() {
        return None;
    }
    let positions: Vec<usize> = candidates.iter().map(|a| locate(&text, a)).collect();
    let overall = dsn::status_code(&text)
        .or_else(|| dsn::reply_code(&text).map(|c| format!("{}.0.0", c / 100)));
    let mut recipients = Vec::new();
    for (i, address) in candidates.iter().enumerate() {
        let start = positions[i];
        let end = positions
            .iter()
            .copied()
            .filter(|&p| p > start)
            .min()
            .unwrap_or(text.len());
        let part = text.get(start..end).unwrap_or("");
        let status = dsn::status_code(part)
            .or_else(|| cause_code(part).map(str::to_string))
            .or_else(|| dsn::reply_code(part).map(|c| format!("{}.0.0", c / 100)))
            .or_else(|| overall.clone())
            .unwrap_or_else(|| if delay { "4.0.0" } else { "5.0.0" }.to_string());
        let action = if status.starts_with('2') {
            "delivered"
        } else if delay {
            "delayed"
        } else {
            "failed"
        };
        recipients.push(Reported {
            address: address.clone(),
            original: None,
            action: action.into(),
            status: Some(status),
            diagnostic: diagnostic(part),
            remote: None,
        });
    }
    let kind = if recipients.iter().any(|r| r.action == "failed") {
        Kind::Bounce
    } else if recipients.iter().any(|r| r.action == "delayed") {
        Kind::Delay
    } else {
        Kind::Delivered
    };
    Some(TextBounce { kind, recipients })
}

/// The notice's own words: the text parts of the message itself (not of an enclosed letter),
/// cut where the copy of the returned letter begins.
fn notice_text(msg: &Message<'_>) -> String {
    let mut text = String::new();
    for (i, part) in msg.parts.iter().enumerate() {
        if i > 0 && msg.parts[0].is_multipart() && !msg.text_body.contains(&(i as u32)) {
            continue;
        }
        match &part.body {
            PartType::Text(t) => {
                text.push_str(t);
                text.push('\n');
            }
            PartType::Html(h) => {
                text.push_str(&strip_tags(h));
                text.push('\n');
            }
            _ => {}
        }
    }
    let mut cut = text.len();
    let lower = text.to_ascii_lowercase();
    let mut offset = 0;
    for line in lower.split_inclusive('\n') {
        let t = line.trim();
        // Only after the notice has said something.
        if offset > 80 && COPY_MARKERS.iter().any(|m| t.contains(m)) {
            cut = offset;
            break;
        }
        offset += line.len();
    }
    text.truncate(cut);
    text
}

fn strip_tags(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&")
}

/// Addresses that stand at the start of a line (after spaces, quotes or '<'), or follow
/// "RCPT TO:", "to <" or "recipient" — where notices name the failed recipients.
fn line_addresses(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let t = skip_codes(line.trim_start_matches([' ', '\t', '"', '\'', '*', '-', '>']));
        let t = t.trim_start_matches(['<', '"', '\'']);
        if let Some(a) = address_at(t) {
            found.push(a);
            continue;
        }
        // "Delivery failed 20 attempts: a@b.dk": an address that ends the line.
        if let Some(last) = line.split_whitespace().last() {
            let last = last.trim_matches(['<', '>', '"', '\'', '.', ',', ';', ':', '(', ')']);
            if let Some(a) = address_at(last).filter(|a| a.len() == last.len()) {
                found.push(a);
                continue;
            }
        }
        let lower = line.to_ascii_lowercase();
        for marker in [
            "rcpt to:",
            "rcpt: ",
            "to <",
            "recipient: ",
            "recipient <",
            "original-recipient: rfc822;",
            "final-recipient: rfc822;",
        ] {
            if let Some(at) = lower.find(marker) {
                let rest = line[at + marker.len()..].trim_start_matches([' ', '<']);
                if let Some(a) = address_at(rest) {
                    found.push(a);
                }
            }
        }
    }
    found
}

/// `s` without the SMTP reply code and status code it starts with ("554 5.3.4 <a@b>" → "<a@b>").
fn skip_codes(s: &str) -> &str {
    let mut rest = s.trim_start();
    for _ in 0..2 {
        let word = rest.split_whitespace().next().unwrap_or("");
        let bare = word.trim_end_matches([':', ',']);
        let is_code = (bare.len() == 3 && bare.bytes().all(|b| b.is_ascii_digit()))
            || dsn::status_code(bare).is_some_and(|c| c.len() == bare.len());
        if !is_code || word.is_empty() {
            break;
        }
        rest = rest[word.len()..].trim_start();
    }
    rest
}

/// An address at the very start of `s`.
fn address_at(s: &str) -> Option<String> {
    let end = s
        .find(|c: char| {
            c.is_whitespace() || matches!(c, '>' | ',' | ';' | '"' | '\'' | ')' | '(' | '<')
        })
        .unwrap_or(s.len());
    let word = s[..end].trim_end_matches([':', '.']);
    let (local, domain) = word.split_once('@')?;
    let ok = !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && domain
            .chars()
            .all(|c| c.is_alphanumeric() || c == '.' || c == '-')
        && !local.contains(['/', ':', '[', ']']);
    ok.then(|| word.to_string())
}

/// Where an address is first named in the text: the full address, or else its local part.
fn locate(text: &str, address: &str) -> usize {
    let lower = text.to_ascii_lowercase();
    let a = address.to_ascii_lowercase();
    lower
        .find(&a)
        .or_else(|| {
            let local = a.split('@').next()?;
            lower.find(local)
        })
        .unwrap_or(0)
}

/// The server's words near an address: the first line that carries a reply or status code, or
/// the first non-empty line after the address.
fn diagnostic(part: &str) -> Option<String> {
    let lines: Vec<&str> = part
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line = lines
        .iter()
        .find(|l| dsn::status_code(l).is_some() || dsn::reply_code(l).is_some())
        .or_else(|| lines.get(1))
        .or_else(|| lines.first())?;
    let mut d: String = line.chars().take(300).collect();
    if d.len() < line.len() {
        d.push('…');
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_parser::MessageParser;

    fn read_raw(raw: &str) -> Option<TextBounce> {
        let msg = MessageParser::default().parse(raw.as_bytes()).unwrap();
        read(&msg)
    }

    #[test]
    fn an_exim_bounce_names_the_failed_recipient_by_its_header() {
        let b = read_raw("From: Mail Delivery System <Mailer-Daemon@mx.x.dk>\nTo: rundbrev@uim.dk\nSubject: Mail delivery failed: returning message to sender\nX-Failed-Recipients: post@laesoe.dk\n\nThis message was created automatically by mail delivery software.\n\nA message that you sent could not be delivered to one or more of its\nrecipients. This is a permanent error. The following address(es) failed:\n\n  post@laesoe.dk\n    host mx.laesoe.dk [192.0.2.1]\n    SMTP error from remote mail server after RCPT TO:<post@laesoe.dk>:\n    550 5.2.2 Mailbox full\n\n------ This is a copy of the message, including all the headers. ------\n\nMessage-ID: <a@uim.dk>\nTo: post@laesoe.dk\n").unwrap();
        assert_eq!(b.kind, Kind::Bounce);
        assert_eq!(b.recipients.len(), 1);
        assert_eq!(b.recipients[0].address, "post@laesoe.dk");
        assert_eq!(b.recipients[0].status.as_deref(), Some("5.2.2"));
    }

    #[test]
    fn a_qmail_bounce_names_each_recipient_with_its_own_code() {
        let b = read_raw("From: MAILER-DAEMON@mail.x.dk\nTo: rundbrev@uim.dk\nSubject: failure notice\n\nHi. This is the qmail-send program at mail.x.dk.\nI'm afraid I wasn't able to deliver your message to the following addresses.\nThis is a permanent error; I've given up. Sorry it didn't work out.\n\n<a@laesoe.dk>:\nRemote host said: 550 5.1.1 User unknown\n\n<b@aeroe.dk>:\nRemote host said: 552 5.2.2 Over quota\n\n--- Below this line is a copy of the message.\n\nTo: c@other.dk\n").unwrap();
        let got: Vec<(&str, &str)> = b
            .recipients
            .iter()
            .map(|r| (r.address.as_str(), r.status.as_deref().unwrap()))
            .collect();
        assert_eq!(got, vec![("a@laesoe.dk", "5.1.1"), ("b@aeroe.dk", "5.2.2")]);
    }

    #[test]
    fn a_delay_warning_is_a_delay_not_a_failure() {
        let b = read_raw("From: MAILER-DAEMON@x.dk\nTo: rundbrev@uim.dk\nSubject: Warning: could not send message for past 4 hours\n\n    **********************************************\n    **      THIS IS A WARNING MESSAGE ONLY      **\n    **  YOU DO NOT NEED TO RESEND YOUR MESSAGE  **\n    **********************************************\n\nThe original message was received at Mon, 29 Jun 2020\n\n----- Transcript -----\n<post@laesoe.dk>... Deferred: Connection timed out\n").unwrap();
        assert_eq!(b.kind, Kind::Delay);
        assert_eq!(b.recipients[0].action, "delayed");
    }

    #[test]
    fn text_whose_lower_case_is_longer_is_read_without_trouble() {
        // 'İ' and 'ẞ' change length when lower-cased; positions must still fall on characters.
        let b = read_raw("From: MAILER-DAEMON@x.dk\nTo: rundbrev@uim.dk\nSubject: Undelivered Mail\n\nİİİİ ẞẞẞ İstanbul could not be delivered İİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİ\nİİİ RCPT TO:<post@laesoe.dk> İİ\n550 5.1.1 İİİ\n---- copy of the message ----\nTo: a@b.dk\n").unwrap();
        assert_eq!(b.recipients[0].address, "post@laesoe.dk");
        assert_eq!(b.recipients[0].status.as_deref(), Some("5.1.1"));
    }

    #[test]
    fn an_ordinary_message_is_not_a_bounce() {
        assert!(read_raw("From: jens@laesoe.dk\nTo: rundbrev@uim.dk\nSubject: Spørgsmål\n\npost@laesoe.dk could not be delivered? No, all fine.\n").is_none());
    }
}
