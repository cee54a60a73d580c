//! Shell completions and the man page, generated from the clap definition in `cli`.
//!
//! Both are printed on standard output and always match the commands and flags the binary
//! actually has. A reader that stops early (`| head`) is not an error. Nothing here reads a
//! campaign.

use std::io::Write as _;

use anyhow::Result;
use clap::CommandFactory as _;

use crate::cli::args::Cli;
use crate::cli::Exit;

pub(super) fn completions(shell: clap_complete::Shell) -> Result<Exit> {
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "rundbrev", &mut text);
    print(&text)
}

pub(super) fn man() -> Result<Exit> {
    let mut text = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut text)?;
    print(&text)
}

fn print(text: &[u8]) -> Result<Exit> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(Exit::Done),
    }
}
