//! The terminal: whether colour and a progress bar may be used, and colour itself.
//!
//! Colour appears only when the stream is a terminal and `NO_COLOR` is not set (<https://no-color.org>).
//! Making text safe to print is `crate::sanitize`'s job, done in `Output` before anything here
//! paints it. This module decides nothing about letters and never writes files.

use std::io::IsTerminal as _;

use anstyle::{AnsiColor, Style};

/// Which output stream a text goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub(super) fn is_terminal(self) -> bool {
        match self {
            Stream::Stdout => std::io::stdout().is_terminal(),
            Stream::Stderr => std::io::stderr().is_terminal(),
        }
    }
}

/// Whether `NO_COLOR` asks for no colour (any non-empty value does).
pub(super) fn no_color_requested() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Whether text written to `stream` may carry colour.
pub(super) fn colour(stream: Stream) -> bool {
    stream.is_terminal()
        && !no_color_requested()
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// How a line is meant to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tone {
    Good,
    Warning,
    Bad,
}

/// `text` in the tone's colour when `stream` may have colour; unchanged otherwise.
pub(super) fn paint(stream: Stream, tone: Tone, text: &str) -> String {
    if !colour(stream) {
        return text.to_string();
    }
    let style = match tone {
        Tone::Good => Style::new().fg_color(Some(AnsiColor::Green.into())),
        Tone::Warning => Style::new().fg_color(Some(AnsiColor::Yellow.into())),
        Tone::Bad => Style::new().fg_color(Some(AnsiColor::Red.into())).bold(),
    };
    format!("{style}{text}{style:#}")
}
