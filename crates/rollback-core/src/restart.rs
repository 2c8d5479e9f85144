//! `[[restart]]`: bringing services back after a rollback. Each step runs one program (argv,
//! no shell) with a timeout and an expected exit code, in order, then waits until a named
//! check passes. No process is ever killed by name: a step that times out has its own child
//! process group killed, nothing else.
//!
//! ```toml
//! [[restart]]
//! name = "api"
//! argv = ["systemctl", "--user", "restart", "fastapi"]
//! timeout_secs = 30
//! ready = "fastapi"          # a [[checks]] name, polled until it passes
//! ready_timeout_secs = 60
//! cwd = "services/api"       # relative to the work tree (default: the work tree)
//! env = { PORT = "8001" }    # set for the program, over what it inherits
//! env_from = ["PATH", "HOME"] # when set: the only variables passed through
//! ```
//!
//! By default the program inherits forge-rollback's whole environment and runs at the top of
//! the work tree. With `env_from`, it gets only the variables named there (each must be set),
//! plus `env`: secrets the tool holds (webhook URLs, database URLs) do not reach it.
//!
//! A step's program may leave background children behind (a script that starts the server):
//! they are left running, and do not keep [`run`] waiting. Its stdout and stderr go to two
//! private files (`restart-<n>-<name>.stdout`, `.stderr`) in the folder [`run`] is given, not to
//! pipes: what it started inherits them and must be able to write its logs once the step has
//! ended. The program itself dies with forge-rollback (`kill -9`): it is not left running
//! unwatched, past its timeout, next to the copy a `resume` starts.

use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::event::LogLevel;
use crate::verify::command::run_command_to_files;
use crate::verify::config::valid_secs;
use crate::verify::{ServiceVerifier, duration, millis, timed_out};

/// One `[[restart]]` entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartStep {
    /// Name, for logs and reports.
    pub name: String,
    /// The program and its arguments (no shell).
    pub argv: Vec<String>,
    /// Longest it may run, in seconds.
    #[serde(default = "default_timeout")]
    pub timeout_secs: f64,
    /// The exit code that means success.
    #[serde(default)]
    pub expect_exit: i32,
    /// A check (by name) polled after the program exits until it passes.
    #[serde(default)]
    pub ready: Option<String>,
    /// Longest to wait for `ready`, in seconds.
    #[serde(default = "default_ready_timeout")]
    pub ready_timeout_secs: f64,
    /// The folder it runs in, relative to the work tree (default: the work tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
    /// Variables set for it, over those it inherits.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// When set, the only variables of forge-rollback's environment it gets (each must be set);
    /// `None`: it inherits all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_from: Option<Vec<String>>,
}

fn default_timeout() -> f64 {
    60.0
}
fn default_ready_timeout() -> f64 {
    60.0
}

/// What one restart step did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartResult {
    /// The step's name.
    pub name: String,
    /// Whether it succeeded (exit code as expected and, if set, ready in time).
    pub ok: bool,
    /// Exit code, if the program exited.
    pub exit_code: Option<i32>,
    /// Program run time in milliseconds.
    pub millis: u64,
    /// Time until ready in milliseconds, if a readiness check was set and passed.
    pub ready_millis: Option<u64>,
    /// For people (stderr tail on failure, secrets removed).
    pub detail: String,
}

/// Where [`run`] sends its log lines.
pub type Log<'a> = &'a (dyn Fn(LogLevel, String) + Send + Sync);

/// Checks the `[[restart]]` list: names, argv, timeouts, and that each `ready` names a
/// configured check. `Err((key, message))`.
pub fn validate<I>(steps: &[RestartStep], check_names: I) -> Result<(), (String, String)>
where
    I: IntoIterator,
    I::Item: AsRef<str>,
{
    let checks: HashSet<String> = check_names.into_iter().map(|n| n.as_ref().to_owned()).collect();
    let mut names = HashSet::new();
    for (i, s) in steps.iter().enumerate() {
        let key = |k: &str| format!("restart[{i}].{k}");
        if s.name.trim().is_empty() {
            return Err((key("name"), "is empty".into()));
        }
        if !names.insert(s.name.as_str()) {
            return Err((key("name"), format!("`{}` is used by two restart steps: names must be unique", s.name)));
        }
        if s.argv.first().is_none_or(String::is_empty) {
            return Err((key("argv"), format!("restart `{}` needs a program to run", s.name)));
        }
        if !valid_secs(s.timeout_secs) {
            return Err((key("timeout_secs"), format!("must be more than 0 (got {})", s.timeout_secs)));
        }
        if !valid_secs(s.ready_timeout_secs) {
            return Err((key("ready_timeout_secs"), format!("must be more than 0 (got {})", s.ready_timeout_secs)));
        }
        if let Some(cwd) = &s.cwd
            && (cwd.is_absolute() || cwd.components().any(|c| matches!(c, Component::ParentDir)))
        {
            return Err((
                key("cwd"),
                format!("`{}` must be a folder inside the work tree (relative, no `..`)", cwd.display()),
            ));
        }
        for name in s.env.keys().chain(s.env_from.iter().flatten()) {
            if name.is_empty() || name.contains(['=', '\0']) {
                let k = if s.env.contains_key(name) { key(&format!("env.{name}")) } else { key("env_from") };
                return Err((k, format!("`{name}` is not an environment variable name")));
            }
        }
        if let Some(ready) = &s.ready
            && !checks.contains(ready)
        {
            let mut known: Vec<&str> = checks.iter().map(String::as_str).collect();
            known.sort_unstable();
            let known =
                if known.is_empty() { "none is configured".to_owned() } else { format!("known: {}", known.join(", ")) };
            return Err((key("ready"), format!("no check named `{ready}` ({known})")));
        }
    }
    Ok(())
}

/// Runs `steps` in order in `workdir`, stopping at the first that fails; returns one result
/// per step run. A step's readiness check is polled through `verifier` until it passes or
/// `ready_timeout_secs` has passed. Each program's output is appended to its files in
/// `output_dir` (a run's folder), which must exist.
pub async fn run(
    steps: &[RestartStep],
    verifier: &dyn ServiceVerifier,
    workdir: &Path,
    output_dir: &Path,
    log: Log<'_>,
) -> Vec<RestartResult> {
    let mut results = Vec::with_capacity(steps.len());
    for (i, step) in steps.iter().enumerate() {
        let result = run_step(step, verifier, workdir, &output_files(output_dir, i, &step.name), log).await;
        let ok = result.ok;
        if ok {
            log(LogLevel::Success, format!("restart `{}`: {}", step.name, result.detail));
        } else {
            log(LogLevel::Error, format!("restart `{}` failed: {}", step.name, result.detail));
        }
        results.push(result);
        if !ok {
            break;
        }
    }
    results
}

/// The files step number `index` (from 0) named `name` writes its stdout and stderr to: its
/// number and its name (letters, digits, `.`, `_` and `-` kept, anything else `_`), so that two
/// names never share them.
pub fn output_files(output_dir: &Path, index: usize, name: &str) -> [PathBuf; 2] {
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '_' }).collect();
    ["stdout", "stderr"].map(|stream| output_dir.join(format!("restart-{}-{safe}.{stream}", index + 1)))
}

/// Opens (creates, mode `0600`) a file a step's program writes to, for appending.
fn open_output(path: &Path) -> Result<std::fs::File, String> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true).read(true).mode(0o600);
    crate::fsutil::open_private(path, &mut opts, "open the output file of")
        .map(|(file, _)| file)
        .map_err(|e| format!("cannot open its output file: {e}"))
}

async fn run_step(
    step: &RestartStep,
    verifier: &dyn ServiceVerifier,
    workdir: &Path,
    [stdout, stderr]: &[PathBuf; 2],
    log: Log<'_>,
) -> RestartResult {
    let mut result = RestartResult {
        name: step.name.clone(),
        ok: false,
        exit_code: None,
        millis: 0,
        ready_millis: None,
        detail: String::new(),
    };
    if step.argv.first().is_none_or(String::is_empty) {
        "no program to run (`argv` is empty)".clone_into(&mut result.detail);
        return result;
    }
    let files = command(step, workdir).and_then(|cmd| Ok((cmd, open_output(stdout)?, open_output(stderr)?)));
    let (mut cmd, stdout, stderr) = match files {
        Ok(c) => c,
        Err(e) => {
            result.detail = e;
            return result;
        }
    };
    crate::signals::die_with_parent(&mut cmd);
    log(LogLevel::Info, format!("restart `{}`: running `{}`", step.name, step.argv.join(" ")));
    let limit = duration(step.timeout_secs);
    let out = match run_command_to_files(cmd, &step.argv[0], Some(limit), stdout, stderr).await {
        Ok(o) => o,
        Err(e) => {
            result.detail = e.to_string();
            return result;
        }
    };
    result.millis = millis(out.elapsed);
    result.exit_code = out.status.and_then(|s| s.code());
    let tail = out.stderr_tail(5);
    let with_tail = |text: String| if tail.is_empty() { text } else { format!("{text}: {tail}") };
    if out.timed_out {
        result.detail = with_tail(format!("{}; its process group was killed", timed_out(limit)));
        return result;
    }
    if result.exit_code != Some(step.expect_exit) {
        result.detail = with_tail(format!("{}, expected {}", out.describe_exit(), step.expect_exit));
        return result;
    }
    let exited = format!("{} after {:.1} s", out.describe_exit(), out.elapsed.as_secs_f64());
    let Some(check) = &step.ready else {
        result.ok = true;
        result.detail = exited;
        return result;
    };
    let ready_limit = duration(step.ready_timeout_secs);
    log(
        LogLevel::Info,
        format!(
            "restart `{}`: waiting for check `{check}` to pass (up to {:.1} s)",
            step.name,
            ready_limit.as_secs_f64()
        ),
    );
    match wait_ready(check, verifier, ready_limit).await {
        Ok(waited) => {
            result.ok = true;
            result.ready_millis = Some(millis(waited));
            result.detail = format!("{exited}; ready after {:.1} s", waited.as_secs_f64());
        }
        Err(last) => {
            result.detail =
                format!("{exited}, but check `{check}` did not pass within {:.1} s: {last}", ready_limit.as_secs_f64());
        }
    }
    result
}

/// The step's program with its arguments, folder and environment; `Err`: why it cannot run.
fn command(step: &RestartStep, workdir: &Path) -> Result<tokio::process::Command, String> {
    let cwd = match &step.cwd {
        Some(rel) => {
            let dir = workdir.join(rel);
            if !dir.is_dir() {
                return Err(format!("`cwd` `{}` is not a folder in the work tree", rel.display()));
            }
            dir
        }
        None => workdir.to_path_buf(),
    };
    let mut cmd = tokio::process::Command::new(&step.argv[0]);
    cmd.args(&step.argv[1..]).current_dir(cwd);
    if let Some(name) = unset_env(step) {
        return Err(unset_env_message(name));
    }
    if let Some(names) = &step.env_from {
        cmd.env_clear();
        for name in names {
            if let Some(v) = std::env::var_os(name) {
                cmd.env(name, v);
            }
        }
    }
    cmd.envs(&step.env);
    Ok(cmd)
}

/// The first variable `step`'s `env_from` names that is not set in forge-rollback's
/// environment now: the step cannot run without it.
pub fn unset_env(step: &RestartStep) -> Option<&str> {
    step.env_from.iter().flatten().find(|name| std::env::var_os(name.as_str()).is_none()).map(String::as_str)
}

/// Why a step whose `env_from` names the unset variable `name` cannot run.
pub fn unset_env_message(name: &str) -> String {
    format!("`env_from` names `{name}`, which is not set in forge-rollback's environment")
}

/// Polls `check` until it passes (`Ok(time waited)`) or `limit` has passed (`Err(last
/// reason)`).
async fn wait_ready(check: &str, verifier: &dyn ServiceVerifier, limit: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    let deadline = start + limit;
    let only = [check.to_owned()];
    let mut pause = Duration::from_millis(100);
    let mut last = String::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, verifier.verify(Some(&only))).await {
            Ok(report) if report.passed && !report.checks.is_empty() => return Ok(start.elapsed()),
            Ok(report) => match report.checks.first() {
                // Not configured: waiting will not help.
                Some(c) if c.kind == "unknown" => return Err(c.reason.clone()),
                Some(c) => last.clone_from(&c.reason),
                None => "the check produced no result".clone_into(&mut last),
            },
            Err(_) if last.is_empty() => return Err("the check was still running when the wait ended".to_owned()),
            Err(_) => return Err(format!("{last} (the last attempt was still running when the wait ended)")),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(last);
        }
        tokio::time::sleep(pause.min(left)).await;
        pause = (pause * 3 / 2).min(Duration::from_secs(1));
    }
}

/// Who this process is, as a restart command could name it: its pid and its parent's (a
/// server's worker and its master), its systemd unit, its supervisord program.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SelfIdentity {
    /// This process and its parent.
    pub pids: Vec<u32>,
    /// The systemd unit it runs in (`app.service`), from `/proc/self/cgroup`.
    pub systemd_unit: Option<String>,
    /// Its supervisord program (`SUPERVISOR_PROCESS_NAME`).
    pub supervisor_program: Option<String>,
}

impl SelfIdentity {
    /// This process's identity.
    pub fn current() -> Self {
        // SAFETY: getppid(2) cannot fail and touches no memory.
        #[allow(unsafe_code)]
        let parent = unsafe { libc::getppid() };
        let mut pids = vec![std::process::id()];
        pids.extend(u32::try_from(parent).ok().filter(|p| *p > 1));
        let systemd_unit = std::fs::read_to_string("/proc/self/cgroup").ok().and_then(|c| {
            c.lines()
                .filter_map(|l| l.rsplit('/').next())
                .find(|last| last.ends_with(".service") && !last.starts_with("user@"))
                .map(str::to_owned)
        });
        let supervisor_program = std::env::var("SUPERVISOR_PROCESS_NAME").ok().filter(|n| !n.is_empty());
        Self { pids, systemd_unit, supervisor_program }
    }
}

/// `systemctl` / `supervisorctl` verbs that stop a service.
const STOPS: &[&str] = &["restart", "stop", "try-restart", "reload-or-restart", "try-reload-or-restart", "kill"];

fn program_name(argv: &[String]) -> &str {
    argv.first().map_or("", |p| p.rsplit('/').next().unwrap_or(p))
}

/// Why `step` would stop or restart the process `me` (the one running the rollback), if it
/// would: a signal to its pid or its parent's, `systemctl` on its unit, `supervisorctl` on its
/// program. Such a step kills the run half-way, or deadlocks against the server's graceful
/// shutdown, which waits for the very request running the rollback.
pub fn targets_self(step: &RestartStep, me: &SelfIdentity) -> Option<String> {
    let args = step.argv.get(1..).unwrap_or_default();
    let program = program_name(&step.argv);
    if program.ends_with("kill")
        && let Some(pid) = me.pids.iter().find(|p| args.iter().any(|a| a == &p.to_string()))
    {
        return Some(format!("it signals pid {pid}, which is this process or its parent"));
    }
    let stops = args.iter().any(|a| STOPS.contains(&a.as_str()));
    if program == "systemctl"
        && stops
        && let Some(unit) = &me.systemd_unit
    {
        let bare = unit.trim_end_matches(".service");
        if args.iter().any(|a| a == unit || a == bare) {
            return Some(format!("it restarts the systemd unit `{unit}` this process runs in"));
        }
    }
    if program == "supervisorctl"
        && stops
        && let Some(name) = &me.supervisor_program
        && args.iter().any(|a| a == name || a.rsplit(':').next() == Some(name.as_str()) || a == "all")
    {
        return Some(format!("it restarts the supervisord program `{name}` this process runs as"));
    }
    None
}

#[cfg(test)]
mod self_target_tests {
    use super::*;

    fn step(argv: &[&str]) -> RestartStep {
        RestartStep {
            name: "api".into(),
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            timeout_secs: 30.0,
            expect_exit: 0,
            ready: None,
            ready_timeout_secs: 60.0,
            cwd: None,
            env: BTreeMap::new(),
            env_from: None,
        }
    }

    #[test]
    fn a_restart_of_this_process_is_recognised_and_others_are_not() {
        let me = SelfIdentity {
            pids: vec![4242, 4000],
            systemd_unit: Some("fastapi.service".into()),
            supervisor_program: Some("web".into()),
        };
        assert!(targets_self(&step(&["kill", "-HUP", "4000"]), &me).is_some());
        assert!(targets_self(&step(&["/bin/kill", "-TERM", "4242"]), &me).is_some());
        assert!(targets_self(&step(&["systemctl", "--user", "restart", "fastapi"]), &me).is_some());
        assert!(targets_self(&step(&["systemctl", "restart", "fastapi.service"]), &me).is_some());
        assert!(targets_self(&step(&["supervisorctl", "restart", "group:web"]), &me).is_some());
        assert_eq!(targets_self(&step(&["kill", "-HUP", "42420"]), &me), None);
        assert_eq!(targets_self(&step(&["systemctl", "restart", "worker"]), &me), None);
        assert_eq!(targets_self(&step(&["systemctl", "status", "fastapi"]), &me), None);
        assert_eq!(targets_self(&step(&["./restart.sh", "4242"]), &me), None);
    }
}
