//! Replies and failures: what the server answered, and every way a session can go wrong, in
//! words that say whether anything was delivered (safe to retry), refused, or unknown.
//!
//! Pure classification of lettre's errors and responses; it opens nothing and never puts a
//! login secret into any text (`redact_secret` takes it out of what a server echoed).

use std::error::Error as StdError;
use std::fmt;

use lettre::transport::smtp::Error as SmtpError;

/// An SMTP reply: code and text (all lines of a multi-line reply joined by spaces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reply {
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
pub(crate) enum Phase {
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
pub(crate) enum Failure {
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
    /// Whether any of the message's data went out (its DATA was accepted and sending began);
    /// false for anything refused or broken off before that.
    pub(crate) fn data_sent(&self) -> bool {
        match self {
            Failure::Temporary { phase, .. } | Failure::Permanent { phase, .. } => {
                *phase == Phase::Message
            }
            Failure::Unknown { .. } => true,
            Failure::Connect(_)
            | Failure::Tls(_)
            | Failure::Login { .. }
            | Failure::Unsendable { .. } => false,
        }
    }

    /// The server's reply behind this failure, if there was one.
    pub(crate) fn reply(&self) -> Option<&Reply> {
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
pub(super) fn redact_secret(text: String, user: &str, secret: &str) -> String {
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

/// The server reply inside a lettre error, if the error came from a 4xx/5xx reply.
pub(super) fn reply_of(error: &SmtpError) -> Option<Reply> {
    let code = error.status()?;
    let text = error.source().map(|s| s.to_string()).unwrap_or_default();
    Some(Reply {
        code: u16::from(code),
        text,
    })
}

/// A reply from its code and the text of each line (without the code): the lines joined with
/// spaces, an enhanced status code repeated at the start of continuation lines kept only once.
pub(super) fn reply_from_lines<'a>(code: u16, lines: impl IntoIterator<Item = &'a str>) -> Reply {
    let mut lines = lines.into_iter();
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
    Reply { code, text }
}

/// The innermost cause of a lettre error, in words.
pub(super) fn cause(error: &SmtpError) -> String {
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
