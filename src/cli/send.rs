//! `rundbrev send` and `rundbrev resend --failed`: the letters this run is for go out, and every
//! outcome is recorded.
//!
//! The order is the safety protocol: check every letter and refuse what would differ before
//! anything is written; lock and update the ledger; say what is about to happen and ask; open the
//! connections; freeze the stamps; only then hand letters over (see `delivery` for how each one is
//! made durable). The decisions are made in `campaign`, `delivery` and `exit`.
//!
//! With the outbox, letters an earlier run left `sending` or unknown are first settled from the
//! outbox (`delivery::settle`), with the lock held and before the run is planned. A ledger that
//! cannot be written is told once, in plain words (`storage`): before the first hand-over as this
//! command's error, during the run in its summary.

use std::collections::HashMap;

use anyhow::{Context as _, Result};

use crate::campaign::guard::Watch;
use crate::campaign::plan::{Mode, Plan, Planner, Selection};
use crate::campaign::Prepared;
use crate::cli::args::{OutputFormat, ResendArgs, RunArgs};
use crate::cli::exit::Exit;
use crate::cli::output::Output;
use crate::cli::progress::{self, Lines};
use crate::cli::prompt::{confirm, install_ctrl_c};
use crate::cli::storage;
use crate::cli::summary::{self, ThisRun};
use crate::cli::workspace::{config_flag, describe_transport, ledger_path, prepare_guarded, shown};
use crate::clock;
use crate::config::{Config, Transport as TransportConfig};
use crate::delivery::settle::{self, Settled};
use crate::delivery::{self, connections, Observer, Pace, Summary};
use crate::record::ledger::{Interrupted, Ledger, Listed, State};
use crate::record::storage::LedgerWriteError;

pub(super) fn resend(config: &Config, out: &Output, args: &ResendArgs) -> Result<Exit> {
    debug_assert!(args.failed);
    let mode = Mode::Resend {
        temporary_only: args.temporary_only,
        include_unknown: args.include_unknown,
    };
    run(config, out, mode, &args.run)
}

pub(super) fn run(config: &Config, out: &Output, mode: Mode, args: &RunArgs) -> Result<Exit> {
    // A ledger that cannot be written during the run is told in the run's summary; before the
    // first hand-over, here, in the same plain words.
    send(config, out, mode, args).map_err(|e| match LedgerWriteError::find(&e) {
        Some(failed) => anyhow::anyhow!(storage::ledger_before_sending(config, failed)),
        None => e,
    })
}

fn send(config: &Config, out: &Output, mode: Mode, args: &RunArgs) -> Result<Exit> {
    let path = ledger_path(config);
    std::fs::create_dir_all(&config.ledger_dir).with_context(|| {
        format!(
            "cannot create the ledger folder {}",
            config.ledger_dir.display()
        )
    })?;
    let _lock = Ledger::lock(&path)?;
    let existed = path.exists();
    let mut ledger = Ledger::create_or_open(&path)?;
    let now = clock::stamp_time(clock::now());
    if let (TransportConfig::Outbox { dir }, true) = (&config.transport, config.archive_enabled) {
        // Before the plan: a letter found not delivered goes out in this run. Without the
        // archive there is no copy to prove what was handed over, so nothing is settled.
        let settled = settle::from_outbox(&mut ledger, dir, &config.archive_dir, &now)?;
        note_settled(out, &shown(config, dir), &settled);
    }
    let started = start(config, out, mode, args, &mut ledger, existed, &now);
    let Started { p, plan, accepted } = match started {
        Ok(started) => started,
        Err(e) => {
            // Refused before anything was written: a first run leaves no ledger behind.
            if !existed {
                ledger.discard();
            }
            return Err(e);
        }
    };
    if plan.is_empty() {
        return nothing_to_send(config, out, args, &plan.skipped(mode), &ledger);
    }

    announce(config, out, &p, &plan, mode);
    if matches!(config.transport, TransportConfig::Smtp(_)) {
        confirm(args.yes, plan.len())?;
    }
    let opened = connections::open(config, plan.len())?;
    opened.warnings.iter().for_each(|w| out.note(w));
    // Read again: the start may have taken back every earlier hand-over, and their freeze.
    let frozen = ledger.frozen()?;
    if let Some(f) = p.freeze(frozen.as_ref(), args.accept_changes, &now) {
        ledger.freeze(&f)?;
    }
    // Changed rows accepted with --accept-changes are remembered only once the run goes ahead.
    if !accepted.is_empty() {
        ledger.accept_rows(&accepted, &now)?;
    }
    install_ctrl_c();
    let reader = Ledger::open_existing(&path)?;
    let mut observer: Box<dyn Observer + '_> = if progress::wanted(out.quiet) {
        Box::new(progress::Bar::new(plan.len(), out.verbose))
    } else {
        Box::new(Lines { out })
    };
    let pace = Pace::for_transport(&config.transport);
    // The letters this run hands over are those with an attempt from the next id on.
    let run = ThisRun::after(ledger.next_attempt()? - 1);
    let summary = delivery::execute(
        &p,
        reader.as_ref(),
        &mut ledger,
        opened.transports,
        &plan,
        pace,
        observer.as_mut(),
    );
    drop(observer);
    let summary = summary?;
    report(config, out, args, &summary, &ledger, &run)?;
    Ok(Exit::of(&summary))
}

/// A run after its start: the checked campaign, the plan, and the changed rows the user accepted
/// (keys and row fingerprints), to be remembered once the run goes ahead.
struct Started {
    p: Prepared,
    plan: Plan,
    accepted: Vec<(String, String)>,
}

/// One pass over the recipients file: every letter checked, what would differ or go twice
/// refused, the ledger's recipient list brought up to date and the run planned. The ledger
/// changes only if all of it passes.
fn start(
    config: &Config,
    out: &Output,
    mode: Mode,
    args: &RunArgs,
    ledger: &mut Ledger,
    existed: bool,
    now: &str,
) -> Result<Started> {
    let reader = Ledger::open_existing(ledger.path())?.context("the ledger vanished")?;
    let known = existed.then_some(&reader);
    let frozen = reader.frozen()?;
    let watch = Watch {
        only: args.only.clone(),
        smtp: matches!(config.transport, TransportConfig::Smtp(_)),
        frozen: frozen.clone(),
        accept_changes: args.accept_changes,
        allowed_test_domains: match &config.transport {
            TransportConfig::Smtp(s) => s.allow_test_domains.clone(),
            TransportConfig::Outbox { .. } => Vec::new(),
        },
    };
    let selection = Selection {
        only: args.only.clone(),
        limit: args.limit,
    };
    let mut planner = Planner::new(mode, &selection);
    let mut enlisting = ledger.enlist(now)?;
    // Letters an earlier run left `sending` are settled in the same transaction; the reader
    // still sees them `sending`. Those whose data never started go out as what they were.
    let back: HashMap<String, State> = enlisting.interrupted().back.iter().cloned().collect();
    let mut unwritten = None;
    // Rows changed after their letter went out, accepted now: remembered, so that later runs
    // without --accept-changes do not refuse them again.
    let mut accepted = Vec::new();
    let p = prepare_guarded(config, known, watch, out, &mut |letter| {
        if args.accept_changes && letter.row_changed_since_sent() {
            accepted.push((letter.key.clone(), letter.row_hash.clone()));
        }
        match letter.state() {
            State::Sending => {
                let settled = back.get(&letter.key).copied().unwrap_or(State::Unknown);
                planner.add_letter_as(letter, settled);
            }
            _ => planner.add_letter(letter),
        }
        let listed = Listed {
            key: letter.key.as_str().into(),
            position: letter.index as i64,
            address: letter.to.email.as_str().into(),
            name: letter.to.name.as_str().into(),
        };
        if let Err(e) = enlisting.add(&listed) {
            unwritten.get_or_insert(e);
        }
    })?;
    if let Some(e) = unwritten {
        return Err(e);
    }
    note_interrupted(out, &enlisting.commit()?);
    Ok(Started {
        p,
        plan: planner.finish(),
        accepted,
    })
}

fn note_interrupted(out: &Output, interrupted: &Interrupted) {
    if !interrupted.unknown.is_empty() {
        out.note(format!(
            "{} letter(s) were being handed over when an earlier run stopped ({}); they may have been delivered and are now marked unknown. They are not sent again unless you run `rundbrev resend --failed --include-unknown`.",
            interrupted.unknown.len(),
            interrupted.unknown.join(", ")
        ));
    }
    if !interrupted.back.is_empty() {
        out.note(format!(
            "{} letter(s) had been taken by a connection when an earlier run stopped, but none of their text had gone out; they cannot have arrived and go out as usual.",
            interrupted.back.len()
        ));
    }
}

fn nothing_to_send(
    config: &Config,
    out: &Output,
    args: &RunArgs,
    skipped: &str,
    ledger: &Ledger,
) -> Result<Exit> {
    out.always(format!("Nothing to send. {skipped}"));
    out.say(format!(
        "See the record with: rundbrev status{}",
        config_flag(config)
    ));
    if args.format == OutputFormat::Json {
        summary::write_json(config, &Summary::default(), ledger, &ThisRun::nothing())?;
    }
    Ok(Exit::Done)
}

/// What looking in the outbox settled about letters an earlier run left `sending` or unknown.
fn note_settled(out: &Output, outbox: &str, s: &Settled) {
    if s.is_empty() {
        return;
    }
    let total = s.delivered.len() + s.pending.len() + s.unknown.len();
    let n = |v: usize| format!("{v} letter{}", if v == 1 { "" } else { "s" });
    out.note(format!(
        "an earlier run stopped before it recorded what became of {}; rundbrev looked for {} in the outbox folder {outbox}.",
        n(total),
        if total == 1 { "it" } else { "them" }
    ));
    if !s.delivered.is_empty() {
        out.note(format!(
            "settled from the outbox: {} found there exactly as archived, now recorded as delivered ({}).",
            n(s.delivered.len()),
            s.delivered.join(", ")
        ));
    }
    if !s.pending.is_empty() {
        out.note(format!(
            "settled from the outbox: {} neither there nor in the archive, so never handed over; pending again ({}).",
            n(s.pending.len()),
            s.pending.join(", ")
        ));
    }
    for (key, why) in &s.unknown {
        out.note(format!(
            "still unknown: {key}, because {why}. It is not sent again unless you run `rundbrev resend --failed --include-unknown`."
        ));
    }
}

/// "About to send 98 letters via … from …", the copies, and who is left out and why.
fn announce(config: &Config, out: &Output, p: &Prepared, plan: &Plan, mode: Mode) {
    let n = plan.len();
    let letters = if n == 1 { "letter" } else { "letters" };
    out.always(format!(
        "About to send {n} {letters} via {}, from {}.",
        describe_transport(config),
        config.sender.from
    ));
    for (kind, addr) in p.envelope.copies() {
        out.always(format!(
            "  {kind}: {addr} gets a copy of every letter ({n} copies)."
        ));
    }
    let skipped = plan.skipped(mode);
    if !skipped.is_empty() {
        out.say(skipped);
    }
}

fn report(
    config: &Config,
    out: &Output,
    args: &RunArgs,
    s: &Summary,
    ledger: &Ledger,
    run: &ThisRun,
) -> Result<()> {
    summary::print(config, out, s, ledger, run);
    if args.format == OutputFormat::Json {
        summary::write_json(config, s, ledger, run)?;
    }
    Ok(())
}
