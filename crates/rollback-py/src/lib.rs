//! Python bindings of forge-rollback: the native module `forge_rollback._forge_rollback`.
//!
//! The Python package `forge_rollback` (`python/forge_rollback/`) re-exports what this module
//! defines; its hand-written stub `_forge_rollback.pyi` must match it (checked by
//! `mypy.stubtest` in `scripts/test.sh`).
use pyo3::prelude::*;

/// Native part of `forge_rollback`: emergency rollback of code, database schema and config.
///
/// Import `forge_rollback` rather than this module.
#[pymodule]
fn _forge_rollback(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
