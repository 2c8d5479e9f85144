//! The async entry points: engine work on the one shared tokio runtime's blocking pool.
//!
//! `Rollback.arun(...)` and friends return a real coroutine (so `asyncio.run(rb.arun(...))` and
//! `await rb.arun(...)` both work, and nothing starts until it is awaited): the coroutine is
//! `forge_rollback._aio.await_job(job)`, which awaits `job()`. Calling the job notes the
//! running loop (async callbacks are awaited there), hands the work to `spawn_blocking` and
//! returns an asyncio future that the worker settles through `loop.call_soon_threadsafe`.
//!
//! Cancelling the awaiting task calls `job.cancel()`: a run stops at its next step boundary
//! (journaled `cancelled`), and `await_job` waits for that before it re-raises
//! `CancelledError` with `run_id` and `result` set. The worker touches Python only through
//! [`with_python`], so a run outliving the interpreter never panics.
//!
//! After `os.fork()` the child has the runtime's memory but none of its threads: the core's
//! `rt::runtime` builds the child a runtime of its own, on which its jobs run.

use std::sync::{Arc, Mutex, PoisonError};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::call::{Call, Live, with_python};

/// Builds a job's Python result (or exception) once the GIL is held.
pub type Convert = Box<dyn for<'py> FnOnce(Python<'py>) -> PyResult<Py<PyAny>> + Send>;
/// Engine work that runs without the GIL.
pub type Job = Box<dyn FnOnce() -> Convert + Send>;

/// A job from its work and the conversion of the work's output.
pub fn job<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
    convert: impl for<'py> FnOnce(Python<'py>, T) -> PyResult<Py<PyAny>> + Send + 'static,
) -> Job {
    Box::new(move || {
        let out = work();
        Box::new(move |py| convert(py, out))
    })
}

/// One pending piece of async work; calling it starts it (once).
#[pyclass(module = "forge_rollback._forge_rollback", frozen)]
pub struct PendingJob {
    job: Mutex<Option<Job>>,
    /// The run behind it, for `cancel()` (`None`: work that is not a run).
    call: Option<Arc<Call>>,
}

#[pymethods]
impl PendingJob {
    /// Starts the work on the shared runtime; returns an asyncio future of its result.
    fn __call__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let job = self
            .job
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or_else(|| PyRuntimeError::new_err("this forge_rollback coroutine was already awaited"))?;
        let event_loop = py.import("asyncio")?.call_method0("get_running_loop")?;
        let future = event_loop.call_method0("create_future")?;
        let live = self.call.as_ref().map(|c| {
            c.set_loop(event_loop.clone().unbind());
            Live::register(c)
        });
        let (event_loop, settle_future) = (event_loop.unbind(), future.clone().unbind());
        rollback_core::rt::runtime().spawn_blocking(move || {
            // A panic must still settle the future, or its awaiter would wait forever.
            let convert = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).unwrap_or_else(|_| {
                Box::new(|_| {
                    Err(PyRuntimeError::new_err("forge_rollback worker thread panicked (a bug; please report it)"))
                })
            });
            with_python(|py| {
                let (ok, value) = match convert(py) {
                    Ok(v) => (true, v),
                    Err(e) => (false, e.into_value(py).into_any()),
                };
                // A closed loop (nobody awaits any more) is not an error here.
                let _ = py.import("forge_rollback._aio").and_then(|m| {
                    event_loop
                        .bind(py)
                        .call_method1("call_soon_threadsafe", (m.getattr("settle")?, settle_future, ok, value))
                });
            });
            drop(live);
        });
        Ok(future)
    }

    /// Asks the run behind this job to stop at its next step boundary; `False` when there is
    /// no run (the work goes on and its result is dropped).
    fn cancel(&self, why: &str) -> bool {
        self.call.as_ref().is_some_and(|c| {
            c.cancel(why);
            true
        })
    }
}

/// A coroutine that runs `job` on the shared runtime when awaited; `call` is the run behind it.
pub fn coroutine(py: Python<'_>, call: Option<Arc<Call>>, job: Job) -> PyResult<Bound<'_, PyAny>> {
    let pending = Bound::new(py, PendingJob { job: Mutex::new(Some(job)), call })?;
    py.import("forge_rollback._aio")?.call_method1("await_job", (pending,))
}
