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
//!
//! It lives in the CLI, not the library: it drives the engine only through the public API an
//! embedding application has (`Rollback::open`, `run`, `undo`, `mark_good`, the configured
//! `DbMigrator`). The sample repository is written with git2 and the database is read with
//! rusqlite directly, so the checks do not trust the engine's own view of what it did.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rollback_core::db::{DbMigrator, Revision};
use rollback_core::event::Observer;
use rollback_core::plan::Level;
use rollback_core::prompt::AutoConfirm;
use rollback_core::rt::block_on;
use rollback_core::{Rollback, RunOptions, RunOutcome};
use serde::Serialize;

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

fn show_revisions(r: &[Revision]) -> String {
    if r.is_empty() { "base".to_owned() } else { r.iter().map(Revision::as_str).collect::<Vec<_>>().join(", ") }
}

impl DemoReport {
    /// For people.
    pub fn render(&self) -> String {
        let revs = |r: &[Revision]| show_revisions(r);
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

fn write(root: &Path, rel: &str, content: &str) -> anyhow::Result<()> {
    let p = root.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("creating folder `{}`", parent.display()))?;
    }
    std::fs::write(&p, content).with_context(|| format!("writing `{}`", p.display()))
}

fn commit(repo: &git2::Repository, message: &str, time: i64) -> Result<git2::Oid, git2::Error> {
    let mut index = repo.index()?;
    index.add_all(["*"], git2::IndexAddOption::DEFAULT, None)?;
    index.write()?;
    let tree = repo.find_tree(index.write_tree()?)?;
    let sig = git2::Signature::new("Demo", "demo@example.com", &git2::Time::new(time, 0))?;
    let parent = repo.head().ok().and_then(|h| h.peel_to_commit().ok());
    let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
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

/// `n` random lowercase hex digits, for the sample repository's folder name.
fn random_hex(n: usize) -> String {
    let mut bytes = vec![0_u8; n.div_ceil(2)];
    if std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes)).is_err() {
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let seed = seed.as_nanos() ^ u128::from(std::process::id());
        bytes.iter_mut().enumerate().for_each(|(i, b)| *b = seed.to_le_bytes()[i % 16]);
    }
    let mut hex = hex(&bytes);
    hex.truncate(n);
    hex
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Runs the demo; the sample repository is removed afterwards unless `keep`.
pub fn run_demo(keep: bool, observer: &dyn Observer) -> anyhow::Result<DemoReport> {
    let base = std::env::temp_dir().join(format!("forge-rollback-demo-{}", random_hex(8)));
    std::fs::create_dir_all(&base).with_context(|| format!("creating folder `{}`", base.display()))?;
    let result = demo_in(&base, keep, observer);
    if !keep {
        let _ = std::fs::remove_dir_all(&base);
    }
    result
}

/// The demo's configuration. It is written into the git directory: outside the work tree, so
/// neither the rollback nor the comparison of files before and after sees it.
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

fn show_value(v: rusqlite::types::ValueRef<'_>) -> String {
    use rusqlite::types::ValueRef;
    match v {
        ValueRef::Null => "NULL".to_owned(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => format!("{f:?}"),
        ValueRef::Text(t) => format!("{:?}", String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => format!("x'{}'", hex(b)),
    }
}

/// The sample app's database, opened for one statement or one dump at a time.
struct AppDb(PathBuf);

impl AppDb {
    fn execute(&self, statement: &str) -> anyhow::Result<()> {
        let conn = rusqlite::Connection::open(&self.0)?;
        conn.execute_batch(statement).with_context(|| format!("running `{statement}` on the sample database"))
    }

    /// Every table's and index's definition and every table's rows, in a stable order: two
    /// equal dumps mean the same schema and the same rows.
    fn dump(&self) -> anyhow::Result<String> {
        let conn = rusqlite::Connection::open_with_flags(&self.0, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let mut objects =
            conn.prepare("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY 1, 2")?;
        let objects: Vec<(String, String, String)> =
            objects.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<Result<_, _>>()?;
        let mut out = String::new();
        for (kind, name, sql) in objects {
            let _ = writeln!(out, "{sql};");
            if kind != "table" {
                continue;
            }
            let mut select = conn.prepare(&format!("SELECT * FROM \"{}\"", name.replace('"', "\"\"")))?;
            let columns = select.column_count();
            let mut rows: Vec<String> = select
                .query_map([], |r| (0..columns).map(|i| r.get_ref(i).map(show_value)).collect::<Result<Vec<_>, _>>())?
                .map(|r| r.map(|values| format!("  {name}: {}", values.join(", "))))
                .collect::<Result<_, _>>()?;
            rows.sort();
            for row in rows {
                let _ = writeln!(out, "{row}");
            }
        }
        Ok(out)
    }
}

fn demo_in(root: &Path, keep: bool, observer: &dyn Observer) -> anyhow::Result<DemoReport> {
    let mut init = git2::RepositoryInitOptions::new();
    init.initial_head("main");
    let repo = git2::Repository::init_opts(root, &init).context("creating the sample repository")?;
    let config = repo.path().join("forge-rollback-demo.toml");
    std::fs::write(&config, CONFIG).with_context(|| format!("writing `{}`", config.display()))?;
    let open = || Rollback::open(root, Some(&config));
    let appdb = AppDb(root.join("app.db"));
    write(root, ".gitignore", ".env\n__pycache__/\n*.pyc\n.venv/\napp.db*\n")?;
    write(root, "app/main.py", &app("v1", "return {\"status\": \"healthy\", \"release\": \"v1\"}"))?;
    write(root, "requirements.txt", "fastapi==0.110.0\nuvicorn==0.29.0\n")?;
    write(
        root,
        "migrations/0001_create_users.up.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n",
    )?;
    commit(&repo, "release v1", 1_765_000_000).context("committing release v1")?;
    let rb = open()?;
    let db: std::sync::Arc<dyn DbMigrator> = rb.db()?.cloned().context("the demo configures a database")?;
    block_on(db.upgrade(&[]))?;
    appdb.execute("INSERT INTO users (id, name) VALUES (1, 'ada')")?;

    write(root, "app/main.py", &app("v2", "return {\"status\": \"healthy\", \"release\": \"v2\"}"))?;
    write(root, "app/users.py", "USERS: dict[str, str] = {}\n")?;
    write(root, "migrations/0002_add_email.up.sql", "ALTER TABLE users ADD COLUMN email TEXT;\n")?;
    write(root, "migrations/0002_add_email.down.sql", "ALTER TABLE users DROP COLUMN email;\n")?;
    let v2 = commit(&repo, "release v2: user registration", 1_765_000_600).context("committing release v2")?;
    // v2 is deployed: its migration runs, its `.env` is written, and after a day of uptime it is
    // marked known-good, which records that `.env` with it.
    block_on(db.upgrade(&[]))?;
    appdb.execute("UPDATE users SET email = 'ada@example.com' WHERE id = 1")?;
    let env_v2 = "SECRET_KEY=demo-v2-not-a-secret\nFEATURE_PAYMENTS=off\n";
    write(root, ".env", env_v2)?;
    open()?.mark_good(&v2.to_string(), Some("demo: verified after 24h uptime"))?;

    write(root, "app/main.py", &app("v3", "raise RuntimeError(\"payments client not configured\")"))?;
    write(root, "app/payments.py", "import stripe  # broken release\n")?;
    write(root, "requirements.txt", "fastapi==0.110.0\nuvicorn==0.29.0\nstripe==7.0.0\n")?;
    write(
        root,
        "migrations/0003_add_payments.up.sql",
        "CREATE TABLE payments (id INTEGER PRIMARY KEY, user_id INTEGER, cents INTEGER NOT NULL);\n",
    )?;
    write(root, "migrations/0003_add_payments.down.sql", "DROP TABLE payments;\n")?;
    commit(&repo, "release v3: payments (broken)", 1_765_001_200).context("committing release v3")?;
    // v3 is deployed: its migration runs, its `.env` gains new keys, a payment is recorded.
    block_on(db.upgrade(&[]))?;
    appdb.execute("INSERT INTO payments (id, user_id, cents) VALUES (1, 1, 1250)")?;
    write(root, ".env", "SECRET_KEY=demo-v3-not-a-secret\nFEATURE_PAYMENTS=on\nSTRIPE_KEY=sk_test_demo\n")?;

    // Uncommitted work an operator must not lose: a hotfix attempt, a staged file, notes.
    write(root, "app/main.py", "# hotfix attempt in progress\n")?;
    write(root, "app/hotfix.py", "FIX = True\n")?;
    let mut index = repo.index()?;
    index.add_path(Path::new("app/hotfix.py")).context("staging app/hotfix.py")?;
    index.write()?;
    write(root, "incident notes (draft).txt", "17:35 users report 500 on /\n")?;
    write(root, "app/__pycache__/main.cpython-311.pyc", "cache")?;

    // The database file's bytes may differ after a restore (pages are rewritten); its content
    // is compared through a canonical dump instead.
    let skip =
        |p: &Path| p.components().any(|c| c.as_os_str() == "__pycache__") || p.to_string_lossy().starts_with("app.db");
    let git_index = root.join(".git/index");
    let read_index = || std::fs::read(&git_index).with_context(|| format!("reading `{}`", git_index.display()));
    let before: Picture = picture(root).into_iter().filter(|(p, _)| !skip(p)).collect();
    let index_before = read_index()?;
    let head_before = repo.head()?.target();
    let dump_before = appdb.dump()?;
    let revs_before = block_on(db.current())?;

    let rb = open()?;
    let rollback = rb.run(
        &RunOptions { level: Some(Level::Full), reason: Some("demo: v3 answers 500".into()), ..RunOptions::default() },
        &AutoConfirm,
        observer,
    )?;
    let main = std::fs::read_to_string(root.join("app/main.py")).unwrap_or_default();
    let rolled_back_to_v2 = main.contains("\"release\": \"v2\"");
    let revs_after = block_on(db.current())?;
    let dump_after = appdb.dump()?;
    let schema_is_v2s = !dump_after.contains("payments")
        && dump_after.contains("ada@example.com")
        && revs_after.iter().map(Revision::as_str).eq(["0002"]);
    let env_is_v2s = std::fs::read_to_string(root.join(".env")).ok().as_deref() == Some(env_v2);
    let run_id = rollback.run_id.clone().unwrap_or_default();
    let undo = rb.undo(&run_id, &AutoConfirm, observer)?;

    let after: Picture = picture(root).into_iter().filter(|(p, _)| !skip(p)).collect();
    let index_after = read_index()?;
    let head_after = repo.head()?.target();
    let dump_undone = appdb.dump()?;
    let revs_undone = block_on(db.current())?;
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
