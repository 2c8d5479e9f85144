//! Asking the operator on the terminal.

use std::io::{BufRead, IsTerminal, Write};

use rollback_core::prompt::{
    Confirmation, Prompter, StepAnswer, StepApproval, StepDecision, StepInspector, confirms, yes_no,
};

/// Shows the summary and wants a typed `yes`. Without a terminal it refuses instead of
/// hanging. In a manual run it asks before every step. What an answer means is the core's
/// rule ([`confirms`], [`StepAnswer::parse`], [`yes_no`]), the same as for Python.
pub struct TerminalPrompter;

fn no_terminal(what: &str, manual: bool) -> rollback_core::Error {
    // A manual run asks before every step: `--yes` cannot stand in for those answers.
    let hint = if manual {
        "a manual rollback needs a terminal to answer each step on: run it from one, or run `--full --yes` (every step, unasked)"
    } else {
        "pass `--yes` (or `--auto-confirm`) to run without confirmation"
    };
    rollback_core::Error::refused(format!("no terminal to confirm the {what} on"), Some(hint.into()))
}

/// One line from stdin, trimmed; `None` at end of input.
fn read_answer(prompt: &str) -> rollback_core::Result<Option<String>> {
    #[allow(clippy::print_stderr)]
    {
        eprint!("{prompt}");
    }
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let n =
        std::io::stdin().lock().read_line(&mut line).map_err(|e| rollback_core::IoError::new("read", "<stdin>", e))?;
    Ok((n > 0).then(|| line.trim().to_owned()))
}

impl Prompter for TerminalPrompter {
    #[allow(clippy::print_stderr)]
    fn confirm(&self, request: &Confirmation) -> rollback_core::Result<bool> {
        if !std::io::stdin().is_terminal() {
            let manual = request.plan.level == Some(rollback_core::plan::Level::Manual);
            return Err(no_terminal(&request.action, manual));
        }
        eprintln!("WARNING: this will change the working tree of the deployed system");
        eprint!("{}", request.summary);
        Ok(read_answer("Type `yes` to proceed: ")?.as_deref().is_some_and(confirms))
    }

    #[allow(clippy::print_stderr)]
    fn approve_step(
        &self,
        request: &StepApproval,
        inspector: &dyn StepInspector,
    ) -> rollback_core::Result<StepDecision> {
        if !std::io::stdin().is_terminal() {
            return Err(no_terminal("step", true));
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
            match StepAnswer::parse(&answer) {
                Some(StepAnswer::Run) => return Ok(StepDecision::Run),
                Some(StepAnswer::Skip) if request.skippable => return Ok(StepDecision::Skip),
                Some(StepAnswer::Skip) => eprintln!("this step cannot be skipped: every later step relies on it"),
                Some(StepAnswer::Inspect) => eprint!("{}", inspector.inspect()),
                Some(StepAnswer::AbortUndo) => return Ok(StepDecision::Abort { undo: true }),
                Some(StepAnswer::Abort) => {
                    let undo = loop {
                        let Some(answer) = read_answer("Undo what this run changed so far? [yes/no]: ")? else {
                            break false;
                        };
                        match yes_no(&answer) {
                            Some(undo) => break undo,
                            None => eprintln!("answer yes or no"),
                        }
                    };
                    return Ok(StepDecision::Abort { undo });
                }
                None => eprintln!("`{answer}`? answer {choices}"),
            }
        }
    }
}
