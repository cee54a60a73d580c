//! The `rundbrev` binary: parse the command line, run, print the error chain once, exit.

use clap::Parser as _;

fn main() {
    let cli = rundbrev::cli::args::Cli::parse();
    rundbrev::cli::diagnostics::init(cli.quiet, cli.verbose);
    let code = match rundbrev::cli::run(cli) {
        Ok(exit) => exit as i32,
        Err(e) => {
            // Errors may quote the recipients file: made safe for the terminal first.
            let text = match e.downcast_ref::<rundbrev::problem::Problems>() {
                Some(problems) => problems.to_string(),
                None => format!("{e:#}\n"),
            };
            let name = rundbrev::cli::terminal::paint(
                rundbrev::cli::terminal::Stream::Stderr,
                rundbrev::cli::terminal::Tone::Bad,
                "rundbrev:",
            );
            eprint!("{name} {}", rundbrev::cli::terminal::safe(&text));
            rundbrev::cli::Exit::Error as i32
        }
    };
    std::process::exit(code);
}
