//! `kind = "command"`, and running a program the way checks and restart steps need it.
//!
//! A program runs from an argv (no shell) in its own process group, with stdin closed and
//! its output read through pipes, keeping at most [`MAX_OUTPUT_BYTES`] of each stream. When it
//! times out, or the check running it is cancelled, its process group is killed: the program
//! and whatever it started, nothing else. A program that exits normally keeps its background
//! children (a restart script may start a server), and their inherited pipes do not keep us
//! waiting.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

use super::Outcome;
use super::config::CommandCheck;
use super::http::quote;

/// Most bytes kept of a program's stdout, and of its stderr.
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// How long to keep reading output after the program exited (its background children may
/// hold the pipes open forever).
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(250);

/// What a program did.
#[derive(Debug)]
pub struct ProgramOutput {
    /// How it exited; `None` when it was killed on timeout.
    pub status: Option<ExitStatus>,
    /// It ran past its timeout and its process group was killed.
    pub timed_out: bool,
    /// The start of its standard output (at most [`MAX_OUTPUT_BYTES`]).
    pub stdout: Vec<u8>,
    /// The start of its standard error (at most [`MAX_OUTPUT_BYTES`]).
    pub stderr: Vec<u8>,
    /// Run time.
    pub elapsed: Duration,
}

impl ProgramOutput {
    /// The last `lines` lines of stderr, on one line, for messages.
    pub fn stderr_tail(&self, lines: usize) -> String {
        let text = String::from_utf8_lossy(&self.stderr);
        let tail: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        let start = tail.len().saturating_sub(lines);
        tail[start..].join(" | ")
    }

    /// "exit code 3", "killed by signal 9".
    pub fn describe_exit(&self) -> String {
        use std::os::unix::process::ExitStatusExt;
        match self.status {
            None => "killed on timeout".to_owned(),
            Some(s) => match (s.code(), s.signal()) {
                (Some(c), _) => format!("exit code {c}"),
                (None, Some(sig)) => format!("killed by signal {sig}"),
                (None, None) => "ended without an exit code".to_owned(),
            },
        }
    }
}

/// The program could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot run `{program}`: {source}")]
#[non_exhaustive]
pub struct SpawnError {
    /// The program (`argv[0]`).
    pub program: String,
    /// Why.
    #[source]
    pub source: std::io::Error,
}

/// Kills a process group when dropped, unless disarmed (the leader was reaped normally).
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            kill_group(pgid);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// SIGKILL to every process of group `pgid`.
fn kill_group(pgid: i32) {
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals exactly the process group `pgid`, which
    // our own child leads (it was spawned with process_group(0) and is not reaped yet).
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Aborts output readers when dropped.
struct Readers(Vec<JoinHandle<()>>);

impl Drop for Readers {
    fn drop(&mut self) {
        for r in &self.0 {
            r.abort();
        }
    }
}

fn drain<R: AsyncRead + Unpin + Send + 'static>(mut pipe: R, into: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0_u8; 16 * 1024];
        loop {
            match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let mut out = into.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                    let room = MAX_OUTPUT_BYTES.saturating_sub(out.len());
                    out.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
    })
}

/// Runs `argv` (no shell) in `cwd`, in a new process group, stdin closed. With a `timeout`,
/// the process group is killed when it is reached; if the returned future is dropped before
/// the program exits, the group is killed too.
pub async fn run_program(argv: &[String], cwd: &Path, timeout: Option<Duration>) -> Result<ProgramOutput, SpawnError> {
    let program = argv.first().cloned().unwrap_or_default();
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(argv.iter().skip(1)).current_dir(cwd);
    run_command(cmd, &program, timeout).await
}

/// [`run_program`] for a command already given its arguments, folder and environment:
/// `program` names it in errors.
pub async fn run_command(
    mut cmd: tokio::process::Command,
    program: &str,
    timeout: Option<Duration>,
) -> Result<ProgramOutput, SpawnError> {
    cmd.process_group(0).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|source| SpawnError { program: program.to_owned(), source })?;
    let mut guard = GroupGuard(child.id().and_then(|id| i32::try_from(id).ok()));
    // Killed too when a signal ends forge-rollback (a second Ctrl-C), which drops no guard.
    let mut registered = guard.0.map(crate::signals::ChildGroup::new);
    let out = Arc::new(Mutex::new(Vec::new()));
    let err = Arc::new(Mutex::new(Vec::new()));
    let mut readers = Readers(Vec::new());
    if let Some(p) = child.stdout.take() {
        readers.0.push(drain(p, out.clone()));
    }
    if let Some(p) = child.stderr.take() {
        readers.0.push(drain(p, err.clone()));
    }
    let waited = match timeout {
        Some(t) => tokio::time::timeout(t, child.wait()).await.ok(),
        None => Some(child.wait().await),
    };
    let (status, timed_out) = match waited {
        Some(Ok(status)) => {
            // Reaped: the group id may be reused from now on; never signal it.
            guard.0 = None;
            drop(registered.take());
            (Some(status), false)
        }
        Some(Err(_)) => {
            guard.kill();
            (None, false)
        }
        None => {
            guard.kill();
            let _ = child.wait().await;
            (None, true)
        }
    };
    let elapsed = started.elapsed();
    let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, async {
        for r in &mut readers.0 {
            let _ = r.await;
        }
    })
    .await;
    drop(readers);
    let take =
        |b: &Arc<Mutex<Vec<u8>>>| std::mem::take(&mut *b.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    Ok(ProgramOutput { status, timed_out, stdout: take(&out), stderr: take(&err), elapsed })
}

/// Runs a `command` check once (its timeout is the check's, enforced by the caller).
pub(super) async fn run(check: &CommandCheck, workdir: &Path) -> Outcome {
    let cwd = match &check.cwd {
        Some(rel) => workdir.join(rel),
        None => workdir.to_owned(),
    };
    let out = match run_program(&check.argv, &cwd, None).await {
        Ok(o) => o,
        Err(e) => return Outcome::Error(e.to_string()),
    };
    let code = out.status.and_then(|s| s.code());
    if code != Some(check.expect_exit) {
        let mut reason = format!("{}, expected {}", out.describe_exit(), check.expect_exit);
        let tail = out.stderr_tail(3);
        if !tail.is_empty() {
            reason.push_str(": ");
            reason.push_str(&quote(&tail));
        }
        return Outcome::Failed(reason);
    }
    if let Some(needle) = &check.stdout_contains
        && !String::from_utf8_lossy(&out.stdout).contains(needle.as_str())
    {
        return Outcome::Failed(format!("stdout does not contain `{needle}`"));
    }
    Outcome::Passed(out.describe_exit())
}
