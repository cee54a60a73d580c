//! The strongest fact about one letter from its stored receipts, in a clerk's words:
//! bounced, replied, read, confirmed, automatic reply, relayed, delayed.
//!
//! Pure: the ledger's state, the address the letter went to and its receipts in, one `Fact` out.
//! It never changes the ledger, and it never shows a bounced letter as delivered: a bounced letter's
//! fact is always the failure.

use crate::record::ledger::{Receipt, State};

/// What the receipts say about a letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fact {
    /// One word: "bounced", "replied", "read", "confirmed", "auto-reply", "relayed", "delayed".
    pub word: &'static str,
    /// A sentence for the clerk.
    pub words: String,
    /// When it was reported (the message's date), or recorded.
    pub at: String,
    /// Who it came from: the address reported on, or the sender of a reply.
    pub from: String,
    /// The status code reported, if any ("5.1.1").
    pub status: Option<String>,
}

/// The strongest fact among the receipts of one letter. Reports about another address than the
/// letter went to last (an address since corrected) do not count; replies and receipts from the
/// municipality's side count from any address.
pub(crate) fn strongest(state: State, address: &str, receipts: &[&Receipt]) -> Option<Fact> {
    let relevant: Vec<&Receipt> = receipts
        .iter()
        .copied()
        .filter(|r| {
            matches!(r.kind.as_str(), "reply" | "auto-reply" | "read")
                || r.recipient.eq_ignore_ascii_case(address)
        })
        .collect();
    if state == State::Bounced {
        let r = relevant.iter().rev().find(|r| r.action == "failed")?;
        return Some(Fact {
            word: "bounced",
            words: bounce_words(r.status.as_deref()),
            at: when(r),
            from: r.recipient.clone(),
            status: r.status.clone(),
        });
    }
    let best = relevant
        .iter()
        .filter(|r| rank(r) > 0)
        // The strongest; among equals, the latest.
        .max_by_key(|r| rank(r))?;
    let at = when(best);
    let from = best.recipient.as_str();
    let (word, words) = match rank(best) {
        6 => ("replied", format!("replied by {from} at {}", short(&at))),
        5 => (
            "read",
            format!("opened, by a read receipt from {from} at {}", short(&at)),
        ),
        4 => (
            "confirmed",
            format!(
                "delivered to the municipality's mail server at {}, by its own report",
                short(&at)
            ),
        ),
        3 => (
            "auto-reply",
            format!(
                "an automatic reply (such as out of office) came from {from} at {}, so the letter arrived",
                short(&at)
            ),
        ),
        2 => (
            "relayed",
            format!(
                "passed on at {} to a mail system that sends no delivery reports",
                short(&at)
            ),
        ),
        _ => (
            "delayed",
            format!(
                "delayed: not delivered yet at {}, the mail server keeps trying{}",
                short(&at),
                best.status
                    .as_deref()
                    .map(|s| format!(" ({s})"))
                    .unwrap_or_default()
            ),
        ),
    };
    Some(Fact {
        word,
        words,
        at,
        from: from.to_string(),
        status: best.status.clone(),
    })
}

/// How strong a receipt is as proof of arrival; 0 for failures (handled as bounces).
fn rank(r: &Receipt) -> u8 {
    match (r.kind.as_str(), r.action.as_str()) {
        ("reply", _) => 6,
        ("read", _) => 5,
        (_, "delivered") => 4,
        ("auto-reply", _) => 3,
        (_, "relayed" | "expanded") => 2,
        (_, "delayed") => 1,
        _ => 0,
    }
}

fn when(r: &Receipt) -> String {
    r.reported_at
        .clone()
        .unwrap_or_else(|| r.recorded_at.clone())
}

/// "2020-06-29 10:03:00+02:00" → "10:03 on 2020-06-29".
pub(crate) fn short(at: &str) -> String {
    match (at.get(..10), at.get(11..16)) {
        (Some(date), Some(time)) if at.len() >= 16 => format!("{time} on {date}"),
        _ => at.to_string(),
    }
}

/// Why a letter bounced, in plain words with its status code.
pub(crate) fn bounce_words(status: Option<&str>) -> String {
    let mut parts = status.unwrap_or_default().split('.');
    let class = parts.next().unwrap_or_default();
    let subject = parts.next().unwrap_or_default();
    let detail = parts.next().unwrap_or_default();
    let says = "the municipality's mail server says";
    let why = match (class, subject, detail) {
        (_, "1", "1") | (_, "1", "10") => format!("{says} the mailbox does not exist"),
        (_, "1", "2") => "the address's domain does not exist".to_string(),
        (_, "1", _) => format!("{says} the address is not valid"),
        (_, "2", "2") => format!("{says} the mailbox is full"),
        (_, "2", "1") => format!("{says} the mailbox is closed or disabled"),
        (_, "2", "3") | (_, "3", "4") => format!("{says} the letter is too large"),
        (_, "2", _) => format!("{says} the mailbox cannot take the letter"),
        (_, "4", _) | ("4", _, _) => {
            "the municipality's mail server could not be reached, and the relay gave up".to_string()
        }
        (_, "7", _) => format!("{says} its rules refuse the letter"),
        _ => format!("{says} it cannot deliver the letter"),
    };
    match status {
        Some(s) if !s.is_empty() => format!("{why} ({s})"),
        _ => why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(
        kind: &str,
        action: &str,
        recipient: &str,
        status: Option<&str>,
        at: &str,
    ) -> Receipt {
        Receipt {
            key: "825".into(),
            recipient: recipient.into(),
            origin: "f.eml".into(),
            kind: kind.into(),
            action: action.into(),
            status: status.map(str::to_string),
            diagnostic: None,
            reporter: None,
            reported_at: Some(at.into()),
            matched_by: "envid".into(),
            recorded_at: "2020-06-30 08:00:00+02:00".into(),
        }
    }

    #[test]
    fn a_bounced_letter_shows_the_failure_in_plain_words() {
        let r = receipt(
            "bounce",
            "failed",
            "post@laesoe.dk",
            Some("5.1.1"),
            "2020-06-29 10:03:00+02:00",
        );
        let f = strongest(State::Bounced, "post@laesoe.dk", &[&r]).unwrap();
        assert_eq!(f.word, "bounced");
        assert_eq!(
            f.words,
            "the municipality's mail server says the mailbox does not exist (5.1.1)"
        );
    }

    #[test]
    fn a_delivery_report_confirms_and_a_reply_is_stronger() {
        let d = receipt(
            "delivered",
            "delivered",
            "post@laesoe.dk",
            Some("2.0.0"),
            "2020-06-29 10:03:00+02:00",
        );
        let f = strongest(State::Delivered, "post@laesoe.dk", &[&d]).unwrap();
        assert_eq!(f.word, "confirmed");
        assert_eq!(
            f.words,
            "delivered to the municipality's mail server at 10:03 on 2020-06-29, by its own report"
        );
        let reply = receipt(
            "reply",
            "replied",
            "jens@laesoe.dk",
            None,
            "2020-06-30 09:00:00+02:00",
        );
        let f = strongest(State::Delivered, "post@laesoe.dk", &[&d, &reply]).unwrap();
        assert_eq!(f.word, "replied");
        assert!(f.words.contains("jens@laesoe.dk"), "{}", f.words);
    }

    #[test]
    fn a_delay_is_shown_as_a_delay_and_reports_on_an_old_address_do_not_count() {
        let delay = receipt(
            "delay",
            "delayed",
            "post@laesoe.dk",
            Some("4.4.1"),
            "2020-06-29 10:04:00+02:00",
        );
        assert_eq!(
            strongest(State::Delivered, "post@laesoe.dk", &[&delay])
                .unwrap()
                .word,
            "delayed"
        );
        let old = receipt(
            "bounce",
            "failed",
            "old@laesoe.dk",
            Some("5.1.1"),
            "2020-06-29 10:04:00+02:00",
        );
        assert_eq!(strongest(State::Delivered, "new@laesoe.dk", &[&old]), None);
    }
}
