//! Python bindings of forge-rollback: the native module `forge_rollback._forge_rollback`.
//!
//! The Python package `forge_rollback` (`python/forge_rollback/`) re-exports what this module
//! defines; its hand-written stub `_forge_rollback.pyi` must match it (checked by
//! `mypy.stubtest` in `scripts/test.sh`).
//!
//! - [`rollback`]: `Rollback`, mirroring `rollback_core::Rollback`; [`known_good`]: `KnownGood`;
//! - [`results`]: read-only result classes over the core's serde JSON, usable as values;
//! - [`callbacks`]: Python callables as the engine's `Prompter`; [`observer`]: its
//!   `Observer` (the `forge_rollback` logger and `on_event`);
//! - [`call`]: one call's cancellation and parked exception, and interpreter exit;
//! - [`error`]: the exception hierarchy;
//! - [`aio`]: coroutines on the shared tokio runtime;
//! - [`cli`]: the `forge-rollback` command line, for the wheel's console script.
use pyo3::prelude::*;

mod aio;
mod call;
mod callbacks;
mod cli;
mod error;
mod inprocess;
mod known_good;
mod observer;
mod results;
mod rollback;

/// Native part of `forge_rollback`: emergency rollback of code, database schema and config.
///
/// Import `forge_rollback` rather than this module.
#[pymodule]
fn _forge_rollback(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // SAFETY: while the module is imported (under the import lock), before anything of it can
    // run: no thread uses this module's libgit2 yet.
    #[allow(unsafe_code)]
    unsafe {
        rollback_core::vcs::git2::cache_trees();
    }
    // One runtime per process: the async methods' futures and the engine's own async work
    // (checks, database, webhooks) share the core's. `Err` means it is set already (the
    // module was initialised before, e.g. in a subinterpreter): that is the same runtime.
    let _ = pyo3_async_runtimes::tokio::init_with_runtime(rollback_core::rt::runtime());
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<rollback::Rollback>()?;
    m.add_class::<known_good::KnownGood>()?;
    m.add_class::<results::Assessment>()?;
    m.add_class::<results::Plan>()?;
    m.add_class::<results::RunResult>()?;
    m.add_class::<results::DryRunResult>()?;
    m.add_class::<results::RunSummary>()?;
    m.add_class::<results::VerificationReport>()?;
    m.add_class::<results::Rehearsal>()?;
    error::register(m)?;
    m.add_function(pyo3::wrap_pyfunction!(cli::cli_main, m)?)?;
    // Interpreter exit cancels live runs at their next step boundary and waits for them.
    let at_exit = pyo3::wrap_pyfunction!(call::at_exit, m)?;
    m.py().import("atexit")?.call_method1("register", (at_exit,))?;
    // A child forked while runs are live (a pre-fork server, `multiprocessing`) must neither
    // wait for them at exit nor keep their run locks.
    let kwargs = pyo3::types::PyDict::new(m.py());
    kwargs.set_item("after_in_child", pyo3::wrap_pyfunction!(call::after_fork_in_child, m)?)?;
    m.py().import("os")?.call_method("register_at_fork", (), Some(&kwargs))?;
    Ok(())
}
