//! `forge-rollback demo`: a whole full rollback and its undo on a sample app, in a temp dir.
//!
//! Builds a repository with three releases of a small FastAPI-shaped app backed by a real
//! SQLite database with native SQL migrations (v1: `users`; v2: `users.email`, marked
//! known-good while deployed, which records its `.env`; v3: `payments`, broken), applies the
//! migrations as each release is deployed, writes rows, leaves uncommitted work on top (a
//! modified file, a staged file, an untracked incident note), then runs a *full* rollback to
//! v2: the database is snapshotted and downgraded with v3's own `.down.sql` before the code
//! moves, and v2's recorded `.env` comes back. It checks the app, the schema and the env are
//! v2's, undoes, and checks that every file, mode, the index, HEAD, the `.env` and every row
//! of the database are exactly as before.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::Config;
use crate::db::Revision;
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
    /// The full rollback.
    pub rollback: RunOutcome,
    /// The undo.
    pub undo: RunOutcome,
    /// `app/main.py` after the rollback equals release v2's.
    pub rolled_back_to_v2: bool,
    /// The database's revisions before the rollback, after it, and after the undo.
    pub database_revisions: [Vec<Revision>; 3],
    /// After the rollback the `payments` table (added by v3) is gone and the rows of v2's
    /// tables are still there.
    pub schema_is_v2s: bool,
    /// After the rollback `.env` is the one recorded when v2 was marked known-good.
    pub env_is_v2s: bool,
    /// After the undo, every file (bytes, mode, symlink target), the index, HEAD and every
    /// row and table of the database are as before the rollback.
    pub identical: bool,
    /// Files compared.
    pub files_compared: usize,
}

impl DemoReport {
    /// For people.
    pub fn render(&self) -> String {
        let revs = |r: &[Revision]| crate::engine::show_revisions(r);
        let yes = |b: bool| if b { "yes" } else { "NO" };
        let mut s = String::new();
        let _ = writeln!(s, "forge-rollback demo in {}", self.workdir.display());
        let _ = writeln!(
            s,
            "  sample app: v1, v2 (verified known-good, .env recorded), v3 (broken, HEAD) + uncommitted work; SQLite database"
        );
        let _ = writeln!(
            s,
            "  full rollback {}: {} -> {} ({}), backup {}",
            self.rollback.run_id.as_deref().unwrap_or("-"),
            self.rollback.from.short(),
            self.rollback.to.short(),
            self.rollback.status,
            self.rollback.backup_id.as_ref().map_or("-", |b| b.as_str())
        );
        let _ = writeln!(
            s,
            "  database: {} -> {} (downgraded with v3's own migration files, after a verified snapshot)",
            revs(&self.database_revisions[0]),
            revs(&self.database_revisions[1])
        );
        let _ = writeln!(s, "  app is back on v2: {}", yes(self.rolled_back_to_v2));
        let _ = writeln!(s, "  schema is v2's, v2's rows kept: {}", yes(self.schema_is_v2s));
        let _ = writeln!(s, "  .env is the one recorded with v2: {}", yes(self.env_is_v2s));
        let _ = writeln!(
            s,
            "  undo {}: {} -> {} ({}), database back at {}",
            self.undo.run_id.as_deref().unwrap_or("-"),
            self.undo.from.short(),
            self.undo.to.short(),
            self.undo.status,
            revs(&self.database_revisions[2])
        );
        let _ = writeln!(
            s,
            "  after undo, {} file(s), index, HEAD, .env and every database row identical to before: {}",
            self.files_compared,
            yes(self.identical)
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

const CONFIG: &str = r#"# The demo's configuration: a SQLite database migrated by forge-rollback's native SQL
# migrator, and the `.env` whose content is recorded with every known-good commit.
[database]
kind = "sql"
url = "sqlite:///app.db"
migrations_dir = "migrations"

[env]
files = [".env"]
"#;

fn app(release: &str, body: &str) -> String {
    format!(
        "from fastapi import FastAPI\napp = FastAPI()\n\n@app.get(\"/\")\ndef root():\n    {body}\n# release {release}\n"
    )
}

fn sql(db: &dyn crate::db::Database, statement: &str) -> crate::Result<()> {
    crate::rt::block_on(db.query_scalar(statement))?;
    Ok(())
}

fn demo_in(root: &Path, keep: bool, observer: &dyn Observer) -> crate::Result<DemoReport> {
    let mut init = git2::RepositoryInitOptions::new();
    init.initial_head("main");
    let repo = git2::Repository::init_opts(root, &init).map_err(git_err("init"))?;
    let config = Config::parse(CONFIG, None)?;
    write(root, ".gitignore", ".env\n__pycache__/\n*.pyc\n.venv/\napp.db*\n")?;
    write(root, "app/main.py", &app("v1", "return {\"status\": \"healthy\", \"release\": \"v1\"}"))?;
    write(root, "requirements.txt", "fastapi==0.110.0\nuvicorn==0.29.0\n")?;
    write(
        root,
        "migrations/0001_create_users.up.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n",
    )?;
    commit(&repo, "release v1", 1_765_000_000)?;
    let rb = Rollback::with_backend(vcs::open(BackendKind::Git2, root)?, config.clone())?;
    let db = rb.db()?.cloned().expect("the demo configures a database");
    crate::rt::block_on(db.upgrade(&[]))?;
    sql(db.database(), "INSERT INTO users (id, name) VALUES (1, 'ada')")?;

    write(root, "app/main.py", &app("v2", "return {\"status\": \"healthy\", \"release\": \"v2\"}"))?;
    write(root, "app/users.py", "USERS: dict[str, str] = {}\n")?;
    write(root, "migrations/0002_add_email.up.sql", "ALTER TABLE users ADD COLUMN email TEXT;\n")?;
    write(root, "migrations/0002_add_email.down.sql", "ALTER TABLE users DROP COLUMN email;\n")?;
    let v2 = commit(&repo, "release v2: user registration", 1_765_000_600)?;
    // v2 is deployed: its migration runs, its `.env` is written, and after a day of uptime it is
    // marked known-good, which records that `.env` with it.
    crate::rt::block_on(db.upgrade(&[]))?;
    sql(db.database(), "UPDATE users SET email = 'ada@example.com' WHERE id = 1")?;
    let env_v2 = "SECRET_KEY=demo-v2-not-a-secret\nFEATURE_PAYMENTS=off\n";
    write(root, ".env", env_v2)?;
    let rb = Rollback::with_backend(vcs::open(BackendKind::Git2, root)?, config.clone())?;
    rb.mark_good(&v2.to_string(), Some("demo: verified after 24h uptime"))?;

    write(root, "app/main.py", &app("v3", "raise RuntimeError(\"payments client not configured\")"))?;
    write(root, "app/payments.py", "import stripe  # broken release\n")?;
    write(root, "requirements.txt", "fastapi==0.110.0\nuvicorn==0.29.0\nstripe==7.0.0\n")?;
    write(
        root,
        "migrations/0003_add_payments.up.sql",
        "CREATE TABLE payments (id INTEGER PRIMARY KEY, user_id INTEGER, cents INTEGER NOT NULL);\n",
    )?;
    write(root, "migrations/0003_add_payments.down.sql", "DROP TABLE payments;\n")?;
    commit(&repo, "release v3: payments (broken)", 1_765_001_200)?;
    // v3 is deployed: its migration runs, its `.env` gains new keys, a payment is recorded.
    crate::rt::block_on(db.upgrade(&[]))?;
    sql(db.database(), "INSERT INTO payments (id, user_id, cents) VALUES (1, 1, 1250)")?;
    write(root, ".env", "SECRET_KEY=demo-v3-not-a-secret\nFEATURE_PAYMENTS=on\nSTRIPE_KEY=sk_test_demo\n")?;

    // Uncommitted work an operator must not lose: a hotfix attempt, a staged file, notes.
    write(root, "app/main.py", "# hotfix attempt in progress\n")?;
    write(root, "app/hotfix.py", "FIX = True\n")?;
    let mut index = repo.index().map_err(git_err("open index"))?;
    index.add_path(Path::new("app/hotfix.py")).map_err(git_err("stage"))?;
    index.write().map_err(git_err("write index"))?;
    write(root, "incident notes (draft).txt", "17:35 users report 500 on /\n")?;
    write(root, "app/__pycache__/main.cpython-311.pyc", "cache")?;

    // The database file's bytes may differ after a restore (pages are rewritten); its content
    // is compared through a canonical dump instead.
    let skip =
        |p: &Path| p.components().any(|c| c.as_os_str() == "__pycache__") || p.to_string_lossy().starts_with("app.db");
    let before: Picture = picture(root).into_iter().filter(|(p, _)| !skip(p)).collect();
    let index_before = std::fs::read(root.join(".git/index")).at("read", &root.join(".git/index"))?;
    let head_before = repo.head().map_err(git_err("head"))?.target();
    let dump_before = crate::rt::block_on(db.database().canonical_dump())?;
    let revs_before = crate::rt::block_on(db.current())?;

    let rb = Rollback::with_backend(vcs::open(BackendKind::Git2, root)?, config)?;
    let rollback = rb.run(
        &RunOptions { level: Some(Level::Full), reason: Some("demo: v3 answers 500".into()), ..RunOptions::default() },
        &AutoConfirm,
        observer,
    )?;
    let main = std::fs::read_to_string(root.join("app/main.py")).unwrap_or_default();
    let rolled_back_to_v2 = main.contains("\"release\": \"v2\"");
    let revs_after = crate::rt::block_on(db.current())?;
    let dump_after = crate::rt::block_on(db.database().canonical_dump())?;
    let schema_is_v2s = !dump_after.contains("payments")
        && dump_after.contains("ada@example.com")
        && revs_after.iter().map(Revision::as_str).eq(["0002"]);
    let env_is_v2s = std::fs::read_to_string(root.join(".env")).ok().as_deref() == Some(env_v2);
    let run_id = rollback.run_id.clone().unwrap_or_default();
    let undo = rb.undo(&run_id, &AutoConfirm, observer)?;

    let after: Picture = picture(root).into_iter().filter(|(p, _)| !skip(p)).collect();
    let index_after = std::fs::read(root.join(".git/index")).at("read", &root.join(".git/index"))?;
    let head_after = repo.head().map_err(git_err("head"))?.target();
    let dump_undone = crate::rt::block_on(db.database().canonical_dump())?;
    let revs_undone = crate::rt::block_on(db.current())?;
    let identical =
        before == after && index_before == index_after && head_before == head_after && dump_before == dump_undone;
    Ok(DemoReport {
        workdir: root.to_path_buf(),
        kept: keep,
        files_compared: before.len(),
        rollback,
        undo,
        rolled_back_to_v2,
        database_revisions: [revs_before, revs_after, revs_undone],
        schema_is_v2s,
        env_is_v2s,
        identical,
    })
}
