//! Where messages are read from: single message files (.eml), folders of them, mbox files and
//! Maildir folders, each message with its origin.
//!
//! It reads files and nothing else: it never changes, moves or deletes a message, never parses
//! what a message means (see `parse`), and never touches the ledger. A message over the size
//! limit is not read into memory when it is a file of its own; it is handed on as a note.

use std::fs::File;
use std::io::{BufReader, Read as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _, Result};
use mail_parser::mailbox::{maildir, mbox};

use crate::receipts::{too_large, Origin};

/// One message found: its bytes, or why it could not be read.
pub(crate) struct Found {
    pub origin: Origin,
    pub raw: std::result::Result<Vec<u8>, String>,
}

/// Calls `each` for every message under `paths`, in a stable order (paths as given, folders by
/// file name). A path that does not exist is an error before anything is read.
pub(crate) fn read_all(
    paths: &[PathBuf],
    max_size: u64,
    each: &mut dyn FnMut(Found) -> Result<()>,
) -> Result<()> {
    all_exist(paths)?;
    for p in paths {
        read_path(p, max_size, each)?;
    }
    Ok(())
}

/// An error naming the first path that does not exist.
pub(crate) fn all_exist(paths: &[PathBuf]) -> Result<()> {
    for p in paths {
        if !p.exists() {
            bail!(
                "cannot read {}: there is no such file or folder",
                p.display()
            );
        }
    }
    Ok(())
}

fn read_path(path: &Path, max: u64, each: &mut dyn FnMut(Found) -> Result<()>) -> Result<()> {
    if path.is_dir() {
        if is_maildir(path) {
            return read_maildir(path, max, each);
        }
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot read the folder {}", path.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                !p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
            })
            .collect();
        entries.sort();
        for entry in entries {
            read_path(&entry, max, each)?;
        }
        return Ok(());
    }
    if is_mbox(path) {
        return read_mbox(path, max, each);
    }
    each(Found {
        origin: Origin::File {
            path: path.to_path_buf(),
        },
        raw: read_file(path, max),
    })
}

/// A Maildir folder: it has `cur` and `new` folders.
fn is_maildir(path: &Path) -> bool {
    path.join("cur").is_dir() && path.join("new").is_dir()
}

/// An mbox file starts with a "From " line.
fn is_mbox(path: &Path) -> bool {
    let mut start = [0u8; 5];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut start))
        .is_ok()
        && &start == b"From "
}

fn read_file(path: &Path, max: u64) -> std::result::Result<Vec<u8>, String> {
    let size = std::fs::metadata(path)
        .map_err(|e| format!("cannot be read: {e}"))?
        .len();
    if let Some(why) = too_large(size as usize, max) {
        return Err(why);
    }
    std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))
}

fn read_mbox(path: &Path, max: u64, each: &mut dyn FnMut(Found) -> Result<()>) -> Result<()> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    for (i, message) in mbox::MessageIterator::new(BufReader::new(file)).enumerate() {
        let origin = Origin::Mbox {
            path: path.to_path_buf(),
            number: i + 1,
        };
        let raw = match message {
            Ok(m) => {
                let bytes = m.unwrap_contents();
                match too_large(bytes.len(), max) {
                    Some(why) => Err(why),
                    None => Ok(bytes),
                }
            }
            Err(e) => Err(format!("cannot be read: {e}")),
        };
        each(Found { origin, raw })?;
    }
    Ok(())
}

fn read_maildir(path: &Path, max: u64, each: &mut dyn FnMut(Found) -> Result<()>) -> Result<()> {
    let messages = maildir::MessageIterator::new(path)
        .with_context(|| format!("cannot read the Maildir folder {}", path.display()))?;
    let mut found: Vec<(PathBuf, std::result::Result<Vec<u8>, String>)> = Vec::new();
    for m in messages {
        match m {
            Ok(m) => {
                let file = m.path().to_path_buf();
                let bytes = m.unwrap_contents();
                let raw = match too_large(bytes.len(), max) {
                    Some(why) => Err(why),
                    None => Ok(bytes),
                };
                found.push((file, raw));
            }
            Err(e) => found.push((path.to_path_buf(), Err(format!("cannot be read: {e}")))),
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    for (file, raw) in found {
        each(Found {
            origin: Origin::File { path: file },
            raw,
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(paths: &[PathBuf], max: u64) -> Vec<(String, std::result::Result<Vec<u8>, String>)> {
        let mut out = Vec::new();
        read_all(paths, max, &mut |f| {
            out.push((f.origin.to_string(), f.raw));
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn an_mbox_a_maildir_and_a_folder_give_the_same_messages() {
        let dir = tempfile::tempdir().unwrap();
        let a = b"From: a@b.dk\nSubject: one\n\nFrom the start\n".to_vec();
        let b = b"From: c@d.dk\nSubject: two\n\nx\n".to_vec();
        let folder = dir.path().join("eml");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("1.eml"), &a).unwrap();
        std::fs::write(folder.join("2.eml"), &b).unwrap();
        let mut mbox = b"From MAILER-DAEMON Mon Jun 29 10:00:00 2020\n".to_vec();
        mbox.extend(quote_from(&a));
        mbox.extend(b"\nFrom MAILER-DAEMON Mon Jun 29 10:00:01 2020\n");
        mbox.extend(&b);
        std::fs::write(dir.path().join("box.mbox"), &mbox).unwrap();
        let md = dir.path().join("Maildir");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(md.join(sub)).unwrap();
        }
        std::fs::write(md.join("cur/1.host:2,S"), &a).unwrap();
        std::fs::write(md.join("new/2.host"), &b).unwrap();

        let digests = |found: Vec<(String, std::result::Result<Vec<u8>, String>)>| {
            let mut d: Vec<String> = found
                .into_iter()
                .map(|(_, raw)| crate::receipts::digest(&raw.unwrap()))
                .collect();
            d.sort();
            d
        };
        let from_folder = digests(collect(&[folder], 1 << 20));
        assert_eq!(from_folder.len(), 2);
        assert_eq!(
            digests(collect(&[dir.path().join("box.mbox")], 1 << 20)),
            from_folder
        );
        assert_eq!(digests(collect(&[md], 1 << 20)), from_folder);
    }

    #[test]
    fn a_file_over_the_limit_is_a_note_and_a_missing_path_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big.eml"), vec![b'x'; 2000]).unwrap();
        let found = collect(&[dir.path().to_path_buf()], 1000);
        assert!(found[0]
            .1
            .as_ref()
            .is_err_and(|w| w.contains("max_message_size")));
        let err = read_all(&[dir.path().join("nope")], 1000, &mut |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("no such file or folder"), "{err}");
    }

    /// mbox quoting: a body line starting with "From " is written ">From ".
    fn quote_from(raw: &[u8]) -> Vec<u8> {
        let text = std::str::from_utf8(raw).unwrap();
        text.lines()
            .map(|l| {
                if l.starts_with("From ") {
                    format!(">{l}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect::<String>()
            .into_bytes()
    }
}
