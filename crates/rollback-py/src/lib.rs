//! Python bindings (in progress).
use pyo3::prelude::*;

/// The native module `forge_rollback._forge_rollback`.
#[pymodule]
fn _forge_rollback(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
