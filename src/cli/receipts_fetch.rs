//! `rundbrev receipts fetch`: reads the new messages in the `[receipts.imap]` mailbox, records
//! what they say against the letters, and tells what changed, in the words `receipts import` uses.
//!
//! The password is read as for sending (command, environment or prompt) and never shown. The
//! mailbox is only read. When the server refuses or breaks off, what was recorded until then is
//! shown and kept, and the error says that the next run goes on from there.

use anyhow::{bail, Result};

use crate::cli::exit::Exit;
use crate::cli::output::Output;
use crate::cli::receipts::{advise, tell, Tally};
use crate::config::Config;
use crate::receipts::fetch::{self, Fetched};
use crate::record::ledger::Ledger;

pub(super) fn run(config: &Config, out: &Output) -> Result<Exit> {
    let Some(imap) = &config.receipts.imap else {
        bail!(
            "there is no [receipts.imap] section in {}: name the mailbox the reports come back to (host, user, folders)",
            config.path.display()
        );
    };
    let path = Ledger::path_for(&config.ledger_dir, &config.campaign.id);
    if !path.exists() {
        bail!(
            "no letter of this campaign has been sent yet (there is no ledger {}), so there is nothing to match reports to",
            path.display()
        );
    }
    for warning in imap.warnings() {
        out.note(warning);
    }
    let secret = crate::secret::read(crate::secret::Source {
        section: "receipts.imap",
        user: &imap.user,
        host: &imap.host,
        password_env: &imap.password_env,
        password_command: imap.password_command.as_deref(),
    })?;
    let mut ledger = Ledger::create_or_open(&path)?;
    let fetched = fetch::fetch(&mut ledger, config, imap, secret)?;
    show(&fetched, config, out);
    if let Some(why) = &fetched.stopped {
        let kept = if fetched.folders.iter().any(|f| !f.messages.is_empty()) {
            "What was read until then is recorded"
        } else {
            "Nothing was recorded"
        };
        bail!(
            "{why}. {kept}; the next `rundbrev receipts fetch` goes on from there (server {}:{}, user {})",
            imap.host,
            imap.port,
            imap.user
        );
    }
    Ok(Exit::Done)
}

fn show(fetched: &Fetched, config: &Config, out: &Output) {
    let mut tally = Tally::default();
    for folder in &fetched.folders {
        if folder.reread {
            out.always(format!(
                "{}: the server renumbered this folder (its UIDVALIDITY is now {}), so it is read again from the start; messages recorded before are recognised and not counted twice.",
                folder.name, folder.uid_validity
            ));
        }
        out.say(match folder.messages.len() {
            0 => format!("{}: no new messages.", folder.name),
            1 => format!("{}: 1 new message.", folder.name),
            n => format!("{}: {n} new messages.", folder.name),
        });
        for (origin, recorded) in &folder.messages {
            tally.messages += 1;
            tell(out, &origin.to_string(), recorded, &mut tally);
        }
    }
    if fetched.folders.is_empty() {
        return;
    }
    out.always(tally.line());
    advise(config, out, &tally);
}
