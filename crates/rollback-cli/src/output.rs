//! Printing: data on stdout (text or `--json`), log lines and errors on stderr.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

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
    #[allow(clippy::print_stderr)]
    pub fn error(&self, err: &anyhow::Error) {
        let (red, yellow, reset) = if self.color { ("\x1b[31;1m", "\x1b[33;1m", "\x1b[0m") } else { ("", "", "") };
        eprintln!("{red}error{reset}: {err}");
        let mut last = err.to_string();
        for cause in err.chain().skip(1) {
            let text = cause.to_string();
            if last.contains(&text) {
                continue;
            }
            eprintln!("  caused by: {text}");
            last = text;
        }
        // The core's hint, in the CLI's words (commands and `--flags`).
        if let Some(hint) = core_error(err).and_then(|e| e.hint_for(rollback_core::hint::Frontend::Cli)) {
            eprintln!("{yellow}hint{reset}: {hint}");
        }
    }
}

fn core_error(err: &anyhow::Error) -> Option<&rollback_core::Error> {
    err.chain().find_map(|e| e.downcast_ref::<rollback_core::Error>())
}

/// Whether the error is stdout closing under us (`forge-rollback runs list | head`).
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .any(|e| e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

/// Prints log events on stderr in the seed's format.
pub struct LogPrinter {
    /// `--quiet`.
    pub quiet: bool,
    /// `run` (not manual: its step prompts must stay interruptible) and `undo`: from the first
    /// step on, SIGINT and SIGTERM stop the run at its next step boundary (journaled
    /// `cancelled`, exit 5) instead of killing the process. Before that (planning, the
    /// confirmation prompt) they end the process as usual: nothing has changed.
    pub cancel_on_signals: bool,
    stop: OnceLock<Arc<AtomicBool>>,
    /// The run is recorded; its report and webhooks are what is left ([`Observer::finishing`]):
    /// a signal then only stops the wait for the webhooks, and the notice says so.
    finishing: Arc<AtomicBool>,
    /// Progress bars (`None`: not drawn, see [`crate::progress::wanted`]).
    bars: Option<Bars>,
}

impl LogPrinter {
    pub fn new(quiet: bool, cancel_on_signals: bool) -> Self {
        Self { quiet, cancel_on_signals, stop: OnceLock::new(), finishing: Arc::default(), bars: None }
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
        if !self.cancel_on_signals {
            return None;
        }
        // First asked before the first step: the handlers go in once the run has begun.
        let stop = self.stop.get_or_init(|| {
            let finishing = self.finishing.clone();
            rollback_core::signals::stop_on_signals_saying(move || {
                signal_notice(if finishing.load(Ordering::SeqCst) {
                    "interrupted: the run is over and recorded; no longer waiting for its webhooks"
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

    #[allow(clippy::print_stderr)]
    fn event(&self, event: &Event) {
        if let Some(bars) = &self.bars {
            bars.event(event);
        }
        if self.quiet {
            return;
        }
        if let Some(line) = event.log_line() {
            match &self.bars {
                Some(bars) => bars.suspend(|| eprintln!("{line}")),
                None => eprintln!("{line}"),
            }
        }
    }
}

/// A `note:` on stderr that does not change the outcome; none under `--quiet`.
#[allow(clippy::print_stderr)]
pub fn note(quiet: bool, message: &str) {
    if !quiet {
        eprintln!("note: {message}");
    }
}

/// A log line on stderr, from the signal handler's thread (no observer there), even under
/// `--quiet`: it answers the operator's own signal.
#[allow(clippy::print_stderr)]
pub fn signal_notice(message: &str) {
    let event = Event::Log {
        at: rollback_core::time::Timestamp::now(),
        level: rollback_core::event::LogLevel::Warn,
        message: message.to_owned(),
        hint: None,
    };
    if let Some(line) = event.log_line() {
        eprintln!("{line}");
    }
}
