//! The end of a send or resend run, for scripts (`--format json`) and in a clerk's words.
//!
//! It reads the ledger after the run: the outcome of each letter the run handed over, and the
//! most common reason among those that were not delivered. It never changes the ledger.

use std::collections::BTreeMap;
use std::io::Write as _;

use anyhow::Result;
use serde::Serialize;

use crate::cli::output::Output;
use crate::cli::storage;
use crate::cli::terminal::Tone;
use crate::cli::workspace::{config_flag, shown};
use crate::config::Config;
use crate::config::Transport as TransportConfig;
use crate::delivery::stop::Stop;
use crate::delivery::Summary;
use crate::record::explain;
use crate::record::ledger::{Ledger, Record, State};
use crate::record::status;

/// The letters a run handed over: those with an attempt recorded after a given one (an attempt
/// taken back unsent leaves no trace). Nothing is kept per letter.
pub(super) struct ThisRun {
    after: Option<i64>,
}

impl ThisRun {
    /// A run whose attempts come after attempt `last` (0: the ledger had none).
    pub(super) fn after(last: i64) -> ThisRun {
        ThisRun { after: Some(last) }
    }

    /// A run that handed nothing over.
    pub(super) fn nothing() -> ThisRun {
        ThisRun { after: None }
    }
}

/// The letters this run handed over that were not delivered, in file order.
fn run_not_delivered(ledger: &Ledger, run: &ThisRun) -> Result<Vec<Record>> {
    match run.after {
        Some(after) => ledger.not_delivered_since(after),
        None => Ok(Vec::new()),
    }
}

/// The most common reason, in plain words, why letters of this run failed (failed-temporary or
/// failed-permanent); `None` when none did or the ledger cannot be read.
pub(super) fn failure_reason(ledger: &Ledger, run: &ThisRun) -> Option<String> {
    let failures: Vec<(State, String)> = run_not_delivered(ledger, run)
        .ok()?
        .into_iter()
        .filter(|r| r.state.is_failed())
        .map(|r| (r.state, r.last_reply.unwrap_or_default()))
        .collect();
    explain::summarise(&failures)
}

#[derive(Serialize)]
struct NotDelivered {
    key: String,
    name: String,
    address: String,
    state: &'static str,
    reply: String,
    reason: &'static str,
}

#[derive(Serialize)]
struct JsonSummary<'a> {
    campaign: &'a str,
    /// Letters handed over in this run.
    sent: usize,
    delivered: usize,
    failed_temporary: usize,
    failed_permanent: usize,
    unknown: usize,
    /// Why the run stopped early, if it did.
    stopped: Option<String>,
    /// Letters left pending because the run stopped.
    left: usize,
    /// Letters whose outcome could not be recorded (the ledger could not be written); the next
    /// run finds them unknown, or settles them from the outbox.
    unrecorded: usize,
    /// The run's letters that were not delivered, with the server's reply and its plain meaning.
    not_delivered: Vec<NotDelivered>,
    /// The whole campaign after this run: how many recipients are in each state.
    ledger_counts: BTreeMap<&'static str, usize>,
    ledger: String,
}

/// Prints the run's summary as one JSON object on standard output.
pub(super) fn write_json(
    config: &Config,
    summary: &Summary,
    ledger: &Ledger,
    run: &ThisRun,
) -> Result<()> {
    let not_delivered = run_not_delivered(ledger, run)?
        .into_iter()
        .map(|r| {
            let reply = r.last_reply.unwrap_or_default();
            NotDelivered {
                reason: explain::reason(r.state, &reply),
                key: r.key,
                name: r.name,
                address: r.address,
                state: r.state.as_str(),
                reply,
            }
        })
        .collect();
    let mut ledger_counts: BTreeMap<&'static str, usize> =
        State::ALL.iter().map(|s| (s.as_str(), 0)).collect();
    for (state, n) in ledger.counts()? {
        *ledger_counts
            .entry(status::shown_state(state, false).as_str())
            .or_default() += n;
    }
    let json = JsonSummary {
        campaign: &config.campaign.id,
        sent: summary.delivered + summary.failed(),
        delivered: summary.delivered,
        failed_temporary: summary.failed_temporary,
        failed_permanent: summary.failed_permanent,
        unknown: summary.unknown,
        stopped: summary.stopped.as_ref().map(ToString::to_string),
        left: summary.left,
        unrecorded: summary.unrecorded,
        not_delivered,
        ledger_counts,
        ledger: ledger.path().display().to_string(),
    };
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, &json)?;
    writeln!(stdout)?;
    Ok(())
}

/// The end of a run in a clerk's words: what was delivered, what failed and why, what is unknown,
/// why the run stopped, and where the record is.
pub(super) fn print(config: &Config, out: &Output, s: &Summary, ledger: &Ledger, run: &ThisRun) {
    let mut line = format!(
        "Delivered {} letter{}",
        s.delivered,
        if s.delivered == 1 { "" } else { "s" }
    );
    if let TransportConfig::Outbox { dir } = &config.transport {
        line.push_str(&format!(
            " to {} (one .eml file each, named by Akt-id and kommunekode)",
            shown(config, dir)
        ));
    }
    line.push('.');
    out.always_in(Tone::Good, line);
    let failed = s.failed_temporary + s.failed_permanent;
    if failed > 0 {
        let why = failure_reason(ledger, run)
            .map(|why| format!(": {why}"))
            .unwrap_or_default();
        out.always_in(Tone::Bad, format!(
            "{failed} {} not delivered ({} for now, {} refused for good){why}. See `rundbrev status --state failed`; send them again with `rundbrev resend --failed`.",
            if failed == 1 { "letter was" } else { "letters were" },
            s.failed_temporary,
            s.failed_permanent
        ));
    }
    if s.unknown > 0 {
        out.always(format!(
            "{} letter{} may or may not have arrived: the connection broke after the letter was sent. See `rundbrev status --state unknown`.",
            s.unknown,
            if s.unknown == 1 { "" } else { "s" }
        ));
    }
    if let Some(Stop::LedgerUnwritable(e)) = &s.stopped {
        let outbox = matches!(config.transport, TransportConfig::Outbox { .. });
        for line in storage::ledger_stopped(config, e, s.delivered, s.unrecorded, s.left, outbox) {
            out.always(line);
        }
    } else if let Some(reason) = &s.stopped {
        let next = if reason.is_interrupted() {
            "Run the same command again to continue"
        } else {
            "Fix the cause and run the same command again to continue"
        };
        out.always(format!(
            "The run stopped: {reason}. {} letter{} were not sent and stay pending; nothing is lost. {next}.",
            s.left,
            if s.left == 1 { "" } else { "s" }
        ));
    }
    out.always(format!(
        "The record is in {}. See who got the letter: rundbrev status{}",
        shown(config, ledger.path()),
        config_flag(config)
    ));
}
