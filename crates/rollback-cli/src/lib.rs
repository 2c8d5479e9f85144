//! `forge-rollback`: put code, schema and config back on the last known-good commit, undoably.
//!
//! Thin front-end: parses arguments, asks for confirmation on the terminal, prints. Every
//! decision is made by `rollback-core`, which the Python module calls too.
//!
//! A library with one entry point, [`main`], so that the binary (`src/main.rs`) and the Python
//! wheel's `forge-rollback` console script (`forge_rollback._forge_rollback.cli_main`) run the
//! same code; the rest is private.

mod cli;
mod commands;
mod completions;
mod demo;
mod exit;
mod output;
mod progress;
mod render;
mod terminal;

use std::ffi::OsString;

use clap::Parser;

use crate::exit::ExitStatus;

/// Runs `forge-rollback` with `argv` (the program name first, as `std::env::args_os()`) and
/// returns its exit code (docs/cli.md, "Exit codes"). Data goes to stdout, everything else to
/// stderr, as the binary does.
pub fn main(argv: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> u8 {
    // Embedded (the Python module's `cli_main`), the process goes on after the command: its
    // own SIGINT and SIGTERM actions come back when the command returns, and a later command
    // installs its handlers afresh.
    let _signals = rollback_core::signals::Scope::enter();
    let code = run(argv);
    output::forget_stop();
    code
}

fn run(argv: impl IntoIterator<Item = impl Into<OsString> + Clone>) -> u8 {
    let args = match cli::Args::try_parse_from(argv) {
        Ok(a) => a,
        Err(e) => {
            let status = if e.use_stderr() { ExitStatus::Usage } else { ExitStatus::Success };
            let _ = e.print();
            return status.code();
        }
    };
    let out = output::Output::new(args.json);
    match commands::dispatch(&args, &out) {
        Ok(status) => status.code(),
        Err(err) => {
            if output::is_broken_pipe(&err) {
                return ExitStatus::Success.code();
            }
            out.error(&err);
            ExitStatus::of_error(&err).code()
        }
    }
}
