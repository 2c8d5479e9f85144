//! Result classes: read-only views over the core's serde values.
//!
//! Each keeps the exact `serde_json::to_string_pretty` text the CLI prints for `--json`, so
//! `to_json()` is byte-for-byte the CLI's output and `to_dict()` is `json.loads` of it; the
//! attributes read from the same JSON.

// PyO3's expansion of `#[classmethod]` inside `result_class!` casts pointers.
#![allow(clippy::ptr_as_ptr, clippy::borrow_as_ptr, clippy::ref_as_ptr)]

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyAny;
use rollback_core::hint::{Action, Frontend, Hint, Part};
use serde::Serialize;

use crate::error::{CancelledError, PyRollbackError, StepFailedError, VerificationError, annotate};

/// `json.loads(text)`.
pub fn json_loads(py: Python<'_>, text: &str) -> PyResult<Py<PyAny>> {
    static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let loads = LOADS.get_or_try_init(py, || py.import("json")?.getattr("loads").map(Bound::unbind))?;
    loads.call1(py, (text,))
}

/// A core result serialized as the CLI prints it (`--json`), as Python data.
pub fn to_data<T: Serialize>(py: Python<'_>, r: rollback_core::Result<T>) -> PyResult<Py<PyAny>> {
    to_py(py, &r.map_err(|e| crate::error::to_pyerr(py, &e))?)
}

/// A value as Python data, through its serde JSON.
pub fn to_py<T: Serialize>(py: Python<'_>, value: &T) -> PyResult<Py<PyAny>> {
    json_loads(py, &to_json_text(value)?)
}

fn to_json_text<T: Serialize>(value: &T) -> PyResult<String> {
    serde_json::to_string_pretty(value).map_err(|e| {
        PyRollbackError(rollback_core::Error::usage(format!("cannot serialize the result: {e}"), None)).into()
    })
}

/// The JSON of one result: the pretty text and the parsed value.
#[derive(Debug)]
pub struct Json {
    text: String,
    value: serde_json::Value,
}

impl Json {
    pub fn new<T: Serialize>(value: &T) -> PyResult<Self> {
        let text = to_json_text(value)?;
        let value = serde_json::from_str(&text).map_err(|e| {
            PyRollbackError(rollback_core::Error::usage(format!("cannot read back the result: {e}"), None))
        })?;
        Ok(Self { text, value })
    }

    /// The value of `key`. A key the core's JSON does not have at all (not even as `null`)
    /// is an error, not a silent `None`: a field renamed in the core must fail the tests of
    /// the getter that reads it. Only keys the core leaves out when empty may be absent.
    fn field(&self, py: Python<'_>, key: &str) -> PyResult<Py<PyAny>> {
        /// Serialized only when present (`RunOutcome::plan`: dry runs; `Assessment::production`:
        /// a platform strategy).
        const MAY_BE_ABSENT: &[&str] = &["plan", "production"];
        match self.value.get(key) {
            None if !MAY_BE_ABSENT.contains(&key) => Err(pyo3::exceptions::PyRuntimeError::new_err(format!(
                "the result has no field `{key}`: forge_rollback and rollback-core disagree (a bug; please report it)"
            ))),
            None | Some(serde_json::Value::Null) => Ok(py.None()),
            Some(v) => json_loads(py, &v.to_string()),
        }
    }

    /// The object at `key` as a result class (`None` when absent or null).
    fn sub<C: pyo3::PyClass + Into<pyo3::PyClassInitializer<C>>>(
        &self,
        py: Python<'_>,
        key: &str,
        make: fn(&serde_json::Value) -> PyResult<C>,
    ) -> PyResult<Option<Py<C>>> {
        match self.value.get(key) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(v) => Ok(Some(Py::new(py, make(v)?)?)),
        }
    }

    /// A file-system path at `key`, as a Python `str` (`os.fsdecode` of its bytes): the JSON
    /// holds a string, or the list of its bytes when it is not UTF-8.
    fn path_field(&self, key: &str) -> PyResult<std::ffi::OsString> {
        let typed = self.value.get(key).and_then(|v| rollback_core::paths::os_path::deserialize(v.clone()).ok());
        typed.map(std::path::PathBuf::into_os_string).ok_or_else(|| {
            pyo3::exceptions::PyRuntimeError::new_err(format!(
                "the result has no path `{key}`: forge_rollback and rollback-core disagree (a bug; please report it)"
            ))
        })
    }

    fn str_field(&self, key: &str) -> String {
        match self.value.get(key) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => "None".to_owned(),
            Some(other) => other.to_string(),
        }
    }
}

/// Defines a frozen result class over [`Json`] with one getter per listed JSON key.
///
/// Every class is a value: `==` and `hash` by its JSON, pickling and `copy.deepcopy`
/// (through `from_json`), `to_dict()`, `to_json()`, and `from_dict()` / `from_json()` to make
/// one in a test (checked against the core's own type, so a fake cannot have a shape a real
/// result never has).
macro_rules! result_class {
    (
        $(#[$doc:meta])*
        $name:ident($core:ty), repr = [$($repr:literal),*], $(check = $check:path,)? {
            $($(#[$fdoc:meta])* $getter:ident => $key:literal),* $(,)?
        }
        $(methods { $($methods:tt)* })?
    ) => {
        $(#[$doc])*
        #[pyclass(module = "forge_rollback._forge_rollback", frozen)]
        #[derive(Debug)]
        pub struct $name {
            json: Json,
        }

        impl $name {
            pub fn new<T: Serialize>(value: &T) -> PyResult<Self> {
                Ok(Self { json: Json::new(value)? })
            }

            /// One made from a part of another result's JSON, read back as the core's type
            /// first: its `to_json()` is then the CLI's text (the core's field order), not
            /// the generic value's (sorted keys).
            pub fn from_value(value: &serde_json::Value) -> PyResult<Self> {
                let typed: $core = serde_json::from_value(value.clone()).map_err(|e| {
                    pyo3::exceptions::PyRuntimeError::new_err(format!(
                        concat!("not a ", stringify!($name), " ({}): forge_rollback and rollback-core disagree (a bug; please report it)"),
                        e
                    ))
                })?;
                Self::new(&typed)
            }
        }

        // `from_commit` is an attribute name, not a conversion.
        #[allow(clippy::wrong_self_convention)]
        #[pymethods]
        impl $name {
            $(
                $(#[$fdoc])*
                #[getter]
                fn $getter(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                    self.json.field(py, $key)
                }
            )*

            /// A plain dict: `json.loads(self.to_json())`.
            fn to_dict(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
                json_loads(py, &self.json.text)
            }

            /// The pretty-printed JSON the CLI prints with `--json`.
            fn to_json(&self) -> String {
                self.json.text.clone()
            }

            /// One made from `to_json()` text (tests, pickling); the text must have the
            /// shape the core writes, else `ValueError`.
            #[classmethod]
            fn from_json(_cls: &Bound<'_, pyo3::types::PyType>, text: &str) -> PyResult<Self> {
                let value: $core = serde_json::from_str(text).map_err(|e| {
                    pyo3::exceptions::PyValueError::new_err(format!(concat!("not a ", stringify!($name), ": {}"), e))
                })?;
                $($check(&value).map_err(|e| {
                    pyo3::exceptions::PyValueError::new_err(format!(concat!("not a ", stringify!($name), ": {}"), e))
                })?;)?
                Self::new(&value)
            }

            /// One made from a `to_dict()` dict (tests); `ValueError` for a shape the core
            /// never writes.
            #[classmethod]
            fn from_dict(cls: &Bound<'_, pyo3::types::PyType>, data: &Bound<'_, PyAny>) -> PyResult<Self> {
                let text: String = cls.py().import("json")?.call_method1("dumps", (data,))?.extract()?;
                Self::from_json(cls, &text)
            }

            fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
                other.cast::<Self>().is_ok_and(|o| o.get().json.value == self.json.value)
            }

            /// By the same content `==` compares (the parsed value, whose keys are sorted),
            /// not by the text: equal results hash equal however they were made.
            fn __hash__(&self) -> u64 {
                use std::hash::{Hash, Hasher};
                let mut h = std::collections::hash_map::DefaultHasher::new();
                self.json.value.to_string().hash(&mut h);
                h.finish()
            }

            fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<(Bound<'py, PyAny>, (String,))> {
                Ok((slf.get_type().getattr("from_json")?, (slf.get().json.text.clone(),)))
            }

            fn __copy__(slf: Py<Self>) -> Py<Self> {
                slf
            }

            fn __deepcopy__(slf: Py<Self>, _memo: &Bound<'_, PyAny>) -> Py<Self> {
                slf
            }

            fn __repr__(&self) -> String {
                let fields: Vec<String> = [$($repr),*].iter().map(|k| format!("{k}={}", self.json.str_field(k))).collect();
                format!("{}({})", stringify!($name), fields.join(", "))
            }

            $($($methods)*)?
        }
    };
}

result_class! {
    /// What a rollback would do and risk (`forge-rollback assess --json`).
    Assessment(rollback_core::assess::Assessment), repr = ["recommended_level", "recommendation"], {
        /// The git backend (`git2` or `git-cli`).
        backend => "backend",
        /// Where HEAD is: `{"commit": ..., "branch": ...}`.
        head => "head",
        /// HEAD's summary line.
        head_summary => "head_summary",
        /// Where a rollback would go (commit, source, registry entry).
        target => "target",
        /// Whether the target is an ancestor of HEAD.
        target_is_ancestor => "target_is_ancestor",
        /// Commits a rollback takes away, newest first (capped).
        commits_rolled_back => "commits_rolled_back",
        /// How many commits a rollback takes away in all.
        commits_rolled_back_total => "commits_rolled_back_total",
        /// Tracked paths that differ between HEAD and the target.
        changes => "changes",
        /// Count of changed paths per category.
        changes_by_category => "changes_by_category",
        /// Uncommitted state.
        dirty => "dirty",
        /// Risks, most serious first.
        risks => "risks",
        /// The level that puts everything that changed back.
        recommended_level => "recommended_level",
        /// Why that level.
        recommendation => "recommendation",
        /// The known-good registry consulted.
        registry => "registry",
        /// The database: current and target revisions, the downgrade path and its risks
        /// (`None` without a `[database]` section).
        database => "database",
        /// The env files: what a full rollback would change, key names only (`None` when
        /// there are none).
        env => "env",
        /// The production target (a platform `[deploy] strategy`): `target`, the `live`
        /// release, the target commit's `release` (each `{"id", "commit", "summary"}`), and
        /// the `problem` when the platform could not be asked or never built the target
        /// (`None` without a platform strategy).
        production => "production",
    }
    methods {
        /// The work tree's root.
        #[getter]
        fn workdir(&self) -> PyResult<std::ffi::OsString> {
            self.json.path_field("workdir")
        }

        /// `production: <target>, <live> -> <release>` (or what is wrong), as `assess` prints
        /// it; `None` without a platform strategy.
        #[getter]
        fn production_line(&self) -> PyResult<Option<String>> {
            match self.json.value.get("production") {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(v) => serde_json::from_value::<rollback_core::assess::ProductionAssessment>(v.clone())
                    .map(|p| Some(p.line()))
                    .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(format!("not a production assessment: {e}"))),
            }
        }
    }
}

result_class! {
    /// The ordered steps of a rollback or undo (`forge-rollback plan --json`).
    Plan(rollback_core::plan::Plan), repr = ["kind", "level", "to"], {
        /// `rollback` or `undo`.
        kind => "kind",
        /// `fast`, `full`, `manual` (rollbacks) or `None`.
        level => "level",
        /// The git backend.
        backend => "backend",
        /// Where HEAD is now: `{"commit": ..., "branch": ...}`.
        from_head => "from",
        /// The commit the run moves to.
        to_commit => "to",
        /// The target's summary line.
        to_summary => "to_summary",
        /// For an undo: the run undone.
        undo_of => "undo_of",
        /// The steps, in order: one dict each, with a `step` key naming it.
        steps => "steps",
        /// What the downgrade would destroy in the live database (the data-loss forecast):
        /// `{"table", "column", "rows", "kind"}`; empty when nothing, or without a downgrade.
        data_loss => "data_loss",
    }
    methods {
        /// The work tree's root.
        #[getter]
        fn workdir(&self) -> PyResult<std::ffi::OsString> {
            self.json.path_field("workdir")
        }

        /// Risks found while planning: `{"code", "severity", "message"}` (a forecast that
        /// could not be made, `data_loss_unknown`; what the downgrade left on the forecast's
        /// copy, `downgrade_warning`; ...). Empty when none (the core leaves the key out then).
        #[getter]
        fn risks(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
            let none = serde_json::Value::Array(Vec::new());
            json_loads(py, &self.json.value.get("risks").unwrap_or(&none).to_string())
        }
    }
}

/// The shape of a run that happened (`RunResult`): a run id, a status other than `planned`.
fn real_run(outcome: &rollback_core::RunOutcome) -> Result<(), String> {
    if outcome.run_id.is_none() || outcome.status == rollback_core::journal::RunStatus::Planned {
        return Err("a run that happened has a `run_id` and a status other than `planned` (a dry run's result is a DryRunResult)".into());
    }
    Ok(())
}

/// The shape of a dry run (`DryRunResult`): no run id, status `planned`, the plan.
fn dry_run(outcome: &rollback_core::RunOutcome) -> Result<(), String> {
    if outcome.run_id.is_some()
        || outcome.status != rollback_core::journal::RunStatus::Planned
        || outcome.plan.is_none()
    {
        return Err(
            "a dry run has no `run_id`, status `planned` and its `plan` (a real run's result is a RunResult)".into()
        );
    }
    Ok(())
}

result_class! {
    /// The result of `run`, `undo` or `resume` (`forge-rollback run --json`).
    RunResult(rollback_core::RunOutcome), repr = ["run_id", "status", "from", "to"], check = real_run, {
        /// The run's id.
        run_id => "run_id",
        /// `rollback` or `undo`.
        kind => "kind",
        /// `succeeded`, `failed`, `verification_failed`, `cancelled`, `undone` or `running`.
        status => "status",
        /// The level of a rollback.
        level => "level",
        /// HEAD before the run.
        from_commit => "from",
        /// The branch before the run.
        branch => "branch",
        /// The commit moved to.
        to_commit => "to",
        /// The snapshot taken before any change (`undo` restores it).
        backup_id => "backup_id",
        /// For an undo: the run undone.
        undo_of => "undo_of",
        /// Start time (RFC 3339).
        started_at => "started_at",
        /// End time (RFC 3339), if finished.
        finished_at => "finished_at",
        /// Wall time in milliseconds.
        duration_ms => "duration_ms",
        /// Steps, in plan order: `{"step", "status", "detail"}`.
        steps => "steps",
        /// Things the operator should know.
        warnings => "warnings",
        /// The error of a failed run, whole chain on one line.
        error => "error",
        /// The run that undid this one (`on_failure = "undo"`, or a manual abort with undo).
        undone_by => "undone_by",
        /// Read back by `run_details`: `running` in its journal, but no process holds the lock
        /// (killed half-way: `resume` or `undo` it). `False` for a run just made.
        interrupted => "interrupted",
    }
    methods {
        /// The verification round at the end of the run, if checks are configured.
        #[getter]
        fn verification(&self, py: Python<'_>) -> PyResult<Option<Py<VerificationReport>>> {
            self.json.sub(py, "verification", VerificationReport::from_value)
        }

        /// The plan (dry runs only).
        #[getter]
        fn plan(&self, py: Python<'_>) -> PyResult<Option<Py<Plan>>> {
            self.json.sub(py, "plan", Plan::from_value)
        }

        /// Raises the error family of a run that did not succeed: `StepFailedError` (status
        /// `failed`, or `running` and `interrupted`), `VerificationError`
        /// (`verification_failed`), `CancelledError` (`cancelled`). Returns `None` for
        /// `succeeded`, `undone` and a run a live process still runs.
        fn raise_for_status(&self, py: Python<'_>) -> PyResult<()> {
            match run_status_error(py, &self.json.value)? {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
    }
}

result_class! {
    /// What `run(..., dry_run=True)` would do: the plan, and the warnings a real run would
    /// give. Nothing was written, so there is no run id.
    DryRunResult(rollback_core::RunOutcome), repr = ["status", "level", "to"], check = dry_run, {
        /// Always `planned`.
        status => "status",
        /// The level the run would have.
        level => "level",
        /// HEAD now.
        from_commit => "from",
        /// The branch now.
        branch => "branch",
        /// The commit the run would move to.
        to_commit => "to",
        /// The steps, all `pending`: `{"step", "status", "detail"}`.
        steps => "steps",
        /// The risks, and the reasons a real run would refuse.
        warnings => "warnings",
    }
    methods {
        /// The plan the run would execute.
        #[getter]
        fn plan(&self, py: Python<'_>) -> PyResult<Py<Plan>> {
            self.json.sub(py, "plan", Plan::from_value)?.ok_or_else(|| {
                pyo3::exceptions::PyRuntimeError::new_err("a dry run without its plan (a bug; please report it)")
            })
        }
    }
}

result_class! {
    /// One verification round (`forge-rollback verify --json`).
    VerificationReport(rollback_core::verify::VerificationReport), repr = ["passed", "duration_ms"], {
        /// Every check passed.
        passed => "passed",
        /// When the round began (RFC 3339).
        started_at => "started_at",
        /// Wall time of the round in milliseconds.
        duration_ms => "duration_ms",
        /// One dict per check: `name`, `kind`, `passed`, `status`, `latency_ms`, `reason`,
        /// `attempts`, and for a `prometheus` check `metric` (`query`, `value`, `baseline`).
        checks => "checks",
    }
    methods {
        /// The names of the checks that did not pass, in config order.
        #[getter]
        fn failed(&self) -> Vec<String> {
            failed_checks(&self.json.value)
        }

        /// Raises `VerificationError` (with this report as `report`) when a check failed;
        /// returns `None` when every check passed.
        fn raise_for_status(slf: &Bound<'_, Self>) -> PyResult<()> {
            let value = &slf.get().json.value;
            if value.get("passed").and_then(serde_json::Value::as_bool) == Some(true) {
                return Ok(());
            }
            let message = format!("verification failed: {}", describe_failures(value));
            Err(verification_error(slf.py(), &message, None, None, slf.clone().into_any().unbind(), failed_checks(value)))
        }
    }
}

result_class! {
    /// One run in `runs()` (`forge-rollback runs list --json`).
    RunSummary(rollback_core::RunSummary), repr = ["run_id", "kind", "status"], {
        /// The run's id.
        run_id => "run_id",
        /// `rollback` or `undo`.
        kind => "kind",
        /// Outcome; `running` with `interrupted` set means it crashed.
        status => "status",
        /// Started, not finished, and nobody holds the lock.
        interrupted => "interrupted",
        /// The level.
        level => "level",
        /// HEAD before.
        from_commit => "from",
        /// The target.
        to_commit => "to",
        /// The snapshot taken before any change.
        backup_id => "backup_id",
        /// For an undo: the run undone.
        undo_of => "undo_of",
        /// The run that undid this one.
        undone_by => "undone_by",
        /// Start time.
        started_at => "started_at",
        /// End time.
        finished_at => "finished_at",
        /// The reason given.
        reason => "reason",
        /// Whether it changed anything (a failed run that did not blocks no new run).
        changed_something => "changed_something",
        /// Why its journal cannot be read to the end (file and line), for a damaged journal;
        /// the other fields then say what the records before the damage say.
        damaged => "damaged",
        /// The work tree it ran in (absolute): clones whose configurations name one state
        /// folder list each other's runs.
        workdir => "workdir",
        /// It ran in another work tree (or repository) than this one: `undo` and `resume`
        /// refuse it here.
        other_worktree => "other_worktree",
    }
}

result_class! {
    /// A rollback and its undo rehearsed on a throwaway copy (`forge-rollback rehearse
    /// --json`): nothing of the real tree, `.git`, state folder or database was written.
    Rehearsal(rollback_core::Rehearsal), repr = ["passed", "level", "to", "undo_identical"], {
        /// The rollback and its undo both succeeded and the undo came back identical.
        passed => "passed",
        /// The level rehearsed.
        level => "level",
        /// HEAD.
        from_commit => "from",
        /// The target.
        to_commit => "to",
        /// The real database, password removed (`None`: none configured, or a fast rehearsal).
        database => "database",
        /// How the database was copied (`sqlite-backup`, `pg-temporary-database`), if it was.
        database_copy => "database_copy",
        /// What the downgrade would destroy in the live database: `{"table", "column", "rows", "kind"}`.
        data_loss => "data_loss",
        /// Why the forecast could not be made (`None`: it was): what the downgrade destroys
        /// is then unknown, not none.
        data_loss_unknown => "data_loss_unknown",
        /// The rollback on the copy: `{"status", "steps", "error", "duration_ms"}`.
        rollback => "rollback",
        /// Its undo on the copy (`None`: the rollback stopped before changing anything).
        undo => "undo",
        /// The copy's tree, HEAD, branch, index and database after the undo are exactly as before.
        undo_identical => "undo_identical",
        /// What the undo did not bring back (paths, `HEAD`, `index`, `database`; at most 20).
        differences => "differences",
        /// Files compared between before and after.
        files_compared => "files_compared",
        /// Wall time of the whole rehearsal (copy included), in milliseconds.
        duration_ms => "duration_ms",
        /// Things to know (steps not rehearsed, warnings of the runs on the copy).
        warnings => "warnings",
    }
}

fn str_of<'a>(v: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(serde_json::Value::as_str)
}

/// The names of the checks of a verification report that did not pass.
fn failed_checks(report: &serde_json::Value) -> Vec<String> {
    report
        .get("checks")
        .and_then(serde_json::Value::as_array)
        .into_iter()
        .flatten()
        .filter(|c| c.get("passed").and_then(serde_json::Value::as_bool) != Some(true))
        .filter_map(|c| str_of(c, "name").map(str::to_owned))
        .collect()
}

/// "1 of 3 check(s): `api` (failed: status 500, expected 200), ...".
fn describe_failures(report: &serde_json::Value) -> String {
    let checks = report.get("checks").and_then(serde_json::Value::as_array).map_or(&[][..], Vec::as_slice);
    let failed: Vec<String> = checks
        .iter()
        .filter(|c| c.get("passed").and_then(serde_json::Value::as_bool) != Some(true))
        .map(|c| {
            format!(
                "`{}` ({}: {})",
                str_of(c, "name").unwrap_or("?"),
                str_of(c, "status").unwrap_or("failed"),
                str_of(c, "reason").unwrap_or("")
            )
        })
        .collect();
    format!("{} of {} check(s) did not pass: {}", failed.len(), checks.len(), failed.join(", "))
}

/// A `VerificationError` with its fields.
fn verification_error(
    py: Python<'_>,
    message: &str,
    hint: Option<&str>,
    run_id: Option<&str>,
    report: Py<PyAny>,
    failed: Vec<String>,
) -> PyErr {
    let err = VerificationError::new_err(message.to_owned());
    let value = err.value(py);
    let _ = value.setattr("run_id", run_id);
    let _ = value.setattr("report", report);
    let _ = value.setattr("failed", failed);
    annotate(value, "failed", hint, message);
    err
}

/// The exception `RunResult.raise_for_status()` raises, if any.
fn run_status_error(py: Python<'_>, run: &serde_json::Value) -> PyResult<Option<PyErr>> {
    let status = str_of(run, "status").unwrap_or("");
    let run_id = str_of(run, "run_id").unwrap_or("?");
    let undone_by = str_of(run, "undone_by");
    let error = str_of(run, "error");
    // In Python's words, built as the core builds its hints.
    let py_words = |parts: Vec<Part>| Hint::from_parts(parts).render(Frontend::Python);
    let undo_hint =
        undone_by.is_none().then(|| py_words(vec!["put everything back with ".into(), Action::undo(run_id).into()]));
    let undone =
        undone_by.map(|u| format!(" (undone {})", rollback_core::journal::undone_by_words(u))).unwrap_or_default();
    let interrupted = run.get("interrupted").and_then(serde_json::Value::as_bool).unwrap_or(false);
    let err = match status {
        // A run a live process still runs (read back with `run_details`): nothing went wrong
        // yet, and "resume or undo it" would be dangerous advice about it.
        "running" if !interrupted => return Ok(None),
        "failed" | "running" => {
            let step = run
                .get("steps")
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
                .find(|s| matches!(str_of(s, "status"), Some("failed" | "interrupted")))
                .and_then(|s| str_of(s, "step"));
            let what = if status == "failed" { "failed" } else { "was interrupted" };
            let at = step.map(|s| format!(" at step `{s}`")).unwrap_or_default();
            let cause = error.map(|e| format!(": {e}")).unwrap_or_default();
            let message = format!("run {run_id} {what}{at}{cause}{undone}");
            let hint = undone_by.is_none().then(|| {
                py_words(vec![
                    "fix the cause, then ".into(),
                    Action::resume(run_id).into(),
                    "; or put everything back with ".into(),
                    Action::undo(run_id).into(),
                ])
            });
            let err = StepFailedError::new_err(message.clone());
            let value = err.value(py);
            let _ = value.setattr("run_id", run_id);
            let _ = value.setattr("step", step);
            annotate(value, "failed", hint.as_deref(), &message);
            err
        }
        "verification_failed" => {
            let report = run.get("verification").cloned().unwrap_or(serde_json::Value::Null);
            let message = format!(
                "run {run_id} finished its steps but verification failed{undone}: {}",
                describe_failures(&report)
            );
            let failed = failed_checks(&report);
            let report = if report.is_null() {
                py.None()
            } else {
                Py::new(py, VerificationReport::from_value(&report)?)?.into_any()
            };
            verification_error(py, &message, undo_hint.as_deref(), Some(run_id), report, failed)
        }
        "cancelled" => {
            let message = format!("run {run_id} was cancelled: {}{undone}", error.unwrap_or("the operator aborted it"));
            let err = CancelledError::new_err(message.clone());
            let value = err.value(py);
            let _ = value.setattr("run_id", run_id);
            annotate(value, "cancelled", undo_hint.as_deref(), &message);
            err
        }
        _ => return Ok(None),
    };
    Ok(Some(err))
}
