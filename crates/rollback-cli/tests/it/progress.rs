//! Progress bars through a real pseudo-terminal (rexpect): drawn on a terminal, never under
//! `--json`, `-q` or `NO_COLOR`, and never when stderr is not a terminal.

use std::process::Command;

use rexpect::session::spawn_command;
use rollback_testkit::{TestRepo, clean_git_env};

use crate::common::{fr, messy_repo};

/// Runs the binary on a pseudo-terminal (stdin, stdout and stderr all on it) to its end;
/// returns everything it wrote.
fn on_a_tty(repo: &TestRepo, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_forge-rollback"));
    clean_git_env(&mut cmd);
    for (k, _) in std::env::vars_os() {
        let k = k.to_string_lossy().into_owned();
        if k.starts_with("FORGE_ROLLBACK") || k == "NO_COLOR" {
            cmd.env_remove(k);
        }
    }
    cmd.env("TERM", "xterm").arg("-C").arg(repo.path()).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut p = spawn_command(cmd, Some(60_000)).expect("spawn on a pty");
    p.exp_eof().expect("the command to end")
}

/// A repository whose snapshot has many paths to capture.
fn busy_repo() -> TestRepo {
    let (r, _) = messy_repo();
    for i in 0..400 {
        r.write(format!("uploads/file {i}.txt"), format!("{i}\n"));
    }
    r
}

const BAR: &str = "snapshot [";

#[test]
fn a_terminal_shows_the_snapshot_bar() {
    let r = busy_repo();
    let out = on_a_tty(&r, &["run", "--fast", "--yes", "--target", "v1"], &[]);
    assert!(out.contains(BAR), "no progress bar on a terminal:\n{out}");
    assert!(out.contains("files"), "{out}");
    assert!(out.contains("status:  succeeded"), "{out}");
}

/// A full run on a real SQLite database: the database snapshot and the downgrade show a
/// spinner while they work.
#[test]
fn a_terminal_shows_a_spinner_for_the_database_steps() {
    use rollback_testkit::db::{MigrationFixture, MigratorKind, SQL_DIR};
    let r = TestRepo::new();
    let _fx = MigrationFixture::new(&r, MigratorKind::Sql);
    r.write(
        "forge-rollback.toml",
        format!("[database]\nkind = \"sql\"\nurl = \"sqlite:///app.db\"\nmigrations_dir = \"{SQL_DIR}\"\n"),
    );
    crate::common::migrate_sqlite(&r);
    let out = on_a_tty(&r, &["run", "--full", "--yes", "--target", "v1"], &[]);
    assert!(out.contains("status:  succeeded"), "{out}");
    for step in ["db_snapshot", "downgrade"] {
        let spinner = ['-', '\\', '|', '/', ' '].iter().any(|c| out.contains(&format!("{step} {c} working (")));
        assert!(spinner, "no spinner for {step}:\n{out}");
    }
}

#[test]
fn json_quiet_and_no_color_show_no_bar() {
    for (args, env) in [
        (&["run", "--fast", "--yes", "--json", "--target", "v1"][..], &[][..]),
        (&["run", "--fast", "--yes", "-q", "--target", "v1"][..], &[][..]),
        (&["run", "--fast", "--yes", "--target", "v1"][..], &[("NO_COLOR", "1")][..]),
    ] {
        let r = busy_repo();
        let out = on_a_tty(&r, args, env);
        assert!(!out.contains(BAR), "{args:?} {env:?} drew a bar:\n{out}");
        let runs = fr(&r, &["runs", "list", "--json"]).json();
        assert_eq!(runs[0]["status"], "succeeded", "{args:?} {env:?}: {out}");
    }
}

#[test]
fn no_bar_when_stderr_is_not_a_terminal() {
    let r = busy_repo();
    let out = crate::common::run_in(r.path(), &["run", "--fast", "--yes", "--target", "v1"], &[]);
    out.ok();
    assert!(!out.stderr.contains(BAR), "{}", out.stderr);
}
