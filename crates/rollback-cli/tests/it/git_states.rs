//! Git states an operator may leave the repository in while rolled back, and what the undo,
//! the resume and the run make of them: a split index whose shared index git has deleted
//! since, a merge, cherry-pick or cherry-pick sequence in progress, a shallow clone, and
//! repository formats libgit2 cannot read.

use std::path::{Path, PathBuf};

use rollback_testkit::TestRepo;

use crate::common::{fr, picture, run_in};

/// The `sharedindex.*` files of the repository's git folder.
fn shared_indexes(r: &TestRepo) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(r.path().join(".git"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("sharedindex."))
        .collect();
    names.sort();
    names
}

/// The three releases with a split index that git lets expire at once (what two weeks do to
/// a real one), and a staged and an unstaged edit of one file on top.
fn split_index_with_staged_work() -> TestRepo {
    let r = TestRepo::new();
    r.three_releases();
    r.git(&["config", "core.splitIndex", "true"]);
    r.git(&["config", "splitIndex.sharedIndexExpire", "now"]);
    r.git(&["update-index", "--split-index"]);
    r.write("app/main.py", "STAGED = 1\n");
    r.git(&["add", "app/main.py"]);
    r.write("app/main.py", "STAGED = 1\nUNSTAGED = 2\n");
    r
}

/// The operator stages a file on the rolled-back tree: git writes a new shared index and
/// deletes the ones that expired, the one the index from before the run names among them.
fn stage_hotfix_deleting_old_shared_indexes(r: &TestRepo, before: &[String]) {
    r.write("hotfix.py", "FIX = 1\n");
    r.git(&["add", "hotfix.py"]);
    let now = shared_indexes(r);
    assert!(before.iter().all(|n| !now.contains(n)), "git kept {before:?}: {now:?}");
}

/// LIFE-1: the undo gives back the shared index the split index from before the run names,
/// which git deleted since: git reads the index afterwards, with the staged edit in it.
#[test]
fn undo_gives_back_the_shared_index_git_deleted_since() {
    let r = split_index_with_staged_work();
    let before = picture(&r);
    let staged = r.git(&["ls-files", "-s"]);
    let shared = shared_indexes(&r);
    let id = crate::common::rollback(&r, "v1");
    stage_hotfix_deleting_old_shared_indexes(&r, &shared);

    let out = fr(&r, &["undo", &id, "--yes", "--json"]);
    out.ok();
    assert_eq!(r.git(&["ls-files", "-s"]), staged, "the index from before the run");
    assert_eq!(picture(&r), before);
    assert_eq!(r.git(&["diff", "--cached", "--name-only"]).trim(), "app/main.py");
}

/// A shared index that is there but damaged since the run (a full disk truncated it): the
/// undo gives back the backup's copy over it, and git reads the index afterwards.
#[test]
fn undo_gives_back_a_shared_index_damaged_since() {
    let r = split_index_with_staged_work();
    r.git(&["config", "splitIndex.sharedIndexExpire", "never"]);
    let before = picture(&r);
    let staged = r.git(&["ls-files", "-s"]);
    let shared = shared_indexes(&r);
    let id = crate::common::rollback(&r, "v1");
    // The rolled-back index has a shared index of its own; the one from before the run stays.
    assert!(shared_indexes(&r).len() > shared.len(), "{:?}", shared_indexes(&r));
    for name in &shared {
        std::fs::write(r.path().join(".git").join(name), "truncated").unwrap();
    }
    let out = fr(&r, &["undo", &id, "--yes", "--json"]);
    out.ok();
    assert!(out.stderr.contains("(it was damaged)"), "{}", out.stderr);
    assert_eq!(r.git(&["ls-files", "-s"]), staged, "the index from before the run");
    assert_eq!(picture(&r), before);
}

/// The manifest file of the snapshot run `id` took.
fn run_manifest(r: &TestRepo, id: &str) -> PathBuf {
    let dir = crate::common::state_dir(r).join("backups/snapshots");
    std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "json")
                && serde_json::from_slice::<serde_json::Value>(&std::fs::read(p).unwrap()).unwrap()["run_id"] == id
        })
        .unwrap_or_else(|| panic!("no snapshot of run {id} in {}", dir.display()))
}

/// LIFE-1: a backup taken before the shared index was captured with the index (an older
/// forge-rollback) cannot give it back: the undo is refused before anything changes, naming
/// the missing file, rather than writing an index git cannot read.
#[test]
fn undo_refuses_a_split_index_whose_shared_index_is_gone_and_not_in_the_backup() {
    let r = split_index_with_staged_work();
    let shared = shared_indexes(&r);
    let id = crate::common::rollback(&r, "v1");
    let manifest = run_manifest(&r, &id);
    let mut m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    assert!(m["index"]["shared"]["name"].is_string(), "the shared index is captured: {m}");
    m["index"].as_object_mut().unwrap().remove("shared");
    std::fs::remove_file(&manifest).unwrap();
    std::fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
    stage_hotfix_deleting_old_shared_indexes(&r, &shared);
    let rolled_back = picture(&r);
    let index = std::fs::read(r.path().join(".git/index")).unwrap();

    let out = fr(&r, &["undo", &id, "--yes"]);
    out.code(4);
    assert!(out.stderr.contains("is a split index"), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("whose shared index `{}` is gone", shared[0])), "{}", out.stderr);
    assert!(out.stderr.contains("nothing was changed"), "{}", out.stderr);
    assert!(out.stderr.contains("hint: put"), "{}", out.stderr);
    assert_eq!(picture(&r), rolled_back);
    assert_eq!(std::fs::read(r.path().join(".git/index")).unwrap(), index);
}

/// A branch `side` off v2 that changes `app/main.py` otherwise than v1 and v3 do: merging or
/// picking it conflicts.
fn with_conflicting_side_branch() -> TestRepo {
    let r = TestRepo::new();
    r.three_releases();
    r.git(&["checkout", "-q", "-b", "side", "v2"]);
    r.write("app/main.py", "SIDE = 1\n");
    r.commit_all("side fix");
    r.git(&["checkout", "-q", "main"]);
    r
}

/// LIFE-7: a merge begun (and conflicted) on a hotfix made on the rolled-back tree: the
/// undo, with either
/// back-end, is refused before anything changes, as the run is, and the merge stays.
#[test]
fn undo_refuses_a_merge_in_progress() {
    for backend in ["git-cli", "git2"] {
        let r = with_conflicting_side_branch();
        let (_dir, cfg) = crate::shapes::config(backend);
        let out = crate::shapes::fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
        out.ok();
        let id = out.json()["run_id"].as_str().unwrap().to_owned();
        r.write("app/main.py", "HOTFIX = 1\n");
        r.commit_all("hotfix on the rolled-back tree");
        assert!(!r.git_output(&["merge", "side"]).status.success(), "the merge conflicts");
        let merging = picture(&r);

        let out = crate::shapes::fr(&r, &cfg, &["undo", &id, "--yes"], &[]);
        out.code(4);
        assert!(out.stderr.contains("a merge is in progress: undoing run"), "{backend}: {}", out.stderr);
        assert!(out.stderr.contains("nothing was changed"), "{backend}: {}", out.stderr);
        assert!(out.stderr.contains("git merge --abort"), "{backend}: {}", out.stderr);
        assert!(r.path().join(".git/MERGE_HEAD").exists(), "{backend}: the merge is still in progress");
        assert_eq!(picture(&r), merging, "{backend}");

        // Once it is aborted, the undo goes ahead.
        r.git(&["merge", "--abort"]);
        crate::shapes::fr(&r, &cfg, &["undo", &id, "--yes"], &[]).ok();
    }
}

/// LIFE-7: a cherry-pick begun after a run failed before its reset: the resume would abort
/// it; refused before anything changes.
#[test]
fn resume_refuses_a_cherry_pick_in_progress() {
    let r = with_conflicting_side_branch();
    let failed = crate::common::failed_run(&r, "before:reset");
    let id = failed.json()["run_id"].as_str().unwrap().to_owned();
    assert!(!r.git_output(&["cherry-pick", "side"]).status.success(), "the pick conflicts");
    let picking = picture(&r);

    let out = fr(&r, &["resume", &id]);
    out.code(4);
    assert!(out.stderr.contains("a cherry-pick is in progress: resuming run"), "{}", out.stderr);
    assert!(r.path().join(".git/CHERRY_PICK_HEAD").exists());
    assert_eq!(picture(&r), picking);
}

/// LIFE-8: a sequence of picks paused between two of them (the first one's conflict resolved
/// and committed, only `.git/sequencer` left): refused like a pick in progress, with the way
/// to finish or leave the sequence.
#[test]
fn run_refuses_a_cherry_pick_sequence_paused_between_picks() {
    let r = TestRepo::new();
    r.three_releases();
    r.git(&["checkout", "-q", "-b", "side", "v1"]);
    r.write("app/main.py", "PICK = 1\n");
    r.commit_all("pick one");
    r.write("app/other.py", "PICK = 2\n");
    r.commit_all("pick two");
    r.git(&["checkout", "-q", "main"]);
    assert!(!r.git_output(&["cherry-pick", "side~1", "side"]).status.success(), "the first pick conflicts");
    r.write("app/main.py", "RESOLVED = 1\n");
    r.git(&["add", "app/main.py"]);
    r.git(&["-c", "core.editor=true", "commit", "-q", "--no-edit"]);
    assert!(r.path().join(".git/sequencer").is_dir());
    assert!(!r.path().join(".git/CHERRY_PICK_HEAD").exists());
    let paused = picture(&r);

    let out = fr(&r, &["run", "--fast", "--yes", "--target", "v1"]);
    out.code(4);
    assert!(out.stderr.contains("a cherry-pick or revert sequence is in progress"), "{}", out.stderr);
    assert!(out.stderr.contains("git cherry-pick --quit"), "{}", out.stderr);
    assert!(out.stderr.contains("git cherry-pick --continue"), "{}", out.stderr);
    assert_eq!(picture(&r), paused);
}

/// A git command in `dir`, with the test environment; panics on failure.
fn git_in(dir: &Path, args: &[&str]) {
    let mut cmd = std::process::Command::new("git");
    rollback_testkit::clean_git_env(&mut cmd);
    let out = cmd
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// LIFE-5: in a shallow clone, a target beyond the clone's depth is not called "not an
/// ancestor" with a hint to turn the check off: the error says the clone is shallow and
/// hints at fetching the history.
#[test]
fn a_target_beyond_a_shallow_clones_depth_is_refused_as_such() {
    let r = TestRepo::new();
    r.three_releases();
    let dir = tempfile::tempdir().unwrap();
    let clone = dir.path().join("app");
    let url = format!("file://{}", r.path().display());
    git_in(dir.path(), &["clone", "-q", "--depth", "2", &url, "app"]);
    git_in(&clone, &["fetch", "-q", "--tags"]);
    assert!(clone.join(".git/shallow").exists());

    let out = run_in(&clone, &["run", "--fast", "--yes", "--target", "v1"], &[]);
    out.code(4);
    assert!(out.stderr.contains("this is a shallow clone"), "{}", out.stderr);
    assert!(out.stderr.contains("git fetch --unshallow"), "{}", out.stderr);
    assert!(!out.stderr.contains("--allow-non-ancestor"), "{}", out.stderr);
}

/// LIFE-6: a reftable or SHA-256 repository is not "not a git repository": the error names
/// the format forge-rollback cannot read (exit 4, nothing changed).
#[test]
fn a_repository_format_libgit2_cannot_read_is_named() {
    for (init, named) in [("--ref-format=reftable", "the reftable ref format"), ("--object-format=sha256", "SHA-256")] {
        let dir = tempfile::tempdir().unwrap();
        git_in(dir.path(), &["init", "-q", init]);
        std::fs::write(dir.path().join("a.txt"), "a\n").unwrap();
        git_in(dir.path(), &["add", "-A"]);
        git_in(dir.path(), &["commit", "-q", "-m", "one"]);

        let out = run_in(dir.path(), &["assess"], &[]);
        out.code(4);
        assert!(out.stderr.contains(named), "{init}: {}", out.stderr);
        assert!(
            out.stderr.contains("a repository format forge-rollback (libgit2) cannot read"),
            "{init}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("is not a git repository"), "{init}: {}", out.stderr);
        assert!(!out.stderr.contains("run inside a git work tree"), "{init}: {}", out.stderr);
    }
}

/// FILES2-7: a branch also checked out in a second worktree (`git worktree add --force`) is
/// moved there too by the reset, while that worktree's files and index stay on the broken
/// release. `assess` and `plan` name that worktree (a medium risk, which the plan a run
/// confirms repeats), and the reset of a run or an undo says it in the log; a worktree on
/// another branch is not named. Both back-ends.
#[test]
fn a_branch_checked_out_in_another_worktree_is_named_before_the_run_moves_it() {
    let named = |plan: &serde_json::Value| {
        plan["risks"].as_array().into_iter().flatten().find(|x| x["code"] == "branch_in_other_worktree").cloned()
    };
    // The path as git recorded it, or as the file system resolves it.
    let names = |message: &str, path: &Path| {
        [path.to_path_buf(), path.canonicalize().unwrap()]
            .iter()
            .any(|p| message.contains(&format!("`{}`", p.display())))
    };
    for backend in ["git-cli", "git2"] {
        let r = TestRepo::new();
        r.three_releases();
        let (_cfg_dir, cfg) = crate::shapes::config(backend);
        let dir = tempfile::tempdir().unwrap();
        let (same, other) = (dir.path().join("same"), dir.path().join("other"));
        r.git(&["worktree", "add", "-q", "-b", "dev", other.to_str().unwrap()]);
        let plan_v1 = || crate::shapes::fr(&r, &cfg, &["plan", "--fast", "--target", "v1", "--json"], &[]).ok().json();
        let plan = plan_v1();
        assert!(named(&plan).is_none(), "{backend}: a worktree on another branch is not named: {plan}");

        r.git(&["worktree", "add", "-q", "--force", same.to_str().unwrap(), "main"]);
        let plan = plan_v1();
        let risk = named(&plan).unwrap_or_else(|| panic!("{backend}: {plan}"));
        assert_eq!(risk["severity"], "medium", "{backend}: {risk}");
        let message = risk["message"].as_str().unwrap();
        assert!(message.contains("branch `main` is also checked out in the worktree"), "{backend}: {message}");
        assert!(names(message, &same) && !names(message, &other), "{backend}: {message}");

        let text = crate::shapes::fr(&r, &cfg, &["plan", "--fast", "--target", "v1"], &[]);
        text.ok();
        assert!(text.stdout.contains("risk branch_in_other_worktree: branch `main`"), "{backend}: {}", text.stdout);
        let assessed = crate::shapes::fr(&r, &cfg, &["assess", "--target", "v1", "--json"], &[]).ok().json();
        assert!(named(&assessed).is_some(), "{backend}: {assessed}");

        // The confirmation on a terminal says it before `yes`.
        let mut p = crate::manual::spawn(&r, &["--config", &cfg, "run", "--fast", "--target", "v1"], &[]);
        p.exp_string("Warning: branch `main` is also checked out in the worktree").unwrap();
        p.exp_string("Type `yes` to proceed:").unwrap();
        p.send_line("no").unwrap();
        assert_eq!(crate::manual::exit_code(&mut p), 5, "{backend}");

        // A run confirmed with `--yes` shows no plan: its reset says it in the log.
        let run = crate::shapes::fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
        let run = run.ok();
        let said = "the reset moved branch `main`, which the worktree `";
        assert!(run.stderr.contains(said) && names(&run.stderr, &same), "{backend}: {}", run.stderr);
        let id = run.json()["run_id"].as_str().unwrap().to_owned();
        // The undo moves the branch back, and its confirmation says so too.
        let mut p = crate::manual::spawn(&r, &["--config", &cfg, "undo", &id], &[]);
        p.exp_string("Warning: branch `main` is also checked out in the worktree").unwrap();
        p.exp_string("the undo moves its HEAD too").unwrap();
        p.exp_string("Type `yes` to proceed:").unwrap();
        p.send_line("no").unwrap();
        assert_eq!(crate::manual::exit_code(&mut p), 5, "{backend}");
        let undo = crate::shapes::fr(&r, &cfg, &["undo", &id, "--yes"], &[]);
        assert!(undo.ok().stderr.contains(said), "{backend}: {}", undo.stderr);

        // Seen from that worktree, the main one is the other.
        let plan = run_in(&same, &["--config", &cfg, "plan", "--fast", "--target", "v2", "--json"], &[]).ok().json();
        let risk = named(&plan).unwrap_or_else(|| panic!("{backend}: {plan}"));
        assert!(names(risk["message"].as_str().unwrap(), r.path()), "{backend}: {risk}");
    }
}
