//! Opening a TCP connection to a mail server within a time limit, with a failure in plain words
//! ("… refused the connection (nothing listens there)"); how such a connection is protected
//! (`Security`), and which host names never leave this machine (`is_loopback`).
//!
//! Shared by the SMTP and IMAP clients and by the config that describes their servers. It speaks
//! no protocol and starts no TLS.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;

/// How the connection to a mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Security {
    /// A plain connection upgraded with STARTTLS (usually port 587 or 25 for SMTP, 143 for
    /// IMAP). Fails if the server does not offer STARTTLS.
    StartTls,
    /// TLS from the first byte (usually port 465 for SMTP, 993 for IMAP).
    Tls,
    /// No encryption at all.
    None,
}

/// True for names and addresses that never leave this machine.
pub(crate) fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.trim_matches(|c| c == '[' || c == ']')
        .parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// Connects to `host:port`, giving up after `timeout`; the error names the server.
pub(crate) async fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, String> {
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(tcp)) => Ok(tcp),
        Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => Err(format!(
            "{target} refused the connection (nothing listens there)"
        )),
        Ok(Err(e)) => Err(format!("{target}: {e}")),
        Err(_) => Err(format!("{target} did not answer within {timeout:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn loopback_is_localhost_or_a_loopback_address_with_or_without_brackets() {
        for host in [
            "localhost",
            "LocalHost",
            "127.0.0.1",
            "127.3.2.1",
            "::1",
            "[::1]",
        ] {
            assert!(is_loopback(host), "{host}");
        }
        for host in [
            "smtp.example.dk",
            "localhost.example.dk",
            "10.0.0.1",
            "[::2]",
            "",
        ] {
            assert!(!is_loopback(host), "{host}");
        }
    }
}
