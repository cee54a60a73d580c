//! The outbox transport: each letter written as an `.eml` file into a folder the campaign owns.
//!
//! A letter is delivered when its file is complete and on disk. It accepts any address,
//! placeholders included, since nothing leaves the machine. It never touches the ledger.

use std::path::{Path, PathBuf};

use crate::delivery::transport::{Outcome, Stop, Transport};
use crate::letter::compose::Composed;
use crate::record::storage::Cause;
use crate::whole_file;

/// The outbox file of the letter with this file stem.
pub(crate) fn path_for(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.eml"))
}

/// Writes each message as an `.eml` file into a folder. Accepts any address, placeholders included.
pub(crate) struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    pub(crate) fn new(dir: &Path) -> Outbox {
        Outbox {
            dir: dir.to_path_buf(),
        }
    }
}

impl Transport for Outbox {
    fn kind(&self) -> &'static str {
        "outbox"
    }

    fn send(&mut self, message: &Composed, name: &str) -> Result<Outcome, Stop> {
        let path = path_for(&self.dir, name);
        whole_file::write_durably(&path, &message.bytes).map_err(|e| Stop::OutboxUnwritable {
            path: path.clone(),
            error: Cause::describe(&e),
        })?;
        Ok(Outcome::Delivered {
            code: None,
            reply: format!("written to {}", path.display()),
        })
    }
}
