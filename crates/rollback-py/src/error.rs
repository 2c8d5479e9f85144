//! Python exceptions of `rollback_core::Error`.
//!
//! One base class, `RollbackError`, and a subclass per error family; every instance carries
//! `kind` (the core's [`ErrorKind`], lowercase), `hint` (what to do, or `None`) and `message`.
//! Plain I/O errors become the built-in `FileNotFoundError` / `PermissionError` (with the same
//! attributes), like polars' `crates/polars-python/src/error.rs`.

use std::io;

use pyo3::exceptions::{PyException, PyFileNotFoundError, PyPermissionError};
use pyo3::prelude::*;
use rollback_core::{Error, ErrorKind, backup, fsutil, journal, lock, registry, vcs};

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
    "Bad usage, configuration, registry, revision or repository (kind `usage`); nothing changed."
);
pyo3::create_exception!(forge_rollback, VcsError, RollbackError, "A git operation failed.");
pyo3::create_exception!(forge_rollback, BackupError, RollbackError, "The backup store failed.");
pyo3::create_exception!(
    forge_rollback,
    LockHeldError,
    RollbackError,
    "Another run holds the lock (kind `locked`); nothing changed."
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
    "The confirmation was declined (kind `cancelled`); nothing changed."
);
pyo3::create_exception!(
    forge_rollback,
    StepFailedError,
    RollbackError,
    "A step of a run failed; the run can be resumed or undone."
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
fn kind_name(kind: ErrorKind) -> &'static str {
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
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        let part = c.to_string();
        if !s.contains(&part) {
            s.push_str(": ");
            s.push_str(&part);
        }
        src = c.source();
    }
    s
}

/// The I/O error under a core error that is nothing but an I/O error.
fn plain_io(e: &Error) -> Option<&fsutil::IoError> {
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

/// Builds the Python exception for `e`.
pub fn to_pyerr(py: Python<'_>, e: &Error) -> PyErr {
    let kind = e.kind();
    let message = chain(e);
    let hint = e.hint();
    let err = match plain_io(e) {
        Some(io) if io.kind() == io::ErrorKind::NotFound => {
            PyFileNotFoundError::new_err((io.source.raw_os_error().unwrap_or(2), message.clone(), io.path.clone()))
        }
        Some(io) if io.kind() == io::ErrorKind::PermissionDenied => {
            PyPermissionError::new_err((io.source.raw_os_error().unwrap_or(13), message.clone(), io.path.clone()))
        }
        _ => match (kind, e) {
            (ErrorKind::Usage, _) => ConfigError::new_err(message.clone()),
            (ErrorKind::Locked, _) => LockHeldError::new_err(message.clone()),
            (ErrorKind::Refused, _) => RefusedError::new_err(message.clone()),
            (ErrorKind::Cancelled, _) => CancelledError::new_err(message.clone()),
            (_, Error::StepFailed { .. }) => StepFailedError::new_err(message.clone()),
            (_, Error::Vcs(_)) => VcsError::new_err(message.clone()),
            (_, Error::Backup(_)) => BackupError::new_err(message.clone()),
            _ => RollbackError::new_err(message.clone()),
        },
    };
    let value = err.value(py);
    // Attributes and the note are best effort: the exception itself must always come out.
    let _ = value.setattr("kind", kind_name(kind));
    let _ = value.setattr("hint", hint.as_deref());
    let _ = value.setattr("message", &message);
    if let Some(h) = &hint {
        let _ = value.call_method1("add_note", (format!("hint: {h}"),));
    }
    err
}

impl From<PyRollbackError> for PyErr {
    fn from(e: PyRollbackError) -> Self {
        Python::attach(|py| to_pyerr(py, &e.0))
    }
}

/// Adds the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("RollbackError", py.get_type::<RollbackError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("VcsError", py.get_type::<VcsError>())?;
    m.add("BackupError", py.get_type::<BackupError>())?;
    m.add("LockHeldError", py.get_type::<LockHeldError>())?;
    m.add("RefusedError", py.get_type::<RefusedError>())?;
    m.add("CancelledError", py.get_type::<CancelledError>())?;
    m.add("StepFailedError", py.get_type::<StepFailedError>())?;
    Ok(())
}
