//! The `punchd` binary: parse the command line, start logging, run the subcommand.

use clap::Parser;

/// jemalloc instead of glibc's malloc on Linux (issue 6, memory and CPU per request; BENCHMARKS.md "Session of
/// 2026-12-01 (2)"). Only the binary: the library, its tests and benches keep the system allocator.
#[cfg(target_os = "linux")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

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
