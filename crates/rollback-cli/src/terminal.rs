//! Asking the operator on the terminal.

use std::io::{BufRead, IsTerminal, Write};

use rollback_core::prompt::{Confirmation, Prompter};

/// Shows the summary and wants a typed `yes`. Without a terminal it refuses instead of
/// hanging.
pub struct TerminalPrompter;

impl Prompter for TerminalPrompter {
    #[allow(clippy::print_stderr)]
    fn confirm(&self, request: &Confirmation) -> rollback_core::Result<bool> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Err(rollback_core::Error::refused(
                format!("no terminal to confirm the {} on", request.action),
                Some("pass `--yes` (or `--auto-confirm`) to run without confirmation".to_owned()),
            ));
        }
        eprintln!("WARNING: this will change the working tree of the deployed system");
        eprint!("{}", request.summary);
        eprint!("Type `yes` to proceed: ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        stdin.lock().read_line(&mut line).map_err(|e| rollback_core::fsutil::IoError::new("read", "<stdin>", e))?;
        Ok(line.trim() == "yes")
    }
}
