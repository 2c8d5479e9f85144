//! Test fixtures for forge-rollback: real git repositories in temp dirs, and an exact picture
//! of a work tree (bytes, mode, symlink targets) to compare before and after.
//!
//! Git is always run with a clean environment (no `GIT_*` variables, no user or system
//! config), so tests behave the same on every machine and in CI.
#![allow(clippy::missing_panics_doc, clippy::return_self_not_must_use)]

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use tempfile::TempDir;

pub mod db;
pub mod platform;
pub mod prometheus;
pub mod server;

/// Sets a clean git environment on `cmd`: no inherited `GIT_*`, no global or system config,
/// a fixed identity and fixed dates.
pub fn clean_git_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars_os() {
        if k.as_bytes().starts_with(b"GIT_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "author@example.com")
        .env("GIT_COMMITTER_NAME", "Test Author")
        .env("GIT_COMMITTER_EMAIL", "author@example.com")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("LC_ALL", "C")
}

/// A git repository in a temp dir, deleted on drop.
pub struct TestRepo {
    dir: TempDir,
    clock: std::cell::Cell<i64>,
}

impl Default for TestRepo {
    fn default() -> Self {
        Self::new()
    }
}

impl TestRepo {
    /// `git init -b main` in a new temp dir.
    pub fn new() -> Self {
        Self::with_prefix("fr-test-")
    }

    /// [`TestRepo::new`] in a temp dir whose name starts with `prefix` (which need not be
    /// UTF-8).
    pub fn with_prefix(prefix: impl AsRef<OsStr>) -> Self {
        let dir = tempfile::Builder::new().prefix(&prefix).tempdir().expect("temp dir");
        let repo = Self { dir, clock: std::cell::Cell::new(1_765_000_000) };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "core.autocrlf", "false"]);
        repo
    }

    /// The work tree's root.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs git in the repository; panics with its stderr if it fails.
    pub fn git(&self, args: &[&str]) -> String {
        let out = self.git_output(args);
        assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    }

    /// Runs git and returns its raw output, whatever the exit status.
    pub fn git_output(&self, args: &[&str]) -> Output {
        let t = self.clock.get();
        let date = format!("@{t} +0000");
        let mut cmd = Command::new("git");
        clean_git_env(&mut cmd).current_dir(self.path()).args(args);
        cmd.env("GIT_AUTHOR_DATE", &date).env("GIT_COMMITTER_DATE", &date);
        cmd.output().expect("run git")
    }

    /// Writes a file (creating parent folders).
    pub fn write(&self, rel: impl AsRef<OsStr>, content: impl AsRef<[u8]>) -> &Self {
        let p = self.path().join(Path::new(rel.as_ref()));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, content).unwrap();
        self
    }

    /// Sets a file's permission bits.
    pub fn chmod(&self, rel: impl AsRef<OsStr>, mode: u32) -> &Self {
        let p = self.path().join(Path::new(rel.as_ref()));
        fs::set_permissions(p, fs::Permissions::from_mode(mode)).unwrap();
        self
    }

    /// Creates a symlink `rel` → `target`.
    pub fn symlink(&self, rel: impl AsRef<OsStr>, target: impl AsRef<OsStr>) -> &Self {
        let p = self.path().join(Path::new(rel.as_ref()));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(Path::new(target.as_ref()), p).unwrap();
        self
    }

    /// Removes a file or symlink.
    pub fn remove(&self, rel: impl AsRef<OsStr>) -> &Self {
        fs::remove_file(self.path().join(Path::new(rel.as_ref()))).unwrap();
        self
    }

    /// Reads a file.
    pub fn read(&self, rel: impl AsRef<OsStr>) -> Vec<u8> {
        fs::read(self.path().join(Path::new(rel.as_ref()))).unwrap()
    }

    /// Whether a path exists (without following a final symlink).
    pub fn exists(&self, rel: impl AsRef<OsStr>) -> bool {
        fs::symlink_metadata(self.path().join(Path::new(rel.as_ref()))).is_ok()
    }

    /// `git add -A && git commit -m message`; returns the full commit id. Each commit gets a
    /// distinct, fixed date so ids are reproducible.
    pub fn commit_all(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.clock.set(self.clock.get() + 60);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.head()
    }

    /// HEAD's full commit id.
    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    /// The current branch, or `None` when detached.
    pub fn branch(&self) -> Option<String> {
        let out = self.git_output(&["symbolic-ref", "-q", "--short", "HEAD"]);
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The exact state of the work tree (everything but `.git`).
    pub fn tree(&self) -> TreeState {
        TreeState::capture(self.path())
    }

    /// `git status --porcelain=v1 -z --untracked-files=all` (staged state included), for
    /// comparing index state before and after.
    pub fn index_state(&self) -> String {
        self.git(&["status", "--porcelain=v1", "--untracked-files=all", "--ignored"])
    }

    /// A standard three-release sample app: `v1` (good), `v2` (good), `v3` (broken), each
    /// tagged. Returns the three commit ids.
    pub fn three_releases(&self) -> [String; 3] {
        self.write("app/main.py", "def status():\n    return {\"status\": \"healthy\"}\n")
            .write("requirements.txt", "fastapi==0.110\n")
            .write(".gitignore", ".env\n__pycache__/\n*.pyc\n.venv/\n")
            .write("README.md", "sample app\n");
        let v1 = self.commit_all("release v1");
        self.git(&["tag", "v1"]);
        self.write("app/users.py", "USERS = []\n")
            .write("app/main.py", "def status():\n    return {\"status\": \"healthy\", \"v\": 2}\n");
        let v2 = self.commit_all("release v2: users");
        self.git(&["tag", "v2"]);
        self.write("app/main.py", "def status():\n    raise RuntimeError('boom')\n")
            .write("app/payments.py", "PAY = 1\n")
            .write("requirements.txt", "fastapi==0.111\nstripe==7\n");
        let v3 = self.commit_all("release v3: payments (broken)");
        self.git(&["tag", "v3"]);
        [v1, v2, v3]
    }
}

/// One entry of a [`TreeState`].
#[derive(Clone, PartialEq, Eq)]
pub enum Node {
    /// A regular file: content and permission bits.
    File {
        /// Bytes.
        content: Vec<u8>,
        /// Permission bits.
        mode: u32,
    },
    /// A symlink and its raw target.
    Symlink(Vec<u8>),
    /// A folder.
    Dir,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Node::File { content, mode } => write!(f, "File({:o}, {:?})", mode, String::from_utf8_lossy(content)),
            Node::Symlink(t) => write!(f, "Symlink({:?})", String::from_utf8_lossy(t)),
            Node::Dir => f.write_str("Dir"),
        }
    }
}

/// Every path below a root (except `.git`) with its exact content, mode or link target.
#[derive(Clone, PartialEq, Eq)]
pub struct TreeState(pub BTreeMap<Vec<u8>, Node>);

impl TreeState {
    /// Walks `root` without following symlinks.
    pub fn capture(root: &Path) -> Self {
        let mut map = BTreeMap::new();
        walk(root, root, &mut map);
        Self(map)
    }

    /// The same state without entries matching `skip` (e.g. cleared caches).
    pub fn without(mut self, skip: impl Fn(&[u8]) -> bool) -> Self {
        self.0.retain(|k, _| !skip(k));
        self
    }

    /// Whether a path is present.
    pub fn contains(&self, rel: &str) -> bool {
        self.0.contains_key(rel.as_bytes())
    }
}

impl std::fmt::Debug for TreeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.iter().map(|(k, v)| (String::from_utf8_lossy(k), v))).finish()
    }
}

fn walk(root: &Path, dir: &Path, map: &mut BTreeMap<Vec<u8>, Node>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path: PathBuf = entry.path();
        let rel = path.strip_prefix(root).unwrap().as_os_str().as_bytes().to_vec();
        if rel == b".git" {
            continue;
        }
        let meta = fs::symlink_metadata(&path).unwrap();
        let node = if meta.file_type().is_symlink() {
            Node::Symlink(fs::read_link(&path).unwrap().as_os_str().as_bytes().to_vec())
        } else if meta.is_dir() {
            walk(root, &path, map);
            Node::Dir
        } else {
            Node::File { content: fs::read(&path).unwrap(), mode: meta.permissions().mode() & 0o7777 }
        };
        map.insert(rel, node);
    }
}

/// Replaces the parts of CLI output that change from run to run (temp paths, hashes, times,
/// run and snapshot ids) with stable placeholders, for insta snapshots.
pub fn redact(text: &str, repo: &Path, commits: &[(&str, &str)]) -> String {
    let mut out = text.replace(&repo.display().to_string(), "[REPO]");
    for (id, name) in commits {
        out = out.replace(id, &format!("[{name}]"));
        out = out.replace(&id[..7], &format!("[{name}]"));
    }
    let mut result = String::with_capacity(out.len());
    let bytes = out.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // 2025-12-10 17:39:00 and 2025-12-10T17:39:00(.123)Z
        if let Some(n) = match_datetime(&bytes[i..]) {
            result.push_str("[TIME]");
            i += n;
            continue;
        }
        // run / snapshot ids: 20251210-173900-abcdef
        if let Some(n) = match_id(&bytes[i..]) {
            result.push_str("[ID]");
            i += n;
            continue;
        }
        let ch = out[i..].chars().next().unwrap();
        result.push(ch);
        i += ch.len_utf8();
    }
    result
}

fn digits(b: &[u8], n: usize) -> bool {
    b.len() >= n && b[..n].iter().all(u8::is_ascii_digit)
}

fn match_datetime(b: &[u8]) -> Option<usize> {
    if !(digits(b, 4) && b.get(4) == Some(&b'-') && digits(&b[5..], 2) && b.get(7) == Some(&b'-') && digits(&b[8..], 2))
    {
        return None;
    }
    if !matches!(b.get(10), Some(b' ' | b'T'))
        || !digits(&b[11..], 2)
        || b.get(13) != Some(&b':')
        || !digits(&b[14..], 2)
        || b.get(16) != Some(&b':')
        || !digits(&b[17..], 2)
    {
        return None;
    }
    let mut n = 19;
    if b.get(n) == Some(&b'.') {
        n += 1;
        while b.get(n).is_some_and(u8::is_ascii_digit) {
            n += 1;
        }
    }
    if b.get(n) == Some(&b'Z') {
        n += 1;
    }
    Some(n)
}

fn match_id(b: &[u8]) -> Option<usize> {
    if digits(b, 8) && b.get(8) == Some(&b'-') && digits(&b[9..], 6) && b.get(15) == Some(&b'-') {
        let hex = b[16..].iter().take_while(|c| c.is_ascii_hexdigit()).count();
        if hex == 6 {
            return Some(22);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_times_ids_and_paths() {
        let s = redact(
            "2025-12-10 17:39:00 [INFO] run 20251210-173900-a1b2c3 at /tmp/x ok 2025-12-10T17:39:00.120Z",
            Path::new("/tmp/x"),
            &[],
        );
        assert_eq!(s, "[TIME] [INFO] run [ID] at [REPO] ok [TIME]");
    }

    #[test]
    fn tree_state_sees_modes_and_links() {
        let r = TestRepo::new();
        r.write("a b/\u{e9}\n.txt", "x").chmod("a b/\u{e9}\n.txt", 0o755).symlink("l", "a b");
        let t = r.tree();
        assert!(matches!(t.0.get("a b/\u{e9}\n.txt".as_bytes()), Some(Node::File { mode: 0o755, .. })));
        assert_eq!(t.0.get(&b"l"[..]), Some(&Node::Symlink(b"a b".to_vec())));
    }
}

/// Kills the processes it holds when dropped (children it spawned, and other pids by number),
/// so a failing test leaves nothing running.
#[derive(Debug, Default)]
pub struct Reaper {
    /// Children to kill and wait for.
    pub children: Vec<std::process::Child>,
    /// Other processes to `kill -9`.
    pub pids: Vec<u32>,
}

impl Drop for Reaper {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for pid in &self.pids {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}
