//! The migration program forge-rollback starts (Alembic here) and the signals an operator
//! sends: a Ctrl-C at the terminal signals the whole foreground process group, and must stop
//! the run at the step boundary after the downgrade, not kill Alembic half-way through it; a
//! `kill -9` of forge-rollback must not leave Alembic migrating with nobody watching, racing a
//! `resume`. Real Alembic on SQLite, through the binary.

use std::os::unix::process::CommandExt as _;
use std::time::Duration;

use rollback_testkit::db::Engine;

use crate::common::{Background, command, wait_until};
use crate::rows_sqlite_exact::Deployed;

/// v4 over the Alembic fixture: a table whose downgrade drops it, writes Alembic's pid to
/// `alembic.pid` in the work tree, then takes `seconds` more (not when the plan asks Alembic
/// for the downgrade's SQL, offline, nor on the forecast's scratch copy).
fn slow_downgrade(seconds: u32) -> String {
    format!(
        r#"from alembic import context, op
import os, time
import sqlalchemy as sa

revision = "e4e4e4e4e404"
down_revision = "b84e1d2c3f03"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table("audit", sa.Column("id", sa.Integer(), primary_key=True))


def downgrade():
    op.drop_table("audit")
    if context.is_offline_mode() or "forge_rollback_scratch" in str(op.get_bind().engine.url):
        return  # the plan's SQL preview, the forecast on a scratch copy
    with open("alembic.pid.tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename("alembic.pid.tmp", "alembic.pid")
    time.sleep({seconds})
"#
    )
}

/// Alembic's pid, once its downgrade has begun.
fn alembic_pid(d: &Deployed) -> i32 {
    let file = d.repo.path().join("alembic.pid");
    wait_until("Alembic to begin the downgrade", Duration::from_secs(120), || file.exists());
    std::fs::read_to_string(file).unwrap().trim().parse().unwrap()
}

fn alive(pid: i32) -> bool {
    // Gone, or a zombie nobody has reaped yet: either way, no longer migrating.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

#[test]
fn ctrl_c_during_the_downgrade_stops_the_run_after_it() {
    let d = Deployed::new(Engine::Sqlite, &slow_downgrade(3));
    // Its own process group, as a shell gives a foreground job: the test signals that group.
    let mut cmd = command(d.repo.path(), &["run", "--full", "--yes", "--target", "v3", "--json"]);
    let run =
        cmd.process_group(0).stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let alembic = alembic_pid(&d);
    let group = format!("-{}", run.id());
    assert!(std::process::Command::new("kill").args(["-INT", "--", &group]).status().unwrap().success());
    let out = run.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "cancelled at a step boundary ({:?}):\n{stderr}", out.status);
    assert!(!alive(alembic));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["status"], "cancelled", "{j}");
    let done: Vec<&str> = j["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "done")
        .filter_map(|s| s["step"].as_str())
        .collect();
    assert!(done.contains(&"downgrade"), "the downgrade ran to its end: {done:?}\n{stderr}");
    assert_eq!(d.sql("SELECT version_num FROM alembic_version").as_deref(), Some("b84e1d2c3f03"));
}

#[test]
fn kill_9_of_forge_rollback_takes_the_migration_down_with_it() {
    let d = Deployed::new(Engine::Sqlite, &slow_downgrade(300));
    let run = Background::spawn(d.repo.path(), &["run", "--full", "--yes", "--target", "v3"], &[]);
    let alembic = alembic_pid(&d);
    run.kill_9();
    assert_eq!(run.wait(Duration::from_secs(30)).code, None, "killed by the signal");
    wait_until("Alembic to die with forge-rollback", Duration::from_secs(60), || !alive(alembic));
}
