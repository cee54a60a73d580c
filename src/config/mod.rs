//! The campaign file (`config.toml`): sender, subject, stamps, recipients, template, ledger, transport.
//!
//! `parse` turns TOML text into a validated `Config` or a list of every problem found, each naming
//! the key. Relative paths are resolved against the folder the config file is in. This module reads
//! no other file and never holds a secret: passwords come from the environment, a prompt or a command.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::NaiveDate;
use serde::Deserialize;

use crate::problem::Problem;

mod letter;
mod position;
mod server;
mod smtp;
pub(crate) use letter::LetterSettings;
use position::{line_of_key, toml_problem};
use server::{
    default_command_timeout, default_connect_timeout, default_security, default_true, tls_pins,
    tls_warnings, OneOrMany,
};
pub(crate) use smtp::{is_loopback, Smtp};
use smtp::{validate_smtp, RawSmtp};

/// The validated campaign.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// The config file itself, as given.
    pub path: PathBuf,
    /// The folder relative paths are resolved against.
    pub base: PathBuf,
    pub campaign: Campaign,
    pub sender: Sender,
    pub stamps: Stamps,
    pub recipients: RecipientsSource,
    pub template: PathBuf,
    pub ledger_dir: PathBuf,
    pub preview_dir: PathBuf,
    /// Where every letter is kept, as the exact bytes handed over, for the case file.
    pub archive_dir: PathBuf,
    /// Whether letters are archived at all (`[archive] enabled`, on unless turned off).
    pub archive_enabled: bool,
    pub transport: Transport,
    /// The PDF letter and the attachments (`[letter]`).
    pub letter: LetterSettings,
    /// What the letters ask of the receiving side, and where its reports are fetched.
    pub receipts: Receipts,
}

#[derive(Debug, Clone)]
pub(crate) struct Campaign {
    /// A short name for the campaign; names the ledger file and enters every Message-ID.
    pub id: String,
    /// The subject template (Tera), rendered per recipient.
    pub subject: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Sender {
    pub from: String,
    pub reply_to: Option<String>,
    pub cc: Vec<String>,
    pub bcc: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Stamps {
    /// The letter date; `None` means today in Europe/Copenhagen, frozen at the first send.
    pub letter_date: Option<NaiveDate>,
    pub sags_nr: String,
    pub akt_id: AktIdSource,
}

/// Where each letter's Akt-id comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AktIdSource {
    /// A column of the recipients file.
    Column(String),
    /// The same Akt-id on every letter.
    Same(String),
    /// The first letter gets this number, each following letter the next, in file order.
    Sequence(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    Auto,
    Utf8,
    Windows1252,
}

#[derive(Debug, Clone)]
pub(crate) struct RecipientsSource {
    pub file: PathBuf,
    /// The column that identifies a recipient in the ledger (kommunekode).
    pub key: String,
    pub email: String,
    pub name: String,
    pub encoding: Encoding,
    /// `None`: detect comma or semicolon from the header line.
    pub delimiter: Option<u8>,
    /// The sheet of a workbook to read; `None`: the first.
    pub sheet: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) enum Transport {
    Outbox { dir: PathBuf },
    Smtp(Box<Smtp>),
}

/// How the connection is protected, and how to log in: the SMTP client's own terms.
pub(crate) use crate::smtp::{Mechanism, Security};
pub(crate) use crate::trust::Fingerprint;

/// The delivery status notifications to ask for: the SMTP client's own terms.
pub(crate) use crate::smtp::dsn::{DsnRequest, Ret};

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
pub(crate) const DEFAULT_MAX_MESSAGE_SIZE: u64 = 10 * 1024 * 1024;

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
    pub host: String,
    pub port: u16,
    /// StartTls or Tls; an IMAP login never goes unencrypted.
    pub security: Security,
    pub ca_file: Option<PathBuf>,
    /// Only a server certificate with one of these SHA-256 fingerprints is trusted.
    pub tls_pins: Vec<Fingerprint>,
    /// False only when the user turned the host name check off (allowed only with a pin).
    pub tls_check_host_name: bool,
    pub user: String,
    /// The environment variable that holds the password.
    pub password_env: String,
    /// A command whose first line of output is the password.
    pub password_command: Option<String>,
    /// The folders to read, in order.
    pub folders: Vec<String>,
    pub connect_timeout: Duration,
    pub command_timeout: Duration,
}

impl Imap {
    /// Things about the TLS settings the operator should hear about before the mailbox is read.
    pub(crate) fn warnings(&self) -> Vec<String> {
        tls_warnings(self.tls_check_host_name, &self.host)
    }
}

// ---- what the TOML file may say -------------------------------------------------------------

#[derive(Deserialize)]
struct RawConfig {
    campaign: RawCampaign,
    sender: RawSender,
    stamps: RawStamps,
    #[serde(default)]
    recipients: RawRecipients,
    #[serde(default)]
    template: RawTemplate,
    #[serde(default)]
    ledger: RawLedger,
    #[serde(default)]
    preview: RawPreview,
    #[serde(default)]
    archive: RawArchive,
    #[serde(default)]
    transport: RawTransport,
    #[serde(default)]
    letter: letter::RawLetter,
    #[serde(default)]
    receipts: RawReceipts,
}

#[derive(Deserialize)]
struct RawCampaign {
    id: String,
    subject: String,
}

#[derive(Deserialize)]
struct RawSender {
    from: String,
    reply_to: Option<String>,
    #[serde(default)]
    cc: Vec<String>,
    #[serde(default)]
    bcc: Vec<String>,
}

#[derive(Deserialize)]
struct RawStamps {
    letter_date: Option<toml::Value>,
    sags_nr: String,
    akt_id: Option<String>,
    akt_id_first: Option<String>,
    akt_id_column: Option<String>,
}

#[derive(Deserialize)]
#[serde(default)]
struct RawRecipients {
    file: PathBuf,
    key: String,
    email: String,
    name: String,
    encoding: String,
    delimiter: String,
    sheet: Option<String>,
}

impl Default for RawRecipients {
    fn default() -> Self {
        RawRecipients {
            file: "recipients/kommuner.csv".into(),
            key: "kommunekode".into(),
            email: "email".into(),
            name: "navn".into(),
            encoding: "auto".into(),
            delimiter: "auto".into(),
            sheet: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct RawTemplate {
    file: PathBuf,
}

impl Default for RawTemplate {
    fn default() -> Self {
        RawTemplate {
            file: "templates/rundbrev.md".into(),
        }
    }
}

#[derive(Deserialize, Default)]
struct RawLedger {
    dir: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(default)]
struct RawPreview {
    dir: PathBuf,
}

impl Default for RawPreview {
    fn default() -> Self {
        RawPreview {
            dir: "preview".into(),
        }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct RawArchive {
    dir: PathBuf,
    enabled: bool,
}

impl Default for RawArchive {
    fn default() -> Self {
        RawArchive {
            dir: "archive".into(),
            enabled: true,
        }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct RawTransport {
    kind: String,
    outbox: PathBuf,
    smtp: Option<RawSmtp>,
}

impl Default for RawTransport {
    fn default() -> Self {
        RawTransport {
            kind: "outbox".into(),
            outbox: "outbox".into(),
            smtp: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(default)]
struct RawReceipts {
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

/// Reads and validates the config file.
pub(crate) fn load(path: &Path) -> Result<Config, Vec<Problem>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![Problem::new(
            path,
            format!("cannot read the config file: {e}"),
        )]
    })?;
    parse(&text, path)
}

/// Validates config text. `path` names the file in messages and anchors relative paths.
pub(crate) fn parse(text: &str, path: &Path) -> Result<Config, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut unknown = Vec::new();
    let raw: Option<RawConfig> =
        match serde_ignored::deserialize(toml::Deserializer::new(text), |key| {
            unknown.push(key.to_string())
        }) {
            Ok(raw) => Some(raw),
            Err(e) => {
                problems.push(toml_problem(path, text, &e));
                None
            }
        };
    for key in unknown {
        let mut p = Problem::new(path, "unknown key; check its spelling and section").at_key(&key);
        if let Some(line) = line_of_key(text, &key) {
            p = p.at_line(line);
        }
        problems.push(p);
    }
    let Some(raw) = raw else {
        return Err(problems);
    };
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let base = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base
    };
    let config = validate(raw, path, &base, text, &mut problems);
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

fn validate(
    raw: RawConfig,
    path: &Path,
    base: &Path,
    text: &str,
    problems: &mut Vec<Problem>,
) -> Config {
    let mut bad = |key: &str, message: String| {
        let mut p = Problem::new(path, message).at_key(key);
        if let Some(line) = line_of_key(text, key) {
            p = p.at_line(line);
        }
        problems.push(p);
    };

    let id = raw.campaign.id.trim().to_string();
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
    {
        bad(
            "campaign.id",
            format!("`{id}` must be a short name of letters a-z, digits, '-', '_' or '.' (it names the ledger file and enters every Message-ID)"),
        );
    }
    if raw.campaign.subject.trim().is_empty() {
        bad("campaign.subject", "the subject is empty".into());
    }

    for (key, value) in [
        ("sender.from", Some(&raw.sender.from)),
        ("sender.reply_to", raw.sender.reply_to.as_ref()),
    ] {
        if let Some(value) = value {
            if let Err(e) = value.parse::<lettre::message::Mailbox>() {
                bad(key, format!("`{value}` is not a valid address ({e})"));
            }
        }
    }
    for (key, list) in [
        ("sender.cc", &raw.sender.cc),
        ("sender.bcc", &raw.sender.bcc),
    ] {
        for value in list {
            if let Err(e) = value.parse::<lettre::message::Mailbox>() {
                bad(key, format!("`{value}` is not a valid address ({e})"));
            }
        }
    }

    let letter_date = match &raw.stamps.letter_date {
        None => None,
        Some(value) => match parse_date(value) {
            Ok(d) => Some(d),
            Err(msg) => {
                bad("stamps.letter_date", msg);
                None
            }
        },
    };
    if raw.stamps.sags_nr.trim().is_empty() {
        bad("stamps.sags_nr", "Sags nr. is empty".into());
    }
    let given: Vec<&str> = [
        ("akt_id", raw.stamps.akt_id.is_some()),
        ("akt_id_first", raw.stamps.akt_id_first.is_some()),
        ("akt_id_column", raw.stamps.akt_id_column.is_some()),
    ]
    .into_iter()
    .filter(|(_, set)| *set)
    .map(|(k, _)| k)
    .collect();
    if given.len() > 1 {
        bad(
            "stamps",
            format!(
                "set only one of akt_id, akt_id_first and akt_id_column (found {})",
                given.join(", ")
            ),
        );
    }
    let akt_id = if let Some(col) = raw.stamps.akt_id_column {
        AktIdSource::Column(col)
    } else if let Some(first) = raw.stamps.akt_id_first {
        if first.is_empty() || !first.chars().all(|c| c.is_ascii_digit()) {
            bad(
                "stamps.akt_id_first",
                format!("`{first}` must be digits only, so that the following letters can be numbered on"),
            );
        }
        AktIdSource::Sequence(first)
    } else if let Some(same) = raw.stamps.akt_id {
        if same.trim().is_empty() {
            bad("stamps.akt_id", "Akt-id is empty".into());
        }
        AktIdSource::Same(same)
    } else {
        AktIdSource::Column("akt_id".into())
    };

    let encoding = match raw.recipients.encoding.to_ascii_lowercase().as_str() {
        "auto" => Encoding::Auto,
        "utf-8" | "utf8" => Encoding::Utf8,
        "windows-1252" | "cp1252" | "latin1" | "iso-8859-1" => Encoding::Windows1252,
        other => {
            bad(
                "recipients.encoding",
                format!("`{other}` is not supported; use \"auto\", \"utf-8\" or \"windows-1252\""),
            );
            Encoding::Auto
        }
    };
    let delimiter = match raw.recipients.delimiter.as_str() {
        "auto" => None,
        "," => Some(b','),
        ";" => Some(b';'),
        "\t" | "tab" => Some(b'\t'),
        other => {
            bad(
                "recipients.delimiter",
                format!("`{other}` is not supported; use \"auto\", \",\", \";\" or \"tab\""),
            );
            None
        }
    };
    for (key, value) in [
        ("recipients.key", &raw.recipients.key),
        ("recipients.email", &raw.recipients.email),
        ("recipients.name", &raw.recipients.name),
    ] {
        if value.trim().is_empty() {
            bad(key, "the column name is empty".into());
        }
    }

    let transport = match raw.transport.kind.as_str() {
        "outbox" => Transport::Outbox {
            dir: base.join(&raw.transport.outbox),
        },
        "smtp" => match raw.transport.smtp {
            None => {
                bad(
                    "transport.kind",
                    "is \"smtp\" but there is no [transport.smtp] section with the server's host"
                        .into(),
                );
                Transport::Outbox {
                    dir: base.join(&raw.transport.outbox),
                }
            }
            Some(smtp) => Transport::Smtp(Box::new(validate_smtp(smtp, base, &mut bad))),
        },
        other => {
            bad(
                "transport.kind",
                format!("`{other}` is not a transport; use \"outbox\" or \"smtp\""),
            );
            Transport::Outbox {
                dir: base.join(&raw.transport.outbox),
            }
        }
    };

    let receipts = validate_receipts(raw.receipts, base, &mut bad);
    let mut transport = transport;
    if let Transport::Smtp(smtp) = &mut transport {
        smtp.dsn = receipts.dsn;
    }

    let letter = letter::validate(raw.letter, base, &mut bad);
    Config {
        letter,
        path: path.to_path_buf(),
        base: base.to_path_buf(),
        campaign: Campaign {
            id,
            subject: raw.campaign.subject,
        },
        sender: Sender {
            from: raw.sender.from,
            reply_to: raw.sender.reply_to,
            cc: raw.sender.cc,
            bcc: raw.sender.bcc,
        },
        stamps: Stamps {
            letter_date,
            sags_nr: raw.stamps.sags_nr.trim().to_string(),
            akt_id,
        },
        recipients: RecipientsSource {
            file: base.join(&raw.recipients.file),
            key: raw.recipients.key,
            email: raw.recipients.email,
            name: raw.recipients.name,
            encoding,
            delimiter,
            sheet: raw.recipients.sheet,
        },
        template: base.join(&raw.template.file),
        ledger_dir: raw
            .ledger
            .dir
            .map(|d| base.join(d))
            .unwrap_or_else(|| base.to_path_buf()),
        preview_dir: base.join(&raw.preview.dir),
        archive_dir: base.join(&raw.archive.dir),
        archive_enabled: raw.archive.enabled,
        transport,
        receipts,
    }
}

fn validate_receipts(
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
        if imap.password.is_some() {
            bad(
                "receipts.imap.password",
                "a password must never be written in the config file; remove it and set the environment variable named by password_env, use password_command, or type it when asked".into(),
            );
        }
        let security = match imap.security.to_ascii_lowercase().as_str() {
            "starttls" => Security::StartTls,
            "tls" => Security::Tls,
            other => {
                bad(
                    "receipts.imap.security",
                    format!("`{other}` is not supported; use \"starttls\" (usually port 143) or \"tls\" (usually port 993)"),
                );
                Security::StartTls
            }
        };
        let host = imap.host.trim().to_string();
        if host.is_empty() {
            bad("receipts.imap.host", "the host is empty".into());
        }
        if imap.user.trim().is_empty() {
            bad("receipts.imap.user", "the user is empty".into());
        }
        if imap.folders.is_empty() || imap.folders.iter().any(|f| f.trim().is_empty()) {
            bad(
                "receipts.imap.folders",
                "name at least one folder, e.g. [\"INBOX\"], and no empty names".into(),
            );
        }
        if imap.connect_timeout_secs == 0 || imap.command_timeout_secs == 0 {
            bad("receipts.imap", "timeouts must be at least 1 second".into());
        }
        let tls_pins = tls_pins(
            "receipts.imap",
            &OneOrMany::strings(imap.tls_pin_sha256),
            imap.tls_check_host_name,
            "the SHA-256 fingerprint that rundbrev receipts fetch names when it does not trust the server's certificate",
            bad,
        );
        Imap {
            port: imap.port.unwrap_or(match security {
                Security::Tls => 993,
                _ => 143,
            }),
            host,
            security,
            ca_file: imap.ca_file.map(|p| base.join(p)),
            tls_pins,
            tls_check_host_name: imap.tls_check_host_name,
            user: imap.user,
            password_env: imap.password_env,
            password_command: imap.password_command,
            folders: imap.folders,
            connect_timeout: Duration::from_secs(imap.connect_timeout_secs),
            command_timeout: Duration::from_secs(imap.command_timeout_secs),
        }
    });
    Receipts {
        dsn: (!words.is_empty()).then_some(dsn),
        read_receipt: raw.read_receipt,
        imap,
        max_message_size: raw.max_message_size.unwrap_or(DEFAULT_MAX_MESSAGE_SIZE),
    }
}

fn parse_date(value: &toml::Value) -> Result<NaiveDate, String> {
    let text = match value {
        toml::Value::String(s) => s.clone(),
        toml::Value::Datetime(d) => d.to_string(),
        other => {
            return Err(format!(
                "expected a date like \"2020-06-29\", found {}",
                other.type_str()
            ))
        }
    };
    NaiveDate::parse_from_str(text.trim(), "%Y-%m-%d")
        .map_err(|_| format!("`{text}` is not a date; write it as \"2020-06-29\" (year-month-day)"))
}

/// The keys that decide what each letter looks like, so a change after the first send can be noticed.
/// Stamps are left out on purpose: they are frozen in the ledger and cannot change a sent letter.
pub(crate) fn content_fingerprint_parts(config: &Config) -> Vec<(&'static str, String)> {
    let s = &config.sender;
    let mut parts = vec![
        ("campaign.subject", config.campaign.subject.clone()),
        ("sender.from", s.from.clone()),
        ("sender.reply_to", s.reply_to.clone().unwrap_or_default()),
        ("sender.cc", s.cc.join(",")),
        ("sender.bcc", s.bcc.join(",")),
    ];
    // Only when on, so that the fingerprint of a campaign without it stays what it was.
    if config.receipts.read_receipt {
        parts.push(("receipts.read_receipt", "true".into()));
    }
    parts.extend(config.letter.fingerprint_parts());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const MINIMAL: &str = r#"
[campaign]
id = "test"
subject = "Hej {{ navn }}"

[sender]
from = "Ministeriet <uim@uim.dk>"

[stamps]
letter_date = "2020-06-29"
sags_nr = "2020-1"
akt_id_first = "0099"
"#;

    pub(super) fn parse_str(text: &str) -> Result<Config, Vec<Problem>> {
        parse(text, Path::new("camp/config.toml"))
    }

    #[test]
    fn minimal_config_gets_defaults_relative_to_its_folder() {
        let c = parse_str(MINIMAL).unwrap();
        assert_eq!(c.recipients.file, Path::new("camp/recipients/kommuner.csv"));
        assert_eq!(c.template, Path::new("camp/templates/rundbrev.md"));
        assert_eq!(c.archive_dir, Path::new("camp/archive"));
        assert_eq!(c.stamps.akt_id, AktIdSource::Sequence("0099".into()));
        assert_eq!(c.stamps.letter_date, NaiveDate::from_ymd_opt(2020, 6, 29));
        assert!(matches!(c.transport, Transport::Outbox { .. }));
    }

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
        assert_eq!(imap.ca_file.unwrap(), Path::new("camp/ca.pem"));

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

    #[test]
    fn two_akt_id_sources_are_refused() {
        let text = MINIMAL.replace(
            "akt_id_first = \"0099\"",
            "akt_id_first = \"1\"\nakt_id = \"2\"",
        );
        assert!(parse_str(&text).is_err());
    }

    #[test]
    fn a_toml_date_literal_is_accepted() {
        let text = MINIMAL.replace("letter_date = \"2020-06-29\"", "letter_date = 2020-06-29");
        assert_eq!(
            parse_str(&text).unwrap().stamps.letter_date,
            NaiveDate::from_ymd_opt(2020, 6, 29)
        );
    }
}
