//! Python callbacks as the engine's `Prompter`: `confirm` and `approve`.
//!
//! The engine calls them from whatever thread runs it (the caller's thread with the GIL
//! released, or a tokio blocking thread for the async methods); each call re-acquires the GIL
//! through [`with_python`]. A callback that raises never unwinds through the engine: its
//! exception is parked in the [`Call`]; the confirm callback answers `Err(Error::Callback)`
//! (nothing changes), the approve callback too (the engine logs it and stops the manual run
//! before that step, journaled as cancelled). The binding then raises the parked, original
//! exception. A `KeyboardInterrupt` in either callback, or an exception a Python signal
//! handler raised inside it (a job's time limit), is the host stopping the call while it ran,
//! not a failure of the callback: from confirm it cancels the call (nothing journaled), as does
//! a cancel that came while a sync confirm ran, whatever it answered; from approve the run is
//! cancelled before that step, as by a Ctrl-C at a step boundary.
//!
//! Answers are strict, and read by the core's rules, the same as the CLI's terminal:
//! `confirm` (the argument, or a callback's answer) goes ahead only on `True` or the string
//! `"yes"` ([`rollback_core::prompt::confirms`]: surrounding whitespace and ASCII case
//! ignored); `False` declines (`CancelledError`); anything else is a `ValueError`. Nothing
//! changes unless it goes ahead. `approve`'s string answers are
//! [`rollback_core::prompt::StepAnswer`]'s words. An awaitable
//! answer is awaited on the caller's event loop in the async methods, and refused with a
//! `TypeError` (the coroutine closed, so Python warns of nothing) in the sync ones.

use std::sync::Arc;

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyString};
use rollback_core::prompt::{Confirmation, Prompter, StepAnswer, StepApproval, StepDecision, StepInspector, confirms};
use rollback_core::{Error, Result};

use crate::call::{Call, interrupted, raised_by_signal, with_python};
use crate::results::{Plan, to_py};

fn inspect<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    static INSPECT: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    INSPECT.get_or_try_init(py, || py.import("inspect").map(Bound::unbind))?.bind(py).getattr(name)
}

fn is_awaitable(value: &Bound<'_, PyAny>) -> PyResult<bool> {
    inspect(value.py(), "isawaitable")?.call1((value,))?.is_truthy()
}

/// Closes a coroutine nobody will await (so Python does not warn "never awaited").
fn close(value: &Bound<'_, PyAny>) {
    if let Ok(close) = value.getattr("close") {
        let _ = close.call0();
    }
}

/// `value`, awaited first if it is awaitable: on the call's event loop (async calls), else a
/// `TypeError` naming `what`. `None`: the call was cancelled (its asyncio task, interpreter
/// exit) while the awaitable was awaited, and the awaitable was cancelled with it.
pub fn resolve<'py>(call: &Call, what: &str, value: Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    if !is_awaitable(&value)? {
        return Ok(Some(value));
    }
    let py = value.py();
    let Some(event_loop) = call.event_loop() else {
        close(&value);
        return Err(PyTypeError::new_err(format!(
            "{what} returned {}: a sync call cannot await it; pass a plain function, or call the async method (`arun`, `aundo`, `aresume`), which awaits it",
            value.repr()?
        )));
    };
    // A loop that no longer runs would never run the coroutine: the worker would wait forever.
    if !event_loop.bind(py).call_method0("is_running")?.is_truthy()? {
        close(&value);
        return Err(PyTypeError::new_err(format!(
            "{what} returned an awaitable, but the event loop that awaits this call no longer runs"
        )));
    }
    let coro = py.import("forge_rollback._aio")?.call_method1("as_coroutine", (value,))?;
    let future = py.import("asyncio")?.call_method1("run_coroutine_threadsafe", (coro, event_loop.bind(py)))?;
    // Cancelling the call (its task cancelled, `asyncio.wait_for` running out) cancels this
    // future, and with it the coroutine on the loop: a callback that waits for an answer that
    // never comes must not keep the call from stopping.
    call.set_awaiting(Some(future.clone().unbind()));
    // Waits with the GIL released (a `threading` lock), while the loop runs the coroutine.
    let answer = future.call_method0("result");
    call.set_awaiting(None);
    match answer {
        Err(e) if call.is_cancelled() && future.call_method0("cancelled")?.is_truthy()? => {
            drop(e);
            Ok(None)
        }
        answer => answer.map(Some),
    }
}

/// The `confirm` argument.
pub enum Confirm {
    /// `True` or `"yes"`: go ahead without asking.
    Yes,
    /// `False`: decline (`CancelledError`, nothing changes), as a callback answering `False`.
    No,
    /// Not given: only a dry run (which never asks) may leave it out.
    NotGiven,
    /// Ask this callable.
    Callback(Py<PyAny>),
}

impl Confirm {
    /// Reads the argument of `method`: `True`, `"yes"` or a callable; `None` only for a dry
    /// run. An async function is accepted only by the async methods (`is_async`).
    pub fn from_arg(arg: Option<&Bound<'_, PyAny>>, dry_run: bool, is_async: bool, method: &str) -> PyResult<Self> {
        let Some(arg) = arg.filter(|a| !a.is_none()) else {
            if dry_run {
                return Ok(Self::NotGiven);
            }
            return Err(PyTypeError::new_err(format!(
                "{method}() needs an explicit confirm: confirm=True (or \"yes\") to go ahead, or confirm=callable(summary, plan) that returns True or \"yes\"; dry_run=True shows the plan without it"
            )));
        };
        if arg.cast::<PyBool>().is_ok_and(pyo3::types::PyBoolMethods::is_true)
            || arg.cast::<PyString>().is_ok_and(|s| s.to_str().is_ok_and(confirms))
        {
            return Ok(Self::Yes);
        }
        if arg.cast::<PyBool>().is_ok() {
            return Ok(Self::No);
        }
        if is_awaitable(arg)? {
            close(arg);
            return Err(PyTypeError::new_err(format!(
                "confirm is {} (a coroutine): pass the function itself, not its call",
                arg.repr()?
            )));
        }
        if arg.is_callable() {
            if !is_async && inspect(arg.py(), "iscoroutinefunction")?.call1((arg,))?.is_truthy()? {
                return Err(PyTypeError::new_err(format!(
                    "confirm is an async function: {method}() cannot await it; use the async method (`a{method}`) or a plain function"
                )));
            }
            return Ok(Self::Callback(arg.clone().unbind()));
        }
        Err(PyValueError::new_err(format!(
            "confirm must be True, \"yes\" or a callable(summary, plan) -> bool | str, not {}",
            arg.repr()?
        )))
    }
}

/// Reads a confirm callback's answer: `True`/`"yes"` go ahead, `False` declines.
fn confirmed(answer: &Bound<'_, PyAny>) -> PyResult<bool> {
    if let Ok(b) = answer.cast::<PyBool>() {
        return Ok(b.is_true());
    }
    if answer.cast::<PyString>().is_ok_and(|s| s.to_str().is_ok_and(confirms)) {
        return Ok(true);
    }
    Err(PyValueError::new_err(format!(
        "the confirm callback answered {}: only True or the string \"yes\" (any case) go ahead, False declines; nothing was changed",
        answer.repr()?
    )))
}

/// The engine's `Prompter`, answered from Python.
pub struct PyPrompter {
    confirm: Confirm,
    approve: Option<Py<PyAny>>,
    call: Arc<Call>,
}

impl PyPrompter {
    pub fn new(confirm: Confirm, call: Arc<Call>) -> Self {
        Self { confirm, approve: None, call }
    }

    /// With `approve`: `callable(step: dict) -> bool | str`, asked before each step of a
    /// manual run.
    pub fn with_approve(mut self, approve: Option<&Bound<'_, PyAny>>, is_async: bool) -> PyResult<Self> {
        if let Some(a) = approve.filter(|a| !a.is_none()) {
            if !a.is_callable() {
                return Err(PyTypeError::new_err(format!(
                    "approve must be a callable(step) -> bool | str, not {}",
                    a.get_type().name()?
                )));
            }
            if !is_async && inspect(a.py(), "iscoroutinefunction")?.call1((a,))?.is_truthy()? {
                return Err(PyTypeError::new_err(
                    "approve is an async function: a sync call cannot await it; use the async method or a plain function",
                ));
            }
            self.approve = Some(a.clone().unbind());
        }
        Ok(self)
    }

    /// Whether an `approve` callback was given.
    pub fn has_approve(&self) -> bool {
        self.approve.is_some()
    }

    /// `Ok(why)`: `e` is the host stopping the call (Ctrl-C, a signal handler's exception
    /// raised inside the callback, [`crate::call::raised_by_signal`]); the call is cancelled
    /// for it, and raises it when it returns. `Err(e)`: the callback failed.
    fn interrupted(&self, e: PyErr) -> std::result::Result<String, PyErr> {
        with_python(|py| {
            if !raised_by_signal(py, &e) {
                return Err(e);
            }
            let why = interrupted(py, &e);
            self.call.interrupt(py, e);
            Ok(why)
        })
        .unwrap_or_else(|| Ok(EXITING.to_owned()))
    }

    fn failed(&self, what: &str, e: PyErr) -> Error {
        let text = with_python(|_| e.to_string()).unwrap_or_default();
        self.call.park(e);
        Error::Callback(format!("the {what} callback raised {text}"))
    }
}

/// Reads `approve`'s answer: `True` runs, `False` skips; a string is read as the CLI reads a
/// typed answer ([`StepAnswer::parse`]), except `"inspect"`, which only a terminal can do.
fn decision(answer: &Bound<'_, PyAny>) -> PyResult<StepDecision> {
    if let Ok(b) = answer.cast::<PyBool>() {
        return Ok(if b.is_true() { StepDecision::Run } else { StepDecision::Skip });
    }
    if let Ok(s) = answer.cast::<PyString>() {
        match s.to_str().ok().and_then(StepAnswer::parse) {
            Some(StepAnswer::Run) => return Ok(StepDecision::Run),
            Some(StepAnswer::Skip) => return Ok(StepDecision::Skip),
            Some(StepAnswer::Abort) => return Ok(StepDecision::Abort { undo: false }),
            Some(StepAnswer::AbortUndo) => return Ok(StepDecision::Abort { undo: true }),
            Some(StepAnswer::Inspect) | None => {}
        }
    }
    Err(PyValueError::new_err(format!(
        "approve must return True or \"yes\"/\"run\" (run), False or \"no\"/\"skip\" (skip), \"abort\" or \"abort-undo\", not {}",
        answer.repr()?
    )))
}

const EXITING: &str = "the Python interpreter is exiting";

impl Prompter for PyPrompter {
    /// `confirm=True` (or `"yes"`) is the CLI's `--yes`: the engine takes the lock first and
    /// plans once, under it, so both refuse for the same reason in the same order. Not with an
    /// `approve` callback: a manual run asks before each step.
    fn is_automatic(&self) -> bool {
        matches!(self.confirm, Confirm::Yes) && self.approve.is_none()
    }

    fn confirm(&self, request: &Confirmation) -> Result<bool> {
        // Cancelled (or Ctrl-C) while assessing: stop before anything is written.
        if let Some(why) = self.call.cancelled() {
            return Err(Error::Cancelled(format!("{why}; nothing was changed")));
        }
        let callback = match &self.confirm {
            Confirm::Yes => return Ok(true),
            Confirm::No => return Ok(false),
            Confirm::NotGiven => return Err(Error::usage("no confirm was given", None)),
            Confirm::Callback(cb) => cb,
        };
        let answer = with_python(|py| {
            let plan = Py::new(py, Plan::new(&request.plan)?)?;
            let answer = callback.bind(py).call1((request.summary.as_str(), plan))?;
            resolve(&self.call, "the confirm callback", answer)?.map(|a| confirmed(&a)).transpose()
        });
        match answer {
            None => Err(Error::Cancelled(format!("{EXITING}; nothing was changed"))),
            // Cancelled while a sync confirm ran (its asyncio task, Ctrl-C landing after the
            // callback's last Python line): as a decline, nothing is journaled. Going on would
            // journal a run cancelled before its first step, whose `resume` would carry out
            // the rollback the caller had just cancelled.
            Some(Ok(Some(true))) => match self.call.cancelled() {
                Some(why) => {
                    Err(Error::Cancelled(format!("{why} while the confirm callback ran; nothing was changed")))
                }
                None => Ok(true),
            },
            Some(Ok(Some(no))) => Ok(no),
            // Cancelled while an async confirm was awaited: it is cancelled too.
            Some(Ok(None)) => Err(Error::Cancelled(format!(
                "{} while the confirm callback was awaited; nothing was changed",
                self.call.cancelled().unwrap_or_default()
            ))),
            // Ctrl-C (or a job's time limit) landing while the callback ran is raised inside
            // it: the host stopping the call before the run's first step, as a decline, not a
            // failure of the callback.
            Some(Err(e)) => match self.interrupted(e) {
                Ok(why) => Err(Error::Cancelled(format!("{why} while the confirm callback ran; nothing was changed"))),
                Err(e) => Err(self.failed("confirm", e)),
            },
        }
    }

    fn approve_step(&self, request: &StepApproval, _inspector: &dyn StepInspector) -> Result<StepDecision> {
        let Some(callback) = &self.approve else { return Ok(StepDecision::Run) };
        // A signal handler that raised (Ctrl-C, a job's time limit) stops the run before this
        // step, as it would at any step boundary: the callback is not asked.
        if self.call.has_parked() || self.call.cancelled().is_some() {
            return Ok(StepDecision::Abort { undo: false });
        }
        let answer = with_python(|py| {
            let step = to_py(py, request)?;
            let answer = callback.bind(py).call1((step,))?;
            resolve(&self.call, "the approve callback", answer)?.map(|a| decision(&a)).transpose()
        });
        match answer {
            // Interpreter exit, or the call cancelled while an async approve was awaited:
            // stop before this step (the engine journals the run cancelled for that reason).
            None | Some(Ok(None)) => Ok(StepDecision::Abort { undo: false }),
            Some(Ok(Some(d))) => Ok(d),
            Some(Err(e)) => match self.interrupted(e) {
                // Ctrl-C (or a job's time limit) landing while the callback ran: no answer of
                // the operator's but the host stopping the run, here, before this step, as it
                // would at a step boundary (`interrupted (KeyboardInterrupt)`, not "the
                // operator aborted the run").
                Ok(_) => Ok(StepDecision::Abort { undo: false }),
                // No answer: the engine logs why and stops the run here, recorded as
                // cancelled; the binding re-raises the exception.
                Err(e) => Err(self.failed("approve", e)),
            },
        }
    }
}
