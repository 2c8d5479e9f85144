//! `forge-rollback demo`: a whole rollback and its undo on a sample app, in a temp dir.
//!
//! Builds a repository with three releases of a small FastAPI-shaped app (v1, v2 marked
//! known-good, v3 broken), leaves uncommitted work on top (a modified file, a staged file, an
//! untracked incident note), rolls back to v2, checks the app is v2, undoes, and checks that
//! every file, mode, the index and HEAD are exactly as before.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Config;
use crate::engine::{Rollback, RunOptions, RunOutcome};
use crate::event::Observer;
use crate::fsutil::IoContext;
use crate::plan::Level;
use crate::prompt::AutoConfirm;
use crate::vcs::{self, BackendKind};

/// What the demo did and found.
#[derive(Clone, Debug, Serialize)]
pub struct DemoReport {
    /// The sample repository (deleted afterwards unless kept).
    pub workdir: PathBuf,
    /// Whether it was kept.
    pub kept: bool,
    /// The rollback.
    pub rollback: RunOutcome,
    /// The undo.
    pub undo: RunOutcome,
    /// `app/main.py` after the rollback equals release v2's.
    pub rolled_back_to_v2: bool,
    /// After the undo, every file (bytes, mode, symlink target), the index and HEAD are as
    /// before the rollback.
    pub identical: bool,
    /// Files compared.
    pub files_compared: usize,
}

impl DemoReport {
    /// For people.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "forge-rollback demo in {}", self.workdir.display());
        let _ = writeln!(s, "  sample app: v1, v2 (verified known-good), v3 (broken, HEAD) + uncommitted work");
        let _ = writeln!(
            s,
            "  rollback {}: {} -> {} ({}), backup {}",
            self.rollback.run_id.as_deref().unwrap_or("-"),
            self.rollback.from.short(),
            self.rollback.to.short(),
            self.rollback.status,
            self.rollback.backup_id.as_ref().map_or("-", |b| b.as_str())
        );
        let _ = writeln!(s, "  app is back on v2: {}", if self.rolled_back_to_v2 { "yes" } else { "NO" });
        let _ = writeln!(
            s,
            "  undo {}: {} -> {} ({})",
            self.undo.run_id.as_deref().unwrap_or("-"),
            self.undo.from.short(),
            self.undo.to.short(),
            self.undo.status
        );
        let _ = writeln!(
            s,
            "  after undo, {} file(s), index and HEAD identical to before: {}",
            self.files_compared,
            if self.identical { "yes" } else { "NO" }
        );
        if self.kept {
            let _ = writeln!(
                s,
                "  the sample repository is kept: cd {} && forge-rollback runs list",
                self.workdir.display()
            );
        }
        s
    }
}

fn git_err(context: &str) -> impl FnOnce(git2::Error) -> crate::Error + '_ {
    move |source| vcs::Error::Git2 { context: context.to_owned(), source }.into()
}

fn write(root: &Path, rel: &str, content: &str) -> crate::Result<()> {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).at("create folder", parent)?;
    }
    std::fs::write(&p, content).at("write", &p)?;
    Ok(())
}

fn commit(repo: &git2::Repository, message: &str, time: i64) -> crate::Result<git2::Oid> {
    let mut index = repo.index().map_err(git_err("open index"))?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None).map_err(git_err("add files"))?;
    index.write().map_err(git_err("write index"))?;
    let tree_id = index.write_tree().map_err(git_err("write tree"))?;
    let tree = repo.find_tree(tree_id).map_err(git_err("find tree"))?;
    let sig =
        git2::Signature::new("Demo", "demo@example.com", &git2::Time::new(time, 0)).map_err(git_err("signature"))?;
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents).map_err(git_err("commit"))
}

type Picture = BTreeMap<PathBuf, (u8, Vec<u8>, u32)>;

fn picture(root: &Path) -> Picture {
    fn walk(root: &Path, dir: &Path, out: &mut Picture) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p == root.join(".git") {
                continue;
            }
            let Ok(m) = std::fs::symlink_metadata(&p) else { continue };
            let rel = p.strip_prefix(root).unwrap_or(&p).to_path_buf();
            if m.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap_or_default();
                out.insert(rel, (1, t.into_os_string().into_encoded_bytes(), 0));
            } else if m.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(rel, (0, std::fs::read(&p).unwrap_or_default(), m.permissions().mode() & 0o7777));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Runs the demo; the sample repository is removed afterwards unless `keep`.
pub fn run_demo(keep: bool, observer: &dyn Observer) -> crate::Result<DemoReport> {
    let base = std::env::temp_dir().join(format!("forge-rollback-demo-{}", crate::state::random_hex(8)));
    std::fs::create_dir_all(&base).at("create folder", &base)?;
    let result = demo_in(&base, keep, observer);
    if !keep {
        let _ = std::fs::remove_dir_all(&base);
    }
    result
}

fn demo_in(root: &Path, keep: bool, observer: &dyn Observer) -> crate::Result<DemoReport> {
    let mut init = git2::RepositoryInitOptions::new();
    init.initial_head("main");
    let repo = git2::Repository::init_opts(root, &init).map_err(git_err("init"))?;
    write(root, ".gitignore", ".env\n__pycache__/\n*.pyc\n.venv/\n")?;
    write(
        root,
        "app/main.py",
        "from fastapi import FastAPI\napp = FastAPI()\n\n@app.get(\"/\")\ndef root():\n    return {\"status\": \"healthy\", \"release\": \"v1\"}\n",
    )?;
    write(root, "requirements.txt", "fastapi==0.110.0\nuvicorn==0.29.0\n")?;
    commit(&repo, "release v1", 1_765_000_000)?;
    write(
        root,
        "app/main.py",
        "from fastapi import FastAPI\napp = FastAPI()\n\n@app.get(\"/\")\ndef root():\n    return {\"status\": \"healthy\", \"release\": \"v2\"}\n",
    )?;
    write(root, "app/users.py", "USERS: dict[str, str] = {}\n")?;
    let v2 = commit(&repo, "release v2: user registration", 1_765_000_600)?;

    let rb = Rollback::with_backend(vcs::open(BackendKind::Git2, root)?, Config::default())?;
    rb.mark_good(&v2.to_string(), Some("demo: verified after 24h uptime"))?;

    write(
        root,
        "app/main.py",
        "from fastapi import FastAPI\napp = FastAPI()\n\n@app.get(\"/\")\ndef root():\n    raise RuntimeError(\"payments client not configured\")\n",
    )?;
    write(root, "app/payments.py", "import stripe  # broken release\n")?;
    write(root, "requirements.txt", "fastapi==0.110.0\nuvicorn==0.29.0\nstripe==7.0.0\n")?;
    commit(&repo, "release v3: payments (broken)", 1_765_001_200)?;

    // Uncommitted work an operator must not lose: a hotfix attempt, a staged file, notes.
    write(root, "app/main.py", "# hotfix attempt in progress\n")?;
    write(root, "app/hotfix.py", "FIX = True\n")?;
    let mut index = repo.index().map_err(git_err("open index"))?;
    index.add_path(Path::new("app/hotfix.py")).map_err(git_err("stage"))?;
    index.write().map_err(git_err("write index"))?;
    write(root, "incident notes (draft).txt", "17:35 users report 500 on /\n")?;
    write(root, ".env", "SECRET_KEY=demo-not-a-secret\n")?;
    write(root, "app/__pycache__/main.cpython-311.pyc", "cache")?;

    let cache = |p: &Path| p.components().any(|c| c.as_os_str() == "__pycache__");
    let before: Picture = picture(root).into_iter().filter(|(p, _)| !cache(p)).collect();
    let index_before = std::fs::read(root.join(".git/index")).at("read", &root.join(".git/index"))?;
    let head_before = repo.head().map_err(git_err("head"))?.target();

    let rollback = rb.run(
        &RunOptions { level: Some(Level::Fast), reason: Some("demo: v3 answers 500".into()), ..RunOptions::default() },
        &AutoConfirm,
        observer,
    )?;
    let main = std::fs::read_to_string(root.join("app/main.py")).unwrap_or_default();
    let rolled_back_to_v2 = main.contains("\"release\": \"v2\"");
    let run_id = rollback.run_id.clone().unwrap_or_default();
    let undo = rb.undo(&run_id, &AutoConfirm, observer)?;

    let after: Picture = picture(root).into_iter().filter(|(p, _)| !cache(p)).collect();
    let index_after = std::fs::read(root.join(".git/index")).at("read", &root.join(".git/index"))?;
    let head_after = repo.head().map_err(git_err("head"))?.target();
    let identical = before == after && index_before == index_after && head_before == head_after;
    Ok(DemoReport {
        workdir: root.to_path_buf(),
        kept: keep,
        files_compared: before.len(),
        rollback,
        undo,
        rolled_back_to_v2,
        identical,
    })
}
