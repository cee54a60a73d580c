//! The status block of a delivery status notification (RFC 3464, and RFC 6533 for UTF-8), and
//! the small encodings around it: xtext (RFC 3461) for ENVID and ORCPT, and "type; value" fields.
//!
//! Pure functions from text to fields. The MIME around the block is `mail-parser`'s business;
//! this module never decides what a message means for a letter (see `parse` and `matching`).

/// One group of fields: the per-message group, or one recipient's group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Fields(Vec<(String, String)>);

impl Fields {
    /// The first value of a field, by case-insensitive name, trimmed.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn is_recipient(&self) -> bool {
        ["Final-Recipient", "Original-Recipient", "Action"]
            .iter()
            .any(|n| self.get(n).is_some())
    }
}

/// A status block read: the per-message fields and one group per recipient.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct StatusBlock {
    pub message: Fields,
    pub recipients: Vec<Fields>,
}

/// Reads a status block (the body of a `message/delivery-status` part). Lines are unfolded,
/// groups are separated by blank lines; a group naming a recipient or an action is a recipient's,
/// any other group adds to the per-message fields. Lines that are not fields are ignored.
pub(crate) fn read(text: &str) -> StatusBlock {
    let mut block = StatusBlock::default();
    let mut group = Fields::default();
    let finish = |group: &mut Fields, block: &mut StatusBlock| {
        let g = std::mem::take(group);
        if g.is_empty() {
        } else if g.is_recipient() {
            block.recipients.push(g);
        } else {
            block.message.0.extend(g.0);
        }
    };
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            finish(&mut group, &mut block);
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = group.0.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim();
            if !name.is_empty() && !name.contains(' ') {
                group.0.push((name.to_string(), value.trim().to_string()));
            }
        }
    }
    finish(&mut group, &mut block);
    block
}

/// The value of a "type; value" field ("rfc822; a@b.dk", "dns; mx.b.dk", "smtp; 550 …"), or the
/// whole text when it has no type. RFC 6533's utf-8 addresses are unescaped.
pub(crate) fn typed_value(field: &str) -> String {
    let (kind, value) = match field.split_once(';') {
        Some((kind, value)) if !kind.trim().contains(' ') => (kind.trim(), value.trim()),
        _ => ("", field.trim()),
    };
    if kind.eq_ignore_ascii_case("utf-8") {
        unescape_utf8_addr(value)
    } else {
        value.to_string()
    }
}

/// An address from a recipient field, without angle brackets: "rfc822; <A@b.dk>" → "A@b.dk".
pub(crate) fn address(field: &str) -> Option<String> {
    let v = typed_value(field);
    let v = v
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim();
    (v.contains('@') && !v.contains(char::is_whitespace)).then(|| v.to_string())
}

/// The first enhanced status code (RFC 3463) in a text: "5.1.1", "4.4.7". Digits only, class
/// 2, 4 or 5, at most three digits in each of the other parts, not part of a longer number.
pub(crate) fn status_code(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let starts = matches!(b[i], b'2' | b'4' | b'5')
            && (i == 0 || !(b[i - 1].is_ascii_digit() || b[i - 1] == b'.'));
        if starts && b.get(i + 1) == Some(&b'.') {
            let rest = &text[i + 2..];
            let subject: String = rest.chars().take_while(char::is_ascii_digit).collect();
            let after = &rest[subject.len()..];
            if (1..=3).contains(&subject.len()) && after.starts_with('.') {
                let detail: String = after[1..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                if (1..=3).contains(&detail.len()) {
                    // "5.1.1." at the end of a sentence is fine; "5.1.1.2" (an IP) is not.
                    let tail = &after[1 + detail.len()..];
                    let ip_like = tail.starts_with('.')
                        && tail[1..].starts_with(|c: char| c.is_ascii_digit());
                    if !ip_like {
                        return Some(format!("{}.{subject}.{detail}", b[i] as char));
                    }
                }
            }
        }
        i += 1;
    }
    None
}

/// The first SMTP reply code in a text that starts a reply ("550 ", "550-", "452 "), as digits.
pub(crate) fn reply_code(text: &str) -> Option<u16> {
    let b = text.as_bytes();
    for i in 0..b.len().saturating_sub(3) {
        let before_ok = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.');
        let digits = b[i..i + 3].iter().all(u8::is_ascii_digit);
        let after = b[i + 3];
        if before_ok && digits && (after == b' ' || after == b'-') && matches!(b[i], b'4' | b'5') {
            let code: u16 = text[i..i + 3].parse().ok()?;
            if (b[i + 1] as char).is_ascii_digit() && code % 100 < 60 {
                return Some(code);
            }
        }
    }
    None
}

/// Decodes xtext (RFC 3461): "+2B" is '+'. Anything malformed is kept as it stands.
pub(crate) fn xtext_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'+' && i + 2 < b.len() && b[i + 1..i + 3].iter().all(u8::is_ascii_hexdigit) {
            let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Encodes text as xtext (RFC 3461): printable ASCII except '+' and '=' stays, the rest is "+XX".
/// The sending side writes each letter's ENVID with it: its Message-ID without angle brackets.
#[allow(dead_code)]
pub(crate) fn xtext_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if (b'!'..=b'~').contains(&b) && b != b'+' && b != b'=' {
            out.push(b as char);
        } else {
            out.push_str(&format!("+{b:02X}"));
        }
    }
    out
}

/// RFC 6533's utf-8-addr-xtext: "\x{E6}" is 'æ'.
fn unescape_utf8_addr(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find("\\x{") {
        out.push_str(&rest[..at]);
        let after = &rest[at + 3..];
        match after
            .find('}')
            .and_then(|end| Some((end, u32::from_str_radix(&after[..end], 16).ok()?)))
            .and_then(|(end, n)| Some((end, char::from_u32(n)?)))
        {
            Some((end, c)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push_str("\\x{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const POSTFIX: &str = concat!(
        "Reporting-MTA: dns; relay.uim.dk\n",
        "X-Postfix-Queue-ID: 4dLx7Q2kQfz9vB\n",
        "X-Postfix-Sender: rfc822; rundbrev@uim.dk\n",
        "Arrival-Date: Mon, 29 Jun 2020 10:00:01 +0200 (CEST)\n",
        "Original-Envelope-Id: rundbrev.c.1.101.ab@uim.dk\n",
        "\n",
        "Final-Recipient: rfc822; post@laesoe.dk\n",
        "Original-Recipient: rfc822;post@laesoe.dk\n",
        "Action: failed\n",
        "Status: 5.1.1\n",
        "Remote-MTA: dns; mx.laesoe.dk\n",
        "Diagnostic-Code: smtp; 550 5.1.1 <post@laesoe.dk>: Recipient address rejected:\n",
        "    User unknown in virtual mailbox table\n",
        "\n",
        "Final-Recipient: rfc822; kommune@aeroe.dk\n",
        "Action: delayed\n",
        "Status: 4.4.1\n",
        "Diagnostic-Code: X-Postfix; connect to mx.aeroe.dk[192.0.2.1]:25: Connection refused\n",
    );

    #[test]
    fn a_postfix_status_block_gives_each_recipient_with_its_fields() {
        let b = read(POSTFIX);
        assert_eq!(b.message.get("x-postfix-queue-id"), Some("4dLx7Q2kQfz9vB"));
        assert_eq!(b.recipients.len(), 2);
        let r = &b.recipients[0];
        assert_eq!(
            address(r.get("Final-Recipient").unwrap()).as_deref(),
            Some("post@laesoe.dk")
        );
        assert_eq!(r.get("action"), Some("failed"));
        assert_eq!(r.get("status"), Some("5.1.1"));
        assert_eq!(
            typed_value(r.get("Diagnostic-Code").unwrap()),
            "550 5.1.1 <post@laesoe.dk>: Recipient address rejected: User unknown in virtual mailbox table"
        );
        assert_eq!(b.recipients[1].get("Status"), Some("4.4.1"));
    }

    #[test]
    fn crlf_and_a_missing_blank_line_before_the_first_recipient_are_read() {
        let b = read("Reporting-MTA: dns; a\r\nFinal-Recipient: rfc822; x@y.dk\r\nAction: failed\r\nStatus: 5.2.2\r\n");
        // All in one group: it names a recipient, so it is a recipient's group.
        assert_eq!(b.recipients.len(), 1);
        assert_eq!(b.recipients[0].get("Status"), Some("5.2.2"));
    }

    #[test]
    fn utf8_addresses_of_rfc6533_are_unescaped() {
        assert_eq!(
            address("utf-8; kommune@l\\x{E6}s\\x{F8}.dk").as_deref(),
            Some("kommune@læsø.dk")
        );
        assert_eq!(address("rfc822; <A@b.dk>").as_deref(), Some("A@b.dk"));
        assert_eq!(address("rfc822; not an address"), None);
    }

    #[test]
    fn status_codes_are_found_in_text_but_not_in_ip_addresses() {
        assert_eq!(
            status_code("550 5.1.1 No such user").as_deref(),
            Some("5.1.1")
        );
        assert_eq!(status_code("#5.1.10 RESOLVER").as_deref(), Some("5.1.10"));
        assert_eq!(status_code("host 192.0.2.1 said no"), None);
        assert_eq!(status_code("at 5.2.2.3 said"), None);
        assert_eq!(status_code("(4.4.7)").as_deref(), Some("4.4.7"));
        assert_eq!(status_code("version 1.2.3"), None);
    }

    #[test]
    fn reply_codes_are_found_where_a_reply_starts() {
        assert_eq!(reply_code("said: 550 5.1.1 no"), Some(550));
        assert_eq!(reply_code("said: 452-4.2.2 full"), Some(452));
        assert_eq!(reply_code("port 2550 open"), None);
        assert_eq!(reply_code("id 12345 ok"), None);
    }

    #[test]
    fn xtext_round_trips_and_keeps_what_is_not_encoded() {
        let id = "rundbrev.c.1.101.ab+x=y@uim.dk";
        let enc = xtext_encode(id);
        assert_eq!(enc, "rundbrev.c.1.101.ab+2Bx+3Dy@uim.dk");
        assert_eq!(xtext_decode(&enc), id);
        assert_eq!(xtext_decode("a+zzb+"), "a+zzb+");
    }
}
