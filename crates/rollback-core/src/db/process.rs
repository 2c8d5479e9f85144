//! Child programs (`python -m alembic`, `pg_dump`, `pg_restore`): a clean, bounded
//! environment, a deadline, stdin closed, output captured, secrets scrubbed from what is shown.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

use super::{Error, Result};

/// Variables a child inherits from our environment; everything else is dropped, so a stray
/// `PGPASSWORD`, `DATABASE_URL` or `PYTHONPATH` of the operator's shell cannot redirect it.
const INHERITED: &[&str] =
    &["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "SSL_CERT_FILE", "SSL_CERT_DIR"];

/// How much of stderr an error shows (its end: where the cause is).
const TAIL_BYTES: usize = 4000;

/// What a child printed.
pub(crate) struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A command with a clean environment plus `env`, stdin closed, killed when dropped.
pub(crate) fn command<I, S>(program: &str, args: I, cwd: Option<&Path>, env: &[(&str, &str)]) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args).env_clear().stdin(Stdio::null()).kill_on_drop(true);
    for var in INHERITED {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    // Its own process group, as `git`'s: a Ctrl-C at the terminal signals the foreground
    // group, and must stop the run at the step boundary after a migration, dump or restore,
    // not kill it half-way (Python dies of the SIGINT, the step fails).
    cmd.process_group(0);
    // No Alembic goes on migrating unsupervised after forge-rollback died, racing the
    // operator's `resume`.
    crate::signals::die_with_parent(&mut cmd);
    cmd
}

/// Starts `cmd` with stdout and stderr piped.
pub(crate) fn spawn(program: &str, cmd: &mut Command) -> Result<Child> {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::Program { program: program.to_owned(), detail: format!("cannot start it: {e}") })
}

/// Runs `cmd` to completion within `timeout` (killed after it).
pub(crate) async fn output(program: &str, cmd: Command, timeout: Duration) -> Result<Output> {
    output_waiting(program, cmd, timeout, Duration::ZERO).await
}

/// Runs `cmd`, which may wait up to `lock_wait` for a lock another session holds (its
/// `lock_timeout`), to completion within `timeout` plus that wait (killed after it). The lock
/// wait is counted apart from the deadline: a process that started slowly (Python, the
/// imports of an `env.py`) and then waited for a lock meets its own `lock_timeout`, and is
/// reported as locked, before the deadline could kill it as hung.
pub(crate) async fn output_waiting(
    program: &str,
    mut cmd: Command,
    timeout: Duration,
    lock_wait: Duration,
) -> Result<Output> {
    let child = spawn(program, &mut cmd)?;
    match tokio::time::timeout(timeout + lock_wait, child.wait_with_output()).await {
        Ok(Ok(out)) => Ok(Output { status: out.status, stdout: out.stdout, stderr: out.stderr }),
        Ok(Err(e)) => {
            Err(Error::Program { program: program.to_owned(), detail: format!("waiting for it failed: {e}") })
        }
        // Dropping the future drops the child, which kills it (kill_on_drop).
        Err(_) => Err(Error::Program {
            program: program.to_owned(),
            detail: format!("timed out after {} and was killed", time_limit(timeout, lock_wait)),
        }),
    }
}

/// `3s (database.timeout_secs)`, or with a lock wait `5s (database.timeout_secs 3s, plus up to
/// 2s waiting for a lock)`: what a timed-out database operation was given.
pub(crate) fn time_limit(timeout: Duration, lock_wait: Duration) -> String {
    if lock_wait.is_zero() {
        format!("{}s (database.timeout_secs)", timeout.as_secs())
    } else {
        format!(
            "{}s (database.timeout_secs {}s, plus up to {}s waiting for a lock)",
            (timeout + lock_wait).as_secs(),
            timeout.as_secs(),
            lock_wait.as_secs()
        )
    }
}

/// The end of `bytes` as text, trimmed, with `secrets` removed.
pub(crate) fn tail(bytes: &[u8], redact: &dyn Fn(&str) -> String) -> String {
    let start = bytes.len().saturating_sub(TAIL_BYTES);
    let text = String::from_utf8_lossy(&bytes[start..]);
    let text = text.trim();
    let shown = if start > 0 { format!("...{text}") } else { text.to_owned() };
    redact(&shown)
}

/// `exit code N` or `killed by signal`.
pub(crate) fn describe_status(status: ExitStatus) -> String {
    match status.code() {
        Some(c) => format!("exit {c}"),
        None => "killed by a signal".into(),
    }
}
