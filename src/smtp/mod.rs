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

pub(crate) mod dsn;
mod reply;
mod socket;

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use lettre::transport::smtp::authentication::{Credentials, Mechanism as SmtpMechanism};
use lettre::transport::smtp::client::AsyncSmtpConnection;
use lettre::transport::smtp::commands::{Data, Ehlo, Mail, Rcpt, Rset, Starttls};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::transport::smtp::response::Response;
use lettre::transport::smtp::Error as SmtpError;
use lettre::Address;
use tokio::net::TcpStream;

mod trust;
pub(crate) use trust::{CertificateInfo, Fingerprint, Trust};

use self::dsn::{DsnRequest, Extensions};
use self::reply::*;
pub(crate) use self::reply::{Failure, Phase, Reply};
use self::socket::*;

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Security {
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
    smtp: AsyncSmtpConnection,
    probe: Arc<Probe>,
    usable: bool,
    command_timeout: Duration,
    /// The keywords of the server's last EHLO reply (lettre keeps only those it knows).
    extensions: Extensions,
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

        let smtp = match (settings.security, tls) {
            (Security::Tls, Some(tls)) => {
                let encrypted = handshake(socket, &tls, settings).await?;
                AsyncSmtpConnection::connect_with_transport(Box::new(encrypted), &hello)
                    .await
                    .map_err(|e| greeting_failure(&e, settings))?
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
                let resumed = Greeted::new(encrypted);
                AsyncSmtpConnection::connect_with_transport(Box::new(resumed), &hello)
                    .await
                    .map_err(|e| greeting_failure(&e, settings))?
            }
            _ => AsyncSmtpConnection::connect_with_transport(Box::new(socket), &hello)
                .await
                .map_err(|e| greeting_failure(&e, settings))?,
        };
        let mut smtp = smtp;

        // lettre's own EHLO reply is not kept whole: ask again (before the login, which a new
        // EHLO could undo) to learn every keyword, DSN among them.
        let extensions = match smtp.command(Ehlo::new(hello.clone())).await {
            Ok(reply) => Extensions::from_ehlo_reply(reply.message()),
            Err(e) => return Err(greeting_failure(&e, settings)),
        };

        if let Some(login) = &settings.login {
            let encrypted = settings.security != Security::None;
            authenticate(&mut smtp, login, encrypted || loopback, settings).await?;
        }

        Ok(Connection {
            smtp,
            probe,
            usable: true,
            command_timeout: settings.command_timeout,
            extensions,
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
    /// `before_data` is asked once every recipient is accepted and before the DATA command is
    /// written; when it says no, the transaction is reset and nothing of the message goes out
    /// (a temporary failure at DATA, without a reply).
    pub(crate) async fn send(
        &mut self,
        from: &str,
        to: &[String],
        message: &[u8],
        dsn: Option<&DsnRequest>,
        envid: &str,
        before_data: &mut dyn FnMut() -> bool,
    ) -> Result<Reply, Failure> {
        let dsn = dsn.filter(|_| self.extensions.offers("DSN"));
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
        if let Some(dsn) = dsn {
            parameters.extend(dsn.mail_parameters(envid));
        }

        let sender_text = format!("sender <{from}>");
        self.step(Phase::Mail, Mail::new(sender, parameters), &sender_text)
            .await?;
        for (address, raw) in recipients.into_iter().zip(to) {
            let what = format!("recipient <{raw}>");
            let asked = dsn.map(|d| d.rcpt_parameters(raw)).unwrap_or_default();
            self.step(Phase::Rcpt, Rcpt::new(address, asked), &what)
                .await?;
        }
        if !before_data() {
            self.reset().await;
            return Err(Failure::Temporary {
                phase: Phase::Data,
                reply: None,
                message: "held back before the data: the message was not sent".into(),
            });
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
    pub(crate) fn is_usable(&self) -> bool {
        self.usable && !self.smtp.has_broken()
    }

    /// Sends QUIT when the connection is still usable and closes it; errors are ignored.
    pub(crate) async fn quit(mut self) {
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
    match find_rustls_error(error) {
        Some(tls) => trust::describe(
            tls,
            seen.certificate().as_ref(),
            &settings.host,
            &settings.trust,
        ),
        None => format!("the TLS handshake failed: {error}"),
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
