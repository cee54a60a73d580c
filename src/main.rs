//! The `rundbrev` binary: parse the command line, run, print the error chain once, exit.

use clap::Parser as _;

fn main() {
    let cli = rundbrev::cli::Cli::parse();
    let code = match rundbrev::app::run(cli) {
        Ok(exit) => exit as i32,
        Err(e) => {
            if let Some(problems) = e.downcast_ref::<rundbrev::problem::Problems>() {
                eprint!("rundbrev: {problems}");
            } else {
                eprintln!("rundbrev: {e:#}");
            }
            rundbrev::app::Exit::Error as i32
        }
    };
    std::process::exit(code);
}
