//! `backups`, `runs show`, `init`, `demo`, and a state folder that cannot be used.

use crate::common::{fr, messy_repo, picture, rollback, run_in, undo};

#[test]
fn backups_list_verify_detect_corruption_and_prune() {
    let (r, _) = messy_repo();
    let first = rollback(&r, "v1");
    undo(&r, &first);
    let second = rollback(&r, "v2");
    let list = fr(&r, &["backups", "list", "--json"]).json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 3, "two rollbacks and one undo each took a snapshot");
    assert_eq!(list[0]["run_id"], first.as_str());

    let v = fr(&r, &["backups", "verify", "--json"]);
    v.ok();
    let v = v.json();
    assert_eq!(v["snapshots"], 3);
    assert_eq!(v["problems"].as_array().unwrap().len(), 0);

    // Flip a byte of one blob: verify names it and exits 1.
    let blobs = r.path().join(".git/forge-rollback/backups/blobs");
    let fanout = std::fs::read_dir(&blobs).unwrap().flatten().next().unwrap().path();
    let blob = std::fs::read_dir(&fanout).unwrap().flatten().next().unwrap().path();
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    let bad = fr(&r, &["backups", "verify"]);
    bad.code(1);
    assert!(bad.stdout.contains("is corrupt"), "{}", bad.stdout);
    bytes[0] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();

    let dry = fr(&r, &["backups", "prune", "--keep", "1", "--dry-run", "--json"]).json();
    assert_eq!(dry["removed_snapshots"].as_array().unwrap().len(), 2);
    assert_eq!(fr(&r, &["backups", "list", "--json"]).json().as_array().unwrap().len(), 3, "dry run deletes nothing");
    let pruned = fr(&r, &["backups", "prune", "--keep", "1", "--json"]).json();
    assert_eq!(pruned["removed_snapshots"].as_array().unwrap().len(), 2);
    assert_eq!(pruned["kept_snapshots"], 1);
    assert_eq!(
        r.git(&["for-each-ref", "--format=%(refname)", "refs/forge-rollback"]),
        format!("refs/forge-rollback/runs/{second}/from")
    );
    // The newest run can still be undone.
    let before_undo = picture(&r);
    undo(&r, &second);
    assert_ne!(picture(&r), before_undo);
}

/// PRUNE-HALFWAY: git's `packed-refs.lock` is held (a `git gc` running, or one that crashed)
/// while `backups prune` removes backups. The prune failed on the first pin ref it could not
/// delete, after the backups were gone, and never said which runs could no longer be undone
/// (the next prune removed nothing, so it never did). Now it finishes, names the runs, warns
/// of the refs left, and the next prune deletes them.
#[test]
fn a_prune_that_cannot_delete_pin_refs_still_names_the_runs_and_the_next_deletes_them() {
    let (r, _) = messy_repo();
    let first = rollback(&r, "v1");
    let undone = undo(&r, &first)["run_id"].as_str().unwrap().to_owned();
    let second = rollback(&r, "v2");
    let lock = r.path().join(".git/packed-refs.lock");
    std::fs::write(&lock, "").unwrap();
    let out = fr(&r, &["backups", "prune", "--keep", "1"]);
    out.ok();
    assert!(out.stdout.contains("removed 2 backup(s)"), "{}", out.stdout);
    // The undo of the first run (the first is undone already).
    assert!(
        out.stdout.contains(&format!("can no longer be undone (their backups were removed): {undone}")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("warning: 2 pin ref(s) of the pruned runs could not be deleted"), "{}", out.stdout);
    assert!(out.stdout.contains("run `backups prune` again once git's lock is free"), "{}", out.stdout);

    std::fs::remove_file(&lock).unwrap();
    let again = fr(&r, &["backups", "prune", "--keep", "1", "--json"]).json();
    assert!(again.get("refs_left").is_none(), "{again}");
    assert_eq!(
        r.git(&["for-each-ref", "--format=%(refname)", "refs/forge-rollback"]),
        format!("refs/forge-rollback/runs/{second}/from"),
        "only the kept run's pin ref is left"
    );
}

/// RES-PRUNE-FULL: the state folder's file system is full (a tmpfs filled by something
/// else). `backups prune`, the way to free it, failed before removing anything: taking the run
/// lock made a new lock file and wrote its holder, which needs a free block. The lock is held
/// all the same now, and the prune frees the space.
#[test]
fn prune_frees_a_full_state_folder() {
    let Some(fs) = crate::common::SmallFs::or_skip("size=3m") else { return };
    let r = rollback_testkit::TestRepo::new();
    r.three_releases();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("prune-full.toml");
    std::fs::write(&cfg, format!("[state]\ndir = \"{}\"\n", fs.mountpoint.join("state").display())).unwrap();
    let cfg = cfg.to_str().unwrap();
    for n in 0..3 {
        std::fs::write(r.path().join(format!("u{n}.bin")), vec![u8::try_from(n).unwrap(); 500_000]).unwrap();
        let id = crate::common::fr(&r, &["--config", cfg, "run", "--fast", "--yes", "--json", "--target", "v1"])
            .ok()
            .json()["run_id"]
            .as_str()
            .unwrap()
            .to_owned();
        crate::common::fr(&r, &["--config", cfg, "undo", &id, "--yes"]).ok();
    }
    let free = rollback_core::backup::snapshot::free_space(&fs.mountpoint).unwrap();
    // More than fits: the write stops where the file system is full.
    let filled = std::fs::write(fs.mountpoint.join("filler"), vec![0u8; usize::try_from(free).unwrap() + 1_000_000]);
    assert!(filled.is_err(), "the file system is full now");
    let out = crate::common::fr(&r, &["--config", cfg, "backups", "prune", "--keep", "1"]);
    out.ok();
    assert!(out.stdout.contains("removed 5 backup(s)"), "{}", out.stdout);
    assert!(rollback_core::backup::snapshot::free_space(&fs.mountpoint).unwrap() > 1_000_000, "the blobs are gone");
}

/// A blob of the run's backup is corrupt: the undo finds it before it changes anything (it
/// used to reset HEAD and clean the tree first, then fail in `restore_files`, half-way).
#[test]
fn an_undo_from_a_damaged_backup_is_refused_with_nothing_changed() {
    let (r, _) = messy_repo();
    let before = picture(&r);
    let id = rollback(&r, "v1");
    let rolled_back = picture(&r);
    // Every blob in turn (the index's, a file's, ...): whichever is damaged, the same refusal.
    // One picked by the folder's order hid that the index blob was read raw by an earlier check.
    let blobs = r.path().join(".git/forge-rollback/backups/blobs");
    let all: Vec<std::path::PathBuf> = std::fs::read_dir(&blobs)
        .unwrap()
        .flatten()
        .filter(|d| d.path().is_dir())
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten().map(|b| b.path()))
        .collect();
    assert!(all.len() > 2, "{all:?}");
    for blob in &all {
        let good = std::fs::read(blob).unwrap();
        let mut bad = good.clone();
        bad[0] ^= 0xff;
        std::fs::write(blob, &bad).unwrap();
        let refused = fr(&r, &["undo", &id, "--yes"]);
        refused.code(4);
        assert!(refused.stderr.contains("which the undo restores the files from, is damaged"), "{}", refused.stderr);
        assert!(refused.stderr.contains("`forge-rollback backups verify "), "{}", refused.stderr);
        assert_eq!(picture(&r), rolled_back, "nothing changed");
        std::fs::write(blob, &good).unwrap();
    }
    undo(&r, &id);
    assert_eq!(picture(&r), before);
}

/// A full run takes two snapshots (the work tree, then the database): `prune --keep 1` keeps
/// both, since the run is undone from both.
#[test]
fn prune_keeps_every_snapshot_of_a_kept_run() {
    use crate::crash_full::{deployed, env, state};
    let r = deployed();
    let before = state(&r);
    let run = crate::common::fr_env(&r, &["run", "--full", "--yes", "--target", "v1", "--json"], &env());
    run.ok();
    let id = run.json()["run_id"].as_str().unwrap().to_owned();
    let of_run =
        |list: &serde_json::Value| list.as_array().unwrap().iter().filter(|s| s["run_id"] == id.as_str()).count();
    assert_eq!(of_run(&fr(&r, &["backups", "list", "--json"]).json()), 2, "files and database");
    let dry = fr(&r, &["backups", "prune", "--keep", "1", "--dry-run", "--json"]);
    dry.ok();
    fr(&r, &["backups", "prune", "--keep", "1", "--json"]).ok();
    assert_eq!(of_run(&fr(&r, &["backups", "list", "--json"]).json()), 2, "both kept");
    crate::common::fr_env(&r, &["undo", &id, "--yes"], &env()).ok();
    assert_eq!(state(&r), before, "the run is undone whole: files, HEAD and rows");
}

/// The database dump of a full run is corrupt: the undo refuses before it changes anything,
/// like a damaged files backup. It used to start, fail in `restore_database` (exit 1), and
/// stay unfinished, blocking every later undo.
#[test]
fn an_undo_from_a_damaged_database_dump_is_refused_with_nothing_changed() {
    use crate::crash_full::{deployed, env, state};
    let r = deployed();
    let before = state(&r);
    let run = crate::common::fr_env(&r, &["run", "--full", "--yes", "--target", "v1", "--json"], &env());
    run.ok();
    let id = run.json()["run_id"].as_str().unwrap().to_owned();
    let rolled_back = state(&r);
    let (_, damaged) = crate::crash_full::damage_database_backup(&r, &id);
    let refused = crate::common::fr_env(&r, &["undo", &id, "--yes"], &env());
    refused.code(4);
    assert!(refused.stderr.contains("which the undo restores the database from, is damaged"), "{}", refused.stderr);
    assert_eq!(state(&r), rolled_back, "nothing changed");
    assert_eq!(fr(&r, &["runs", "list", "--json"]).json().as_array().unwrap().len(), 1, "no undo journaled");
    for (blob, good) in damaged {
        std::fs::write(blob, good).unwrap();
    }
    crate::common::fr_env(&r, &["undo", &id, "--yes"], &env()).ok();
    assert_eq!(state(&r), before);
}

#[test]
fn runs_show_prints_steps_and_log() {
    let (r, _) = messy_repo();
    let id = rollback(&r, "v1");
    let out = fr(&r, &["runs", "show", &id]);
    out.ok();
    assert!(out.stdout.contains("status:  succeeded"), "{}", out.stdout);
    assert!(out.stdout.contains("[INFO] Reverting code to commit:"), "{}", out.stdout);
    let j = fr(&r, &["runs", "show", &id, "--json"]).json();
    let kinds: Vec<&str> = j["journal"].as_array().unwrap().iter().map(|rec| rec["record"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"started"));
    assert_eq!(kinds.last(), Some(&"finished"));
    assert_eq!(kinds.iter().filter(|k| **k == "step_end").count(), 5);
    fr(&r, &["runs", "show", "20990101-000000-abcdef"]).code(2);
}

#[test]
fn init_writes_a_config_that_loads_and_refuses_to_overwrite() {
    let (r, _) = messy_repo();
    let out = fr(&r, &["init"]);
    out.ok();
    let path = r.path().join("rollback/config/rollback.toml");
    assert!(std::fs::read_to_string(&path).unwrap().contains("[caches]"));
    fr(&r, &["assess", "--target", "v1"]).ok();
    let again = fr(&r, &["init"]);
    again.code(2);
    assert!(again.stderr.contains("already exists") && again.stderr.contains("--force"), "{}", again.stderr);
    fr(&r, &["init", "--force"]).ok();
    let printed = fr(&r, &["init", "--print"]);
    assert_eq!(printed.stdout, std::fs::read_to_string(&path).unwrap());
}

#[test]
fn init_does_not_shadow_a_forge_rollback_toml_in_use() {
    let (r, _) = messy_repo();
    r.write("forge-rollback.toml", "[[checks]]\nname = \"api\"\nkind = \"command\"\nargv = [\"true\"]\n");
    let refused = fr(&r, &["init"]);
    refused.code(2);
    assert!(refused.stderr.contains("forge-rollback.toml` is the configuration in use"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--path FILE"), "{}", refused.stderr);
    assert!(!r.path().join("rollback/config/rollback.toml").exists(), "nothing written");
    fr(&r, &["verify"]).ok();
    // Asked for by name, or forced: written.
    fr(&r, &["init", "--path", "other.toml"]).ok();
    fr(&r, &["init", "--force"]).ok();
    assert!(r.path().join("rollback/config/rollback.toml").exists());
}

#[test]
fn demo_rolls_back_and_undoes_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["demo", "--json"], &[("TMPDIR", dir.path().to_str().unwrap())]);
    out.ok();
    let j = out.json();
    assert_eq!(j["rolled_back_to_v2"], true);
    assert_eq!(j["schema_is_v2s"], true);
    assert_eq!(j["env_is_v2s"], true);
    assert_eq!(j["database_revisions"], serde_json::json!([["0003"], ["0002"], ["0003"]]));
    assert_eq!(j["identical"], true);
    assert_eq!(j["rollback"]["level"], "full");
    let steps: Vec<&str> =
        j["rollback"]["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(
        steps,
        ["snapshot", "db_snapshot", "downgrade", "reset", "remove_untracked", "restore_env", "clear_caches", "record"]
    );
    assert_eq!(j["rollback"]["status"], "succeeded");
    assert_eq!(j["undo"]["status"], "succeeded");
    assert!(j["files_compared"].as_u64().unwrap() >= 6);
    assert!(out.stderr.contains("[SUCCESS] Rollback complete"), "{}", out.stderr);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0, "the sample repository is removed");
}

#[test]
fn an_unusable_state_folder_fails_cleanly_and_changes_nothing() {
    let (r, _) = messy_repo();
    std::fs::write(r.path().join(".git/forge-rollback"), "not a folder").unwrap();
    let before = picture(&r);
    let out = fr(&r, &["run", "--fast", "--yes", "--target", "v1"]);
    out.code(1);
    assert!(out.stderr.contains(".git/forge-rollback"), "{}", out.stderr);
    assert_eq!(picture(&r), before);
}

#[test]
fn report_prints_writes_and_follows_the_template() {
    let (r, _) = messy_repo();
    let out =
        fr(&r, &["run", "--fast", "--yes", "--json", "--target", "v1", "--severity", "critical", "--reason", "500s"]);
    out.ok();
    let id = out.json()["run_id"].as_str().unwrap().to_owned();
    let md = fr(&r, &["report", &id]);
    md.ok();
    let headings: Vec<&str> = md.stdout.lines().filter(|l| l.starts_with("## ")).collect();
    let want =
        ["## Issue Description", "## Symptoms", "## Root Cause", "## Rollback Details", "## Verification Results"];
    assert_eq!(&headings[..5], want);
    assert!(md.stdout.contains("**Severity**: Critical"), "{}", md.stdout);
    let on_disk = std::fs::read_to_string(r.path().join(format!(".git/forge-rollback/runs/{id}/report.md"))).unwrap();
    assert_eq!(md.stdout, on_disk, "written after the run");
    let j = fr(&r, &["report", &id, "--format", "json"]).json();
    assert_eq!(j["severity"], "critical");
    assert_eq!(j["reason"], "500s");
    let file = r.path().join(".git/report-out.md");
    fr(&r, &["report", &id, "-o", file.to_str().unwrap()]).ok();
    assert_eq!(std::fs::read_to_string(file).unwrap(), md.stdout);
    fr(&r, &["run", "--fast", "--yes", "--target", "v1", "--severity", "apocalyptic"]).code(2);
}

/// Installed dependencies that sit untracked and not ignored (`node_modules/`, `.venv/`) are
/// removed by the run with the other untracked files: `assess` and the plan say so, naming
/// the folders, where they used to appear only as one more file among hundreds to remove.
/// Ignored ones are kept by the run and not named.
#[test]
fn untracked_dependency_folders_are_named_before_the_run_removes_them() {
    let (r, _) = messy_repo();
    for i in 0..30 {
        r.write(format!("web/node_modules/pkg/f{i}.js"), "x\n");
    }
    // `.venv/` is in the sample app's `.gitignore`: kept by the run, not named.
    r.write("venv/lib/site.py", "x\n").write(".venv/lib/site.py", "x\n").write("tools/venv", "a file, not a folder\n");
    let a = fr(&r, &["assess", "--target", "v1", "--json"]).json();
    let risk = a["risks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["code"] == "untracked_dependencies")
        .unwrap_or_else(|| panic!("{a}"));
    let msg = risk["message"].as_str().unwrap();
    assert!(msg.contains("`web/node_modules/` (30 file(s))") && msg.contains("`venv/` (1 file(s))"), "{msg}");
    assert!(!msg.contains("tools/venv") && !msg.contains(".venv"), "{msg}");
    let plan = fr(&r, &["plan", "--fast", "--target", "v1"]);
    plan.ok();
    assert!(plan.stdout.contains("risk untracked_dependencies: "), "{}", plan.stdout);
    // Ignored too: nothing left to say.
    r.write(".gitignore", ".env\n__pycache__/\n*.pyc\n.venv/\nvenv/\nnode_modules/\n");
    let a = fr(&r, &["assess", "--target", "v1", "--json"]).json();
    assert!(!a["risks"].as_array().unwrap().iter().any(|x| x["code"] == "untracked_dependencies"), "{a}");
}
