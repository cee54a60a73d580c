//! Diagnostics for whoever looks into a problem: `tracing` events on standard error.
//!
//! `RUST_LOG` decides what is shown (e.g. `RUST_LOG=rundbrev=debug`); without it, `--verbose`
//! shows rundbrev's debug events, `--quiet` only errors, and otherwise warnings. Colour only on a
//! terminal and never with `NO_COLOR`. The clerk-facing text is not printed here (see `app`); and
//! nothing secret is ever passed to an event.

use tracing_subscriber::EnvFilter;

use crate::cli::terminal::{self, Stream};

/// The filter when `RUST_LOG` is not set.
pub(super) fn default_filter(quiet: bool, verbose: bool) -> &'static str {
    if verbose {
        "warn,rundbrev=debug"
    } else if quiet {
        "error"
    } else {
        "warn"
    }
}

/// Installs the subscriber for this process. Call once, first thing.
pub(super) fn init(quiet: bool, verbose: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(default_filter(quiet, verbose)))
        // The IMAP library traces every command it writes, the login with its password among
        // them: never shown, whatever RUST_LOG says.
        .add_directive("async_imap=off".parse().expect("a valid directive"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(terminal::colour(Stream::Stderr))
        .without_time()
        .with_target(false)
        .try_init();
}
