//! rundbrev: send one official circular letter by e-mail to many recipients, one stamped letter
//! each, and keep an exact record of who got it.
//!
//! Data flows one way: recipient row → stamp → merged letter → MIME message → transport → ledger.

pub mod app;
pub mod archive;
pub mod browser;
pub mod campaign;
pub mod case_report;
pub mod cli;
pub mod clock;
pub mod compose;
pub mod config;
pub mod delivery;
pub mod diagnostics;
pub mod explain;
pub mod init;
pub mod ledger;
pub mod manual;
pub mod preview;
pub mod problem;
pub mod progress;
pub mod recipients;
pub mod render;
pub mod report;
pub mod run_summary;
pub mod smtp;
pub mod smtp_transport;
pub mod stamp;
pub mod terminal;
pub mod transport;
