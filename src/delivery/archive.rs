//! The archive for the case file: every letter exactly as it was handed to the transport.
//!
//! `Archiving` wraps a transport. Right before the message's data goes out (at the transport's
//! gate, before the caller's own), it writes the message's bytes to
//! `<archive.dir>/<Akt-id>_<kommunekode>_<name>.eml`, a name the file gets only once it is whole
//! (see `keep`); if that fails, the message is not handed
//! over and the run stops (a letter that cannot be archived is not sent).
//! When a letter is handed over again (a retry or a resend) and its bytes differ, the earlier
//! file is kept as `….earlier-N.eml`: the case file loses nothing that may have arrived. A letter
//! whose data never went out (the hand-over failed, the gate stayed closed, or the server refused it
//! at MAIL FROM or RCPT TO) is taken out again, so the archive holds exactly the letters whose data went out. It never
//! touches the ledger and never changes the bytes it is given.

use std::path::{Path, PathBuf};

use crate::delivery::transport::{Gate, Outcome, Stop, Transport};
use crate::letter::compose::Composed;
use crate::record::storage::Cause;

/// The archive file of the letter with this file stem.
pub(crate) fn path_for(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.eml"))
}

/// A transport that keeps every message in the archive before handing it to `inner`.
pub(crate) struct Archiving<T: Transport> {
    inner: T,
    dir: PathBuf,
    dir_made: bool,
}

impl<T: Transport> Archiving<T> {
    pub(crate) fn new(inner: T, dir: &Path) -> Archiving<T> {
        Archiving {
            inner,
            dir: dir.to_path_buf(),
            dir_made: false,
        }
    }
}

impl<T: Transport> Transport for Archiving<T> {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    fn send(&mut self, message: &Composed, name: &str) -> Result<Outcome, Stop> {
        self.send_through(message, name, &mut || Ok(()))
    }

    fn send_through(
        &mut self,
        message: &Composed,
        name: &str,
        gate: &mut Gate<'_>,
    ) -> Result<Outcome, Stop> {
        let Archiving {
            inner,
            dir,
            dir_made,
        } = self;
        let mut kept: Option<(PathBuf, bool, Option<PathBuf>)> = None;
        let mut passed = false;
        let result = inner.send_through(message, name, &mut || {
            let written =
                keep(dir, dir_made, name, &message.bytes).map_err(|e| Stop::ArchiveUnwritable {
                    path: path_for(dir, name),
                    error: Cause::describe(&e),
                })?;
            tracing::debug!(path = %written.0.display(), "archived before hand-over");
            kept = Some(written);
            gate()?;
            passed = true;
            Ok(())
        });
        let went_out = passed && result.as_ref().is_ok_and(Outcome::data_went_out);
        // Not handed over after all, or refused before its data: the archive holds only what
        // went out. A copy from an earlier hand-over of the same bytes stays.
        if let Some((path, true, moved)) = kept.filter(|_| !went_out) {
            let _ = std::fs::remove_file(&path);
            if let Some(earlier) = moved {
                let _ = std::fs::rename(earlier, &path);
            }
        }
        result
    }

    fn close(&mut self) {
        self.inner.close();
    }
}

/// Writes the message; returns its path, whether this call wrote it (false: the same bytes were
/// there from an earlier hand-over) and where an earlier, different version was moved.
///
/// The protocol, for a crash at any moment (`kill -9` included): the copy gets its letter's name
/// only once it is whole (`whole_file::create_new`, which never takes the name from a file already
/// there), so the archive never holds part of a letter under a letter's name. Most letters are
/// archived once: the name is simply taken, with no look first; only when it is taken is the file
/// there read, and an earlier, different version renamed to `….earlier-N.eml` before the new copy
/// takes the name.
fn keep(
    dir: &Path,
    dir_made: &mut bool,
    name: &str,
    bytes: &[u8],
) -> std::io::Result<(PathBuf, bool, Option<PathBuf>)> {
    if !*dir_made {
        std::fs::create_dir_all(dir)?;
        *dir_made = true;
    }
    let path = path_for(dir, name);
    // Whole or not at all, but not forced to disk letter by letter: it survives a crash of
    // rundbrev; after a power cut the ledger, which is forced to disk, is the record.
    match crate::whole_file::create_new(&path, bytes) {
        Ok(()) => return Ok((path, true, None)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    if std::fs::read(&path)? == bytes {
        return Ok((path, false, None));
    }
    let kept = (1..)
        .map(|n| dir.join(format!("{name}.earlier-{n}.eml")))
        .find(|p| !p.exists())
        .expect("a free name");
    std::fs::rename(&path, &kept)?;
    if let Err(e) = crate::whole_file::create_new(&path, bytes) {
        // The earlier copy goes back: the archive keeps holding what was handed over last.
        let _ = std::fs::rename(&kept, &path);
        return Err(e);
    }
    Ok((path, true, Some(kept)))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder(Vec<Vec<u8>>);

    impl Transport for Recorder {
        fn kind(&self) -> &'static str {
            "test"
        }
        fn send(&mut self, message: &Composed, _name: &str) -> Result<Outcome, Stop> {
            self.0.push(message.bytes.clone());
            Ok(Outcome::Delivered {
                code: Some(250),
                reply: "250 ok".into(),
            })
        }
    }

    fn message(bytes: &[u8]) -> Composed {
        Composed {
            bytes: bytes.to_vec(),
            envelope_from: "a@b.dk".into(),
            envelope_to: vec!["c@d.dk".into()],
            message_id: "m@b.dk".into(),
        }
    }

    #[test]
    fn the_archive_holds_the_bytes_handed_over_and_keeps_an_earlier_different_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Archiving::new(Recorder(Vec::new()), dir.path());
        t.send(&message(b"first"), "1_101_K").unwrap();
        t.send(&message(b"first"), "1_101_K").unwrap();
        t.send(&message(b"second"), "1_101_K").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("1_101_K.eml")).unwrap(),
            b"second"
        );
        assert_eq!(
            std::fs::read(dir.path().join("1_101_K.earlier-1.eml")).unwrap(),
            b"first"
        );
        assert!(!dir.path().join("1_101_K.earlier-2.eml").exists());
        assert_eq!(t.inner.0.len(), 3);
    }

    /// Refuses every letter at RCPT TO, as a server does with 550 for an unknown mailbox.
    struct Refuser;

    impl Transport for Refuser {
        fn kind(&self) -> &'static str {
            "test"
        }
        fn send(&mut self, _message: &Composed, _name: &str) -> Result<Outcome, Stop> {
            Ok(Outcome::Permanent {
                code: Some(550),
                reply: "550 5.1.1 no such user".into(),
                data_sent: false,
            })
        }
    }

    #[test]
    fn a_letter_refused_before_its_data_is_taken_out_but_an_earlier_copy_stays() {
        let dir = tempfile::tempdir().unwrap();
        let mut t = Archiving::new(Refuser, dir.path());
        t.send(&message(b"first"), "1_101_K").unwrap();
        assert!(!dir.path().join("1_101_K.eml").exists());

        // The same bytes went out in an earlier run: that copy is kept.
        std::fs::write(dir.path().join("2_147_F.eml"), b"sent").unwrap();
        t.send(&message(b"sent"), "2_147_F").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("2_147_F.eml")).unwrap(),
            b"sent"
        );
        // Different bytes refused: the earlier copy is put back under its own name.
        t.send(&message(b"changed"), "2_147_F").unwrap();
        assert_eq!(
            std::fs::read(dir.path().join("2_147_F.eml")).unwrap(),
            b"sent"
        );
        assert!(!dir.path().join("2_147_F.earlier-1.eml").exists());
    }

    #[test]
    fn a_letter_that_cannot_be_archived_is_not_handed_over() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, "").unwrap();
        let mut t = Archiving::new(Recorder(Vec::new()), &blocker.join("archive"));
        assert!(t.send(&message(b"x"), "1_101_K").is_err());
        assert!(t.inner.0.is_empty());
    }
}
