//! The `punchd` binary: parse the command line, start logging, run the subcommand.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = punchd::cli::Cli::parse();
    punchd::cli::init_tracing(&cli);
    match punchd::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("punchd: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
