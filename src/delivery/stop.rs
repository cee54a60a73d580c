//! Why a run stops before every letter is handed over, as a value the command can ask questions of.
//!
//! A transport returns a `Stop` instead of an outcome when the letter in hand was not handed over
//! and no later letter could be either (TLS or login refused, the connection broken again and
//! again, the outbox or the archive unwritable); the send loop adds its own reasons (Ctrl-C, a
//! letter that cannot be built, a ledger that cannot be written, a fault in rundbrev itself). The
//! `Display` is the reason in a clerk's words, as the summary shows it after "The run stopped: ". A new reason is one more variant and one more arm below.
//! This module decides and prints nothing.

use std::fmt;
use std::path::PathBuf;

use crate::letter::compose::ComposeError;
use crate::record::storage::LedgerWriteError;
use crate::smtp::Failure;

/// Why a run stopped early; the letter in hand when it stopped was not handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Ctrl-C: the letters in flight finished, no new one started.
    Interrupted,
    /// The connection to the mail server broke or could not be opened this many times in a row.
    ConnectionFailures { times: u32, last: String },
    /// The mail server refused TLS or the login: every letter would meet the same refusal.
    ServerRefused(Failure),
    /// The mail server refused the sender (MAIL FROM), which concerns every letter.
    SenderRefused { sender: String, failure: Failure },
    /// A letter could not be written to the outbox folder.
    OutboxUnwritable { path: PathBuf, error: String },
    /// A letter could not be kept in the archive, so it was not sent.
    ArchiveUnwritable { path: PathBuf, error: String },
    /// A letter could not be built (the recipients file changed since the check).
    Unbuildable { key: String, error: ComposeError },
    /// The ledger could not be written (a full disk): nothing more was handed over, and a letter
    /// whose outcome could not be recorded stays `sending`.
    LedgerUnwritable(LedgerWriteError),
    /// rundbrev itself failed (a fault in its code) while handing a letter over.
    Internal { what: String },
}

impl Stop {
    /// True when the person sending stopped the run (Ctrl-C): there is nothing to fix.
    pub(crate) fn is_interrupted(&self) -> bool {
        matches!(self, Stop::Interrupted)
    }
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stop::Interrupted => f.write_str("stopped by Ctrl-C"),
            Stop::ConnectionFailures { times, last } => write!(
                f,
                "the connection to the mail server failed {times} times in a row (last: {last})"
            ),
            Stop::ServerRefused(failure) => write!(f, "{failure}"),
            Stop::SenderRefused { sender, failure } => write!(
                f,
                "the server refused the sender {sender} ({failure}); check sender.from and the login"
            ),
            Stop::OutboxUnwritable { path, error } => {
                write!(f, "cannot write {} to the outbox: {error}", path.display())
            }
            Stop::ArchiveUnwritable { path, error } => write!(
                f,
                "cannot keep the letter in the archive {}: {error}; it was not sent",
                path.display()
            ),
            Stop::Unbuildable { key, error } => {
                write!(f, "cannot build the letter for {key}: {error}")
            }
            Stop::LedgerUnwritable(e) => e.fmt(f),
            Stop::Internal { what } => write!(
                f,
                "rundbrev failed unexpectedly while handing a letter over ({what}); this is a fault in rundbrev, please report it"
            ),
        }
    }
}

impl std::error::Error for Stop {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_ctrl_c_is_a_stop_with_nothing_to_fix() {
        let failures = Stop::ConnectionFailures {
            times: 3,
            last: "cannot connect to the mail server: refused".into(),
        };
        assert!(Stop::Interrupted.is_interrupted());
        assert!(!failures.is_interrupted());
        assert_eq!(Stop::Interrupted.to_string(), "stopped by Ctrl-C");
        assert_eq!(
            failures.to_string(),
            "the connection to the mail server failed 3 times in a row (last: cannot connect to the mail server: refused)"
        );
    }
}
