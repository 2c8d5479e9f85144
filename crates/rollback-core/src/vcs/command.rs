//! One `git` invocation of the command-line backend ([`super::cli`]): arguments, optional
//! stdin, a clean environment; its output, or [`Error::Command`].

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::{Error, Result};

/// A `git` invocation: arguments, optional stdin, extra environment.
pub(super) struct Git<'a> {
    dir: &'a Path,
    args: Vec<OsString>,
    stdin: Option<&'a [u8]>,
    env: Vec<(&'static str, OsString)>,
    limit: Option<Duration>,
    discard_stdout: bool,
}

impl<'a> Git<'a> {
    pub(super) fn new(dir: &'a Path) -> Self {
        Self { dir, args: Vec::new(), stdin: None, env: Vec::new(), limit: None, discard_stdout: false }
    }

    pub(super) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub(super) fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub(super) fn stdin(mut self, input: &'a [u8]) -> Self {
        self.stdin = Some(input);
        self
    }

    pub(super) fn env(mut self, key: &'static str, value: impl AsRef<OsStr>) -> Self {
        self.env.push((key, value.as_ref().to_owned()));
        self
    }

    /// Kills git's process group after `limit` ([`Error::Timeout`]): a command that waits on a
    /// remote, which may never answer.
    pub(super) fn limit(mut self, limit: Duration) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Sends git's stdout to `/dev/null`: a command whose output may be large and is not
    /// read (a filter writing a whole file).
    pub(super) fn discard_stdout(mut self) -> Self {
        self.discard_stdout = true;
        self
    }

    fn shown_args(&self) -> String {
        self.args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
    }

    /// Runs git; returns its output whatever the exit status.
    pub(super) fn output(&self) -> Result<Output> {
        let mut cmd = Command::new("git");
        for (key, _) in std::env::vars_os() {
            if key.as_bytes().starts_with(b"GIT_") {
                cmd.env_remove(&key);
            }
        }
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .env("GIT_LITERAL_PATHSPECS", "1")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .arg("-C")
            .arg(self.dir)
            .args(["-c", "core.quotepath=off"])
            // A file system monitor (`core.fsmonitor`: a hook such as Watchman's, or git's own
            // daemon) lets git skip the files it says did not change; one that missed an event
            // hides an edit from the status scan, and the reset then writes over it without a
            // snapshot. Every file is looked at instead.
            .args(["-c", "core.fsmonitor=false"])
            // `submodule.recurse = true` (often set globally, so that `pull` and `checkout`
            // keep submodules in step) makes `reset --hard` check every submodule out at the
            // commit the target records: its branch, staged changes and edits are lost, and no
            // snapshot holds them (a submodule is another repository). A reset here moves the
            // recorded commit only and leaves the submodule's work tree alone, as the git2
            // back-end does; the run says which `git submodule update` brings them in step.
            .args(["-c", "submodule.recurse=false"])
            .args(&self.args)
            .stdout(if self.discard_stdout { Stdio::null() } else { Stdio::piped() })
            .stderr(Stdio::piped())
            .stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        // Its own process group: a Ctrl-C at the terminal goes to forge-rollback's group, which
        // stops the run at the next step boundary, and must not kill a `reset --hard` half-way
        // through writing the work tree.
        cmd.process_group(0);
        let mut child = cmd.spawn().map_err(Error::GitNotFound)?;
        let (input, limit) = match (self.stdin, self.limit) {
            (None, None) => return child.wait_with_output().map_err(Error::GitNotFound),
            (input, limit) => (input.unwrap_or_default(), limit),
        };
        let pgid = i32::try_from(child.id()).unwrap_or(0);
        let (done, finished) = std::sync::mpsc::channel::<()>();
        let timed_out = AtomicBool::new(false);
        let pipe = child.stdin.take();
        let stdout_pipe = child.stdout.take();
        let mut stderr_pipe = child.stderr.take().expect("stderr is piped");
        // Feed stdin and drain stderr on threads while reading stdout, so no pipe can fill up
        // and deadlock.
        let out = std::thread::scope(|s| {
            if let Some(limit) = limit {
                let timed_out = &timed_out;
                s.spawn(move || {
                    // Ended (or dropped) when git has exited and been reaped; else the limit.
                    if finished.recv_timeout(limit) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
                        timed_out.store(true, Ordering::SeqCst);
                        crate::signals::kill_group(pgid);
                    }
                });
            } else {
                drop(finished);
            }
            let writer = s.spawn(move || {
                // git may exit early (an error) and close its stdin: that shows in its status.
                if let Some(mut pipe) = pipe {
                    let _ = pipe.write_all(input);
                }
            });
            let err_reader = s.spawn(move || {
                let mut buf = Vec::new();
                let _ = stderr_pipe.read_to_end(&mut buf);
                buf
            });
            let mut stdout = Vec::new();
            let read = stdout_pipe.map_or(Ok(0), |mut pipe| pipe.read_to_end(&mut stdout));
            let _ = writer.join();
            let stderr = err_reader.join().unwrap_or_default();
            let status = child.wait();
            drop(done);
            let status = status.map_err(Error::GitNotFound)?;
            read.map_err(Error::GitNotFound)?;
            Ok(Output { status, stdout, stderr })
        });
        match self.limit {
            Some(limit) if timed_out.load(Ordering::SeqCst) => Err(Error::Timeout { args: self.shown_args(), limit }),
            _ => out,
        }
    }

    fn command_error(&self, out: &Output) -> Error {
        Error::Command {
            args: self.shown_args(),
            code: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        }
    }

    /// Runs git; its stdout if it succeeded, else [`Error::Command`].
    pub(super) fn run(&self) -> Result<Vec<u8>> {
        let out = self.output()?;
        if out.status.success() { Ok(out.stdout) } else { Err(self.command_error(&out)) }
    }

    /// Runs git where exit code 1 means "no" (`rev-parse -q --verify`, `merge-base
    /// --is-ancestor`, ...): `Some(stdout)` on success, `None` on exit 1.
    pub(super) fn run_maybe(&self) -> Result<Option<Vec<u8>>> {
        let out = self.output()?;
        match out.status.code() {
            Some(0) => Ok(Some(out.stdout)),
            Some(1) => Ok(None),
            _ => Err(self.command_error(&out)),
        }
    }

    /// Runs git where exit code 1 means "some were found" (`update-index --refresh`): its
    /// stdout on exit 0 or 1.
    pub(super) fn run_listing(&self) -> Result<Vec<u8>> {
        let out = self.output()?;
        match out.status.code() {
            Some(0 | 1) => Ok(out.stdout),
            _ => Err(self.command_error(&out)),
        }
    }

    /// [`Git::run`], with what git printed on stderr when it succeeded (its warnings).
    pub(super) fn run_with_warnings(&self) -> Result<(Vec<u8>, Vec<u8>)> {
        let out = self.output()?;
        if out.status.success() { Ok((out.stdout, out.stderr)) } else { Err(self.command_error(&out)) }
    }
}
