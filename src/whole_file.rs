//! Files written whole: a file is either all there, with exactly the given bytes, or not there.
//!
//! The bytes go into a `.partial` file beside the target, which is renamed when complete; on any
//! error the partial file is removed. With `sync` the data is on disk before the rename, for files
//! that record a fact (a delivery into the outbox, the case report); files that belong together
//! are replaced all or none (`write_all_or_none`). This module decides nothing
//! about what is written or where.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Writes a file so that it is either all there or not there at all: into a `.partial` file that
/// is renamed when complete. With `sync`, the data is on disk before the rename.
pub(crate) fn write(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
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

/// Writes several files so that either all are replaced or none is: each goes into its
/// `.partial` file, synced, and only when every one is complete are they renamed into place. On
/// an error the partial files are removed and the earlier files stay as they were.
pub(crate) fn write_all_or_none(files: &[(&Path, &[u8])]) -> std::io::Result<()> {
    let partial = |path: &Path| {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".partial");
        PathBuf::from(tmp)
    };
    let result = (|| {
        for (path, bytes) in files {
            let dir = path.parent().unwrap_or(Path::new("."));
            if !dir.as_os_str().is_empty() && !dir.is_dir() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::File::create(partial(path))?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        for (path, _) in files {
            std::fs::rename(partial(path), path)?;
        }
        Ok(())
    })();
    if result.is_err() {
        for (path, _) in files {
            let _ = std::fs::remove_file(partial(path));
        }
    }
    result
}

/// `write` with the data on disk before this returns (it must survive a power cut).
pub(crate) fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write(path, bytes, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_written_together_replace_the_earlier_ones_all_or_none() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.html"));
        std::fs::write(&a, "old a").unwrap();
        std::fs::write(&b, "old b").unwrap();
        // The second file cannot be written (its folder is a file): neither is replaced.
        let blocked = dir.path().join("a.csv").join("c.html");
        assert!(write_all_or_none(&[(&a, b"new a"), (&blocked, b"new c")]).is_err());
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "old a");
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["a.csv", "b.html"], "no partial file is left");
        write_all_or_none(&[(&a, b"new a"), (&b, b"new b")]).unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "new a");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "new b");
    }
}
