//! The delivery ledger: one SQLite database per campaign, the record for the case file.
//!
//! For each recipient it holds the state, the attempts, the last server reply, the frozen stamps
//! and the Message-ID; a history table keeps every attempt. A run records its changes in the
//! order they happened, several in one transaction, each transaction forced to disk (`record`):
//! a letter is marked `sending` and its attempt marked "data started" before its message data
//! goes out, and its outcome is recorded before it is reported; so a crash can never lose a
//! delivery or hide one that may have happened, and a letter whose data never started goes back
//! to where it was (`Ledger::enlist`). This module decides nothing about who gets a letter (see
//! `campaign`), and stores no secret.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

use crate::letter::stamp::Stamp;
use crate::record::storage::LedgerWriteError;

/// Schema migrations, in order. `PRAGMA user_version` counts how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE campaign (
        id            INTEGER PRIMARY KEY CHECK (id = 1),
        campaign_id   TEXT NOT NULL,
        letter_date   TEXT,
        sags_nr       TEXT,
        template_hash TEXT,
        content_hash  TEXT,
        content_desc  TEXT,
        frozen_at     TEXT
     );
     CREATE TABLE recipients (
        key          TEXT PRIMARY KEY,
        position     INTEGER NOT NULL,
        address      TEXT NOT NULL,
        name         TEXT NOT NULL,
        state        TEXT NOT NULL DEFAULT 'pending',
        attempts     INTEGER NOT NULL DEFAULT 0,
        last_code    INTEGER,
        last_reply   TEXT,
        message_id   TEXT,
        letter_date  TEXT,
        sags_nr      TEXT,
        akt_id       TEXT,
        row_hash     TEXT,
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL,
        delivered_at TEXT
     );
     CREATE TABLE attempts (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        key         TEXT NOT NULL REFERENCES recipients(key),
        transport   TEXT NOT NULL,
        started_at  TEXT NOT NULL,
        finished_at TEXT,
        state       TEXT NOT NULL,
        code        INTEGER,
        reply       TEXT
     );
     CREATE INDEX attempts_by_key ON attempts(key);",
    // 2: each attempt records the address it went to (it may be corrected between attempts).
    "ALTER TABLE attempts ADD COLUMN address TEXT;",
    // 3: a recipient's row as changed after the letter went out, accepted with --accept-changes.
    "ALTER TABLE recipients ADD COLUMN accepted_row_hash TEXT;",
    // 4: receipts read back from the mailbox (bounces, delivery reports, replies), append-only.
    // One message may report on several letters; each (message, recipient) is stored once.
    "CREATE TABLE receipts (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        digest      TEXT NOT NULL,
        key         TEXT NOT NULL REFERENCES recipients(key),
        recipient   TEXT NOT NULL,
        origin      TEXT NOT NULL,
        kind        TEXT NOT NULL,
        action      TEXT NOT NULL,
        status      TEXT,
        diagnostic  TEXT,
        reporter    TEXT,
        reported_at TEXT,
        matched_by  TEXT NOT NULL,
        recorded_at TEXT NOT NULL,
        UNIQUE (digest, recipient)
     );
     CREATE INDEX receipts_by_key ON receipts(key);
     CREATE TRIGGER receipts_are_kept_update BEFORE UPDATE ON receipts
        BEGIN SELECT RAISE(ABORT, 'receipts are never changed'); END;
     CREATE TRIGGER receipts_are_kept_delete BEFORE DELETE ON receipts
        BEGIN SELECT RAISE(ABORT, 'receipts are never deleted'); END;",
    // 5: each attempt records the state the letter had before it (to go back to when its data
    // never started) and when its message data started to go out.
    "ALTER TABLE attempts ADD COLUMN was TEXT;
     ALTER TABLE attempts ADD COLUMN data_at TEXT;",
];

/// Where a recipient stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum State {
    Pending,
    Sending,
    Delivered,
    FailedTemporary,
    FailedPermanent,
    Unknown,
    /// Accepted by the relay, then reported back as failed by the municipality's side. Counts
    /// as failed; sent again only by `resend --failed`, to a corrected address.
    Bounced,
}

impl State {
    pub(crate) const ALL: [State; 7] = [
        State::Pending,
        State::Sending,
        State::Delivered,
        State::FailedTemporary,
        State::FailedPermanent,
        State::Unknown,
        State::Bounced,
    ];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Sending => "sending",
            State::Delivered => "delivered",
            State::FailedTemporary => "failed-temporary",
            State::FailedPermanent => "failed-permanent",
            State::Unknown => "unknown",
            State::Bounced => "bounced",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<State> {
        State::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub(crate) fn is_failed(self) -> bool {
        matches!(
            self,
            State::FailedTemporary | State::FailedPermanent | State::Bounced
        )
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recipient's line in the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub key: String,
    pub position: i64,
    pub address: String,
    pub name: String,
    pub state: State,
    pub attempts: i64,
    pub last_code: Option<i64>,
    pub last_reply: Option<String>,
    pub message_id: Option<String>,
    pub letter_date: Option<String>,
    pub sags_nr: Option<String>,
    pub akt_id: Option<String>,
    pub row_hash: Option<String>,
    pub updated_at: String,
    pub delivered_at: Option<String>,
}

impl Record {
    #[cfg(test)]
    /// The stamps frozen when this letter was first handed over, if it ever was.
    pub(crate) fn frozen_stamp(&self) -> Option<Stamp> {
        Some(Stamp {
            letter_date: self.letter_date.as_deref()?.parse().ok()?,
            sags_nr: self.sags_nr.clone()?,
            akt_id: self.akt_id.clone()?,
            message_id: self.message_id.clone()?,
        })
    }
}

/// What the ledger says about one recipient, looked up by key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recorded {
    pub state: State,
    pub attempts: i64,
    /// The stamps frozen when the letter was first handed over.
    pub stamp: Option<Stamp>,
    pub row_hash: Option<String>,
    /// The row as changed after the letter went out, when the change was accepted.
    pub accepted_row_hash: Option<String>,
    /// The address the letter last went to (or will go to, when not attempted yet).
    pub address: String,
}

/// The start of one hand-over: attempt `attempt` of the letter `key` begins, the letter becomes
/// `sending` and its stamps are frozen (`Change::Start`).
pub(crate) struct Start {
    /// The attempt's id, given by the run (`Ledger::next_attempt`).
    pub attempt: i64,
    pub key: String,
    /// The state the letter must be in now; anything else means the plan is stale.
    pub expected: State,
    pub address: String,
    pub name: String,
    pub stamp: Stamp,
    pub row_hash: String,
}

/// The end of one hand-over (`Change::Finish`).
pub(crate) struct Finish {
    pub attempt: i64,
    pub key: String,
    pub state: State,
    pub code: Option<u16>,
    pub reply: String,
}

/// One change a run records, for `Ledger::record`, which applies them in the order given: the
/// order they happened in.
pub(crate) enum Change {
    Start(Start),
    /// This attempt's data is about to go out.
    Data(i64),
    Finish(Finish),
    /// The attempt was taken back unsent; the letter returns to `back_to`.
    Abandon {
        attempt: i64,
        key: String,
        back_to: State,
    },
}

/// A letter left unknown, with its latest attempt, for `delivery::settle`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unsettled {
    pub key: String,
    pub attempt: i64,
    /// The name and Akt-id the letter went out with, which name its files.
    pub name: String,
    pub akt_id: Option<String>,
}

/// What became of a letter left unknown, for `settle`: delivered, pending again, or still
/// unknown, with the reason in plain words.
pub(crate) struct Settlement<'a> {
    pub attempt: i64,
    pub key: &'a str,
    pub state: State,
    pub reply: &'a str,
}

/// What `Ledger::enlist` found of a run that stopped while handing letters over.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Interrupted {
    /// The keys of the letters whose data had started to go out: now `unknown`.
    pub unknown: Vec<String>,
    /// The letters that had been taken but whose data had not started: back as they were, with
    /// the state they are back in.
    pub back: Vec<(String, State)>,
}

/// The campaign-wide facts frozen at the first send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Frozen {
    pub campaign_id: String,
    pub letter_date: String,
    pub sags_nr: String,
    pub template_hash: String,
    pub content_hash: String,
    /// The subject, sender and copies as they were, to say what changed.
    pub content_desc: String,
    pub frozen_at: String,
}

#[cfg(test)]
/// One attempt in the history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Attempt {
    pub key: String,
    pub transport: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub state: State,
    pub code: Option<i64>,
    pub reply: Option<String>,
}

/// A recipient as the current recipients file lists it.
#[derive(Debug, Clone)]
pub(crate) struct Listed<'a> {
    pub key: std::borrow::Cow<'a, str>,
    pub position: i64,
    pub address: std::borrow::Cow<'a, str>,
    pub name: std::borrow::Cow<'a, str>,
}

/// A run's start, not yet committed: see `Ledger::enlist`.
pub(crate) struct Enlisting<'a> {
    tx: rusqlite::Transaction<'a>,
    now: String,
    interrupted: Interrupted,
    /// The ledger's file, to name it when a write fails.
    path: PathBuf,
}

impl Enlisting<'_> {
    /// Lists one recipient: a new one becomes pending; one not yet attempted takes the file's
    /// current address, name and position; an attempted one keeps its address and name.
    pub(crate) fn add(&mut self, l: &Listed<'_>) -> Result<()> {
        self.add_inner(l)
            .map_err(|e| LedgerWriteError::classify(&self.path, e))
    }

    fn add_inner(&mut self, l: &Listed<'_>) -> Result<()> {
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO recipients (key, position, address, name, state, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, 'pending', ?5, ?5)
             ON CONFLICT(key) DO UPDATE SET position = excluded.position,
                 address = CASE WHEN recipients.attempts = 0 THEN excluded.address ELSE recipients.address END,
                 name = CASE WHEN recipients.attempts = 0 THEN excluded.name ELSE recipients.name END",
        )?;
        stmt.execute(params![l.key, l.position, l.address, l.name, self.now])?;
        Ok(())
    }

    /// What became of the letters an earlier run left `sending` (once committed).
    pub(crate) fn interrupted(&self) -> &Interrupted {
        &self.interrupted
    }

    /// Makes the start of the run take effect; returns what became of the letters an earlier
    /// run left `sending`.
    pub(crate) fn commit(self) -> Result<Interrupted> {
        self.tx
            .commit()
            .map_err(|e| LedgerWriteError::classify(&self.path, e.into()))?;
        Ok(self.interrupted)
    }
}

pub(crate) struct Ledger {
    conn: Connection,
    path: PathBuf,
    /// Whether the ledger keeps a write-ahead log (it does unless the file system cannot).
    wal: bool,
    /// The write-ahead log, open once its folder entry has been forced to disk (`force_log`).
    log: Option<File>,
}

/// Held while a run sends from this campaign; a second run cannot take it.
pub(crate) struct RunLock {
    file: File,
    path: PathBuf,
}

impl Drop for RunLock {
    /// Removes the lock file while the lock is still held (the file closes after this), so a
    /// finished or refused run leaves nothing behind.
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = &self.file;
    }
}

/// Whether the open lock file is still the one at `path`: a run that ended may have removed it
/// between our opening it and locking it.
fn is_current(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        match (file.metadata(), std::fs::metadata(path)) {
            (Ok(open), Ok(named)) => open.dev() == named.dev() && open.ino() == named.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        path.exists()
    }
}

impl Ledger {
    /// The ledger file for a campaign.
    pub(crate) fn path_for(dir: &Path, campaign_id: &str) -> PathBuf {
        dir.join(format!("{campaign_id}.ledger.sqlite"))
    }

    /// Opens the ledger for writing, creating it and bringing its schema up to date.
    pub(crate) fn create_or_open(path: &Path) -> Result<Ledger> {
        if let Some(dir) = path.parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).with_context(|| {
                    format!("cannot create the ledger folder {}", dir.display())
                })?;
            }
        }
        let opened = (|| {
            let conn = Connection::open(path)
                .with_context(|| format!("cannot open the ledger {}", path.display()))?;
            let mut ledger = Ledger::configure(conn, path)?;
            migrate(&mut ledger.conn)?;
            Ok(ledger)
        })();
        opened.map_err(|e| LedgerWriteError::classify(path, e))
    }

    /// Opens an existing ledger without creating it or changing its schema (for preview, status).
    pub(crate) fn open_existing(path: &Path) -> Result<Option<Ledger>> {
        if !path.exists() {
            return Ok(None);
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open the ledger {}", path.display()))?;
        let ledger = Ledger::configure(conn, path)?;
        let version: usize = ledger
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version != MIGRATIONS.len() {
            bail!(
                "the ledger {} has schema version {version}, this rundbrev expects {}; run `rundbrev send` with this version to upgrade it, or use the rundbrev that wrote it",
                path.display(),
                MIGRATIONS.len()
            );
        }
        Ok(Some(ledger))
    }

    fn configure(conn: Connection, path: &Path) -> Result<Ledger> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // WAL: readers (status) never block the sender. synchronous=FULL: a committed outcome
        // survives a power cut, not only a crash of rundbrev.
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // A checkpoint forces the log and the database to disk: every 4,000 pages (16 MB of log)
        // rather than SQLite's 1,000, so that a send stops for one less often.
        conn.pragma_update(None, "wal_autocheckpoint", 4000)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(Ledger {
            conn,
            path: path.to_path_buf(),
            wal: mode.eq_ignore_ascii_case("wal"),
            log: None,
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// A failed write told as a `LedgerWriteError` when the disk is the reason, naming the file.
    fn written<T>(&self, result: Result<T>) -> Result<T> {
        result.map_err(|e| LedgerWriteError::classify(&self.path, e))
    }

    /// Takes the campaign's run lock, or says that another run holds it.
    pub(crate) fn lock(path: &Path) -> Result<RunLock> {
        let lock_path = lock_path(path);
        loop {
            let file = File::options()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&lock_path)
                .with_context(|| format!("cannot create the lock file {}", lock_path.display()))?;
            match file.try_lock() {
                // Locked the file at the path, not one a finishing run has just removed.
                Ok(()) if is_current(&file, &lock_path) => {
                    return Ok(RunLock {
                        file,
                        path: lock_path,
                    })
                }
                Ok(()) => continue,
                Err(std::fs::TryLockError::WouldBlock) => bail!(
                    "another rundbrev run is sending this campaign right now (it holds {}); wait for it to finish, or check `rundbrev status`",
                    lock_path.display()
                ),
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(e).with_context(|| format!("cannot lock {}", lock_path.display()))
                }
            }
        }
    }

    /// Whether a run is sending from this campaign now.
    pub(crate) fn is_locked(path: &Path) -> bool {
        let Ok(file) = File::open(lock_path(path)) else {
            return false;
        };
        matches!(file.try_lock(), Err(std::fs::TryLockError::WouldBlock))
    }

    pub(crate) fn frozen(&self) -> Result<Option<Frozen>> {
        Ok(self
            .conn
            .query_row(
                "SELECT campaign_id, letter_date, sags_nr, template_hash, content_hash, content_desc, frozen_at
                 FROM campaign WHERE id = 1 AND frozen_at IS NOT NULL",
                [],
                |r| {
                    Ok(Frozen {
                        campaign_id: r.get(0)?,
                        letter_date: r.get(1)?,
                        sags_nr: r.get(2)?,
                        template_hash: r.get(3)?,
                        content_hash: r.get(4)?,
                        content_desc: r.get(5)?,
                        frozen_at: r.get(6)?,
                    })
                },
            )
            .optional()?)
    }

    /// Remembers that these recipients' rows (key, row fingerprint), changed after their letter
    /// went out, were accepted with --accept-changes: later runs do not refuse them again.
    pub(crate) fn accept_rows(&mut self, rows: &[(String, String)], now: &str) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut update = tx.prepare_cached(
                "UPDATE recipients SET accepted_row_hash = ?2, updated_at = ?3 WHERE key = ?1",
            )?;
            for (key, hash) in rows {
                update.execute(params![key, hash, now])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Freezes the campaign-wide stamps and fingerprints, once, before the first letter goes out.
    pub(crate) fn freeze(&mut self, f: &Frozen) -> Result<()> {
        let result = self.freeze_inner(f);
        self.written(result)
    }

    fn freeze_inner(&mut self, f: &Frozen) -> Result<()> {
        self.conn.execute(
            "INSERT INTO campaign (id, campaign_id, letter_date, sags_nr, template_hash, content_hash, content_desc, frozen_at)
             VALUES (1, ?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(id) DO UPDATE SET template_hash = excluded.template_hash,
                 content_hash = excluded.content_hash, content_desc = excluded.content_desc",
            params![f.campaign_id, f.letter_date, f.sags_nr, f.template_hash, f.content_hash, f.content_desc, f.frozen_at],
        )?;
        Ok(())
    }

    /// Every recipient, in the order of the recipients file.
    pub(crate) fn records(&self) -> Result<Vec<Record>> {
        self.records_where("1")
    }

    fn records_where(&self, condition: &str) -> Result<Vec<Record>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT key, position, address, name, state, attempts, last_code, last_reply, message_id,
                    letter_date, sags_nr, akt_id, row_hash, updated_at, delivered_at
             FROM recipients WHERE {condition} ORDER BY position, key"
        ))?;
        let rows = stmt.query_map([], |r| {
            let state: String = r.get(4)?;
            Ok(Record {
                key: r.get(0)?,
                position: r.get(1)?,
                address: r.get(2)?,
                name: r.get(3)?,
                state: State::parse(&state).unwrap_or(State::Unknown),
                attempts: r.get(5)?,
                last_code: r.get(6)?,
                last_reply: r.get(7)?,
                message_id: r.get(8)?,
                letter_date: r.get(9)?,
                sags_nr: r.get(10)?,
                akt_id: r.get(11)?,
                row_hash: r.get(12)?,
                updated_at: r.get(13)?,
                delivered_at: r.get(14)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One recipient's state and frozen stamps.
    pub(crate) fn lookup(&self, key: &str) -> Result<Option<Recorded>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT state, attempts, message_id, letter_date, sags_nr, akt_id, row_hash, accepted_row_hash,
                    address
             FROM recipients WHERE key = ?1",
        )?;
        let found = stmt
            .query_row([key], |r| {
                let state: String = r.get(0)?;
                let (message_id, letter_date, sags_nr, akt_id): (
                    Option<String>,
                    Option<String>,
                    Option<String>,
                    Option<String>,
                ) = (r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
                let stamp = (|| {
                    Some(Stamp {
                        letter_date: letter_date?.parse().ok()?,
                        sags_nr: sags_nr?,
                        akt_id: akt_id?,
                        message_id: message_id?,
                    })
                })();
                Ok(Recorded {
                    state: State::parse(&state).unwrap_or(State::Unknown),
                    attempts: r.get(1)?,
                    stamp,
                    row_hash: r.get(6)?,
                    accepted_row_hash: r.get(7)?,
                    address: r.get(8)?,
                })
            })
            .optional()?;
        Ok(found)
    }

    #[cfg(test)]
    /// Every attempt, oldest first.
    pub(crate) fn attempts(&self) -> Result<Vec<Attempt>> {
        let mut stmt = self.conn.prepare(
            "SELECT key, transport, started_at, finished_at, state, code, reply FROM attempts ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            let state: String = r.get(4)?;
            Ok(Attempt {
                key: r.get(0)?,
                transport: r.get(1)?,
                started_at: r.get(2)?,
                finished_at: r.get(3)?,
                state: State::parse(&state).unwrap_or(State::Unknown),
                code: r.get(5)?,
                reply: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Closes the ledger and removes its files: for a first run that was refused before
    /// anything was recorded, so that no empty ledger is left behind.
    pub(crate) fn discard(self) {
        let path = self.path.clone();
        drop(self);
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }

    /// Starts a run, in one transaction that takes effect only when `Enlisting::commit` is
    /// called (dropping it changes nothing): letters an earlier run left `sending` are settled
    /// (`settle_interrupted`); then `Enlisting::add` brings the recipient list in line with the
    /// file, one letter at a time.
    pub(crate) fn enlist(&mut self, now: &str) -> Result<Enlisting<'_>> {
        let path = self.path.clone();
        self.enlist_inner(now, &path)
            .map_err(|e| LedgerWriteError::classify(&path, e))
    }

    fn enlist_inner(&mut self, now: &str, path: &Path) -> Result<Enlisting<'_>> {
        let tx = self.conn.transaction()?;
        let interrupted = settle_interrupted(&tx, now)?;
        Ok(Enlisting {
            tx,
            now: now.to_string(),
            interrupted,
            path: path.to_path_buf(),
        })
    }

    /// The letters an earlier run left `sending` or `unknown` whose latest attempt went through
    /// `transport`, in file order. Call it only with the run lock held: then no letter is being
    /// handed over now.
    pub(crate) fn unsettled(&self, transport: &str) -> Result<Vec<Unsettled>> {
        let mut stmt = self.conn.prepare(
            "SELECT r.key, a.id, r.name, r.akt_id FROM recipients r
             JOIN attempts a ON a.id = (SELECT max(id) FROM attempts WHERE key = r.key)
             WHERE a.transport = ?1 AND (r.state = 'unknown' OR (r.state = 'sending'
                 AND NOT (a.finished_at IS NULL AND a.data_at IS NULL AND a.was IS NOT NULL)))
             ORDER BY r.position, r.key",
        )?;
        let rows = stmt.query_map([transport], |r| {
            Ok(Unsettled {
                key: r.get(0)?,
                attempt: r.get(1)?,
                name: r.get(2)?,
                akt_id: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Settles letters an earlier run left `sending` or `unknown`, in one transaction: each
    /// becomes delivered (dated when its attempt started), pending again, or unknown with the
    /// reason. Only a letter still `sending` or `unknown` is changed; its attempt keeps its place
    /// in the history with what was found.
    pub(crate) fn settle(&mut self, settled: &[Settlement<'_>], now: &str) -> Result<()> {
        let result = self.settle_inner(settled, now);
        self.written(result)
    }

    fn settle_inner(&mut self, settled: &[Settlement<'_>], now: &str) -> Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut history = tx.prepare_cached(
                "UPDATE attempts SET state = ?2, reply = ?3, finished_at = ?4
                 WHERE id = ?1 AND state IN ('unknown', 'sending')",
            )?;
            let mut record = tx.prepare_cached(
                "UPDATE recipients SET state = ?2, last_code = NULL, last_reply = ?3, updated_at = ?4,
                     delivered_at = CASE WHEN ?2 = 'delivered'
                         THEN (SELECT started_at FROM attempts WHERE id = ?5) ELSE delivered_at END
                 WHERE key = ?1 AND state IN ('unknown', 'sending')",
            )?;
            for s in settled {
                let state = s.state.as_str();
                history.execute(params![s.attempt, state, s.reply, now])?;
                record.execute(params![s.key, state, s.reply, now, s.attempt])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Records a run's changes in one transaction, in the order given, and forces it to disk
    /// before returning, and with it every commit before. Only then may the data of a letter
    /// with a data mark here go out, and from then on a crash leaves such a letter `unknown`,
    /// never pending; only then may an outcome here be reported.
    ///
    /// Nothing of it is recorded unless all of it is.
    pub(crate) fn record(&mut self, changes: &[Change], transport: &str, now: &str) -> Result<()> {
        if !self.wal {
            // Without a write-ahead log, synchronous=FULL forces this commit itself.
            let result = self.record_inner(changes, transport, now);
            return self.written(result);
        }
        // Committed unforced, then forced by syncing the write-ahead log's data ourselves: what
        // synchronous=FULL does, but with fdatasync, which SQLite as built here replaces by a
        // full fsync (about 20 times slower on a journaling file system, and waited for before
        // each letter's data).
        let relaxed = self.conn.pragma_update(None, "synchronous", "NORMAL");
        self.written(relaxed.map_err(Into::into))?;
        let result = self.record_inner(changes, transport, now);
        let restored = self.conn.pragma_update(None, "synchronous", "FULL");
        self.written(result)?;
        self.written(restored.map_err(Into::into))?;
        let result = self.force_log();
        self.written(result)
    }

    /// Forces every commit so far to disk: syncs the data of the write-ahead log (which holds
    /// them until a checkpoint, itself synced) and, the first time, the folder that lists it.
    /// The log stays open for the next time: SQLite keeps the same file while the ledger is open.
    fn force_log(&mut self) -> Result<()> {
        let what = || format!("cannot force the ledger {} to disk", self.path.display());
        if self.log.is_none() {
            let mut wal = self.path.as_os_str().to_owned();
            wal.push("-wal");
            let log = File::open(&wal).with_context(what)?;
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                File::open(dir)
                    .and_then(|f| f.sync_all())
                    .with_context(what)?;
            }
            self.log = Some(log);
        }
        let log = self.log.as_ref().expect("opened above");
        log.sync_data().with_context(what)
    }

    fn record_inner(&mut self, changes: &[Change], transport: &str, now: &str) -> Result<()> {
        // A data mark for an attempt that starts in this same transaction goes in with its start.
        let data: HashSet<i64> = changes
            .iter()
            .filter_map(|c| match c {
                Change::Data(id) => Some(*id),
                _ => None,
            })
            .collect();
        let mut started = HashSet::new();
        let mut abandoned = false;
        let tx = self.conn.transaction()?;
        for change in changes {
            match change {
                Change::Start(s) => {
                    let with_data = data.contains(&s.attempt);
                    record_start(&tx, s, with_data, transport, now)?;
                    if with_data {
                        started.insert(s.attempt);
                    }
                }
                Change::Data(id) if started.contains(id) => {}
                Change::Data(id) => mark_data(&tx, *id, now)?,
                Change::Finish(f) => record_finish(&tx, f, now)?,
                Change::Abandon {
                    attempt,
                    key,
                    back_to,
                } => {
                    abandon(&tx, *attempt, key, *back_to, now)?;
                    abandoned = true;
                }
            }
        }
        if abandoned {
            unfreeze_if_untouched(&tx)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The id the next attempt gets: after every attempt recorded, and after every one ever
    /// recorded and taken back. The run that holds the lock gives them out in order.
    pub(crate) fn next_attempt(&self) -> Result<i64> {
        Ok(self.conn.query_row(
            "SELECT max(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'attempts'), 0),
                        COALESCE((SELECT max(id) FROM attempts), 0)) + 1",
            [],
            |r| r.get(0),
        )?)
    }

    /// Records starts on their own, giving them the next ids (the `attempt` given is ignored);
    /// returns the ids.
    #[cfg(test)]
    pub(crate) fn start_batch(
        &mut self,
        starts: Vec<Start>,
        transport: &str,
        now: &str,
    ) -> Result<Vec<i64>> {
        let first = self.next_attempt()?;
        let mut ids = Vec::new();
        let changes: Vec<Change> = starts
            .into_iter()
            .zip(first..)
            .map(|(s, attempt)| {
                ids.push(attempt);
                Change::Start(Start { attempt, ..s })
            })
            .collect();
        self.record(&changes, transport, now)?;
        Ok(ids)
    }

    /// Records only data marks for these attempts.
    #[cfg(test)]
    pub(crate) fn data_started(&mut self, data: &[i64], now: &str) -> Result<()> {
        let changes: Vec<Change> = data.iter().map(|id| Change::Data(*id)).collect();
        self.record(&changes, "", now)
    }

    /// Takes these attempts back unsent.
    #[cfg(test)]
    pub(crate) fn abandon_batch(
        &mut self,
        abandoned: &[(i64, &str, State)],
        now: &str,
    ) -> Result<()> {
        let changes: Vec<Change> = abandoned
            .iter()
            .map(|(attempt, key, back_to)| Change::Abandon {
                attempt: *attempt,
                key: key.to_string(),
                back_to: *back_to,
            })
            .collect();
        self.record(&changes, "", now)
    }

    #[cfg(test)]
    /// Marks one letter `sending`.
    pub(crate) fn start(
        &mut self,
        key: &str,
        expected: State,
        stamp: &Stamp,
        row_hash: &str,
        transport: &str,
        now: &str,
    ) -> Result<i64> {
        let start = Start {
            attempt: 0,
            key: key.to_string(),
            expected,
            address: String::new(),
            name: String::new(),
            stamp: stamp.clone(),
            row_hash: row_hash.to_string(),
        };
        let ids = self.start_batch(vec![start], transport, now)?;
        Ok(ids[0])
    }

    /// The recipients with an attempt after attempt `after` whose letter is not (surely)
    /// delivered, in file order.
    pub(crate) fn not_delivered_since(&self, after: i64) -> Result<Vec<Record>> {
        self.records_where(&format!(
            "state NOT IN ('delivered', 'pending') AND key IN (SELECT key FROM attempts WHERE id > {after})"
        ))
    }

    /// How many recipients are in each state.
    pub(crate) fn counts(&self) -> Result<Vec<(State, usize)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT state, count(*) FROM recipients GROUP BY state")?;
        let rows = stmt.query_map([], |r| {
            let state: String = r.get(0)?;
            Ok((
                State::parse(&state).unwrap_or(State::Unknown),
                r.get::<_, i64>(1)? as usize,
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Every Akt-id frozen in the ledger, with the recipient it belongs to.
    pub(crate) fn akt_ids(&self) -> Result<HashMap<String, String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT akt_id, key FROM recipients WHERE akt_id IS NOT NULL")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Who has, or may have, received the letter: the fingerprint (`recipients::fingerprint`) of
    /// each lower-cased address, with the recipient's key.
    pub(crate) fn reached(&self) -> Result<HashMap<u64, String>> {
        let mut stmt = self.conn.prepare(
            "SELECT lower(address), key FROM recipients WHERE state IN ('delivered', 'unknown', 'sending')",
        )?;
        let mut reached = HashMap::new();
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let address: String = r.get(0)?;
            reached.insert(crate::digest::fingerprint(&address), r.get(1)?);
        }
        Ok(reached)
    }

    #[cfg(test)]
    /// Records only the outcome of one letter.
    pub(crate) fn finish(
        &mut self,
        attempt: i64,
        key: &str,
        state: State,
        code: Option<u16>,
        reply: &str,
        now: &str,
    ) -> Result<()> {
        let finish = Finish {
            attempt,
            key: key.to_string(),
            state,
            code,
            reply: reply.to_string(),
        };
        self.record(&[Change::Finish(finish)], "", now)
    }
}

impl Ledger {
    /// Stores one receipt, once, and in the same transaction moves the letter from `settle.0`
    /// to `settle.1` if it is still in `settle.0` (the state follows the facts: a receipt stored
    /// while a run was sending the letter takes effect when it is read again). Receipts are never
    /// changed or deleted afterwards.
    pub(crate) fn add_receipt(&mut self, r: &NewReceipt<'_>, now: &str) -> Result<Added> {
        let tx = self.conn.transaction()?;
        let inserted = tx.execute(
            "INSERT OR IGNORE INTO receipts (digest, key, recipient, origin, kind, action, status,
                 diagnostic, reporter, reported_at, matched_by, recorded_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                r.digest,
                r.key,
                r.recipient,
                r.origin,
                r.kind,
                r.action,
                r.status,
                r.diagnostic,
                r.reporter,
                r.reported_at,
                r.matched_by,
                now
            ],
        )?;
        let mut changed = false;
        if let Some((from, to)) = r.settle {
            changed = tx.execute(
                "UPDATE recipients SET state = ?3, updated_at = ?4,
                     delivered_at = CASE WHEN ?3 = 'delivered' THEN COALESCE(delivered_at, ?5, ?4)
                                         ELSE delivered_at END
                 WHERE key = ?1 AND state = ?2",
                params![r.key, from.as_str(), to.as_str(), now, r.reported_at],
            )? == 1;
        }
        tx.commit()?;
        Ok(if changed {
            Added::Changed
        } else if inserted == 0 {
            Added::AlreadyStored
        } else {
            Added::Stored
        })
    }

    /// Every receipt, oldest first.
    pub(crate) fn receipts(&self) -> Result<Vec<Receipt>> {
        let mut stmt = self.conn.prepare(
            "SELECT key, recipient, origin, kind, action, status, diagnostic, reporter, reported_at,
                    matched_by, recorded_at
             FROM receipts ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(Receipt {
                key: r.get(0)?,
                recipient: r.get(1)?,
                origin: r.get(2)?,
                kind: r.get(3)?,
                action: r.get(4)?,
                status: r.get(5)?,
                diagnostic: r.get(6)?,
                reporter: r.get(7)?,
                reported_at: r.get(8)?,
                matched_by: r.get(9)?,
                recorded_at: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

/// A receipt to store, for `add_receipt`.
pub(crate) struct NewReceipt<'a> {
    /// A digest of the message's raw bytes: the same message read twice is stored once.
    pub digest: &'a str,
    pub key: &'a str,
    pub recipient: &'a str,
    /// Where the message was read: a file, or an IMAP folder, UIDVALIDITY and UID.
    pub origin: &'a str,
    pub kind: &'a str,
    pub action: &'a str,
    pub status: Option<&'a str>,
    pub diagnostic: Option<&'a str>,
    pub reporter: Option<&'a str>,
    pub reported_at: Option<&'a str>,
    /// Which key matched the message to the letter (ENVID, Message-ID, queue id, address).
    pub matched_by: &'a str,
    /// The change of state the receipt makes, if the letter is still in the first state.
    pub settle: Option<(State, State)>,
}

/// What `add_receipt` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Added {
    /// Stored; the letter's state is as it was.
    Stored,
    /// Stored, and the letter's state changed.
    Changed,
    /// The same message was stored before, and the state is as it was.
    AlreadyStored,
}

/// One stored receipt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Receipt {
    pub key: String,
    pub recipient: String,
    pub origin: String,
    pub kind: String,
    pub action: String,
    pub status: Option<String>,
    pub diagnostic: Option<String>,
    pub reporter: Option<String>,
    pub reported_at: Option<String>,
    pub matched_by: String,
    pub recorded_at: String,
}

/// How far `receipts fetch` has read one IMAP folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FolderProgress {
    pub uid_validity: u32,
    /// The highest UID read and recorded; 0 before the first.
    pub last_uid: u32,
}

/// The IMAP reading position, kept beside the receipts. A table of its own, made when first
/// needed, so that a ledger that never fetched is not changed.
const IMAP_PROGRESS: &str = "CREATE TABLE IF NOT EXISTS imap_progress (
    account      TEXT NOT NULL,
    folder       TEXT NOT NULL,
    uid_validity INTEGER NOT NULL,
    last_uid     INTEGER NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (account, folder)
)";

impl Ledger {
    /// Where `receipts fetch` stopped in this folder of this account ("user@host:port").
    pub(crate) fn folder_progress(
        &mut self,
        account: &str,
        folder: &str,
    ) -> Result<Option<FolderProgress>> {
        self.conn.execute_batch(IMAP_PROGRESS)?;
        Ok(self
            .conn
            .query_row(
                "SELECT uid_validity, last_uid FROM imap_progress WHERE account = ?1 AND folder = ?2",
                params![account, folder],
                |r| {
                    Ok(FolderProgress {
                        uid_validity: r.get(0)?,
                        last_uid: r.get(1)?,
                    })
                },
            )
            .optional()?)
    }

    /// Remembers that everything in the folder up to `progress.last_uid` has been recorded.
    pub(crate) fn set_folder_progress(
        &mut self,
        account: &str,
        folder: &str,
        progress: FolderProgress,
        now: &str,
    ) -> Result<()> {
        self.conn.execute_batch(IMAP_PROGRESS)?;
        self.conn.execute(
            "INSERT INTO imap_progress (account, folder, uid_validity, last_uid, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (account, folder) DO UPDATE SET
                uid_validity = excluded.uid_validity,
                last_uid = excluded.last_uid,
                updated_at = excluded.updated_at",
            params![
                account,
                folder,
                progress.uid_validity,
                progress.last_uid,
                now
            ],
        )?;
        Ok(())
    }
}

/// A run that stopped while handing letters over left them `sending`. Those whose message data
/// had started to go out may have been delivered: they become `unknown` and are not sent again
/// without an explicit choice. Those whose data never started cannot have arrived: they go back
/// to the state they had, as if the attempt had not been made. (An attempt written by an older
/// rundbrev, which recorded neither, counts as started.)
fn settle_interrupted(tx: &rusqlite::Transaction<'_>, now: &str) -> Result<Interrupted> {
    let mut interrupted = Interrupted::default();
    let mut back: Vec<(i64, String, State)> = Vec::new();
    {
        let mut stmt = tx.prepare(
            "SELECT r.key, a.id, a.was, a.data_at FROM recipients r
             LEFT JOIN attempts a ON a.key = r.key AND a.finished_at IS NULL
             WHERE r.state = 'sending' ORDER BY r.position, r.key, a.id",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let key: String = r.get(0)?;
            let id: Option<i64> = r.get(1)?;
            let was: Option<String> = r.get(2)?;
            let data_at: Option<String> = r.get(3)?;
            match (id, was.as_deref().and_then(State::parse), data_at) {
                (Some(id), Some(was), None) => back.push((id, key, was)),
                _ => interrupted.unknown.push(key),
            }
        }
    }
    interrupted.unknown.dedup();
    // A letter with one attempt whose data started and another not: it stays unknown.
    back.retain(|(_, key, _)| !interrupted.unknown.contains(key));
    let reply =
        "the run stopped while this letter was being handed over; it may have been delivered";
    {
        let mut history = tx.prepare(
            "UPDATE attempts SET state = 'unknown', finished_at = ?2, reply = ?3
             WHERE key = ?1 AND finished_at IS NULL",
        )?;
        let mut record = tx.prepare(
            "UPDATE recipients SET state = 'unknown', last_code = NULL, last_reply = ?3, updated_at = ?2
             WHERE key = ?1 AND state = 'sending'",
        )?;
        for key in &interrupted.unknown {
            history.execute(params![key, now, reply])?;
            record.execute(params![key, now, reply])?;
        }
    }
    for (id, key, was) in &back {
        abandon(tx, *id, key, *was, now)?;
    }
    unfreeze_if_untouched(tx)?;
    interrupted.back = back.into_iter().map(|(_, key, was)| (key, was)).collect();
    Ok(interrupted)
}

fn record_finish(tx: &rusqlite::Transaction<'_>, f: &Finish, now: &str) -> Result<()> {
    let mut history = tx.prepare_cached(
        "UPDATE attempts SET finished_at = ?2, state = ?3, code = ?4, reply = ?5 WHERE id = ?1",
    )?;
    let mut record = tx.prepare_cached(
        "UPDATE recipients SET state = ?2, last_code = ?3, last_reply = ?4, updated_at = ?5,
             delivered_at = CASE WHEN ?2 = 'delivered' THEN ?5 ELSE delivered_at END
         WHERE key = ?1",
    )?;
    let state = f.state.as_str();
    if history.execute(params![f.attempt, now, state, f.code, f.reply])? != 1 {
        bail!(
            "the ledger has no attempt {} for {}; nothing more was sent, run again",
            f.attempt,
            f.key
        );
    }
    record.execute(params![f.key, state, f.code, f.reply, now])?;
    Ok(())
}

fn mark_data(tx: &rusqlite::Transaction<'_>, attempt: i64, now: &str) -> Result<()> {
    let mut mark = tx
        .prepare_cached("UPDATE attempts SET data_at = ?2 WHERE id = ?1 AND finished_at IS NULL")?;
    if mark.execute(params![attempt, now])? != 1 {
        bail!("the ledger has no open attempt {attempt}; nothing more was sent, run again");
    }
    Ok(())
}

/// Marks the letter `sending` (its stamps frozen at the first hand-over) and begins its attempt,
/// with its data mark when `with_data`.
fn record_start(
    tx: &rusqlite::Transaction<'_>,
    s: &Start,
    with_data: bool,
    transport: &str,
    now: &str,
) -> Result<()> {
    // The stamps stay as frozen at the first hand-over; the address, name and row are the ones
    // this letter goes to now (they may have been corrected, --accept-changes).
    let mut mark = tx.prepare_cached(
        "UPDATE recipients SET state = 'sending', attempts = attempts + 1, updated_at = ?2,
             message_id = COALESCE(message_id, ?3), letter_date = COALESCE(letter_date, ?4),
             sags_nr = COALESCE(sags_nr, ?5), akt_id = COALESCE(akt_id, ?6),
             row_hash = ?7, address = COALESCE(NULLIF(?8, ''), address),
             name = COALESCE(NULLIF(?9, ''), name)
         WHERE key = ?1 AND state = ?10",
    )?;
    let mut history = tx.prepare_cached(
        "INSERT INTO attempts (id, key, transport, started_at, state, address, was, data_at)
         VALUES (?1, ?2, ?3, ?4, 'sending', ?5, ?6, ?7)",
    )?;
    let changed = mark.execute(params![
        s.key,
        now,
        s.stamp.message_id,
        s.stamp.letter_date.to_string(),
        s.stamp.sags_nr,
        s.stamp.akt_id,
        s.row_hash,
        s.address,
        s.name,
        s.expected.as_str()
    ])?;
    if changed != 1 {
        bail!(
            "the ledger no longer has {} as {} (another change came in between); nothing more was sent, run again",
            s.key,
            s.expected
        );
    }
    history.execute(params![
        s.attempt,
        s.key,
        transport,
        now,
        s.address,
        s.expected.as_str(),
        with_data.then_some(now)
    ])?;
    Ok(())
}

/// Takes back an attempt whose letter never went out: the letter returns to `back_to`, its stamps
/// unfrozen if this was its first attempt, and the attempt leaves no trace in the history. An
/// attempt that was never recorded leaves the letter as it is.
fn abandon(
    tx: &rusqlite::Transaction<'_>,
    attempt: i64,
    key: &str,
    back_to: State,
    now: &str,
) -> Result<()> {
    let mut history = tx.prepare_cached("DELETE FROM attempts WHERE id = ?1")?;
    // A letter never handed over has no frozen stamps yet, unless an earlier try had.
    let mut record = tx.prepare_cached(
        "UPDATE recipients SET state = ?2, attempts = attempts - 1, updated_at = ?3,
             message_id = CASE WHEN attempts = 1 THEN NULL ELSE message_id END,
             letter_date = CASE WHEN attempts = 1 THEN NULL ELSE letter_date END,
             sags_nr = CASE WHEN attempts = 1 THEN NULL ELSE sags_nr END,
             akt_id = CASE WHEN attempts = 1 THEN NULL ELSE akt_id END,
             row_hash = CASE WHEN attempts = 1 THEN NULL ELSE row_hash END,
             address = COALESCE((SELECT address FROM attempts WHERE key = ?1
                 AND address IS NOT NULL AND address <> '' ORDER BY id DESC LIMIT 1), address)
         WHERE key = ?1",
    )?;
    if history.execute(params![attempt])? == 1 {
        record.execute(params![key, back_to.as_str(), now])?;
    }
    Ok(())
}

/// Nothing of the campaign was ever handed over: its stamps are not frozen either.
fn unfreeze_if_untouched(tx: &rusqlite::Transaction<'_>) -> Result<()> {
    tx.execute(
        "DELETE FROM campaign WHERE NOT EXISTS (SELECT 1 FROM recipients WHERE attempts > 0)",
        [],
    )?;
    Ok(())
}

fn lock_path(ledger: &Path) -> PathBuf {
    let mut p = ledger.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Runs the migrations that have not run yet, each in its own transaction.
fn migrate(conn: &mut Connection) -> Result<()> {
    let done: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if done > MIGRATIONS.len() {
        bail!(
            "this ledger was written by a newer rundbrev (schema version {done}); use that version"
        );
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .with_context(|| format!("ledger migration {} failed", i + 1))?;
        tx.pragma_update(None, "user_version", i + 1)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lists these recipients, as a run's start does.
    fn sync<'a>(
        l: &mut Ledger,
        listed: impl IntoIterator<Item = Result<Listed<'a>>>,
        now: &str,
    ) -> Result<()> {
        let mut enlisting = l.enlist(now)?;
        for one in listed {
            enlisting.add(&one?)?;
        }
        enlisting.commit().map(|_| ())
    }
    use chrono::NaiveDate;

    fn memory() -> Ledger {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        Ledger {
            conn,
            path: PathBuf::from(":memory:"),
            wal: false,
            log: None,
        }
    }

    fn stamp(akt: &str) -> Stamp {
        Stamp {
            letter_date: NaiveDate::from_ymd_opt(2020, 6, 29).unwrap(),
            sags_nr: "S".into(),
            akt_id: akt.into(),
            message_id: format!("{akt}@uim.dk"),
        }
    }

    fn listed<'a>(key: &'a str, address: &'a str) -> Result<Listed<'a>> {
        Ok(Listed {
            key: key.into(),
            position: 0,
            address: address.into(),
            name: "N".into(),
        })
    }

    fn receipt<'a>(digest: &'a str, settle: Option<(State, State)>) -> NewReceipt<'a> {
        NewReceipt {
            digest,
            key: "101",
            recipient: "a@kk.dk",
            origin: "b.eml",
            kind: "bounce",
            action: "failed",
            status: Some("5.1.1"),
            diagnostic: Some("550 5.1.1 no such user"),
            reporter: Some("relay.uim.dk"),
            reported_at: Some("2020-06-29 10:03:00+02:00"),
            matched_by: "envid",
            settle,
        }
    }

    #[test]
    fn a_receipt_is_stored_once_and_moves_the_state_only_from_the_state_it_names() {
        let mut l = memory();
        sync(&mut l, [listed("101", "a@kk.dk")], "t0").unwrap();
        let id = l
            .start("101", State::Pending, &stamp("1"), "h", "outbox", "t1")
            .unwrap();
        l.finish(id, "101", State::Delivered, Some(250), "250 ok", "t2")
            .unwrap();
        let bounce = Some((State::Delivered, State::Bounced));
        assert_eq!(
            l.add_receipt(&receipt("d1", bounce), "t3").unwrap(),
            Added::Changed
        );
        assert_eq!(l.lookup("101").unwrap().unwrap().state, State::Bounced);
        assert_eq!(
            l.add_receipt(&receipt("d1", bounce), "t4").unwrap(),
            Added::AlreadyStored
        );
        // A report that expects another state than the letter has changes nothing.
        let settle = Some((State::Unknown, State::Delivered));
        assert_eq!(
            l.add_receipt(&receipt("d2", settle), "t5").unwrap(),
            Added::Stored
        );
        assert_eq!(l.lookup("101").unwrap().unwrap().state, State::Bounced);
        assert_eq!(l.receipts().unwrap().len(), 2);
    }

    #[test]
    fn receipts_can_be_neither_changed_nor_deleted() {
        let mut l = memory();
        sync(&mut l, [listed("101", "a@kk.dk")], "t0").unwrap();
        l.add_receipt(&receipt("d1", None), "t1").unwrap();
        assert!(l
            .conn
            .execute("UPDATE receipts SET status = '2.0.0'", [])
            .is_err());
        assert!(l.conn.execute("DELETE FROM receipts", []).is_err());
        assert_eq!(l.receipts().unwrap()[0].status.as_deref(), Some("5.1.1"));
    }

    #[test]
    fn the_imap_position_is_kept_per_account_and_folder() {
        let mut l = memory();
        assert_eq!(l.folder_progress("u@h:143", "INBOX").unwrap(), None);
        let at = |v, u| FolderProgress {
            uid_validity: v,
            last_uid: u,
        };
        l.set_folder_progress("u@h:143", "INBOX", at(7, 3), "t1")
            .unwrap();
        l.set_folder_progress("u@h:143", "INBOX", at(7, 5), "t2")
            .unwrap();
        l.set_folder_progress("u@h:143", "Bounces", at(9, 1), "t2")
            .unwrap();
        assert_eq!(
            l.folder_progress("u@h:143", "INBOX").unwrap(),
            Some(at(7, 5))
        );
        assert_eq!(
            l.folder_progress("u@h:143", "Bounces").unwrap(),
            Some(at(9, 1))
        );
        assert_eq!(l.folder_progress("other@h:143", "INBOX").unwrap(), None);
    }

    #[test]
    fn migrations_run_twice_are_harmless() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let v: usize = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, MIGRATIONS.len());
    }

    #[test]
    fn an_attempt_freezes_stamps_and_records_the_outcome_and_history() {
        let mut l = memory();
        sync(&mut l, [listed("101", "a@kk.dk")], "t0").unwrap();
        let id = l
            .start("101", State::Pending, &stamp("1"), "h", "outbox", "t1")
            .unwrap();
        assert_eq!(l.records().unwrap()[0].state, State::Sending);
        l.finish(
            id,
            "101",
            State::FailedTemporary,
            Some(451),
            "451 try later",
            "t2",
        )
        .unwrap();
        // A retry with other stamps keeps the frozen ones.
        let id = l
            .start(
                "101",
                State::FailedTemporary,
                &stamp("2"),
                "h2",
                "outbox",
                "t3",
            )
            .unwrap();
        l.finish(id, "101", State::Delivered, Some(250), "250 ok", "t4")
            .unwrap();
        let r = &l.records().unwrap()[0];
        assert_eq!(r.state, State::Delivered);
        assert_eq!(r.attempts, 2);
        assert_eq!(r.frozen_stamp().unwrap(), stamp("1"));
        assert_eq!(r.row_hash.as_deref(), Some("h2"), "the row as last sent");
        assert_eq!(r.delivered_at.as_deref(), Some("t4"));
        assert_eq!(l.attempts().unwrap().len(), 2);
    }

    #[test]
    fn a_delivered_letter_cannot_be_started_again() {
        let mut l = memory();
        sync(&mut l, [listed("101", "a@kk.dk")], "t0").unwrap();
        let id = l
            .start("101", State::Pending, &stamp("1"), "h", "outbox", "t1")
            .unwrap();
        l.finish(id, "101", State::Delivered, Some(250), "ok", "t2")
            .unwrap();
        assert!(l
            .start("101", State::Pending, &stamp("1"), "h", "outbox", "t3")
            .is_err());
    }

    #[test]
    fn an_abandoned_attempt_leaves_no_trace() {
        let mut l = memory();
        sync(&mut l, [listed("101", "a@kk.dk")], "t0").unwrap();
        let id = l
            .start("101", State::Pending, &stamp("1"), "h", "smtp", "t1")
            .unwrap();
        l.abandon_batch(&[(id, "101", State::Pending)], "t2")
            .unwrap();
        let r = l.lookup("101").unwrap().unwrap();
        assert_eq!((r.state, r.attempts), (State::Pending, 0));
        assert!(l.attempts().unwrap().is_empty());
    }

    #[test]
    fn an_interrupted_send_whose_data_started_becomes_unknown() {
        let mut l = memory();
        sync(
            &mut l,
            [listed("101", "a@kk.dk"), listed("147", "b@f.dk")],
            "t0",
        )
        .unwrap();
        let id = l
            .start("101", State::Pending, &stamp("1"), "h", "smtp", "t1")
            .unwrap();
        l.data_started(&[id], "t1").unwrap();
        let interrupted = l.enlist("t2").unwrap().commit().unwrap();
        assert_eq!(interrupted.unknown, vec!["101".to_string()]);
        assert!(interrupted.back.is_empty());
        let records = l.records().unwrap();
        let r = records.iter().find(|r| r.key == "101").unwrap();
        assert_eq!(r.state, State::Unknown);
        assert_eq!(l.attempts().unwrap()[0].state, State::Unknown);
    }

    #[test]
    fn a_settled_letter_is_delivered_when_its_attempt_started_or_pending_again() {
        let mut l = memory();
        sync(
            &mut l,
            [
                listed("101", "a@kk.dk"),
                listed("147", "b@f.dk"),
                listed("151", "c@b.dk"),
                listed("192", "d@g.dk"),
            ],
            "t0",
        )
        .unwrap();
        for (key, akt) in [("101", "1"), ("147", "2"), ("151", "3")] {
            let id = l
                .start(key, State::Pending, &stamp(akt), "h", "outbox", "t1")
                .unwrap();
            l.data_started(&[id], "t1").unwrap();
        }
        // 192's text never started to go out: the run's start takes it back, not the outbox.
        l.start("192", State::Pending, &stamp("4"), "h", "outbox", "t1")
            .unwrap();
        let open = l.unsettled("outbox").unwrap();
        assert_eq!(
            open.iter().map(|u| u.key.as_str()).collect::<Vec<_>>(),
            ["101", "147", "151"]
        );
        assert!(l.unsettled("smtp").unwrap().is_empty());
        l.settle(
            &[
                Settlement {
                    attempt: open[0].attempt,
                    key: "101",
                    state: State::Delivered,
                    reply: "found",
                },
                Settlement {
                    attempt: open[1].attempt,
                    key: "147",
                    state: State::Pending,
                    reply: "not found",
                },
                Settlement {
                    attempt: open[2].attempt,
                    key: "151",
                    state: State::Unknown,
                    reply: "differs",
                },
            ],
            "t3",
        )
        .unwrap();
        let records = l.records().unwrap();
        assert_eq!(records[0].state, State::Delivered);
        assert_eq!(records[0].delivered_at.as_deref(), Some("t1"));
        assert_eq!(records[1].state, State::Pending);
        assert_eq!(records[1].last_reply.as_deref(), Some("not found"));
        assert_eq!(records[2].state, State::Unknown);
        assert_eq!(records[2].last_reply.as_deref(), Some("differs"));
        assert_eq!(
            l.unsettled("outbox").unwrap().len(),
            1,
            "an unknown letter is looked at again next time"
        );
        // A pending letter starts again with the stamps frozen at its first attempt.
        l.start("147", State::Pending, &stamp("9"), "h", "outbox", "t4")
            .unwrap();
        assert_eq!(l.lookup("147").unwrap().unwrap().stamp, Some(stamp("2")));
    }

    #[test]
    fn a_data_mark_in_a_ledger_on_disk_is_kept_when_it_is_opened_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.ledger.sqlite");
        let mut l = Ledger::create_or_open(&path).unwrap();
        sync(&mut l, [listed("101", "a@kk.dk")], "t0").unwrap();
        let id = l
            .start("101", State::Pending, &stamp("1"), "h", "smtp", "t1")
            .unwrap();
        l.data_started(&[id], "t1").unwrap();
        drop(l);
        let mut again = Ledger::create_or_open(&path).unwrap();
        assert_eq!(
            again.enlist("t2").unwrap().commit().unwrap().unknown,
            vec!["101"]
        );
    }

    #[test]
    fn an_interrupted_send_whose_data_never_started_goes_back_as_it_was() {
        let mut l = memory();
        sync(
            &mut l,
            [listed("101", "a@kk.dk"), listed("147", "b@f.dk")],
            "t0",
        )
        .unwrap();
        // 147 failed for now once, and its retry was taken but never got to its data.
        let first = l
            .start("147", State::Pending, &stamp("2"), "h", "smtp", "t1")
            .unwrap();
        l.finish(first, "147", State::FailedTemporary, Some(451), "451", "t2")
            .unwrap();
        l.start(
            "147",
            State::FailedTemporary,
            &stamp("9"),
            "h",
            "smtp",
            "t3",
        )
        .unwrap();
        l.start("101", State::Pending, &stamp("1"), "h", "smtp", "t3")
            .unwrap();
        let interrupted = l.enlist("t4").unwrap().commit().unwrap();
        assert!(interrupted.unknown.is_empty());
        assert_eq!(interrupted.back.len(), 2);
        let r = l.lookup("101").unwrap().unwrap();
        assert_eq!((r.state, r.attempts, r.stamp), (State::Pending, 0, None));
        let r = l.lookup("147").unwrap().unwrap();
        assert_eq!((r.state, r.attempts), (State::FailedTemporary, 1));
        assert_eq!(r.stamp, Some(stamp("2")), "the first attempt's stamps stay");
        assert_eq!(l.attempts().unwrap().len(), 1, "only the finished attempt");
    }

    #[test]
    fn an_interrupted_attempt_from_an_older_rundbrev_counts_as_started() {
        let mut l = memory();
        sync(&mut l, [listed("101", "a@kk.dk")], "t0").unwrap();
        l.start("101", State::Pending, &stamp("1"), "h", "smtp", "t1")
            .unwrap();
        l.conn
            .execute("UPDATE attempts SET was = NULL", [])
            .unwrap();
        let interrupted = l.enlist("t2").unwrap().commit().unwrap();
        assert_eq!(interrupted.unknown, vec!["101".to_string()]);
    }

    #[test]
    fn sync_keeps_the_address_of_a_recipient_already_attempted() {
        let mut l = memory();
        sync(
            &mut l,
            [listed("101", "a@kk.dk"), listed("147", "b@f.dk")],
            "t0",
        )
        .unwrap();
        let id = l
            .start("101", State::Pending, &stamp("1"), "h", "smtp", "t1")
            .unwrap();
        l.data_started(&[id], "t1").unwrap();
        sync(
            &mut l,
            [listed("101", "new@kk.dk"), listed("147", "new@f.dk")],
            "t2",
        )
        .unwrap();
        let r = l.records().unwrap();
        assert_eq!(
            r.iter().find(|r| r.key == "101").unwrap().address,
            "a@kk.dk"
        );
        assert_eq!(
            r.iter().find(|r| r.key == "147").unwrap().address,
            "new@f.dk"
        );
    }

    #[test]
    fn a_hand_over_taken_back_leaves_the_address_the_letter_last_went_to() {
        let mut l = memory();
        sync(&mut l, [listed("101", "a@kk.dk")], "t0").unwrap();
        let frozen = stamp("1");
        let start = |address: &str| Start {
            attempt: 0,
            key: "101".into(),
            expected: State::Pending,
            address: address.into(),
            name: "N".into(),
            stamp: frozen.clone(),
            row_hash: "h".into(),
        };
        let first = l.start_batch(vec![start("a@kk.dk")], "smtp", "t1").unwrap()[0];
        l.data_started(&[first], "t1").unwrap();
        l.finish(
            first,
            "101",
            State::FailedPermanent,
            Some(550),
            "no such mailbox",
            "t1",
        )
        .unwrap();
        // Corrected to b@kk.dk and taken by a connection, then given back before any data went
        // out (Ctrl-C): the record still says a@kk.dk, so the correction is seen again.
        let second = Start {
            expected: State::FailedPermanent,
            ..start("b@kk.dk")
        };
        let id = l.start_batch(vec![second], "smtp", "t2").unwrap()[0];
        l.abandon_batch(&[(id, "101", State::FailedPermanent)], "t2")
            .unwrap();
        let r = l.records().unwrap().remove(0);
        assert_eq!(
            (r.address.as_str(), r.state, r.attempts),
            ("a@kk.dk", State::FailedPermanent, 1)
        );
    }
}
