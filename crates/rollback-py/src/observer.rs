//! The engine's `Observer`: every event goes to the `forge_rollback` logger, and to the
//! caller's `on_event` callback if there is one.
//!
//! Log lines keep their level (`success` is logged at `INFO`: `logging` has no such level; the
//! event's own `level` field still says `success`); step events are logged at `DEBUG`. Each
//! record carries the event dict as `record.forge_rollback_event`.
//!
//! An `on_event` callback that raises is logged (with its traceback) on the same logger and
//! the run goes on: observing must not leave a rollback half-done. Raising
//! `forge_rollback.AbortRollback` is the one way to stop it: the run stops before its next
//! step, journaled `cancelled` (resumable, undoable), and the call re-raises it with `run_id`
//! and `result` set. What the host raises inside the callback is no failure of it: Ctrl-C, or
//! a signal handler's exception (a job's time limit, [`crate::call::raised_by_signal`]), stops
//! the run as it would at a step boundary. An awaitable returned by the callback is awaited on
//! the caller's loop in the async methods; in the sync ones it is closed and logged as an error.
//!
//! A logging set-up that raises (a filter, a custom logger class) is reported through Python's
//! "unraisable" hook; `on_event` still gets every event, so a broken log filter cannot blind a
//! watchdog or keep its `AbortRollback` from stopping the run.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple};
use rollback_core::event::{Event, LogLevel, Observer};
use rollback_core::hint::Frontend;

use crate::call::{Call, raised_by_signal, with_python};
use crate::callbacks::resolve;
use crate::error::AbortRollback;
use crate::results::to_py;

const DEBUG: u8 = 10;
const INFO: u8 = 20;
const WARNING: u8 = 30;
const ERROR: u8 = 40;

/// `logging.getLogger("forge_rollback")`.
pub fn logger(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    LOGGER
        .get_or_try_init(py, || py.import("logging")?.call_method1("getLogger", ("forge_rollback",)).map(Bound::unbind))
        .map(|l| l.bind(py))
}

/// The `logging` level and message of an event.
fn level_and_message(event: &Event) -> (u8, String) {
    match event {
        Event::Log { level, .. } => {
            let level = match level {
                LogLevel::Info | LogLevel::Success => INFO,
                LogLevel::Warn => WARNING,
                LogLevel::Error => ERROR,
            };
            // The message and its hint in Python's words.
            (level, event.text(Frontend::Python).unwrap_or_default())
        }
        Event::StepStarted { run_id, index, total, step } => {
            (DEBUG, format!("run {run_id}: step {index}/{total} `{step}` started"))
        }
        Event::StepFinished { run_id, index, step, millis, ok } => (
            DEBUG,
            format!("run {run_id}: step {index} `{step}` {} in {millis} ms", if *ok { "finished" } else { "failed" }),
        ),
        Event::Progress { run_id, step, unit, done, total } => (
            DEBUG,
            match total {
                Some(total) => format!("run {run_id}: `{step}` {done}/{total} {}", unit.as_str()),
                None => format!("run {run_id}: `{step}` busy"),
            },
        ),
    }
}

/// The event as the dict `on_event` and the logger's records get. A log event's hint is
/// data in the core: it comes in Python's words.
fn event_dict(py: Python<'_>, event: &Event) -> PyResult<Py<PyAny>> {
    let dict = to_py(py, event)?;
    if let Event::Log { hint: Some(h), .. } = event {
        dict.bind(py).set_item("hint", h.render(Frontend::Python))?;
    }
    Ok(dict)
}

/// One record on the logger, carrying the event dict as `record.forge_rollback_event`.
fn log_record(logger: &Bound<'_, PyAny>, level: u8, message: String, dict: &Py<PyAny>) -> PyResult<()> {
    let py = logger.py();
    let extra = PyDict::new(py);
    extra.set_item("forge_rollback_event", dict.clone_ref(py))?;
    let kwargs = PyDict::new(py);
    kwargs.set_item("extra", extra)?;
    logger.call_method("log", (level, message), Some(&kwargs))?;
    Ok(())
}

/// `message` as a warning on the `forge_rollback` logger, an ordinary warning event as the
/// CLI logs it (the record carries `forge_rollback_event` like every other on that logger).
pub fn log_warning(py: Python<'_>, message: String) -> PyResult<()> {
    let at = rollback_core::time::Timestamp::now();
    log_event(py, &Event::Log { at, level: LogLevel::Warn, message, hint: None })
}

/// Logs `event` on the `forge_rollback` logger as a run's observer would, for what is said
/// outside a call that has one (warnings of `Rollback.open`).
pub fn log_event(py: Python<'_>, event: &Event) -> PyResult<()> {
    let (level, message) = level_and_message(event);
    let logger = logger(py)?;
    if !logger.call_method1("isEnabledFor", (level,))?.is_truthy()? {
        return Ok(());
    }
    log_record(logger, level, message, &event_dict(py, event)?)
}

/// The engine's `Observer` for one call.
pub struct PyObserver {
    on_event: Option<Py<PyAny>>,
    call: Arc<Call>,
}

impl PyObserver {
    /// `on_event` is the argument (`None`: the logger only).
    pub fn new(on_event: Option<&Bound<'_, PyAny>>, call: Arc<Call>) -> PyResult<Self> {
        let on_event = on_event.filter(|cb| !cb.is_none());
        if let Some(cb) = on_event
            && !cb.is_callable()
        {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "on_event must be callable, not {}",
                cb.get_type().name()?
            )));
        }
        Ok(Self { on_event: on_event.map(|cb| cb.clone().unbind()), call })
    }

    /// Logs `event` and hands it to `on_event`. The logging machinery failing with an
    /// `Exception` (a filter or logger class that raises) does not keep the event from
    /// `on_event`: its error is returned once the callback has had the event.
    fn emit(&self, py: Python<'_>, event: &Event) -> PyResult<()> {
        let (level, message) = level_and_message(event);
        let logger = logger(py)?;
        let enabled = logger.call_method1("isEnabledFor", (level,)).and_then(|e| e.is_truthy());
        if !matches!(enabled, Ok(true)) && self.on_event.is_none() {
            return enabled.map(drop);
        }
        let dict = event_dict(py, event)?;
        let logged = enabled.and_then(|enabled| {
            if enabled {
                log_record(logger, level, message, &dict)?;
            }
            Ok(())
        });
        // Ctrl-C (or `SystemExit`) while the logger ran: the caller stops the run.
        if let Err(e) = &logged
            && !e.is_instance_of::<pyo3::exceptions::PyException>(py)
        {
            return logged;
        }
        self.call_on_event(py, logger, dict)?;
        logged
    }

    /// Hands the event dict to `on_event`, if there is one.
    fn call_on_event(&self, py: Python<'_>, logger: &Bound<'_, PyAny>, dict: Py<PyAny>) -> PyResult<()> {
        let Some(cb) = &self.on_event else { return Ok(()) };
        let outcome = cb
            .bind(py)
            .call1((dict.clone_ref(py),))
            .and_then(|r| resolve(&self.call, "the on_event callback", r).map(|_| ()));
        if let Err(e) = outcome {
            if raised_by_signal(py, &e) {
                // Ctrl-C, or a job's time limit, landing while the callback ran is raised
                // inside it: it is the host stopping the run, not something the callback did,
                // and reads as it does anywhere else.
                self.call.interrupt(py, e);
            } else if e.is_instance_of::<AbortRollback>(py) || !e.is_instance_of::<pyo3::exceptions::PyException>(py) {
                // `AbortRollback`, or what is no `Exception` (`SystemExit`): stop the run, and
                // raise it when the call returns.
                let why = format!("{} raised by the on_event callback: {}", e.get_type(py).name()?, e.value(py));
                self.call.park(e);
                self.call.cancel(&why);
            } else {
                // With the event it was handed, as every record of this logger carries one.
                let extra = PyDict::new(py);
                extra.set_item("forge_rollback_event", dict)?;
                let kwargs = PyDict::new(py);
                kwargs.set_item("exc_info", e.value(py))?;
                kwargs.set_item("extra", extra)?;
                logger.call_method(
                    "error",
                    PyTuple::new(py, ["the on_event callback raised; the run goes on (raise forge_rollback.AbortRollback to stop it)"])?,
                    Some(&kwargs),
                )?;
            }
        }
        Ok(())
    }
}

impl Observer for PyObserver {
    fn event(&self, event: &Event) {
        with_python(|py| {
            // A signal that came while the engine worked has its Python handler run by the
            // first Python code called now. Whatever that handler raises (Ctrl-C, or a job's
            // time limit: `signal.alarm` raising `TimeoutError`, Celery's
            // `SoftTimeLimitExceeded`) stops the run, so it is run here, before the logger
            // or `on_event`, which would take an `Exception` for their own failure.
            if self.call.signals
                && let Err(e) = py.check_signals()
            {
                self.call.interrupt(py, e);
            }
            match self.emit(py, event) {
                Ok(()) => {}
                // Ctrl-C (or a signal handler's exception) arriving while Python ran the
                // logger: stop at the next step.
                Err(e) if !e.is_instance_of::<pyo3::exceptions::PyException>(py) || raised_by_signal(py, &e) => {
                    self.call.interrupt(py, e);
                }
                // The logging machinery itself failed (a broken handler): Python's own
                // "unraisable" report, never an abort.
                Err(e) => e.write_unraisable(py, None),
            }
        });
    }

    fn cancelled(&self) -> Option<String> {
        self.call.cancelled()
    }

    /// The same answer as at a step boundary: a sync run on the main thread stops waiting for
    /// an unresponsive database on Ctrl-C (not after `database.timeout_secs`), a cancelled
    /// `arun` on its task's cancel.
    fn stop_waiting(&self) -> Option<String> {
        self.call.cancelled()
    }
}
