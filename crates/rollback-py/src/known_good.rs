//! `KnownGood`: the known-good commit registry (`forge-rollback known-good ...`), results as
//! dicts; each method has an `a*` coroutine twin.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};

use crate::aio::{self, job};
use crate::results::to_data;

type Core = Arc<rollback_core::Rollback>;

/// `mark`'s dict, with every key: the CLI's JSON leaves out an empty `env` and `notes`.
fn to_marked(py: Python<'_>, r: rollback_core::Result<rollback_core::registry::MarkOutcome>) -> PyResult<Py<PyAny>> {
    let out = to_data(py, r)?;
    let dict = out.bind(py).cast::<PyDict>()?;
    if !dict.contains("env")? {
        dict.set_item("env", py.None())?;
    }
    if !dict.contains("notes")? {
        dict.set_item("notes", PyList::empty(py))?;
    }
    Ok(out)
}

/// The known-good commit registry (`forge-rollback known-good ...`); results are dicts.
#[pyclass(module = "forge_rollback._forge_rollback", frozen)]
pub struct KnownGood {
    core: Core,
}

impl KnownGood {
    pub fn new(core: Core) -> Self {
        Self { core }
    }
}

#[pymethods]
impl KnownGood {
    /// The whole registry (`known-good list --json`).
    fn list(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let core = &self.core;
        to_data(py, py.detach(|| core.registry()))
    }

    /// `list` as a coroutine.
    pub fn alist<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        aio::coroutine(py, None, job(move || core.registry(), to_data))
    }

    /// Marks `rev` verified known-good; returns `{"entry": ..., "updated": bool, "env": ...,
    /// "notes": [...]}`. When `rev` is HEAD, the `[env] files` are recorded with it (`env`:
    /// the record, file names only; a full rollback to `rev` restores them) and, with a
    /// `[database]`, the database's revisions go into the entry's `database_migrations`.
    /// `notes` says what could not be recorded and why (`env` is `None` then). A commit
    /// marked known bad raises `RefusedError` (nothing written) unless `lift_bad=True`, which
    /// lifts that mark and says so in `notes`.
    #[pyo3(signature = (rev, note = None, *, lift_bad = false))]
    fn mark(&self, py: Python<'_>, rev: &str, note: Option<&str>, lift_bad: bool) -> PyResult<Py<PyAny>> {
        let core = &self.core;
        to_marked(py, py.detach(|| core.mark_good_with(rev, note, lift_bad)))
    }

    /// `mark` as a coroutine.
    #[pyo3(signature = (rev, note = None, *, lift_bad = false))]
    fn amark<'py>(
        &self,
        py: Python<'py>,
        rev: String,
        note: Option<String>,
        lift_bad: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        aio::coroutine(py, None, job(move || core.mark_good_with(&rev, note.as_deref(), lift_bad), to_marked))
    }

    /// Marks `rev` known bad (never a target); returns `{"entry": ..., "updated": bool}`.
    #[pyo3(signature = (rev, note = None))]
    fn bad(&self, py: Python<'_>, rev: &str, note: Option<&str>) -> PyResult<Py<PyAny>> {
        let core = &self.core;
        to_data(py, py.detach(|| core.mark_bad(rev, note)))
    }

    /// `bad` as a coroutine.
    #[pyo3(signature = (rev, note = None))]
    fn abad<'py>(&self, py: Python<'py>, rev: String, note: Option<String>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        aio::coroutine(py, None, job(move || core.mark_bad(&rev, note.as_deref()), to_data))
    }

    /// Removes `rev` from the registry; returns the removed entry.
    fn unmark(&self, py: Python<'_>, rev: &str) -> PyResult<Py<PyAny>> {
        let core = &self.core;
        to_data(py, py.detach(|| core.unmark(rev)))
    }

    /// `unmark` as a coroutine.
    fn aunmark<'py>(&self, py: Python<'py>, rev: String) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        aio::coroutine(py, None, job(move || core.unmark(&rev), to_data))
    }
}
