//! The `[receipts]` section: what the letters ask of the receiving side, and the mailbox
//! (`[receipts.imap]`) that `receipts fetch` reads the reports from.
//!
//! `validate_receipts` turns what the TOML says into `Receipts`, naming the key of every problem;
//! the mailbox's server (host, security, TLS, time limits) is checked in `server`, as for SMTP.
//! Paths are resolved against the config file's folder. This module reads no mailbox and never
//! holds the password.

use std::ops::Deref;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::server::{
    self, default_command_timeout, default_connect_timeout, default_security, default_true,
    OneOrMany, Protocol, RawServer, Server,
};
use super::{DsnRequest, Ret};

/// The `[receipts]` section.
#[derive(Debug, Clone)]
pub(crate) struct Receipts {
    /// Delivery status notifications to ask for when the server offers DSN; `None` asks for none.
    pub dsn: Option<DsnRequest>,
    /// Ask for a read receipt (`Disposition-Notification-To`) in every letter.
    pub read_receipt: bool,
    /// The mailbox the reports come back to, for `receipts fetch`.
    pub imap: Option<Imap>,
    /// A message larger than this many bytes is skipped with a note.
    pub max_message_size: u64,
}

/// The largest message read back by default: 10 MB.
const DEFAULT_MAX_MESSAGE_SIZE: u64 = 10 * 1024 * 1024;

impl Default for Receipts {
    /// What a config without a `[receipts]` section means.
    fn default() -> Self {
        Receipts {
            dsn: Some(DsnRequest::default()),
            read_receipt: false,
            imap: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

/// The `[receipts.imap]` section: the mailbox that `receipts fetch` reads.
#[derive(Debug, Clone)]
pub(crate) struct Imap {
    /// The mail server: where it is, how it is reached (never unencrypted: the security is
    /// STARTTLS or TLS) and which certificate is trusted.
    pub server: Server,
    pub user: String,
    /// The environment variable that holds the password.
    pub password_env: String,
    /// A command whose first line of output is the password.
    pub password_command: Option<String>,
    /// The folders to read, in order.
    pub folders: Vec<String>,
}

/// The section's server settings read as its own: `imap.host`, `imap.ca_file`, `imap.warnings()`.
impl Deref for Imap {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.server
    }
}

#[derive(Deserialize)]
#[serde(default)]
pub(super) struct RawReceipts {
    notify: Vec<String>,
    ret: String,
    read_receipt: bool,
    imap: Option<RawImap>,
    /// Bytes.
    max_message_size: Option<u64>,
}

impl Default for RawReceipts {
    fn default() -> Self {
        RawReceipts {
            notify: vec!["success".into(), "failure".into(), "delay".into()],
            ret: "headers".into(),
            read_receipt: false,
            imap: None,
            max_message_size: None,
        }
    }
}

/// Every key of the section as written, the server's too: they are handed to `server::validate`
/// as a `RawServer` (why they are not a flattened struct: see `server`).
#[derive(Deserialize)]
struct RawImap {
    host: String,
    port: Option<u16>,
    #[serde(default = "default_security")]
    security: String,
    ca_file: Option<PathBuf>,
    tls_pin_sha256: Option<OneOrMany>,
    #[serde(default = "default_true")]
    tls_check_host_name: bool,
    user: String,
    #[serde(default = "default_imap_password_env")]
    password_env: String,
    password_command: Option<String>,
    #[serde(default = "default_folders")]
    folders: Vec<String>,
    #[serde(default = "default_connect_timeout")]
    connect_timeout_secs: u64,
    #[serde(default = "default_command_timeout")]
    command_timeout_secs: u64,
    /// Refused with a clear message: secrets never go into config files.
    password: Option<toml::Value>,
}

fn default_imap_password_env() -> String {
    "RUNDBREV_IMAP_PASSWORD".into()
}
fn default_folders() -> Vec<String> {
    vec!["INBOX".into()]
}

pub(super) fn validate_receipts(
    raw: RawReceipts,
    base: &Path,
    bad: &mut impl FnMut(&str, String),
) -> Receipts {
    let ret = match raw.ret.to_ascii_lowercase().as_str() {
        "headers" | "hdrs" => Ret::Headers,
        "full" => Ret::Full,
        other => {
            bad(
                "receipts.ret",
                format!("`{other}` is not supported; use \"headers\" (only the letter's headers come back in a report) or \"full\""),
            );
            Ret::Headers
        }
    };
    let mut dsn = DsnRequest {
        success: false,
        failure: false,
        delay: false,
        ret,
    };
    let words: Vec<String> = raw.notify.iter().map(|w| w.to_ascii_lowercase()).collect();
    for word in &words {
        match word.as_str() {
            "success" => dsn.success = true,
            "failure" => dsn.failure = true,
            "delay" => dsn.delay = true,
            "never" if words.len() == 1 => {}
            "never" => bad(
                "receipts.notify",
                "\"never\" cannot go with other notifications".into(),
            ),
            other => bad(
                "receipts.notify",
                format!("`{other}` is not a notification; use \"success\", \"failure\", \"delay\", or \"never\" alone (or [] to ask for nothing)"),
            ),
        }
    }
    let imap = raw.imap.map(|imap| {
        let server = server::validate(
            RawServer {
                host: imap.host,
                port: imap.port,
                security: imap.security,
                allow_insecure: false,
                ca_file: imap.ca_file,
                tls_pin_sha256: imap.tls_pin_sha256,
                tls_check_host_name: imap.tls_check_host_name,
                connect_timeout_secs: imap.connect_timeout_secs,
                command_timeout_secs: imap.command_timeout_secs,
                password: imap.password,
            },
            Protocol::Imap,
            base,
            bad,
        );
        if imap.user.trim().is_empty() {
            bad("receipts.imap.user", "the user is empty".into());
        }
        if imap.folders.is_empty() || imap.folders.iter().any(|f| f.trim().is_empty()) {
            bad(
                "receipts.imap.folders",
                "name at least one folder, e.g. [\"INBOX\"], and no empty names".into(),
            );
        }
        Imap {
            server,
            user: imap.user,
            password_env: imap.password_env,
            password_command: imap.password_command,
            folders: imap.folders,
        }
    });
    Receipts {
        dsn: (!words.is_empty()).then_some(dsn),
        read_receipt: raw.read_receipt,
        imap,
        max_message_size: raw.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE_SIZE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{parse_str, MINIMAL};
    use crate::config::{Fingerprint, Security};

    #[test]
    fn reports_are_asked_for_by_default_and_the_receipts_section_can_change_that() {
        let c = parse_str(MINIMAL).unwrap();
        assert_eq!(c.receipts.dsn, Some(DsnRequest::default()));
        assert!(!c.receipts.read_receipt);
        assert!(c.receipts.imap.is_none());

        let c = parse_str(&format!(
            "{MINIMAL}\n[receipts]\nnotify = [\"failure\"]\nret = \"full\"\nread_receipt = true\n"
        ))
        .unwrap();
        let dsn = c.receipts.dsn.unwrap();
        assert_eq!((dsn.notify(), dsn.ret), ("FAILURE".to_string(), Ret::Full));
        assert!(c.receipts.read_receipt);

        let c = parse_str(&format!("{MINIMAL}\n[receipts]\nnotify = []\n")).unwrap();
        assert_eq!(c.receipts.dsn, None);
        let c = parse_str(&format!("{MINIMAL}\n[receipts]\nnotify = [\"never\"]\n")).unwrap();
        assert_eq!(c.receipts.dsn.unwrap().notify(), "NEVER");
    }

    #[test]
    fn the_imap_section_gets_defaults_and_never_a_password() {
        let c = parse_str(&format!(
            "{MINIMAL}\n[receipts.imap]\nhost = \"imap.uim.dk\"\nuser = \"rundbrev\"\nca_file = \"ca.pem\"\n"
        ))
        .unwrap();
        let imap = c.receipts.imap.unwrap();
        assert_eq!((imap.port, imap.security), (143, Security::StartTls));
        assert_eq!(imap.folders, ["INBOX"]);
        assert_eq!(imap.password_env, "RUNDBREV_IMAP_PASSWORD");
        assert_eq!(imap.server.ca_file.unwrap(), Path::new("camp/ca.pem"));

        let text = format!(
            "{MINIMAL}\n[receipts.imap]\nhost = \"imap.uim.dk\"\nuser = \"r\"\nsecurity = \"none\"\npassword = \"hemmeligt\"\nfolders = []\n"
        );
        let shown: String = parse_str(&text)
            .unwrap_err()
            .iter()
            .map(|p| p.to_string())
            .collect();
        for key in [
            "receipts.imap.password",
            "receipts.imap.security",
            "receipts.imap.folders",
        ] {
            assert!(shown.contains(key), "{key}: {shown}");
        }
        assert!(!shown.contains("hemmeligt"), "{shown}");
    }

    const IMAP: &str = "[receipts.imap]\nhost = \"imap.uim.dk\"\nuser = \"rundbrev\"\n";

    /// Every problem of a config that must be refused, one a line.
    fn refused(text: &str) -> String {
        parse_str(text)
            .unwrap_err()
            .iter()
            .map(|p| format!("{p}\n"))
            .collect()
    }

    #[test]
    fn the_imap_section_takes_one_pin_or_several_and_checks_the_host_name_by_default() {
        let sha = vec!["3F"; 32].join(":");
        let c = parse_str(&format!("{MINIMAL}\n{IMAP}tls_pin_sha256 = \"{sha}\"\n")).unwrap();
        let imap = c.receipts.imap.unwrap();
        assert_eq!(imap.tls_pins, [Fingerprint::parse(&sha).unwrap()]);
        assert!(imap.tls_check_host_name);
        assert!(imap.warnings().is_empty());

        // A list, without colons and in lower case, and the host name check turned off.
        let key = "91".repeat(32);
        let c = parse_str(&format!(
            "{MINIMAL}\n{IMAP}tls_pin_sha256 = [\"{sha}\", \" {key} \"]\ntls_check_host_name = false\n"
        ))
        .unwrap();
        let imap = c.receipts.imap.unwrap();
        assert_eq!(
            imap.tls_pins,
            [
                Fingerprint::parse(&sha).unwrap(),
                Fingerprint::parse(&key).unwrap()
            ]
        );
        assert!(!imap.tls_check_host_name);
        let warnings = imap.warnings().join("\n");
        assert!(
            warnings.contains("not checked against its certificate (tls_check_host_name = false)")
                && warnings.contains("imap.uim.dk"),
            "{warnings}"
        );

        let c = parse_str(&format!("{MINIMAL}\n{IMAP}")).unwrap();
        let imap = c.receipts.imap.unwrap();
        assert!(imap.tls_pins.is_empty() && imap.tls_check_host_name);
    }

    #[test]
    fn a_bad_imap_pin_is_refused_in_the_words_used_for_smtp_with_its_own_key() {
        let text = format!(
            "{MINIMAL}\n{IMAP}tls_pin_sha256 = [\"AB:CD\", \"{}zz\"]\n",
            "ab".repeat(31)
        );
        let shown = refused(&text);
        assert!(
            shown.contains("key `receipts.imap.tls_pin_sha256`: \"AB:CD\" is not a SHA-256 fingerprint: it has 4 hex digits, a SHA-256 has 64; copy the SHA-256 fingerprint that rundbrev receipts fetch names"),
            "{shown}"
        );
        assert!(
            shown.contains("\"z\" is not a hex digit (0-9, A-F)"),
            "{shown}"
        );
        assert_eq!(shown.lines().count(), 2, "{shown}");

        let smtp = MINIMAL.replace("[stamps]", "[transport]\nkind = \"smtp\"\n\n[transport.smtp]\nhost = \"relay.uim.dk\"\ntls_pin_sha256 = \"AB:CD\"\n\n[stamps]");
        let shown = refused(&smtp);
        assert!(
            shown.contains("key `transport.smtp.tls_pin_sha256`: \"AB:CD\" is not a SHA-256 fingerprint: it has 4 hex digits, a SHA-256 has 64; copy the SHA-256 line that rundbrev check-smtp prints"),
            "{shown}"
        );
    }

    #[test]
    fn the_imap_host_name_check_is_turned_off_only_with_a_pin() {
        let shown = refused(&format!("{MINIMAL}\n{IMAP}tls_check_host_name = false\n"));
        assert!(
            shown.contains("key `receipts.imap.tls_check_host_name`: can only be turned off together with tls_pin_sha256"),
            "{shown}"
        );
        // An empty list is no pin.
        let shown = refused(&format!(
            "{MINIMAL}\n{IMAP}tls_pin_sha256 = []\ntls_check_host_name = false\n"
        ));
        assert!(
            shown.contains("receipts.imap.tls_check_host_name"),
            "{shown}"
        );
        assert!(!shown.contains("transport.smtp"), "{shown}");
    }
}
