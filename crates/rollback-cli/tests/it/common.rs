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
