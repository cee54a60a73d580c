//! The record.

pub mod explain;
pub mod ledger;
pub mod report;
pub mod status;
