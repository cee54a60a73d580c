//! `rundbrev check-smtp`: connects to the mail server, starts TLS and logs in, then says goodbye,
//! listing the server's extensions and whether it offers DSN (delivery reports).
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
pub(super) fn smtp_config(config: &Config) -> Result<&Smtp> {
    match &config.transport {
        TransportConfig::Smtp(s) => Ok(s),
        TransportConfig::Outbox { .. } => bail!(
            "this campaign sends to the outbox folder; set [transport] kind = \"smtp\" and a [transport.smtp] section in {} to use a mail server",
            config.path.display()
        ),
    }
}

/// Connects, starts TLS and logs in, then says goodbye: nothing is sent. Shows the server's
/// certificate (also when it is not trusted), so that IT can confirm it and it can be pinned.
pub(super) fn run(config: &Config, out: &Output) -> Result<Exit> {
    let s = smtp_config(config)?;
    for warning in smtp::warnings(s) {
        out.note(warning);
    }
    let settings = smtp::settings(s)?;
    let runtime = smtp::runtime()?;
    let (opened, certificate) = runtime.block_on(Connection::open_showing(&settings));
    if let Some(cert) = &certificate {
        out.always(format!("The server's certificate ({}:{}):", s.host, s.port));
        for line in cert.lines() {
            out.always(format!("  {line}"));
        }
    }
    let conn = opened.map_err(|f| anyhow::anyhow!("{}", smtp::plain(&f, s)))?;
    let extensions = conn.extensions().clone();
    runtime.block_on(conn.quit());
    let verified = if s.tls_pins.is_empty() {
        "the certificate verified"
    } else {
        "the certificate matches tls_pin_sha256"
    };
    out.always(format!(
        "The mail server works: connected to {}:{}, {}{}. Nothing was sent.",
        s.host,
        s.port,
        match s.security {
            Security::StartTls => format!("STARTTLS started and {verified}"),
            Security::Tls => format!("TLS started and {verified}"),
            Security::None => "no encryption".to_owned(),
        },
        match &s.user {
            Some(u) => format!(", logged in as {u}"),
            None => ", no login".to_string(),
        }
    ));
    out.always(format!(
        "It offers: {}.",
        if extensions.lines().is_empty() {
            "no extensions".to_string()
        } else {
            extensions.lines().join(", ")
        }
    ));
    out.always(if extensions.offers("DSN") {
        match &s.dsn {
            Some(dsn) => format!(
                "It offers DSN: each letter asks for delivery reports (NOTIFY={}).",
                dsn.notify()
            ),
            None => "It offers DSN, but [receipts] notify = [] asks for no delivery reports."
                .to_string(),
        }
    } else {
        "It does not offer DSN: letters cannot ask it for delivery reports; bounces may still come back."
            .to_string()
    });
    Ok(Exit::Done)
}
