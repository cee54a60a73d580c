//! rundbrev: send one official circular letter by e-mail to many recipients, one stamped letter
//! each, and keep an exact record of who got it.
//!
//! Data flows one way: recipient row → stamp → merged letter → MIME message → transport → ledger.

pub mod app;
pub mod campaign;
pub mod cli;
pub mod clock;
pub mod compose;
pub mod config;
pub mod delivery;
pub mod ledger;
pub mod preview;
pub mod problem;
pub mod recipients;
pub mod render;
pub mod report;
pub mod smtp;
pub mod smtp_transport;
pub mod stamp;
pub mod transport;
