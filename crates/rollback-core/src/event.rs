//! What the engine reports while it works.
//!
//! The engine never prints. It sends [`Event`]s to an [`Observer`]: the CLI turns them into
//! log lines on stderr, the Python module into callbacks. Every log line is also written to the
//! run's `run.log` in the seed's format, whoever observes.

use serde::{Deserialize, Serialize};

use crate::hint::{Frontend, Hint};
use crate::time::Timestamp;

/// Severity of a log line, shown as the seed's `[INFO]`, `[SUCCESS]`, `[WARN]`, `[ERROR]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    /// Progress.
    Info,
    /// Something finished well.
    Success,
    /// Something the operator should know; the run goes on.
    Warn,
    /// Something failed.
    Error,
}

impl LogLevel {
    /// `INFO`, `SUCCESS`, `WARN`, `ERROR`.
    pub fn label(self) -> &'static str {
        match self {
            LogLevel::Info => "INFO",
            LogLevel::Success => "SUCCESS",
            LogLevel::Warn => "WARN",
            LogLevel::Error => "ERROR",
        }
    }
}

/// One thing that happened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A log line.
    Log {
        /// When.
        at: Timestamp,
        /// Severity.
        level: LogLevel,
        /// The message (no secrets, no trailing period). Empty for a line that is only
        /// advice: it reads `hint: …` then.
        message: String,
        /// What to do about it, rendered by each front-end after the message
        /// ([`Event::text`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        hint: Option<Hint>,
    },
    /// A step began.
    StepStarted {
        /// The run.
        run_id: String,
        /// 1-based position.
        index: usize,
        /// Number of steps.
        total: usize,
        /// Machine name (`snapshot`, `reset`, ...).
        step: String,
    },
    /// A step ended.
    StepFinished {
        /// The run.
        run_id: String,
        /// 1-based position.
        index: usize,
        /// Machine name.
        step: String,
        /// How long it took, in milliseconds.
        millis: u64,
        /// Whether it succeeded.
        ok: bool,
    },
    /// How far long work inside a step has got (the CLI draws a progress bar on a terminal).
    /// `total` is `None` when it cannot be known ahead (a `pg_dump`, a migration tool, a
    /// readiness wait): the step is busy until its `StepFinished`.
    Progress {
        /// The run.
        run_id: String,
        /// The step's machine name (`snapshot`, `db_snapshot`, `downgrade`, ...).
        step: String,
        /// What `done` and `total` count.
        unit: ProgressUnit,
        /// Done so far.
        done: u64,
        /// Everything to do, when known.
        total: Option<u64>,
    },
}

/// What a [`Event::Progress`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProgressUnit {
    /// Files (and other paths) captured.
    Files,
    /// Nothing countable: the step is busy (a database dump or restore, a migration run, a
    /// restart and its readiness wait).
    Busy,
}

impl ProgressUnit {
    /// `files`, `busy`.
    pub fn as_str(self) -> &'static str {
        match self {
            ProgressUnit::Files => "files",
            ProgressUnit::Busy => "busy",
        }
    }
}

impl Event {
    /// The seed's log line: `2025-12-10 17:39:00 [INFO] message`, for log events.
    /// In the CLI's words (`run.log` is read by operators).
    pub fn log_line(&self) -> Option<String> {
        self.log_line_for(Frontend::Cli)
    }

    /// [`Event::log_line`] in `frontend`'s words.
    pub fn log_line_for(&self, frontend: Frontend) -> Option<String> {
        match self {
            Event::Log { at, level, .. } => {
                Some(format!("{} [{}] {}", at.log_format(), level.label(), self.text(frontend).unwrap_or_default()))
            }
            _ => None,
        }
    }

    /// A log event's message and its hint in `frontend`'s words (`message; hint`, or `hint: …`
    /// for a line that is only advice).
    pub fn text(&self, frontend: Frontend) -> Option<String> {
        match self {
            Event::Log { message, hint: None, .. } => Some(message.clone()),
            Event::Log { message, hint: Some(h), .. } if message.is_empty() => {
                Some(format!("hint: {}", h.render(frontend)))
            }
            Event::Log { message, hint: Some(h), .. } => Some(format!("{message}; {}", h.render(frontend))),
            _ => None,
        }
    }
}

/// Receives events. Called from the thread running the engine; must not block for long.
pub trait Observer: Send + Sync {
    /// One event.
    fn event(&self, event: &Event);

    /// Asked before each step: `true` stops the run there, recorded as failed (so it can be
    /// resumed or undone). Front-ends return `true` after a callback raised.
    fn should_abort(&self) -> bool {
        false
    }

    /// Asked before each step: `Some(why)` stops the run there, recorded as `cancelled` with
    /// `why` as its error (it can be resumed or undone like a manual abort). Front-ends return
    /// it when their caller cancels: an asyncio task cancelled, Ctrl-C, interpreter exit.
    fn cancelled(&self) -> Option<String> {
        None
    }

    /// Asked every 50 ms while a run, before its first step, waits on the database for its
    /// assessment (an unresponsive server holds it for up to `database.timeout_secs`) or on the
    /// migration tool (the data-loss forecast's dump, Alembic's `env.py` for the check of
    /// which database it connects to and for a manual run's SQL preview), and
    /// once more just before the run is journaled: `Some(why)` abandons the wait (or the run),
    /// and the run ends with [`crate::Error::Cancelled`], nothing changed and nothing
    /// journaled. For front-ends whose caller must be able to stop there (the Python
    /// module: Ctrl-C on the main thread, a cancelled asyncio task); the CLI leaves it `None`,
    /// as a signal before the first step ends the command.
    fn stop_waiting(&self) -> Option<String> {
        None
    }

    /// Told `true` once a run is recorded as finished (its journal's `finished` record), when
    /// all that is left is writing its report and waiting for its webhooks, and `false` once
    /// that is over (before an automatic undo begins). Meanwhile a cancel
    /// ([`Observer::cancelled`]) not asked for before only stops the wait for the webhooks: the
    /// run's outcome stands. Front-ends that answer a signal say so then.
    fn finishing(&self, _on: bool) {}
}

/// An observer that drops everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct NullObserver;

impl Observer for NullObserver {
    fn event(&self, _event: &Event) {}
}

/// An observer that keeps every event, for tests and for front-ends that show them afterwards.
#[derive(Debug, Default)]
pub struct Recorder {
    events: std::sync::Mutex<Vec<Event>>,
}

impl Recorder {
    /// Every event so far.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Every log message so far, as `LEVEL message`.
    pub fn messages(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter_map(|e| match e {
                Event::Log { level, .. } => Some(format!("{} {}", level.label(), e.text(Frontend::Cli)?)),
                _ => None,
            })
            .collect()
    }
}

impl Observer for Recorder {
    fn event(&self, event: &Event) {
        if let Ok(mut e) = self.events.lock() {
            e.push(event.clone());
        }
    }
}
