//! `receipts fetch`: reads what is new in the configured IMAP folders and records each message
//! with [`record_message`], as `receipts import` does for files.
//!
//! Per folder the ledger keeps the UIDVALIDITY and the highest UID recorded, so each run reads
//! only what came since; when the server changes a folder's UIDVALIDITY the folder is read again
//! from the start (a message recorded before is recognised and stored once). The position moves
//! after each message is recorded, so a run that stops (refused login, untrusted certificate,
//! dropped connection) leaves the ledger as it was or up to the last message fully recorded, and
//! the next run goes on from there. This module never changes the mailbox (see `imap`) and prints
//! nothing: it returns what it did.

use anyhow::Result;

use crate::clock;
use crate::config::{Config, Imap, Security};
use crate::imap::{self, Mailbox};
use crate::receipts::{record_message, too_large, Kind, Origin, Recorded};
use crate::record::ledger::{FolderProgress, Ledger};
use crate::trust::Trust;

/// What one run read.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    pub folders: Vec<FolderRead>,
    /// Why the run stopped before the end, in plain words; what was read until then is kept.
    pub stopped: Option<String>,
}

/// What was read in one folder.
#[derive(Debug)]
pub(crate) struct FolderRead {
    pub name: String,
    pub uid_validity: u32,
    /// The folder's UIDVALIDITY changed since the last run, so it was read from the start.
    pub reread: bool,
    /// Each new message, in UID order, with what recording it did.
    pub messages: Vec<(Origin, Recorded)>,
}

/// The client's settings for the `[receipts.imap]` section with this password.
pub(crate) fn settings(imap: &Imap, secret: String) -> imap::Settings {
    imap::Settings {
        host: imap.host.clone(),
        port: imap.port,
        security: match imap.security {
            Security::Tls => imap::Security::Tls,
            Security::StartTls | Security::None => imap::Security::StartTls,
        },
        trust: Trust {
            ca_file: imap.ca_file.clone(),
            pins: imap.tls_pins.clone(),
            skip_host_name_check: !imap.tls_check_host_name,
        },
        user: imap.user.clone(),
        secret,
        connect_timeout: imap.connect_timeout,
        command_timeout: imap.command_timeout,
    }
}

/// The name the reading position is kept under: "user@host:port".
pub(crate) fn account(imap: &Imap) -> String {
    format!("{}@{}:{}", imap.user, imap.host, imap.port)
}

/// Reads every configured folder. An `Err` is a ledger error; a problem with the server ends
/// the run with [`Fetched::stopped`] set.
pub(crate) fn fetch(
    ledger: &mut Ledger,
    config: &Config,
    imap: &Imap,
    secret: String,
) -> Result<Fetched> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let settings = settings(imap, secret);
    runtime.block_on(async {
        let mut fetched = Fetched::default();
        let mut mailbox = match Mailbox::open(&settings).await {
            Ok(m) => m,
            Err(failure) => {
                fetched.stopped = Some(failure.to_string());
                return Ok(fetched);
            }
        };
        let account = account(imap);
        for folder in &imap.folders {
            match read_folder(&mut mailbox, ledger, config, &account, folder, &mut fetched).await {
                Ok(()) => {}
                Err(Stop::Server(why)) => {
                    fetched.stopped = Some(why);
                    return Ok(fetched);
                }
                Err(Stop::Ledger(e)) => return Err(e),
            }
        }
        mailbox.logout().await;
        Ok(fetched)
    })
}

enum Stop {
    Server(String),
    Ledger(anyhow::Error),
}

impl From<imap::Failure> for Stop {
    fn from(f: imap::Failure) -> Self {
        Stop::Server(f.to_string())
    }
}

impl From<anyhow::Error> for Stop {
    fn from(e: anyhow::Error) -> Self {
        Stop::Ledger(e)
    }
}

async fn read_folder(
    mailbox: &mut Mailbox,
    ledger: &mut Ledger,
    config: &Config,
    account: &str,
    name: &str,
    fetched: &mut Fetched,
) -> Result<(), Stop> {
    let folder = mailbox.examine(name).await?;
    let before = ledger.folder_progress(account, name)?;
    let reread = before.is_some_and(|b| b.uid_validity != folder.uid_validity);
    let after = match before {
        Some(b) if b.uid_validity == folder.uid_validity => b.last_uid,
        _ => 0,
    };
    fetched.folders.push(FolderRead {
        name: name.to_owned(),
        uid_validity: folder.uid_validity,
        reread,
        messages: Vec::new(),
    });
    let read = fetched.folders.last_mut().expect("pushed above");
    let mut at = FolderProgress {
        uid_validity: folder.uid_validity,
        last_uid: after,
    };
    if before != Some(at) {
        ledger.set_folder_progress(account, name, at, &now())?;
    }
    if folder.exists == 0 {
        return Ok(());
    }
    for listed in mailbox.list_after(after).await? {
        let origin = Origin::Imap {
            folder: name.to_owned(),
            uid_validity: folder.uid_validity,
            uid: listed.uid,
        };
        // A message over the limit is not even downloaded.
        let recorded = match too_large(
            usize::try_from(listed.size).unwrap_or(usize::MAX),
            config.receipts.max_message_size,
        ) {
            Some(why) => Some(Recorded {
                kind: Kind::Unknown,
                skipped: Some(why),
                entries: Vec::new(),
            }),
            None => match mailbox.message(listed.uid).await? {
                Some(raw) => Some(record_message(ledger, config, &origin, &raw)?),
                // Deleted by someone else meanwhile: nothing to read.
                None => None,
            },
        };
        at.last_uid = listed.uid;
        ledger.set_folder_progress(account, name, at, &now())?;
        if let Some(recorded) = recorded {
            read.messages.push((origin, recorded));
        }
    }
    Ok(())
}

fn now() -> String {
    clock::stamp_time(clock::now())
}
