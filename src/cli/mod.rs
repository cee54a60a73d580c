//! The command line: what the user typed becomes one command, run here, with one file per command.
//!
//! This is the edge where files are written, the ledger is opened and locked, the user is asked,
//! and text is printed (always through `Output`, which makes it safe). Decisions (who gets a
//! letter, what it says, how fast it goes, what the exit code is) are made in the modules below
//! and in `exit`; the commands only put them in order.

use anyhow::Result;
use clap::Parser as _;

use crate::cli::args::{Cli, Command, OutputFormat, ReceiptsCommand};
use crate::cli::exit::Exit;
use crate::cli::output::Output;
use crate::cli::terminal::{Stream, Tone};

mod args;
mod browser;
mod check;
mod check_smtp;
mod diagnostics;
mod exit;
mod init;
mod manual;
mod output;
mod preview;
mod progress;
mod prompt;
mod receipts;
mod receipts_fetch;
mod report;
mod send;
mod status;
mod storage;
mod summary;
mod terminal;
mod test_send;
mod workspace;

/// Parses the command line, runs the command, prints an error chain once, and returns the
/// process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    diagnostics::init(cli.quiet, cli.verbose);
    match run(cli) {
        Ok(exit) => exit as i32,
        Err(e) => {
            // Errors may quote the recipients file: made safe for the terminal first.
            let text = match e.downcast_ref::<crate::problem::Problems>() {
                Some(problems) => problems.to_string(),
                None => format!("{e:#}\n"),
            };
            let name = terminal::paint(Stream::Stderr, Tone::Bad, "rundbrev:");
            eprint!("{name} {}", crate::sanitize::safe(&text));
            Exit::Error as i32
        }
    }
}

/// Runs one command.
fn run(cli: Cli) -> Result<Exit> {
    let json_run = match &cli.command {
        Command::Send(a) => a.run.format == OutputFormat::Json,
        Command::Resend(a) => a.run.format == OutputFormat::Json,
        Command::Receipts(ReceiptsCommand::Inspect(a)) => a.format == OutputFormat::Json,
        _ => false,
    };
    let out = Output {
        quiet: cli.quiet,
        verbose: cli.verbose,
        human_on_stderr: json_run,
    };
    // Commands that need no campaign.
    match &cli.command {
        Command::Init(args) => return init::run(&out, &args.dir),
        Command::Completions(args) => return manual::completions(args.shell),
        Command::Man => return manual::man(),
        Command::Receipts(ReceiptsCommand::Inspect(args)) => {
            return receipts::inspect(&cli, &out, args)
        }
        _ => {}
    }
    let config = workspace::load_config(&cli)?;
    tracing::debug!(config = %cli.config.display(), campaign = %config.campaign.id, "campaign loaded");
    match &cli.command {
        Command::Check => check::run(&config, &out),
        Command::Preview(args) => preview::run(&config, &out, args),
        Command::Send(args) => {
            send::run(&config, &out, crate::campaign::plan::Mode::Send, &args.run)
        }
        Command::Resend(args) => send::resend(&config, &out, args),
        Command::Status(args) => status::run(&config, args),
        Command::TestSend(args) => {
            test_send::run(&config, &out, &args.to, args.recipient.as_deref())
        }
        Command::CheckSmtp => check_smtp::run(&config, &out),
        Command::Report(args) => report::run(&config, args, &out),
        Command::Receipts(ReceiptsCommand::Import(args)) => receipts::import(&config, &out, args),
        Command::Receipts(ReceiptsCommand::Inspect(_)) => {
            unreachable!("handled before the campaign is loaded")
        }
        Command::Receipts(ReceiptsCommand::Fetch) => receipts_fetch::run(&config, &out),
        Command::Init(_) | Command::Completions(_) | Command::Man => {
            unreachable!("handled before the campaign is loaded")
        }
    }
}
