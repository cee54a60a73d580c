//! SMTP delivery for a campaign: the secret, one reused connection, and reconnects.
//!
//! Wraps the client in `smtp` as a `Transport`: a session is opened (TLS, login) before the first
//! letter is marked, reused for every letter, and reopened when the server drops it. Connection
//! failures in a row stop the run; a connection the client closed itself to end a transaction
//! undelivered (a refused Bcc copy after a pipelined 354, a closed gate) is not counted as one.
//! The gate is passed only once the server has accepted the sender and every recipient and
//! answered DATA with 354 (pipelined or not), and before any of the message goes out, so a letter
//! refused at MAIL or RCPT never counts as possibly delivered. The password is read from the
//! environment, a command or a prompt, and never printed, logged, stored or put into an error.
//! This module does not decide who gets a letter and does not touch the ledger.

use std::time::Duration;

use anyhow::{Context as _, Result};

use crate::config::{Security, Smtp};
use crate::delivery::transport::{Gate, Outcome, Stop, Transport};
use crate::letter::compose::Composed;
use crate::smtp::dsn::DsnRequest;
use crate::smtp::{self, Connection, Failure, Login, Settings};

/// "smtp.example.dk:587 (STARTTLS) as rundbrev@uim.dk"; who logs in, not who the letter is from.
pub(crate) fn describe(s: &Smtp) -> String {
    match &s.user {
        Some(u) => format!("{}:{} ({}) as {u}", s.host, s.port, s.security_name()),
        None => format!("{}:{} ({}, no login)", s.host, s.port, s.security_name()),
    }
}

/// Reads the password or token: from `password_command`, the environment, or a prompt.
fn secret(s: &Smtp) -> Result<Option<String>> {
    let Some(user) = &s.user else {
        return Ok(None);
    };
    crate::secret::read(crate::secret::Source {
        section: "transport.smtp",
        user,
        host: &s.host,
        password_env: &s.password_env,
        password_command: s.password_command.as_deref(),
    })
    .map(Some)
}

pub(crate) fn settings(s: &Smtp) -> Result<Settings> {
    let login = secret(s)?.map(|secret| Login {
        user: s.user.clone().unwrap_or_default(),
        secret,
        mechanisms: s.mechanisms.clone(),
    });
    Ok(Settings {
        host: s.host.clone(),
        port: s.port,
        security: s.security,
        trust: crate::trust::Trust {
            ca_file: s.ca_file.clone(),
            pins: s.tls_pins.clone(),
            skip_host_name_check: !s.tls_check_host_name,
        },
        hello_name: s.hello_name.clone(),
        connect_timeout: s.connect_timeout,
        command_timeout: s.command_timeout,
        login,
    })
}

/// Sends over one SMTP session at a time, reopening it when the server drops it.
pub(crate) struct SmtpTransport {
    runtime: tokio::runtime::Runtime,
    settings: Settings,
    conn: Option<Connection>,
    /// Connection failures and drops since the last letter that went through.
    breaks_in_a_row: u32,
    max_breaks: u32,
    /// Delivery status notifications to ask for, when the server offers DSN.
    dsn: Option<DsnRequest>,
}

pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the network runtime")
}

/// What the person sending should be told before letters go out over this server, if anything.
pub(crate) fn warnings(s: &Smtp) -> Vec<String> {
    let mut out = Vec::new();
    if s.security == Security::None && !crate::config::is_loopback(&s.host) {
        out.push(format!(
            "sending to {} WITHOUT encryption (allow_insecure = true): letters can be read on the way",
            s.host
        ));
    }
    out.extend(s.warnings());
    out
}

/// Opens the session (TLS and login) before anything is marked in the ledger. A failure here
/// is systemic: nothing was sent and every letter stays as it was.
pub(crate) fn connect(s: &Smtp) -> Result<SmtpTransport> {
    let settings = settings(s)?;
    let runtime = runtime()?;
    let conn = runtime
        .block_on(Connection::open(&settings))
        .map_err(|f| anyhow::anyhow!("{}; nothing was sent", plain(&f, s)))?;
    Ok(SmtpTransport {
        runtime,
        settings,
        conn: Some(conn),
        breaks_in_a_row: 0,
        max_breaks: s.max_connection_failures,
        dsn: s.dsn,
    })
}

/// Opens `connections` sessions (no more than there are letters), each for its own worker.
/// The password is read once.
pub(crate) fn connect_all(s: &Smtp, letters: usize) -> Result<Vec<Box<dyn Transport + Send>>> {
    let first = connect(s)?;
    let settings = first.settings.clone();
    let mut all: Vec<Box<dyn Transport + Send>> = vec![Box::new(first)];
    for _ in 1..s.connections.min(letters.max(1)) {
        let runtime = runtime()?;
        let conn = runtime
            .block_on(Connection::open(&settings))
            .map_err(|f| anyhow::anyhow!("{}; nothing was sent", plain(&f, s)))?;
        all.push(Box::new(SmtpTransport {
            runtime,
            settings: settings.clone(),
            conn: Some(conn),
            breaks_in_a_row: 0,
            max_breaks: s.max_connection_failures,
            dsn: s.dsn,
        }));
    }
    Ok(all)
}

/// A failure in words for a clerk, with what to do.
pub(crate) fn plain(f: &Failure, s: &Smtp) -> String {
    match f {
        Failure::Connect(_) => format!(
            "{f}. Check transport.smtp.host and port ({}:{}) and the network",
            s.host, s.port
        ),
        // Messages about the certificate already say what to set; the others get a pointer.
        Failure::Tls(m) if m.contains("ca_file") || m.contains("tls_pin_sha256") => f.to_string(),
        Failure::Tls(_) => format!(
            "{f}. Check transport.smtp.security, ca_file and tls_pin_sha256; `rundbrev check-smtp` shows the server's certificate"
        ),
        Failure::Login { reply, message } => {
            let user = s.user.as_deref().unwrap_or("?");
            let what = match reply {
                Some(reply) => format!("the server refused the login for {user} (it said: {reply})"),
                None => format!("the login for {user} failed: {message}"),
            };
            format!(
                "{what}. Check the user and the password (from {})",
                if s.password_command.is_some() {
                    "password_command".to_string()
                } else {
                    format!("${} or the prompt", s.password_env)
                }
            )
        }
        _ => f.to_string(),
    }
}

impl SmtpTransport {
    fn open(&mut self) -> Result<(), Failure> {
        let conn = self.runtime.block_on(Connection::open(&self.settings))?;
        self.conn = Some(conn);
        Ok(())
    }

    fn too_many_breaks(&self, last: &str) -> Option<Stop> {
        (self.breaks_in_a_row >= self.max_breaks).then(|| Stop::ConnectionFailures {
            times: self.breaks_in_a_row,
            last: last.to_string(),
        })
    }
}

impl Transport for SmtpTransport {
    fn kind(&self) -> &'static str {
        "smtp"
    }

    fn send(&mut self, message: &Composed, name: &str) -> Result<Outcome, Stop> {
        self.send_through(message, name, &mut || Ok(()))
    }

    fn send_through(
        &mut self,
        message: &Composed,
        _name: &str,
        gate: &mut Gate<'_>,
    ) -> Result<Outcome, Stop> {
        // (Re)open the session. Refused TLS or login stops at once; a broken connection is tried
        // again until `max_connection_failures` breaks in a row.
        while !self.conn.as_ref().is_some_and(Connection::is_usable) {
            if let Some(stop) = self.too_many_breaks("the server dropped the connection") {
                return Err(stop);
            }
            match self.open() {
                Ok(()) => {}
                Err(f @ (Failure::Tls(_) | Failure::Login { .. })) => {
                    return Err(Stop::ServerRefused(f))
                }
                Err(f) => {
                    self.breaks_in_a_row += 1;
                    if let Some(stop) = self.too_many_breaks(&f.to_string()) {
                        return Err(stop);
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
            }
        }
        let conn = self.conn.as_mut().expect("opened above");
        let mut closed: Option<Stop> = None;
        let mut before_data = || match gate() {
            Ok(()) => true,
            Err(stop) => {
                closed = Some(stop);
                false
            }
        };
        let result = self.runtime.block_on(conn.send(
            &message.envelope_from,
            &message.envelope_to,
            &message.bytes,
            self.dsn.as_ref(),
            &message.message_id,
            &mut before_data,
        ));
        if let Some(stop) = closed {
            // Held back before its data: nothing of the letter went out.
            if !conn.is_usable() {
                self.conn = None;
            }
            return Err(stop);
        }
        if conn.is_usable() {
            self.breaks_in_a_row = 0;
        } else {
            // Closed by the client to end a transaction undelivered: the server is fine.
            if !conn.closed_on_purpose() {
                self.breaks_in_a_row += 1;
            }
            self.conn = None;
        }
        Ok(match result {
            Ok(reply) => {
                self.breaks_in_a_row = 0;
                Outcome::Delivered {
                    code: Some(reply.code),
                    reply: reply.to_string(),
                }
            }
            // A refusal of the sender concerns every letter: stop, this one was not handed over.
            Err(
                f @ Failure::Permanent {
                    phase: smtp::Phase::Mail,
                    ..
                },
            ) => {
                return Err(Stop::SenderRefused {
                    sender: message.envelope_from.clone(),
                    failure: f,
                })
            }
            Err(f) => {
                let code = f.reply().map(|r| r.code);
                let data_sent = f.data_sent();
                let reply = match f.reply() {
                    Some(r) => r.to_string(),
                    None => f.to_string(),
                };
                match f {
                    Failure::Permanent { .. } | Failure::Unsendable { .. } => Outcome::Permanent {
                        code,
                        reply,
                        data_sent,
                    },
                    Failure::Unknown { .. } => Outcome::Unknown { reply },
                    _ => Outcome::Temporary {
                        code,
                        reply,
                        data_sent,
                    },
                }
            }
        })
    }

    fn close(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.runtime.block_on(conn.quit());
        }
    }
}
