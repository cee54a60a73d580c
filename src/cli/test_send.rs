//! `rundbrev test-send`: one letter, rendered for a chosen recipient, sent to the operator's own
//! address over the campaign's mail server.
//!
//! It is not recorded as that recipient's delivery: it carries its own Message-ID, goes to no
//! Cc or Bcc copy, and the ledger is only read.

use anyhow::{bail, Context as _, Result};

use crate::campaign::guard::is_reserved;
use crate::cli::check_smtp::smtp_config;
use crate::cli::exit::Exit;
use crate::cli::output::Output;
use crate::clock;
use crate::config::Config;
use crate::delivery::smtp;
use crate::delivery::transport::{Outcome, Transport as _};
use crate::letter::compose::Addressee;
use crate::problem::Problems;
use crate::record::ledger::Ledger;

/// Sends one rendered letter to the operator's own address. It is not recorded as that
/// recipient's delivery, carries its own Message-ID and goes to no Cc/Bcc copy.
pub(super) fn run(
    config: &Config,
    out: &Output,
    to: &str,
    recipient: Option<&str>,
) -> Result<Exit> {
    let s = smtp_config(config)?;
    if let Err(why) = crate::campaign::recipients::check_address(to) {
        bail!("--to {to}: not a valid e-mail address ({why})");
    }
    if is_reserved(to, &s.allow_test_domains) {
        bail!("--to {to}: that is a reserved domain and cannot receive mail");
    }
    let ledger = Ledger::open_existing(&Ledger::path_for(&config.ledger_dir, &config.campaign.id))?;
    let p = crate::campaign::prepare(config.clone(), ledger.as_ref(), clock::now())
        .map_err(Problems)?;
    let letter = match recipient {
        Some(key) => crate::campaign::find_letters(&p, ledger.as_ref(), &[key.to_string()])
            .map_err(|e| anyhow::anyhow!("--recipient: {e}"))?
            .remove(0),
        None => p
            .letters(ledger.as_ref())?
            .next()
            .context("the recipients file has no recipients")??,
    };
    let letter = &letter;
    let rendered = p.render(letter).map_err(|e| anyhow::anyhow!(e.message))?;
    let mut stamp = letter.stamp.clone();
    stamp.message_id = format!("test.{}", stamp.message_id);
    let envelope = p.envelope.without_copies();
    // The letter as the recipient would get it, PDF and attachments included.
    let composed = p
        .make_rendered(
            letter,
            rendered,
            &envelope,
            &Addressee {
                name: String::new(),
                email: to.to_string(),
            },
            &stamp,
            clock::now(),
        )?
        .composed;
    for warning in smtp::warnings(s) {
        out.note(warning);
    }
    let mut transport = smtp::connect(s)?;
    let outcome = transport.send(&composed, "test")?;
    transport.close();
    match outcome {
        Outcome::Delivered { reply, .. } => {
            out.always(format!(
                "Sent {}'s letter (Akt-id {}) to {to} only: {reply}. This test does not count as {}'s delivery.",
                letter.to.name, letter.stamp.akt_id, letter.to.name
            ));
            Ok(Exit::Done)
        }
        other => {
            let (_, _, reply) = other.parts();
            out.always(format!(
                "The test letter to {to} was not delivered: {reply}"
            ));
            Ok(Exit::SomeFailed)
        }
    }
}
