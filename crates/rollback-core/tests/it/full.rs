//! Full rollbacks through the engine on real databases: code, schema, rows and env go back
//! together, and `undo` returns every one of them exactly. The same tests run for Alembic and
//! the native SQL migrator, on SQLite and on a real PostgreSQL.

use std::path::Path;

use rollback_core::config::Config;
use rollback_core::db::Revision;
use rollback_core::event::Recorder;
use rollback_core::plan::{Level, Step};
use rollback_core::prompt::{AutoConfirm, Confirmation, Prompter, StepApproval, StepDecision, StepInspector};
use rollback_core::rt::block_on;
use rollback_core::vcs::{self, BackendKind};
use rollback_core::{ErrorKind, Rollback, RunOptions, RunStatus};
pub(crate) use rollback_testkit::db::Engine;
use rollback_testkit::db::{MigrationFixture, MigratorKind as Fx, PgDatabase, SQL_DIR, python};
use rollback_testkit::{TestRepo, TreeState};

/// A sample app over v0..v3 with a database migrated release by release: v1 deployed with
/// its `.env` and marked known-good (which records the env and the schema revision), then
/// v3 deployed on top with rows in every table and a different `.env`.
pub(crate) struct Deployed {
    pub(crate) repo: TestRepo,
    pub(crate) fx: MigrationFixture,
    pub(crate) config: Config,
    pg: Option<PgDatabase>,
    pub(crate) password: Option<String>,
}

const ENV_V1: &str = "SECRET_KEY=v1-key-7731\nFEATURE_EMAIL=off\n";
const ENV_V3: &str = "SECRET_KEY=v3-key-9902\nFEATURE_EMAIL=on\nSTRIPE_KEY=sk_live_v3_4417\n";

impl Deployed {
    /// The PostgreSQL database's name, if it runs on one.
    pub(crate) fn pg_name(&self) -> Option<&str> {
        self.pg.as_ref().map(PgDatabase::name)
    }
}

pub(crate) fn rev(d: &Deployed, i: usize) -> Revision {
    Revision(d.fx.revisions[i].clone())
}

pub(crate) fn engine(d: &Deployed) -> Rollback {
    Rollback::with_backend(vcs::open(BackendKind::GitCli, d.repo.path()).unwrap(), d.config.clone()).unwrap()
}

pub(crate) fn sql(rb: &Rollback, statement: &str) {
    block_on(rb.db().unwrap().unwrap().database().query_scalar(statement)).unwrap();
}

pub(crate) fn deploy(kind: Fx, db: Engine) -> Deployed {
    let repo = TestRepo::new();
    let fx = MigrationFixture::new(&repo, kind);
    let (pg, url) = db.database();
    let password = pg.as_ref().map(|p| p.server().password.clone());
    let text = format!(
        "[database]\nkind = \"{}\"\nurl = \"{url}\"\nmigrations_dir = \"{SQL_DIR}\"\npython = \"{}\"\ntimeout_secs = 120\n",
        fx.kind_name(),
        python()
    );
    let config = Config::parse(&text, Some(Path::new("/outside/forge-rollback.toml"))).unwrap();
    let d = Deployed { repo, fx, config, pg, password };

    // v1 is deployed: its schema, a row, its `.env`; after its uptime it is marked good.
    d.repo.git(&["reset", "-q", "--hard", "v1"]);
    let rb = engine(&d);
    block_on(rb.db().unwrap().unwrap().upgrade(&[])).unwrap();
    sql(&rb, "INSERT INTO users (id, name, legacy) VALUES (1, 'ada', 'old-id-1')");
    d.repo.write(".env", ENV_V1);
    let mark = rb.mark_good("HEAD", Some("24h uptime")).unwrap();
    assert_eq!(mark.entry.database_migrations, [d.fx.revisions[0].clone()]);
    assert!(mark.env.is_some(), "the env was recorded with v1");

    // v3 is deployed on top: migrations 2 and 3 run, rows are written, the `.env` changes.
    d.repo.git(&["reset", "-q", "--hard", "v3"]);
    block_on(rb.db().unwrap().unwrap().upgrade(&[])).unwrap();
    sql(&rb, "INSERT INTO users (id, name, email) VALUES (2, 'grace', 'grace@example.com')");
    sql(&rb, "INSERT INTO payments (id, amount_cents, note) VALUES (10, 4200, 'after v3')");
    d.repo.write(".env", ENV_V3);
    d.repo.write("app/main.py", "# hotfix attempt in progress\n");
    d
}

/// Everything a full undo must give back.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct State {
    pub(crate) tree: TreeState,
    pub(crate) head: String,
    pub(crate) branch: Option<String>,
    pub(crate) dump: String,
}

pub(crate) fn state(d: &Deployed, rb: &Rollback) -> State {
    State {
        // The SQLite file's bytes change on restore (pages are rewritten): compare its content
        // through the dump instead. Caches are cleared, not restored.
        tree: d.repo.tree().without(|p| {
            let s = String::from_utf8_lossy(p);
            s.starts_with("app.db") || s.contains("__pycache__")
        }),
        head: d.repo.head(),
        branch: d.repo.branch(),
        dump: block_on(rb.db().unwrap().unwrap().database().canonical_dump()).unwrap(),
    }
}

pub(crate) fn full(target: &str) -> RunOptions {
    RunOptions { level: Some(Level::Full), target: Some(target.into()), ..RunOptions::default() }
}

fn full_rollback_across_two_revisions_then_undo(kind: Fx, db: Engine) {
    let d = deploy(kind, db);
    let rb = engine(&d);
    let before = state(&d, &rb);
    assert!(before.dump.contains("payments") && before.dump.contains("grace@example.com"), "{}", before.dump);

    // assess: the database and the env both say "full".
    let a = rb.assess(Some("v1")).unwrap();
    let dba = a.database.as_ref().unwrap();
    assert!(dba.reachable && dba.needs_downgrade);
    assert_eq!(dba.current, [rev(&d, 2)]);
    assert_eq!(dba.target_heads, [rev(&d, 0)]);
    let path: Vec<&str> = dba.path.iter().map(|p| p.revision.as_str()).collect();
    assert_eq!(path, [d.fx.revisions[2].as_str(), d.fx.revisions[1].as_str()]);
    assert_eq!(a.recommended_level, Level::Full, "{}", a.recommendation);
    let env = a.env.as_ref().unwrap();
    let diff = &env.diffs[0];
    assert_eq!(
        (diff.removed.clone(), diff.changed.clone()),
        (vec!["STRIPE_KEY".to_owned()], vec!["FEATURE_EMAIL".to_owned(), "SECRET_KEY".to_owned()])
    );
    let json = serde_json::to_string(&a).unwrap();
    for secret in ["v1-key-7731", "v3-key-9902", "sk_live_v3_4417"] {
        assert!(!json.contains(secret), "an env value leaked into the assessment");
    }
    if let Some(pw) = &d.password {
        assert!(!json.contains(pw.as_str()), "the database password leaked into the assessment");
    }

    // The plan: database snapshot and downgrade before the reset, env after it.
    let plan = rb.plan(Some(Level::Full), Some("v1")).unwrap();
    let names: Vec<&str> = plan.steps.iter().map(Step::name).collect();
    assert_eq!(
        names,
        ["snapshot", "db_snapshot", "downgrade", "reset", "remove_untracked", "restore_env", "clear_caches", "record"]
    );
    let Some(Step::Downgrade { sql: Some(preview), .. }) = plan.steps.iter().find(|s| s.name() == "downgrade") else {
        panic!("the plan shows the downgrade SQL: {plan:#?}")
    };
    assert!(preview.to_lowercase().contains("drop table payments"), "{preview}");

    let out = rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    assert_eq!(block_on(rb.db().unwrap().unwrap().current()).unwrap(), [rev(&d, 0)]);
    let dump = block_on(rb.db().unwrap().unwrap().database().canonical_dump()).unwrap();
    assert!(!dump.contains("payments"), "v3's table is gone:\n{dump}");
    assert!(dump.contains("ada"), "v1's rows stay:\n{dump}");
    assert_eq!(d.repo.head(), d.fx.commits[1], "the code is v1's");
    assert_eq!(String::from_utf8(d.repo.read(".env")).unwrap(), ENV_V1, "the env recorded with v1 is back");

    let undo = rb.undo(out.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert_eq!(state(&d, &rb), before, "schema, rows, code and env are back exactly");

    // The undo is itself undoable: back on v1 with v1's schema and env.
    let again = rb.undo(undo.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(again.status, RunStatus::Succeeded, "{:?}", again.error);
    assert_eq!(block_on(rb.db().unwrap().unwrap().current()).unwrap(), [rev(&d, 0)]);
    assert_eq!(String::from_utf8(d.repo.read(".env")).unwrap(), ENV_V1);
}

fn a_failed_downgrade_leaves_database_and_code_as_they_were(kind: Fx, db: Engine) {
    let d = deploy(kind, db);
    // Migration 2's downgrade now fails after its first statement.
    d.fx.break_second_downgrade(&d.repo);
    let rb = engine(&d);
    let before = state(&d, &rb);
    let out = rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    let error = out.error.clone().unwrap();
    assert!(error.contains("the database was restored from backup"), "{error}");
    assert!(error.contains("the code was not touched"), "{error}");
    let failed: Vec<(&str, &str)> = out.steps.iter().map(|s| (s.step.as_str(), s.status.as_str())).collect();
    assert_eq!(
        &failed[..4],
        [("snapshot", "done"), ("db_snapshot", "done"), ("downgrade", "failed"), ("reset", "pending")]
    );
    assert_eq!(state(&d, &rb), before, "database, code, env and the broken file are as they were");
    if let Some(pw) = &d.password {
        assert!(!error.contains(pw.as_str()));
    }
    // It changed nothing, so it blocks no new run: one goes ahead (and fails at the same
    // downgrade, changing nothing either). Its undo changes nothing.
    let again = rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(again.status, RunStatus::Failed, "{:?}", again.error);
    assert_eq!(state(&d, &rb), before);
    // The journal says the database is back already: the undo does not restore it again
    // (that would throw away whatever was written since).
    let undo = rb.undo(out.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert!(!undo.steps.iter().any(|s| s.step == "restore_database"), "{:?}", undo.steps);
    assert_eq!(state(&d, &rb), before);
}

macro_rules! cases {
    ($($name:ident: $kind:expr, $db:expr;)*) => {$(
        mod $name {
            use super::*;

            #[test]
            fn full_rollback_across_two_revisions_then_undo() {
                super::full_rollback_across_two_revisions_then_undo($kind, $db);
            }

            #[test]
            fn a_failed_downgrade_leaves_database_and_code_as_they_were() {
                super::a_failed_downgrade_leaves_database_and_code_as_they_were($kind, $db);
            }
        }
    )*};
}

cases! {
    alembic_sqlite: Fx::Alembic, Engine::Sqlite;
    alembic_postgres: Fx::Alembic, Engine::Postgres;
    sql_sqlite: Fx::Sql, Engine::Sqlite;
    sql_postgres: Fx::Sql, Engine::Postgres;
}

#[test]
fn an_irreversible_downgrade_is_refused_unless_allowed() {
    let d = deploy(Fx::Sql, Engine::Sqlite);
    let rb = engine(&d);
    let before = state(&d, &rb);
    let a = rb.assess(Some("v0")).unwrap();
    assert!(a.risks.iter().any(|r| r.code == "irreversible_downgrade"), "{:#?}", a.risks);
    let err = rb.run(&full("v0"), &AutoConfirm, &Recorder::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert!(err.to_string().contains("cannot restore data"), "{err}");
    assert!(rollback_core::Error::hint(&err).unwrap().to_string().contains("--allow-irreversible"));
    assert_eq!(state(&d, &rb), before, "refused: nothing changed");
}

#[test]
fn an_unreachable_database_refuses_a_full_rollback_and_changes_nothing() {
    let d = deploy(Fx::Sql, Engine::Postgres);
    let pw = d.password.clone().unwrap();
    let url = rollback_testkit::db::pg_url().replace(&format!(":{pw}@"), ":wrong-password@");
    let text = format!("[database]\nkind = \"sql\"\nurl = \"{url}\"\nmigrations_dir = \"{SQL_DIR}\"\n");
    let config = Config::parse(&text, None).unwrap();
    let rb = Rollback::with_backend(vcs::open(BackendKind::GitCli, d.repo.path()).unwrap(), config).unwrap();
    let tree = d.repo.tree();
    let a = rb.assess(Some("v1")).unwrap();
    assert!(!a.database.as_ref().unwrap().reachable);
    let err = rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert!(err.to_string().contains("cannot be reached"), "{err}");
    assert!(!err.to_string().contains("wrong-password"), "{err}");
    assert_eq!(d.repo.tree(), tree);
    assert!(rb.runs().unwrap().is_empty(), "no run was started");
}

#[test]
fn unknown_revision_and_unparsable_files_refuse_a_full_rollback_and_change_nothing() {
    let d = deploy(Fx::Sql, Engine::Sqlite);
    let rb = engine(&d);
    // A newer release migrated the database past anything these files define.
    sql(
        &rb,
        "INSERT INTO forge_rollback_migrations (version, name, checksum, applied_at) VALUES (9, '0009_future', 'x', 'now')",
    );
    let before = state(&d, &rb);
    let err = rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(err.to_string().contains("0009"), "{err}");
    assert_eq!(state(&d, &rb), before);
    sql(&rb, "DELETE FROM forge_rollback_migrations WHERE version = 9");

    // A migration file that does not parse: the assessment fails, naming it.
    let bad = d.fx.write_unparsable(&d.repo);
    let before = state(&d, &rb);
    let err = rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap_err();
    assert!(err.to_string().contains(&bad), "{err}");
    assert_eq!(state(&d, &rb), before);
    assert!(rb.runs().unwrap().is_empty(), "no run was started");
}

/// Answers a manual run from a script (step name → decision; default: run) and keeps the
/// confirmation it was shown.
struct Scripted {
    answers: Vec<(&'static str, StepDecision)>,
    summary: std::sync::Mutex<String>,
}

impl Scripted {
    fn new(answers: Vec<(&'static str, StepDecision)>) -> Self {
        Self { answers, summary: std::sync::Mutex::default() }
    }
}

impl Prompter for Scripted {
    fn confirm(&self, request: &Confirmation) -> rollback_core::Result<bool> {
        request.summary.clone_into(&mut self.summary.lock().unwrap());
        Ok(true)
    }

    fn approve_step(&self, request: &StepApproval, _: &dyn StepInspector) -> rollback_core::Result<StepDecision> {
        Ok(self.answers.iter().find(|(n, _)| *n == request.name).map_or(StepDecision::Run, |(_, d)| *d))
    }
}

fn manual(target: &str) -> RunOptions {
    RunOptions { level: Some(Level::Manual), target: Some(target.into()), ..RunOptions::default() }
}

#[test]
fn the_confirmation_names_the_database_downgrade_and_the_env() {
    let d = deploy(Fx::Sql, Engine::Sqlite);
    let rb = engine(&d);
    let script = Scripted::new(vec![("snapshot", StepDecision::Abort { undo: false })]);
    let out = rb.run(&manual("v1"), &script, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Cancelled);
    let summary = script.summary.lock().unwrap().clone();
    assert!(
        summary.contains("Database sqlite:///") && summary.contains("downgraded 0003 -> 0001 (2 migration(s) undone"),
        "{summary}"
    );
    assert!(
        summary.contains("Env files replaced with those recorded for the target (snapshotted first): .env"),
        "{summary}"
    );
}

#[test]
fn an_undo_does_not_restore_a_database_the_run_never_changed() {
    let d = deploy(Fx::Sql, Engine::Sqlite);
    let rb = engine(&d);
    // The operator takes the database snapshot but skips the downgrade.
    let script = Scripted::new(vec![("downgrade", StepDecision::Skip)]);
    let out = rb.run(&manual("v1"), &script, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    assert!(out.steps.iter().any(|s| s.step == "db_snapshot" && s.status == "done"));
    // Production keeps writing after the rollback; an undo must not throw that away.
    sql(&rb, "INSERT INTO payments (id, amount_cents, note) VALUES (11, 99, 'written after the rollback')");
    let undo = rb.undo(out.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert!(!undo.steps.iter().any(|s| s.step == "restore_database"), "{:?}", undo.steps);
    let dump = block_on(rb.db().unwrap().unwrap().database().canonical_dump()).unwrap();
    assert!(dump.contains("written after the rollback"), "{dump}");
}

#[test]
fn a_manual_run_aborted_half_way_blocks_new_runs_until_resumed_and_never_runs_skipped_steps() {
    let d = deploy(Fx::Sql, Engine::Sqlite);
    let rb = engine(&d);
    let backup_of = |run: &str| {
        let (outcome, _, _) = rb.run_details(run).unwrap();
        outcome.backup_id.unwrap()
    };
    // Downgrade done, reset skipped, then aborted: schema at v1, code at v3.
    let script =
        Scripted::new(vec![("reset", StepDecision::Skip), ("remove_untracked", StepDecision::Abort { undo: false })]);
    let out = rb.run(&manual("v1"), &script, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Cancelled);
    let id = out.run_id.clone().unwrap();
    let backup = backup_of(&id);
    assert_eq!(d.repo.head(), d.fx.commits[3], "the reset was skipped");
    // Half-applied: a new run is refused, naming it.
    let err = rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused);
    assert!(err.to_string().contains(&id) && err.to_string().contains("was aborted"), "{err}");
    // Resumed without asking: the skipped reset stays skipped, the snapshot is not retaken.
    let resumed = rb.resume(&id, &Recorder::default()).unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
    assert_eq!(d.repo.head(), d.fx.commits[3], "a declined step never runs");
    assert_eq!(backup_of(&id), backup, "the snapshot from before any change is kept");
    let statuses: Vec<(&str, &str)> = resumed.steps.iter().map(|s| (s.step.as_str(), s.status.as_str())).collect();
    assert!(
        statuses.contains(&("reset", "skipped")) && statuses.contains(&("remove_untracked", "done")),
        "{statuses:?}"
    );
}

/// A restored SQLite file keeps the database file's mode and owner: an app running as another
/// user must still open it after `undo`.
#[test]
fn a_restored_sqlite_file_keeps_its_mode_and_owner() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let d = deploy(Fx::Sql, Engine::Sqlite);
    let db = d.repo.path().join("app.db");
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o664)).unwrap();
    // As root (CI), hand the file to another owner, as an app user would own it.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if root {
        std::os::unix::fs::chown(&db, Some(65534), Some(65534)).unwrap();
    } else {
        #[allow(clippy::print_stderr)] // says what was not tested
        {
            eprintln!("not root: the owner half of this test is skipped");
        }
    }
    let before = std::fs::metadata(&db).unwrap();
    let rb = engine(&d);
    let run = rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{:?}", run.error);
    let undo = rb.undo(run.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert!(undo.steps.iter().any(|s| s.step == "restore_database" && s.status == "done"), "{:?}", undo.steps);
    let after = std::fs::metadata(&db).unwrap();
    assert_eq!(after.mode() & 0o7777, 0o664, "mode kept");
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()), "owner kept");
}

/// `--full --target HEAD` with the database at HEAD's revision and no recorded env to put back
/// has nothing to do: refused, nothing written (it used to snapshot, "reset" and restart).
#[test]
fn a_full_rollback_to_head_with_nothing_to_move_is_refused() {
    let d = deploy(Fx::Sql, Engine::Sqlite);
    let rb = engine(&d);
    let before = state(&d, &rb);
    let err = rb.run(&full("HEAD"), &AutoConfirm, &Recorder::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(err.to_string().starts_with("nothing to roll back: HEAD is already at"), "{err}");
    assert!(rollback_core::Error::hint(&err).unwrap().to_string().contains("--fast"), "{err}");
    assert_eq!(state(&d, &rb), before);
    assert!(rb.runs().unwrap().is_empty(), "no run was started");
}

/// A SQLite path with no file is a wrong path, not a database at "base": `assess` says so
/// naming the path, `plan` and `run` at the full level refuse, a fast rollback still works.
#[test]
fn a_missing_sqlite_file_is_named_not_read_as_base() {
    let repo = TestRepo::new();
    let fx = MigrationFixture::new(&repo, Fx::Sql);
    let text = format!(
        "[database]\nkind = \"{}\"\nurl = \"sqlite:///data/typo.db\"\nmigrations_dir = \"{SQL_DIR}\"\n",
        fx.kind_name()
    );
    let config = Config::parse(&text, Some(Path::new("/outside/forge-rollback.toml"))).unwrap();
    let rb = Rollback::with_backend(vcs::open(BackendKind::GitCli, repo.path()).unwrap(), config).unwrap();
    let a = rb.assess(Some("v1")).unwrap();
    let risk = a.risks.iter().find(|r| r.code == "db_unreachable").expect("a db_unreachable risk");
    assert!(risk.message.contains("data/typo.db") && risk.message.contains("does not exist"), "{}", risk.message);
    for err in [
        rb.plan(Some(Level::Full), Some("v1")).unwrap_err(),
        rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap_err(),
    ] {
        assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
        assert!(err.to_string().contains("data/typo.db"), "{err}");
    }
    assert!(!repo.exists("data/typo.db"), "nothing created the file");
    let fast = RunOptions { level: Some(Level::Fast), target: Some("v1".into()), ..RunOptions::default() };
    assert_eq!(rb.run(&fast, &AutoConfirm, &Recorder::default()).unwrap().status, RunStatus::Succeeded);
}

/// Issue 12 case 3 (issue 13 case 4): the downgrade fails on a broken migration file; the
/// operator fixes the file, as the hint says, and edits the env; `resume` captures both before
/// going on, and `undo` of the resumed run gives back the fixed file and the edited env, not
/// the broken file and the old env. The failed downgrade left the database as it was, so
/// nothing had changed yet: the resume takes both snapshots again (rows the app wrote since
/// the failure are in the new database snapshot), rather than capturing on top of the old one.
#[test]
fn resume_captures_the_operators_fix_and_undo_gives_it_back() {
    let d = deploy(Fx::Sql, Engine::Sqlite);
    d.fx.break_second_downgrade(&d.repo);
    let rb = engine(&d);
    let out = rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    let id = out.run_id.clone().unwrap();
    let migration = format!("{SQL_DIR}/0002_add_email.down.sql");
    let fixed = "-- fixed by the operator during the incident\nALTER TABLE users ADD COLUMN legacy VARCHAR(50);\nALTER TABLE users DROP COLUMN email;\n";
    d.repo.write(&migration, fixed);
    let env_edit = format!("{ENV_V3}HOTFIX_FLAG=1\n");
    d.repo.write(".env", &env_edit);

    let resumed = rb.resume(&id, &Recorder::default()).unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
    assert_eq!(d.repo.head(), d.fx.commits[1], "the code is v1's");
    let (_, records, _) = rb.run_details(&id).unwrap();
    let snapshots: Vec<_> = records
        .iter()
        .filter_map(|r| match r {
            rollback_core::journal::Record::StepEnd { step, detail, .. }
                if step == "snapshot" || step == "db_snapshot" =>
            {
                detail.snapshot().cloned().map(|s| (step.clone(), s))
            }
            _ => None,
        })
        .collect();
    let steps: Vec<&str> = snapshots.iter().map(|(step, _)| step.as_str()).collect();
    assert_eq!(steps, ["snapshot", "db_snapshot", "snapshot", "db_snapshot"], "{records:?}");
    assert!(!records.iter().any(|r| matches!(r, rollback_core::journal::Record::Recaptured { .. })), "{records:?}");
    assert_eq!(resumed.backup_id.as_ref(), Some(&snapshots[2].1), "the run's backup is the new one");

    let undo = rb.undo(&id, &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert_eq!(d.repo.head(), d.fx.commits[3], "back on v3");
    assert_eq!(String::from_utf8(d.repo.read(&migration)).unwrap(), fixed, "the operator's fix is back");
    assert_eq!(String::from_utf8(d.repo.read(".env")).unwrap(), env_edit, "the edited env is back");
    assert_eq!(String::from_utf8(d.repo.read("app/main.py")).unwrap(), "# hotfix attempt in progress\n");
}
