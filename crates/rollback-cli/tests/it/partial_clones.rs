//! Partial (blobless) clones: `git clone --filter=blob:none`, as deploy boxes and CI check out.
//! Such a clone holds the blobs of the commit it checked out and fetches any other from its
//! promisor remote when something reads it. `git reset --hard` (and libgit2, which never
//! fetches) only found out at the first file it had to write, after it had removed the files
//! the target does not have: the run failed with the live release's tree half-deleted. Now the
//! blobs the reset writes are looked up before anything changes: the git-cli back-end fetches
//! them first and refuses (exit 4, nothing changed) when it cannot, the git2 back-end refuses.

use std::path::{Path, PathBuf};
use std::process::Command;

use rollback_testkit::{TestRepo, clean_git_env};

use crate::common::picture;
use crate::shapes::{config, fr, run_id};

fn git_in(dir: &Path, args: &[&str]) {
    let out = clean_git_env(&mut Command::new("git")).arg("-C").arg(dir).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A bare remote that serves filtered fetches, holding v1 (`main.py`, `util.py`) and v2
/// (`main.py` changed, `new.py` and `other.py` added), and a blobless clone of it at v2 with a
/// local edit and an untracked note: v1's `main.py` is not in the clone.
fn blobless_clone() -> (TestRepo, tempfile::TempDir) {
    let src = TestRepo::new();
    src.write("main.py", "v1\n").write("util.py", "keep\n");
    src.commit_all("v1");
    src.git(&["tag", "v1"]);
    src.write("main.py", "v2\n").write("new.py", "new\n").write("other.py", "other\n");
    src.commit_all("v2");
    let remote = tempfile::Builder::new().prefix("fr-remote-").tempdir().unwrap();
    git_in(remote.path(), &["init", "-q", "--bare", "-b", "main"]);
    git_in(remote.path(), &["config", "uploadpack.allowFilter", "true"]);
    src.git(&["push", "-q", &remote.path().display().to_string(), "main", "v1"]);
    // Cloned into a test repository's folder, emptied first (`git clone` wants an empty one).
    let clone = TestRepo::new();
    std::fs::remove_dir_all(clone.path().join(".git")).unwrap();
    let url = format!("file://{}", remote.path().display());
    clone.git(&["clone", "-q", "--filter=blob:none", &url, "."]);
    assert_eq!(clone.git(&["config", "remote.origin.promisor"]), "true");
    let missing = clone.git(&["rev-list", "--objects", "--missing=print", "v1"]);
    assert!(missing.lines().any(|l| l.starts_with('?')), "v1's main.py is not local: {missing}");
    clone.write("util.py", "local edit\n").write("note.txt", "untracked\n");
    (clone, remote)
}

/// The remote moved away for the life of the value: the git host down, as during an outage.
pub(crate) struct Unreachable {
    from: PathBuf,
    to: PathBuf,
}

impl Unreachable {
    pub(crate) fn new(remote: &Path) -> Self {
        let to = remote.with_extension("down");
        std::fs::rename(remote, &to).unwrap();
        Self { from: remote.to_path_buf(), to }
    }
}

impl Drop for Unreachable {
    fn drop(&mut self) {
        let _ = std::fs::rename(&self.to, &self.from);
    }
}

fn risk<'a>(plan: &'a serde_json::Value, code: &str) -> Option<&'a serde_json::Value> {
    // An empty list is left out of the JSON.
    plan["risks"].as_array().and_then(|risks| risks.iter().find(|r| r["code"] == code))
}

#[test]
fn git_cli_refuses_a_partial_clone_whose_remote_is_down_with_nothing_changed() {
    let (r, remote) = blobless_clone();
    let (_cfg_dir, cfg) = config("git-cli");
    let before = picture(&r);
    let down = Unreachable::new(remote.path());
    let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--target", "v1"], &[]);
    out.code(4);
    assert!(
        out.stderr.contains("1 file(s) the reset writes (`main.py` first) have no blob in this partial clone"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("and fetching them failed: "), "{}", out.stderr);
    assert!(
        out.stderr.contains("hint: nothing was changed; make `origin` reachable from this host and run again"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("git rev-list --objects --no-walk --missing=print"),
        "names the command: {}",
        out.stderr
    );
    assert_eq!(picture(&r), before, "nothing changed");
    assert!(r.exists("new.py") && r.exists("other.py"), "the live release's files are all there");
    // The git host back: the same run fetches the blobs first and goes through; undo is exact.
    drop(down);
    let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
    assert_eq!(out.ok().json()["status"], "succeeded");
    assert_eq!(r.read("main.py"), b"v1\n");
    assert!(!r.exists("new.py"));
    fr(&r, &cfg, &["undo", &run_id(&out), "--yes"], &[]).ok();
    assert_eq!(picture(&r), before, "the undo gives back the state before");
}

#[test]
fn a_fetch_from_a_remote_that_never_answers_is_stopped_at_its_limit_with_nothing_changed() {
    let (r, _remote) = blobless_clone();
    // The git host accepts connections and never answers (a hung load balancer): git's HTTP
    // fetch has no timeout of its own.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/app.git", silent.local_addr().unwrap());
    r.git(&["remote", "set-url", "origin", &url]);
    let (cfg_dir, cfg) = config("git-cli");
    std::fs::write(&cfg, "[vcs]\nbackend = \"git-cli\"\nfetch_timeout_secs = 1\n").unwrap();
    let before = picture(&r);
    let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--target", "v1"], &[]);
    out.code(4);
    assert!(out.stderr.contains("and fetching them failed: `git "), "{}", out.stderr);
    assert!(out.stderr.contains("did not end within 1 s, and was stopped"), "{}", out.stderr);
    assert_eq!(picture(&r), before, "nothing changed");
    // Bad values are refused when the configuration loads.
    for bad in ["0", "-1", "nan", "100000"] {
        std::fs::write(&cfg, format!("[vcs]\nfetch_timeout_secs = {bad}\n")).unwrap();
        let out = fr(&r, &cfg, &["plan", "--fast", "--target", "v1"], &[]);
        out.code(2);
        assert!(out.stderr.contains("vcs.fetch_timeout_secs"), "{bad}: {}", out.stderr);
    }
    drop((silent, cfg_dir));
}

#[test]
fn git_cli_plans_the_fetch_and_says_nothing_once_the_blobs_are_local() {
    let (r, _remote) = blobless_clone();
    let (_cfg_dir, cfg) = config("git-cli");
    let plan = fr(&r, &cfg, &["plan", "--fast", "--target", "v1", "--json"], &[]);
    let plan = plan.ok().json();
    let found = risk(&plan, "blobs_not_fetched").unwrap_or_else(|| panic!("{plan}"));
    assert_eq!(found["severity"], "medium", "{found}");
    assert!(
        found["message"].as_str().unwrap().contains("the run fetches them from `origin` before it changes anything")
    );
    // Once fetched (here by reading it), nothing is missing.
    r.git(&["cat-file", "-p", "v1:main.py"]);
    let plan = fr(&r, &cfg, &["plan", "--fast", "--target", "v1", "--json"], &[]).ok().json();
    assert!(risk(&plan, "blobs_not_fetched").is_none(), "{plan}");
}

#[test]
fn git2_refuses_a_partial_clone_missing_blobs_before_the_reset() {
    let (r, _remote) = blobless_clone();
    let (_cfg_dir, cfg) = config("git2");
    let before = picture(&r);
    let plan = fr(&r, &cfg, &["plan", "--fast", "--target", "v1", "--json"], &[]).ok().json();
    let found = risk(&plan, "blobs_not_fetched").unwrap_or_else(|| panic!("{plan}"));
    assert_eq!(found["severity"], "high", "{found}");
    let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--target", "v1"], &[]);
    out.code(4);
    assert!(out.stderr.contains("and the `git2` back-end (libgit2) never fetches a missing object"), "{}", out.stderr);
    assert!(
        out.stderr.contains("hint: nothing was changed; set `backend = \"git-cli\"` under `[vcs]`"),
        "{}",
        out.stderr
    );
    assert_eq!(picture(&r), before, "nothing changed");
    // With the blobs fetched, libgit2 has all it needs.
    r.git(&["cat-file", "-p", "v1:main.py"]);
    let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
    assert_eq!(out.ok().json()["status"], "succeeded");
    fr(&r, &cfg, &["undo", &run_id(&out), "--yes"], &[]).ok();
    assert_eq!(picture(&r), before, "the undo gives back the state before");
}
