//! `forge-rollback`: put code, schema and config back on the last known-good commit, undoably.
//!
//! Thin front-end: parses arguments, asks for confirmation on the terminal, prints. Every
//! decision is made by `rollback-core`, which the Python module calls too.

mod cli;
mod commands;
mod output;
mod terminal;

use std::process::ExitCode;

use clap::Parser;

/// Documented exit codes (docs/cli.md).
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// A step failed, a run failed, or a check found problems.
    pub const FAILED: u8 = 1;
    /// Bad usage, configuration, registry or revision; nothing was changed.
    pub const USAGE: u8 = 2;
    /// Another rollback holds the lock; nothing was changed.
    pub const LOCKED: u8 = 3;
    /// A safety check refused; nothing was changed.
    pub const REFUSED: u8 = 4;
    /// The operator declined (nothing was changed) or aborted a manual run.
    pub const CANCELLED: u8 = 5;
    /// The rollback's steps ran, but the services failed verification (also `verify` with a
    /// failing check).
    pub const VERIFY_FAILED: u8 = 6;
}

fn main() -> ExitCode {
    let args = match cli::Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let out = output::Output::new(args.json);
    match commands::dispatch(&args, &out) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if output::is_broken_pipe(&err) {
                return ExitCode::from(exit::OK);
            }
            out.error(&err);
            ExitCode::from(output::exit_code(&err))
        }
    }
}
