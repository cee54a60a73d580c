//! Settling, at the start of a run and before it is planned, the letters an earlier outbox run
//! left `sending` (it stopped while handing them over) or `unknown`: the outbox is a folder the
//! campaign owns, so it can say what happened to them.
//!
//! A letter is delivered only on proof: its outbox file holds exactly the bytes archived for it
//! before hand-over. It is pending again only on proof too: neither the outbox nor the archive
//! has it (the archive copy is written before hand-over and removed when the hand-over fails).
//! Anything else leaves it unknown, with the reason: an outbox file with no archived copy to
//! compare with or with other bytes, an archived copy with no outbox file (it may have been
//! written and moved away since), a file that cannot be read, no outbox folder. This module reads
//! files and asks the ledger to record what it found; it never writes, moves or removes a file,
//! never sends, and never settles a letter whose last attempt went through SMTP.

use std::io::ErrorKind;
use std::path::Path;

use anyhow::Result;

use crate::campaign::file_stem;
use crate::delivery::{archive, outbox};
use crate::record::ledger::{Ledger, Settlement, State, Unsettled};

/// What looking in the outbox settled: keys, in file order.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Settled {
    /// Found in the outbox exactly as archived: now delivered.
    pub delivered: Vec<String>,
    /// Not in the outbox: pending again.
    pub pending: Vec<String>,
    /// Still unknown, each with the reason.
    pub unknown: Vec<(String, String)>,
}

impl Settled {
    pub(crate) fn is_empty(&self) -> bool {
        self.delivered.is_empty() && self.pending.is_empty() && self.unknown.is_empty()
    }
}

/// What the outbox shows for one letter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Delivered(String),
    Pending(String),
    Unknown(String),
}

/// Looks in `outbox` (and `archive`) for every letter an outbox run left `sending` or unknown,
/// and records what it finds in one transaction. Call it with the run lock held.
pub(crate) fn from_outbox(
    ledger: &mut Ledger,
    outbox_dir: &Path,
    archive_dir: &Path,
    now: &str,
) -> Result<Settled> {
    let open = ledger.unsettled("outbox")?;
    if open.is_empty() {
        return Ok(Settled::default());
    }
    let verdicts: Vec<(&Unsettled, Verdict)> = open
        .iter()
        .map(|u| (u, judge(u, outbox_dir, archive_dir)))
        .collect();
    let mut settled = Settled::default();
    let mut settlements = Vec::new();
    for (u, verdict) in &verdicts {
        let (state, reply) = match verdict {
            Verdict::Delivered(r) => {
                settled.delivered.push(u.key.clone());
                (State::Delivered, r)
            }
            Verdict::Pending(r) => {
                settled.pending.push(u.key.clone());
                (State::Pending, r)
            }
            Verdict::Unknown(r) => {
                settled.unknown.push((u.key.clone(), r.clone()));
                (State::Unknown, r)
            }
        };
        settlements.push(Settlement {
            attempt: u.attempt,
            key: &u.key,
            state,
            reply,
        });
    }
    ledger.settle(&settlements, now)?;
    Ok(settled)
}

fn judge(u: &Unsettled, outbox_dir: &Path, archive_dir: &Path) -> Verdict {
    let Some(akt_id) = &u.akt_id else {
        return Verdict::Unknown(
            "the ledger has no Akt-id for it, so its file cannot be named".into(),
        );
    };
    let stem = file_stem(akt_id, &u.key, &u.name);
    let sent = outbox::path_for(outbox_dir, &stem);
    let kept = archive::path_for(archive_dir, &stem);
    match outbox_dir.try_exists() {
        Ok(true) => {}
        Ok(false) => {
            return Verdict::Unknown(format!(
                "the outbox folder {} is not there (if it was moved, put it back and run again)",
                outbox_dir.display()
            ))
        }
        Err(e) => {
            return Verdict::Unknown(format!(
                "cannot look in the outbox folder {}: {e}",
                outbox_dir.display()
            ))
        }
    }
    compare(
        &sent.display().to_string(),
        std::fs::read(&sent),
        &kept.display().to_string(),
        std::fs::read(&kept),
    )
}

/// The verdict from what was read: the outbox file and the archived copy.
fn compare(
    sent_name: &str,
    sent: std::io::Result<Vec<u8>>,
    kept_name: &str,
    kept: std::io::Result<Vec<u8>>,
) -> Verdict {
    let sent = match sent {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return match kept {
                Err(e) if e.kind() == ErrorKind::NotFound => Verdict::Pending(format!(
                    "neither in the outbox ({sent_name}) nor in the archive when the next run looked, so it was never handed over; pending again"
                )),
                Ok(_) => Verdict::Unknown(format!(
                    "{sent_name} is not in the outbox, but the archive holds the copy made before hand-over ({kept_name}): it may have been written to the outbox and moved away since, so it may have been delivered"
                )),
                Err(e) => Verdict::Unknown(format!(
                    "{sent_name} is not in the outbox and the archived copy {kept_name} cannot be read: {e}"
                )),
            };
        }
        Err(e) => return Verdict::Unknown(format!("cannot read {sent_name}: {e}")),
    };
    match kept {
        Ok(kept) if kept == sent => Verdict::Delivered(format!(
            "found in the outbox as {sent_name}, byte for byte the copy archived before hand-over"
        )),
        Ok(_) => Verdict::Unknown(format!(
            "{sent_name} is in the outbox but differs from the copy archived before hand-over ({kept_name})"
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => Verdict::Unknown(format!(
            "{sent_name} is in the outbox, but the archive has no copy ({kept_name}) to prove it is the letter handed over"
        )),
        Err(e) => Verdict::Unknown(format!("cannot read the archived copy {kept_name}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn missing() -> std::io::Result<Vec<u8>> {
        Err(ErrorKind::NotFound.into())
    }

    #[test]
    fn only_the_exact_archived_bytes_in_the_outbox_count_as_delivered() {
        let v = |sent, kept| compare("o.eml", sent, "a.eml", kept);
        assert!(matches!(
            v(Ok(b"letter".to_vec()), Ok(b"letter".to_vec())),
            Verdict::Delivered(_)
        ));
        assert!(matches!(
            v(Ok(b"letter".to_vec()), Ok(b"other".to_vec())),
            Verdict::Unknown(r) if r.contains("differs")
        ));
        assert!(matches!(
            v(Ok(b"letter".to_vec()), missing()),
            Verdict::Unknown(r) if r.contains("no copy")
        ));
        assert!(matches!(
            v(Err(ErrorKind::PermissionDenied.into()), Ok(b"letter".to_vec())),
            Verdict::Unknown(r) if r.contains("cannot read o.eml")
        ));
    }

    #[test]
    fn a_letter_is_pending_again_only_when_neither_the_outbox_nor_the_archive_has_it() {
        let v = |kept| compare("o.eml", missing(), "a.eml", kept);
        assert!(matches!(v(missing()), Verdict::Pending(_)));
        assert!(matches!(
            v(Ok(b"letter".to_vec())),
            Verdict::Unknown(r) if r.contains("may have been delivered")
        ));
        assert!(matches!(
            v(Err(ErrorKind::PermissionDenied.into())),
            Verdict::Unknown(_)
        ));
    }

    #[test]
    fn without_its_outbox_folder_a_letter_stays_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let u = Unsettled {
            key: "101".into(),
            attempt: 1,
            name: "Københavns Kommune".into(),
            akt_id: Some("1286555".into()),
        };
        let gone = dir.path().join("outbox");
        assert!(matches!(
            judge(&u, &gone, dir.path()),
            Verdict::Unknown(r) if r.contains("is not there")
        ));
        std::fs::create_dir(&gone).unwrap();
        assert!(matches!(judge(&u, &gone, dir.path()), Verdict::Pending(_)));
        let stem = "1286555_101_Koebenhavns-Kommune";
        std::fs::write(outbox::path_for(&gone, stem), "x").unwrap();
        std::fs::write(archive::path_for(dir.path(), stem), "x").unwrap();
        assert!(matches!(
            judge(&u, &gone, dir.path()),
            Verdict::Delivered(_)
        ));
    }
}
