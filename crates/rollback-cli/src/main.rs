//! `forge-rollback`: put code, schema and config back on the last known-good commit, undoably.
//!
//! Thin front-end: parses arguments, asks for confirmation on the terminal, prints. Every
//! decision is made by `rollback-core`, which the Python module calls too.

mod cli;
mod commands;
mod demo;
mod exit;
mod output;
mod terminal;

use std::process::ExitCode;

use clap::Parser;

use crate::exit::ExitStatus;

fn main() -> ExitCode {
    let args = match cli::Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let status = if e.use_stderr() { ExitStatus::Usage } else { ExitStatus::Success };
            let _ = e.print();
            return status.into();
        }
    };
    let out = output::Output::new(args.json);
    match commands::dispatch(&args, &out) {
        Ok(status) => status.into(),
        Err(err) => {
            if output::is_broken_pipe(&err) {
                return ExitStatus::Success.into();
            }
            out.error(&err);
            ExitStatus::of_error(&err).into()
        }
    }
}
