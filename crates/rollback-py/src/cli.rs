//! `cli_main(argv)`: the `forge-rollback` command line, compiled into the extension, for the
//! wheel's console script (`forge_rollback.__main__:main`).

use pyo3::prelude::*;

/// Runs `forge-rollback` with `argv` (program name first) and returns its exit code. Data goes
/// to the process's stdout (file descriptor 1), everything else to stderr, as the binary does.
/// Runs without the GIL. While it runs, SIGINT and SIGTERM act as in the binary; when it
/// returns, the process's own handlers are back (Python's `KeyboardInterrupt`).
#[pyfunction]
#[allow(clippy::needless_pass_by_value)] // PyO3 extracts a list of str as Vec<String>
pub fn cli_main(py: Python<'_>, argv: Vec<String>) -> u8 {
    py.detach(|| rollback_cli::main(argv))
}
