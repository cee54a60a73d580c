//! rundbrev: send one official circular letter by e-mail to many recipients, one stamped letter
//! each, and keep an exact record of who got it.
//!
//! The folders follow a letter's journey:
//!
//! ```text
//! cli/        the commands: what the clerk typed, in order, and everything printed
//!   │
//! delivery/   the send loop: mark `sending`, hand over (outbox or smtp/), archive, record the outcome
//!   │
//! receipts/   what comes back (bounces, delivery reports, replies): read, matched, recorded
//!   │
//! campaign/   config + recipients file → checked letters, the guard, and the plan for a run
//!   │
//! record/     the ledger (read first: frozen stamps and states; written last: outcomes),
//!   │         and the status, explanations and case report made from it
//! letter/     one recipient's letter: stamps → merged Markdown → MIME message and PDF; previews
//!   │
//! smtp/       the SMTP client on lettre: TLS, login, one envelope at a time
//! imap/       the read-only IMAP client on async-imap that `receipts fetch` reads a mailbox with
//! ```
//!
//! Beneath them all: `config` (the campaign file), `problem` (input errors with their place),
//! `clock` (the one place the time is read), `secret` (passwords for the mail servers), `sanitize`
//! (the one place outside text is made safe to show), `digest`, `whole_file`, `net` (a TCP
//! connection with a time limit, and how it is protected) and `trust` (which server certificates
//! the SMTP and IMAP clients trust, and a certificate in words). Arrows only point down: nothing
//! imports a folder above it, `smtp/` and `imap/` do not import each other (what they share is in
//! `net` and `trust`), and nothing below `cli/` prints.

pub mod cli;

pub(crate) mod campaign;
pub(crate) mod clock;
pub(crate) mod config;
pub(crate) mod delivery;
pub(crate) mod digest;
pub(crate) mod imap;
pub(crate) mod letter;
pub(crate) mod net;
pub(crate) mod problem;
pub(crate) mod receipts;
pub(crate) mod record;
pub(crate) mod sanitize;
pub(crate) mod secret;
pub(crate) mod smtp;
#[cfg(test)]
pub(crate) mod test_rng;
pub(crate) mod trust;
pub(crate) mod whole_file;
