//! Output for the person at the terminal: every line passes the one sanitiser before it is
//! printed, so text from the recipients file or a server can never carry a control or bidi
//! character to the terminal.
//!
//! With `--format json` standard output carries only the JSON and the words go to standard
//! error. A closed pipe is ignored. This module decides nothing about letters.

use std::io::Write as _;

use crate::cli::terminal::{self, Stream, Tone};

/// Prints for the person at the terminal. Every text passes `terminal::safe`, so text from the
/// recipients file can never carry a control or bidi character to the terminal.
pub(super) struct Output {
    pub quiet: bool,
    pub verbose: bool,
    /// With `--format json` standard output carries only the JSON; the words go to standard error.
    pub human_on_stderr: bool,
}

impl Output {
    pub(super) fn say(&self, text: impl AsRef<str>) {
        if !self.quiet {
            self.always(text);
        }
    }

    /// Prints a line even with --quiet. A closed pipe is ignored: the run goes on, the ledger
    /// is the record.
    pub(super) fn always(&self, text: impl AsRef<str>) {
        self.write(&crate::sanitize::safe(text.as_ref()));
    }

    /// `always`, in a colour for its tone when the stream is a terminal.
    pub(super) fn always_in(&self, tone: Tone, text: impl AsRef<str>) {
        let stream = if self.human_on_stderr {
            Stream::Stderr
        } else {
            Stream::Stdout
        };
        self.write(&terminal::paint(
            stream,
            tone,
            &crate::sanitize::safe(text.as_ref()),
        ));
    }

    fn write(&self, text: &str) {
        let _ = if self.human_on_stderr {
            writeln!(std::io::stderr(), "{text}")
        } else {
            writeln!(std::io::stdout(), "{text}")
        };
    }

    pub(super) fn note(&self, text: impl AsRef<str>) {
        if !self.quiet {
            let _ = writeln!(
                std::io::stderr(),
                "{} {}",
                terminal::paint(Stream::Stderr, Tone::Warning, "note:"),
                crate::sanitize::safe(text.as_ref())
            );
        }
    }
}
