//! `rundbrev check`: every letter merged and checked, every problem listed with its place.
//!
//! It writes nothing and sends nothing; over SMTP it also lists the placeholder addresses that
//! the mail server could not deliver to.

use anyhow::Result;

use crate::campaign::guard::Watch;
use crate::cli::exit::Exit;
use crate::cli::output::Output;
use crate::cli::workspace::{describe_transport, ledger_path, prepare_guarded, shown};
use crate::config::{Config, Transport as TransportConfig};
use crate::record::ledger::Ledger;

pub(super) fn run(config: &Config, out: &Output) -> Result<Exit> {
    let ledger = Ledger::open_existing(&ledger_path(config))?;
    let watch = Watch {
        smtp: matches!(config.transport, TransportConfig::Smtp(_)),
        allowed_test_domains: match &config.transport {
            TransportConfig::Smtp(s) => s.allow_test_domains.clone(),
            TransportConfig::Outbox { .. } => Vec::new(),
        },
        ..Watch::default()
    };
    let p = prepare_guarded(config, ledger.as_ref(), watch, out, &mut |_| {})?;
    out.always(format!(
        "All {} letters are ready: {} ({}), template {}, subject and stamps checked.",
        p.count,
        shown(config, &config.recipients.file),
        p.table.encoding,
        shown(config, &config.template),
    ));
    out.say(format!(
        "Letter date {}, Sags nr. {}. They would go via {} from {}.",
        crate::letter::stamp::danish_date(p.letter_date),
        p.sags_nr,
        describe_transport(config),
        config.sender.from
    ));
    Ok(Exit::Done)
}
