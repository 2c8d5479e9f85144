//! Running the binary.

use std::path::Path;
use std::process::{Command, Stdio};

use rollback_testkit::{TestRepo, TreeState, clean_git_env};

/// What a run of the binary did.
#[derive(Debug)]
pub struct Out {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }

    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert_eq!(self.code, Some(0), "expected success\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }

    #[track_caller]
    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "expected exit {code}\nstdout: {}\nstderr: {}", self.stdout, self.stderr);
        self
    }
}

pub fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_forge-rollback"));
    clean_git_env(&mut cmd);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("FORGE_ROLLBACK") {
            cmd.env_remove(k);
        }
    }
    cmd.env("NO_COLOR", "1").arg("-C").arg(dir).args(args).stdin(Stdio::null());
    cmd
}

pub fn run_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut cmd = command(dir, args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("run forge-rollback");
    Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

pub fn fr(repo: &TestRepo, args: &[&str]) -> Out {
    run_in(repo.path(), args, &[])
}

pub fn fr_env(repo: &TestRepo, args: &[&str], env: &[(&str, &str)]) -> Out {
    run_in(repo.path(), args, env)
}

/// `run --fast --yes --json --target v1`, stopped by an injected error at the failpoint `point`:
/// a failed run (exit 1), to be resumed or undone.
#[track_caller]
pub fn failed_run(repo: &TestRepo, point: &str) -> Out {
    let env = [("FORGE_ROLLBACK_FAILPOINT", point), ("FORGE_ROLLBACK_FAILPOINT_ACTION", "error")];
    let out = fr_env(repo, &["run", "--fast", "--yes", "--json", "--target", "v1"], &env);
    out.code(1);
    out
}

/// The tree without Python caches (cleared by a rollback, not restored by undo).
pub fn tree_no_caches(repo: &TestRepo) -> TreeState {
    repo.tree().without(|p| {
        let s = String::from_utf8_lossy(p);
        s.contains("__pycache__") || s.ends_with(".pyc")
    })
}

/// Everything an undo must give back: tree, HEAD, branch and index state.
#[derive(Debug, PartialEq, Eq)]
pub struct Picture {
    pub tree: TreeState,
    pub head: String,
    pub branch: Option<String>,
    pub index: String,
}

pub fn picture(repo: &TestRepo) -> Picture {
    Picture {
        tree: tree_no_caches(repo),
        head: repo.head(),
        branch: repo.branch(),
        index: repo.index_state().lines().filter(|l| !l.contains("__pycache__")).collect::<Vec<_>>().join("\n"),
    }
}

/// A sample app with three releases and messy uncommitted work on top of v3.
pub fn messy_repo() -> (TestRepo, [String; 3]) {
    let r = TestRepo::new();
    let ids = r.three_releases();
    r.write("app/main.py", "# hotfix in progress\n")
        .write("app/new_staged.py", "STAGED = 1\n")
        .write("notes/incident/2025-12-10 draft.md", "users report 500\n")
        .write(".env", "SECRET=1\n")
        .write("app/__pycache__/main.cpython-311.pyc", "cache");
    r.git(&["add", "app/new_staged.py"]);
    (r, ids)
}

/// Runs `run --fast --yes --json` and returns its run id.
#[track_caller]
pub fn rollback(repo: &TestRepo, target: &str) -> String {
    let out = fr(repo, &["run", "--fast", "--yes", "--json", "--target", target]);
    out.ok();
    let j = out.json();
    assert_eq!(j["status"], "succeeded", "{}", out.stdout);
    j["run_id"].as_str().unwrap().to_owned()
}

#[track_caller]
pub fn undo(repo: &TestRepo, run_id: &str) -> serde_json::Value {
    let out = fr(repo, &["undo", run_id, "--yes", "--json"]);
    out.ok();
    out.json()
}

// ----- helpers for the service, watch and secret tests ---------------------------------------

/// A string as a TOML basic string (JSON's escapes are TOML's).
pub fn toml_str(s: &str) -> String {
    serde_json::to_string(s).unwrap()
}

/// The repository's state folder.
pub fn state_dir(repo: &TestRepo) -> std::path::PathBuf {
    repo.path().join(".git/forge-rollback")
}

/// Writes an executable `/bin/sh` script; returns its path.
pub fn script(dir: &Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

/// Polls `f` every 20 ms until it is true; panics after `timeout` with `what`.
#[track_caller]
pub fn wait_until(what: &str, timeout: std::time::Duration, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !f() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// The binary running in the background, its output going to files (a chatty child never
/// blocks on a full pipe).
pub struct Background {
    pub child: std::process::Child,
    out: tempfile::TempDir,
}

impl Background {
    /// Starts `forge-rollback -C dir args...` with `env` added.
    pub fn spawn(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let out = tempfile::tempdir().unwrap();
        let mut cmd = command(dir, args);
        cmd.envs(env.iter().copied())
            .stdout(std::fs::File::create(out.path().join("stdout")).unwrap())
            .stderr(std::fs::File::create(out.path().join("stderr")).unwrap());
        Self { child: cmd.spawn().expect("spawn forge-rollback"), out }
    }

    /// What it printed on stderr so far.
    pub fn stderr_so_far(&self) -> String {
        std::fs::read_to_string(self.out.path().join("stderr")).unwrap_or_default()
    }

    /// Sends `SIGTERM` to it (by its pid, never by name).
    pub fn terminate(&self) {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -TERM {} failed", self.child.id());
    }

    /// Sends `signal` (`"INT"`, `"TERM"`) to it and waits until it has said so on stderr
    /// (`interrupted: ...`). Its handler runs on a runtime thread: a paused run let go at once
    /// could pass the step boundary before that thread has set the stop flag.
    #[track_caller]
    pub fn interrupt(&self, signal: &str) {
        let seen_before = self.stderr_so_far().matches("interrupted: ").count();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.child.id());
        wait_until(&format!("SIG{signal} to be seen"), std::time::Duration::from_secs(60), || {
            self.stderr_so_far().matches("interrupted: ").count() > seen_before
        });
    }

    /// Sends `SIGKILL` to it (by its pid), as an operator's `kill -9` does.
    pub fn kill_9(&self) {
        let status = Command::new("kill").args(["-KILL", &self.child.id().to_string()]).status().expect("run kill");
        assert!(status.success(), "kill -KILL {} failed", self.child.id());
    }

    /// Waits at most `timeout` for it to exit (killing it and panicking if it does not).
    #[track_caller]
    pub fn wait(mut self, timeout: std::time::Duration) -> Out {
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("still running after {timeout:?}; stderr:\n{}", self.stderr_so_far());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        Out {
            code: status.code(),
            stdout: std::fs::read_to_string(self.out.path().join("stdout")).unwrap_or_default(),
            stderr: std::fs::read_to_string(self.out.path().join("stderr")).unwrap_or_default(),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        // A failed assertion must not leave the process behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A bare repository in a temp dir, added to `repo` as `origin`, with `main` pushed.
/// Three releases, a fourth that adds a file, and the configuration file committed before them
/// edited in the work tree (a setting changed during the incident): a tool file the reset keeps.
pub fn repo_with_an_edited_tool_file() -> (TestRepo, &'static str) {
    let r = TestRepo::new();
    r.three_releases();
    let cfg = "rollback/config/rollback.toml";
    r.write(cfg, "# settings\n");
    r.commit_all("rollback settings");
    r.write("app/later.py", "LATER = 1\n");
    r.commit_all("release v4");
    r.write(cfg, "# settings\n# edited during the incident\n");
    (r, cfg)
}

pub fn bare_remote(repo: &TestRepo) -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("fr-remote-").tempdir().unwrap();
    let out = clean_git_env(&mut Command::new("git"))
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    repo.git(&["remote", "add", "origin", &dir.path().display().to_string()]);
    repo.git(&["push", "-q", "origin", "main"]);
    dir
}

/// `git rev-parse <rev>` in a bare repository.
pub fn bare_rev(remote: &Path, rev: &str) -> String {
    let out =
        clean_git_env(&mut Command::new("git")).arg("--git-dir").arg(remote).args(["rev-parse", rev]).output().unwrap();
    assert!(out.status.success(), "rev-parse {rev}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The journal records of a run.
pub fn journal(repo: &TestRepo, run_id: &str) -> Vec<serde_json::Value> {
    let path = state_dir(repo).join("runs").join(run_id).join("journal.jsonl");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The steps a run began, in journal order.
pub fn steps_begun(repo: &TestRepo, run_id: &str) -> Vec<String> {
    journal(repo, run_id)
        .iter()
        .filter(|r| r["record"] == "step_begin")
        .map(|r| r["step"].as_str().unwrap().to_owned())
        .collect()
}

/// Applies every native SQL migration of the work tree (the `MigrationFixture` layout) to
/// `app.db` through the engine's own migrator: what a deploy does (a rollback never upgrades).
pub fn migrate_sqlite(r: &TestRepo) {
    let config = rollback_core::config::Config::parse(
        &format!(
            "[database]\nkind = \"sql\"\nurl = \"sqlite:///app.db\"\nmigrations_dir = \"{}\"\n",
            rollback_testkit::db::SQL_DIR
        ),
        None,
    )
    .unwrap();
    let rb = rollback_core::Rollback::with_backend(
        rollback_core::vcs::open(rollback_core::vcs::BackendKind::GitCli, r.path()).unwrap(),
        config,
    )
    .unwrap();
    rb.upgrade_database(&[]).unwrap();
}

/// A size-limited file system (tmpfs of `size`, e.g. `1m`), if this machine lets us mount one.
pub struct SmallFs {
    pub mountpoint: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallFs {
    pub fn mount(size: &str) -> Result<Self, String> {
        Self::mount_with(&format!("size={size}"))
    }

    /// [`SmallFs::mount_with`], or `None` after saying on stderr why the test is skipped.
    #[allow(clippy::print_stderr)] // says why the test is skipped
    pub fn or_skip(options: &str) -> Option<Self> {
        Self::mount_with(options).map_err(|why| eprintln!("skipped: no size-limited file system here ({why})")).ok()
    }

    /// A tmpfs mounted with `options` (`size=4m,nr_inodes=64`).
    pub fn mount_with(options: &str) -> Result<Self, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let mountpoint = dir.path().join("mnt");
        std::fs::create_dir(&mountpoint).map_err(|e| e.to_string())?;
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("{options},mode=0700"), "tmpfs"])
            .arg(&mountpoint)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if out.status.success() {
            return Ok(Self { mountpoint, _dir: dir });
        }
        Err(format!("mount -t tmpfs failed: {}", String::from_utf8_lossy(&out.stderr).trim()))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.mountpoint).status();
    }
}
