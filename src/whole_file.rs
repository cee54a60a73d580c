//! Files written whole: a file is either all there, with exactly the given bytes, or not there.
//!
//! Two ways. `create_new` makes a file that must not exist yet (an archive copy, a preview page):
//! on Linux the bytes go into an unnamed file (`O_TMPFILE`) that gets its name (`linkat`) only
//! once complete, so no crash, `kill -9` included, can leave part of it under any name; the name
//! is never taken from a file already there. Where the file system has no unnamed files it falls
//! back to the second way. `write` replaces a file: the bytes go into a `.partial` file beside the
//! target, which is renamed when complete; on any error the partial file is removed. With `sync`
//! the data is on disk before the rename, for files that record a fact (a delivery into the
//! outbox, the case report); files that belong together are replaced all or none
//! (`write_all_or_none`). This module decides nothing about what is written or where.

use std::io::{ErrorKind, Write as _};
use std::path::{Path, PathBuf};

/// Writes a file so that it is either all there or not there at all: into a `.partial` file that
/// is renamed when complete. With `sync`, the data is on disk before the rename.
/// A missing folder is made.
pub(crate) fn write(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    write_partial(path, bytes, sync, true)
}

/// Where a file is written before it takes its name: `<name>.partial` beside it.
fn partial(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    PathBuf::from(tmp)
}

/// `write`, making a missing folder only when `make_folder`.
fn write_partial(path: &Path, bytes: &[u8], sync: bool, make_folder: bool) -> std::io::Result<()> {
    let tmp = partial(path);
    let result = (|| {
        // The folder is made only when it is missing: no look before each file.
        let mut f = match std::fs::File::create(&tmp) {
            Err(e) if make_folder && e.kind() == ErrorKind::NotFound => {
                match path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    Some(dir) => std::fs::create_dir_all(dir)?,
                    None => return Err(e),
                }
                std::fs::File::create(&tmp)?
            }
            other => other?,
        };
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

/// Makes a new file holding exactly `bytes`, in a folder that exists: the file has its name only
/// once it is complete, and a crash at any moment leaves no part of it under that name. Fails with
/// `ErrorKind::AlreadyExists`, changing nothing, when the name is taken. Not forced to disk.
pub(crate) fn create_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    if let Some(done) = unnamed::create(path, bytes) {
        return done;
    }
    create_new_via_partial(path, bytes)
}

/// `create_new` where there are no unnamed files: the name is checked, then the bytes go in
/// through a `.partial` file. Only one run of a campaign writes at a time (its lock), so the check
/// holds.
fn create_new_via_partial(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if path.try_exists()? {
        return Err(ErrorKind::AlreadyExists.into());
    }
    write_partial(path, bytes, false, false)
}

#[cfg(target_os = "linux")]
mod unnamed {
    //! Linux: an unnamed file in the folder (`O_TMPFILE`), named by `linkat` once complete.

    use std::ffi::CString;
    use std::io::{ErrorKind, Write as _};
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    use std::os::unix::io::AsRawFd as _;
    use std::path::Path;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Whether `linkat(fd, "", AT_EMPTY_PATH)` is refused (it needs CAP_DAC_READ_SEARCH); then
    /// the file is named through `/proc/self/fd`.
    static VIA_PROC: AtomicBool = AtomicBool::new(false);

    /// `None` when the folder's file system has no unnamed files (nothing was made).
    pub(super) fn create(path: &Path, bytes: &[u8]) -> Option<std::io::Result<()>> {
        create_named_by(path, bytes, VIA_PROC.load(Ordering::Relaxed))
    }

    /// `create`, naming the file through `/proc/self/fd` from the start when `via_proc`.
    pub(super) fn create_named_by(
        path: &Path,
        bytes: &[u8],
        via_proc: bool,
    ) -> Option<std::io::Result<()>> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut file = match std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .mode(0o666)
            .open(dir)
        {
            Ok(f) => f,
            // Not supported by this file system (or kernel): the caller falls back.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP | libc::EISDIR | libc::EINVAL | libc::ENOSYS)
                ) =>
            {
                return None
            }
            Err(e) => return Some(Err(e)),
        };
        Some((|| {
            file.write_all(bytes)?;
            let name = CString::new(path.as_os_str().as_bytes())
                .map_err(|_| std::io::Error::from(ErrorKind::InvalidInput))?;
            if !via_proc {
                // SAFETY: a valid open descriptor, a NUL-terminated empty path and name.
                let r = unsafe {
                    libc::linkat(
                        file.as_raw_fd(),
                        c"".as_ptr(),
                        libc::AT_FDCWD,
                        name.as_ptr(),
                        libc::AT_EMPTY_PATH,
                    )
                };
                if r == 0 {
                    return Ok(());
                }
                let e = std::io::Error::last_os_error();
                if !matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EPERM)) {
                    return Err(e);
                }
                VIA_PROC.store(true, Ordering::Relaxed);
            }
            let fd = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
                .expect("no NUL in a number");
            // SAFETY: NUL-terminated paths.
            let r = unsafe {
                libc::linkat(
                    libc::AT_FDCWD,
                    fd.as_ptr(),
                    libc::AT_FDCWD,
                    name.as_ptr(),
                    libc::AT_SYMLINK_FOLLOW,
                )
            };
            if r == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        })())
        // On an error the unnamed file goes when `file` is closed: nothing is left behind.
    }
}

/// Writes several files so that either all are replaced or none is: each goes into its
/// `.partial` file, synced, and only when every one is complete are they renamed into place. On
/// an error the partial files are removed and the earlier files stay as they were.
pub(crate) fn write_all_or_none(files: &[(&Path, &[u8])]) -> std::io::Result<()> {
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

    /// The names in the folder, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut left: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        left
    }

    /// Every way `create_new` can go: the one chosen here, and each of its fallbacks.
    fn each_way(check: impl Fn(&dyn Fn(&Path, &[u8]) -> std::io::Result<()>)) {
        check(&create_new);
        check(&create_new_via_partial);
        #[cfg(target_os = "linux")]
        for via_proc in [false, true] {
            check(&move |path: &Path, bytes: &[u8]| {
                unnamed::create_named_by(path, bytes, via_proc).expect("tmpfs and ext4 have them")
            });
        }
    }

    #[test]
    fn a_new_file_holds_exactly_the_bytes_and_never_takes_the_name_of_one_there() {
        each_way(|create| {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("1_101_K.eml");
            let bytes: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
            create(&path, &bytes).unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), bytes);
            let e = create(&path, b"other").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::AlreadyExists);
            assert_eq!(
                std::fs::read(&path).unwrap(),
                bytes,
                "the file there is kept"
            );
            assert_eq!(names(dir.path()), ["1_101_K.eml"], "nothing else is left");
            // A folder that is not there: an error, and no file anywhere.
            let missing = dir.path().join("gone").join("2_147_F.eml");
            assert!(create(&missing, b"x").is_err());
            assert_eq!(names(dir.path()), ["1_101_K.eml"]);
        });
    }

    #[test]
    fn write_makes_a_missing_folder_and_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a").join("b").join("x.eml");
        write(&path, b"one", false).unwrap();
        write_durably(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(names(&dir.path().join("a").join("b")), ["x.eml"]);
    }

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
        assert_eq!(
            names(dir.path()),
            ["a.csv", "b.html"],
            "no partial file is left"
        );
        write_all_or_none(&[(&a, b"new a"), (&b, b"new b")]).unwrap();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "new a");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "new b");
    }
}
