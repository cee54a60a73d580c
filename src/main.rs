//! The `rundbrev` binary: run the command line and exit with its code. All else is in the library.

fn main() {
    std::process::exit(rundbrev::cli::main());
}
