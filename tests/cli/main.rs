//! Integration tests: the real `rundbrev` binary in a temporary folder, one test binary.
//!
//! The SMTP tests start Postfix's smtp-sink and Python's aiosmtpd on 127.0.0.1 themselves;
//! `bash .ci/install-test-servers` installs both.

mod clerks;
mod core;
mod disk;
mod edges;
mod harness;
mod receipts;
mod servers;
mod smtp;
mod tls;
mod workbook;
