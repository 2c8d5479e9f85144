//! Asking the operator on the terminal.

use std::io::{BufRead, IsTerminal, Write};

use rollback_core::prompt::{Confirmation, Prompter, StepApproval, StepDecision, StepInspector};

/// Shows the summary and wants a typed `yes`. Without a terminal it refuses instead of
/// hanging. In a manual run it asks before every step.
pub struct TerminalPrompter;

fn no_terminal(what: &str) -> rollback_core::Error {
    rollback_core::Error::refused(
        format!("no terminal to confirm the {what} on"),
        Some("pass `--yes` (or `--auto-confirm`) to run without confirmation".into()),
    )
}

/// One line from stdin, trimmed and lowercased; `None` at end of input.
fn read_answer(prompt: &str) -> rollback_core::Result<Option<String>> {
    #[allow(clippy::print_stderr)]
    {
        eprint!("{prompt}");
    }
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let n =
        std::io::stdin().lock().read_line(&mut line).map_err(|e| rollback_core::IoError::new("read", "<stdin>", e))?;
    Ok((n > 0).then(|| line.trim().to_lowercase()))
}

impl Prompter for TerminalPrompter {
    #[allow(clippy::print_stderr)]
    fn confirm(&self, request: &Confirmation) -> rollback_core::Result<bool> {
        if !std::io::stdin().is_terminal() {
            return Err(no_terminal(&request.action));
        }
        eprintln!("WARNING: this will change the working tree of the deployed system");
        eprint!("{}", request.summary);
        Ok(read_answer("Type `yes` to proceed: ")?.as_deref() == Some("yes"))
    }

    #[allow(clippy::print_stderr)]
    fn approve_step(
        &self,
        request: &StepApproval,
        inspector: &dyn StepInspector,
    ) -> rollback_core::Result<StepDecision> {
        if !std::io::stdin().is_terminal() {
            return Err(no_terminal("step"));
        }
        eprintln!();
        eprintln!("Step {}/{}: {} — {}", request.index, request.total, request.name, request.title);
        for line in &request.preview {
            eprintln!("    {line}");
        }
        let choices = if request.skippable { "yes/no/inspect/abort" } else { "yes/inspect/abort" };
        loop {
            let Some(answer) = read_answer(&format!("Run this step? [{choices}]: "))? else {
                eprintln!("end of input: aborting");
                return Ok(StepDecision::Abort { undo: false });
            };
            match answer.as_str() {
                "yes" | "y" => return Ok(StepDecision::Run),
                "no" | "n" | "skip" if request.skippable => return Ok(StepDecision::Skip),
                "no" | "n" | "skip" => eprintln!("this step cannot be skipped: every later step relies on it"),
                "inspect" | "i" => eprint!("{}", inspector.inspect()),
                "abort" | "a" => {
                    let undo = loop {
                        match read_answer("Undo what this run changed so far? [yes/no]: ")?.as_deref() {
                            Some("yes" | "y") => break true,
                            Some("no" | "n") | None => break false,
                            Some(_) => eprintln!("answer yes or no"),
                        }
                    };
                    return Ok(StepDecision::Abort { undo });
                }
                other => eprintln!("`{other}`? answer {choices}"),
            }
        }
    }
}
