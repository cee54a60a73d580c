//! IMAP client layer, read-only: opens one session to a mailbox (TCP, then STARTTLS or implicit
//! TLS with rustls, the certificate checked by `trust` as SMTP's is: system roots, `ca_file`,
//! pins; and a login), opens folders with EXAMINE, lists the messages after a UID and fetches one
//! message at a time with `BODY.PEEK[]`, and turns every problem into a [`Failure`] in plain
//! words.
//!
//! It must not: change the mailbox in any way (no SELECT, STORE, COPY, MOVE, EXPUNGE, APPEND or
//! DELETE: EXAMINE opens a folder read-only and PEEK leaves the \Seen flag alone), fall back to
//! plaintext, skip certificate verification, put the secret into any error, `Display` or `Debug`
//! output, or panic on anything the network sends. What to do with the messages is the caller's.

use std::fmt;
use std::future::Future;
use std::io;
use std::time::Duration;

use async_imap::error::Error as ImapError;
use async_imap::{Client, Session};
use futures_util::TryStreamExt as _;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::trust::{self, Hints, Trust};

/// How the connection is protected. There is no plaintext: a login never goes unencrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Security {
    /// Plain connection upgraded with STARTTLS (usually port 143).
    StartTls,
    /// TLS from the first byte (usually port 993).
    Tls,
}

/// Everything needed to open a session. `Debug` never shows the secret.
#[derive(Clone)]
pub(crate) struct Settings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// Which server certificates are trusted (`ca_file`, pins).
    pub trust: Trust,
    pub user: String,
    pub secret: String,
    pub connect_timeout: Duration,
    /// Longest wait for any one answer of the server.
    pub command_timeout: Duration,
}

impl fmt::Debug for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("trust", &self.trust)
            .field("user", &self.user)
            .field("secret", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// Why the mailbox could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// Refused, unreachable, name not found or connect timeout.
    Connect(String),
    /// TLS handshake or certificate problem, or STARTTLS missing or refused.
    Tls(String),
    /// The login was refused. Never contains the secret.
    Login(String),
    /// A folder cannot be opened (it does not exist, or the server refuses it).
    Folder { folder: String, message: String },
    /// The connection broke, timed out, or the server answered something unreadable.
    Broken(String),
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Connect(m) => write!(f, "cannot connect to the IMAP server: {m}"),
            Failure::Tls(m) => write!(f, "TLS problem with the IMAP server: {m}"),
            Failure::Login(m) | Failure::Broken(m) => f.write_str(m),
            Failure::Folder { folder, message } => {
                write!(f, "cannot open the folder \"{folder}\": {message}")
            }
        }
    }
}

impl std::error::Error for Failure {}

/// A folder opened read-only: what EXAMINE said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Folder {
    /// Changes when the server renumbers the folder; the UIDs seen before then mean nothing.
    pub uid_validity: u32,
    /// How many messages the folder holds.
    pub exists: u32,
}

/// A message in the open folder: its UID and its size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listed {
    pub uid: u32,
    pub size: u64,
}

/// One logged-in session.
pub(crate) struct Mailbox {
    session: Session<TlsStream<TcpStream>>,
    command_timeout: Duration,
    secret: String,
}

impl fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailbox").finish_non_exhaustive()
    }
}

impl Mailbox {
    /// Connects, sets up TLS as configured (verifying the certificate), and logs in.
    pub(crate) async fn open(settings: &Settings) -> Result<Mailbox, Failure> {
        let (config, seen) = trust::client_config(&settings.trust).map_err(Failure::Tls)?;
        let connector = TlsConnector::from(config);
        let name = ServerName::try_from(settings.host.clone()).map_err(|_| {
            Failure::Tls(format!(
                "\"{}\" is not a host name or address TLS can verify",
                settings.host
            ))
        })?;
        let tcp = connect_tcp(settings).await?;
        let limit = settings.command_timeout;

        let tcp = match settings.security {
            Security::Tls => tcp,
            Security::StartTls => {
                let mut client = Client::new(tcp);
                greeting(&mut client, limit).await?;
                let starttls =
                    tokio::time::timeout(limit, client.run_command_and_check_ok("STARTTLS", None))
                        .await;
                match starttls {
                    Ok(Ok(())) => {}
                    Ok(Err(ImapError::No(text) | ImapError::Bad(text))) => {
                        return Err(Failure::Tls(format!(
                            "the server refused STARTTLS ({}); check receipts.imap.security and port",
                            text.trim()
                        )))
                    }
                    Ok(Err(e)) => return Err(Failure::Broken(plain(&e, "STARTTLS"))),
                    Err(_) => {
                        return Err(Failure::Broken(format!(
                            "the IMAP server did not answer STARTTLS within {limit:?}"
                        )))
                    }
                }
                client.into_inner()
            }
        };
        let handshake = tokio::time::timeout(limit, connector.connect(name, tcp)).await;
        let tls = match handshake {
            Ok(Ok(tls)) => tls,
            Ok(Err(e)) => return Err(Failure::Tls(describe_tls_error(&e, &seen, settings))),
            Err(_) => {
                return Err(Failure::Tls(format!(
                    "the TLS handshake did not finish within {limit:?}"
                )))
            }
        };
        let mut client = Client::new(tls);
        if settings.security == Security::Tls {
            greeting(&mut client, limit).await?;
        }
        let login =
            tokio::time::timeout(limit, client.login(&settings.user, &settings.secret)).await;
        let session = match login {
            Ok(Ok(session)) => session,
            Ok(Err((error, _client))) => {
                let why = match &error {
                    ImapError::No(text) | ImapError::Bad(text) => {
                        format!(" (server said: {})", text.trim())
                    }
                    _ => format!(": {}", plain(&error, "the login")),
                };
                return Err(Failure::Login(redact(
                    format!(
                        "the IMAP server refused the login of user \"{}\"{why}",
                        settings.user
                    ),
                    &settings.secret,
                )));
            }
            Err(_) => {
                return Err(Failure::Broken(format!(
                    "the IMAP server did not answer the login within {limit:?}"
                )))
            }
        };
        Ok(Mailbox {
            session,
            command_timeout: limit,
            secret: settings.secret.clone(),
        })
    }

    /// Opens a folder read-only (EXAMINE).
    pub(crate) async fn examine(&mut self, folder: &str) -> Result<Folder, Failure> {
        let limit = self.command_timeout;
        let opened = within(limit, "opening the folder", self.session.examine(folder)).await;
        let mailbox = match opened {
            Ok(m) => m,
            Err(Failure::Broken(message)) if !message.contains("connection") => {
                return Err(Failure::Folder {
                    folder: folder.to_owned(),
                    message,
                })
            }
            Err(e) => return Err(e),
        };
        let Some(uid_validity) = mailbox.uid_validity else {
            return Err(Failure::Folder {
                folder: folder.to_owned(),
                message: "the server gave no UIDVALIDITY for it, so new messages cannot be told from old ones".into(),
            });
        };
        Ok(Folder {
            uid_validity,
            exists: mailbox.exists,
        })
    }

    /// The messages of the open folder whose UID is above `after`, in UID order, with sizes.
    pub(crate) async fn list_after(&mut self, after: u32) -> Result<Vec<Listed>, Failure> {
        let limit = self.command_timeout;
        let from = after.saturating_add(1);
        // "n:*" also names the last message when every UID is below n: hence the filter.
        let query = async {
            let stream = self
                .session
                .uid_fetch(format!("{from}:*"), "(UID RFC822.SIZE)")
                .await?;
            stream.try_collect::<Vec<_>>().await
        };
        let fetched = within(limit, "listing the messages", query).await?;
        let mut listed: Vec<Listed> = fetched
            .iter()
            .filter_map(|f| {
                Some(Listed {
                    uid: f.uid?,
                    size: u64::from(f.size.unwrap_or(0)),
                })
            })
            .filter(|l| l.uid > after)
            .collect();
        listed.sort_by_key(|l| l.uid);
        listed.dedup_by_key(|l| l.uid);
        Ok(listed)
    }

    /// The whole message with this UID, without marking it read; `None` if it is gone.
    pub(crate) async fn message(&mut self, uid: u32) -> Result<Option<Vec<u8>>, Failure> {
        let limit = self.command_timeout;
        let query = async {
            let stream = self
                .session
                .uid_fetch(uid.to_string(), "(UID BODY.PEEK[])")
                .await?;
            stream.try_collect::<Vec<_>>().await
        };
        let fetched = within(limit, "reading a message", query).await?;
        Ok(fetched
            .iter()
            .find(|f| f.uid == Some(uid))
            .and_then(|f| f.body())
            .map(<[u8]>::to_vec))
    }

    /// Says goodbye; errors are ignored (the reading is done).
    pub(crate) async fn logout(mut self) {
        let _ = tokio::time::timeout(self.command_timeout, self.session.logout()).await;
        self.secret.clear();
    }
}

/// Runs one exchange with the server within `limit`, naming `what` in the failure.
async fn within<T, F>(limit: Duration, what: &str, exchange: F) -> Result<T, Failure>
where
    F: Future<Output = Result<T, ImapError>>,
{
    match tokio::time::timeout(limit, exchange).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Failure::Broken(plain(&e, what))),
        Err(_) => Err(Failure::Broken(format!(
            "the IMAP server did not answer within {limit:?} ({what})"
        ))),
    }
}

/// An async-imap error in words, with what was being done.
fn plain(error: &ImapError, what: &str) -> String {
    match error {
        ImapError::Io(e)
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::UnexpectedEof
            ) =>
        {
            format!("the IMAP server closed the connection ({what})")
        }
        ImapError::Io(e) => format!("the connection to the IMAP server broke ({what}): {e}"),
        ImapError::ConnectionLost => {
            format!("the IMAP server closed the connection ({what})")
        }
        ImapError::No(text) => format!("the IMAP server refused it ({what}): {}", text.trim()),
        ImapError::Bad(text) => format!(
            "the IMAP server did not understand the request ({what}): {}",
            text.trim()
        ),
        ImapError::Parse(_) => {
            format!("the IMAP server's answer could not be read ({what})")
        }
        other => format!("IMAP error ({what}): {other}"),
    }
}

/// Reads the server's greeting: "* OK" goes on, "* BYE" (or nothing) is a failure.
async fn greeting<T>(client: &mut Client<T>, limit: Duration) -> Result<(), Failure>
where
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + fmt::Debug + Send,
{
    use async_imap::imap_proto::{Response, Status};
    match tokio::time::timeout(limit, client.read_response()).await {
        Ok(Ok(Some(reply))) => match reply.parsed() {
            Response::Data {
                status: Status::Ok | Status::PreAuth,
                ..
            } => Ok(()),
            Response::Data { outcome, .. } => Err(Failure::Connect(format!(
                "the IMAP server refused the session: {}",
                outcome.information.as_deref().unwrap_or("no reason given")
            ))),
            _ => Err(Failure::Connect(
                "the server did not greet as an IMAP server does (is this the IMAP port?)".into(),
            )),
        },
        Ok(Ok(None)) => Err(Failure::Connect(
            "the server closed the connection before its greeting".into(),
        )),
        Ok(Err(e)) => Err(Failure::Connect(format!(
            "the connection broke before the server's greeting: {e}"
        ))),
        Err(_) => Err(Failure::Connect(format!(
            "the server sent no greeting within {limit:?} (for a TLS port such as 993 use security \"tls\")"
        ))),
    }
}

async fn connect_tcp(settings: &Settings) -> Result<TcpStream, Failure> {
    let tcp = crate::net::connect(&settings.host, settings.port, settings.connect_timeout)
        .await
        .map_err(Failure::Connect)?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// Where a refused certificate can be trusted: the words of a TLS refusal.
const TRUST_HINTS: Hints = Hints {
    section: "[receipts.imap]",
    server: "mail server",
    shows_certificate: None,
};

/// A failed TLS handshake in plain words, with the certificate the server showed (`seen`).
fn describe_tls_error(error: &io::Error, seen: &trust::Seen, settings: &Settings) -> String {
    trust::describe_handshake(
        error,
        seen.certificate().as_ref(),
        &settings.host,
        &settings.trust,
        &TRUST_HINTS,
    )
}

/// Takes the secret out of text a server sent back, in case it echoed it: as typed, and as
/// the LOGIN command quoted it (with `\` before each `"` and `\`).
fn redact(text: String, secret: &str) -> String {
    if secret.is_empty() {
        return text;
    }
    let quoted = secret.replace('\\', "\\\\").replace('"', "\\\"");
    text.replace(&quoted, "[redacted]")
        .replace(secret, "[redacted]")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_debug_hides_the_secret() {
        let settings = Settings {
            host: "imap.uim.dk".into(),
            port: 993,
            security: Security::Tls,
            trust: Trust::default(),
            user: "rundbrev".into(),
            secret: "hunter2-æøå".into(),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_secs(1),
        };
        let text = format!("{settings:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("[redacted]"), "{text}");
    }

    #[test]
    fn an_echoed_secret_is_taken_out() {
        assert_eq!(
            redact("NO bad password hunter2".into(), "hunter2"),
            "NO bad password [redacted]"
        );
        assert_eq!(
            redact(r#"NO LOGIN "u" "a\"b\\c" refused"#.into(), r#"a"b\c"#),
            r#"NO LOGIN "u" "[redacted]" refused"#
        );
    }
}
