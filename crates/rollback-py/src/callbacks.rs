//! Python callbacks as the engine's `Prompter` and `Observer`.
//!
//! The engine calls them from whatever thread runs it (the caller's thread with the GIL
//! released, or a tokio blocking thread for the async methods); each call re-acquires the GIL.
//! A callback that raises never unwinds through the engine: its exception is parked in a
//! [`Failure`] slot; the confirm callback answers `Err(Error::Callback)` (nothing changes), the
//! approve callback too (the engine logs it and stops the manual run before that step, journaled
//! as cancelled), and the event callback makes `should_abort()` true (the engine stops cleanly
//! before the next step and journals the run as failed). The binding then raises the parked,
//! original exception.

use std::sync::{Arc, Mutex, PoisonError};

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyBool;
use rollback_core::event::{Event, Observer};
use rollback_core::prompt::{Confirmation, Prompter, StepApproval, StepDecision, StepInspector};
use rollback_core::{Error, Result};

use crate::results::to_py;

/// The first exception a callback raised during one call into the engine.
#[derive(Clone, Debug, Default)]
pub struct Failure(Arc<Mutex<Option<PyErr>>>);

impl Failure {
    fn set(&self, err: PyErr) {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(err);
        }
    }

    fn is_set(&self) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).is_some()
    }

    /// Takes the parked exception, if any.
    pub fn take(&self) -> Option<PyErr> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// The `confirm` argument: a bool, or `callable(summary, plan) -> bool`.
pub enum Confirm {
    /// Always this answer.
    Flag(bool),
    /// Ask this callable.
    Callback(Py<PyAny>),
}

impl Confirm {
    /// Reads the argument; anything else than a bool or a callable is a `TypeError`.
    pub fn from_arg(arg: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let Some(arg) = arg else { return Ok(Self::Flag(true)) };
        if let Ok(b) = arg.cast::<PyBool>() {
            return Ok(Self::Flag(b.is_true()));
        }
        if arg.is_callable() {
            return Ok(Self::Callback(arg.clone().unbind()));
        }
        Err(PyTypeError::new_err(format!(
            "confirm must be a bool or a callable(summary, plan) -> bool, not {}",
            arg.get_type().name()?
        )))
    }
}

/// The engine's `Prompter`, answered from Python.
pub struct PyPrompter {
    confirm: Confirm,
    approve: Option<Py<PyAny>>,
    failure: Failure,
}

impl PyPrompter {
    pub fn new(confirm: Confirm, failure: Failure) -> Self {
        Self { confirm, approve: None, failure }
    }

    /// With `approve`: `callable(step: dict) -> bool | str`, asked before each step of a
    /// manual run.
    pub fn with_approve(mut self, approve: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        if let Some(a) = approve {
            if !a.is_callable() {
                return Err(PyTypeError::new_err(format!(
                    "approve must be a callable(step) -> bool | str, not {}",
                    a.get_type().name()?
                )));
            }
            self.approve = Some(a.clone().unbind());
        }
        Ok(self)
    }

    /// Whether an `approve` callback was given.
    pub fn has_approve(&self) -> bool {
        self.approve.is_some()
    }
}

/// Reads `approve`'s answer: `True`/`"yes"` run, `False`/`"no"` skip, `"abort"`, or
/// `"abort-undo"`.
fn decision(py: Python<'_>, answer: &Py<PyAny>) -> PyResult<StepDecision> {
    let answer = answer.bind(py);
    if let Ok(b) = answer.cast::<PyBool>() {
        return Ok(if b.is_true() { StepDecision::Run } else { StepDecision::Skip });
    }
    if let Ok(s) = answer.extract::<String>() {
        match s.to_lowercase().as_str() {
            "yes" | "run" => return Ok(StepDecision::Run),
            "no" | "skip" => return Ok(StepDecision::Skip),
            "abort" => return Ok(StepDecision::Abort { undo: false }),
            "abort-undo" => return Ok(StepDecision::Abort { undo: true }),
            _ => {}
        }
    }
    Err(pyo3::exceptions::PyValueError::new_err(format!(
        "approve must return True (run), False (skip), \"abort\" or \"abort-undo\", not {}",
        answer.repr()?
    )))
}

impl Prompter for PyPrompter {
    fn confirm(&self, request: &Confirmation) -> Result<bool> {
        let callback = match &self.confirm {
            Confirm::Flag(b) => return Ok(*b),
            Confirm::Callback(cb) => cb,
        };
        Python::attach(|py| {
            let answer = to_py(py, &request.plan)
                .and_then(|plan| callback.call1(py, (request.summary.as_str(), plan)))
                .and_then(|r| r.is_truthy(py));
            answer.map_err(|e| {
                let text = e.to_string();
                self.failure.set(e);
                Error::Callback(format!("the confirm callback raised {text}"))
            })
        })
    }

    fn approve_step(&self, request: &StepApproval, _inspector: &dyn StepInspector) -> Result<StepDecision> {
        let Some(callback) = &self.approve else { return Ok(StepDecision::Run) };
        if self.failure.is_set() {
            return Ok(StepDecision::Abort { undo: false });
        }
        Python::attach(|py| {
            let answer = to_py(py, request).and_then(|step| callback.call1(py, (step,))).and_then(|a| decision(py, &a));
            answer.map_err(|e| {
                // No answer: the engine logs why and stops the run here, recorded as
                // cancelled; the binding re-raises the exception.
                let text = e.to_string();
                self.failure.set(e);
                Error::Callback(format!("the approve callback raised {text}"))
            })
        })
    }
}

/// The engine's `Observer`, forwarding every event as a dict to a Python callable.
pub struct PyObserver {
    callback: Option<Py<PyAny>>,
    failure: Failure,
}

impl PyObserver {
    /// `callback` is the `on_event` argument; `None` drops events.
    pub fn new(callback: Option<&Bound<'_, PyAny>>, failure: Failure) -> PyResult<Self> {
        if let Some(cb) = callback
            && !cb.is_callable()
        {
            return Err(PyTypeError::new_err(format!("on_event must be callable, not {}", cb.get_type().name()?)));
        }
        Ok(Self { callback: callback.map(|cb| cb.clone().unbind()), failure })
    }
}

impl Observer for PyObserver {
    fn event(&self, event: &Event) {
        // After a callback raised, the run is stopping: do not call it again.
        let Some(callback) = &self.callback else { return };
        if self.failure.is_set() {
            return;
        }
        Python::attach(|py| {
            if let Err(e) = to_py(py, event).and_then(|dict| callback.call1(py, (dict,))) {
                self.failure.set(e);
            }
        });
    }

    fn should_abort(&self) -> bool {
        self.failure.is_set()
    }
}
