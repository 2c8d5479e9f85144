//! A process that has the SQLite database open through another SQLite than the engine's (the
//! Python module inside an app using Python's `sqlite3`): neither SQLite sees the other's
//! locks, so a full rollback is refused before anything changes, and `assess` shows the
//! database as not readable. A child test process stands in for the app: it loads the system's
//! SQLite, as Python's `sqlite3` does, and holds the database file open. (A child, because the
//! loaded SQLite stays for the process's life and would turn the check on for every other test
//! running beside it under `cargo test`.)

use rollback_core::event::Recorder;
use rollback_core::hint::Frontend;
use rollback_core::prompt::AutoConfirm;
use rollback_core::{ErrorKind, RunStatus};
use rollback_testkit::db::{Engine, MigratorKind as Fx};

use super::full::{deploy, engine, full, state};

/// Loads the system's SQLite into the test process, as Python's `sqlite3` does.
#[allow(unsafe_code)]
fn load_another_sqlite() {
    let name = c"libsqlite3.so.0";
    // SAFETY: `name` is a valid C string; the library stays loaded for the process's life.
    let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "this test needs the system's libsqlite3.so.0 (Debian: libsqlite3-0)");
}

/// Set in the child process that runs the test's body.
const CHILD: &str = "FORGE_TEST_FOREIGN_SQLITE_CHILD";

/// Runs the test `name` of this binary alone in a child process; true in that child.
fn in_child(name: &str) -> bool {
    if std::env::var_os(CHILD).is_some() {
        return true;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--test-threads=1", "--nocapture"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("1 passed"), "{text}");
    false
}

#[test]
fn a_database_open_through_another_sqlite_of_this_process_refuses_a_full_rollback() {
    if !in_child("foreign_sqlite::a_database_open_through_another_sqlite_of_this_process_refuses_a_full_rollback") {
        return;
    }
    let d = deploy(Fx::Sql, Engine::Sqlite);
    let rb = engine(&d);
    let before = state(&d, &rb);
    let file = d.repo.path().join("app.db");
    let bytes = std::fs::read(&file).unwrap();
    load_another_sqlite();

    let app = std::fs::File::open(&file).unwrap();
    let a = rb.assess(Some("v1")).unwrap();
    let db = a.database.as_ref().unwrap();
    assert!(!db.reachable);
    let risk = db.risks.iter().find(|r| r.code.as_str() == "db_unreachable").expect("a db_unreachable risk");
    assert!(risk.message.contains("open through another SQLite"), "{}", risk.message);

    let err = rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{}", err.chain());
    let text = err.chain();
    assert!(text.contains("this process has the SQLite database"), "{text}");
    assert!(text.contains("open through another SQLite"), "{text}");
    let hint = err.hint_for(Frontend::Python).unwrap_or_default();
    assert!(hint.contains("run the rollback from another process"), "{hint}");
    assert_eq!(std::fs::read(&file).unwrap(), bytes, "the database file was not touched");
    assert!(rb.runs().unwrap().is_empty(), "no run was started");

    // Closed again, the same run goes through.
    drop(app);
    assert_eq!(state(&d, &rb), before);
    let out = rb.run(&full("v1"), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    assert_eq!(d.repo.head(), d.repo.git(&["rev-parse", "v1^{commit}"]));
}
