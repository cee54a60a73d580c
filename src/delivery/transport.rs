//! Transports: where a composed message goes. The outbox folder (built in) and SMTP.
//!
//! A transport hands over one message and says what happened, in the ledger's terms: delivered,
//! failed for now, failed for good, or unknown (it may have arrived). An `Err` means the run must
//! stop and that this message was *not* handed over. Transports never touch the ledger.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::letter::compose::Composed;

/// What happened to one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered {
        code: Option<u16>,
        reply: String,
    },
    /// Failed for now (4xx, timeout, dropped before the end of the message): worth retrying.
    Temporary {
        code: Option<u16>,
        reply: String,
    },
    /// Refused for good (5xx): not retried.
    Permanent {
        code: Option<u16>,
        reply: String,
    },
    /// The connection broke after the whole message was sent: it may have been delivered.
    Unknown {
        reply: String,
    },
}

/// A reason to stop the whole run; the message in hand was not handed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop(pub String);

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub trait Transport {
    /// A short name for the ledger's history: "outbox", "smtp".
    fn kind(&self) -> &'static str;
    /// Hands over one message. `name` is a file stem a person can find the letter by.
    fn send(&mut self, message: &Composed, name: &str) -> Result<Outcome, Stop>;
    /// Ends the session politely.
    fn close(&mut self) {}
}

impl Transport for Box<dyn Transport + Send> {
    fn kind(&self) -> &'static str {
        (**self).kind()
    }

    fn send(&mut self, message: &Composed, name: &str) -> Result<Outcome, Stop> {
        (**self).send(message, name)
    }

    fn close(&mut self) {
        (**self).close()
    }
}

/// Writes each message as an `.eml` file into a folder. Accepts any address, placeholders included.
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    pub fn new(dir: &Path) -> Outbox {
        Outbox {
            dir: dir.to_path_buf(),
        }
    }

    /// Writes a file so that it is either all there or not there at all, and on disk before
    /// this returns (a delivery into the outbox must survive a power cut).
    pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
        write_whole(path, bytes, true)
    }
}

/// Writes a file so that it is either all there or not there at all: into a `.partial` file that
/// is renamed when complete. With `sync`, the data is on disk before the rename.
pub fn write_whole(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    if !dir.as_os_str().is_empty() && !dir.is_dir() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        if sync {
            f.sync_all()?;
        }
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

impl Transport for Outbox {
    fn kind(&self) -> &'static str {
        "outbox"
    }

    fn send(&mut self, message: &Composed, name: &str) -> Result<Outcome, Stop> {
        let path = self.dir.join(format!("{name}.eml"));
        Outbox::write_atomically(&path, &message.bytes).map_err(|e| {
            Stop(format!(
                "cannot write {} to the outbox: {e}",
                path.display()
            ))
        })?;
        Ok(Outcome::Delivered {
            code: None,
            reply: format!("written to {}", path.display()),
        })
    }
}
