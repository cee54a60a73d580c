//! rundbrev: send one official circular letter by e-mail to many recipients, one stamped letter
//! each, and keep an exact record of who got it.

pub mod campaign;
pub mod cli;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod letter;
pub mod problem;
pub mod record;
pub mod smtp;
