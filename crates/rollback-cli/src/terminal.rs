//! Asking the operator on the terminal.

use std::io::{BufRead, IsTerminal};

use crate::output::{say, sayln};
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

/// What the operator gave at a prompt.
enum Answer {
    /// A line, trimmed.
    Line(String),
    /// End of input.
    End,
    /// A Ctrl-C or SIGTERM while waiting, once a run's signal handlers are in (a manual run's
    /// step prompts): the run stops here, at a step boundary.
    Interrupted,
}

/// Asks `prompt` on stderr and reads the answer from stdin.
fn read_answer(prompt: &str) -> rollback_core::Result<Answer> {
    say!("{prompt}");
    crate::output::prompting(true);
    let ready = wait_for_input();
    crate::output::prompting(false);
    // A line typed as the signal came: the notice already said the run stops here.
    if !ready || crate::output::stop_requested() {
        return Ok(Answer::Interrupted);
    }
    let mut line = String::new();
    let n =
        std::io::stdin().lock().read_line(&mut line).map_err(|e| rollback_core::IoError::new("read", "<stdin>", e))?;
    Ok(if n > 0 { Answer::Line(line.trim().to_owned()) } else { Answer::End })
}

/// Waits until stdin has a line (or its end) to read: `true`; `false` if a signal asked the
/// run to stop first. Once a run's handlers are in, a Ctrl-C no longer ends the process, and a
/// blocking read would not return for it: the operator's Ctrl-C at a prompt would do nothing.
/// So the wait looks at the stop flag between short waits (a terminal in line mode makes stdin
/// readable once a whole line is typed; nothing stays in the reader's buffer after it).
#[cfg(unix)]
fn wait_for_input() -> bool {
    use std::os::fd::AsRawFd as _;
    let fd = std::io::stdin().as_raw_fd();
    loop {
        if crate::output::stop_requested() {
            return false;
        }
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: poll(2) on one valid, initialised pollfd that outlives the call.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::poll(&raw mut pfd, 1, 200) };
        // A signal arriving interrupts the wait (EINTR): the loop then looks at the flag. An
        // answer (a hang-up too) or any other failure is left to the read.
        if rc > 0 || (rc < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted) {
            return true;
        }
    }
}

#[cfg(not(unix))]
fn wait_for_input() -> bool {
    !crate::output::stop_requested()
}

impl Prompter for TerminalPrompter {
    fn confirm(&self, request: &Confirmation) -> rollback_core::Result<bool> {
        if !std::io::stdin().is_terminal() {
            let manual = request.plan.level == Some(rollback_core::plan::Level::Manual);
            return Err(no_terminal(&request.action, manual));
        }
        sayln!("WARNING: this will change the working tree of the deployed system");
        say!("{}", request.summary);
        Ok(matches!(read_answer("Type `yes` to proceed: ")?, Answer::Line(answer) if confirms(&answer)))
    }

    fn approve_step(
        &self,
        request: &StepApproval,
        inspector: &dyn StepInspector,
    ) -> rollback_core::Result<StepDecision> {
        if !std::io::stdin().is_terminal() {
            return Err(no_terminal("step", true));
        }
        sayln!();
        sayln!("Step {}/{}: {} — {}", request.index, request.total, request.name, request.title);
        for line in &request.preview {
            sayln!("    {line}");
        }
        let choices = if request.skippable { "yes/no/inspect/abort" } else { "yes/inspect/abort" };
        loop {
            let answer = match read_answer(&format!("Run this step? [{choices}]: "))? {
                Answer::Line(answer) => answer,
                Answer::End => {
                    sayln!("end of input: aborting");
                    return Ok(StepDecision::Abort { undo: false });
                }
                Answer::Interrupted => {
                    sayln!();
                    return Ok(StepDecision::Abort { undo: false });
                }
            };
            match StepAnswer::parse(&answer) {
                Some(StepAnswer::Run) => return Ok(StepDecision::Run),
                Some(StepAnswer::Skip) if request.skippable => return Ok(StepDecision::Skip),
                Some(StepAnswer::Skip) => sayln!("this step cannot be skipped: every later step relies on it"),
                Some(StepAnswer::Inspect) => {
                    // Still the question: inspect may wait on the project's code (the SQL
                    // preview runs Alembic's `env.py`), and a signal meanwhile cuts it short and
                    // stops the run before this step, as one while the answer is awaited does.
                    crate::output::prompting(true);
                    let shown = inspector.inspect();
                    crate::output::prompting(false);
                    say!("{shown}");
                    if crate::output::stop_requested() {
                        sayln!();
                        return Ok(StepDecision::Abort { undo: false });
                    }
                }
                Some(StepAnswer::AbortUndo) => return Ok(StepDecision::Abort { undo: true }),
                Some(StepAnswer::Abort) => {
                    let undo = loop {
                        let Answer::Line(answer) = read_answer("Undo what this run changed so far? [yes/no]: ")? else {
                            break false;
                        };
                        match yes_no(&answer) {
                            Some(undo) => break undo,
                            None => sayln!("answer yes or no"),
                        }
                    };
                    return Ok(StepDecision::Abort { undo });
                }
                None => sayln!(
                    "`{answer}`? answer {}",
                    if request.skippable {
                        "yes (or run), no (or skip), inspect, abort (then asked whether to undo) or abort-undo"
                    } else {
                        "yes (or run), inspect, abort (then asked whether to undo) or abort-undo"
                    }
                ),
            }
        }
    }
}
