//! Plain words for a disk that cannot be written: why (full, read-only, failing) and what a clerk
//! can do about it, for the ledger, the preview folder and the report folder.
//!
//! Only wording: the causes are told apart in `record::storage`, and this module neither prints
//! nor touches a file.

use crate::cli::workspace::shown;
use crate::config::Config;
use crate::record::storage::{Cause, LedgerWriteError};

/// Why, in a clerk's words: "the disk that holds it is full".
pub(super) fn why(cause: Cause) -> &'static str {
    match cause {
        Cause::Full => "the disk that holds it is full",
        Cause::ReadOnly => "it may not be written (the file, its folder or its disk is read-only)",
        Cause::Io => {
            "the disk that holds it reported an input/output error (it may be failing or disconnected)"
        }
    }
}

/// What to do about `cause` for the file or folder named `what` ("the ledger"), with another way
/// out when the disk is full (`elsewhere`), ending with `then`: "run the same command again".
pub(super) fn fix(cause: Cause, what: &str, elsewhere: &str, then: &str) -> String {
    match cause {
        Cause::Full => format!(
            "make room on the disk that holds {what} (or {elsewhere}), then {then}"
        ),
        Cause::ReadOnly => format!(
            "make {what} and its folder writable for you (or point the config to a folder you can write), then {then}"
        ),
        Cause::Io => format!(
            "have the disk that holds {what} checked; when it works again, {then}"
        ),
    }
}

/// The way out for a ledger on a full disk.
const MOVE: &str = "copy the campaign folder to a disk with more space and work from there";

/// The whole message for a ledger that could not be written before any letter of this run was
/// handed over.
pub(super) fn ledger_before_sending(config: &Config, e: &LedgerWriteError) -> String {
    format!(
        "cannot write to the ledger {}: {}. No letter was sent in this run; nothing is lost.\nWhat to do: {}.",
        shown(config, &e.path),
        why(e.cause),
        fix(e.cause, "the ledger", MOVE, "run the same command again")
    )
}

/// The lines that say how a run the ledger stopped left things: what is recorded, what could not
/// be, what stays pending, and what to do.
pub(super) fn ledger_stopped(
    config: &Config,
    e: &LedgerWriteError,
    delivered: usize,
    unrecorded: usize,
    left: usize,
    outbox: bool,
) -> Vec<String> {
    let letters = |n: usize| format!("{n} letter{}", if n == 1 { "" } else { "s" });
    let mut lines = vec![format!(
        "The run stopped: cannot write to the ledger {}: {}.",
        shown(config, &e.path),
        why(e.cause)
    )];
    if delivered > 0 {
        lines.push(format!(
            "  {} delivered in this run {} recorded in the ledger.",
            letters(delivered),
            if delivered == 1 { "is" } else { "are" }
        ));
    }
    if unrecorded > 0 {
        let next = if outbox {
            "The next run looks for it in the outbox: there, exactly as archived, it is recorded as delivered; not there, it is sent then."
        } else {
            "The next run shows it as unknown (it may have arrived) and does not send it again unless you run `rundbrev resend --failed --include-unknown`."
        };
        lines.push(format!(
            "  {} {} being handed over when the ledger stopped taking changes; what happened to {} is not recorded. {next}",
            letters(unrecorded),
            if unrecorded == 1 { "was" } else { "were" },
            if unrecorded == 1 { "it" } else { "them" },
        ));
    }
    lines.push(format!(
        "  {} {} not sent and stay pending.",
        letters(left),
        if left == 1 { "was" } else { "were" }
    ));
    lines.push(format!(
        "What to do: {}. No letter is sent twice.",
        fix(e.cause, "the ledger", MOVE, "run the same command again")
    ));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_cause_has_its_own_words_and_advice() {
        let causes = [Cause::Full, Cause::ReadOnly, Cause::Io];
        for (i, a) in causes.iter().enumerate() {
            for b in &causes[i + 1..] {
                assert_ne!(why(*a), why(*b));
                assert_ne!(fix(*a, "x", "e", "y"), fix(*b, "x", "e", "y"));
            }
        }
        assert!(fix(Cause::Full, "the ledger", MOVE, "run again").contains("make room"));
    }
}
