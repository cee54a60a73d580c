//! The transports a run sends through: the outbox folder, or one SMTP session per worker, each
//! wrapped by the archive so that every letter is kept exactly as it was handed over (unless the
//! config turns the archive off).
//!
//! Opening happens before anything is marked in the ledger, so a refused login or a broken TLS
//! handshake leaves every letter as it was. Warnings for the person sending come back as data;
//! this module never prints.

use anyhow::Result;

use crate::config::{Config, Transport as TransportConfig};
use crate::delivery::archive::Archiving;
use crate::delivery::outbox::Outbox;
use crate::delivery::smtp;
use crate::delivery::transport::Transport;

/// The opened transports, one per worker, and what the sender should be told.
pub(crate) struct Connections {
    pub transports: Vec<Box<dyn Transport + Send>>,
    pub warnings: Vec<String>,
}

/// Opens what the campaign sends through, for a run of `letters` letters.
pub(crate) fn open(config: &Config, letters: usize) -> Result<Connections> {
    let archive = &config.archive_dir;
    let (opened, warnings): (Vec<Box<dyn Transport + Send>>, _) = match &config.transport {
        TransportConfig::Outbox { dir } => (vec![Box::new(Outbox::new(dir))], Vec::new()),
        TransportConfig::Smtp(s) => (smtp::connect_all(s, letters)?, smtp::warnings(s)),
    };
    let transports = if config.archive_enabled {
        opened
            .into_iter()
            .map(|t| Box::new(Archiving::new(t, archive)) as Box<dyn Transport + Send>)
            .collect()
    } else {
        opened
    };
    Ok(Connections {
        transports,
        warnings,
    })
}
