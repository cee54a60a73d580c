//! What the two mail server sections, `[transport.smtp]` and `[receipts.imap]`, have in common:
//! where the server is and how it is reached safely (`Server`: host, port, security, the TLS
//! trust settings, the time limits), and no password written beside it. `validate` checks these
//! once for both, so that both refuse a bad setting in the same words under their own key
//! (`receipts.imap.security`).
//!
//! Each section's raw struct still lists these keys itself and hands them over as a `RawServer`:
//! serde's `flatten` would hide a misspelt key from the unknown-key check and report a value of
//! the wrong type at the section's header instead of its own line. This module connects to
//! nothing, reads no file, and knows nothing else of either section.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{is_loopback, Fingerprint, Security};

/// A mail server, checked: where it is, how the connection is protected, which certificate is
/// trusted, and how long to wait.
#[derive(Debug, Clone)]
pub(crate) struct Server {
    pub host: String,
    /// As written, or the protocol's usual port for `security`.
    pub port: u16,
    /// `None` only for SMTP, and there only to loopback or with `allow_insecure`.
    pub security: Security,
    /// A PEM file with extra trusted CA certificates, resolved against the config's folder; the
    /// system's CAs stay trusted. A certificate listed in it that the server shows as its own is
    /// trusted as itself.
    pub ca_file: Option<PathBuf>,
    /// Only a server certificate with one of these SHA-256 fingerprints is trusted.
    pub tls_pins: Vec<Fingerprint>,
    /// False only when the user turned the host name check off (allowed only with a pin).
    pub tls_check_host_name: bool,
    pub connect_timeout: Duration,
    /// How long to wait for each reply of the server.
    pub command_timeout: Duration,
}

impl Server {
    /// What to say about the TLS settings on every run: the host name check turned off.
    pub(crate) fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.tls_check_host_name {
            out.push(format!(
                "the server's host name is not checked against its certificate (tls_check_host_name = false); only the pinned certificate is trusted, so keep its private key on {} only",
                self.host
            ));
        }
        out
    }

    /// "STARTTLS", "TLS" or "no encryption", for telling the user how the server is reached.
    pub(crate) fn security_name(&self) -> &'static str {
        match self.security {
            Security::StartTls => "STARTTLS",
            Security::Tls => "TLS",
            Security::None => "no encryption",
        }
    }
}

/// Which of the two servers a section describes. They differ in the section's name, their usual
/// ports, whether they may be reached unencrypted (SMTP may, to loopback or when allowed; an IMAP
/// login never goes unencrypted), and where the user finds a fingerprint to pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Protocol {
    Smtp,
    Imap,
}

impl Protocol {
    /// The section that holds the keys, as problems name it.
    fn section(self) -> &'static str {
        match self {
            Protocol::Smtp => "transport.smtp",
            Protocol::Imap => "receipts.imap",
        }
    }

    /// The `security` the user wrote (any case), if this protocol supports it.
    fn security(self, written: &str) -> Option<Security> {
        match (written, self) {
            ("starttls", _) => Some(Security::StartTls),
            ("tls", _) => Some(Security::Tls),
            ("none", Protocol::Smtp) => Some(Security::None),
            _ => None,
        }
    }

    /// What to write instead of an unsupported `security`.
    fn security_choices(self) -> &'static str {
        match self {
            Protocol::Smtp => "use \"starttls\", \"tls\" or \"none\"",
            Protocol::Imap => "use \"starttls\" (usually port 143) or \"tls\" (usually port 993)",
        }
    }

    /// The port when none is written.
    fn default_port(self, security: Security) -> u16 {
        match (self, security) {
            (Protocol::Smtp, Security::StartTls) => 587,
            (Protocol::Smtp, Security::Tls) => 465,
            (Protocol::Smtp, Security::None) => 25,
            (Protocol::Imap, Security::Tls) => 993,
            (Protocol::Imap, Security::StartTls | Security::None) => 143,
        }
    }

    /// Where the user finds the fingerprint to copy into `tls_pin_sha256`.
    fn pin_source(self) -> &'static str {
        match self {
            Protocol::Smtp => "the SHA-256 line that rundbrev check-smtp prints",
            Protocol::Imap => {
                "the SHA-256 fingerprint that rundbrev receipts fetch names when it does not trust the server's certificate"
            }
        }
    }
}

/// The keys every mail server section has, as the TOML says them, before they are checked.
pub(super) struct RawServer {
    pub(super) host: String,
    pub(super) port: Option<u16>,
    pub(super) security: String,
    /// `[transport.smtp] allow_insecure`; false for IMAP, which has no such key.
    pub(super) allow_insecure: bool,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) tls_pin_sha256: Option<OneOrMany>,
    pub(super) tls_check_host_name: bool,
    pub(super) connect_timeout_secs: u64,
    pub(super) command_timeout_secs: u64,
    /// Refused with a clear message: secrets never go into config files.
    pub(super) password: Option<toml::Value>,
}

/// A setting that takes one string or a list of them.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    /// The strings given, none when the key is left out.
    fn strings(given: Option<OneOrMany>) -> Vec<String> {
        match given {
            None => Vec::new(),
            Some(OneOrMany::One(text)) => vec![text],
            Some(OneOrMany::Many(list)) => list,
        }
    }
}

pub(super) fn default_true() -> bool {
    true
}

pub(super) fn default_security() -> String {
    "starttls".into()
}
pub(super) fn default_connect_timeout() -> u64 {
    30
}
pub(super) fn default_command_timeout() -> u64 {
    60
}

/// Checks what a section says about its server, naming every problem by the section's own key;
/// paths are resolved against `base`. A value that cannot be used is replaced by its default, so
/// that the rest of the section can still be checked.
pub(super) fn validate(
    raw: RawServer,
    protocol: Protocol,
    base: &Path,
    bad: &mut impl FnMut(&str, String),
) -> Server {
    let section = protocol.section();
    if raw.password.is_some() {
        bad(
            &format!("{section}.password"),
            "a password must never be written in the config file; remove it and set the environment variable named by password_env, use password_command, or type it when asked".into(),
        );
    }
    let written = raw.security.to_ascii_lowercase();
    let security = protocol.security(&written).unwrap_or_else(|| {
        bad(
            &format!("{section}.security"),
            format!(
                "`{written}` is not supported; {}",
                protocol.security_choices()
            ),
        );
        Security::StartTls
    });
    let host = raw.host.trim().to_string();
    if host.is_empty() {
        bad(&format!("{section}.host"), "the host is empty".into());
    }
    if security == Security::None && !is_loopback(&host) && !raw.allow_insecure {
        bad(
            &format!("{section}.security"),
            format!("\"none\" would send letters and the password unencrypted to {host}; use \"starttls\" or \"tls\", or set allow_insecure = true if you really mean it"),
        );
    }
    if raw.connect_timeout_secs == 0 || raw.command_timeout_secs == 0 {
        bad(section, "timeouts must be at least 1 second".into());
    }
    let pin_texts = OneOrMany::strings(raw.tls_pin_sha256);
    let tls_pins = tls_pins(
        section,
        &pin_texts,
        raw.tls_check_host_name,
        protocol.pin_source(),
        bad,
    );
    if !pin_texts.is_empty() && security == Security::None {
        bad(
            &format!("{section}.tls_pin_sha256"),
            "is set but security is \"none\": there is no certificate to pin".into(),
        );
    }
    Server {
        port: raw.port.unwrap_or(protocol.default_port(security)),
        host,
        security,
        ca_file: raw.ca_file.map(|p| base.join(p)),
        tls_pins,
        tls_check_host_name: raw.tls_check_host_name,
        connect_timeout: Duration::from_secs(raw.connect_timeout_secs),
        command_timeout: Duration::from_secs(raw.command_timeout_secs),
    }
}

/// A mail server's `tls_pin_sha256` (`pin_texts`, one or several) and the rule that
/// `tls_check_host_name` is turned off only together with a pin: `section` names the keys in
/// problems ("transport.smtp"), `copy_from` says where the user finds the fingerprint to copy.
/// The pins that could be read.
fn tls_pins(
    section: &str,
    pin_texts: &[String],
    check_host_name: bool,
    copy_from: &str,
    bad: &mut impl FnMut(&str, String),
) -> Vec<Fingerprint> {
    let pin_key = format!("{section}.tls_pin_sha256");
    let mut pins = Vec::new();
    for text in pin_texts {
        match Fingerprint::parse(text.trim()) {
            Ok(pin) => pins.push(pin),
            Err(why) => bad(&pin_key, format!("{why}; copy {copy_from}")),
        }
    }
    if !check_host_name && pin_texts.is_empty() {
        bad(
            &format!("{section}.tls_check_host_name"),
            "can only be turned off together with tls_pin_sha256: without a pin, any trusted certificate for any host would do".into(),
        );
    }
    pins
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a section with only `host` written hands over.
    fn raw(host: &str) -> RawServer {
        RawServer {
            host: host.into(),
            port: None,
            security: default_security(),
            allow_insecure: false,
            ca_file: None,
            tls_pin_sha256: None,
            tls_check_host_name: default_true(),
            connect_timeout_secs: default_connect_timeout(),
            command_timeout_secs: default_command_timeout(),
            password: None,
        }
    }

    /// The server and every problem, as "key: message".
    fn check(raw: RawServer, protocol: Protocol) -> (Server, Vec<String>) {
        let mut problems = Vec::new();
        let server = validate(raw, protocol, Path::new("camp"), &mut |key, message| {
            problems.push(format!("{key}: {message}"))
        });
        (server, problems)
    }

    fn with_security(security: &str, host: &str) -> RawServer {
        RawServer {
            security: security.into(),
            ..raw(host)
        }
    }

    #[test]
    fn each_protocol_has_its_own_usual_port_for_each_security() {
        for (protocol, security, port) in [
            (Protocol::Smtp, "starttls", 587),
            (Protocol::Smtp, "TLS", 465),
            (Protocol::Smtp, "none", 25),
            (Protocol::Imap, "starttls", 143),
            (Protocol::Imap, "tls", 993),
        ] {
            let (server, problems) = check(with_security(security, "127.0.0.1"), protocol);
            assert_eq!(server.port, port, "{protocol:?} {security}");
            assert!(problems.is_empty(), "{problems:?}");
        }
        let written = RawServer {
            port: Some(2525),
            ..raw("smtp.example.dk")
        };
        assert_eq!(check(written, Protocol::Smtp).0.port, 2525);
    }

    #[test]
    fn a_server_gets_defaults_and_its_ca_file_beside_the_config() {
        let given = RawServer {
            ca_file: Some("ca.pem".into()),
            ..raw(" imap.uim.dk ")
        };
        let (server, problems) = check(given, Protocol::Imap);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(server.host, "imap.uim.dk");
        assert_eq!(server.security, Security::StartTls);
        assert_eq!(server.ca_file.as_deref(), Some(Path::new("camp/ca.pem")));
        assert!(server.tls_pins.is_empty() && server.tls_check_host_name);
        assert!(server.warnings().is_empty());
        assert_eq!(
            (server.connect_timeout, server.command_timeout),
            (Duration::from_secs(30), Duration::from_secs(60))
        );
        assert_eq!(server.security_name(), "STARTTLS");
    }

    #[test]
    fn only_smtp_may_go_unencrypted_and_only_to_loopback_or_when_allowed() {
        for host in ["127.0.0.1", "localhost", "[::1]"] {
            let (_, problems) = check(with_security("none", host), Protocol::Smtp);
            assert!(problems.is_empty(), "{host}: {problems:?}");
        }
        let (server, problems) = check(with_security("none", "smtp.example.dk"), Protocol::Smtp);
        assert_eq!(
            problems,
            ["transport.smtp.security: \"none\" would send letters and the password unencrypted to smtp.example.dk; use \"starttls\" or \"tls\", or set allow_insecure = true if you really mean it"]
        );
        assert_eq!(server.security_name(), "no encryption");
        let allowed = RawServer {
            allow_insecure: true,
            ..with_security("none", "smtp.example.dk")
        };
        assert!(check(allowed, Protocol::Smtp).1.is_empty());

        let (server, problems) = check(with_security("None", "127.0.0.1"), Protocol::Imap);
        assert_eq!(
            problems,
            ["receipts.imap.security: `none` is not supported; use \"starttls\" (usually port 143) or \"tls\" (usually port 993)"]
        );
        assert_eq!((server.security, server.port), (Security::StartTls, 143));
        let (_, problems) = check(with_security("ssl", "smtp.example.dk"), Protocol::Smtp);
        assert_eq!(
            problems,
            ["transport.smtp.security: `ssl` is not supported; use \"starttls\", \"tls\" or \"none\""]
        );
    }

    #[test]
    fn every_problem_names_the_key_in_its_own_section() {
        for (protocol, section) in [
            (Protocol::Smtp, "transport.smtp"),
            (Protocol::Imap, "receipts.imap"),
        ] {
            let given = RawServer {
                password: Some(toml::Value::String("hemmeligt".into())),
                command_timeout_secs: 0,
                tls_check_host_name: false,
                ..raw(" ")
            };
            let shown = check(given, protocol).1.join("\n");
            for key in ["password", "host", "tls_check_host_name"] {
                assert!(shown.contains(&format!("{section}.{key}: ")), "{shown}");
            }
            assert!(
                shown.contains(&format!("{section}: timeouts must be at least 1 second")),
                "{shown}"
            );
            assert_eq!(shown.lines().count(), 4, "{shown}");
            assert!(!shown.contains("hemmeligt"), "{shown}");
        }
    }

    #[test]
    fn pins_are_read_one_or_many_and_a_bad_one_says_where_to_copy_it_from() {
        let sha = vec!["3F"; 32].join(":");
        let given = RawServer {
            tls_pin_sha256: Some(OneOrMany::Many(vec![format!(" {sha} "), "AB:CD".into()])),
            tls_check_host_name: false,
            ..raw("imap.uim.dk")
        };
        let (server, problems) = check(given, Protocol::Imap);
        assert_eq!(server.tls_pins, [Fingerprint::parse(&sha).unwrap()]);
        assert_eq!(
            problems,
            ["receipts.imap.tls_pin_sha256: \"AB:CD\" is not a SHA-256 fingerprint: it has 4 hex digits, a SHA-256 has 64; copy the SHA-256 fingerprint that rundbrev receipts fetch names when it does not trust the server's certificate"]
        );
        assert!(!server.tls_check_host_name);
        assert!(server.warnings()[0].ends_with("keep its private key on imap.uim.dk only"));

        let one = RawServer {
            tls_pin_sha256: Some(OneOrMany::One(sha.clone())),
            ..with_security("none", "127.0.0.1")
        };
        assert_eq!(
            check(one, Protocol::Smtp).1,
            ["transport.smtp.tls_pin_sha256: is set but security is \"none\": there is no certificate to pin"]
        );
    }

    /// Every problem of a config text, one a line.
    fn refused(text: &str) -> String {
        crate::config::tests::parse_str(text)
            .unwrap_err()
            .iter()
            .map(|p| format!("{p}\n"))
            .collect()
    }

    /// What `flatten` would break: both are reported at the key in the section's own name.
    #[test]
    fn a_misspelt_key_or_a_wrong_type_in_either_section_is_named_with_its_key() {
        let minimal = crate::config::tests::MINIMAL;
        let port_line = minimal.lines().count() + 4;
        for section in ["transport.smtp", "receipts.imap"] {
            let start = format!("{minimal}[{section}]\nhost = \"mail.uim.dk\"\nuser = \"r\"\n");
            let shown = refused(&format!("{start}hots = 1\n"));
            assert_eq!(
                shown,
                format!("camp/config.toml, line {port_line}, key `{section}.hots`: unknown key; check its spelling and section\n")
            );
            let shown = refused(&format!("{start}port = \"587\"\n"));
            assert_eq!(
                shown,
                format!("camp/config.toml, line {port_line}, key `{section}.port`: invalid type: string \"587\", expected u16\n")
            );
        }
    }

    #[test]
    fn the_host_name_check_is_turned_off_only_with_a_pin() {
        let off = |pins| RawServer {
            tls_pin_sha256: pins,
            tls_check_host_name: false,
            ..raw("smtp.example.dk")
        };
        // An empty list is no pin.
        assert_eq!(
            check(off(Some(OneOrMany::Many(Vec::new()))), Protocol::Smtp).1,
            ["transport.smtp.tls_check_host_name: can only be turned off together with tls_pin_sha256: without a pin, any trusted certificate for any host would do"]
        );
        let pinned = Some(OneOrMany::One("91".repeat(32)));
        assert!(check(off(pinned), Protocol::Smtp).1.is_empty());
    }
}
