//! SMTP client layer: opens one connection to the configured mail server
//! (TCP with `TCP_NODELAY`, then implicit TLS, STARTTLS or plaintext, EHLO
//! and an optional login), sends messages over it one envelope at a time with
//! lettre's low-level commands, and turns every outcome into a [`Reply`] or a
//! [`Failure`] that says plainly whether nothing was delivered (safe to
//! retry), the message was refused, or the outcome is unknown because the
//! connection broke after the message's final "." was sent.
//!
//! It must not: fall back to plaintext when TLS was asked for, skip
//! certificate verification, send a login secret over an unencrypted
//! connection to another machine, put the secret into any error, `Display`
//! or `Debug` output, panic on anything the network sends, or retry on its
//! own (retry and ledger decisions belong to the caller).

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism as SmtpMechanism};
#[allow(deprecated)] // the only public way to run lettre's TLS upgrade on a stream of our own
use lettre::transport::smtp::client::AsyncNetworkStream;
use lettre::transport::smtp::client::{
    AsyncSmtpConnection, AsyncTokioStream, Certificate, TlsParameters,
};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::Error as SmtpError;
use lettre::Address;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Plain connection upgraded with STARTTLS (usually port 587 or 25).
    /// Fails if the server does not offer STARTTLS.
    StartTls,
    /// Implicit TLS from the first byte (usually port 465).
    Tls,
    /// No encryption at all.
    None,
}

/// SASL mechanism used to log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
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
pub struct Login {
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
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// Extra trusted CA certificate(s), PEM. The system roots stay trusted.
    pub ca_file: Option<PathBuf>,
    /// EHLO name; `None` uses lettre's default (this machine's hostname).
    pub hello_name: Option<String>,
    pub connect_timeout: Duration,
    /// Longest time to wait for the server to accept data or to answer.
    pub command_timeout: Duration,
    pub login: Option<Login>,
}

/// An SMTP reply: code and text (all lines of a multi-line reply joined by spaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.text.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{} {}", self.code, self.text)
        }
    }
}

/// Where in the session something went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Server greeting and EHLO.
    Greeting,
    Login,
    Mail,
    Rcpt,
    Data,
    /// Sending the message text and waiting for the reply to its final ".".
    Message,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Greeting => "greeting/EHLO",
            Phase::Login => "login",
            Phase::Mail => "MAIL FROM",
            Phase::Rcpt => "RCPT TO",
            Phase::Data => "DATA",
            Phase::Message => "message transfer",
        })
    }
}

/// Why a connection could not be opened or a message was not (surely) sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Refused, unreachable, name not found or connect timeout.
    Connect(String),
    /// TLS handshake or certificate problem, or STARTTLS missing/refused.
    Tls(String),
    /// Login refused or no usable mechanism. Never contains the secret.
    Login {
        reply: Option<Reply>,
        message: String,
    },
    /// 4xx reply, timeout or broken connection before the message's final "."
    /// was written: nothing was delivered, safe to retry.
    Temporary {
        phase: Phase,
        reply: Option<Reply>,
        message: String,
    },
    /// 5xx reply: refused for good, do not retry.
    Permanent {
        phase: Phase,
        reply: Reply,
        message: String,
    },
    /// The connection broke or timed out after the final "." was sent and
    /// before the reply: the message may have been delivered.
    Unknown { message: String },
    /// Nothing was sent because the message cannot go as given (bad address,
    /// no recipients, 8-bit content or UTF-8 address the server cannot take).
    Unsendable { message: String },
}

impl Failure {
    /// The server's reply behind this failure, if there was one.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            Failure::Login { reply, .. } | Failure::Temporary { reply, .. } => reply.as_ref(),
            Failure::Permanent { reply, .. } => Some(reply),
            _ => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect(m) => write!(f, "cannot connect to the mail server: {m}"),
            Failure::Tls(m) => write!(f, "TLS problem: {m}"),
            Failure::Login { reply, message } => {
                f.write_str(message)?;
                if let Some(r) = reply {
                    write!(f, " (server said: {r})")?;
                }
                Ok(())
            }
            Failure::Temporary {
                phase,
                reply,
                message,
            } => {
                write!(f, "temporary failure at {phase}, not delivered: {message}")?;
                if let Some(r) = reply {
                    write!(f, " (server said: {r})")?;
                }
                Ok(())
            }
            Failure::Permanent {
                phase,
                reply,
                message,
            } => write!(f, "refused at {phase}: {message} (server said: {reply})"),
            Failure::Unknown { message } => {
                write!(
                    f,
                    "outcome unknown, the message may have been delivered: {message}"
                )
            }
            Failure::Unsendable { message } => write!(f, "not sent: {message}"),
        }
    }
}

impl StdError for Failure {}

/// Removes the secret from text a server sent back: as written, and as the base64 payloads of
/// AUTH PLAIN and AUTH LOGIN carry it.
fn redact_secret(text: String, user: &str, secret: &str) -> String {
    use base64::Engine as _;
    if secret.is_empty() {
        return text;
    }
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let mut plain = Vec::new();
    plain.push(0u8);
    plain.extend_from_slice(user.as_bytes());
    plain.push(0);
    plain.extend_from_slice(secret.as_bytes());
    let forms = [secret.to_string(), b64(secret.as_bytes()), b64(&plain)];
    let mut text = text;
    for form in forms {
        text = text.replace(&form, "[redacted]");
    }
    text
}

/// One open SMTP session. Not shared between tasks.
pub struct Connection {
    smtp: AsyncSmtpConnection,
    probe: Arc<Probe>,
    usable: bool,
    command_timeout: Duration,
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
    pub async fn open(settings: &Settings) -> Result<Connection, Failure> {
        let tls = match settings.security {
            Security::None => None,
            Security::StartTls | Security::Tls => Some(tls_parameters(settings)?),
        };
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

        let stream: Box<dyn AsyncTokioStream> = match (&settings.security, &tls) {
            (Security::Tls, Some(params)) => {
                #[allow(deprecated)]
                let mut net = AsyncNetworkStream::use_existing_tokio1(Box::new(socket));
                #[allow(deprecated)]
                let upgraded = net.upgrade_tls(params.clone()).await;
                upgraded.map_err(|e| Failure::Tls(describe_tls_error(&e, settings)))?;
                Box::new(Encrypted(net))
            }
            _ => Box::new(socket),
        };

        let mut smtp = AsyncSmtpConnection::connect_with_transport(stream, &hello)
            .await
            .map_err(|e| greeting_failure(&e, settings))?;

        if let (Security::StartTls, Some(params)) = (&settings.security, tls) {
            if !smtp.server_info().supports_feature(Extension::StartTls) {
                let _ = smtp.quit().await;
                return Err(Failure::Tls("the server does not offer STARTTLS".into()));
            }
            if let Err(e) = smtp.starttls(params, &hello).await {
                return Err(Failure::Tls(match reply_of(&e) {
                    Some(r) => format!("the server refused STARTTLS ({r})"),
                    None => describe_tls_error(&e, settings),
                }));
            }
        }

        if let Some(login) = &settings.login {
            let encrypted = settings.security != Security::None;
            authenticate(&mut smtp, login, encrypted || loopback, settings).await?;
        }

        Ok(Connection {
            smtp,
            probe,
            usable: true,
            command_timeout: settings.command_timeout,
        })
    }

    /// Sends one message: MAIL FROM, RCPT TO for each address, DATA, the
    /// message text. `message` is the complete RFC 5322 message with CRLF
    /// line ends; dot-stuffing is done here. `from` may be empty (null sender).
    pub async fn send(
        &mut self,
        from: &str,
        to: &[String],
        message: &[u8],
    ) -> Result<Reply, Failure> {
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
        let sender = if from.is_empty() {
            None
        } else {
            Some(from.parse::<Address>().map_err(|e| Failure::Unsendable {
                message: format!("invalid sender address \"{from}\": {e}"),
            })?)
        };
        let mut recipients = Vec::with_capacity(to.len());
        for raw in to {
            let address = raw.parse::<Address>().map_err(|e| Failure::Unsendable {
                message: format!("invalid recipient address \"{raw}\": {e}"),
            })?;
            recipients.push(address);
        }

        let info = self.smtp.server_info();
        let mut parameters = Vec::new();
        if !from.is_ascii() || to.iter().any(|t| !t.is_ascii()) {
            if !info.supports_feature(Extension::SmtpUtfEight) {
                return Err(Failure::Unsendable {
                    message:
                        "an address has non-ASCII characters and the server does not offer SMTPUTF8"
                            .into(),
                });
            }
            parameters.push(MailParameter::SmtpUtfEight);
        }
        if !message.is_ascii() {
            if !info.supports_feature(Extension::EightBitMime) {
                return Err(Failure::Unsendable {
                    message: "the message has 8-bit content and the server does not offer 8BITMIME; encode it (base64/quoted-printable)".into(),
                });
            }
            parameters.push(MailParameter::Body(MailBodyParameter::EightBitMime));
        }

        let sender_text = format!("sender <{from}>");
        self.step(Phase::Mail, Mail::new(sender, parameters), &sender_text)
            .await?;
        for (address, raw) in recipients.into_iter().zip(to) {
            let what = format!("recipient <{raw}>");
            self.step(Phase::Rcpt, Rcpt::new(address, Vec::new()), &what)
                .await?;
        }
        let data = self.step(Phase::Data, Data, "DATA command").await?;
        if u16::from(data.code()) != 354 {
            self.usable = false;
            return Err(Failure::Temporary {
                phase: Phase::Data,
                reply: Some(reply_from_response(&data)),
                message: "the server answered DATA with something other than 354".into(),
            });
        }

        self.probe.watch();
        // lettre ends the data with "\r\n.\r\n": its CRLF is the message's last line end, so
        // that one is taken off here and the server receives exactly the composed bytes.
        let result = self
            .smtp
            .message(message.strip_suffix(b"\r\n").unwrap_or(message))
            .await;
        let reply_awaited = self.probe.unwatch();
        match result {
            Ok(response) => {
                let reply = reply_from_response(&response);
                if (200..300).contains(&reply.code) {
                    Ok(reply)
                } else {
                    self.usable = false;
                    Err(Failure::Unknown {
                        message: format!("unexpected reply to the end of the message: {reply}"),
                    })
                }
            }
            Err(e) => Err(self.message_failure(&e, reply_awaited)),
        }
    }

    /// False once a failure broke the connection (421, drop, timeout); open a new one.
    pub fn is_usable(&self) -> bool {
        self.usable && !self.smtp.has_broken()
    }

    /// Sends QUIT when the connection is still usable and closes it; errors are ignored.
    pub async fn quit(mut self) {
        if self.is_usable() {
            let _ = self.smtp.quit().await;
        }
    }

    /// Sends one envelope command and classifies a refusal or a broken connection.
    async fn step<C: fmt::Display>(
        &mut self,
        phase: Phase,
        command: C,
        what: &str,
    ) -> Result<Response, Failure> {
        let error = match self.smtp.command(command).await {
            Ok(response) => return Ok(response),
            Err(e) => e,
        };
        match reply_of(&error) {
            Some(reply) if reply.code == 421 => {
                self.usable = false;
                Err(Failure::Temporary {
                    phase,
                    reply: Some(reply),
                    message: format!("the server is closing the connection (at the {what})"),
                })
            }
            Some(reply) => {
                self.reset().await;
                let message = format!("the server refused the {what}");
                if reply.code < 500 {
                    Err(Failure::Temporary {
                        phase,
                        reply: Some(reply),
                        message,
                    })
                } else {
                    Err(Failure::Permanent {
                        phase,
                        reply,
                        message,
                    })
                }
            }
            None => {
                self.usable = false;
                let message = if self.timed_out(&error) {
                    format!(
                        "no answer within {:?} at {phase} ({what})",
                        self.command_timeout
                    )
                } else {
                    format!("the connection broke at the {what}: {}", cause(&error))
                };
                Err(Failure::Temporary {
                    phase,
                    reply: None,
                    message,
                })
            }
        }
    }

    fn message_failure(&mut self, error: &SmtpError, reply_awaited: bool) -> Failure {
        let phase = Phase::Message;
        match reply_of(error) {
            Some(reply) if reply.code == 421 => {
                self.usable = false;
                Failure::Temporary {
                    phase,
                    reply: Some(reply),
                    message: "the server is closing the connection and did not accept the message"
                        .into(),
                }
            }
            Some(reply) if reply.code < 500 => Failure::Temporary {
                phase,
                reply: Some(reply),
                message: "the server did not accept the message for now".into(),
            },
            Some(reply) => Failure::Permanent {
                phase,
                reply,
                message: "the server refused the message".into(),
            },
            None => {
                self.usable = false;
                let timed_out = self.timed_out(error);
                match (reply_awaited, timed_out) {
                    (true, true) => Failure::Unknown {
                        message: format!(
                            "the whole message was sent but no answer came within {:?}",
                            self.command_timeout
                        ),
                    },
                    (true, false) => Failure::Unknown {
                        message: format!(
                            "the whole message was sent but the connection broke before the server answered: {}",
                            cause(error)
                        ),
                    },
                    (false, true) => Failure::Temporary {
                        phase,
                        reply: None,
                        message: format!(
                            "the server accepted no data for {:?} while the message was being sent",
                            self.command_timeout
                        ),
                    },
                    (false, false) => Failure::Temporary {
                        phase,
                        reply: None,
                        message: format!(
                            "the connection broke while the message was being sent: {}",
                            cause(error)
                        ),
                    },
                }
            }
        }
    }

    async fn reset(&mut self) {
        if self.smtp.command(Rset).await.is_err() {
            self.usable = false;
        }
    }

    fn timed_out(&self, error: &SmtpError) -> bool {
        error.is_timeout() || self.probe.timed_out.load(Ordering::Relaxed)
    }
}

// ---------------------------------------------------------------- opening

async fn connect_tcp(settings: &Settings) -> Result<TcpStream, Failure> {
    let target = if settings.host.contains(':') {
        format!("[{}]:{}", settings.host, settings.port)
    } else {
        format!("{}:{}", settings.host, settings.port)
    };
    let connecting = TcpStream::connect((settings.host.as_str(), settings.port));
    match tokio::time::timeout(settings.connect_timeout, connecting).await {
        Ok(Ok(tcp)) => Ok(tcp),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Err(Failure::Connect(
            format!("{target} refused the connection (nothing listens there)"),
        )),
        Ok(Err(e)) => Err(Failure::Connect(format!("{target}: {e}"))),
        Err(_) => Err(Failure::Connect(format!(
            "{target} did not answer within {:?}",
            settings.connect_timeout
        ))),
    }
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

/// TLS parameters for `settings.host`: system roots plus the certificates in `ca_file`.
fn tls_parameters(settings: &Settings) -> Result<TlsParameters, Failure> {
    let mut builder = TlsParameters::builder(settings.host.clone());
    if let Some(path) = &settings.ca_file {
        let shown = path.display();
        let pem = std::fs::read(path)
            .map_err(|e| Failure::Tls(format!("cannot read ca_file {shown}: {e}")))?;
        let marker = b"-----BEGIN CERTIFICATE-----";
        if !pem.windows(marker.len()).any(|w| w == marker) {
            return Err(Failure::Tls(format!(
                "ca_file {shown} holds no PEM certificate (no \"-----BEGIN CERTIFICATE-----\" line)"
            )));
        }
        let certificate = Certificate::from_pem(&pem).map_err(|e| {
            Failure::Tls(format!(
                "ca_file {shown} is not a valid PEM file: {}",
                cause(&e)
            ))
        })?;
        builder = builder.add_root_certificate(certificate);
    }
    builder.build_rustls().map_err(|e| {
        Failure::Tls(format!(
            "cannot set up TLS (is ca_file a CA certificate?): {}",
            cause(&e)
        ))
    })
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

// ---------------------------------------------------------------- errors and replies

/// The server reply inside a lettre error, if the error came from a 4xx/5xx reply.
fn reply_of(error: &SmtpError) -> Option<Reply> {
    let code = error.status()?;
    let text = error.source().map(|s| s.to_string()).unwrap_or_default();
    Some(Reply {
        code: u16::from(code),
        text,
    })
}

/// Joins the lines of a reply with spaces; an enhanced status code repeated
/// at the start of continuation lines is kept only once.
fn reply_from_response(response: &Response) -> Reply {
    let mut lines = response.message();
    let mut text = lines.next().unwrap_or_default().to_owned();
    let enhanced = text
        .split(' ')
        .next()
        .filter(|w| {
            w.split('.').count() == 3
                && w.split('.')
                    .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(str::to_owned);
    for line in lines {
        let line = match &enhanced {
            Some(code) => line
                .strip_prefix(code.as_str())
                .filter(|rest| rest.starts_with(' '))
                .map_or(line, str::trim_start),
            None => line,
        };
        if !text.is_empty() && !line.is_empty() {
            text.push(' ');
        }
        text.push_str(line);
    }
    Reply {
        code: u16::from(response.code()),
        text,
    }
}

/// The innermost cause of a lettre error, in words.
fn cause(error: &SmtpError) -> String {
    let mut last: &(dyn StdError + 'static) = error;
    while let Some(next) = last.source() {
        last = next;
    }
    let text = last.to_string();
    if text == "incomplete response" {
        // lettre's words for end-of-stream while waiting for a reply
        "the server closed the connection".to_owned()
    } else {
        text
    }
}

fn find_rustls_error<'a>(error: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut current = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        // io::Error::source() skips the wrapped error itself; look inside.
        if let Some(found) = e
            .downcast_ref::<io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(found);
        }
        current = e.source();
    }
    None
}

fn describe_tls_error(error: &SmtpError, settings: &Settings) -> String {
    use rustls::CertificateError as C;
    let host = &settings.host;
    let trusted = match &settings.ca_file {
        Some(path) => format!("by the system or by ca_file {}", path.display()),
        None => "by the system; set ca_file to the PEM file of the CA that issued it".to_owned(),
    };
    let Some(tls) = find_rustls_error(error) else {
        return if error.is_timeout() {
            format!(
                "the TLS handshake did not finish within {:?}",
                settings.command_timeout
            )
        } else {
            format!("the TLS handshake failed: {}", cause(error))
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(problem) => match problem {
            C::UnknownIssuer => format!(
                "the server's certificate is not trusted (self-signed or issued by a CA not trusted {trusted})"
            ),
            C::NotValidForName | C::NotValidForNameContext { .. } => format!(
                "the server's certificate is not valid for the name \"{host}\"; use the host name the certificate was made for"
            ),
            C::Expired | C::ExpiredContext { .. } => {
                "the server's certificate has expired".to_owned()
            }
            C::NotValidYet | C::NotValidYetContext { .. } => {
                "the server's certificate is not valid yet (check the clock)".to_owned()
            }
            C::Revoked => "the server's certificate has been revoked".to_owned(),
            other => format!("the server's certificate was rejected ({other:?})"),
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => format!(
            "the server did not answer with TLS (for a plain or STARTTLS port use security StartTls): {tls}"
        ),
        rustls::Error::AlertReceived(alert) => {
            format!("the server aborted the TLS handshake ({alert:?})")
        }
        rustls::Error::PeerIncompatible(why) => {
            format!("the server has no TLS version or cipher in common with us ({why:?})")
        }
        other => format!("the TLS handshake failed: {other}"),
    }
}

// ---------------------------------------------------------------- socket wrappers

/// Shared between [`Connection`] and its [`Socket`]: tells whether lettre
/// started to read the reply to the message (so every byte of it, final "."
/// included, was written) and whether a timeout fired.
#[derive(Debug, Default)]
struct Probe {
    watching: AtomicBool,
    reply_awaited: AtomicBool,
    timed_out: AtomicBool,
}

impl Probe {
    fn watch(&self) {
        self.reply_awaited.store(false, Ordering::Relaxed);
        self.timed_out.store(false, Ordering::Relaxed);
        self.watching.store(true, Ordering::Relaxed);
    }

    fn unwatch(&self) -> bool {
        self.watching.store(false, Ordering::Relaxed);
        self.reply_awaited.load(Ordering::Relaxed)
    }
}

/// The TCP socket handed to lettre: fails a read or write that makes no
/// progress for `limit` (the command timeout) and reports reads to the probe.
struct Socket {
    tcp: TcpStream,
    limit: Duration,
    read_timer: Option<Pin<Box<Sleep>>>,
    write_timer: Option<Pin<Box<Sleep>>>,
    probe: Arc<Probe>,
}

impl Socket {
    fn new(tcp: TcpStream, limit: Duration, probe: Arc<Probe>) -> Self {
        Socket {
            tcp,
            limit,
            read_timer: None,
            write_timer: None,
            probe,
        }
    }
}

/// Turns a pending I/O operation into a `TimedOut` error once its timer runs out.
fn wait_or_expire<T>(
    timer: &mut Option<Pin<Box<Sleep>>>,
    limit: Duration,
    probe: &Probe,
    cx: &mut Context<'_>,
) -> Poll<io::Result<T>> {
    let sleep = timer.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
    match sleep.as_mut().poll(cx) {
        Poll::Pending => Poll::Pending,
        Poll::Ready(()) => {
            *timer = None;
            probe.timed_out.store(true, Ordering::Relaxed);
            Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the server did not respond within {limit:?}"),
            )))
        }
    }
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("tcp", &self.tcp)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.probe.watching.load(Ordering::Relaxed) {
            this.probe.reply_awaited.store(true, Ordering::Relaxed);
        }
        match Pin::new(&mut this.tcp).poll_read(cx, buf) {
            Poll::Ready(result) => {
                this.read_timer = None;
                Poll::Ready(result)
            }
            Poll::Pending => wait_or_expire(&mut this.read_timer, this.limit, &this.probe, cx),
        }
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.tcp).poll_write(cx, buf) {
            Poll::Ready(result) => {
                this.write_timer = None;
                Poll::Ready(result)
            }
            Poll::Pending => wait_or_expire(&mut this.write_timer, this.limit, &this.probe, cx),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

impl AsyncTokioStream for Socket {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.tcp.peer_addr()
    }
}

/// A stream that lettre already wrapped in TLS (implicit TLS), presented
/// again as a plain tokio stream so lettre can run the SMTP session on it.
#[allow(deprecated)]
#[derive(Debug)]
struct Encrypted(AsyncNetworkStream);

impl AsyncRead for Encrypted {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let space = buf.initialize_unfilled();
        match futures_io::AsyncRead::poll_read(Pin::new(&mut this.0), cx, space) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Encrypted {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        futures_io::AsyncWrite::poll_write(Pin::new(&mut self.get_mut().0), cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_flush(Pin::new(&mut self.get_mut().0), cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        futures_io::AsyncWrite::poll_close(Pin::new(&mut self.get_mut().0), cx)
    }
}

impl AsyncTokioStream for Encrypted {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        #[allow(deprecated)]
        self.0.peer_addr()
    }
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
        let response: Response = "250-2.0.0 first\r\n250-2.0.0 second\r\n250 2.0.0 third\r\n"
            .parse()
            .expect("valid reply");
        let reply = reply_from_response(&response);
        assert_eq!(reply.to_string(), "250 2.0.0 first second third");
    }
}
