//! Why a file could not be written (the disk is full, it is read-only, the disk failed), told
//! from SQLite's result codes and the operating system's errors, and the typed error for a ledger
//! that could not be written.
//!
//! Callers ask questions (`cause`, `LedgerWriteError::find`) instead of parsing messages. This
//! module only classifies: it writes nothing, prints nothing and chooses no words for a clerk
//! beyond a short `Display`.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use rusqlite::ErrorCode;

/// Why a write failed, as far as the disk is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// No space left (or a quota reached).
    Full,
    /// The file, its folder or its disk may not be written.
    ReadOnly,
    /// The disk reported an input/output error.
    Io,
}

impl Cause {
    /// The cause of an operating-system error, if it is about the disk.
    pub(crate) fn of_io(e: &io::Error) -> Option<Cause> {
        use io::ErrorKind as K;
        match e.kind() {
            K::StorageFull | K::QuotaExceeded | K::FileTooLarge => Some(Cause::Full),
            K::ReadOnlyFilesystem | K::PermissionDenied => Some(Cause::ReadOnly),
            _ if e.raw_os_error() == Some(5) => Some(Cause::Io), // EIO
            _ => None,
        }
    }

    /// The cause of an SQLite error (SQLITE_FULL, SQLITE_READONLY, SQLITE_IOERR, …), if it is
    /// about the disk.
    pub(crate) fn of_sqlite(e: &rusqlite::Error) -> Option<Cause> {
        match e.sqlite_error_code()? {
            ErrorCode::DiskFull => Some(Cause::Full),
            ErrorCode::ReadOnly | ErrorCode::PermissionDenied => Some(Cause::ReadOnly),
            ErrorCode::SystemIoFailure | ErrorCode::CannotOpen => Some(Cause::Io),
            _ => None,
        }
    }

    /// The first disk-related cause found in an error's chain.
    pub(crate) fn of(e: &anyhow::Error) -> Option<Cause> {
        e.chain().find_map(|c| {
            c.downcast_ref::<rusqlite::Error>()
                .and_then(Cause::of_sqlite)
                .or_else(|| c.downcast_ref::<io::Error>().and_then(Cause::of_io))
        })
    }

    /// An operating-system error with its cause in front when it is about the disk: "the disk is
    /// full (No space left on device (os error 28))".
    pub(crate) fn describe(e: &io::Error) -> String {
        match Cause::of_io(e) {
            Some(cause) => format!("{} ({e})", cause.as_str()),
            None => e.to_string(),
        }
    }

    /// A few words for messages and logs: "the disk is full".
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Cause::Full => "the disk is full",
            Cause::ReadOnly => "it may not be written (read-only)",
            Cause::Io => "the disk reported an input/output error",
        }
    }
}

/// The ledger could not be written: which file, why, and the error as SQLite gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LedgerWriteError {
    pub path: PathBuf,
    pub cause: Cause,
    /// The error as SQLite or the system said it, for the curious.
    pub detail: String,
}

impl LedgerWriteError {
    /// The typed error when `e` is about the disk under the ledger at `path`; `e` itself
    /// otherwise (a refused change, a stale plan) or when it already is one.
    pub(crate) fn classify(path: &Path, e: anyhow::Error) -> anyhow::Error {
        if LedgerWriteError::find(&e).is_some() {
            return e;
        }
        match Cause::of(&e) {
            Some(cause) => anyhow::Error::new(LedgerWriteError {
                path: path.to_path_buf(),
                cause,
                detail: format!("{e:#}"),
            }),
            None => e,
        }
    }

    /// The ledger write error in this error's chain, if there is one.
    pub(crate) fn find(e: &anyhow::Error) -> Option<&LedgerWriteError> {
        e.chain().find_map(|c| c.downcast_ref::<LedgerWriteError>())
    }
}

impl fmt::Display for LedgerWriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "cannot write to the ledger {}: {} ({})",
            self.path.display(),
            self.cause.as_str(),
            self.detail
        )
    }
}

impl std::error::Error for LedgerWriteError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite(code: i32) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn sqlite_and_system_errors_about_the_disk_are_told_apart() {
        assert_eq!(
            Cause::of_sqlite(&sqlite(rusqlite::ffi::SQLITE_FULL)),
            Some(Cause::Full)
        );
        assert_eq!(
            Cause::of_sqlite(&sqlite(rusqlite::ffi::SQLITE_READONLY)),
            Some(Cause::ReadOnly)
        );
        assert_eq!(
            Cause::of_sqlite(&sqlite(rusqlite::ffi::SQLITE_IOERR_WRITE)),
            Some(Cause::Io)
        );
        assert_eq!(
            Cause::of_sqlite(&sqlite(rusqlite::ffi::SQLITE_CONSTRAINT)),
            None
        );
        let full = io::Error::from(io::ErrorKind::StorageFull);
        assert_eq!(Cause::of_io(&full), Some(Cause::Full));
        assert_eq!(
            Cause::of_io(&io::Error::from_raw_os_error(28)),
            Some(Cause::Full)
        );
        assert_eq!(
            Cause::of_io(&io::Error::from_raw_os_error(30)),
            Some(Cause::ReadOnly)
        );
        assert_eq!(
            Cause::of_io(&io::Error::from(io::ErrorKind::NotFound)),
            None
        );
        assert!(
            Cause::describe(&io::Error::from_raw_os_error(28)).starts_with("the disk is full (")
        );
    }

    #[test]
    fn a_full_disk_under_the_ledger_becomes_a_ledger_write_error_once() {
        let raw = anyhow::Error::new(sqlite(rusqlite::ffi::SQLITE_FULL)).context("recording");
        let e = LedgerWriteError::classify(Path::new("c.ledger.sqlite"), raw);
        let found = LedgerWriteError::find(&e).expect("typed");
        assert_eq!(found.cause, Cause::Full);
        assert_eq!(found.path, Path::new("c.ledger.sqlite"));
        let again = LedgerWriteError::classify(Path::new("other"), e);
        assert_eq!(
            LedgerWriteError::find(&again).unwrap().path,
            Path::new("c.ledger.sqlite")
        );
        let stale = LedgerWriteError::classify(Path::new("x"), anyhow::anyhow!("plan is stale"));
        assert!(LedgerWriteError::find(&stale).is_none());
    }
}
