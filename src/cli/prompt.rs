//! Asking the person at the terminal: the confirmation before letters leave, and Ctrl-C.
//!
//! Without a terminal nothing is asked and `--yes` is required, so a script can never send by
//! accident. This module decides nothing about letters.

use std::io::{IsTerminal as _, Write as _};

use anyhow::{bail, Result};

use crate::delivery;

/// On a terminal, asks before anything leaves; without one, `--yes` is required.
pub(super) fn confirm(yes: bool, n: usize) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("not sending: confirmation is needed, but there is no terminal to ask on; pass --yes to send without asking");
    }
    print!(
        "Send {n} letter{}? Type yes to send: ",
        if n == 1 { "" } else { "s" }
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer)?;
    if matches!(
        answer.trim().to_lowercase().as_str(),
        "yes" | "ja" | "y" | "j"
    ) {
        Ok(())
    } else {
        bail!("not sending: you did not confirm; nothing was sent")
    }
}

/// Ctrl-C lets the letters in flight finish and starts no new one; a second Ctrl-C leaves at once.
pub(super) fn install_ctrl_c() {
    let _ = ctrlc::set_handler(|| {
        if delivery::STOP.swap(true, std::sync::atomic::Ordering::SeqCst) {
            // A second Ctrl-C: leave at once; a letter in flight stays `sending` and shows as unknown.
            std::process::exit(130);
        }
        eprintln!("\nStopping after the letter in flight (press Ctrl-C again to stop at once)…");
    });
}
