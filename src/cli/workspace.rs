//! The campaign as a command opens it: the config (with command-line overrides), the ledger's
//! place, the checked letters and the notes that come with them, and paths as a clerk reads them.
//!
//! Shared by the commands so that each opens the campaign the same way. It reads files but never
//! writes one, and it prints only the notes that `prepare` hands back.

use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::campaign::guard::{Guard, Watch};
use crate::campaign::{self, Letter, Prepared};
use crate::cli::args::Cli;
use crate::cli::output::Output;
use crate::clock;
use crate::config::{self, Config, Transport as TransportConfig};
use crate::problem::{display_path, Problems};
use crate::record::ledger::Ledger;

pub(super) fn load_config(cli: &Cli) -> Result<Config> {
    let mut config = config::load(&cli.config).map_err(Problems)?;
    if let Some(encoding) = cli.encoding {
        config.recipients.encoding = encoding.into();
    }
    Ok(config)
}

pub(super) fn ledger_path(config: &Config) -> PathBuf {
    Ledger::path_for(&config.ledger_dir, &config.campaign.id)
}

/// A path as the clerk knows it: relative to the campaign folder where it lies inside it.
pub(super) fn shown(config: &Config, path: &Path) -> String {
    display_path(path, &config.base).display().to_string()
}

/// Loads, checks and merges every letter, with the ledger's frozen stamps when there is one,
/// and refuses what the `watch` forbids; each letter is also shown to `see`. The recipients
/// file is read once for all of it.
pub(super) fn prepare_guarded(
    config: &Config,
    ledger: Option<&Ledger>,
    watch: Watch,
    out: &Output,
    see: &mut dyn FnMut(&Letter),
) -> Result<Prepared> {
    let mut guard = Guard::new(watch, ledger)?;
    let prepared = campaign::prepare_seeing(config.clone(), ledger, clock::now(), &mut |l| {
        guard.see(l);
        see(l);
    })
    .map_err(Problems)?;
    if prepared.table.encoding != "UTF-8" {
        out.note(format!(
            "{} was read as {}",
            shown(config, &config.recipients.file),
            prepared.table.encoding
        ));
    }
    for note in &prepared.notes {
        out.note(note);
    }
    guard.verdict(&prepared, ledger)?;
    Ok(prepared)
}

/// Loads, checks and merges every letter (for commands that send nothing).
pub(super) fn prepare(config: &Config, ledger: Option<&Ledger>, out: &Output) -> Result<Prepared> {
    prepare_guarded(config, ledger, Watch::default(), out, &mut |_| {})
}

/// "the outbox folder outbox" or "smtp.example.dk:587 (STARTTLS) as rundbrev@uim.dk".
pub(super) fn describe_transport(config: &Config) -> String {
    match &config.transport {
        TransportConfig::Outbox { dir } => format!("the outbox folder {}", shown(config, dir)),
        TransportConfig::Smtp(s) => crate::delivery::smtp::describe(s),
    }
}

/// ` --config FILE` when the campaign is not the default `config.toml`, for suggested commands.
pub(super) fn config_flag(config: &Config) -> String {
    if config.path == Path::new("config.toml") {
        String::new()
    } else {
        format!(" --config {}", config.path.display())
    }
}
