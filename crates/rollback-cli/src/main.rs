//! The `forge-rollback` binary: [`rollback_cli::main`] over the process's arguments.

use std::process::ExitCode;

fn main() -> ExitCode {
    rollback_cli::main(std::env::args_os()).into()
}
