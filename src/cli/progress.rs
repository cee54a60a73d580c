//! What a clerk sees while letters go out: a progress bar on a terminal, plain lines otherwise.
//!
//! On a terminal (standard error), `Bar` shows how many letters are done, the rate, how many were
//! not delivered so far and about how long is left; a letter that was not delivered is also
//! printed above the bar. Without a terminal the caller uses plain lines instead, one per letter,
//! formatted by `letter_line` so that scripts and tests can rely on them. Every CSV-derived text
//! is made safe first. This module only shows progress: it never touches the ledger or a letter.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::campaign::Letter;
use crate::cli::output::Output;
use crate::cli::terminal::{self, Stream, Tone};
use crate::delivery::Observer;
use crate::record::ledger::State;
use crate::sanitize::printable;

/// Whether a progress bar should be shown: on a terminal, and not with `--quiet`.
pub(super) fn wanted(quiet: bool) -> bool {
    !quiet && Stream::Stderr.is_terminal()
}

/// One letter's outcome as a plain line: `[ 2/98] 101 Københavns Kommune <a@b.dk>: delivered (…)`.
pub(super) fn letter_line(
    done: usize,
    total: usize,
    letter: &Letter,
    state: State,
    reply: &str,
) -> String {
    let width = total.to_string().len();
    format!(
        "[{done:>width$}/{total}] {} {} <{}>: {state} ({})",
        printable(&letter.key),
        printable(&letter.to.name),
        printable(&letter.to.email),
        printable(reply)
    )
}

/// A retry, as a plain line.
pub(super) fn retry_line(letter: &Letter, attempt: u32, wait: Duration, reply: &str) -> String {
    format!(
        "        {} <{}>: failed for now ({}); trying again in {:.0?} (retry {attempt})",
        printable(&letter.key),
        printable(&letter.to.email),
        printable(reply),
        wait
    )
}

fn bar(total: usize, unit: &str) -> ProgressBar {
    let colour = terminal::colour(Stream::Stderr);
    let bar = if colour {
        "{bar:32.green/white}"
    } else {
        "{bar:32}"
    };
    let template =
        format!("{bar} {{pos}}/{{len}} {unit}  {{per_sec:1}}  {{msg}}  about {{eta}} left");
    let style = ProgressStyle::with_template(&template)
        .expect("a valid progress template")
        .progress_chars("█▉▊▋▌▍▎▏ ");
    let pb = ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
    pb.set_style(style);
    pb
}

/// The progress bar of a send or resend run.
pub(super) struct Bar {
    bar: ProgressBar,
    not_delivered: usize,
    verbose: bool,
}

impl Bar {
    pub(super) fn new(total: usize, verbose: bool) -> Bar {
        let bar = bar(total, "letters");
        bar.set_message("0 not delivered");
        Bar {
            bar,
            not_delivered: 0,
            verbose,
        }
    }
}

impl Observer for Bar {
    fn letter_done(
        &mut self,
        done: usize,
        total: usize,
        letter: &Letter,
        state: State,
        reply: &str,
    ) {
        let line = letter_line(done, total, letter, state, reply);
        if state == State::Delivered {
            if self.verbose {
                self.bar.println(line);
            }
        } else {
            self.not_delivered += 1;
            self.bar
                .println(terminal::paint(Stream::Stderr, Tone::Bad, &line));
        }
        let msg = format!("{} not delivered", self.not_delivered);
        self.bar.set_message(if self.not_delivered > 0 {
            terminal::paint(Stream::Stderr, Tone::Bad, &msg)
        } else {
            msg
        });
        self.bar.set_position(done as u64);
    }

    fn retrying(&mut self, letter: &Letter, attempt: u32, wait: Duration, reply: &str) {
        self.bar.println(terminal::paint(
            Stream::Stderr,
            Tone::Warning,
            &retry_line(letter, attempt, wait, reply),
        ));
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

/// Counts work that is not a send (writing the preview): a bar on a terminal, silent otherwise.
pub(super) struct Ticker {
    bar: Option<ProgressBar>,
}

impl Ticker {
    /// A ticker towards `total`, which is asked only when a bar is shown.
    pub(super) fn new(total: impl FnOnce() -> usize, unit: &str, quiet: bool) -> Ticker {
        Ticker {
            bar: wanted(quiet).then(|| {
                let bar = bar(total(), unit);
                bar.set_message("");
                bar
            }),
        }
    }

    pub(super) fn tick(&self) {
        if let Some(bar) = &self.bar {
            bar.inc(1);
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Progress without a terminal: one plain, stable line per letter (a failure even with --quiet).
pub(super) struct Lines<'a> {
    pub out: &'a Output,
}

impl Observer for Lines<'_> {
    fn letter_done(
        &mut self,
        done: usize,
        total: usize,
        letter: &Letter,
        state: State,
        reply: &str,
    ) {
        let line = letter_line(done, total, letter, state, reply);
        if state == State::Delivered {
            self.out.say(line);
        } else {
            self.out.always(line);
        }
    }

    fn retrying(&mut self, letter: &Letter, attempt: u32, wait: Duration, reply: &str) {
        self.out.say(retry_line(letter, attempt, wait, reply));
    }
}
