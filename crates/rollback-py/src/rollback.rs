//! `Rollback` and `KnownGood`: the Python face of `rollback_core::Rollback`.
//!
//! Every method releases the GIL while the engine works (`py.detach`); callbacks re-acquire it.
//! The `a*` methods return coroutines that run the same work on the shared tokio runtime.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use rollback_core::db::Revision;
use rollback_core::plan::Level;
use rollback_core::verify::VerificationReport as VerificationReport_;
use rollback_core::{Error, RunOptions};

use crate::aio;
use crate::callbacks::{Confirm, Failure, PyObserver, PyPrompter};
use crate::error::PyRollbackError;
use crate::results::{Assessment, Plan, RunResult, RunSummary, VerificationReport, to_py};

type Core = Arc<rollback_core::Rollback>;

fn parse_level(level: Option<&str>) -> PyResult<Option<Level>> {
    match level {
        None => Ok(None),
        Some("fast") => Ok(Some(Level::Fast)),
        Some("full") => Ok(Some(Level::Full)),
        Some("manual") => Ok(Some(Level::Manual)),
        Some(other) => Err(PyRollbackError(Error::usage(
            format!("unknown rollback level `{other}`"),
            Some("use \"fast\", \"full\" or \"manual\" (or None for the recommended level)".to_owned()),
        ))
        .into()),
    }
}

fn parse_severity(severity: Option<&str>) -> PyResult<Option<rollback_core::journal::Severity>> {
    severity.map(str::parse).transpose().map_err(|e| PyRollbackError(e).into())
}

/// The prompter and observer of one call, and the slot their exceptions go to.
struct Callbacks {
    prompter: PyPrompter,
    observer: PyObserver,
    failure: Failure,
}

impl Callbacks {
    fn new(confirm: Option<&Bound<'_, PyAny>>, on_event: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        Self::with_approve(confirm, on_event, None)
    }

    fn with_approve(
        confirm: Option<&Bound<'_, PyAny>>,
        on_event: Option<&Bound<'_, PyAny>>,
        approve: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let failure = Failure::default();
        Ok(Self {
            prompter: PyPrompter::new(Confirm::from_arg(confirm)?, failure.clone()).with_approve(approve)?,
            observer: PyObserver::new(on_event, failure.clone())?,
            failure,
        })
    }

    /// The callback's original exception if one raised, else the engine's result.
    fn finish<T>(&self, result: rollback_core::Result<T>) -> PyResult<T> {
        if let Some(e) = self.failure.take() {
            return Err(e);
        }
        result.map_err(|e| PyRollbackError(e).into())
    }
}

fn run_options(
    level: Option<&str>,
    target: Option<String>,
    dry_run: bool,
    allow_non_ancestor: bool,
    reason: Option<String>,
    severity: Option<&str>,
    allow_irreversible: bool,
) -> PyResult<RunOptions> {
    Ok(RunOptions {
        level: parse_level(level)?,
        target,
        dry_run,
        allow_non_ancestor,
        reason,
        severity: parse_severity(severity)?,
        allow_irreversible,
    })
}

/// Runs the configured checks (the core refuses when none are configured).
fn verify(core: &rollback_core::Rollback, only: Option<&[String]>) -> Result<VerificationReport_, PyRollbackError> {
    core.verify(only).map_err(PyRollbackError)
}

/// A manual run without an `approve` callback would run every step unasked.
fn check_manual(opts: &RunOptions, cbs: &Callbacks) -> PyResult<()> {
    if opts.level == Some(Level::Manual) && !opts.dry_run && !cbs.prompter.has_approve() {
        return Err(PyRollbackError(Error::usage(
            "a manual rollback asks before every step: pass `approve=callable(step) -> bool | str`".to_owned(),
            Some("or use level=\"full\" to run every step".to_owned()),
        ))
        .into());
    }
    Ok(())
}

fn run_result(outcome: &rollback_core::RunOutcome) -> PyResult<Py<PyAny>> {
    let r = RunResult::new(outcome)?;
    Python::attach(|py| Ok(Py::new(py, r)?.into_any()))
}

/// A git repository opened for rollbacks (`Rollback.open(path)`).
#[pyclass(module = "forge_rollback._forge_rollback", frozen)]
pub struct Rollback {
    core: Core,
}

#[pymethods]
impl Rollback {
    /// Opens the repository containing `dir`, with its `forge-rollback.toml` or `config`.
    #[staticmethod]
    #[pyo3(signature = (dir, config = None))]
    #[allow(clippy::needless_pass_by_value)] // PyO3 extracts path-likes as PathBuf
    fn open(py: Python<'_>, dir: PathBuf, config: Option<PathBuf>) -> PyResult<Self> {
        let core = py.detach(|| rollback_core::Rollback::open(&dir, config.as_deref())).map_err(PyRollbackError)?;
        Ok(Self { core: Arc::new(core) })
    }

    /// The work tree's root.
    #[getter]
    fn workdir(&self) -> PathBuf {
        self.core.workdir().to_path_buf()
    }

    /// The known-good registry of this repository.
    #[getter]
    fn known_good(&self) -> KnownGood {
        KnownGood { core: self.core.clone() }
    }

    /// Assesses a rollback to `target` (default: the newest verified known-good commit).
    #[pyo3(signature = (target = None))]
    fn assess(&self, py: Python<'_>, target: Option<&str>) -> PyResult<Assessment> {
        let core = &self.core;
        let a = py.detach(|| core.assess(target)).map_err(PyRollbackError)?;
        Assessment::new(&a)
    }

    /// Plans a rollback at `level` (`"fast"`, `"full"`, `"manual"`; default: recommended).
    #[pyo3(signature = (level = None, target = None))]
    fn plan(&self, py: Python<'_>, level: Option<&str>, target: Option<&str>) -> PyResult<Plan> {
        let level = parse_level(level)?;
        let core = &self.core;
        let p = py.detach(|| core.plan(level, target)).map_err(PyRollbackError)?;
        Plan::new(&p)
    }

    /// Runs a rollback at `level` (`"fast"`, `"full"`, `"manual"`; default: the assessment's
    /// recommendation) to `target` (default: the newest verified known-good commit).
    ///
    /// `confirm` is a bool or `callable(summary, plan) -> bool`; `on_event` receives every
    /// engine event as a dict; `approve` (required for `"manual"`) is asked before each step:
    /// `callable(step: dict) -> True | False | "abort" | "abort-undo"`. `allow_irreversible`
    /// lets a full rollback run a downgrade that cannot restore data (the database snapshot
    /// still lets `undo` put it back).
    ///
    /// A failed step, failed verification or a manual abort is a result (status `"failed"`,
    /// `"verification_failed"`, `"cancelled"`; `raise_for_status()` raises them); a declined
    /// confirmation raises `CancelledError`. Callbacks may be called from another thread; one
    /// that raises stops the run cleanly before the next step and its exception is re-raised.
    #[pyo3(
        signature = (level = None, target = None, *, confirm = None, on_event = None, dry_run = false, allow_non_ancestor = false, reason = None, severity = None, approve = None, allow_irreversible = false),
        text_signature = "($self, level=None, target=None, *, confirm=True, on_event=None, dry_run=False, allow_non_ancestor=False, reason=None, severity=None, approve=None, allow_irreversible=False)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        py: Python<'_>,
        level: Option<&str>,
        target: Option<String>,
        confirm: Option<&Bound<'_, PyAny>>,
        on_event: Option<&Bound<'_, PyAny>>,
        dry_run: bool,
        allow_non_ancestor: bool,
        reason: Option<String>,
        severity: Option<&str>,
        approve: Option<&Bound<'_, PyAny>>,
        allow_irreversible: bool,
    ) -> PyResult<Py<PyAny>> {
        let opts = run_options(level, target, dry_run, allow_non_ancestor, reason, severity, allow_irreversible)?;
        let cbs = Callbacks::with_approve(confirm, on_event, approve)?;
        check_manual(&opts, &cbs)?;
        let core = &self.core;
        let result = py.detach(|| core.run(&opts, &cbs.prompter, &cbs.observer));
        run_result(&cbs.finish(result)?)
    }

    /// Undoes run `run_id`: puts back the snapshot it took (itself a run, undoable).
    #[pyo3(
        signature = (run_id, *, confirm = None, on_event = None),
        text_signature = "($self, run_id, *, confirm=True, on_event=None)"
    )]
    fn undo(
        &self,
        py: Python<'_>,
        run_id: &str,
        confirm: Option<&Bound<'_, PyAny>>,
        on_event: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let cbs = Callbacks::new(confirm, on_event)?;
        let core = &self.core;
        let result = py.detach(|| core.undo(run_id, &cbs.prompter, &cbs.observer));
        run_result(&cbs.finish(result)?)
    }

    /// Finishes an interrupted or failed run from its first unfinished step. A manual run
    /// asks `approve` before each remaining step (without it, they run unasked).
    #[pyo3(signature = (run_id, *, on_event = None, approve = None))]
    fn resume(
        &self,
        py: Python<'_>,
        run_id: &str,
        on_event: Option<&Bound<'_, PyAny>>,
        approve: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let cbs = Callbacks::with_approve(None, on_event, approve)?;
        let core = &self.core;
        let result = if cbs.prompter.has_approve() {
            py.detach(|| core.resume_with(run_id, &cbs.prompter, &cbs.observer))
        } else {
            py.detach(|| core.resume(run_id, &cbs.observer))
        };
        run_result(&cbs.finish(result)?)
    }

    /// Runs the configured service checks now, concurrently (`forge-rollback verify --json`);
    /// `checks` limits them to those names. A failing check is a result (`passed` is
    /// `False`), not an exception; `report.raise_for_status()` raises `VerificationError`.
    #[pyo3(signature = (checks = None))]
    #[allow(clippy::needless_pass_by_value)] // PyO3 extracts a list of str as Vec<String>
    fn verify(&self, py: Python<'_>, checks: Option<Vec<String>>) -> PyResult<VerificationReport> {
        let core = &self.core;
        let report = py.detach(|| verify(core, checks.as_deref()))?;
        VerificationReport::new(&report)
    }

    /// `verify` as a coroutine, run on the shared tokio runtime.
    #[pyo3(signature = (checks = None))]
    fn averify<'py>(&self, py: Python<'py>, checks: Option<Vec<String>>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        aio::coroutine(
            py,
            Box::new(move || {
                let report = verify(&core, checks.as_deref())?;
                let report = VerificationReport::new(&report)?;
                Python::attach(|py| Ok(Py::new(py, report)?.into_any()))
            }),
        )
    }

    /// Upgrades the configured database to `to` (default: the heads of the work tree's
    /// migration files) with the work tree's migration files; returns the revisions it is at
    /// afterwards. For preparing a database (a fresh deploy, tests): a rollback never upgrades.
    #[pyo3(signature = (to = None))]
    #[allow(clippy::needless_pass_by_value)] // PyO3 extracts a list of str as Vec<String>
    fn upgrade_database(&self, py: Python<'_>, to: Option<Vec<String>>) -> PyResult<Vec<String>> {
        let core = &self.core;
        let to: Vec<Revision> = to.unwrap_or_default().into_iter().map(Revision).collect();
        let revs = py.detach(|| core.upgrade_database(&to)).map_err(PyRollbackError)?;
        Ok(revs.into_iter().map(|r| r.0).collect())
    }

    /// Every run, oldest first (`forge-rollback runs list --json`).
    fn runs(&self, py: Python<'_>) -> PyResult<Vec<RunSummary>> {
        let core = &self.core;
        let runs = py.detach(|| core.runs()).map_err(PyRollbackError)?;
        runs.iter().map(RunSummary::new).collect()
    }

    /// One run's outcome: the `outcome` of `forge-rollback runs show --json`.
    fn run_details(&self, py: Python<'_>, run_id: &str) -> PyResult<RunResult> {
        let core = &self.core;
        let (outcome, _, _) = py.detach(|| core.run_details(run_id)).map_err(PyRollbackError)?;
        RunResult::new(&outcome)
    }

    /// The incident report of a run: Markdown (`format="md"`, the runbook's template) or JSON
    /// text (`format="json"`), as `forge-rollback report RUN` prints it.
    #[pyo3(signature = (run_id, format = "md"))]
    fn report(&self, py: Python<'_>, run_id: &str, format: &str) -> PyResult<String> {
        if format != "md" && format != "json" {
            return Err(PyRollbackError(rollback_core::Error::usage(
                format!("unknown report format `{format}`"),
                Some("use \"md\" or \"json\"".to_owned()),
            ))
            .into());
        }
        let core = &self.core;
        let report = py.detach(|| core.report(run_id)).map_err(PyRollbackError)?;
        Ok(if format == "json" { report.to_json() } else { report.to_markdown() })
    }

    /// Every backup snapshot, oldest first, as dicts (`forge-rollback backups list --json`).
    fn backups(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let core = &self.core;
        let list = py.detach(|| core.backups()).map_err(PyRollbackError)?;
        to_py(py, &list)
    }

    /// Re-hashes every blob of every snapshot; a dict whose `problems` list is empty when all
    /// is well (`forge-rollback backups verify --json`).
    fn verify_backups(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let core = &self.core;
        let report = py.detach(|| core.verify_backups(None)).map_err(PyRollbackError)?;
        to_py(py, &report)
    }

    /// Who holds the run lock (`{"pid", "host", "started_at", "command"}`), or `None`.
    fn lock_holder(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let core = &self.core;
        let holder = py.detach(|| core.lock_holder()).map_err(PyRollbackError)?;
        to_py(py, &holder)
    }

    /// `assess` as a coroutine, run on the shared tokio runtime.
    #[pyo3(signature = (target = None))]
    fn aassess<'py>(&self, py: Python<'py>, target: Option<String>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        aio::coroutine(
            py,
            Box::new(move || {
                let a = core.assess(target.as_deref()).map_err(PyRollbackError)?;
                let a = Assessment::new(&a)?;
                Python::attach(|py| Ok(Py::new(py, a)?.into_any()))
            }),
        )
    }

    /// `run` as a coroutine, run on the shared tokio runtime; callbacks (`confirm`,
    /// `on_event`, `approve`) are called from a worker thread.
    #[pyo3(
        signature = (level = None, target = None, *, confirm = None, on_event = None, dry_run = false, allow_non_ancestor = false, reason = None, severity = None, approve = None, allow_irreversible = false),
        text_signature = "($self, level=None, target=None, *, confirm=True, on_event=None, dry_run=False, allow_non_ancestor=False, reason=None, severity=None, approve=None, allow_irreversible=False)"
    )]
    #[allow(clippy::too_many_arguments)]
    fn arun<'py>(
        &self,
        py: Python<'py>,
        level: Option<&str>,
        target: Option<String>,
        confirm: Option<&Bound<'_, PyAny>>,
        on_event: Option<&Bound<'_, PyAny>>,
        dry_run: bool,
        allow_non_ancestor: bool,
        reason: Option<String>,
        severity: Option<&str>,
        approve: Option<&Bound<'_, PyAny>>,
        allow_irreversible: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts = run_options(level, target, dry_run, allow_non_ancestor, reason, severity, allow_irreversible)?;
        let cbs = Callbacks::with_approve(confirm, on_event, approve)?;
        check_manual(&opts, &cbs)?;
        let core = self.core.clone();
        aio::coroutine(
            py,
            Box::new(move || {
                let result = core.run(&opts, &cbs.prompter, &cbs.observer);
                run_result(&cbs.finish(result)?)
            }),
        )
    }

    /// `undo` as a coroutine, run on the shared tokio runtime.
    #[pyo3(
        signature = (run_id, *, confirm = None, on_event = None),
        text_signature = "($self, run_id, *, confirm=True, on_event=None)"
    )]
    fn aundo<'py>(
        &self,
        py: Python<'py>,
        run_id: String,
        confirm: Option<&Bound<'_, PyAny>>,
        on_event: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cbs = Callbacks::new(confirm, on_event)?;
        let core = self.core.clone();
        aio::coroutine(
            py,
            Box::new(move || {
                let result = core.undo(&run_id, &cbs.prompter, &cbs.observer);
                run_result(&cbs.finish(result)?)
            }),
        )
    }

    fn __repr__(&self) -> String {
        format!("Rollback.open({:?})", self.core.workdir().display().to_string())
    }
}

/// The known-good commit registry (`forge-rollback known-good ...`); results are dicts.
#[pyclass(module = "forge_rollback._forge_rollback", frozen)]
pub struct KnownGood {
    core: Core,
}

#[pymethods]
impl KnownGood {
    /// The whole registry (`known-good list --json`).
    fn list(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let core = &self.core;
        let reg = py.detach(|| core.registry()).map_err(PyRollbackError)?;
        to_py(py, &reg)
    }

    /// Marks `rev` verified known-good; returns `{"entry": ..., "updated": bool, "env": ...,
    /// "notes": [...]}`. When `rev` is HEAD, the `[env] files` are recorded with it (`env`:
    /// the record, file names only; a full rollback to `rev` restores them) and, with a
    /// `[database]`, the database's revisions go into the entry's `database_migrations`.
    /// `notes` says what could not be recorded and why (`env` is `None` then).
    #[pyo3(signature = (rev, note = None))]
    fn mark(&self, py: Python<'_>, rev: &str, note: Option<&str>) -> PyResult<Py<PyAny>> {
        let core = &self.core;
        let out = py.detach(|| core.mark_good(rev, note)).map_err(PyRollbackError)?;
        let out = to_py(py, &out)?;
        // The CLI's JSON leaves out an empty `env` and `notes`; a dict has every key.
        let dict = out.bind(py).cast::<PyDict>()?;
        if !dict.contains("env")? {
            dict.set_item("env", py.None())?;
        }
        if !dict.contains("notes")? {
            dict.set_item("notes", PyList::empty(py))?;
        }
        Ok(out)
    }

    /// Marks `rev` known bad (never a target); returns `{"entry": ..., "updated": bool}`.
    #[pyo3(signature = (rev, note = None))]
    fn bad(&self, py: Python<'_>, rev: &str, note: Option<&str>) -> PyResult<Py<PyAny>> {
        let core = &self.core;
        let out = py.detach(|| core.mark_bad(rev, note)).map_err(PyRollbackError)?;
        to_py(py, &out)
    }

    /// Removes `rev` from the registry; returns the removed entry.
    fn unmark(&self, py: Python<'_>, rev: &str) -> PyResult<Py<PyAny>> {
        let core = &self.core;
        let entry = py.detach(|| core.unmark(rev)).map_err(PyRollbackError)?;
        to_py(py, &entry)
    }
}
