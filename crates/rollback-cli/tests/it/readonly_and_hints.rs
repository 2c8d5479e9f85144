//! Operator-facing fixes: a dry run refused like the run it rehearses, commands that read
//! (and runs that are refused) leaving no state folder behind, a bad mark never lifted silently, hints for an unknown run
//! and a missing `--config`, and database snapshots listed for what they are.

use rollback_testkit::TestRepo;
use rollback_testkit::db::{MigrationFixture, MigratorKind, SQL_DIR};

use crate::common::{fr, fr_env, messy_repo, picture, state_dir};

/// The registry file, as bytes (to show a command did not write it).
fn registry(r: &TestRepo) -> Vec<u8> {
    r.read("rollback/config/known-good-commits.json")
}

#[test]
fn a_dry_run_to_a_target_marked_bad_is_refused_like_the_run() {
    let (r, _) = messy_repo();
    fr(&r, &["known-good", "bad", "v1", "--note", "broke login"]).ok();
    let before = picture(&r);
    let real = fr(&r, &["run", "--fast", "--yes", "--target", "v1"]);
    real.code(4);
    let error = real.stderr.lines().find(|l| l.starts_with("error: ")).expect("an error line").to_owned();
    assert!(error.contains("is marked bad in the known-good registry"), "{}", real.stderr);
    for args in [
        &["run", "--fast", "--dry-run", "--target", "v1"][..],
        &["run", "--full", "--dry-run", "--target", "v1"],
        &["run", "--fast", "--dry-run", "--yes", "--target", "v1", "--json"],
    ] {
        let dry = fr(&r, args);
        dry.code(4);
        assert!(dry.stderr.contains(&error), "{args:?}: the run's refusal\n{}", dry.stderr);
        assert!(
            dry.stderr.contains("hint: pick another target, or `forge-rollback known-good unmark "),
            "{}",
            dry.stderr
        );
        assert!(!dry.stdout.contains("dry run: nothing was changed"), "no plan passed off as fine: {}", dry.stdout);
    }
    assert_eq!(picture(&r), before);
    // Other refusals stay what they were: the plan, the refusal as a warning, exit 0.
    let side = r.git(&["commit-tree", "v1^{tree}", "-m", "side"]);
    let other = fr(&r, &["run", "--fast", "--dry-run", "--target", side.trim()]);
    other.ok();
    assert!(other.stdout.contains("warning: a run would refuse: the target "), "{}", other.stdout);
    assert!(other.stdout.contains("is not an ancestor of HEAD"), "{}", other.stdout);
    // Once the mark is lifted, the dry run plans.
    fr(&r, &["known-good", "unmark", "v1"]).ok();
    fr(&r, &["run", "--fast", "--dry-run", "--target", "v1"]).ok();
}

#[test]
fn commands_that_read_create_no_state_folder() {
    let (r, _) = messy_repo();
    fr(&r, &["known-good", "mark", "v2"]).ok();
    let state = state_dir(&r);
    let commands: [&[&str]; 13] = [
        &["runs", "list"],
        &["runs", "list", "--json"],
        &["backups", "list"],
        &["backups", "verify"],
        &["backups", "verify", "--json"],
        &["backups", "prune", "--keep", "0", "--dry-run"],
        &["backups", "prune", "--keep", "0", "--dry-run", "--json"],
        &["assess"],
        &["plan", "--full"],
        &["run", "--fast", "--dry-run"],
        &["known-good", "list"],
        &["gate", "v2"],
        &["unlock"],
    ];
    for args in commands {
        let before = picture(&r);
        let out = fr(&r, args);
        out.ok();
        assert!(!state.exists(), "`{}` created the state folder {}", args.join(" "), state.display());
        assert_eq!(picture(&r), before, "`{}` changed the tree", args.join(" "));
    }
    let empty = fr(&r, &["backups", "verify", "--json"]).json();
    assert_eq!((empty["snapshots"].as_u64(), empty["problems"].as_array().map(Vec::len)), (Some(0), Some(0)));
    // A named backup that cannot exist is unknown, as it is once the store exists.
    let unknown = fr(&r, &["backups", "verify", "20250101-000000-abcdef"]);
    unknown.code(2);
    assert!(unknown.stderr.contains("no backup `20250101-000000-abcdef`"), "{}", unknown.stderr);
    assert!(!state.exists());

    // A state folder with its backups but no `runs/` (or with folders at other modes) is read
    // as it is: nothing created in it, no mode changed.
    std::fs::create_dir_all(state.join("backups/snapshots")).unwrap();
    std::fs::create_dir_all(state.join("backups/blobs")).unwrap();
    let modes = || {
        ["", "backups", "backups/snapshots", "backups/blobs"]
            .map(|p| std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(state.join(p)).unwrap().permissions()))
    };
    let before = modes();
    for args in [&["backups", "verify"][..], &["backups", "prune", "--keep", "0", "--dry-run"], &["backups", "list"]] {
        fr(&r, args).ok();
        assert!(!state.join("runs").exists(), "`{}` created runs/", args.join(" "));
        assert_eq!(modes(), before, "`{}` changed a mode", args.join(" "));
    }
}

#[test]
fn a_refused_run_leaves_no_state_folder_behind() {
    let (r, _) = messy_repo();
    let state = state_dir(&r);
    r.git(&["checkout", "-q", "--detach"]);
    let before = picture(&r);
    let out = fr(&r, &["run", "--fast", "--yes", "--target", "v1"]);
    out.code(4);
    assert!(out.stderr.contains("HEAD is detached"), "{}", out.stderr);
    assert!(!state.exists(), "a refused run left the state folder {}", state.display());
    assert_eq!(picture(&r), before);

    // A state folder that was there before is left as it is, runs and all.
    r.git(&["checkout", "-q", "main"]);
    fr(&r, &["run", "--fast", "--yes", "--target", "v1"]).ok();
    r.git(&["checkout", "-q", "--detach"]);
    let runs = || std::fs::read_dir(state.join("runs")).unwrap().count();
    assert_eq!(runs(), 1);
    fr(&r, &["run", "--fast", "--yes", "--target", "v1"]).code(4);
    assert_eq!(runs(), 1);
    assert!(state.join("backups/snapshots").is_dir());
}

#[test]
fn marking_a_commit_marked_bad_known_good_is_refused_unless_the_mark_is_lifted() {
    let (r, [v1, v2, _]) = messy_repo();
    fr(&r, &["known-good", "bad", "v1", "--note", "broke login"]).ok();
    let before = registry(&r);
    let out = fr(&r, &["known-good", "mark", "v1", "--note", "looks fine"]);
    out.code(4);
    let short = &v1[..7];
    assert!(
        out.stderr.contains(&format!("error: commit {short} is marked known bad in the registry (marked ")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains(": broke login): marking it known-good would lift that mark"), "{}", out.stderr);
    assert!(out.stderr.contains("hint: if the mark is wrong, pass `--lift-bad` to lift it"), "{}", out.stderr);
    assert_eq!(registry(&r), before, "nothing written");
    let json = fr(&r, &["known-good", "mark", "v1", "--json"]);
    json.code(4);
    assert!(json.stdout.is_empty(), "{}", json.stdout);

    let lifted = fr(&r, &["known-good", "mark", "v1", "--lift-bad", "--note", "fixed upstream"]);
    lifted.ok();
    assert!(lifted.stdout.contains(&format!("updated {v1} as verified known-good")), "{}", lifted.stdout);
    assert!(
        lifted.stdout.contains(&format!("note: lifted the known-bad mark of {short} (marked ")),
        "the lifted mark is named: {}",
        lifted.stdout
    );
    assert!(lifted.stdout.contains(": broke login)"), "{}", lifted.stdout);
    let reg: serde_json::Value = serde_json::from_slice(&registry(&r)).unwrap();
    assert_eq!(reg["commits"][0]["verified"], true);
    assert!(reg["commits"][0].get("known_bad").is_none(), "{reg}");
    // Marking a commit that is good already, or not listed, needs no flag.
    fr(&r, &["known-good", "mark", "v1"]).ok();
    fr(&r, &["known-good", "mark", "v2"]).ok();

    // Lifted without a note of its own: the bad mark's note does not stay on the good entry.
    fr(&r, &["known-good", "bad", "v2", "--note", "broke checkout"]).ok();
    fr(&r, &["known-good", "mark", "v2", "--lift-bad"]).ok();
    let reg: serde_json::Value = serde_json::from_slice(&registry(&r)).unwrap();
    let entry = reg["commits"].as_array().unwrap().iter().find(|e| e["hash"] == v2.as_str()).unwrap();
    let note = entry["notes"].as_str().unwrap();
    assert!(note.starts_with(&format!("lifted the known-bad mark of {} (marked ", &v2[..7])), "{entry}");
    assert!(note.ends_with(": broke checkout)"), "{entry}");
    assert_eq!(entry["verified"], true);
}

#[test]
fn an_unknown_run_id_hints_at_runs_list() {
    let (r, _) = messy_repo();
    for args in [
        &["undo", "NOSUCH", "--yes"][..],
        &["resume", "NOSUCH", "--yes"],
        &["runs", "show", "NOSUCH"],
        &["report", "NOSUCH"],
        &["undo", "20250101-000000-abcdef", "--yes"],
    ] {
        let out = fr(&r, args);
        out.code(2);
        assert!(out.stderr.contains("error: no run `"), "{args:?}: {}", out.stderr);
        assert!(
            out.stderr.contains("hint: `forge-rollback runs list` lists the runs and their ids"),
            "{args:?}: {}",
            out.stderr
        );
    }
}

#[test]
fn a_missing_config_file_hints_at_the_path_and_how_to_make_one() {
    let (r, _) = messy_repo();
    let out = fr(&r, &["--config", "ops/rollback.toml", "assess"]);
    out.code(2);
    let path = r.path().join("ops/rollback.toml");
    let path = path.display();
    assert!(out.stderr.contains(&format!("error: cannot read config `{path}`")), "{}", out.stderr);
    assert!(
        out.stderr.contains(&format!(
            "hint: there is no file at `{path}`: write the commented default there with `forge-rollback init --path {path}`, or give the path of an existing one: `--config FILE`"
        )),
        "{}",
        out.stderr
    );
    // The hint's command does write it there, and the config is then read.
    fr(&r, &["init", "--path", &path.to_string()]).ok();
    fr(&r, &["--config", "ops/rollback.toml", "known-good", "list"]).ok();
}

#[test]
fn backups_list_shows_a_database_dump_as_one() {
    let r = TestRepo::new();
    let _fx = MigrationFixture::new(&r, MigratorKind::Sql);
    r.write(
        "forge-rollback.toml",
        format!("[database]\nkind = \"sql\"\nurl = \"sqlite:///app.db\"\nmigrations_dir = \"{SQL_DIR}\"\n"),
    );
    crate::common::migrate_sqlite(&r);
    let run = fr_env(&r, &["run", "--full", "--yes", "--json", "--target", "v1"], &[]);
    run.ok();
    let list = fr(&r, &["backups", "list", "--json"]).json();
    let dumps: Vec<&serde_json::Value> = list.as_array().unwrap().iter().filter(|b| b["label"] == "database").collect();
    assert_eq!(dumps.len(), 1, "{list}");
    let d = &dumps[0]["database"];
    assert_eq!(d["engine"], "sqlite", "{list}");
    assert!(d["database"].as_str().unwrap().contains("app.db"), "{list}");
    let dump_size = d["size"].as_u64().unwrap();
    assert!(dump_size > 0 && dumps[0]["bytes"].as_u64() == Some(dump_size), "{list}");

    let text = fr(&r, &["backups", "list"]);
    text.ok();
    let id = dumps[0]["id"].as_str().unwrap();
    let line = text.stdout.lines().find(|l| l.starts_with(id)).unwrap();
    assert!(line.contains(&format!("(sqlite dump, {dump_size} byte(s), at ")), "{line}");
    assert!(line.contains("database ") && line.contains("app.db"), "{line}");
    assert!(!line.contains("path(s)"), "a dump captures no paths: {line}");
}

/// The run's report cannot be written (a full disk; here an error injected where it is
/// written): the run's outcome stands (exit 0, its JSON, `succeeded`) with a warning naming
/// `report RUN`, which rebuilds it. With `on_failure = "undo"` and a failing check, the
/// automatic undo still runs (before, the run exited 1 with no JSON and was left rolled back).
#[test]
fn a_report_that_cannot_be_written_is_a_warning_not_the_outcome() {
    let (r, _) = messy_repo();
    let before = picture(&r);
    let env = [("FORGE_ROLLBACK_FAILPOINT", "write:report"), ("FORGE_ROLLBACK_FAILPOINT_ACTION", "error")];
    let said = |j: &serde_json::Value| {
        j["warnings"].as_array().unwrap().iter().any(|w| {
            w.as_str().unwrap().contains("the run's report could not be written (failpoint `write:report`")
                && w.as_str().unwrap().contains("rebuilds it from the journal")
        })
    };
    let out = fr_env(&r, &["run", "--fast", "--yes", "--json", "--target", "v1"], &env);
    out.ok();
    let j = out.json();
    assert_eq!(j["status"], "succeeded", "{}", out.stdout);
    assert!(said(&j), "{}", out.stdout);
    let id = j["run_id"].as_str().unwrap().to_owned();
    assert!(!state_dir(&r).join("runs").join(&id).join("report.md").exists());
    let report = fr(&r, &["report", &id]);
    assert!(report.ok().stdout.contains("# Rollback"), "{}", report.stdout);
    fr(&r, &["undo", &id, "--yes"]).ok();
    assert_eq!(picture(&r), before);

    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("forge-rollback.toml");
    std::fs::write(
        &cfg,
        "[verify]\non_failure = \"undo\"\n[[checks]]\nname = \"app\"\nkind = \"command\"\nargv = [\"false\"]\n",
    )
    .unwrap();
    let args = ["--config", cfg.to_str().unwrap(), "run", "--fast", "--yes", "--json", "--target", "v1"];
    let out = fr_env(&r, &args, &env);
    out.code(6);
    let j = out.json();
    assert_eq!(j["status"], "verification_failed", "{}", out.stdout);
    assert!(said(&j), "{}", out.stdout);
    assert!(j["undone_by"].is_string(), "the automatic undo ran: {}", out.stdout);
    assert_eq!(picture(&r), before);
}

/// Under a tiny open-file limit the run is refused before it changes anything, saying which
/// limit to raise (exit 1, no state folder, and the next run is not blocked). It used to panic
/// (exit 101) once its journal existed, building the runtime for its signal handlers, and the
/// run it left `interrupted` refused every later one (exit 4).
#[test]
fn a_tiny_open_file_limit_is_refused_before_anything_changes() {
    use std::os::unix::process::CommandExt as _;
    let (r, _) = messy_repo();
    let before = picture(&r);
    let commands: [&[&str]; 2] =
        [&["run", "--fast", "--yes", "--target", "v1"], &["rehearse", "--fast", "--target", "v1"]];
    for (limit, args) in [10, 11, 12].into_iter().flat_map(|l| commands.map(|c| (l, c))) {
        let mut cmd = crate::common::command(r.path(), args);
        // SAFETY: `setrlimit` is async-signal-safe; it runs in the child before `exec`.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(move || {
                let lim = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let out = cmd.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}, limit {limit}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}, limit {limit}: {stderr}");
        assert!(stderr.contains(&format!("only {limit} files open at once (`ulimit -n`)")), "limit {limit}: {stderr}");
        assert!(!state_dir(&r).exists(), "limit {limit}: a state folder was made");
        assert_eq!(picture(&r), before, "limit {limit}");
    }
    crate::common::rollback(&r, "v1");
}

/// A state folder on a file system mounted read-only: refused, nothing changed, and the hint
/// says so (it used to be a bare `Read-only file system` error).
#[test]
#[allow(clippy::print_stderr)] // says why it is skipped
fn a_state_folder_on_a_read_only_file_system_says_so() {
    let fs = match crate::common::SmallFs::mount_with("size=1m,ro") {
        Ok(fs) => fs,
        Err(why) => {
            eprintln!("skipped: no tmpfs here ({why})");
            return;
        }
    };
    let (r, _) = messy_repo();
    let before = picture(&r);
    let config = r.path().join(".git/ro-state.toml");
    std::fs::write(&config, format!("[state]\ndir = \"{}\"\n", fs.mountpoint.display())).unwrap();
    let out = fr(&r, &["--config", config.to_str().unwrap(), "run", "--fast", "--yes", "--target", "v1"]);
    out.code(1);
    assert!(out.stderr.contains("Read-only file system"), "{}", out.stderr);
    assert!(out.stderr.contains("hint: that file system is mounted read-only"), "{}", out.stderr);
    assert_eq!(picture(&r), before);
}
