//! `kind = "command"`, and running a program the way checks and restart steps need it.
//!
//! A program runs from an argv (no shell) in its own process group, with stdin closed and
//! its output read through pipes, keeping the first [`MAX_OUTPUT_BYTES`] of its standard output
//! and the last [`MAX_STDERR_BYTES`] of its standard error (where its error is). When it
//! times out, or the check running it is cancelled, its process group is killed: the program
//! and whatever it started, nothing else. A program that exits normally keeps its background
//! children, and their inherited pipes do not keep us waiting.
//!
//! A restart step's program writes into files instead ([`run_command_to_files`]): a server it
//! starts in the background inherits its stdout and stderr, and must go on writing there after
//! the step. A pipe would be closed under it when the step ends, and its next log line would
//! fail (EPIPE) or kill it (SIGPIPE).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::task::JoinHandle;

use super::Outcome;
use super::config::CommandCheck;
use super::http::quote;
use super::template::Vars;

/// Most bytes kept of a program's stdout: its start.
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;

/// Most bytes kept of a program's stderr: its end, whose last lines say what went wrong.
pub const MAX_STDERR_BYTES: usize = 64 * 1024;

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
    /// It wrote more to its standard output than [`ProgramOutput::stdout`] holds.
    pub stdout_truncated: bool,
    /// The end of its standard error (at most [`MAX_STDERR_BYTES`], from the start of a line).
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
            crate::signals::kill_group(pgid);
        }
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
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

/// What is kept of one output stream.
#[derive(Default)]
struct Captured {
    bytes: Vec<u8>,
    /// More was written than `bytes` holds.
    truncated: bool,
}

/// Which part of a stream is kept.
#[derive(Clone, Copy)]
enum Keep {
    /// The first bytes.
    Head(usize),
    /// The last bytes.
    Tail(usize),
}

impl Captured {
    fn push(&mut self, data: &[u8], keep: Keep) {
        match keep {
            Keep::Head(cap) => {
                let room = cap.saturating_sub(self.bytes.len());
                self.truncated |= data.len() > room;
                self.bytes.extend_from_slice(&data[..data.len().min(room)]);
            }
            Keep::Tail(cap) => {
                self.bytes.extend_from_slice(data);
                // Cut down only once twice the limit is held: each byte is moved at most once.
                if self.bytes.len() > cap.saturating_mul(2) {
                    self.cut_to(cap);
                }
            }
        }
    }

    /// Keeps the last `cap` bytes, from the start of a line when the cut fell inside one.
    fn cut_to(&mut self, cap: usize) {
        if self.bytes.len() <= cap {
            return;
        }
        let mut cut = self.bytes.len() - cap;
        if self.bytes[cut - 1] != b'\n'
            && let Some(nl) = self.bytes[cut..].iter().position(|b| *b == b'\n')
        {
            cut += nl + 1;
        }
        self.bytes.drain(..cut);
        self.truncated = true;
    }
}

fn drain<R: AsyncRead + Unpin + Send + 'static>(mut pipe: R, into: Arc<Mutex<Captured>>, keep: Keep) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = vec![0_u8; 16 * 1024];
        loop {
            match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => into.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(&buf[..n], keep),
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
    cmd: tokio::process::Command,
    program: &str,
    timeout: Option<Duration>,
) -> Result<ProgramOutput, SpawnError> {
    run_command_noting(cmd, program, timeout, |_| {}).await
}

/// [`run_command`], telling `started` the program's process group (its pid) once it runs.
pub(crate) async fn run_command_noting(
    mut cmd: tokio::process::Command,
    program: &str,
    timeout: Option<Duration>,
    started_as: impl FnOnce(u32) + Send,
) -> Result<ProgramOutput, SpawnError> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    run_with(cmd, program, timeout, None, started_as).await
}

/// [`run_command`] with the program's stdout and stderr going to the files `stdout` and
/// `stderr` (opened for appending) instead of pipes: what it leaves running in the background
/// keeps writing there after it exits. [`ProgramOutput::stdout`] is then empty, and
/// [`ProgramOutput::stderr`] is the end of what was appended to `stderr` while it ran.
pub async fn run_command_to_files(
    mut cmd: tokio::process::Command,
    program: &str,
    timeout: Option<Duration>,
    stdout: File,
    stderr: File,
) -> Result<ProgramOutput, SpawnError> {
    let io_error = |source| SpawnError { program: program.to_owned(), source };
    let mut reader = stderr.try_clone().map_err(io_error)?;
    // Where this run's stderr starts: the file may hold an earlier attempt's (a resume).
    let start = reader.seek(SeekFrom::End(0)).map_err(io_error)?;
    cmd.stdout(stdout).stderr(stderr);
    run_with(cmd, program, timeout, Some((reader, start)), |_| {}).await
}

/// The end of what was written to `file` from `start` on (at most [`MAX_STDERR_BYTES`], from
/// the start of a line): the program's background children may write on, so only what is
/// there now is read.
fn read_tail(file: &mut File, start: u64) -> Captured {
    let mut captured = Captured::default();
    let Ok(end) = file.seek(SeekFrom::End(0)) else { return captured };
    let cap = MAX_STDERR_BYTES as u64;
    // A byte more than kept, to tell whether the cut fell at the start of a line.
    let from = start.max(end.saturating_sub(cap + 1));
    let mut bytes = Vec::new();
    if file.seek(SeekFrom::Start(from)).is_ok() {
        let _ = file.take(end - from).read_to_end(&mut bytes);
    }
    captured.truncated = from > start;
    captured.bytes = bytes;
    captured.cut_to(MAX_STDERR_BYTES);
    captured
}

/// Spawns `cmd` (its stdout and stderr set up by the caller) and waits for it: piped output
/// is read as it comes; with `stderr_file`, the stderr is read from that file from the given
/// offset once the program ended. `started_as` is told the program's process group (its pid)
/// once it runs.
async fn run_with(
    mut cmd: tokio::process::Command,
    program: &str,
    timeout: Option<Duration>,
    stderr_file: Option<(File, u64)>,
    started_as: impl FnOnce(u32) + Send,
) -> Result<ProgramOutput, SpawnError> {
    cmd.process_group(0).stdin(Stdio::null()).kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd.spawn().map_err(|source| SpawnError { program: program.to_owned(), source })?;
    if let Some(pid) = child.id() {
        started_as(pid);
    }
    let mut guard = GroupGuard(child.id().and_then(|id| i32::try_from(id).ok()));
    // Killed too when a signal ends forge-rollback (a second Ctrl-C), which drops no guard.
    let mut registered = guard.0.map(crate::signals::ChildGroup::new);
    let out = Arc::new(Mutex::new(Captured::default()));
    let err = Arc::new(Mutex::new(Captured::default()));
    let mut readers = Readers(Vec::new());
    if let Some(p) = child.stdout.take() {
        readers.0.push(drain(p, out.clone(), Keep::Head(MAX_OUTPUT_BYTES)));
    }
    if let Some(p) = child.stderr.take() {
        readers.0.push(drain(p, err.clone(), Keep::Tail(MAX_STDERR_BYTES)));
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
    if !readers.0.is_empty() {
        let _ = tokio::time::timeout(DRAIN_AFTER_EXIT, async {
            for r in &mut readers.0 {
                let _ = r.await;
            }
        })
        .await;
    }
    drop(readers);
    let take =
        |b: &Arc<Mutex<Captured>>| std::mem::take(&mut *b.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
    let (stdout, mut stderr) = (take(&out), take(&err));
    if let Some((mut file, start)) = stderr_file {
        stderr = read_tail(&mut file, start);
    }
    stderr.cut_to(MAX_STDERR_BYTES);
    Ok(ProgramOutput {
        status,
        timed_out,
        stdout: stdout.bytes,
        stdout_truncated: stdout.truncated,
        stderr: stderr.bytes,
        elapsed,
    })
}

/// Runs a `command` check once (its timeout is the check's, enforced by the caller); `vars`
/// scrubs the secrets the program may print.
pub(super) async fn run(check: &CommandCheck, workdir: &Path, vars: &Vars) -> Outcome {
    let cwd = match &check.cwd {
        Some(rel) => {
            let dir = workdir.join(rel);
            // Spawning in a missing folder fails as if the program were missing: say which.
            if !dir.is_dir() {
                let what = if dir.exists() { "is not a folder" } else { "does not exist in the work tree" };
                return Outcome::Error(format!("`cwd` `{}` {what} ({})", rel.display(), dir.display()));
            }
            dir
        }
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
            reason.push_str(&quote(&vars.redact(&tail)));
        }
        return Outcome::Failed(reason);
    }
    if let Some(needle) = &check.stdout_contains
        && !String::from_utf8_lossy(&out.stdout).contains(needle.as_str())
    {
        return Outcome::Failed(if out.stdout_truncated {
            format!(
                "stdout does not contain `{needle}` in its first {MAX_OUTPUT_BYTES} bytes (the program wrote more, which is not read)"
            )
        } else {
            format!("stdout does not contain `{needle}`")
        });
    }
    Outcome::Passed(out.describe_exit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_head_and_the_tail_of_a_stream_are_kept() {
        let mut head = Captured::default();
        head.push(b"abcd", Keep::Head(6));
        head.push(b"efgh", Keep::Head(6));
        assert_eq!((head.bytes.as_slice(), head.truncated), (&b"abcdef"[..], true));
        let mut tail = Captured::default();
        for line in ["one\n", "two\n", "three\n", "four\n"] {
            tail.push(line.as_bytes(), Keep::Tail(8));
        }
        tail.cut_to(8);
        // The last 8 bytes start inside `three`: the kept text starts at the next line.
        assert_eq!((tail.bytes.as_slice(), tail.truncated), (&b"four\n"[..], true));
        let mut exact = Captured::default();
        exact.push(b"one\ntwo\n", Keep::Tail(4));
        exact.cut_to(4);
        assert_eq!(exact.bytes, b"two\n");
    }
}
