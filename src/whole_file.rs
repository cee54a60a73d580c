//! Files written whole: a file is either all there, with exactly the given bytes, or not there.
//!
//! The bytes go into a `.partial` file beside the target, which is renamed when complete; on any
//! error the partial file is removed. With `sync` the data is on disk before the rename, for files
//! that record a fact (a delivery into the outbox, the case report). This module decides nothing
//! about what is written or where.

use std::io::Write as _;
use std::path::{Path, PathBuf};

/// Writes a file so that it is either all there or not there at all: into a `.partial` file that
/// is renamed when complete. With `sync`, the data is on disk before the rename.
pub fn write(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
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

/// `write` with the data on disk before this returns (it must survive a power cut).
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write(path, bytes, true)
}
