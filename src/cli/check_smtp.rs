//! `rundbrev check-smtp`: connects to the mail server, starts TLS and logs in, then says goodbye.
//!
//! Nothing is sent and the ledger is not touched. The password is read as for sending and never
//! shown.

use anyhow::{bail, Result};

use crate::cli::exit::Exit;
use crate::cli::output::Output;
use crate::config::{Config, Security, Smtp, Transport as TransportConfig};
use crate::delivery::smtp;
use crate::smtp::Connection;

/// The campaign's SMTP settings, or a plain error when it sends to the outbox.
pub fn smtp_config(config: &Config) -> Result<&Smtp> {
    match &config.transport {
        TransportConfig::Smtp(s) => Ok(s),
        TransportConfig::Outbox { .. } => bail!(
            "this campaign sends to the outbox folder; set [transport] kind = \"smtp\" and a [transport.smtp] section in {} to use a mail server",
            config.path.display()
        ),
    }
}

/// Connects, starts TLS and logs in, then says goodbye: nothing is sent.
pub fn run(config: &Config, out: &Output) -> Result<Exit> {
    let s = smtp_config(config)?;
    let settings = smtp::settings(s)?;
    let runtime = smtp::runtime()?;
    let conn = runtime
        .block_on(Connection::open(&settings))
        .map_err(|f| anyhow::anyhow!("{}", smtp::plain(&f, s)))?;
    runtime.block_on(conn.quit());
    out.always(format!(
        "The mail server works: connected to {}:{}, {}{}. Nothing was sent.",
        s.host,
        s.port,
        match s.security {
            Security::StartTls => "STARTTLS started and the certificate verified",
            Security::Tls => "TLS started and the certificate verified",
            Security::None => "no encryption",
        },
        match &s.user {
            Some(u) => format!(", logged in as {u}"),
            None => ", no login".to_string(),
        }
    ));
    Ok(Exit::Done)
}
