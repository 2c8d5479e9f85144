//! Python exceptions of `rollback_core::Error`.
//!
//! One base class, `RollbackError`, and a subclass per error family; every instance carries
//! `kind` (the core's [`ErrorKind`], lowercase), `hint` (what to do, or `None`) and `message`,
//! and each family its own structured fields (always present, `None` when they do not apply):
//!
//! | class | raised for | fields |
//! | --- | --- | --- |
//! | `ConfigError` | kind `usage`: config, registry, revision, arguments, `[database]` config | `path`, `key`, `revision` |
//! | `VcsError` | git failed | `path` |
//! | `BackupError` | the backup store failed | `snapshot`, `path` |
//! | `DatabaseError` | the database or a migration failed | `database` (URL without password), `revision`, `path`, `program` |
//! | `LockHeldError` | kind `locked` | `holder` (dict or `None`), `path` |
//! | `RefusedError` | kind `refused` | `path` (the work-tree file refused, when there is one) |
//! | `CancelledError` | kind `cancelled` | `run_id` |
//! | `StepFailedError` | a step failed (`RunResult.raise_for_status()`); `Error::Service` (restart, deploy); a run stopped half-way because its journal could not be written (`step` `None`) | `run_id`, `step` |
//! | `VerificationError` | checks failed (`raise_for_status()` of a report or a run) | `run_id`, `report`, `failed` |
//!
//! The family follows the error's kind first (a database *config* error is a `ConfigError`,
//! an unreachable database on a run is refused: `RefusedError`), then its origin. Plain I/O
//! errors become the built-in `FileNotFoundError` / `PermissionError` (with `kind`, `hint`
//! and `message` too), like polars' `crates/polars-python/src/error.rs`.
//!
//! `Error::Service` (restart, deploy and the downgrade's own restore) only arises inside a
//! step: the engine records it and the run returns a `RunResult` with status `failed`, which
//! `raise_for_status()` turns into `StepFailedError`; were one to escape the engine it would
//! be a `StepFailedError` too, so `except StepFailedError` catches every failed step.

use std::io;

use pyo3::exceptions::{PyException, PyFileNotFoundError, PyPermissionError};
use pyo3::prelude::*;
use pyo3::types::{PyString, PyType};
use rollback_core::{Error, ErrorKind, IoError, backup, config, db, journal, lock, registry, vcs};

use crate::results::to_py;

pyo3::create_exception!(
    forge_rollback,
    RollbackError,
    PyException,
    "Base class of every forge-rollback error; carries `kind`, `hint` and `message`."
);
pyo3::create_exception!(
    forge_rollback,
    ConfigError,
    RollbackError,
    "Bad usage, configuration, registry, revision or repository (kind `usage`); nothing changed.\n\nFields: `path` (the config or registry file), `key` (the config key), `revision` (a revision that does not resolve)."
);
pyo3::create_exception!(forge_rollback, VcsError, RollbackError, "A git operation failed.\n\nFields: `path`.");
pyo3::create_exception!(
    forge_rollback,
    BackupError,
    RollbackError,
    "The backup store failed.\n\nFields: `snapshot` (the backup id), `path`."
);
pyo3::create_exception!(
    forge_rollback,
    DatabaseError,
    RollbackError,
    "The database or a migration failed (unreachable, migration error, snapshot, `pg_dump`).\n\nFields: `database` (its URL without the password), `revision`, `path` (a migration file), `program`."
);
pyo3::create_exception!(
    forge_rollback,
    LockHeldError,
    RollbackError,
    "Another run holds the lock (kind `locked`); nothing changed.\n\nFields: `holder` (`{\"pid\", \"host\", \"started_at\", \"command\"}` or `None`), `path` (the lock file)."
);
pyo3::create_exception!(
    forge_rollback,
    RefusedError,
    RollbackError,
    "A safety check refused the operation (kind `refused`); nothing changed."
);
pyo3::create_exception!(
    forge_rollback,
    CancelledError,
    RollbackError,
    "The confirmation was declined, or a manual run was aborted (kind `cancelled`).\n\nFields: `run_id` (the aborted run; `None` when nothing started)."
);
pyo3::create_exception!(
    forge_rollback,
    StepFailedError,
    RollbackError,
    "A step of a run failed; the run can be resumed or undone.\n\nFields: `run_id`, `step`."
);
pyo3::create_exception!(
    forge_rollback,
    VerificationError,
    RollbackError,
    "Service checks failed: raised by `raise_for_status()` of a `VerificationReport` or of a run whose status is `verification_failed` (never by `verify()` or `run()` themselves).\n\nFields: `run_id` (`None` for `verify()`), `report` (the `VerificationReport`), `failed` (names of the failed checks)."
);

pyo3::create_exception!(
    forge_rollback,
    AbortRollback,
    PyException,
    "Raise it from an `on_event` callback to stop the run before its next step (journaled `cancelled`, resumable and undoable); the call re-raises it with `run_id` and `result` set. Any other exception from `on_event` is logged and the run goes on."
);

/// Local wrapper so `?` turns a core error into the right Python exception.
#[derive(Debug)]
pub struct PyRollbackError(pub Error);

impl From<Error> for PyRollbackError {
    fn from(e: Error) -> Self {
        Self(e)
    }
}

/// `usage`, `locked`, `refused`, `cancelled`, `failed`.
pub fn kind_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Usage => "usage",
        ErrorKind::Locked => "locked",
        ErrorKind::Refused => "refused",
        ErrorKind::Cancelled => "cancelled",
        _ => "failed",
    }
}

/// The error and its causes on one line, each cause once (as the engine journals it).
fn chain(e: &Error) -> String {
    e.chain()
}

/// The I/O error under a core error that is nothing but an I/O error.
fn plain_io(e: &Error) -> Option<&IoError> {
    match e {
        Error::Io(io)
        | Error::Vcs(vcs::Error::Io(io))
        | Error::Backup(backup::Error::Io(io))
        | Error::Registry(registry::Error::Io(io))
        | Error::Lock(lock::Error::Io(io))
        | Error::Journal(journal::Error::Io(io)) => Some(io),
        _ => None,
    }
}

/// The structured fields an error carries; each exception class sets the ones it declares.
#[derive(Debug, Default)]
struct Fields {
    path: Option<String>,
    key: Option<String>,
    revision: Option<String>,
    snapshot: Option<String>,
    database: Option<String>,
    program: Option<String>,
    run_id: Option<String>,
    step: Option<String>,
    holder: Option<lock::LockHolder>,
}

fn show(p: &std::path::Path) -> String {
    p.display().to_string()
}

impl Fields {
    fn of(e: &Error) -> Self {
        let mut f = Self::default();
        match e {
            Error::Config(c) => match c {
                config::Error::Read { path, .. }
                | config::Error::Parse { path, .. }
                | config::Error::Exists { path } => {
                    f.path = Some(show(path));
                }
                config::Error::Invalid { path, key, .. } => {
                    f.path = Some(show(path));
                    f.key = Some(key.clone());
                }
                _ => {}
            },
            Error::Registry(r) => match r {
                registry::Error::Parse { path, .. } => f.path = Some(show(path)),
                registry::Error::NotListed { path, commit } => {
                    f.path = Some(show(path));
                    f.revision = Some(commit.clone());
                }
                registry::Error::Io(io) => f.path = Some(show(&io.path)),
                registry::Error::BadHash { path, hash, .. } => {
                    f.path = Some(show(path));
                    f.revision = Some(hash.clone());
                }
                _ => {}
            },
            Error::NoTarget { registry, .. } => f.path = Some(show(registry)),
            Error::Vcs(v) => match v {
                vcs::Error::UnknownRevision { rev } | vcs::Error::AmbiguousRevision { rev } => {
                    f.revision = Some(rev.clone());
                }
                vcs::Error::NotARepository { path, .. }
                | vcs::Error::BareRepository { path }
                | vcs::Error::UnsupportedFormat { path, .. } => {
                    f.path = Some(show(path));
                }
                vcs::Error::NotOwned(o) => f.path = Some(show(&o.path)),
                vcs::Error::Io(io) => f.path = Some(show(&io.path)),
                vcs::Error::FilterNotRun { path, .. } => f.path = Some(path.clone()),
                _ => {}
            },
            Error::Backup(b) => match b {
                backup::Error::UnknownSnapshot { id } => f.snapshot = Some(id.clone()),
                backup::Error::MissingBlob { snapshot, path, .. } => {
                    f.snapshot = Some(snapshot.clone());
                    f.path = Some(path.to_string());
                }
                backup::Error::UnsupportedFileType { path, .. } => f.path = Some(path.to_string()),
                backup::Error::UnsafeRestore { path, .. } => f.path = Some(path.clone()),
                backup::Error::BadManifest { path, .. } => f.path = Some(show(path)),
                backup::Error::Io(io) => f.path = Some(show(&io.path)),
                _ => {}
            },
            Error::Db(d) => match d {
                db::Error::Unreachable { database, .. }
                | db::Error::Query { database, .. }
                | db::Error::Snapshot { database, .. } => f.database = Some(database.clone()),
                db::Error::Migration { database, revision, .. } | db::Error::UnknownRevision { database, revision } => {
                    f.database = Some(database.clone());
                    f.revision = Some(revision.clone());
                }
                db::Error::NoPath { database, to, .. } => {
                    f.database = Some(database.clone());
                    f.revision = Some(to.clone());
                }
                db::Error::HotJournal { database, journal, .. } => {
                    f.database = Some(database.clone());
                    f.path = Some(journal.clone());
                }
                db::Error::ClientTooOld { database, tool, .. } => {
                    f.database = Some(database.clone());
                    f.program = Some(tool.clone());
                }
                db::Error::BadMigration { path, .. } => f.path = Some(path.clone()),
                db::Error::Program { program, .. } => f.program = Some(program.clone()),
                db::Error::Vcs { commit, .. } => f.revision = Some(commit.clone()),
                db::Error::UrlEnv(_) => f.key = Some("database.url_env".to_owned()),
                _ => {}
            },
            Error::Lock(lock::Error::Held { path, holder }) => {
                f.path = Some(show(path));
                f.holder.clone_from(holder);
            }
            Error::Lock(lock::Error::GitBusy { index_lock, .. }) => f.path = Some(show(index_lock)),
            Error::Journal(journal::Error::UnknownRun { run_id }) => f.run_id = Some(run_id.clone()),
            Error::StepFailed { run_id, step, .. } => {
                f.run_id = Some(run_id.clone());
                f.step = Some(step.clone());
            }
            Error::RunStopped { run_id, .. } => f.run_id = Some(run_id.clone()),
            _ => {}
        }
        f
    }
}

/// The fields each exception class declares: set on every instance the engine raises, and
/// `None` on the class, so an instance made in Python has them too.
const CONFIG_FIELDS: &[&str] = &["path", "key", "revision"];
const VCS_FIELDS: &[&str] = &["path"];
const BACKUP_FIELDS: &[&str] = &["snapshot", "path"];
const DATABASE_FIELDS: &[&str] = &["database", "revision", "path", "program"];
const LOCK_FIELDS: &[&str] = &["holder", "path"];
const REFUSED_FIELDS: &[&str] = &["path"];
const CANCELLED_FIELDS: &[&str] = &["run_id"];
const STEP_FIELDS: &[&str] = &["run_id", "step"];

/// The exception class of a core error (I/O errors aside), and the fields it declares.
fn class_of<'py>(py: Python<'py>, e: &Error) -> (Bound<'py, PyType>, &'static [&'static str]) {
    match (e.kind(), e) {
        (ErrorKind::Usage, _) => (py.get_type::<ConfigError>(), CONFIG_FIELDS),
        (ErrorKind::Locked, _) => (py.get_type::<LockHeldError>(), LOCK_FIELDS),
        (ErrorKind::Refused, _) => (py.get_type::<RefusedError>(), REFUSED_FIELDS),
        (ErrorKind::Cancelled, _) => (py.get_type::<CancelledError>(), CANCELLED_FIELDS),
        (_, Error::StepFailed { .. } | Error::RunStopped { .. } | Error::Service { .. }) => {
            (py.get_type::<StepFailedError>(), STEP_FIELDS)
        }
        (_, Error::Vcs(_)) => (py.get_type::<VcsError>(), VCS_FIELDS),
        (_, Error::Backup(_)) => (py.get_type::<BackupError>(), BACKUP_FIELDS),
        (_, Error::Db(_)) => (py.get_type::<DatabaseError>(), DATABASE_FIELDS),
        _ => (py.get_type::<RollbackError>(), &[]),
    }
}

/// Sets `kind`, `hint`, `message` and a `hint: ...` note on an exception instance. Best
/// effort: the exception itself must always come out.
pub fn annotate(value: &Bound<'_, PyAny>, kind: &str, hint: Option<&str>, message: &str) {
    let _ = value.setattr("kind", kind);
    let _ = value.setattr("hint", hint);
    let _ = value.setattr("message", message);
    if let Some(h) = hint {
        let _ = value.call_method1("add_note", (format!("hint: {h}"),));
    }
}

/// Builds the Python exception for `e`.
pub fn to_pyerr(py: Python<'_>, e: &Error) -> PyErr {
    let kind = e.kind();
    let message = chain(e);
    // The core's hint in Python's words (`undo("RUN")`, `level="full"`), whatever else
    // (the CLI through `cli_main`) ran in this process.
    let hint = e.hint_for(rollback_core::hint::Frontend::Python);
    let err = match plain_io(e) {
        Some(io) if io.kind() == io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err((io.source.raw_os_error().unwrap_or(2), message.clone(), io.path.clone()))
        }
        Some(io) if io.kind() == io::ErrorKind::PermissionDenied => {
            PyPermissionError::new_err((io.source.raw_os_error().unwrap_or(13), message.clone(), io.path.clone()))
        }
        _ => {
            let (class, declared) = class_of(py, e);
            let err = PyErr::from_type(class, message.clone());
            let f = Fields::of(e);
            let value = err.value(py);
            for name in declared {
                let v: Option<Py<PyAny>> = match *name {
                    "holder" => f.holder.as_ref().and_then(|h| to_py(py, h).ok()),
                    other => {
                        let s = match other {
                            "path" => &f.path,
                            "key" => &f.key,
                            "revision" => &f.revision,
                            "snapshot" => &f.snapshot,
                            "database" => &f.database,
                            "program" => &f.program,
                            "run_id" => &f.run_id,
                            "step" => &f.step,
                            _ => &None,
                        };
                        s.as_ref().map(|s| PyString::new(py, s).into_any().unbind())
                    }
                };
                let _ = value.setattr(*name, v);
            }
            err
        }
    };
    annotate(err.value(py), kind_name(kind), hint.as_deref(), &message);
    err
}

impl From<PyRollbackError> for PyErr {
    fn from(e: PyRollbackError) -> Self {
        Python::attach(|py| to_pyerr(py, &e.0))
    }
}

/// The `message` of an exception made in Python (`ConfigError("...")`, a test double): its
/// `str()`. A non-data descriptor on `RollbackError`, so the `message` [`annotate`] sets on an
/// instance the core raised wins.
#[pyclass(module = "forge_rollback._forge_rollback", name = "_HandMadeMessage", frozen)]
struct HandMadeMessage;

#[pymethods]
impl HandMadeMessage {
    fn __get__(
        slf: Py<Self>,
        py: Python<'_>,
        instance: Option<&Bound<'_, PyAny>>,
        _owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        match instance.filter(|i| !i.is_none()) {
            Some(exc) => Ok(exc.str()?.into_any().unbind()),
            None => Ok(slf.into_any().into_bound(py).unbind()),
        }
    }
}

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("RollbackError", py.get_type::<RollbackError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("VcsError", py.get_type::<VcsError>())?;
    m.add("BackupError", py.get_type::<BackupError>())?;
    m.add("DatabaseError", py.get_type::<DatabaseError>())?;
    m.add("LockHeldError", py.get_type::<LockHeldError>())?;
    m.add("RefusedError", py.get_type::<RefusedError>())?;
    m.add("CancelledError", py.get_type::<CancelledError>())?;
    m.add("StepFailedError", py.get_type::<StepFailedError>())?;
    m.add("VerificationError", py.get_type::<VerificationError>())?;
    m.add("AbortRollback", py.get_type::<AbortRollback>())?;
    // Class-level defaults: an instance made in Python (`ConfigError("...")`, a test double)
    // has every field too.
    let defaults: [(Bound<'_, PyType>, &[&str]); 11] = [
        (py.get_type::<AbortRollback>(), &["run_id", "result"]),
        (py.get_type::<RollbackError>(), &["hint"]),
        (py.get_type::<ConfigError>(), CONFIG_FIELDS),
        (py.get_type::<VcsError>(), VCS_FIELDS),
        (py.get_type::<BackupError>(), BACKUP_FIELDS),
        (py.get_type::<DatabaseError>(), DATABASE_FIELDS),
        (py.get_type::<LockHeldError>(), LOCK_FIELDS),
        (py.get_type::<RefusedError>(), REFUSED_FIELDS),
        (py.get_type::<CancelledError>(), CANCELLED_FIELDS),
        (py.get_type::<StepFailedError>(), STEP_FIELDS),
        (py.get_type::<VerificationError>(), &["run_id", "report", "failed"]),
    ];
    for (class, names) in defaults {
        for name in names {
            class.setattr(*name, py.None())?;
        }
    }
    // ... and its family's `kind`, and its `message` (what it was made with).
    let kinds: [(Bound<'_, PyType>, ErrorKind); 10] = [
        (py.get_type::<RollbackError>(), ErrorKind::Failed),
        (py.get_type::<ConfigError>(), ErrorKind::Usage),
        (py.get_type::<VcsError>(), ErrorKind::Failed),
        (py.get_type::<BackupError>(), ErrorKind::Failed),
        (py.get_type::<DatabaseError>(), ErrorKind::Failed),
        (py.get_type::<LockHeldError>(), ErrorKind::Locked),
        (py.get_type::<RefusedError>(), ErrorKind::Refused),
        (py.get_type::<CancelledError>(), ErrorKind::Cancelled),
        (py.get_type::<StepFailedError>(), ErrorKind::Failed),
        (py.get_type::<VerificationError>(), ErrorKind::Failed),
    ];
    for (class, kind) in kinds {
        class.setattr("kind", kind_name(kind))?;
    }
    py.get_type::<RollbackError>().setattr("message", Py::new(py, HandMadeMessage)?)?;
    Ok(())
}
