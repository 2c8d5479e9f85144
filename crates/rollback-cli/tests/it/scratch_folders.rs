//! The scratch folders that hold copies of the database outside the state folder (the
//! data-loss forecast's `forge-rollback-forecast-*`, the undo's `forge-rollback-rows-*`) are
//! private, and the ones a killed process left are removed by the next command that makes one;
//! a folder whose owner holds its lock is kept, though its pid is unused here.
//! Real Alembic on SQLite, through the binary, with `TMPDIR` pointing at a folder of the test.

use rollback_testkit::db::Engine;

use crate::common::fr_env;
use crate::rows_sqlite_exact::Deployed;

/// v4 over the Alembic fixture: a table, dropped again by its downgrade.
const AUDIT: &str = r#"from alembic import op
import sqlalchemy as sa

revision = "e4e4e4e4e404"
down_revision = "b84e1d2c3f03"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("audit", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade():
    op.drop_table("audit")
"#;

/// The id of a process that has exited and been reaped.
fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    pid
}

#[test]
fn scratch_folders_of_killed_processes_are_removed_by_the_next_forecast() {
    let d = Deployed::new(Engine::Sqlite, AUDIT);
    let tmp = tempfile::tempdir().unwrap();
    let dead = dead_pid();
    let stale_forecast = tmp.path().join(format!("forge-rollback-forecast-{dead}-aB3dEf"));
    let stale_rows = tmp.path().join(format!("forge-rollback-rows-{dead}-Gh5iJk"));
    for stale in [&stale_forecast, &stale_rows] {
        std::fs::create_dir(stale).unwrap();
        std::fs::write(stale.join("forge_rollback_scratch_0123456789ab.db"), "a copy of the data").unwrap();
    }
    // Process 1 is always there: its folder is in use.
    let live = tmp.path().join("forge-rollback-forecast-1-lMn0pQ");
    std::fs::create_dir(&live).unwrap();
    // A forge-rollback in another PID namespace sharing this temp folder (another container): its
    // pid is unused here, but it holds its folder's lock, so the folder is in use.
    let elsewhere = tmp.path().join(format!("forge-rollback-rows-{dead}-rS7tUv"));
    std::fs::create_dir(&elsewhere).unwrap();
    let held = std::fs::File::open(&elsewhere).unwrap();
    // SAFETY: the descriptor is open for the call.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&held), libc::LOCK_EX | libc::LOCK_NB) };
    assert_eq!(rc, 0);

    d.sql("INSERT INTO audit (id) VALUES (1), (2)");
    let env = [("TMPDIR", tmp.path().to_str().unwrap())];
    let plan = fr_env(&d.repo, &["plan", "--full", "--target", "v3", "--json"], &env);
    plan.ok();
    assert!(plan.json()["data_loss"].as_array().is_some_and(|l| !l.is_empty()), "the forecast ran: {}", plan.stdout);

    assert!(!stale_forecast.exists() && !stale_rows.exists(), "stale folders removed");
    assert!(live.exists(), "a live process's folder is kept");
    assert!(elsewhere.exists(), "a locked folder is kept, whatever its pid");
    let mut left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    left.sort();
    assert_eq!(
        left,
        [live.file_name().unwrap(), elsewhere.file_name().unwrap()],
        "the forecast's own folder is gone too"
    );
    drop(held);
}
