//! The campaign as a command opens it: the config (with command-line overrides), the ledger's
//! place, the checked letters and the notes that come with them, and paths as a clerk reads them.
//!
//! Shared by the commands so that each opens the campaign the same way. It reads files but never
//! writes one (a command that keeps the composed letters writes them in its own keeper), and it
//! prints only the notes that `prepare` hands back.

use std::path::{Path, PathBuf};

use anyhow::Result;
use chrono::{DateTime, Utc};

use crate::campaign::guard::{Guard, Watch};
use crate::campaign::{self, Keeper, Letter, Prepared};
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
    let (checked, _) = check_keeping::<()>(config, ledger, watch, clock::now(), see, None)?;
    checked.accept(config, out)
}

/// A campaign whose letters were checked, before its notes are told and the guard's verdict is
/// given (`accept`).
pub(super) struct Checked<'l> {
    prepared: Prepared,
    guard: Guard,
    ledger: Option<&'l Ledger>,
}

/// The check of `prepare_guarded` with the letters composed at `now`, handing each one that
/// composed without a problem to `keeper` (see `campaign::Keeper`); returns the campaign
/// checked and how the keeping went. Nothing is said yet, so the caller can end what it shows
/// first.
pub(super) fn check_keeping<'l, T: Send>(
    config: &Config,
    ledger: Option<&'l Ledger>,
    watch: Watch,
    now: DateTime<Utc>,
    see: &mut dyn FnMut(&Letter),
    keeper: Option<Keeper<'_, T>>,
) -> Result<(Checked<'l>, Result<()>)> {
    let mut guard = Guard::new(watch, ledger)?;
    let (prepared, kept) = campaign::prepare_keeping(
        config.clone(),
        ledger,
        now,
        &mut |l| {
            guard.see(l);
            see(l);
        },
        keeper,
    )
    .map_err(Problems)?;
    let checked = Checked {
        prepared,
        guard,
        ledger,
    };
    Ok((checked, kept))
}

impl Checked<'_> {
    /// Tells the notes that come with the campaign and gives the guard's verdict: the campaign,
    /// when the run may go ahead.
    pub(super) fn accept(self, config: &Config, out: &Output) -> Result<Prepared> {
        let Checked {
            prepared,
            guard,
            ledger,
        } = self;
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
