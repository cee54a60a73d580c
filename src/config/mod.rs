//! The campaign file (`config.toml`): sender, subject, stamps, recipients, template, ledger, transport.
//!
//! `parse` turns TOML text into a validated `Config` or a list of every problem found, each naming
//! the key. Relative paths are resolved against the folder the config file is in. This module reads
//! no other file and never holds a secret: passwords come from the environment, a prompt or a command.
//!
//! The top-level sections are read and checked here; the larger ones have a file each: `smtp`
//! (`[transport.smtp]`), `receipts` (`[receipts]` and `[receipts.imap]`) and `letter`
//! (`[letter]`). `server` holds what the two mail server sections share, and `position` finds
//! where a key is written, so that every problem can name its line.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Deserialize;

use crate::problem::Problem;

mod letter;
mod position;
mod receipts;
mod server;
mod smtp;
pub(crate) use letter::LetterSettings;
use position::{dotted, line_of_key, toml_problem};
use receipts::{validate_receipts, RawReceipts};
pub(crate) use receipts::{Imap, Receipts};
pub(crate) use smtp::Smtp;
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

/// How the connection to a mail server is protected, and which hosts never leave this machine.
pub(crate) use crate::net::{is_loopback, Security};
/// How to log in: the SMTP client's own terms.
pub(crate) use crate::smtp::Mechanism;
pub(crate) use crate::trust::Fingerprint;

/// The delivery status notifications to ask for: the SMTP client's own terms.
pub(crate) use crate::smtp::dsn::{DsnRequest, Ret};

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
            unknown.push(dotted(&key))
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

    /// The smallest config that passes; the tests of every section build on it.
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

    /// `parse` with the config file in the folder `camp`.
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
