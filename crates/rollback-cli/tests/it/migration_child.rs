//! The migration program forge-rollback starts (Alembic here) and the signals an operator
//! sends: a Ctrl-C at the terminal signals the whole foreground process group, and must stop
//! the run at the step boundary after the downgrade, not kill Alembic half-way through it; a
//! `kill -9` of forge-rollback must not leave Alembic migrating with nobody watching, racing a
//! `resume`; nor must a manual run's `inspect` wait on an `env.py` that hangs while it shows
//! the downgrade's SQL. Real Alembic on SQLite, through the binary.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::time::Duration;

use rexpect::process::Signal;
use rollback_testkit::db::Engine;

use crate::common::{Background, command, fr, wait_until};
use crate::manual::{exit_code, next_step, only_run, spawn};
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

/// What the project's `env.py` does in offline mode (the downgrade's SQL preview) before it
/// runs the migrations, put in by a commit over v4: it fails, as when its database cannot be
/// reached, until `hang` exists in `dir`; then it writes its pid to `env.pid` there and waits
/// for an hour, as when it connects to a server that never answers.
fn env_py_waiting_offline(d: &Deployed, dir: &Path) {
    let env_py = String::from_utf8(d.repo.read("migrations/env.py")).unwrap();
    let wait = format!(
        r#"from alembic import context

if context.is_offline_mode():
    import os, time
    if not os.path.exists({hang:?}):
        raise RuntimeError("the preview's database cannot be reached")
    with open({pid:?} + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.rename({pid:?} + ".tmp", {pid:?})
    time.sleep(3600)
"#,
        hang = dir.join("hang").display().to_string(),
        pid = dir.join("env.pid").display().to_string(),
    );
    d.repo.write("migrations/env.py", env_py.replacen("from alembic import context\n", &wait, 1));
    // `-a`: the tracked env.py only, not the untracked configuration.
    d.repo.git(&["commit", "-q", "-am", "env.py that waits in offline mode"]);
}

/// A signal while `inspect` at a manual run's downgrade question waits for the SQL preview,
/// whose `env.py` hangs: the preview and its Alembic process stop at once, and the run stops
/// there as it does for a signal at the question itself (`cancelled`, exit 5, the database
/// and the code untouched). `inspect` used to wait for as long as `env.py` did (up to
/// `database.timeout_secs`), the signal only noted; a failed preview said nothing.
fn signal_during_a_hanging_inspect_stops_the_preview_and_the_run(signal: Signal) {
    let d = Deployed::new(Engine::Sqlite, AUDIT);
    let tmp = tempfile::tempdir().unwrap();
    env_py_waiting_offline(&d, tmp.path());
    let head = d.repo.head();
    let mut p = spawn(&d.repo, &["run", "--manual", "--target", "v3"], &[]);
    p.exp_string("Type `yes` to proceed:").unwrap();
    p.send_line("yes").unwrap();
    while next_step(&mut p) != "downgrade" {
        p.send_line("yes").unwrap();
    }
    // The preview failed when the run was planned: inspect tries again and says why it fails.
    p.send_line("inspect").unwrap();
    p.exp_string("SQL: cannot be previewed").unwrap();
    p.exp_string("the preview's database cannot be reached").unwrap();
    p.exp_string("Run this step? [").unwrap();

    std::fs::write(tmp.path().join("hang"), "").unwrap();
    p.send_line("inspect").unwrap();
    let pid_file = tmp.path().join("env.pid");
    wait_until("env.py to wait in offline mode", Duration::from_secs(120), || pid_file.exists());
    let env_py: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    // forge-rollback alone: Alembic's Python is in a process group of its own, out of reach
    // of a Ctrl-C at the terminal, so it is the run that must stop it.
    p.process_mut().signal(signal).unwrap();
    p.exp_string("before the step asked about").unwrap();
    p.exp_string("SQL: preview stopped: interrupted (SIGINT or SIGTERM)").unwrap();
    assert_eq!(exit_code(&mut p), 5);
    wait_until("env.py to be stopped with the preview", Duration::from_secs(30), || !alive(env_py));

    assert_eq!(d.repo.head(), head, "the code moved");
    assert_eq!(d.sql("SELECT version_num FROM alembic_version").as_deref(), Some("e4e4e4e4e404"));
    let run = only_run(&d.repo);
    assert_eq!(run["status"], "cancelled", "{run:#}");
    let report = fr(&d.repo, &["report", run["run_id"].as_str().unwrap()]);
    report.ok();
    assert!(report.stdout.contains("interrupted (SIGINT or SIGTERM)"), "{}", report.stdout);
    assert!(!report.stdout.contains("aborted"), "{}", report.stdout);
    // As after a signal at the question: the run can be undone (its snapshots taken).
    fr(&d.repo, &["undo", run["run_id"].as_str().unwrap(), "--yes"]).ok();
    assert_eq!(d.sql("SELECT version_num FROM alembic_version").as_deref(), Some("e4e4e4e4e404"));
}

#[test]
fn ctrl_c_during_a_hanging_inspect_stops_the_preview_and_the_run() {
    signal_during_a_hanging_inspect_stops_the_preview_and_the_run(Signal::SIGINT);
}

#[test]
fn sigterm_during_a_hanging_inspect_stops_the_preview_and_the_run() {
    signal_during_a_hanging_inspect_stops_the_preview_and_the_run(Signal::SIGTERM);
}
