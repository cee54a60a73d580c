//! SMTP client layer: opens one connection to the configured mail server
//! (TCP with `TCP_NODELAY`, then implicit TLS, STARTTLS or plaintext, EHLO
//! and an optional login, all set up by lettre), sends messages over it one
//! envelope at a time with our own command writer and reply reader (`wire`),
//! pipelined (RFC 2920) when the server offers PIPELINING, and turns every
//! outcome into a [`Reply`] or a [`Failure`] that says plainly whether nothing
//! was delivered (safe to retry), the message was refused, or the outcome is
//! unknown because the connection broke after the message's final "." was
//! sent. What a transaction's replies mean is decided in `transaction`; where
//! the caller's gate comes is enforced in [`Connection::send`]: after the
//! sender and every recipient were accepted and before any byte of the message.
//!
//! It must not: fall back to plaintext when TLS was asked for, skip
//! certificate verification, send a login secret over an unencrypted
//! connection to another machine, put the secret into any error, `Display`
//! or `Debug` output, panic on anything the network sends, send any of a
//! message after a refused MAIL FROM or RCPT TO or without passing the gate,
//! end an unwanted data phase with "." (it closes the connection instead), or
//! retry on its own (retry and ledger decisions belong to the caller).

pub(crate) mod dsn;
mod reply;
mod socket;
mod transaction;
mod wire;

#[cfg(test)]
mod session_tests;

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism as SmtpMechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, AsyncTokioStream};
use lettre::transport::smtp::commands::{Ehlo, Starttls};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::Error as SmtpError;
use lettre::Address;
use tokio::net::TcpStream;

use crate::net::Security;
use crate::trust::{self, CertificateInfo, Trust};

use self::dsn::{DsnRequest, Extensions};
use self::reply::*;
pub(crate) use self::reply::{Failure, Phase, Reply};
use self::socket::*;
use self::transaction::{judge, After, Commands, Verdict};
use self::wire::{Unasked, Wire};

/// SASL mechanism used to log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mechanism {
    Plain,
    Login,
    /// OAuth 2 bearer token; [`Login::secret`] holds the access token.
    Xoauth2,
}

impl Mechanism {
    fn to_lettre(self) -> SmtpMechanism {
        match self {
            Mechanism::Plain => SmtpMechanism::Plain,
            Mechanism::Login => SmtpMechanism::Login,
            Mechanism::Xoauth2 => SmtpMechanism::Xoauth2,
        }
    }
}

/// Login data. `Debug` never shows the secret.
#[derive(Clone)]
pub(crate) struct Login {
    pub user: String,
    /// Password, or OAuth access token for [`Mechanism::Xoauth2`].
    pub secret: String,
    /// Mechanisms to try, in order of preference; empty means PLAIN then LOGIN.
    pub mechanisms: Vec<Mechanism>,
}

impl fmt::Debug for Login {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Login")
            .field("user", &self.user)
            .field("secret", &"[redacted]")
            .field("mechanisms", &self.mechanisms)
            .finish()
    }
}

/// Everything needed to open a connection.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// Which server certificates are trusted (`ca_file`, pins).
    pub trust: Trust,
    /// EHLO name; `None` uses lettre's default (this machine's hostname).
    pub hello_name: Option<String>,
    pub connect_timeout: Duration,
    /// Longest time to wait for the server to accept data or to answer.
    pub command_timeout: Duration,
    pub login: Option<Login>,
}

/// One open SMTP session. Not shared between tasks.
pub(crate) struct Connection {
    wire: Wire,
    probe: Arc<Probe>,
    usable: bool,
    /// Closed by us to end a transaction undelivered (not a failure of the server or network).
    closed_on_purpose: bool,
    command_timeout: Duration,
    /// The keywords of the server's last EHLO reply (lettre keeps only those it knows).
    extensions: Extensions,
    offers: Offers,
    /// The last sender checked, and whether it is empty (the null sender): every letter of a
    /// run has the same one, so it is checked once.
    sender: Option<String>,
    /// Where each command of the transaction being sent ends in the output buffer.
    ends: Vec<usize>,
    /// The replies of the transaction being sent.
    replies: Vec<Reply>,
}

/// What the server offers that sending depends on, from its EHLO reply.
#[derive(Debug, Clone, Copy)]
struct Offers {
    smtputf8: bool,
    eightbitmime: bool,
    dsn: bool,
    /// RFC 2920: MAIL FROM, the RCPT TOs and DATA may go out as one group.
    pipelining: bool,
}

/// The stream lent to lettre for setting the session up, to be taken back.
enum Lent {
    Plain(Handoff<Socket>),
    Tls(Handoff<Tls>),
    Resumed(Handoff<Greeted>),
}

impl Lent {
    fn take(self) -> Option<Box<dyn AsyncTokioStream>> {
        match self {
            Lent::Plain(h) => h.take().map(|s| Box::new(s) as Box<dyn AsyncTokioStream>),
            Lent::Tls(h) => h.take().map(|s| Box::new(s) as Box<dyn AsyncTokioStream>),
            Lent::Resumed(h) => h.take().map(|s| Box::new(s) as Box<dyn AsyncTokioStream>),
        }
    }
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("usable", &self.is_usable())
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects (TCP with `TCP_NODELAY`), sets up TLS as configured, reads the
    /// greeting, sends EHLO and logs in.
    pub(crate) async fn open(settings: &Settings) -> Result<Connection, Failure> {
        Self::open_showing(settings).await.0
    }

    /// Like [`Connection::open`], and also gives the certificate the server showed (if TLS got
    /// that far), whether or not it was trusted: for the operator to see and pin.
    pub(crate) async fn open_showing(
        settings: &Settings,
    ) -> (Result<Connection, Failure>, Option<CertificateInfo>) {
        let tls = match settings.security {
            Security::None => None,
            Security::StartTls | Security::Tls => match trust::client_config(&settings.trust) {
                Ok(made) => Some(made),
                Err(message) => return (Err(Failure::Tls(message)), None),
            },
        };
        let seen = tls.as_ref().map(|(_, seen)| seen.clone());
        let result = Self::open_with(settings, tls).await;
        (result, seen.and_then(|s| s.certificate()))
    }

    async fn open_with(
        settings: &Settings,
        tls: Option<(Arc<rustls::ClientConfig>, trust::Seen)>,
    ) -> Result<Connection, Failure> {
        let tcp = connect_tcp(settings).await?;
        tcp.set_nodelay(true)
            .map_err(|e| Failure::Connect(format!("cannot set TCP_NODELAY: {e}")))?;
        let loopback = tcp
            .peer_addr()
            .map(|a| a.ip().is_loopback())
            .unwrap_or(false);

        let probe = Arc::new(Probe::default());
        let socket = Socket::new(tcp, settings.command_timeout, Arc::clone(&probe));
        let hello = client_id(settings);

        // lettre reads the greeting, does STARTTLS, EHLO and the login on a stream it is only
        // lent: once the session is set up, the stream is taken back and the letters go out
        // over it by `wire` and `transaction`.
        let (mut smtp, lent) = match (settings.security, tls) {
            (Security::Tls, Some(tls)) => {
                let encrypted = handshake(socket, &tls, settings).await?;
                let lent = Handoff::new(encrypted);
                let smtp =
                    AsyncSmtpConnection::connect_with_transport(Box::new(lent.clone()), &hello)
                        .await
                        .map_err(|e| greeting_failure(&e, settings))?;
                (smtp, Lent::Tls(lent))
            }
            (Security::StartTls, Some(tls)) => {
                // The plain part of the session runs on a socket that can be taken back for
                // the TLS handshake; lettre then starts a fresh session over TLS, whose
                // greeting was the server's "220" to STARTTLS.
                let slot = Handoff::new(socket);
                let mut plain =
                    AsyncSmtpConnection::connect_with_transport(Box::new(slot.clone()), &hello)
                        .await
                        .map_err(|e| greeting_failure(&e, settings))?;
                if !plain.server_info().supports_feature(Extension::StartTls) {
                    let _ = plain.quit().await;
                    return Err(Failure::Tls(
                        "the server does not offer STARTTLS, so the letters and the password would travel unencrypted; ask IT to turn STARTTLS on, or use security \"tls\" if the server takes TLS from the start (usually port 465)".into(),
                    ));
                }
                match plain.command(Starttls).await {
                    Ok(_) => {}
                    Err(e) => {
                        return Err(Failure::Tls(match reply_of(&e) {
                            Some(r) => format!("the server refused STARTTLS ({r})"),
                            None => format!("the connection broke at STARTTLS: {}", cause(&e)),
                        }))
                    }
                }
                drop(plain);
                let socket = slot.take().ok_or_else(|| {
                    Failure::Tls("the connection was lost during STARTTLS".into())
                })?;
                let encrypted = handshake(socket, &tls, settings).await?;
                let lent = Handoff::new(Greeted::new(encrypted));
                let smtp =
                    AsyncSmtpConnection::connect_with_transport(Box::new(lent.clone()), &hello)
                        .await
                        .map_err(|e| greeting_failure(&e, settings))?;
                (smtp, Lent::Resumed(lent))
            }
            _ => {
                let lent = Handoff::new(socket);
                let smtp =
                    AsyncSmtpConnection::connect_with_transport(Box::new(lent.clone()), &hello)
                        .await
                        .map_err(|e| greeting_failure(&e, settings))?;
                (smtp, Lent::Plain(lent))
            }
        };

        // lettre's own EHLO reply is not kept whole: ask again (before the login, which a new
        // EHLO could undo) to learn every keyword, DSN and PIPELINING among them.
        let extensions = match smtp.command(Ehlo::new(hello.clone())).await {
            Ok(reply) => Extensions::from_ehlo_reply(reply.message()),
            Err(e) => return Err(greeting_failure(&e, settings)),
        };

        if let Some(login) = &settings.login {
            let encrypted = settings.security != Security::None;
            authenticate(&mut smtp, login, encrypted || loopback, settings).await?;
        }

        let info = smtp.server_info();
        let offers = Offers {
            smtputf8: info.supports_feature(Extension::SmtpUtfEight),
            eightbitmime: info.supports_feature(Extension::EightBitMime),
            dsn: extensions.offers("DSN"),
            pipelining: extensions.offers("PIPELINING"),
        };
        drop(smtp);
        let stream = lent.take().ok_or_else(|| Failure::Temporary {
            phase: Phase::Greeting,
            reply: None,
            message: "the connection was lost while the session was set up".into(),
        })?;

        Ok(Connection {
            wire: Wire::new(stream, Arc::clone(&probe)),
            probe,
            usable: true,
            closed_on_purpose: false,
            command_timeout: settings.command_timeout,
            extensions,
            offers,
            sender: None,
            ends: Vec::new(),
            replies: Vec::new(),
        })
    }

    /// The service extensions the server listed in its EHLO reply (after STARTTLS, if used).
    pub(crate) fn extensions(&self) -> &Extensions {
        &self.extensions
    }

    /// Sends one message: MAIL FROM, RCPT TO for each address, DATA, the
    /// message text. `message` is the complete RFC 5322 message with CRLF
    /// line ends; dot-stuffing is done here. `from` may be empty (null sender).
    /// When the server offers DSN, it also asks for delivery status notifications as `dsn` says,
    /// with `envid` naming the message in them; without DSN in the server's EHLO reply nothing
    /// extra is sent.
    ///
    /// When the server offers PIPELINING (RFC 2920), MAIL FROM, every RCPT TO and DATA go out in
    /// one write and their replies are read in order; otherwise one command at a time.
    /// `before_data` (the gate) is asked once, only when the server accepted the sender and
    /// every recipient and answered DATA with 354, and before any byte of the message goes
    /// out. When it says no, the connection is closed without a byte of the message: a "."
    /// would deliver an empty message and anything else would be taken as message text,
    /// whereas a transaction the server never saw the end of is not delivered (RFC 5321,
    /// 4.1.1.4). A gate that said no is a temporary failure at DATA, without a reply.
    ///
    /// A refusal of MAIL FROM or of any RCPT TO is the letter's outcome (4xx temporary, 5xx
    /// permanent), never "data sent", and the gate is not asked; a 354 that comes anyway (a
    /// pipelined group with a refused copy) closes the connection likewise. After the gate, a
    /// connection the server closed after its 354 is found without waiting: nothing of the
    /// message is sent and the failure is temporary. Only a break after the message's final "."
    /// was written is [`Failure::Unknown`].
    pub(crate) async fn send(
        &mut self,
        from: &str,
        to: &[String],
        message: &[u8],
        dsn: Option<&DsnRequest>,
        envid: &str,
        before_data: &mut dyn FnMut() -> bool,
    ) -> Result<Reply, Failure> {
        let dsn = dsn.filter(|_| self.offers.dsn);
        if !self.is_usable() {
            return Err(Failure::Temporary {
                phase: Phase::Mail,
                reply: None,
                message: "the connection is no longer usable; open a new one".into(),
            });
        }
        if to.is_empty() {
            return Err(Failure::Unsendable {
                message: "the message has no recipients".into(),
            });
        }
        if self.sender.as_deref() != Some(from) {
            if !from.is_empty() {
                from.parse::<Address>().map_err(|e| Failure::Unsendable {
                    message: format!("invalid sender address \"{from}\": {e}"),
                })?;
            }
            self.sender = Some(from.to_owned());
        }
        for raw in to {
            raw.parse::<Address>().map_err(|e| Failure::Unsendable {
                message: format!("invalid recipient address \"{raw}\": {e}"),
            })?;
        }
        let utf8 = !from.is_ascii() || to.iter().any(|t| !t.is_ascii());
        if utf8 && !self.offers.smtputf8 {
            return Err(Failure::Unsendable {
                message:
                    "an address has non-ASCII characters and the server does not offer SMTPUTF8"
                        .into(),
            });
        }
        let eight_bit = !message.is_ascii();
        if eight_bit && !self.offers.eightbitmime {
            return Err(Failure::Unsendable {
                message: "the message has 8-bit content and the server does not offer 8BITMIME; encode it (base64/quoted-printable)".into(),
            });
        }

        // The commands, written once into the output buffer: MAIL FROM, each RCPT TO, DATA.
        self.write_commands(from, to, utf8, eight_bit, dsn, envid);
        let commands = Commands {
            from,
            to,
            timeout: self.command_timeout,
        };
        self.replies.clear();
        if self.offers.pipelining {
            let mut broken = self.wire.send_all().await.err();
            if broken.is_none() {
                for _ in 0..self.ends.len() {
                    match self.wire.read_reply().await {
                        Ok(reply) => {
                            let closing = reply.code == 421;
                            self.replies.push(reply);
                            if closing {
                                break;
                            }
                        }
                        Err(e) => {
                            broken = Some(e);
                            break;
                        }
                    }
                }
            }
            match judge(&self.replies, broken.as_ref(), &commands) {
                Verdict::Send => {}
                Verdict::Failed(failure, after) => return Err(self.end(failure, after).await),
                Verdict::Accepted => {
                    // Every reply was read, so DATA's is there: not reached.
                    self.usable = false;
                    return Err(Failure::Temporary {
                        phase: Phase::Data,
                        reply: None,
                        message: "the server did not answer the DATA command".into(),
                    });
                }
            }
        } else {
            let mut start = 0;
            for index in 0..self.ends.len() {
                let end = self.ends[index];
                let broken = match self.wire.send(start..end).await {
                    Ok(()) => match self.wire.read_reply().await {
                        Ok(reply) => {
                            self.replies.push(reply);
                            None
                        }
                        Err(e) => Some(e),
                    },
                    Err(e) => Some(e),
                };
                start = end;
                match judge(&self.replies, broken.as_ref(), &commands) {
                    Verdict::Accepted | Verdict::Send => {}
                    Verdict::Failed(failure, after) => return Err(self.end(failure, after).await),
                }
            }
        }

        // The server waits for the message: the gate, then a look whether the server hung up
        // after its 354 (the gate's durable write gives its close time to arrive). Either way
        // not a byte of the message is sent: nothing of it can arrive, and it can go again.
        if !before_data() {
            self.close_on_purpose();
            return Err(held_back());
        }
        match self.wire.already_said().await {
            Unasked::Nothing => {}
            Unasked::Reply(reply) => {
                self.close_on_failure();
                return Err(Failure::Temporary {
                    phase: Phase::Data,
                    message: if reply.code == 421 {
                        "the server is closing the connection (after DATA, before the message)"
                            .into()
                    } else {
                        "the server spoke out of turn after DATA; the message was not sent".into()
                    },
                    reply: Some(reply),
                });
            }
            Unasked::Broken(broken) => {
                self.close_on_failure();
                return Err(Failure::Temporary {
                    phase: Phase::Data,
                    reply: None,
                    message: format!(
                        "the connection broke after DATA, before the message was sent: {broken}"
                    ),
                });
            }
        }

        self.wire.output.clear();
        wire::put_data(message, &mut self.wire.output);
        if let Err(broken) = self.wire.send_all().await {
            // The final "." was not written completely: the message cannot have been taken.
            self.close_on_failure();
            let message = if broken.is_timeout() || self.probe.timed_out.load(Ordering::Relaxed) {
                format!(
                    "the server accepted no data for {:?} while the message was being sent",
                    self.command_timeout
                )
            } else {
                format!("the connection broke while the message was being sent: {broken}")
            };
            return Err(Failure::Temporary {
                phase: Phase::Message,
                reply: None,
                message,
            });
        }
        // Every byte, the final "." included, is written: from here a break is unknown.
        let reply = match self.wire.read_reply().await {
            Ok(reply) => reply,
            Err(broken) => {
                self.close_on_failure();
                let message = if broken.is_timeout() {
                    format!(
                        "the whole message was sent but no answer came within {:?}",
                        self.command_timeout
                    )
                } else {
                    format!(
                        "the whole message was sent but the connection broke before the server answered: {broken}"
                    )
                };
                return Err(Failure::Unknown { message });
            }
        };
        let phase = Phase::Message;
        match reply.code {
            200..=299 => Ok(reply),
            421 => {
                self.close_on_failure();
                Err(Failure::Temporary {
                    phase,
                    reply: Some(reply),
                    message: "the server is closing the connection and did not accept the message"
                        .into(),
                })
            }
            400..=499 => Err(Failure::Temporary {
                phase,
                reply: Some(reply),
                message: "the server did not accept the message for now".into(),
            }),
            500..=599 => Err(Failure::Permanent {
                phase,
                reply,
                message: "the server refused the message".into(),
            }),
            _ => {
                self.close_on_failure();
                Err(Failure::Unknown {
                    message: format!("unexpected reply to the end of the message: {reply}"),
                })
            }
        }
    }

    /// False once a failure broke the connection (421, drop, timeout) or it was closed to end a
    /// transaction; open a new one.
    pub(crate) fn is_usable(&self) -> bool {
        self.usable
    }

    /// Whether the connection was closed by us to end a transaction undelivered (a refused
    /// copy after a pipelined 354, or a gate that said no): not a failure of the server.
    pub(crate) fn closed_on_purpose(&self) -> bool {
        self.closed_on_purpose
    }

    /// Sends QUIT when the connection is still usable and closes it; errors are ignored.
    pub(crate) async fn quit(mut self) {
        if self.is_usable() {
            self.wire.output.clear();
            self.wire.output.extend_from_slice(b"QUIT\r\n");
            if self.wire.send_all().await.is_ok() {
                let _ = self.wire.read_reply().await;
            }
        }
    }

    /// Writes MAIL FROM, each RCPT TO and DATA into the output buffer, noting where each ends.
    /// The bytes are lettre's (its `Mail`/`Rcpt` commands and parameter encoding) as before.
    fn write_commands(
        &mut self,
        from: &str,
        to: &[String],
        utf8: bool,
        eight_bit: bool,
        dsn: Option<&DsnRequest>,
        envid: &str,
    ) {
        use std::io::Write as _;
        let out = &mut self.wire.output;
        out.clear();
        self.ends.clear();
        out.extend_from_slice(b"MAIL FROM:<");
        out.extend_from_slice(from.as_bytes());
        out.push(b'>');
        if utf8 {
            let _ = write!(out, " {}", MailParameter::SmtpUtfEight);
        }
        if eight_bit {
            let _ = write!(
                out,
                " {}",
                MailParameter::Body(MailBodyParameter::EightBitMime)
            );
        }
        if let Some(dsn) = dsn {
            for parameter in dsn.mail_parameters(envid) {
                let _ = write!(out, " {parameter}");
            }
        }
        out.extend_from_slice(b"\r\n");
        self.ends.push(out.len());
        for raw in to {
            out.extend_from_slice(b"RCPT TO:<");
            out.extend_from_slice(raw.as_bytes());
            out.push(b'>');
            if let Some(dsn) = dsn {
                for parameter in dsn.rcpt_parameters(raw) {
                    let _ = write!(out, " {parameter}");
                }
            }
            out.extend_from_slice(b"\r\n");
            self.ends.push(out.len());
        }
        out.extend_from_slice(b"DATA\r\n");
        self.ends.push(out.len());
    }

    /// Ends a failed transaction as `after` says, and gives the failure back.
    async fn end(&mut self, failure: Failure, after: After) -> Failure {
        match after {
            After::Reset => self.reset().await,
            After::Close => self.close_on_purpose(),
            After::Gone => self.close_on_failure(),
        }
        failure
    }

    /// Closes the connection to end a transaction the server would otherwise complete.
    fn close_on_purpose(&mut self) {
        self.close_on_failure();
        self.closed_on_purpose = true;
    }

    fn close_on_failure(&mut self) {
        self.usable = false;
        self.wire.close();
    }

    async fn reset(&mut self) {
        self.wire.output.clear();
        self.wire.output.extend_from_slice(b"RSET\r\n");
        let done = match self.wire.send_all().await {
            Ok(()) => self.wire.read_reply().await.ok(),
            Err(_) => None,
        };
        if !done.is_some_and(|reply| (200..300).contains(&reply.code)) {
            self.close_on_failure();
        }
    }
}

/// The failure of a letter held back at the gate.
fn held_back() -> Failure {
    Failure::Temporary {
        phase: Phase::Data,
        reply: None,
        message: "held back before the data: the message was not sent".into(),
    }
}

// ---------------------------------------------------------------- opening

async fn connect_tcp(settings: &Settings) -> Result<TcpStream, Failure> {
    crate::net::connect(&settings.host, settings.port, settings.connect_timeout)
        .await
        .map_err(Failure::Connect)
}

fn client_id(settings: &Settings) -> ClientId {
    match settings.hello_name.as_deref() {
        None | Some("") => ClientId::default(),
        Some(name) => match name.parse::<IpAddr>() {
            Ok(IpAddr::V4(ip)) => ClientId::Ipv4(ip),
            Ok(IpAddr::V6(ip)) => ClientId::Ipv6(ip),
            Err(_) => ClientId::Domain(name.to_owned()),
        },
    }
}

fn greeting_failure(error: &SmtpError, settings: &Settings) -> Failure {
    let phase = Phase::Greeting;
    if let Some(reply) = reply_of(error) {
        let message = "the server refused the session".to_owned();
        return if reply.code < 500 {
            Failure::Temporary {
                phase,
                reply: Some(reply),
                message,
            }
        } else {
            Failure::Permanent {
                phase,
                reply,
                message,
            }
        };
    }
    let hint = if settings.port == 465 && settings.security != Security::Tls {
        " (port 465 normally needs security Tls)"
    } else {
        ""
    };
    let message = if error.is_timeout() {
        format!(
            "the server sent no greeting or EHLO answer within {:?}{hint}",
            settings.command_timeout
        )
    } else {
        format!(
            "the connection broke before the session started: {}{hint}",
            cause(error)
        )
    };
    Failure::Temporary {
        phase,
        reply: None,
        message,
    }
}

async fn authenticate(
    smtp: &mut AsyncSmtpConnection,
    login: &Login,
    safe_channel: bool,
    settings: &Settings,
) -> Result<(), Failure> {
    if !safe_channel {
        return Err(Failure::Login {
            reply: None,
            message: "refusing to send the login over an unencrypted connection to another machine; use security StartTls or Tls".into(),
        });
    }
    let wanted: Vec<SmtpMechanism> = if login.mechanisms.is_empty() {
        vec![SmtpMechanism::Plain, SmtpMechanism::Login]
    } else {
        login.mechanisms.iter().map(|m| m.to_lettre()).collect()
    };
    let info = smtp.server_info();
    let Some(chosen) = info.get_auth_mechanism(&wanted) else {
        let offered: Vec<String> = [
            SmtpMechanism::Plain,
            SmtpMechanism::Login,
            SmtpMechanism::Xoauth2,
        ]
        .into_iter()
        .filter(|m| info.supports_auth_mechanism(*m))
        .map(|m| m.to_string())
        .collect();
        let wanted: Vec<String> = wanted.iter().map(|m| m.to_string()).collect();
        let offered = if offered.is_empty() {
            "none of PLAIN, LOGIN, XOAUTH2 (is AUTH only offered after TLS?)".to_owned()
        } else {
            offered.join(", ")
        };
        return Err(Failure::Login {
            reply: None,
            message: format!(
                "no usable login mechanism: configured {}, the server offers {offered}",
                wanted.join(", ")
            ),
        });
    };
    let credentials = Credentials::new(login.user.clone(), login.secret.clone());
    let error = match smtp.auth(&wanted, &credentials).await {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    let redact = |text: String| redact_secret(text, &login.user, &login.secret);
    if let Some(mut reply) = reply_of(&error) {
        reply.text = redact(reply.text);
        return Err(Failure::Login {
            reply: Some(reply),
            message: format!(
                "the server refused the login of user \"{}\" ({chosen})",
                login.user
            ),
        });
    }
    if error.is_timeout() {
        return Err(Failure::Temporary {
            phase: Phase::Login,
            reply: None,
            message: format!(
                "no answer during login within {:?}",
                settings.command_timeout
            ),
        });
    }
    Err(Failure::Login {
        reply: None,
        message: redact(format!(
            "login of user \"{}\" ({chosen}) failed: {}",
            login.user,
            cause(&error)
        )),
    })
}

/// Where a refused certificate can be trusted: the words of a TLS refusal.
const TRUST_HINTS: trust::Hints = trust::Hints {
    section: "[transport.smtp]",
    server: "relay",
    shows_certificate: Some("rundbrev check-smtp"),
};

/// The TLS handshake on `socket` for `settings.host`, with the certificate checked as
/// `settings.trust` says.
async fn handshake(
    socket: Socket,
    (config, seen): &(Arc<rustls::ClientConfig>, trust::Seen),
    settings: &Settings,
) -> Result<Tls, Failure> {
    let name = rustls::pki_types::ServerName::try_from(settings.host.clone()).map_err(|_| {
        Failure::Tls(format!(
            "\"{}\" is not a host name or IP address that TLS can check",
            settings.host
        ))
    })?;
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(config));
    match connector.connect(name, socket).await {
        Ok(stream) => Ok(Tls(Box::new(stream))),
        Err(e) => Err(Failure::Tls(describe_tls_error(&e, seen, settings))),
    }
}

fn describe_tls_error(error: &io::Error, seen: &trust::Seen, settings: &Settings) -> String {
    if error.kind() == io::ErrorKind::TimedOut {
        return format!(
            "the TLS handshake did not finish within {:?}",
            settings.command_timeout
        );
    }
    trust::describe_handshake(
        error,
        seen.certificate().as_ref(),
        &settings.host,
        &settings.trust,
        &TRUST_HINTS,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn login_debug_hides_secret() {
        let login = Login {
            user: "u".into(),
            secret: "hunter2-æøå".into(),
            mechanisms: vec![],
        };
        let text = format!("{login:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("[redacted]"));
    }

    #[test]
    fn multiline_reply_is_joined() {
        let wire::Parsed::Reply(reply, _) =
            wire::parse_reply(b"250-2.0.0 first\r\n250-2.0.0 second\r\n250 2.0.0 third\r\n")
        else {
            panic!("not a reply");
        };
        assert_eq!(reply.to_string(), "250 2.0.0 first second third");
    }
}
