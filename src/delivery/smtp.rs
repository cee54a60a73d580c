//! SMTP delivery for a campaign: the secret, one reused connection, reconnects, and the commands
//! `test-send` and `check-smtp`.
//!
//! Wraps the client in `smtp` as a `Transport`: a session is opened (TLS, login) before the first
//! letter is marked, reused for every letter, and reopened when the server drops it. Connection
//! failures in a row stop the run. The password is read from the environment, a command or a
//! prompt, and never printed, logged, stored or put into an error. This module does not decide
//! who gets a letter and does not touch the ledger.

use std::io::IsTerminal as _;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};

use crate::campaign::Prepared;
use crate::cli::{Exit, Output};
use crate::clock;
use crate::config::{Config, Security, Smtp, Transport as TransportConfig};
use crate::delivery::transport::{Outcome, Stop, Transport};
use crate::letter::compose::{self, Addressee, Composed};
use crate::problem::{Problem, Problems};
use crate::record::ledger::Ledger;
use crate::smtp::{self, Connection, Failure, Login, Settings};

/// "smtp.example.dk:587 (STARTTLS) as rundbrev@uim.dk"; who logs in, not who the letter is from.
pub fn describe(s: &Smtp) -> String {
    match &s.user {
        Some(u) => format!("{}:{} ({}) as {u}", s.host, s.port, s.security_name()),
        None => format!("{}:{} ({}, no login)", s.host, s.port, s.security_name()),
    }
}

/// Domains reserved for examples and tests (RFC 2606, RFC 6761): mail to them cannot arrive.
pub fn is_reserved(address: &str) -> bool {
    let domain = address
        .rsplit_once('@')
        .map(|(_, d)| d)
        .unwrap_or(address)
        .trim_end_matches('.')
        .to_ascii_lowercase();
    let tld_reserved = ["invalid", "example", "test", "localhost"]
        .iter()
        .any(|t| domain == *t || domain.ends_with(&format!(".{t}")));
    let example = ["example.com", "example.net", "example.org"]
        .iter()
        .any(|d| domain == *d || domain.ends_with(&format!(".{d}")));
    tld_reserved || example
}

/// Placeholder addresses that SMTP must refuse, each with its row; with `only`, just those keys.
pub fn reserved_address_problems(
    p: &Prepared,
    ledger: Option<&Ledger>,
    only: &[String],
) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();
    for letter in p.letters(ledger)? {
        let letter = letter?;
        if !only.is_empty() && !only.contains(&letter.key) {
            continue;
        }
        if is_reserved(&letter.to.email)
            && letter.state() != crate::record::ledger::State::Delivered
        {
            problems.push(
                Problem::new(
                    &p.table.file,
                    format!(
                        "{} is a placeholder on a reserved domain and cannot receive mail; put {}'s real address in the file before sending by SMTP",
                        letter.to.email, letter.to.name
                    ),
                )
                .at_line(letter.line)
                .in_column(&p.table.headers[p.cols.email]),
            );
        }
    }
    for (kind, addr) in p.envelope.copies() {
        if is_reserved(&addr) {
            problems.push(
                Problem::new(
                    &p.shown(&p.config.path),
                    format!(
                        "the {kind} address {addr} is on a reserved domain and cannot receive mail"
                    ),
                )
                .at_key(if kind == "Cc" {
                    "sender.cc"
                } else {
                    "sender.bcc"
                }),
            );
        }
    }
    Ok(problems)
}

/// Reads the password or token: from `password_command`, the environment, or a prompt.
fn secret(s: &Smtp) -> Result<Option<String>> {
    let Some(user) = &s.user else {
        return Ok(None);
    };
    if let Some(cmd) = &s.password_command {
        let output = std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .stderr(std::process::Stdio::inherit())
            .output()
            .context("cannot run transport.smtp.password_command")?;
        if !output.status.success() {
            bail!(
                "transport.smtp.password_command failed ({}); no password, nothing was sent",
                output.status
            );
        }
        let text = String::from_utf8(output.stdout)
            .context("transport.smtp.password_command printed something that is not UTF-8")?;
        let first = text.lines().next().unwrap_or("").to_string();
        if first.is_empty() {
            bail!("transport.smtp.password_command printed no password");
        }
        return Ok(Some(first));
    }
    if let Ok(value) = std::env::var(&s.password_env) {
        if !value.is_empty() {
            return Ok(Some(value));
        }
    }
    if std::io::stdin().is_terminal() {
        let value = rpassword::prompt_password(format!("Password for {user} at {}: ", s.host))
            .context("cannot read the password")?;
        return Ok(Some(value));
    }
    bail!(
        "no password for {user}: set the environment variable {}, set transport.smtp.password_command, or run rundbrev on a terminal to be asked",
        s.password_env
    )
}

fn settings(s: &Smtp) -> Result<Settings> {
    let login = secret(s)?.map(|secret| Login {
        user: s.user.clone().unwrap_or_default(),
        secret,
        mechanisms: s.mechanisms.clone(),
    });
    Ok(Settings {
        host: s.host.clone(),
        port: s.port,
        security: s.security,
        ca_file: s.ca_file.clone(),
        hello_name: s.hello_name.clone(),
        connect_timeout: s.connect_timeout,
        command_timeout: s.command_timeout,
        login,
    })
}

/// Sends over one SMTP session at a time, reopening it when the server drops it.
pub struct SmtpTransport {
    runtime: tokio::runtime::Runtime,
    settings: Settings,
    conn: Option<Connection>,
    /// Connection failures and drops since the last letter that went through.
    breaks_in_a_row: u32,
    max_breaks: u32,
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the network runtime")
}

/// Opens the session (TLS and login) before anything is marked in the ledger. A failure here
/// is systemic: nothing was sent and every letter stays as it was.
pub fn connect(s: &Smtp, out: &Output) -> Result<SmtpTransport> {
    if s.security == Security::None && !crate::config::is_loopback(&s.host) {
        out.note(format!(
            "sending to {} WITHOUT encryption (allow_insecure = true): letters can be read on the way",
            s.host
        ));
    }
    let settings = settings(s)?;
    let runtime = runtime()?;
    let conn = runtime
        .block_on(Connection::open(&settings))
        .map_err(|f| anyhow::anyhow!("{}; nothing was sent", plain(&f, s)))?;
    if out.verbose {
        out.say(format!("Connected to {}", describe(s)));
    }
    Ok(SmtpTransport {
        runtime,
        settings,
        conn: Some(conn),
        breaks_in_a_row: 0,
        max_breaks: s.max_connection_failures,
    })
}

/// Opens `connections` sessions (no more than there are letters), each for its own worker.
/// The password is read once.
pub fn connect_all(
    s: &Smtp,
    letters: usize,
    out: &Output,
) -> Result<Vec<Box<dyn Transport + Send>>> {
    let first = connect(s, out)?;
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
        }));
    }
    Ok(all)
}

/// A failure in words for a clerk, with what to do.
fn plain(f: &Failure, s: &Smtp) -> String {
    match f {
        Failure::Connect(_) => format!(
            "{f}. Check transport.smtp.host and port ({}:{}) and the network",
            s.host, s.port
        ),
        Failure::Tls(_) => format!("{f}. Check transport.smtp.security and ca_file"),
        Failure::Login { .. } => format!(
            "the server refused the login for {}: {f}. Check the user and the password (from {})",
            s.user.as_deref().unwrap_or("?"),
            if s.password_command.is_some() {
                "password_command".to_string()
            } else {
                format!("${} or the prompt", s.password_env)
            }
        ),
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
        (self.breaks_in_a_row >= self.max_breaks).then(|| {
            Stop(format!(
                "the connection to the mail server failed {} times in a row (last: {last})",
                self.breaks_in_a_row
            ))
        })
    }
}

impl Transport for SmtpTransport {
    fn kind(&self) -> &'static str {
        "smtp"
    }

    fn send(&mut self, message: &Composed, _name: &str) -> Result<Outcome, Stop> {
        // (Re)open the session. Refused TLS or login stops at once; a broken connection is tried
        // again until `max_connection_failures` breaks in a row.
        while !self.conn.as_ref().is_some_and(Connection::is_usable) {
            if let Some(stop) = self.too_many_breaks("the server dropped the connection") {
                return Err(stop);
            }
            match self.open() {
                Ok(()) => {}
                Err(f @ (Failure::Tls(_) | Failure::Login { .. })) => {
                    return Err(Stop(f.to_string()))
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
        let result = self.runtime.block_on(conn.send(
            &message.envelope_from,
            &message.envelope_to,
            &message.bytes,
        ));
        if conn.is_usable() {
            self.breaks_in_a_row = 0;
        } else {
            self.conn = None;
            self.breaks_in_a_row += 1;
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
                return Err(Stop(format!(
                    "the server refused the sender {} ({f}); check sender.from and the login",
                    message.envelope_from
                )))
            }
            Err(f) => {
                let code = f.reply().map(|r| r.code);
                let reply = match f.reply() {
                    Some(r) => r.to_string(),
                    None => f.to_string(),
                };
                match f {
                    Failure::Permanent { .. } | Failure::Unsendable { .. } => {
                        Outcome::Permanent { code, reply }
                    }
                    Failure::Unknown { .. } => Outcome::Unknown { reply },
                    _ => Outcome::Temporary { code, reply },
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

fn smtp_config(config: &Config) -> Result<&Smtp> {
    match &config.transport {
        TransportConfig::Smtp(s) => Ok(s),
        TransportConfig::Outbox { .. } => bail!(
            "this campaign sends to the outbox folder; set [transport] kind = \"smtp\" and a [transport.smtp] section in {} to use a mail server",
            config.path.display()
        ),
    }
}

/// Connects, starts TLS and logs in, then says goodbye: nothing is sent.
pub fn check_smtp(config: &Config, out: &Output) -> Result<Exit> {
    let s = smtp_config(config)?;
    let settings = settings(s)?;
    let runtime = runtime()?;
    let conn = runtime
        .block_on(Connection::open(&settings))
        .map_err(|f| anyhow::anyhow!("{}", plain(&f, s)))?;
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

/// Sends one rendered letter to the operator's own address. It is not recorded as that
/// recipient's delivery, carries its own Message-ID and goes to no Cc/Bcc copy.
pub fn test_send(config: &Config, out: &Output, to: &str, recipient: Option<&str>) -> Result<Exit> {
    let s = smtp_config(config)?;
    if let Err(why) = crate::campaign::recipients::check_address(to) {
        bail!("--to {to}: not a valid e-mail address ({why})");
    }
    if is_reserved(to) {
        bail!("--to {to}: that is a reserved domain and cannot receive mail");
    }
    let ledger = Ledger::open_existing(&Ledger::path_for(&config.ledger_dir, &config.campaign.id))?;
    let p = crate::campaign::prepare(config.clone(), ledger.as_ref(), clock::now())
        .map_err(Problems)?;
    let letter = match recipient {
        Some(key) => crate::campaign::find_letters(&p, ledger.as_ref(), &[key.to_string()])
            .map_err(|e| anyhow::anyhow!("--recipient: {e}"))?
            .remove(0),
        None => p
            .letters(ledger.as_ref())?
            .next()
            .context("the recipients file has no recipients")??,
    };
    let letter = &letter;
    let rendered = p.render(letter).map_err(|e| anyhow::anyhow!(e.message))?;
    let mut stamp = letter.stamp.clone();
    stamp.message_id = format!("test.{}", stamp.message_id);
    let envelope = p.envelope.without_copies();
    let composed = compose::compose(
        &envelope,
        &Addressee {
            name: String::new(),
            email: to.to_string(),
        },
        &rendered,
        &stamp,
        clock::now(),
    )
    .map_err(anyhow::Error::msg)?;
    let mut transport = connect(s, out)?;
    let outcome = transport
        .send(&composed, "test")
        .map_err(|stop| anyhow::anyhow!("{stop}"))?;
    transport.close();
    match outcome {
        Outcome::Delivered { reply, .. } => {
            out.always(format!(
                "Sent {}'s letter (Akt-id {}) to {to} only: {reply}. This test does not count as {}'s delivery.",
                letter.to.name, letter.stamp.akt_id, letter.to.name
            ));
            Ok(Exit::Done)
        }
        other => {
            let (_, _, reply) = other.parts();
            out.always(format!(
                "The test letter to {to} was not delivered: {reply}"
            ));
            Ok(Exit::SomeFailed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_domains_are_recognised() {
        for a in [
            "a@kk.dk.invalid",
            "x@example.com",
            "x@mail.example.org",
            "x@foo.test",
            "x@localhost",
            "x@b.example",
        ] {
            assert!(is_reserved(a), "{a}");
        }
        for a in [
            "kommunen@fredericia.dk",
            "x@example.dk",
            "x@notexample.com",
            "x@testing.dk",
        ] {
            assert!(!is_reserved(a), "{a}");
        }
    }
}
