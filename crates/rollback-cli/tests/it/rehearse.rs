//! `rehearse` through the binary: a full rollback and its undo on a throwaway copy, on
//! {native, Alembic} x {SQLite, PostgreSQL} and at the fast level without a database. Each test
//! fingerprints the real work tree (every file's bytes and mode, `.git` and the state folder
//! inside it included) and the database (the SQLite file's bytes are in the tree; PostgreSQL
//! by a canonical dump) before and after, and asserts they are equal.

use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rollback_core::config::Config;
use rollback_core::rt::block_on;
use rollback_core::vcs::{self, BackendKind};
use rollback_core::{Rollback, db::Revision};
use rollback_testkit::TestRepo;
use rollback_testkit::db::{Engine, MigrationFixture, MigratorKind, PgDatabase, SQL_DIR, python};

use crate::common::{fr, messy_repo};

const CONFIG: &str = "forge-rollback.toml";

/// Every file and link below `root`, `.git` included: mode and bytes (or link target).
pub(crate) fn fingerprint(root: &Path) -> BTreeMap<PathBuf, (u32, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (u32, Vec<u8>)>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().to_path_buf();
            let mode = m.permissions().mode() & 0o7777;
            if m.file_type().is_symlink() {
                out.insert(rel, (0, std::fs::read_link(&p).unwrap().as_os_str().as_bytes().to_vec()));
            } else if m.is_dir() {
                out.insert(rel.clone(), (mode, Vec::new()));
                walk(root, &p, out);
            } else {
                out.insert(rel, (mode, std::fs::read(&p).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A sample app deployed release by release: v1 with its `.env`, marked known-good (which
/// records the env), then v3 with rows in every table, another `.env`, and uncommitted work
/// (an edit, a staged file, an untracked note).
struct Deployed {
    repo: TestRepo,
    fx: MigrationFixture,
    config: String,
    pg: Option<PgDatabase>,
}

impl Deployed {
    fn new(kind: MigratorKind, engine: Engine, extra: &str) -> Self {
        let repo = TestRepo::new();
        let fx = MigrationFixture::new(&repo, kind);
        let (pg, url) = engine.database();
        let config = format!(
            "[database]\nkind = \"{}\"\nurl = \"{url}\"\nmigrations_dir = \"{SQL_DIR}\"\npython = \"{}\"\ntimeout_secs = 120\n{extra}",
            fx.kind_name(),
            python()
        );
        repo.write(CONFIG, &config);
        let d = Self { repo, fx, config, pg };
        d.repo.git(&["reset", "-q", "--hard", "v1"]);
        d.upgrade();
        d.sql("INSERT INTO users (id, name, legacy) VALUES (1, 'ada', 'old-id-1')");
        d.repo.write(".env", "SECRET_KEY=v1\n");
        fr(&d.repo, &["known-good", "mark", "HEAD"]).ok();
        d.repo.git(&["reset", "-q", "--hard", "v3"]);
        d.upgrade();
        d.sql("INSERT INTO users (id, name, email) VALUES (2, 'grace', 'grace@example.com')");
        d.sql("INSERT INTO payments (id, amount_cents, note) VALUES (10, 4200, 'after v3')");
        d.repo.write(".env", "SECRET_KEY=v3\nSTRIPE=1\n");
        d.repo.write("app/main.py", "# hotfix in progress\n").write("app/staged.py", "S = 1\n");
        d.repo.git(&["add", "app/staged.py"]);
        d.repo.write("notes/incident draft.md", "500s since 10:02\n");
        d
    }

    fn engine(&self) -> Rollback {
        let config = Config::parse(&self.config, None).unwrap();
        Rollback::with_backend(vcs::open(BackendKind::GitCli, self.repo.path()).unwrap(), config).unwrap()
    }

    fn upgrade(&self) {
        self.engine().upgrade_database(&[]).unwrap();
    }

    fn sql(&self, statement: &str) {
        let rb = self.engine();
        block_on(rb.db().unwrap().unwrap().database().query_scalar(statement)).unwrap();
    }

    fn revisions(&self) -> Vec<Revision> {
        let rb = self.engine();
        block_on(rb.db().unwrap().unwrap().current()).unwrap()
    }

    /// The tree with `.git` and the state folder, and the database.
    fn fingerprint(&self) -> (BTreeMap<PathBuf, (u32, Vec<u8>)>, String) {
        let rb = self.engine();
        let dump = block_on(rb.db().unwrap().unwrap().database().canonical_dump()).unwrap();
        (fingerprint(self.repo.path()), dump)
    }
}

fn steps(run: &serde_json::Value) -> Vec<(String, String)> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap().to_owned(), s["status"].as_str().unwrap().to_owned()))
        .collect()
}

fn rehearse_full_then_check(kind: MigratorKind, engine: Engine) {
    let marker = tempfile::tempdir().unwrap();
    let restarted = marker.path().join("restarted");
    let restart =
        format!("[[restart]]\nname = \"app\"\nargv = [\"touch\", \"{}\"]\ntimeout_secs = 10\n", restarted.display());
    let d = Deployed::new(kind, engine, &restart);
    let before = d.fingerprint();
    let revisions = d.revisions();

    let out = fr(&d.repo, &["rehearse", "--full", "--target", "v2", "--json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["passed"], true, "{}", out.stdout);
    assert_eq!(j["undo_identical"], true, "{}", out.stdout);
    assert_eq!(j["level"], "full");
    assert_eq!(j["to"], d.fx.commits[2]);
    assert!(j["data_loss"].is_array(), "{}", out.stdout);
    let rollback = steps(&j["rollback"]);
    let names: Vec<&str> = rollback.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(&names[..4], ["snapshot", "db_snapshot", "downgrade", "reset"], "{names:?}");
    assert!(rollback.contains(&("downgrade".into(), "done".into())), "{rollback:?}");
    assert!(rollback.contains(&("restore_env".into(), "done".into())), "{rollback:?}");
    assert!(rollback.contains(&("restart".into(), "not_rehearsed".into())), "{rollback:?}");
    for s in j["rollback"]["steps"].as_array().unwrap() {
        assert_eq!(s["millis"].is_u64(), s["status"] == "done", "every step that ran has its time: {s}");
    }
    let undo = steps(&j["undo"]);
    assert!(undo.contains(&("restore_database".into(), "done".into())), "{undo:?}");
    assert!(undo.contains(&("restart".into(), "not_rehearsed".into())), "{undo:?}");
    assert!(j["files_compared"].as_u64().unwrap() >= 8, "{}", out.stdout);
    assert_eq!(j["database_copy"], if d.pg.is_some() { "pg-temporary-database" } else { "sqlite-backup" });

    // Nothing real moved: not a byte of the tree, `.git`, the state folder or the database,
    // and no service was restarted.
    assert_eq!(d.fingerprint(), before);
    assert_eq!(d.revisions(), revisions);
    assert!(!restarted.exists(), "the real restart command ran");

    // The text report names the steps with their times and the verdict.
    let text = fr(&d.repo, &["rehearse", "--full", "--target", "v2"]);
    text.ok();
    assert!(text.stdout.contains("rehearsal passed"), "{}", text.stdout);
    assert!(text.stdout.contains("[not_rehearsed] restart"), "{}", text.stdout);
    assert!(text.stdout.contains("identical to before: yes"), "{}", text.stdout);
    assert_eq!(d.fingerprint(), before);
    if let Some(pg) = &d.pg {
        // Its temporary databases are gone (named after the database they copy: other tests'
        // copies on the same server may exist meanwhile).
        let source = &pg.name()[..pg.name().len().min(31)];
        let left = pg.server().psql(
            "postgres",
            &format!("SELECT count(*) FROM pg_database WHERE datname LIKE 'forge_rollback_scratch_%{source}'"),
        );
        assert_eq!(left, "0");
    }
}

#[test]
fn rehearse_native_sqlite_touches_nothing_real() {
    rehearse_full_then_check(MigratorKind::Sql, Engine::Sqlite);
}

/// The env recorded with `known-good mark` lives in the state folder's backup store: the copy
/// has it (and not the snapshots of earlier runs), so the rehearsed rollback restores it.
#[test]
fn the_recorded_env_is_restored_on_the_copy_after_an_earlier_real_run() {
    let d = Deployed::new(MigratorKind::Sql, Engine::Sqlite, "");
    // An earlier real run and its undo: its snapshots stay in the store.
    let run = fr(&d.repo, &["run", "--fast", "--yes", "--json", "--target", "v2"]);
    run.ok();
    let id = run.json()["run_id"].as_str().unwrap().to_owned();
    fr(&d.repo, &["undo", &id, "--yes"]).ok();
    let before = d.fingerprint();
    let out = fr(&d.repo, &["rehearse", "--full", "--target", "v1", "--json"]);
    out.ok();
    assert_eq!(out.json()["passed"], true, "{}", out.stdout);
    assert!(out.stderr.contains("Env files restored: .env"), "{}", out.stderr);
    assert_eq!(d.fingerprint(), before);
}

#[test]
fn rehearse_alembic_sqlite_touches_nothing_real() {
    rehearse_full_then_check(MigratorKind::Alembic, Engine::Sqlite);
}

/// Both PostgreSQL variants in one test: each checks that no temporary database is left on
/// the server, which a rehearsal running alongside would make untrue.
#[test]
fn rehearse_alembic_and_native_postgres_touch_nothing_real() {
    rehearse_full_then_check(MigratorKind::Alembic, Engine::Postgres);
    rehearse_full_then_check(MigratorKind::Sql, Engine::Postgres);
}

#[test]
fn a_failing_downgrade_is_reported_exit_1_and_nothing_real_changes() {
    let d = Deployed::new(MigratorKind::Sql, Engine::Sqlite, "");
    d.fx.break_second_downgrade(&d.repo);
    let before = d.fingerprint();
    let out = fr(&d.repo, &["rehearse", "--full", "--target", "v1", "--allow-irreversible", "--json"]);
    out.code(1);
    let j = out.json();
    assert_eq!(j["passed"], false);
    assert_eq!(j["rollback"]["status"], "failed");
    let failed: Vec<_> =
        j["rollback"]["steps"].as_array().unwrap().iter().filter(|s| s["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{}", out.stdout);
    assert_eq!(failed[0]["step"], "downgrade");
    assert!(failed[0]["note"].as_str().unwrap().contains("0002"), "{}", out.stdout);
    // The undo of the failed run put the copy back.
    assert_eq!(j["undo"]["status"], "succeeded", "{}", out.stdout);
    assert_eq!(j["undo_identical"], true, "{}", out.stdout);
    assert_eq!(d.fingerprint(), before);
    // What the downgrade destroys is unknown (its forecast failed too), not "none"; and no
    // hint names the copy's runs, which the real repository does not have.
    assert!(j["data_loss_unknown"].as_str().is_some_and(|w| w.contains("could not be made")), "{}", out.stdout);
    assert!(
        !j["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().starts_with("hint:")),
        "{}",
        out.stdout
    );
    let text = fr(&d.repo, &["rehearse", "--full", "--target", "v1", "--allow-irreversible"]);
    text.code(1);
    assert!(text.stdout.contains("data loss forecast: UNKNOWN ("), "{}", text.stdout);
    assert!(!text.stdout.contains("forge-rollback resume"), "{}", text.stdout);
}

#[test]
fn fast_rehearsal_without_a_database() {
    let (r, ids) = messy_repo();
    let before = fingerprint(r.path());
    let out = fr(&r, &["rehearse", "--fast", "--target", "v2", "--json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["passed"], true, "{}", out.stdout);
    assert_eq!(j["level"], "fast");
    assert_eq!(j["to"], ids[1]);
    assert_eq!(j["database"], serde_json::Value::Null);
    let names: Vec<String> = steps(&j["rollback"]).into_iter().map(|(s, _)| s).collect();
    assert!(names.contains(&"reset".to_owned()) && names.contains(&"remove_untracked".to_owned()), "{names:?}");
    assert_eq!(steps(&j["undo"]).iter().filter(|(_, st)| st != "done").count(), 0, "{}", out.stdout);
    assert_eq!(fingerprint(r.path()), before);
}

#[test]
fn refusals_are_exit_4_and_bad_input_exit_2_with_nothing_copied_or_changed() {
    let (r, _) = messy_repo();
    r.git(&["stash", "-u"]);
    let before = fingerprint(r.path());
    let out = fr(&r, &["rehearse", "--fast", "--target", "HEAD"]);
    out.code(4);
    assert!(out.stderr.contains("nothing to roll back"), "{}", out.stderr);
    let out = fr(&r, &["rehearse", "--target", "no-such-rev"]);
    out.code(2);
    assert_eq!(fingerprint(r.path()), before);

    // A SQLite file that is not there: nothing to rehearse on, and none is created.
    r.write(
        CONFIG,
        format!("[database]\nkind = \"sql\"\nurl = \"sqlite:///missing.db\"\nmigrations_dir = \"{SQL_DIR}\"\n"),
    );
    let before = fingerprint(r.path());
    let out = fr(&r, &["rehearse", "--full", "--target", "v2"]);
    out.code(4);
    assert!(out.stderr.contains("missing.db does not exist"), "{}", out.stderr);
    assert_eq!(fingerprint(r.path()), before);
}

#[test]
fn a_state_folder_outside_the_tree_is_copied_not_written() {
    // The state folder configured outside the tree is copied, not written.
    let (r, _) = messy_repo();
    let state = tempfile::tempdir().unwrap();
    r.write(CONFIG, format!("[state]\ndir = \"{}\"\n", state.path().join("st").display()));
    crate::common::rollback(&r, "v2");
    let last = fr(&r, &["runs", "list", "--json"]).json();
    let run = last[0]["run_id"].as_str().unwrap().to_owned();
    crate::common::undo(&r, &run);
    let before = (fingerprint(r.path()), fingerprint(state.path()));
    let out = fr(&r, &["rehearse", "--fast", "--target", "v1", "--json"]);
    out.ok();
    assert_eq!(out.json()["passed"], true, "{}", out.stdout);
    assert_eq!((fingerprint(r.path()), fingerprint(state.path())), before);
}

/// An `env.py` that ignores the URL forge-rollback hands it would downgrade the real database
/// from the copy: the stock one of `alembic init`, with the ini naming the real file by its
/// absolute path. `plan --full` passes (that is the configured file), `rehearse` refuses
/// (exit 4), and the real database is untouched.
#[test]
fn rehearse_refuses_an_env_py_that_would_reach_the_real_database() {
    let r = TestRepo::new();
    let init = std::process::Command::new(python())
        .args(["-m", "alembic", "init", "migrations"])
        .current_dir(r.path())
        .output()
        .unwrap();
    assert!(init.status.success(), "alembic init: {}", String::from_utf8_lossy(&init.stderr));
    let real = std::fs::canonicalize(r.path()).unwrap().join("app.db");
    let stock = std::fs::read_to_string(r.path().join("alembic.ini")).unwrap();
    r.write(
        "alembic.ini",
        stock.replace("driver://user:pass@localhost/dbname", &format!("sqlite:///{}", real.display())),
    );
    r.write(".gitignore", "app.db\n");
    for (rev, down, table) in [("a1", "None", "users"), ("b2", "\"a1\"", "orders")] {
        r.write(
            format!("migrations/versions/{rev}.py"),
            format!(
                "revision = \"{rev}\"\ndown_revision = {down}\nbranch_labels = None\ndepends_on = None\nfrom alembic import op\nimport sqlalchemy as sa\n\ndef upgrade():\n    op.create_table(\"{table}\", sa.Column(\"id\", sa.Integer(), primary_key=True))\n\ndef downgrade():\n    op.drop_table(\"{table}\")\n"
            ),
        );
        r.commit_all(rev);
        r.git(&["tag", rev]);
    }
    let config = format!("[database]\nkind = \"alembic\"\nurl = \"sqlite:///app.db\"\npython = \"{}\"\n", python());
    r.write(CONFIG, &config);
    let rb = Rollback::with_backend(
        vcs::open(BackendKind::GitCli, r.path()).unwrap(),
        Config::parse(&config, None).unwrap(),
    )
    .unwrap();
    rb.upgrade_database(&[]).unwrap();
    fr(&r, &["plan", "--full", "--target", "a1"]).ok();
    let before = fingerprint(r.path());

    let out = fr(&r, &["rehearse", "--full", "--target", "a1"]);
    out.code(4);
    assert!(out.stderr.contains("the migration environment would not use the configured database"), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("connects to `sqlite:///{}`", real.display())), "{}", out.stderr);
    assert!(
        out.stderr.contains("hint: make env.py connect with the URL forge-rollback hands it in $DATABASE_URL"),
        "{}",
        out.stderr
    );
    assert_eq!(fingerprint(r.path()), before);
}

/// A run in progress would change the tree while it is copied: exit 3, naming the holder.
#[test]
fn a_run_holding_the_lock_makes_rehearse_exit_3() {
    use std::time::{Duration, Instant};
    let (r, _) = messy_repo();
    let release = r.path().join(".git/release-first-run");
    let first = crate::common::command(r.path(), &["run", "--fast", "--yes", "--json", "--target", "v1"])
        .env("FORGE_ROLLBACK_FAILPOINT", "after:lock")
        .env("FORGE_ROLLBACK_FAILPOINT_ACTION", "pause")
        .env("FORGE_ROLLBACK_FAILPOINT_RELEASE", &release)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lock = r.path().join(".git/forge-rollback/lock");
    let start = Instant::now();
    while !std::fs::read_to_string(&lock).is_ok_and(|s| s.contains("pid")) {
        assert!(start.elapsed() < Duration::from_secs(60), "first run never took the lock");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = fr(&r, &["rehearse", "--fast", "--target", "v2"]);
    out.code(3);
    assert!(out.stderr.contains(&format!("another rollback is running: pid {}", first.id())), "{}", out.stderr);
    std::fs::write(&release, "").unwrap();
    let done = first.wait_with_output().unwrap();
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
}

#[test]
fn the_text_report() {
    let (r, ids) = messy_repo();
    let out = fr(&r, &["rehearse", "--fast", "--target", "v2"]);
    out.ok();
    let head = r.head();
    let text = rollback_testkit::redact(&out.stdout, r.path(), &[(&ids[1], "v2"), (&head, "v3")]);
    insta::with_settings!({ filters => vec![(r"\s+\d+ ms", " [N] ms")] }, {
        insta::assert_snapshot!("rehearse_fast_text", text);
    });
}
