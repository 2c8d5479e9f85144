//! The `forge-rollback` binary: [`rollback_cli::main`] over the process's arguments.

use std::process::ExitCode;

fn main() -> ExitCode {
    // SAFETY: first thing, on the only thread: nothing uses libgit2 yet.
    #[allow(unsafe_code)]
    unsafe {
        rollback_core::vcs::git2::cache_trees();
    }
    rollback_cli::main(std::env::args_os()).into()
}
