//! Server replies in a clerk's words: "the server said the mailbox does not exist".
//!
//! Pure functions from the ledger's state and the last reply (its code, its enhanced status code
//! such as 5.1.1, and its words) to a short plain sentence, and the most common of them for a run
//! summary. The server's own words are kept beside the explanation, made safe for a terminal.
//! This module guesses nothing about delivery: the state in the ledger stays the authority.

use std::collections::HashMap;

use crate::record::ledger::State;
use crate::sanitize::printable;

/// What went wrong with one letter, in plain words.
pub(crate) fn reason(state: State, reply: &str) -> &'static str {
    let lower = reply.to_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| lower.contains(w));
    let enhanced = enhanced_code(reply);
    let detail = enhanced.map(|(_, subject, detail)| (subject, detail));
    if state == State::Bounced {
        return "the relay accepted the letter, but the municipality's mail server reported it back as not delivered";
    }
    if state == State::Sending {
        return "it was being handed over when the run stopped, and its outcome is not recorded, so it may have arrived";
    }
    if state == State::Unknown {
        return "the connection broke after the letter was sent, so it may have arrived";
    }
    if detail == Some((1, 1))
        || has(&[
            "no such user",
            "user unknown",
            "unknown user",
            "does not exist",
            "mailbox unavailable",
            "no mailbox",
            "recipient not found",
        ])
    {
        return "the server said the mailbox does not exist";
    }
    if detail == Some((1, 2)) || has(&["domain not found", "host not found", "no such domain"]) {
        return "the server said the address's domain does not exist";
    }
    if detail == Some((2, 2)) || has(&["mailbox full", "quota", "over quota"]) {
        return "the server said the mailbox is full";
    }
    if detail == Some((3, 4)) || matches!(detail, Some((2, 3))) || has(&["too large", "too big"]) {
        return "the server said the letter is too large";
    }
    if matches!(detail, Some((7, _))) || has(&["relay", "denied", "spam", "policy", "blocked"]) {
        return "the server refused the letter by its rules (for example relaying not allowed, or taken for spam)";
    }
    if has(&["timed out", "timeout"]) {
        return "the server did not answer in time";
    }
    let code = reply_code(reply);
    if code.is_some_and(|c| (400..500).contains(&c)) || state == State::FailedTemporary {
        if has(&["connection", "closed", "reset", "broken pipe", "refused"]) && code.is_none() {
            return "the connection to the server broke before the letter was handed over";
        }
        return "the server was busy or asked to try again later";
    }
    if code.is_some_and(|c| (500..600).contains(&c)) || state == State::FailedPermanent {
        return "the server refused the letter for good";
    }
    "the letter could not be handed over"
}

/// The three-digit reply code at the start of a reply, if there is one.
pub(crate) fn reply_code(reply: &str) -> Option<u16> {
    let code = reply.trim_start().get(..3)?;
    code.bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| code.parse().ok())
        .flatten()
}

/// The enhanced status code (RFC 3463) after the reply code: "550 5.1.1 …" → (5, 1, 1).
pub(crate) fn enhanced_code(reply: &str) -> Option<(u8, u16, u16)> {
    let word = reply.split_whitespace().nth(1)?;
    let mut parts = word.split('.');
    let class = parts.next()?.parse().ok()?;
    let subject = parts.next()?.parse().ok()?;
    let detail = parts.next()?.parse().ok()?;
    (matches!(class, 2 | 4 | 5) && parts.next().is_none()).then_some((class, subject, detail))
}

/// The most common reason among failures (state and last reply each), with how many letters had
/// it and one server reply as an example. `None` when there are no failures.
pub(crate) fn most_common(failures: &[(State, String)]) -> Option<(&'static str, usize, String)> {
    let mut by_reason: HashMap<&'static str, (usize, usize, &str)> = HashMap::new();
    for (i, (state, reply)) in failures.iter().enumerate() {
        let entry = by_reason
            .entry(reason(*state, reply))
            .or_insert((0, i, reply.as_str()));
        entry.0 += 1;
    }
    by_reason
        .into_iter()
        // The most letters first; among equals, the one seen first.
        .max_by_key(|(_, (n, first, _))| (*n, std::cmp::Reverse(*first)))
        .map(|(why, (n, _, reply))| (why, n, printable(reply)))
}

/// "the server said the mailbox does not exist (server: "550 5.1.1 No such user")", or, when the
/// reasons differ, "mostly (2 of 3): …".
pub(crate) fn summarise(failures: &[(State, String)]) -> Option<String> {
    let (why, n, reply) = most_common(failures)?;
    let example = if reply.is_empty() {
        String::new()
    } else {
        format!(" (the server's reply: \"{reply}\")")
    };
    Some(if n == failures.len() {
        format!("{why}{example}")
    } else {
        format!("mostly ({n} of {}): {why}{example}", failures.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_mailbox_is_said_in_plain_words() {
        assert_eq!(
            reason(State::FailedPermanent, "550 5.1.1 No such user"),
            "the server said the mailbox does not exist"
        );
        assert_eq!(
            reason(
                State::FailedPermanent,
                "550 5.1.1 <x@y.dk>: Recipient rejected"
            ),
            "the server said the mailbox does not exist"
        );
        assert_eq!(
            reason(State::FailedPermanent, "552 5.2.2 Over quota"),
            "the server said the mailbox is full"
        );
        assert_eq!(
            reason(State::FailedTemporary, "450 4.3.0 Error: command failed"),
            "the server was busy or asked to try again later"
        );
        assert_eq!(
            reason(State::FailedPermanent, "554 5.7.1 Relay access denied"),
            "the server refused the letter by its rules (for example relaying not allowed, or taken for spam)"
        );
        assert_eq!(
            reason(State::FailedPermanent, "550 5.3.0 Error: command failed"),
            "the server refused the letter for good"
        );
    }

    #[test]
    fn the_most_common_reason_is_named_with_its_share() {
        let f = vec![
            (State::FailedTemporary, "451 4.3.0 try later".to_string()),
            (State::FailedPermanent, "550 5.1.1 No such user".to_string()),
            (State::FailedPermanent, "550 5.1.1 unknown user".to_string()),
        ];
        assert_eq!(
            summarise(&f).unwrap(),
            "mostly (2 of 3): the server said the mailbox does not exist (the server's reply: \"550 5.1.1 No such user\")"
        );
        assert_eq!(
            summarise(&f[1..]).unwrap(),
            "the server said the mailbox does not exist (the server's reply: \"550 5.1.1 No such user\")"
        );
        assert_eq!(summarise(&[]), None);
    }

    #[test]
    fn codes_are_read_from_the_reply() {
        assert_eq!(reply_code("421 4.4.2 bye"), Some(421));
        assert_eq!(reply_code("timed out"), None);
        assert_eq!(enhanced_code("550 5.1.1 No"), Some((5, 1, 1)));
        assert_eq!(enhanced_code("550 No such"), None);
    }
}
