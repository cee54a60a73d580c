//! The terminal: whether colour and a progress bar may be used, colour itself, and text made safe.
//!
//! Colour appears only when the stream is a terminal and `NO_COLOR` is not set (<https://no-color.org>).
//! Text that came from the recipients file passes through `safe` before it is printed, so a
//! control or bidi character in a CSV field can never move the cursor or reorder what a clerk
//! reads. This module decides nothing about letters and never writes files.

use std::io::IsTerminal as _;

use anstyle::{AnsiColor, Style};

use crate::campaign::recipients::printable;

/// Which output stream a text goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    pub fn is_terminal(self) -> bool {
        match self {
            Stream::Stdout => std::io::stdout().is_terminal(),
            Stream::Stderr => std::io::stderr().is_terminal(),
        }
    }
}

/// Whether `NO_COLOR` asks for no colour (any non-empty value does).
pub fn no_color_requested() -> bool {
    std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
}

/// Whether text written to `stream` may carry colour.
pub fn colour(stream: Stream) -> bool {
    stream.is_terminal()
        && !no_color_requested()
        && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
}

/// How a line is meant to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Good,
    Warning,
    Bad,
}

/// `text` in the tone's colour when `stream` may have colour; unchanged otherwise.
pub fn paint(stream: Stream, tone: Tone, text: &str) -> String {
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

/// Makes a text of one or more lines safe for a terminal: line breaks and tabs stay, every other
/// control character and every bidi control is shown escaped (`\u{202e}`).
pub fn safe(text: &str) -> String {
    text.split('\n')
        .map(|line| {
            line.split('\t')
                .map(|part| printable(part.strip_suffix('\r').unwrap_or(part)))
                .collect::<Vec<_>>()
                .join("\t")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_keeps_lines_and_escapes_what_could_fool_the_reader() {
        assert_eq!(
            safe("Ærø\u{202E} Kommune\n\tline\u{1b}[2J"),
            "Ærø\\u{202e} Kommune\n\tline\\u{1b}[2J"
        );
    }

    #[test]
    fn safe_is_idempotent() {
        let once = safe("a\u{7}b\u{2066}");
        assert_eq!(safe(&once), once);
    }
}
