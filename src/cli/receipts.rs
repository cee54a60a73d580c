//! `rundbrev receipts import` and `rundbrev receipts inspect`: what came back after sending, read
//! into the record or only shown.
//!
//! `import` opens the campaign's ledger and hands each message to `receipts::record_message`,
//! then says in a clerk's words what each did; `inspect` parses messages and prints what they
//! say, and never opens a ledger. Neither changes, moves or deletes a message file.

use std::io::Write as _;

use anyhow::{bail, Result};
use serde::Serialize;

use crate::cli::args::{Cli, OutputFormat, ReceiptsImportArgs, ReceiptsInspectArgs};
use crate::cli::exit::Exit;
use crate::cli::output::Output;
use crate::cli::workspace::{self, ledger_path, shown};
use crate::config::{Config, Receipts};
use crate::receipts::{self, parse, source, Origin, Outcome, Recorded};
use crate::record::fact::bounce_words;
use crate::record::ledger::{Ledger, State};

/// Reads every message under the paths into the ledger, and says what each did.
pub(super) fn import(config: &Config, out: &Output, args: &ReceiptsImportArgs) -> Result<Exit> {
    source::all_exist(&args.paths)?;
    let path = ledger_path(config);
    if !path.exists() {
        bail!(
            "there is nothing to match receipts to: no letter of campaign {} has been sent (there is no ledger at {}). Run `rundbrev send` first.",
            config.campaign.id,
            shown(config, &path)
        );
    }
    let mut ledger = Ledger::create_or_open(&path)?;
    let mut tally = Tally::default();
    source::read_all(
        &args.paths,
        config.receipts.max_message_size,
        &mut |found| {
            let origin = shown_origin(config, &found.origin);
            tally.messages += 1;
            let recorded = match found.raw {
                Err(why) => Recorded {
                    kind: receipts::Kind::Unknown,
                    skipped: Some(why),
                    entries: Vec::new(),
                },
                Ok(raw) => receipts::record_message(&mut ledger, config, &found.origin, &raw)?,
            };
            tell(out, &origin, &recorded, &mut tally);
            Ok(())
        },
    )?;
    out.always(tally.line());
    advise(config, out, &tally);
    Ok(Exit::Done)
}

/// After bounces: how to see them, and how to send again once the address is corrected.
pub(super) fn advise(config: &Config, out: &Output, tally: &Tally) {
    if tally.bounced > 0 {
        out.say(format!(
            "See who bounced with: rundbrev status --state bounced{}. Correct their address in {}, then send again with: rundbrev resend --failed --accept-changes",
            workspace::config_flag(config),
            shown(config, &config.recipients.file)
        ));
    }
}

/// What an import (or a fetch) did, counted.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) messages: usize,
    bounced: usize,
    settled: usize,
    recorded: usize,
    already: usize,
    unmatched: usize,
    skipped: usize,
}

impl Tally {
    pub(super) fn line(&self) -> String {
        let mut parts = vec![
            format!("{} bounced", self.bounced),
            format!("{} recorded", self.recorded),
        ];
        if self.settled > 0 {
            parts.push(format!(
                "{} unknown letter(s) now known to be delivered",
                self.settled
            ));
        }
        parts.push(format!("{} already recorded before", self.already));
        parts.push(format!("{} not matched to a letter", self.unmatched));
        parts.push(format!("{} skipped", self.skipped));
        format!(
            "Read {} message{}: {}.",
            self.messages,
            if self.messages == 1 { "" } else { "s" },
            parts.join(", ")
        )
    }
}

/// Says what recording one message did, and counts it.
pub(super) fn tell(out: &Output, origin: &str, recorded: &Recorded, tally: &mut Tally) {
    if let Some(why) = &recorded.skipped {
        tally.skipped += 1;
        out.note(format!("{origin}: {why}"));
        return;
    }
    out.say(format!("{origin}: {}", kind_words(recorded.kind)));
    for e in &recorded.entries {
        match &e.outcome {
            Outcome::Changed { key, from, to, .. } if *to == State::Bounced => {
                tally.bounced += 1;
                out.say(format!(
                    "  {key} {}: now bounced (was {from}): {}",
                    e.address,
                    bounce_words(e.status.as_deref())
                ));
            }
            Outcome::Changed { key, from, to, .. } => {
                tally.recorded += 1;
                tally.settled += 1;
                out.say(format!(
                    "  {key} {}: now {to} (was {from}): the report shows the letter arrived",
                    e.address
                ));
            }
            Outcome::Stored { key, state, .. } => {
                tally.recorded += 1;
                out.say(format!(
                    "  {key} {}: recorded; the letter stays {state}",
                    e.address
                ));
            }
            Outcome::AlreadyStored { key } => {
                tally.already += 1;
                out.say(format!(
                    "  {key} {}: already recorded (this message was read before)",
                    e.address
                ));
            }
            Outcome::Unmatched(why) => {
                tally.unmatched += 1;
                out.note(format!(
                    "{origin}: {} not matched, nothing changed: {why}",
                    e.address
                ));
            }
        }
    }
}

fn kind_words(kind: receipts::Kind) -> &'static str {
    use receipts::Kind;
    match kind {
        Kind::Bounce => "a bounce (the letter was not delivered)",
        Kind::Delay => "a delay (not delivered yet, the server keeps trying)",
        Kind::Delivered => "a delivery report (delivered)",
        Kind::Relayed => "a relay report (passed on to a system that sends no reports)",
        Kind::AutoReply => "an automatic reply (such as out of office; not a failure)",
        Kind::Reply => "a reply",
        Kind::Read => "a read receipt",
        Kind::Feedback => "an abuse or feedback report",
        Kind::Unknown => "a message rundbrev does not recognise",
    }
}

fn shown_origin(config: &Config, origin: &Origin) -> String {
    match origin {
        Origin::File { path } => shown(config, path),
        Origin::Mbox { path, number } => format!("{} (message {number})", shown(config, path)),
        other => other.to_string(),
    }
}

/// One message as `inspect --format json` prints it.
#[derive(Serialize)]
struct Inspected {
    file: String,
    /// The message's number in an mbox file, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<usize>,
    kind: &'static str,
    recipients: Vec<InspectedRecipient>,
    original_message_id: Option<String>,
    envelope_id: Option<String>,
    queue_id: Option<String>,
    reporter: Option<String>,
    date: Option<String>,
    /// Why the message could not be read, when it could not.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
}

#[derive(Serialize)]
struct InspectedRecipient {
    address: String,
    status: Option<String>,
    action: String,
    diagnostic: Option<String>,
}

/// Parses messages and prints what they say; no ledger is opened.
pub(super) fn inspect(cli: &Cli, out: &Output, args: &ReceiptsInspectArgs) -> Result<Exit> {
    // The size limit of the campaign here, if there is one; no campaign is needed.
    let max = if cli.config.exists() {
        workspace::load_config(cli)?.receipts.max_message_size
    } else {
        Receipts::default().max_message_size
    };
    let mut all = Vec::new();
    source::read_all(&args.files, max, &mut |found| {
        let (file, message) = match &found.origin {
            Origin::File { path } => (path.display().to_string(), None),
            Origin::Mbox { path, number } => (path.display().to_string(), Some(*number)),
            other => (other.to_string(), None),
        };
        let inspected = match found.raw {
            Err(why) => Inspected {
                file,
                message,
                kind: receipts::Kind::Unknown.as_str(),
                recipients: Vec::new(),
                original_message_id: None,
                envelope_id: None,
                queue_id: None,
                reporter: None,
                date: None,
                note: Some(why),
            },
            Ok(raw) => {
                let u = parse::understand(&raw);
                Inspected {
                    file,
                    message,
                    kind: u.kind().as_str(),
                    recipients: u
                        .recipients
                        .iter()
                        .map(|r| InspectedRecipient {
                            address: r.address.clone(),
                            status: r.status.clone(),
                            action: r.action.clone(),
                            diagnostic: r.diagnostic.clone(),
                        })
                        .collect(),
                    original_message_id: u.original_message_id,
                    envelope_id: u.envid,
                    queue_id: u.queue_id,
                    reporter: u.reporter,
                    date: u.date,
                    note: u.unreadable.map(|w| format!("cannot be read: {w}")),
                }
            }
        };
        all.push(inspected);
        Ok(())
    })?;
    if args.format == OutputFormat::Json {
        let mut stdout = std::io::stdout().lock();
        serde_json::to_writer_pretty(&mut stdout, &all)?;
        writeln!(stdout)?;
        return Ok(Exit::Done);
    }
    for m in &all {
        let name = match m.message {
            Some(n) => format!("{} (message {n})", m.file),
            None => m.file.clone(),
        };
        let kind = receipts::Kind::parse(m.kind).unwrap_or(receipts::Kind::Unknown);
        let mut text = format!("{name}: {}", kind_words(kind));
        if let Some(note) = &m.note {
            text.push_str(&format!("\n  {note}"));
        }
        for r in &m.recipients {
            text.push_str(&format!(
                "\n  {}: {}{}",
                r.address,
                r.action,
                r.status
                    .as_deref()
                    .map(|s| format!(" {s}"))
                    .unwrap_or_default()
            ));
            if r.action == "failed" {
                text.push_str(&format!(" — {}", bounce_words(r.status.as_deref())));
            }
            if let Some(d) = &r.diagnostic {
                text.push_str(&format!("\n    the server's words: {d}"));
            }
        }
        if let Some(id) = &m.original_message_id {
            text.push_str(&format!("\n  about the letter <{id}>"));
        }
        out.always(text);
    }
    Ok(Exit::Done)
}
