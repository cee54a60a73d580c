//! `rundbrev status`: who got the letter, from the ledger, as a table, CSV or JSON.
//!
//! The formats for scripts (CSV, JSON) stay English and stable. It only reads the ledger; a
//! letter left `sending` with no run going is shown as unknown.

use std::io::Write as _;

use anyhow::Result;

use crate::cli::args::{Format, StateFilter, StatusArgs};
use crate::cli::exit::{is_broken_pipe, Exit};
use crate::cli::workspace::{ledger_path, shown};
use crate::config::Config;
use crate::record::ledger::{Ledger, State};
use crate::record::status;

pub(super) fn run(config: &Config, args: &StatusArgs) -> Result<Exit> {
    let path = ledger_path(config);
    let Some(ledger) = Ledger::open_existing(&path)? else {
        let _ = writeln!(
            std::io::stdout(),
            "Nothing has been sent yet for campaign {} (there is no ledger at {}). Run `rundbrev send` to start.",
            config.campaign.id,
            shown(config, &path)
        );
        return Ok(Exit::Done);
    };
    let rows = status::rows(
        &ledger.records()?,
        &ledger.receipts()?,
        Ledger::is_locked(&path),
    );
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| match args.state {
            None => true,
            Some(f) => matches_filter(f, State::parse(r.state).unwrap_or(State::Unknown)),
        })
        .collect();
    let stdout = std::io::stdout();
    let mut lock = stdout.lock();
    let written = match args.format {
        Format::Table => status::write_table(&mut lock, &rows).map_err(anyhow::Error::from),
        Format::Csv => status::write_csv(&mut lock, &rows),
        Format::Json => status::write_json(&mut lock, &config.campaign.id, &rows),
    };
    match written {
        // A reader that stops early (`| head`) is not an error.
        Err(e) if is_broken_pipe(&e) => Ok(Exit::Done),
        Err(e) => Err(e),
        Ok(()) => Ok(Exit::Done),
    }
}

fn matches_filter(f: StateFilter, s: State) -> bool {
    match f {
        StateFilter::Pending => s == State::Pending,
        StateFilter::Sending => s == State::Sending,
        StateFilter::Delivered => s == State::Delivered,
        StateFilter::Failed => s.is_failed(),
        StateFilter::FailedTemporary => s == State::FailedTemporary,
        StateFilter::FailedPermanent => s == State::FailedPermanent,
        StateFilter::Unknown => s == State::Unknown,
        StateFilter::Bounced => s == State::Bounced,
    }
}
