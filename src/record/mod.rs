//! The record for the case file: the SQLite ledger, and what is read out of it (the status table,
//! the case report, and server replies in plain words).
//!
//! The ledger is the only part that writes, and only the send loop and the commands call its
//! writing methods. Nothing here sends or prints.

pub(crate) mod explain;
pub(crate) mod fact;
pub(crate) mod ledger;
pub(crate) mod report;
pub(crate) mod status;
pub(crate) mod storage;
pub(crate) mod wording;
