//! Printing: data on stdout (text or `--json`), log lines and errors on stderr.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use rollback_core::event::{Event, Observer};

use crate::progress::Bars;

/// Where output goes and in which form.
pub struct Output {
    /// `--json`.
    pub json: bool,
    color: bool,
}

impl Output {
    /// Colors only on a terminal and when `NO_COLOR` is unset.
    pub fn new(json: bool) -> Self {
        let color = std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal();
        Self { json, color }
    }

    /// Writes text to stdout; a closed pipe is reported as an error the caller treats as
    /// success.
    pub fn text(&self, s: &str) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(s.as_bytes())?;
        out.flush()
    }

    /// Writes a value as pretty JSON plus a newline.
    pub fn json_value<T: serde::Serialize>(&self, v: &T) -> anyhow::Result<()> {
        let mut s = serde_json::to_string_pretty(v)?;
        s.push('\n');
        self.text(&s)?;
        Ok(())
    }

    /// Prints an error, its causes and a hint.
    pub fn error(&self, err: &anyhow::Error) {
        let (red, yellow, reset) = if self.color { ("\x1b[31;1m", "\x1b[33;1m", "\x1b[0m") } else { ("", "", "") };
        let mut text = format!("{red}error{reset}: {err}\n");
        let mut last = err.to_string();
        for cause in err.chain().skip(1) {
            let cause = cause.to_string();
            if last.contains(&cause) {
                continue;
            }
            let _ = writeln!(text, "  caused by: {cause}");
            last = cause;
        }
        // The core's hint, in the CLI's words (commands and `--flags`).
        if let Some(hint) = core_error(err).and_then(|e| e.hint_for(rollback_core::hint::Frontend::Cli)) {
            let _ = writeln!(text, "{yellow}hint{reset}: {hint}");
        }
        to_stderr(&text);
    }
}

/// Writes `text` to stderr, best effort: a log line or a prompt that cannot be written (stderr a
/// file on a full disk, a pipe to a `head` that exited, a terminal that hung up) is dropped.
/// `eprintln!` panics instead, and a panic at a log line would stop a rollback half-way, its
/// run left `interrupted`; `run.log` keeps every line of a run.
pub fn to_stderr(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// `eprint!` that never panics ([`to_stderr`]).
macro_rules! say {
    ($($arg:tt)*) => {
        $crate::output::to_stderr(&format!($($arg)*))
    };
}

/// `eprintln!` that never panics ([`to_stderr`]).
macro_rules! sayln {
    () => {
        $crate::output::to_stderr("\n")
    };
    ($($arg:tt)*) => {
        $crate::output::to_stderr(&format!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {say, sayln};

pub(crate) fn core_error(err: &anyhow::Error) -> Option<&rollback_core::Error> {
    err.chain().find_map(|e| e.downcast_ref::<rollback_core::Error>())
}

/// Whether the error is stdout closing under us (`forge-rollback runs list | head`).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// What SIGINT and SIGTERM do to a command once its first step is reached.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum OnSignal {
    /// End the process, as without a handler: nothing of it stops at a boundary.
    Die,
    /// `run`, `undo`, `resume`: stop the run at its next step boundary (journaled `cancelled`,
    /// exit 5) instead of killing the process. A hangup (SIGHUP) is ignored from then on, with
    /// [`OnSignal::StopRehearsal`] too: the command finishes.
    StopRun,
    /// `rehearse`: stop at its next boundary and remove the copy; there is no real run to
    /// resume or undo.
    StopRehearsal,
}

/// The stop flag, once a command's first step installed the handlers: process-wide, as the
/// signal handlers are; the terminal prompter reads it while it waits for an answer. Cleared
/// when the command returns ([`forget_stop`]): in the Python module's `cli_main` the process
/// goes on, and a later command must install its own handlers and start with a fresh flag.
static STOP: Mutex<Option<Arc<AtomicBool>>> = Mutex::new(None);

/// Set while a manual run's prompt waits for the operator, or shows what `inspect` asked for: a
/// Ctrl-C then stops the run before the step asked about, with no step under way to wait for.
static PROMPTING: AtomicBool = AtomicBool::new(false);

/// Whether a SIGINT or SIGTERM asked the run to stop (always `false` before the handlers are
/// installed: the signals then end the process).
pub fn stop_requested() -> bool {
    STOP.lock().unwrap_or_else(PoisonError::into_inner).as_ref().is_some_and(|stop| stop.load(Ordering::SeqCst))
}

/// Forgets the stop flag of the command that ran (its handlers end with
/// `rollback_core::signals::Scope`).
pub fn forget_stop() {
    STOP.lock().unwrap_or_else(PoisonError::into_inner).take();
}

/// Says the terminal prompter is (or no longer is) waiting for an answer.
pub fn prompting(on: bool) {
    PROMPTING.store(on, Ordering::SeqCst);
}

/// Prints log events on stderr in the seed's format.
pub struct LogPrinter {
    /// `--quiet`.
    pub quiet: bool,
    /// From the first step on, whether SIGINT and SIGTERM stop the command at its next step
    /// boundary instead of killing the process. Before that (planning, the confirmation
    /// prompt) they end the process as usual: nothing has changed.
    pub on_signal: OnSignal,
    /// The run is recorded; its report and webhooks are what is left ([`Observer::finishing`]):
    /// a signal then only stops the wait for the webhooks, and the notice says so.
    finishing: Arc<AtomicBool>,
    /// Progress bars (`None`: not drawn, see [`crate::progress::wanted`]).
    bars: Option<Bars>,
}

impl LogPrinter {
    pub fn new(quiet: bool, on_signal: OnSignal) -> Self {
        Self { quiet, on_signal, finishing: Arc::default(), bars: None }
    }

    /// Draws progress bars on stderr when `on` (a terminal, no `--json`, `-q`, `NO_COLOR`).
    #[must_use]
    pub fn with_progress(mut self, on: bool) -> Self {
        self.bars = on.then(Bars::default);
        self
    }
}

impl Observer for LogPrinter {
    fn cancelled(&self) -> Option<String> {
        if self.on_signal == OnSignal::Die {
            return None;
        }
        // First asked before the first step: the handlers go in once the run has begun.
        let mut installed = STOP.lock().unwrap_or_else(PoisonError::into_inner);
        let stop = installed.get_or_insert_with(|| {
            // A hangup (the SSH session dropped) lets the command finish (docs/cli.md).
            rollback_core::signals::ignore_hangup();
            let finishing = self.finishing.clone();
            let rehearsal = self.on_signal == OnSignal::StopRehearsal;
            rollback_core::signals::stop_on_signals_saying(move || {
                signal_notice(if finishing.load(Ordering::SeqCst) {
                    "interrupted: the run is over and recorded; no longer waiting for its webhooks"
                } else if rehearsal {
                    "interrupted: stopping the rehearsal at its next boundary and removing its copy (a second Ctrl-C or SIGTERM stops at once and may leave the copy in the temporary folder)"
                } else if PROMPTING.load(Ordering::SeqCst) {
                    "interrupted: stopping the run here, before the step asked about (nothing of it has run)"
                } else {
                    "interrupted: stopping at the next step boundary, once the step under way finishes (a second Ctrl-C or SIGTERM stops at once, leaving the run `interrupted`: `resume` or `undo` it then)"
                });
            })
        });
        stop.load(Ordering::SeqCst).then(|| "interrupted (SIGINT or SIGTERM)".to_owned())
    }

    fn finishing(&self, on: bool) {
        self.finishing.store(on, Ordering::SeqCst);
    }

    fn event(&self, event: &Event) {
        if let Some(bars) = &self.bars {
            bars.event(event);
        }
        if self.quiet {
            return;
        }
        if let Some(line) = event.log_line() {
            match &self.bars {
                Some(bars) => bars.suspend(|| sayln!("{line}")),
                None => sayln!("{line}"),
            }
        }
    }
}

/// A `note:` on stderr that does not change the outcome; none under `--quiet`.
pub fn note(quiet: bool, message: &str) {
    if !quiet {
        sayln!("note: {message}");
    }
}

/// A log line on stderr, from the signal handler's thread (no observer there), even under
/// `--quiet`: it answers the operator's own signal.
pub fn signal_notice(message: &str) {
    let event = Event::Log {
        at: rollback_core::time::Timestamp::now(),
        level: rollback_core::event::LogLevel::Warn,
        message: message.to_owned(),
        hint: None,
    };
    if let Some(line) = event.log_line() {
        sayln!("{line}");
    }
}
