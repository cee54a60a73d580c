//! Receipts: what comes back after the letters went out — bounces, delays, delivery reports,
//! read receipts, automatic and genuine replies — read and recorded against the letters.
//!
//! `source` reads messages from files, folders, mbox files and Maildir folders; `parse` (with
//! `dsn` and `text`) says what a message means; `matching` finds its letter. (`record::fact`
//! turns stored receipts into what a clerk sees.) `record_message` is the one way a message
//! enters the ledger, for `receipts import` and for `receipts fetch`. Nothing here prints, reads the network
//! or guesses: a message that cannot be matched changes nothing, and only a failure report after
//! the relay's 250 makes a letter bounced, which `resend --failed` sends again only once its
//! address is corrected.

use std::fmt;
use std::path::PathBuf;

use anyhow::Result;
use sha2::{Digest as _, Sha256};

use crate::clock;
use crate::config::Config;
use crate::letter::stamp;
use crate::record::ledger::{Added, Ledger, NewReceipt, State};

pub(crate) mod dsn;
pub(crate) mod fetch;
mod kind;
pub(crate) mod matching;
pub(crate) mod parse;
pub(crate) mod source;
pub(crate) mod text;

pub(crate) use parse::{Kind, Reported};

use matching::{By, Letters, Match, Sent};

/// Where a message was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A file with one message (.eml, or a file in a Maildir folder).
    File { path: PathBuf },
    /// The n-th message (from 1) of an mbox file.
    Mbox { path: PathBuf, number: usize },
    /// A message in an IMAP folder (made by `receipts fetch`).
    #[allow(dead_code)]
    Imap {
        folder: String,
        uid_validity: u32,
        uid: u32,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path } => write!(f, "{}", path.display()),
            Origin::Mbox { path, number } => write!(f, "{} (message {number})", path.display()),
            Origin::Imap {
                folder,
                uid_validity,
                uid,
            } => write!(f, "IMAP {folder} (UIDVALIDITY {uid_validity}, UID {uid})"),
        }
    }
}

/// What recording one message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recorded {
    pub kind: Kind,
    /// Set when the whole message was left aside (too large, unreadable, not a report): why.
    pub skipped: Option<String>,
    /// One entry per recipient the message reports on.
    pub entries: Vec<Entry>,
}

/// What happened for one reported recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The address the message reports on.
    pub address: String,
    /// The enhanced status code reported for it, if any ("5.1.1").
    pub status: Option<String>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Stored, and the letter's state changed.
    Changed {
        key: String,
        from: State,
        to: State,
        by: By,
    },
    /// Stored; the letter's state is as it was.
    Stored { key: String, state: State, by: By },
    /// The same message was recorded before.
    AlreadyStored { key: String },
    /// Not matched to a letter: why. Nothing stored, nothing changed.
    Unmatched(String),
}

/// The digest that identifies a message however it was stored: line endings and the mbox
/// "From " line do not count, so the same message from a file, an mbox, a Maildir or IMAP is
/// one message.
pub(crate) fn digest(raw: &[u8]) -> String {
    let mut body = raw;
    if body.starts_with(b"From ") {
        if let Some(nl) = body.iter().position(|&b| b == b'\n') {
            body = &body[nl + 1..];
        }
    }
    let mut lines: Vec<&[u8]> = body
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .collect();
    // Trailing blank lines differ between stores (an mbox keeps one before the next message).
    while lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    let mut h = Sha256::new();
    for line in lines {
        h.update(line);
        h.update(b"\n");
    }
    crate::digest::hex(&h.finalize())
}

/// Why a message larger than the limit is skipped, or None when it fits.
pub(crate) fn too_large(size: usize, max: u64) -> Option<String> {
    (size as u64 > max).then(|| {
        format!(
            "it is {}, more than the {} allowed ([receipts] max_message_size); skipped",
            megabytes(size as u64),
            megabytes(max)
        )
    })
}

/// "12.0 MB", or "4.9 KB" below a megabyte.
fn megabytes(bytes: u64) -> String {
    let kb = bytes as f64 / 1024.0;
    if kb < 1024.0 {
        format!("{kb:.1} KB")
    } else {
        format!("{:.1} MB", kb / 1024.0)
    }
}

/// Reads one message and records what it says about this campaign's letters: each receipt once,
/// with the change of state it makes (see `settle`). Prints nothing; the caller says what
/// happened. An error means the ledger could not be read or written.
pub(crate) fn record_message(
    ledger: &mut Ledger,
    config: &Config,
    origin: &Origin,
    raw: &[u8],
) -> Result<Recorded> {
    if let Some(why) = too_large(raw.len(), config.receipts.max_message_size) {
        return Ok(skipped(Kind::Unknown, why));
    }
    let u = parse::understand(raw);
    if let Some(why) = &u.unreadable {
        return Ok(skipped(
            Kind::Unknown,
            format!("cannot be read: {why}; nothing changed"),
        ));
    }
    match u.kind() {
        Kind::Unknown => {
            return Ok(skipped(
                Kind::Unknown,
                "not a bounce, delivery report, receipt or reply that rundbrev recognises; nothing changed".into(),
            ))
        }
        Kind::Feedback => {
            return Ok(skipped(
                Kind::Feedback,
                "an abuse or feedback report (ARF), not about delivery; nothing changed".into(),
            ))
        }
        _ => {}
    }
    if u.recipients.is_empty() {
        return Ok(skipped(
            u.kind(),
            "names no recipient that rundbrev could read; nothing changed".into(),
        ));
    }
    let records = ledger.records()?;
    let sent: Vec<Sent> = records
        .iter()
        .map(|r| Sent {
            key: r.key.clone(),
            address: r.address.clone(),
            message_id: r.message_id.clone(),
            // The relay's reply to the hand-over that delivered it ("queued as …").
            queue_ids: r
                .last_reply
                .as_deref()
                .and_then(matching::queue_id)
                .into_iter()
                .collect(),
        })
        .collect();
    let campaign = stamp::safe_token(&config.campaign.id);
    let letters = Letters::new(&campaign, &sent);
    let digest = digest(raw);
    let origin_text = origin.to_string();
    let now = clock::stamp_time(clock::now());
    let reported_at = u.date.as_deref().map(local_time);
    let mut entries = Vec::new();
    for r in &u.recipients {
        let outcome = match letters.find(&u, r) {
            Match::None(why) => Outcome::Unmatched(why),
            Match::Letter { index, by } => {
                let letter = letters.get(index);
                let state = records[index].state;
                // Matched by the address alone, a report changes nothing unless it is dated
                // after the letter went out: an old bounce must not undo a delivery.
                let settle = settle(state, u.kind(), r).filter(|_| {
                    by != By::Address || after_hand_over(reported_at.as_deref(), &records[index])
                });
                let added = ledger.add_receipt(
                    &NewReceipt {
                        digest: &digest,
                        key: &letter.key,
                        recipient: &r.address,
                        origin: &origin_text,
                        kind: u.kind().as_str(),
                        action: &r.action,
                        status: r.status.as_deref(),
                        diagnostic: r.diagnostic.as_deref(),
                        reporter: u.reporter.as_deref(),
                        reported_at: reported_at.as_deref(),
                        matched_by: by.as_str(),
                        settle,
                    },
                    &now,
                )?;
                match (added, settle) {
                    (Added::AlreadyStored, _) => Outcome::AlreadyStored {
                        key: letter.key.clone(),
                    },
                    (Added::Changed, Some((from, to))) => Outcome::Changed {
                        key: letter.key.clone(),
                        from,
                        to,
                        by,
                    },
                    _ => Outcome::Stored {
                        key: letter.key.clone(),
                        state,
                        by,
                    },
                }
            }
        };
        entries.push(Entry {
            address: r.address.clone(),
            status: r.status.clone(),
            outcome,
        });
    }
    Ok(Recorded {
        kind: u.kind(),
        skipped: None,
        entries,
    })
}

fn skipped(kind: Kind, why: String) -> Recorded {
    Recorded {
        kind,
        skipped: Some(why),
        entries: Vec::new(),
    }
}

/// The change of state a receipt makes. A failure after the relay's 250 (or after a hand-over
/// that may have arrived) makes the letter bounced; any other report about a letter left unknown
/// shows that it arrived, and settles it as delivered. Nothing else changes a state: a letter
/// that failed or is being sent stays as it is, and a delay or reply never undoes a bounce.
pub(crate) fn settle(state: State, kind: Kind, r: &Reported) -> Option<(State, State)> {
    match state {
        State::Delivered | State::Unknown if r.is_failure() => Some((state, State::Bounced)),
        State::Unknown if !matches!(kind, Kind::Unknown | Kind::Feedback) => {
            Some((state, State::Delivered))
        }
        _ => None,
    }
}

/// Whether a report dated `reported_at` came after the letter's last hand-over (its delivery
/// time, or its last change when it was never delivered); an undated report never does.
fn after_hand_over(reported_at: Option<&str>, record: &crate::record::ledger::Record) -> bool {
    let parse = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
    let sent = record.delivered_at.as_deref().unwrap_or(&record.updated_at);
    match (reported_at.and_then(parse), parse(sent)) {
        (Some(reported), Some(sent)) => reported >= sent,
        _ => false,
    }
}

/// An RFC 3339 time as the ledger writes times (Danish local time).
fn local_time(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| clock::stamp_time(t.with_timezone(&chrono::Utc)))
        .unwrap_or_else(|_| rfc3339.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reported(action: &str) -> Reported {
        Reported {
            address: "post@laesoe.dk".into(),
            action: action.into(),
            ..Reported::default()
        }
    }

    #[test]
    fn a_failure_after_250_bounces_and_other_reports_settle_an_unknown_letter() {
        let failed = reported("failed");
        assert_eq!(
            settle(State::Delivered, Kind::Bounce, &failed),
            Some((State::Delivered, State::Bounced))
        );
        assert_eq!(
            settle(State::Unknown, Kind::Bounce, &failed),
            Some((State::Unknown, State::Bounced))
        );
        assert_eq!(
            settle(State::Unknown, Kind::Delivered, &reported("delivered")),
            Some((State::Unknown, State::Delivered))
        );
        assert_eq!(
            settle(State::Unknown, Kind::AutoReply, &reported("auto-replied")),
            Some((State::Unknown, State::Delivered))
        );
    }

    #[test]
    fn nothing_else_changes_a_state() {
        // An automatic reply is never a failure, so it never bounces a delivered letter.
        assert_eq!(
            settle(State::Delivered, Kind::AutoReply, &reported("auto-replied")),
            None
        );
        assert_eq!(
            settle(State::Delivered, Kind::Delay, &reported("delayed")),
            None
        );
        // A letter being sent, one that failed, or one already bounced is left alone.
        for state in [
            State::Sending,
            State::FailedPermanent,
            State::FailedTemporary,
            State::Bounced,
            State::Pending,
        ] {
            assert_eq!(settle(state, Kind::Bounce, &reported("failed")), None);
            assert_eq!(settle(state, Kind::Delivered, &reported("delivered")), None);
        }
    }

    #[test]
    fn the_same_message_has_one_digest_however_it_was_stored() {
        let lf = b"From: a@b.dk\nSubject: x\n\nbody\n";
        let crlf = b"From: a@b.dk\r\nSubject: x\r\n\r\nbody\r\n";
        let mbox =
            b"From MAILER-DAEMON Mon Jun 29 10:00:00 2020\nFrom: a@b.dk\nSubject: x\n\nbody\n\n";
        assert_eq!(digest(lf), digest(crlf));
        assert_eq!(digest(lf), digest(mbox));
        assert_ne!(digest(lf), digest(b"From: a@b.dk\nSubject: y\n\nbody\n"));
    }

    #[test]
    fn a_message_over_the_limit_is_skipped_with_its_size() {
        assert_eq!(too_large(10, 10), None);
        let why = too_large(11 * 1024 * 1024, 10 * 1024 * 1024).unwrap();
        assert!(why.contains("11.0 MB") && why.contains("10.0 MB"), "{why}");
    }
}
