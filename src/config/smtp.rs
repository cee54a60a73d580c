//! The `[transport.smtp]` section: the mail server the letters are handed to, and how.
//!
//! `validate_smtp` turns what the TOML says into `Smtp`, naming the key of every problem: the
//! server itself (host, security, TLS, time limits: checked in `server`, as for IMAP), the login,
//! the limits and the test domains. Paths are resolved against the config file's folder. This
//! module connects to nothing and never holds the password.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::server::{
    self, default_command_timeout, default_connect_timeout, default_security, default_true,
    OneOrMany, Protocol, RawServer, Server,
};
use super::{DsnRequest, Mechanism};

#[derive(Debug, Clone)]
pub(crate) struct Smtp {
    /// The relay: where it is, how it is reached and which certificate is trusted.
    pub server: Server,
    /// Test domains (RFC 2606/6761) the user named as reachable over this relay.
    pub allow_test_domains: Vec<String>,
    pub hello_name: Option<String>,
    pub user: Option<String>,
    pub mechanisms: Vec<Mechanism>,
    /// The environment variable that holds the password or token.
    pub password_env: String,
    /// A command whose first line of output is the password (e.g. `pass show smtp`).
    pub password_command: Option<String>,
    /// How many times a temporarily failed letter is tried again within one run.
    pub retries: u32,
    /// The pause before the first retry; it doubles for each further retry.
    pub retry_delay: Duration,
    /// Letters per minute at most; `None` is no limit.
    pub rate_per_minute: Option<u32>,
    /// Stop the run after this many consecutive connection failures.
    pub max_connection_failures: u32,
    /// How many connections send in parallel.
    pub connections: usize,
    /// The delivery status notifications to ask for (from `[receipts]`) when the server offers DSN.
    pub dsn: Option<DsnRequest>,
}

/// The section's server settings read as its own: `smtp.host`, `smtp.ca_file`, `smtp.warnings()`.
impl Deref for Smtp {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

/// Every key of the section as written, the server's too: they are handed to `server::validate`
/// as a `RawServer` (why they are not a flattened struct: see `server`).
#[derive(Deserialize)]
pub(super) struct RawSmtp {
    host: String,
    port: Option<u16>,
    #[serde(default = "default_security")]
    security: String,
    #[serde(default)]
    allow_insecure: bool,
    ca_file: Option<PathBuf>,
    tls_pin_sha256: Option<OneOrMany>,
    #[serde(default = "default_true")]
    tls_check_host_name: bool,
    #[serde(default)]
    allow_test_domains: Vec<String>,
    hello_name: Option<String>,
    user: Option<String>,
    #[serde(default)]
    auth: Vec<String>,
    #[serde(default = "default_password_env")]
    password_env: String,
    password_command: Option<String>,
    #[serde(default = "default_connect_timeout")]
    connect_timeout_secs: u64,
    #[serde(default = "default_command_timeout")]
    command_timeout_secs: u64,
    #[serde(default = "default_retries")]
    retries: u32,
    #[serde(default = "default_retry_delay")]
    retry_delay_secs: f64,
    rate_per_minute: Option<u32>,
    #[serde(default = "default_max_connection_failures")]
    max_connection_failures: u32,
    #[serde(default = "default_connections")]
    connections: usize,
    /// Refused with a clear message: secrets never go into config files.
    password: Option<toml::Value>,
}

fn default_password_env() -> String {
    "RUNDBREV_SMTP_PASSWORD".into()
}
fn default_retries() -> u32 {
    2
}
fn default_retry_delay() -> f64 {
    5.0
}
fn default_max_connection_failures() -> u32 {
    3
}
fn default_connections() -> usize {
    2
}

pub(super) fn validate_smtp(raw: RawSmtp, base: &Path, bad: &mut impl FnMut(&str, String)) -> Smtp {
    let server = server::validate(
        RawServer {
            host: raw.host,
            port: raw.port,
            security: raw.security,
            allow_insecure: raw.allow_insecure,
            ca_file: raw.ca_file,
            tls_pin_sha256: raw.tls_pin_sha256,
            tls_check_host_name: raw.tls_check_host_name,
            connect_timeout_secs: raw.connect_timeout_secs,
            command_timeout_secs: raw.command_timeout_secs,
            password: raw.password,
        },
        Protocol::Smtp,
        base,
        bad,
    );
    let mut mechanisms = Vec::new();
    for m in &raw.auth {
        match m.to_ascii_lowercase().as_str() {
            "plain" => mechanisms.push(Mechanism::Plain),
            "login" => mechanisms.push(Mechanism::Login),
            "xoauth2" => mechanisms.push(Mechanism::Xoauth2),
            other => bad(
                "transport.smtp.auth",
                format!("`{other}` is not supported; use \"plain\", \"login\" or \"xoauth2\""),
            ),
        }
    }
    if raw.user.is_none() && !raw.auth.is_empty() {
        bad(
            "transport.smtp.auth",
            "is set but there is no user to log in as".into(),
        );
    }
    if !(0.0..=3600.0).contains(&raw.retry_delay_secs) {
        bad(
            "transport.smtp.retry_delay_secs",
            "must be between 0 and 3600 seconds".into(),
        );
    }
    if raw.connections == 0 || raw.connections > 64 {
        bad(
            "transport.smtp.connections",
            "must be between 1 and 64".into(),
        );
    }
    if raw.rate_per_minute == Some(0) {
        bad(
            "transport.smtp.rate_per_minute",
            "must be at least 1 (leave it out for no limit)".into(),
        );
    }
    let mut allow_test_domains = Vec::new();
    for domain in &raw.allow_test_domains {
        let d = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        if d.is_empty() || d.contains('@') || d.contains(char::is_whitespace) {
            bad(
                "transport.smtp.allow_test_domains",
                format!("\"{domain}\" is not a domain name (write e.g. \"kommuner.test\")"),
            );
        } else if d == "invalid" || d.ends_with(".invalid") {
            bad(
                "transport.smtp.allow_test_domains",
                format!("\"{domain}\": .invalid marks placeholder addresses and is never sent to"),
            );
        } else {
            allow_test_domains.push(d);
        }
    }
    Smtp {
        server,
        allow_test_domains,
        hello_name: raw.hello_name,
        user: raw.user,
        mechanisms,
        password_env: raw.password_env,
        password_command: raw.password_command,
        retries: raw.retries,
        retry_delay: Duration::from_secs_f64(raw.retry_delay_secs.clamp(0.0, 3600.0)),
        rate_per_minute: raw.rate_per_minute,
        max_connection_failures: raw.max_connection_failures.max(1),
        connections: raw.connections.clamp(1, 64),
        dsn: None,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{parse_str, MINIMAL};

    #[test]
    fn a_password_in_the_config_is_refused() {
        let text = format!(
            "{MINIMAL}\n[transport]\nkind = \"smtp\"\n[transport.smtp]\nhost = \"smtp.example.dk\"\npassword = \"hemmeligt\"\n"
        );
        let problems = parse_str(&text).unwrap_err();
        let shown: String = problems.iter().map(|p| p.to_string()).collect();
        assert!(shown.contains("transport.smtp.password"), "{shown}");
        assert!(!shown.contains("hemmeligt"), "{shown}");
    }

    #[test]
    fn plaintext_smtp_is_allowed_only_to_loopback_or_when_asked() {
        let smtp = |host: &str, extra: &str| {
            format!("{MINIMAL}\n[transport]\nkind = \"smtp\"\n[transport.smtp]\nhost = \"{host}\"\nsecurity = \"none\"\n{extra}")
        };
        assert!(parse_str(&smtp("127.0.0.1", "")).is_ok());
        assert!(parse_str(&smtp("smtp.example.dk", "")).is_err());
        assert!(parse_str(&smtp("smtp.example.dk", "allow_insecure = true")).is_ok());
    }
}
