//! The `rundbrev` binary: parse the command line, run, print the error chain once, exit.

use clap::Parser as _;

fn main() {
    let cli = rundbrev::cli::Cli::parse();
    rundbrev::diagnostics::init(cli.quiet, cli.verbose);
    let code = match rundbrev::app::run(cli) {
        Ok(exit) => exit as i32,
        Err(e) => {
            // Errors may quote the recipients file: made safe for the terminal first.
            let text = match e.downcast_ref::<rundbrev::problem::Problems>() {
                Some(problems) => problems.to_string(),
                None => format!("{e:#}\n"),
            };
            let name = rundbrev::terminal::paint(
                rundbrev::terminal::Stream::Stderr,
                rundbrev::terminal::Tone::Bad,
                "rundbrev:",
            );
            eprint!("{name} {}", rundbrev::terminal::safe(&text));
            rundbrev::app::Exit::Error as i32
        }
    };
    std::process::exit(code);
}
