//! The async entry points: engine work on the one shared tokio runtime's blocking pool.
//!
//! `Rollback.arun(...)` and friends return a real coroutine (so `asyncio.run(rb.arun(...))` and
//! `await rb.arun(...)` both work, and nothing starts until it is awaited): the coroutine is
//! `forge_rollback._aio.await_job(job)`, which awaits `job()`; calling the job hands the work to
//! `spawn_blocking` on `pyo3_async_runtimes`' tokio runtime and returns an asyncio future.

use std::sync::{Mutex, PoisonError};

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

/// Engine work that runs without the GIL and builds its Python result at the end.
pub type Job = Box<dyn FnOnce() -> PyResult<Py<PyAny>> + Send>;

/// One pending piece of async work; calling it starts it (once).
#[pyclass(module = "forge_rollback._forge_rollback", frozen)]
pub struct PendingJob {
    job: Mutex<Option<Job>>,
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
        pyo3_async_runtimes::tokio::future_into_py(py, async move {
            pyo3_async_runtimes::tokio::get_runtime()
                .spawn_blocking(job)
                .await
                .map_err(|e| PyRuntimeError::new_err(format!("forge_rollback worker thread failed: {e}")))?
        })
    }
}

/// A coroutine that runs `job` on the shared runtime when awaited.
pub fn coroutine(py: Python<'_>, job: Job) -> PyResult<Bound<'_, PyAny>> {
    let pending = Bound::new(py, PendingJob { job: Mutex::new(Some(job)) })?;
    py.import("forge_rollback._aio")?.call_method1("await_job", (pending,))
}
