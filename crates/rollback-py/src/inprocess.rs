//! What the module warns of because it runs inside the app's own process.
//!
//! A full rollback of a SQLite app downgrades and may restore the database file with the
//! engine's own bundled SQLite. Python's `sqlite3` is another copy of SQLite: the two do not
//! see each other's locks (sqlite.org/howtocorrupt.html §2.2). The engine refuses to start
//! while the process has the file open through it, but a connection the app opens during the
//! run (a request served meanwhile) can corrupt the file, or crash the process in WAL mode.
//! Nothing in the process can stop that; a rollback run in a child process is safe (its
//! SQLite locks the file against the app's, as the CLI's does). So a full run from a process
//! that has Python's `sqlite3` loaded is warned about, not refused: the app may well have
//! stopped serving.

use pyo3::prelude::*;
use rollback_core::RunOptions;
use rollback_core::event::{Event, LogLevel};
use rollback_core::plan::Level;

/// Logs the warning on the `forge_rollback` logger when `opts` is a full run (or its database
/// part) of a repository whose database is SQLite, from a process with `_sqlite3` loaded.
pub fn warn_sqlite_in_process(py: Python<'_>, core: &rollback_core::Rollback, opts: &RunOptions) -> PyResult<()> {
    if opts.dry_run || !(opts.level == Some(Level::Full) || opts.database_only) {
        return Ok(());
    }
    let sqlite = core
        .config()
        .database
        .as_ref()
        .and_then(|db| db.resolve_url().ok())
        .is_some_and(|url| url.expose().starts_with("sqlite:"));
    if !sqlite || !py.import("sys")?.getattr("modules")?.contains("_sqlite3")? {
        return Ok(());
    }
    let event = Event::Log {
        at: rollback_core::time::Timestamp::now(),
        level: LogLevel::Warn,
        message: "the database is SQLite and this process has Python's `sqlite3` loaded: a connection this process opens to the database during the full rollback (a request served meanwhile) can corrupt it or crash the process, as two SQLite libraries in one process do not see each other's locks".to_owned(),
        hint: Some(
            "stop serving first, or run the rollback in a child process: subprocess.run([sys.executable, \"-m\", \"forge_rollback\", \"-C\", WORKDIR, \"run\", \"--full\", \"--yes\", \"--target\", REV])"
                .into(),
        ),
    };
    crate::observer::log_event(py, &event)
}
