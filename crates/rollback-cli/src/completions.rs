//! `forge-rollback completions SHELL` and `forge-rollback man`: generated from the same clap
//! model that parses the arguments, so they cannot drift from it.

use clap::CommandFactory as _;

use crate::cli::Args;
use crate::output::Output;

/// The completion script of `shell` (`clap_complete`).
pub fn completions(out: &Output, shell: clap_complete::Shell) -> std::io::Result<()> {
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut Args::command(), "forge-rollback", &mut buf);
    out.text(&String::from_utf8_lossy(&buf))
}

/// The man page, roff (`clap_mangen`): `forge-rollback man > forge-rollback.1`.
pub fn man(out: &Output) -> std::io::Result<()> {
    let mut buf = Vec::new();
    clap_mangen::Man::new(Args::command()).render(&mut buf)?;
    out.text(&String::from_utf8_lossy(&buf))
}
