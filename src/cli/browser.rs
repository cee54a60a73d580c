//! Opens a file in the default browser (`xdg-open`, `open` or `start`), for `preview --open`.
//!
//! Opening is a convenience: when there is no browser or no opener, this says so and the command
//! still succeeds; the caller prints where the file is. It never waits for the browser to close.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The command that opens a file with the desktop's default program.
fn opener(path: &Path) -> Command {
    if cfg!(target_os = "macos") {
        let mut c = Command::new("open");
        c.arg(path);
        c
    } else if cfg!(windows) {
        let mut c = Command::new("cmd");
        c.args(["/C", "start", ""]).arg(path);
        c
    } else {
        let mut c = Command::new("xdg-open");
        c.arg(path);
        c
    }
}

/// Asks the desktop to open `path`. `Err` says in plain words why it could not.
pub(super) fn open(path: &Path) -> Result<(), String> {
    let mut command = opener(path);
    let program = command.get_program().to_string_lossy().into_owned();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!("there is no {program} on this machine"),
            _ => format!("{program} could not be started ({e})"),
        })?;
    // Openers normally hand over to the browser and exit at once; one that is still running
    // after a few seconds is taken to have worked.
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(5) {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(format!("{program} found no browser to open it ({status})"))
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(format!("{program}: {e}")),
        }
    }
    tracing::debug!("{program} is still running; assuming the browser opened");
    Ok(())
}
