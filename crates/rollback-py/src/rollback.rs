//! `Rollback`: the Python face of `rollback_core::Rollback`.
//!
//! Every method releases the GIL while the engine works (`py.detach`); callbacks re-acquire it.
//! Each has an `a*` twin returning a coroutine that runs the same work on the shared tokio
//! runtime ([`aio`]). The work and the conversion of its output are written once, as the
//! `*_work` / `to_*` pairs below, and used by both.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;
use rollback_core::db::Revision;
use rollback_core::plan::{Level, RunKind};
use rollback_core::{Error, RunOptions, RunOutcome, UndoOptions};

use crate::aio::{self, job};
use crate::call::{Call, Live, interruptible, on_main_thread, until_stopped};
use crate::callbacks::{Confirm, PyPrompter};
use crate::error::{PyRollbackError, to_pyerr};
use crate::known_good::KnownGood;
use crate::observer::PyObserver;
use crate::results::{Assessment, DryRunResult, Plan, Rehearsal, RunResult, RunSummary, VerificationReport, to_data};

type Core = Arc<rollback_core::Rollback>;
type CoreResult<T> = rollback_core::Result<T>;

fn parse_level(level: Option<&str>) -> PyResult<Option<Level>> {
    match level {
        None => Ok(None),
        Some("fast") => Ok(Some(Level::Fast)),
        Some("full") => Ok(Some(Level::Full)),
        Some("manual") => Ok(Some(Level::Manual)),
        Some(other) => Err(PyRollbackError(Error::usage(
            format!("unknown rollback level `{other}`"),
            Some("use \"fast\", \"full\" or \"manual\" (or None for the recommended level)".into()),
        ))
        .into()),
    }
}

fn parse_severity(severity: Option<&str>) -> PyResult<Option<rollback_core::journal::Severity>> {
    severity.map(str::parse).transpose().map_err(|e| PyRollbackError(e).into())
}

/// The prompter and observer of one call, and the call they share.
struct Callbacks {
    prompter: PyPrompter,
    observer: PyObserver,
    call: Arc<Call>,
}

impl Callbacks {
    /// `is_async` for the `a*` methods (their callbacks may be async; no Ctrl-C watch).
    fn new(
        py: Python<'_>,
        confirm: Confirm,
        on_event: Option<&Bound<'_, PyAny>>,
        approve: Option<&Bound<'_, PyAny>>,
        is_async: bool,
    ) -> PyResult<Self> {
        let call = Call::new(!is_async && on_main_thread(py)?);
        Ok(Self {
            prompter: PyPrompter::new(confirm, call.clone()).with_approve(approve, is_async)?,
            observer: PyObserver::new(on_event, call.clone())?,
            call,
        })
    }
}

/// The options of a run, from `run`/`arun`'s arguments.
#[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)]
fn run_options(
    level: Option<&str>,
    target: Option<String>,
    dry_run: bool,
    allow_non_ancestor: bool,
    reason: Option<String>,
    severity: Option<&str>,
    allow_irreversible: bool,
    actor: Option<String>,
    database_only: bool,
) -> PyResult<RunOptions> {
    Ok(RunOptions {
        level: parse_level(level)?,
        target,
        dry_run,
        allow_non_ancestor,
        reason,
        severity: parse_severity(severity)?,
        allow_irreversible,
        actor,
        database_only,
        expect_head: None,
    })
}

/// A manual run without an `approve` callback would run every step unasked.
fn check_manual(opts: &RunOptions, cbs: &Callbacks) -> PyResult<()> {
    if opts.level == Some(Level::Manual) && !opts.dry_run && !cbs.prompter.has_approve() {
        return Err(PyRollbackError(Error::usage(
            "a manual rollback asks before every step: pass `approve=callable(step) -> bool | str`".to_owned(),
            Some("or use level=\"full\" to run every step".into()),
        ))
        .into());
    }
    Ok(())
}

/// The Python result of a run: `RunResult`, or `DryRunResult` for a dry run; or the exception
/// parked during the call (a callback's, `KeyboardInterrupt`, `AbortRollback`), with the run's
/// `run_id` and `result` attached when the run happened.
fn finish(py: Python<'_>, call: &Call, result: CoreResult<RunOutcome>) -> PyResult<Py<PyAny>> {
    // Ctrl-C after the last step boundary: the run is over, say so with the exception.
    let parked = call.take_parked().or_else(|| if call.signals { py.check_signals().err() } else { None });
    let result = result.map_err(|e| to_pyerr(py, &e));
    let Some(err) = parked else {
        let outcome = result?;
        if outcome.run_id.is_none() {
            return Ok(Py::new(py, DryRunResult::new(&outcome)?)?.into_any());
        }
        return Ok(Py::new(py, RunResult::new(&outcome)?)?.into_any());
    };
    if let Ok(outcome) = &result
        && let Some(run_id) = &outcome.run_id
    {
        let value = err.value(py);
        let _ = value.setattr("run_id", run_id);
        let _ = value.setattr("result", Py::new(py, RunResult::new(outcome)?)?);
        let note = if outcome.status == rollback_core::journal::RunStatus::Cancelled {
            format!(
                "forge-rollback: run {run_id} stopped at a step boundary, status cancelled; undo(\"{run_id}\") puts everything back, resume(\"{run_id}\") finishes it"
            )
        } else {
            format!("forge-rollback: run {run_id} had ended, status {}", outcome.status)
        };
        let _ = value.call_method1("add_note", (note,));
    }
    Err(err)
}

/// A sync run: the engine without the GIL, registered as live (interpreter exit waits for it).
fn drive(
    py: Python<'_>,
    cbs: &Callbacks,
    work: impl FnOnce(&Callbacks) -> CoreResult<RunOutcome> + Send,
) -> PyResult<Py<PyAny>> {
    let live = Live::register(&cbs.call);
    let result = py.detach(|| work(cbs));
    let out = finish(py, &cbs.call, result);
    drop(live);
    out
}

/// An async run: the same work as a coroutine.
fn drive_async(
    py: Python<'_>,
    cbs: Callbacks,
    work: impl FnOnce(&Callbacks) -> CoreResult<RunOutcome> + Send + 'static,
) -> PyResult<Bound<'_, PyAny>> {
    let call = cbs.call.clone();
    aio::coroutine(
        py,
        Some(call),
        job(
            move || {
                let result = work(&cbs);
                (cbs, result)
            },
            |py, (cbs, result)| finish(py, &cbs.call, result),
        ),
    )
}

fn to_obj<T: pyo3::PyClass + Into<pyo3::PyClassInitializer<T>>>(
    py: Python<'_>,
    value: PyResult<T>,
) -> PyResult<Py<PyAny>> {
    Ok(Py::new(py, value?)?.into_any())
}

fn core_err(py: Python<'_>) -> impl Fn(Error) -> PyErr + '_ {
    move |e| to_pyerr(py, &e)
}

fn to_assessment(py: Python<'_>, r: CoreResult<rollback_core::assess::Assessment>) -> PyResult<Py<PyAny>> {
    to_obj(py, Assessment::new(&r.map_err(core_err(py))?))
}

fn to_plan(py: Python<'_>, r: CoreResult<rollback_core::plan::Plan>) -> PyResult<Py<PyAny>> {
    to_obj(py, Plan::new(&r.map_err(core_err(py))?))
}

fn to_report(py: Python<'_>, r: CoreResult<rollback_core::verify::VerificationReport>) -> PyResult<Py<PyAny>> {
    to_obj(py, VerificationReport::new(&r.map_err(core_err(py))?))
}

/// The options of a rehearsal, from `rehearse`/`arehearse`'s arguments.
fn rehearse_options(
    level: Option<&str>,
    target: Option<String>,
    allow_non_ancestor: bool,
    allow_irreversible: bool,
) -> PyResult<rollback_core::RehearseOptions> {
    Ok(rollback_core::RehearseOptions { level: parse_level(level)?, target, allow_non_ancestor, allow_irreversible })
}

/// A rehearsal's result, or the exception parked during it (`AbortRollback` from `on_event`,
/// Ctrl-C). Nothing real was written either way, so there is no run to attach.
fn finish_rehearsal(py: Python<'_>, call: &Call, result: CoreResult<rollback_core::Rehearsal>) -> PyResult<Py<PyAny>> {
    let parked = call.take_parked().or_else(|| if call.signals { py.check_signals().err() } else { None });
    let result = result.map_err(core_err(py));
    if let Some(err) = parked {
        return Err(err);
    }
    to_obj(py, Rehearsal::new(&result?))
}

fn to_runs(py: Python<'_>, r: CoreResult<Vec<rollback_core::RunSummary>>) -> PyResult<Py<PyAny>> {
    let runs = r.map_err(core_err(py))?;
    let list: Vec<Py<RunSummary>> = runs.iter().map(|s| Py::new(py, RunSummary::new(s)?)).collect::<PyResult<_>>()?;
    Ok(pyo3::types::PyList::new(py, list)?.into_any().unbind())
}

fn to_details(py: Python<'_>, r: CoreResult<RunOutcome>) -> PyResult<Py<PyAny>> {
    to_obj(py, RunResult::new(&r.map_err(core_err(py))?))
}

fn to_revisions(py: Python<'_>, r: CoreResult<Vec<Revision>>) -> PyResult<Py<PyAny>> {
    let revs: Vec<String> = r.map_err(core_err(py))?.into_iter().map(|r| r.0).collect();
    Ok(pyo3::types::PyList::new(py, revs)?.into_any().unbind())
}

/// `upgrade_database`'s `to`: one revision as a `str`, or a sequence of them. A `str` is a
/// sequence too, and must never be read as one revision per character.
fn revisions_arg(to: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<Revision>> {
    let Some(to) = to.filter(|t| !t.is_none()) else { return Ok(Vec::new()) };
    if let Ok(one) = to.cast::<pyo3::types::PyString>() {
        return Ok(vec![Revision(one.to_str()?.to_owned())]);
    }
    let revs: Vec<String> = to.extract().map_err(|_| {
        let kind = to.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        pyo3::exceptions::PyTypeError::new_err(format!(
            "to must be a revision (str) or a list of revisions, not {kind}"
        ))
    })?;
    Ok(revs.into_iter().map(Revision).collect())
}

/// The stop check of an upgrade: the call's cancel (an asyncio task cancelled, Ctrl-C seen
/// by [`until_stopped`], interpreter exit).
fn stop_check(call: &Arc<Call>) -> rollback_core::db::StopCheck {
    let call = call.clone();
    Arc::new(move || call.cancelled())
}

/// The revisions an upgrade left the database at; what it did not do (a revision it is
/// already past) is said on the `forge_rollback` logger first, as a warning.
fn to_upgrade(py: Python<'_>, r: CoreResult<rollback_core::DatabaseUpgrade>) -> PyResult<Py<PyAny>> {
    let done = r.map_err(core_err(py))?;
    for message in done.notes {
        crate::observer::log_warning(py, message)?;
    }
    to_revisions(py, Ok(done.revisions))
}

fn report_work(core: &Core, run_id: &str, format: &str) -> CoreResult<String> {
    if format != "md" && format != "json" {
        return Err(Error::usage(format!("unknown report format `{format}`"), Some("use \"md\" or \"json\"".into())));
    }
    let report = core.report(run_id)?;
    Ok(if format == "json" { report.to_json() } else { report.to_markdown() })
}

fn to_text(py: Python<'_>, r: CoreResult<String>) -> PyResult<Py<PyAny>> {
    Ok(pyo3::types::PyString::new(py, &r.map_err(core_err(py))?).into_any().unbind())
}

/// A path argument: `str`, `bytes` or `os.PathLike` (`os.fsdecode` reads it, so the message
/// for anything else names what is accepted, and bytes that are not UTF-8 keep their bytes).
fn path_arg(value: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    value.py().import("os")?.call_method1("fsdecode", (value,))?.extract()
}

/// A git repository opened for rollbacks (`Rollback.open(path)`).
#[pyclass(module = "forge_rollback._forge_rollback", frozen)]
pub struct Rollback {
    core: Core,
}

#[pymethods]
impl Rollback {
    /// Opens the repository containing `dir`, with its `forge-rollback.toml` or `config`.
    /// Both are `str`, `bytes` or `os.PathLike`; a relative `config` is relative to the
    /// current directory, as every Python file API reads it (not to `dir`).
    #[staticmethod]
    #[pyo3(signature = (dir, config = None))]
    fn open(py: Python<'_>, dir: &Bound<'_, PyAny>, config: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let dir = path_arg(dir)?;
        let config = config.filter(|c| !c.is_none()).map(path_arg).transpose()?;
        let config = config
            .map(|c| {
                std::path::absolute(&c)
                    .map_err(|e| PyRollbackError(rollback_core::IoError::new("resolve", c, e).into()))
            })
            .transpose()?;
        let core = py.detach(|| rollback_core::Rollback::open(&dir, config.as_deref())).map_err(PyRollbackError)?;
        // What the configuration holds that works but not as one may expect (a secret too
        // short to be scrubbed): said once, as the CLI says it, on the `forge_rollback` logger.
        // An ordinary warning event, as the CLI's `open` logs it: the record carries
        // `forge_rollback_event` like every other on that logger.
        for message in core.config().warnings() {
            crate::observer::log_warning(py, message)?;
        }
        Ok(Self { core: Arc::new(core) })
    }

    /// The work tree's root.
    #[getter]
    fn workdir(&self) -> std::ffi::OsString {
        // A `str` (as the stub says and `Assessment.workdir` is), not a `pathlib.Path`; a
        // folder name that is not UTF-8 comes through as `os.fsdecode` gives it.
        self.core.workdir().as_os_str().to_owned()
    }

    /// The known-good registry of this repository.
    #[getter]
    fn known_good(&self) -> KnownGood {
        KnownGood::new(self.core.clone())
    }

    /// `known_good.list()` as a coroutine.
    fn aknown_good<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        KnownGood::new(self.core.clone()).alist(py)
    }

    /// Assesses a rollback to `target` (default: the newest verified known-good commit).
    #[pyo3(signature = (target = None))]
    fn assess(&self, py: Python<'_>, target: Option<&str>) -> PyResult<Py<PyAny>> {
        let (core, target) = (self.core.clone(), target.map(str::to_owned));
        to_assessment(py, interruptible(py, move || core.assess(target.as_deref()))?)
    }

    /// `assess` as a coroutine.
    #[pyo3(signature = (target = None))]
    fn aassess<'py>(&self, py: Python<'py>, target: Option<String>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        aio::coroutine(py, None, job(move || core.assess(target.as_deref()), to_assessment))
    }

    /// Plans a rollback at `level` (`"fast"`, `"full"`, `"manual"`; default: recommended);
    /// `database_only`: only the database part of a full rollback (`run(database_only=True)`).
    #[pyo3(signature = (level = None, target = None, *, database_only = false))]
    fn plan(
        &self,
        py: Python<'_>,
        level: Option<&str>,
        target: Option<String>,
        database_only: bool,
    ) -> PyResult<Py<PyAny>> {
        let opts = RunOptions { level: parse_level(level)?, target, database_only, ..RunOptions::default() };
        let core = self.core.clone();
        to_plan(py, interruptible(py, move || core.plan_with(&opts))?)
    }

    /// `plan` as a coroutine (a full plan asks Alembic for its SQL: never on the loop).
    #[pyo3(signature = (level = None, target = None, *, database_only = false))]
    fn aplan<'py>(
        &self,
        py: Python<'py>,
        level: Option<&str>,
        target: Option<String>,
        database_only: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts = RunOptions { level: parse_level(level)?, target, database_only, ..RunOptions::default() };
        let core = self.core.clone();
        aio::coroutine(py, None, job(move || core.plan_with(&opts), to_plan))
    }

    /// Runs a rollback at `level` (`"fast"`, `"full"`, `"manual"`; default: the assessment's
    /// recommendation) to `target` (default: the newest verified known-good commit).
    ///
    /// `confirm` is required (except for a dry run): `True`, `"yes"`, or
    /// `callable(summary, plan) -> bool | str` answering `True`/`"yes"` (go) or `False`
    /// (decline: `CancelledError`, nothing changed); any other answer is a `ValueError`.
    /// `on_event` receives every engine event as a dict (they also go to the
    /// `forge_rollback` logger); `approve` (required for `"manual"`) is asked before each step.
    #[pyo3(
        signature = (level = None, target = None, *, confirm = None, on_event = None, dry_run = false, allow_non_ancestor = false, reason = None, severity = None, approve = None, allow_irreversible = false, actor = None, database_only = false)
    )]
    #[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)] // Python keyword arguments
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
        actor: Option<String>,
        database_only: bool,
    ) -> PyResult<Py<PyAny>> {
        let opts = run_options(
            level,
            target,
            dry_run,
            allow_non_ancestor,
            reason,
            severity,
            allow_irreversible,
            actor,
            database_only,
        )?;
        let confirm = Confirm::from_arg(confirm, dry_run, false, "run")?;
        let cbs = Callbacks::new(py, confirm, on_event, approve, false)?;
        check_manual(&opts, &cbs)?;
        crate::inprocess::warn_sqlite_in_process(py, &self.core, &opts)?;
        let core = &self.core;
        drive(py, &cbs, |cbs| core.run(&opts, &cbs.prompter, &cbs.observer))
    }

    /// `run` as a coroutine; async callbacks (`confirm`, `on_event`, `approve`) are awaited on
    /// the caller's loop. Cancelling the task stops the run at its next step boundary.
    #[pyo3(
        signature = (level = None, target = None, *, confirm = None, on_event = None, dry_run = false, allow_non_ancestor = false, reason = None, severity = None, approve = None, allow_irreversible = false, actor = None, database_only = false)
    )]
    #[allow(clippy::too_many_arguments, clippy::fn_params_excessive_bools)] // Python keyword arguments
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
        actor: Option<String>,
        database_only: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts = run_options(
            level,
            target,
            dry_run,
            allow_non_ancestor,
            reason,
            severity,
            allow_irreversible,
            actor,
            database_only,
        )?;
        let confirm = Confirm::from_arg(confirm, dry_run, true, "arun")?;
        let cbs = Callbacks::new(py, confirm, on_event, approve, true)?;
        check_manual(&opts, &cbs)?;
        crate::inprocess::warn_sqlite_in_process(py, &self.core, &opts)?;
        let core = self.core.clone();
        drive_async(py, cbs, move |cbs| core.run(&opts, &cbs.prompter, &cbs.observer))
    }

    /// Undoes run `run_id`: puts back the snapshot it took (itself a run, undoable).
    /// `confirm` is required, as for `run`; `actor` is recorded as for `run`. When rows were
    /// written since the run, the undo keeps them (the schema is brought forward and only what
    /// the downgrade dropped is put back) or refuses; `restore_snapshot=True` instead keeps the
    /// database as it is in a dump in the state folder, then restores the run's snapshot.
    #[pyo3(signature = (run_id, *, confirm, on_event = None, actor = None, restore_snapshot = false))]
    fn undo(
        &self,
        py: Python<'_>,
        run_id: &str,
        confirm: &Bound<'_, PyAny>,
        on_event: Option<&Bound<'_, PyAny>>,
        actor: Option<String>,
        restore_snapshot: bool,
    ) -> PyResult<Py<PyAny>> {
        let confirm = Confirm::from_arg(Some(confirm), false, false, "undo")?;
        let cbs = Callbacks::new(py, confirm, on_event, None, false)?;
        let core = &self.core;
        let opts = UndoOptions { restore_snapshot, actor };
        drive(py, &cbs, |cbs| core.undo_with(run_id, &opts, &cbs.prompter, &cbs.observer))
    }

    /// `undo` as a coroutine.
    #[pyo3(signature = (run_id, *, confirm, on_event = None, actor = None, restore_snapshot = false))]
    fn aundo<'py>(
        &self,
        py: Python<'py>,
        run_id: String,
        confirm: &Bound<'_, PyAny>,
        on_event: Option<&Bound<'_, PyAny>>,
        actor: Option<String>,
        restore_snapshot: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let confirm = Confirm::from_arg(Some(confirm), false, true, "aundo")?;
        let cbs = Callbacks::new(py, confirm, on_event, None, true)?;
        let core = self.core.clone();
        let opts = UndoOptions { restore_snapshot, actor };
        drive_async(py, cbs, move |cbs| core.undo_with(&run_id, &opts, &cbs.prompter, &cbs.observer))
    }

    /// Finishes an interrupted, failed or cancelled run from its first unfinished step. A
    /// manual run asks `approve` before each remaining step; without `approve` it raises
    /// `ConfigError` and nothing changes (`approve=lambda step: True` runs the rest unasked).
    #[pyo3(signature = (run_id, *, on_event = None, approve = None))]
    fn resume(
        &self,
        py: Python<'_>,
        run_id: &str,
        on_event: Option<&Bound<'_, PyAny>>,
        approve: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let cbs = Callbacks::new(py, Confirm::Yes, on_event, approve, false)?;
        let core = &self.core;
        drive(py, &cbs, |cbs| resume_work(core, run_id, cbs))
    }

    /// `resume` as a coroutine.
    #[pyo3(signature = (run_id, *, on_event = None, approve = None))]
    fn aresume<'py>(
        &self,
        py: Python<'py>,
        run_id: String,
        on_event: Option<&Bound<'_, PyAny>>,
        approve: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let cbs = Callbacks::new(py, Confirm::Yes, on_event, approve, true)?;
        let core = self.core.clone();
        drive_async(py, cbs, move |cbs| resume_work(&core, &run_id, cbs))
    }

    /// Rehearses a rollback at `level` to `target` (defaults as for `run`) and its undo on a
    /// throwaway copy of the work tree, `.git`, the state folder and the database; nothing real
    /// is written, so no `confirm` is asked. Steps that reach real services (restart, deploy,
    /// promote, verify) are reported as not rehearsed. A rehearsal that fails is a result
    /// (`passed` is `False`), not an exception. `on_event` receives the runs' events on the copy.
    #[pyo3(signature = (level = None, target = None, *, on_event = None, allow_non_ancestor = false, allow_irreversible = false))]
    fn rehearse(
        &self,
        py: Python<'_>,
        level: Option<&str>,
        target: Option<String>,
        on_event: Option<&Bound<'_, PyAny>>,
        allow_non_ancestor: bool,
        allow_irreversible: bool,
    ) -> PyResult<Py<PyAny>> {
        let opts = rehearse_options(level, target, allow_non_ancestor, allow_irreversible)?;
        let call = Call::new(on_main_thread(py)?);
        let observer = PyObserver::new(on_event, call.clone())?;
        let core = &self.core;
        let live = Live::register(&call);
        let result = py.detach(|| core.rehearse(&opts, &observer));
        let out = finish_rehearsal(py, &call, result);
        drop(live);
        out
    }

    /// `rehearse` as a coroutine; an async `on_event` is awaited on the caller's loop.
    /// Cancelling the task stops the rehearsal at its next step boundary.
    #[pyo3(signature = (level = None, target = None, *, on_event = None, allow_non_ancestor = false, allow_irreversible = false))]
    fn arehearse<'py>(
        &self,
        py: Python<'py>,
        level: Option<&str>,
        target: Option<String>,
        on_event: Option<&Bound<'_, PyAny>>,
        allow_non_ancestor: bool,
        allow_irreversible: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        let opts = rehearse_options(level, target, allow_non_ancestor, allow_irreversible)?;
        let call = Call::new(false);
        let observer = PyObserver::new(on_event, call.clone())?;
        let core = self.core.clone();
        aio::coroutine(
            py,
            Some(call.clone()),
            job(move || core.rehearse(&opts, &observer), move |py, result| finish_rehearsal(py, &call, result)),
        )
    }

    /// Runs the configured service checks now, concurrently (`forge-rollback verify --json`);
    /// `checks` limits them to those names. A failing check is a result (`passed` is
    /// `False`), not an exception; `report.raise_for_status()` raises `VerificationError`.
    #[pyo3(signature = (checks = None))]
    #[allow(clippy::needless_pass_by_value)] // PyO3 extracts a list of str as Vec<String>
    fn verify(&self, py: Python<'_>, checks: Option<Vec<String>>) -> PyResult<Py<PyAny>> {
        let core = self.core.clone();
        to_report(py, interruptible(py, move || core.verify(checks.as_deref()))?)
    }

    /// `verify` as a coroutine.
    #[pyo3(signature = (checks = None))]
    fn averify<'py>(&self, py: Python<'py>, checks: Option<Vec<String>>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        aio::coroutine(py, None, job(move || core.verify(checks.as_deref()), to_report))
    }

    /// Upgrades the configured database to `to` (default: the heads of the work tree's
    /// migration files; one revision as a `str`, or a list) with the work tree's migration
    /// files; returns the revisions it is at afterwards. For preparing a database (a fresh
    /// deploy, tests): a rollback never upgrades, and neither does this go down: a revision
    /// the database is already past is left as it is, with a warning on the `forge_rollback`
    /// logger. Ctrl-C on the main thread stops it between two migrations.
    #[pyo3(signature = (to = None))]
    fn upgrade_database(&self, py: Python<'_>, to: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let (core, to) = (self.core.clone(), revisions_arg(to)?);
        let call = Call::new(false);
        let stop = stop_check(&call);
        to_upgrade(py, until_stopped(py, &call, move || core.upgrade_database_unless(&to, &stop))?)
    }

    /// `upgrade_database` as a coroutine; cancelling the task stops the upgrade between two
    /// migrations (the lock released), then raises `CancelledError`.
    #[pyo3(signature = (to = None))]
    fn aupgrade_database<'py>(&self, py: Python<'py>, to: Option<&Bound<'_, PyAny>>) -> PyResult<Bound<'py, PyAny>> {
        let (core, to) = (self.core.clone(), revisions_arg(to)?);
        let call = Call::new(false);
        let stop = stop_check(&call);
        aio::coroutine(py, Some(call), job(move || core.upgrade_database_unless(&to, &stop), to_upgrade))
    }

    /// Every run, oldest first (`forge-rollback runs list --json`).
    fn runs(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let core = &self.core;
        to_runs(py, py.detach(|| core.runs()))
    }

    /// `runs` as a coroutine.
    fn aruns<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        aio::coroutine(py, None, job(move || core.runs(), to_runs))
    }

    /// One run's outcome: the `outcome` of `forge-rollback runs show --json`.
    fn run_details(&self, py: Python<'_>, run_id: &str) -> PyResult<Py<PyAny>> {
        let core = &self.core;
        to_details(py, py.detach(|| core.run_details(run_id).map(|d| d.0)))
    }

    /// `run_details` as a coroutine.
    fn arun_details<'py>(&self, py: Python<'py>, run_id: String) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        aio::coroutine(py, None, job(move || core.run_details(&run_id).map(|d| d.0), to_details))
    }

    /// The incident report of a run: Markdown (`format="md"`, the runbook's template) or JSON
    /// text (`format="json"`), as `forge-rollback report RUN` prints it.
    #[pyo3(signature = (run_id, format = "md"))]
    fn report(&self, py: Python<'_>, run_id: &str, format: &str) -> PyResult<Py<PyAny>> {
        let core = &self.core;
        to_text(py, py.detach(|| report_work(core, run_id, format)))
    }

    /// `report` as a coroutine.
    #[pyo3(signature = (run_id, format = "md"))]
    fn areport<'py>(&self, py: Python<'py>, run_id: String, format: &str) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        let format = format.to_owned();
        aio::coroutine(py, None, job(move || report_work(&core, &run_id, &format), to_text))
    }

    /// Every backup snapshot, oldest first, as dicts (`forge-rollback backups list --json`).
    fn backups(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let core = &self.core;
        to_data(py, py.detach(|| core.backups()))
    }

    /// `backups` as a coroutine.
    fn abackups<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        aio::coroutine(py, None, job(move || core.backups(), to_data))
    }

    /// Re-hashes every blob of every snapshot; a dict whose `problems` list is empty when all
    /// is well (`forge-rollback backups verify --json`).
    fn verify_backups(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let core = &self.core;
        to_data(py, py.detach(|| core.verify_backups(None)))
    }

    /// `verify_backups` as a coroutine.
    fn averify_backups<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        aio::coroutine(py, None, job(move || core.verify_backups(None), to_data))
    }

    /// Who holds the run lock (`{"pid", "host", "started_at", "command"}`), or `None`.
    fn lock_holder(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let core = &self.core;
        to_data(py, py.detach(|| core.lock_holder()))
    }

    /// `lock_holder` as a coroutine.
    fn alock_holder<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let core = self.core.clone();
        aio::coroutine(py, None, job(move || core.lock_holder(), to_data))
    }

    fn __repr__(&self) -> String {
        format!("Rollback.open({:?})", self.core.workdir().display().to_string())
    }
}

/// Resumes `run_id`: a manual rollback asks `approve` before each remaining step, and without
/// it is refused before anything changes (as `run("manual")` is; the CLI asks on its terminal,
/// and only `--yes` runs them unasked).
fn resume_work(core: &rollback_core::Rollback, run_id: &str, cbs: &Callbacks) -> CoreResult<RunOutcome> {
    if cbs.prompter.has_approve() {
        return core.resume_with(run_id, &cbs.prompter, &cbs.observer);
    }
    // The engine asks per step exactly for a manual rollback (engine/resume.rs).
    let (run, _, _) = core.run_details(run_id)?;
    if run.kind == RunKind::Rollback && run.level == Some(Level::Manual) {
        return Err(Error::usage(
            format!("run {run_id} is a manual rollback: resuming it asks before each remaining step, and no `approve` was given"),
            Some(format!("pass `approve=callable(step) -> bool | str` to resume(\"{run_id}\"); `approve=lambda step: True` runs the rest unasked").into()),
        ));
    }
    core.resume(run_id, &cbs.observer)
}
