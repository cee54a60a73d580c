//! Opening a TCP connection to a mail server within a time limit, with a failure in plain words
//! ("… refused the connection (nothing listens there)").
//!
//! Shared by the SMTP and IMAP clients. It speaks no protocol and starts no TLS.

use std::io;
use std::time::Duration;

use tokio::net::TcpStream;

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
