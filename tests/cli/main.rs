//! Integration tests: the real `rundbrev` binary in a temporary folder, one test binary.
//!
//! The SMTP tests start Postfix's smtp-sink and Python's aiosmtpd on 127.0.0.1 themselves;
//! `bash .ci/install-test-servers` installs both. The receipts tests (`relay.rs`) also start a
//! Postfix relay and a Dovecot IMAP server of their own (`mailhost.rs`), which it installs too,
//! and the IMAP certificate tests (`tls.rs`) a Dovecot alone.

mod clerks;
mod core;
mod disk;
mod edges;
mod harness;
mod mailhost;
mod pdf;
mod receipts;
mod relay;
mod servers;
mod smtp;
mod smtp_pipelining;
mod tls;
mod workbook;
