//! How a command ends, as the process exit code, and how a run's summary decides it.
//!
//! The codes are part of the interface for scripts (the README lists them). A table-driven test
//! pins each case. This module decides only; it prints nothing.

use crate::delivery::Summary;

/// How a command ended, as the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Exit {
    /// Everything delivered, or nothing to do.
    Done = 0,
    /// Some recipients were not delivered.
    SomeFailed = 1,
    /// Usage, input or systemic errors.
    Error = 2,
}

impl Exit {
    /// The exit code of a send or resend run: a stopped run is an error, a run with any letter
    /// not delivered (failed or unknown) is a partial failure, otherwise done.
    pub(super) fn of(summary: &Summary) -> Exit {
        if summary.stopped.is_some() {
            Exit::Error
        } else if summary.failed() > 0 {
            Exit::SomeFailed
        } else {
            Exit::Done
        }
    }
}

/// Whether an error only means that the reader of standard output went away (`| head`), which
/// is not a failure.
pub(super) fn is_broken_pipe(e: &anyhow::Error) -> bool {
    use std::io::ErrorKind::BrokenPipe;
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind)
                == Some(BrokenPipe)
            || c.downcast_ref::<csv::Error>().is_some_and(
                |c| matches!(c.kind(), csv::ErrorKind::Io(io) if io.kind() == BrokenPipe),
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::stop::Stop;
    use crate::record::storage::{Cause, LedgerWriteError};
    use crate::smtp::Failure;

    #[test]
    fn a_run_summary_decides_the_exit_code() {
        let s = |delivered, temporary, permanent, unknown, stopped: Option<Stop>| Summary {
            delivered,
            failed_temporary: temporary,
            failed_permanent: permanent,
            unknown,
            stopped,
            ..Summary::default()
        };
        let full = Stop::LedgerUnwritable(LedgerWriteError {
            path: "c.ledger.sqlite".into(),
            cause: Cause::Full,
            detail: "database or disk is full".into(),
        });
        let refused = Stop::ServerRefused(Failure::Login {
            reply: None,
            message: "login refused".into(),
        });
        let table = [
            (s(98, 0, 0, 0, None), Exit::Done),
            (s(0, 0, 0, 0, None), Exit::Done),
            (s(97, 1, 0, 0, None), Exit::SomeFailed),
            (s(97, 0, 1, 0, None), Exit::SomeFailed),
            (s(97, 0, 0, 1, None), Exit::SomeFailed),
            (s(50, 0, 0, 0, Some(refused)), Exit::Error),
            (s(50, 3, 0, 1, Some(Stop::Interrupted)), Exit::Error),
            (s(2, 0, 0, 0, Some(full)), Exit::Error),
        ];
        for (summary, want) in table {
            assert_eq!(Exit::of(&summary), want, "{summary:?}");
        }
    }

    #[test]
    fn only_a_closed_pipe_counts_as_a_broken_pipe() {
        let pipe = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(is_broken_pipe(&pipe.context("writing the table")));
        let other = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert!(!is_broken_pipe(&other));
    }
}
