//! Git repositories in temp dirs and an exact picture of a work tree, for the suites.
//!
//! A trimmed copy of what `rollback-testkit` offers rollback-core's own tests (`TestRepo`,
//! `TreeState`): the suites ship in this crate for implementers outside the workspace, so they
//! cannot use the workspace's test crate.
//!
//! Git runs with a clean environment (no `GIT_*` variables, no user or system config, a fixed
//! identity and fixed dates), so commit ids and behaviour are the same on every machine.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

use tempfile::TempDir;

/// Sets a clean git environment on `cmd`: no inherited `GIT_*`, no global or system config,
/// a fixed identity.
pub(crate) fn clean_git_env(cmd: &mut Command) -> &mut Command {
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

/// A git repository (`main` branch) in a temp dir, deleted on drop.
pub(crate) struct TestRepo {
    dir: TempDir,
    clock: Cell<i64>,
}

impl TestRepo {
    /// `git init -b main` in a new temp dir.
    pub(crate) fn new() -> Self {
        let dir = tempfile::Builder::new().prefix("fr-suite-").tempdir().expect("create a temp dir");
        let repo = Self { dir, clock: Cell::new(1_765_000_000) };
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "core.autocrlf", "false"]);
        repo
    }

    /// The work tree's root.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs git in the repository; panics with its stderr if it fails.
    pub(crate) fn git(&self, args: &[&str]) -> String {
        let out = self.git_output(args);
        assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    }

    /// Runs git and returns its raw output, whatever the exit status.
    pub(crate) fn git_output(&self, args: &[&str]) -> Output {
        let date = format!("@{} +0000", self.clock.get());
        let mut cmd = Command::new("git");
        clean_git_env(&mut cmd).current_dir(self.path()).args(args);
        cmd.env("GIT_AUTHOR_DATE", &date).env("GIT_COMMITTER_DATE", &date);
        cmd.output().expect("run git (the suites need `git` on PATH)")
    }

    /// Writes a file (creating parent folders).
    pub(crate) fn write(&self, rel: impl AsRef<OsStr>, content: impl AsRef<[u8]>) -> &Self {
        let p = self.path().join(Path::new(rel.as_ref()));
        fs::create_dir_all(p.parent().expect("a file has a parent")).expect("create folder");
        fs::write(&p, content).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        self
    }

    /// Sets a file's permission bits.
    pub(crate) fn chmod(&self, rel: impl AsRef<OsStr>, mode: u32) -> &Self {
        let p = self.path().join(Path::new(rel.as_ref()));
        fs::set_permissions(&p, fs::Permissions::from_mode(mode))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", p.display()));
        self
    }

    /// Creates a symlink `rel` → `target`.
    pub(crate) fn symlink(&self, rel: impl AsRef<OsStr>, target: impl AsRef<OsStr>) -> &Self {
        let p = self.path().join(Path::new(rel.as_ref()));
        fs::create_dir_all(p.parent().expect("a link has a parent")).expect("create folder");
        std::os::unix::fs::symlink(Path::new(target.as_ref()), &p)
            .unwrap_or_else(|e| panic!("symlink {}: {e}", p.display()));
        self
    }

    /// Removes a file or symlink.
    pub(crate) fn remove(&self, rel: impl AsRef<OsStr>) -> &Self {
        let p = self.path().join(Path::new(rel.as_ref()));
        fs::remove_file(&p).unwrap_or_else(|e| panic!("remove {}: {e}", p.display()));
        self
    }

    /// Reads a file.
    pub(crate) fn read(&self, rel: impl AsRef<OsStr>) -> Vec<u8> {
        let p = self.path().join(Path::new(rel.as_ref()));
        fs::read(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    /// Whether a path exists (without following a final symlink).
    pub(crate) fn exists(&self, rel: impl AsRef<OsStr>) -> bool {
        fs::symlink_metadata(self.path().join(Path::new(rel.as_ref()))).is_ok()
    }

    /// `git add -A && git commit -m message`; returns the full commit id. Each commit gets a
    /// distinct, fixed date so ids are reproducible.
    pub(crate) fn commit_all(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.clock.set(self.clock.get() + 60);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.head()
    }

    /// HEAD's full commit id.
    pub(crate) fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"])
    }

    /// The current branch, or `None` when detached.
    pub(crate) fn branch(&self) -> Option<String> {
        let out = self.git_output(&["symbolic-ref", "-q", "--short", "HEAD"]);
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The exact state of the work tree (everything but `.git`).
    pub(crate) fn tree(&self) -> TreeState {
        TreeState::capture(self.path())
    }

    /// Three releases of a sample app: `v1`, `v2`, `v3` (broken), each tagged. Returns their
    /// commit ids.
    pub(crate) fn three_releases(&self) -> [String; 3] {
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
pub(crate) enum Node {
    /// A regular file: content and permission bits.
    File { content: Vec<u8>, mode: u32 },
    /// A symlink and its raw target.
    Symlink(Vec<u8>),
    /// A folder.
    Dir,
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Node::File { content, mode } => write!(f, "File({mode:o}, {:?})", String::from_utf8_lossy(content)),
            Node::Symlink(t) => write!(f, "Symlink({:?})", String::from_utf8_lossy(t)),
            Node::Dir => f.write_str("Dir"),
        }
    }
}

/// Every path below a root (except `.git`) with its exact content, mode or link target.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct TreeState(pub(crate) BTreeMap<Vec<u8>, Node>);

impl TreeState {
    /// Walks `root` without following symlinks.
    pub(crate) fn capture(root: &Path) -> Self {
        let mut map = BTreeMap::new();
        walk(root, root, &mut map);
        Self(map)
    }
}

impl std::fmt::Debug for TreeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.iter().map(|(k, v)| (String::from_utf8_lossy(k), v))).finish()
    }
}

fn walk(root: &Path, dir: &Path, map: &mut BTreeMap<Vec<u8>, Node>) {
    for entry in fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display())) {
        let path = entry.expect("read a folder entry").path();
        let rel = path.strip_prefix(root).expect("below the root").as_os_str().as_bytes().to_vec();
        if rel == b".git" {
            continue;
        }
        let meta = fs::symlink_metadata(&path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
        let node = if meta.file_type().is_symlink() {
            Node::Symlink(fs::read_link(&path).expect("read a link").as_os_str().as_bytes().to_vec())
        } else if meta.is_dir() {
            walk(root, &path, map);
            Node::Dir
        } else {
            let content = fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
            Node::File { content, mode: meta.permissions().mode() & 0o7777 }
        };
        map.insert(rel, node);
    }
}
