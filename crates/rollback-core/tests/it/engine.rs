//! Engine failure paths, with a backup store that fails on demand, on real repositories.

use std::sync::Arc;

use rollback_core::config::Config;
use rollback_core::event::{Event, ProgressUnit, Recorder};
use rollback_core::plan::Level;
use rollback_core::prompt::{AutoConfirm, Decline};
use rollback_core::testing::{FailOn, MemBackupStore};
use rollback_core::vcs::{self, BackendKind};
use rollback_core::{ErrorKind, Rollback, RunOptions, RunStatus};
use rollback_testkit::TestRepo;

fn messy() -> TestRepo {
    let r = TestRepo::new();
    r.three_releases();
    r.write("app/main.py", "# local hotfix\n").write("untracked/notes.txt", "n\n").write("app/staged.py", "s\n");
    r.git(&["add", "app/staged.py"]);
    r
}

fn engine(r: &TestRepo, store: Arc<MemBackupStore>) -> Rollback {
    Rollback::with_backend(vcs::open(BackendKind::Git2, r.path()).unwrap(), Config::default())
        .unwrap()
        .with_store(store)
}

fn opts() -> RunOptions {
    RunOptions { level: Some(Level::Fast), target: Some("v1".into()), ..RunOptions::default() }
}

#[test]
fn disk_full_while_snapshotting_leaves_the_tree_untouched() {
    for fail in [FailOn::PutBlob(1), FailOn::PutBlob(2), FailOn::PutManifest] {
        let r = messy();
        let (tree, head, index) = (r.tree(), r.head(), r.index_state());
        let store = Arc::new(MemBackupStore::new());
        store.fail_on(fail);
        let rb = engine(&r, store.clone());
        let out = rb.run(&opts(), &AutoConfirm, &Recorder::default()).unwrap();
        assert_eq!(out.status, RunStatus::Failed, "{fail:?}");
        assert!(out.error.as_deref().unwrap().contains("write `<memory store>`"), "{fail:?}: {:?}", out.error);
        assert_eq!(out.steps[0].status, "failed");
        assert!(out.steps[1..].iter().all(|s| s.status == "pending"), "{:?}", out.steps);
        assert_eq!(
            (r.tree(), r.head(), r.index_state()),
            (tree.clone(), head.clone(), index.clone()),
            "{fail:?}: tree untouched"
        );
        assert_eq!(store.snapshot_count(), 0);
        assert_eq!(r.git(&["for-each-ref", "refs/forge-rollback"]), "", "no pin ref without a snapshot");

        // The failed run changed nothing: a new run is not refused, and the failed one's
        // undo changes nothing either.
        let ok = rb.run(&opts(), &AutoConfirm, &Recorder::default()).unwrap();
        assert_eq!(ok.status, RunStatus::Succeeded, "{fail:?}");
        let back = rb.undo(ok.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
        assert_eq!(back.status, RunStatus::Succeeded, "{fail:?}");
        assert_eq!((r.tree(), r.head()), (tree.clone(), head.clone()));
        let undo = rb.undo(out.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
        assert_eq!(undo.status, RunStatus::Undone);
        assert_eq!((r.tree(), r.head()), (tree, head));
    }
}

#[test]
fn declining_changes_nothing_and_writes_no_state() {
    let r = messy();
    let tree = r.tree();
    let rb = Rollback::with_backend(vcs::open(BackendKind::GitCli, r.path()).unwrap(), Config::default()).unwrap();
    let err = rb.run(&opts(), &Decline, &Recorder::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Cancelled);
    assert_eq!(r.tree(), tree);
    assert!(!r.path().join(".git/forge-rollback").exists());
}

/// The snapshot counts the paths it captures, from 0 up to its total, inside its step; a fast
/// run has no busy steps.
#[test]
fn the_snapshot_reports_its_progress_in_files() {
    let r = messy();
    for i in 0..30 {
        r.write(format!("uploads/{i}.txt"), "x\n");
    }
    let rec = Recorder::default();
    let rb = Rollback::with_backend(vcs::open(BackendKind::Git2, r.path()).unwrap(), Config::default()).unwrap();
    let out = rb.run(&opts(), &AutoConfirm, &rec).unwrap();
    let run_id = out.run_id.unwrap();
    let events = rec.events();
    let start = events.iter().position(|e| matches!(e, Event::StepStarted { step, .. } if step == "snapshot")).unwrap();
    let end = events.iter().position(|e| matches!(e, Event::StepFinished { step, .. } if step == "snapshot")).unwrap();
    let progress: Vec<(usize, &str, ProgressUnit, u64, Option<u64>)> = events
        .iter()
        .enumerate()
        .filter_map(|(i, e)| match e {
            Event::Progress { run_id: id, step, unit, done, total } => {
                assert_eq!(id, &run_id);
                Some((i, step.as_str(), *unit, *done, *total))
            }
            _ => None,
        })
        .collect();
    assert!(
        progress.iter().all(|p| p.1 == "snapshot" && p.2 == ProgressUnit::Files && start < p.0 && p.0 < end),
        "{progress:?}"
    );
    let total = progress[0].4.unwrap();
    assert!(total >= 30, "{progress:?}");
    assert_eq!(progress.first().unwrap().3, 0);
    assert_eq!(progress.last().unwrap().3, total);
    assert!(progress.windows(2).all(|w| w[0].3 <= w[1].3));
}

#[test]
fn events_arrive_in_step_order_and_the_log_uses_the_seed_format() {
    let r = messy();
    let rec = Recorder::default();
    let rb = Rollback::with_backend(vcs::open(BackendKind::Git2, r.path()).unwrap(), Config::default()).unwrap();
    let out = rb.run(&opts(), &AutoConfirm, &rec).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded);
    let steps: Vec<String> = rec
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::StepStarted { step, index, total, .. } => Some(format!("start {index}/{total} {step}")),
            Event::StepFinished { step, ok, .. } => Some(format!("end {step} {ok}")),
            Event::Log { .. } | Event::Progress { .. } => None,
        })
        .collect();
    assert_eq!(
        steps,
        [
            "start 1/5 snapshot",
            "end snapshot true",
            "start 2/5 reset",
            "end reset true",
            "start 3/5 remove_untracked",
            "end remove_untracked true",
            "start 4/5 clear_caches",
            "end clear_caches true",
            "start 5/5 record",
            "end record true"
        ]
    );
    let run_id = out.run_id.unwrap();
    let log = std::fs::read_to_string(r.path().join(format!(".git/forge-rollback/runs/{run_id}/run.log"))).unwrap();
    let first = log.lines().next().unwrap();
    // `2025-12-10 17:39:00 [INFO] message`
    assert_eq!(&first[4..5], "-");
    assert_eq!(&first[10..11], " ");
    assert_eq!(&first[19..27], " [INFO] ", "{first}");
    assert!(log.contains("[SUCCESS] Rollback complete"), "{log}");
    let messages = rec.messages();
    assert!(
        messages.iter().any(|m| m.starts_with("SUCCESS Backup ") && m.contains("created and verified")),
        "{messages:?}"
    );
}

#[test]
fn state_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let r = messy();
    let rb = Rollback::with_backend(vcs::open(BackendKind::Git2, r.path()).unwrap(), Config::default()).unwrap();
    let out = rb.run(&opts(), &AutoConfirm, &Recorder::default()).unwrap();
    let state = r.path().join(".git/forge-rollback");
    let mut checked = 0;
    for entry in walk(&state) {
        let mode = std::fs::metadata(&entry).unwrap().permissions().mode() & 0o777;
        let want = if entry.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{}", entry.display());
        checked += 1;
    }
    assert!(checked > 8, "{checked}");
    // `git clean -ffdx` and a reset to any commit cannot reach the state.
    r.git(&["clean", "-ffdxq"]);
    r.git(&["reset", "-q", "--hard", "v1"]);
    assert!(state.join(format!("runs/{}/journal.jsonl", out.run_id.unwrap())).exists());
    assert_eq!(r.git(&["status", "--porcelain", "--ignored"]), "");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = vec![dir.to_path_buf()];
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

#[test]
fn the_kept_config_file_keeps_its_mode() {
    // The config is tracked, edited locally to hold an inline secret, and made private; the
    // target has an older copy. After the reset it is put back with its content AND its mode.
    let r = TestRepo::new();
    r.write("forge-rollback.toml", "[caches]\nglobs = []\n");
    r.commit_all("v1");
    r.git(&["tag", "v1"]);
    r.write("app.py", "v2\n").write("forge-rollback.toml", "[caches]\nglobs = [\"**/*.pyc\"]\n");
    r.commit_all("v2");
    r.write("forge-rollback.toml", "[caches]\nglobs = [\"**/*.pyc\"]\n# webhook token: s3cr3t\n")
        .chmod("forge-rollback.toml", 0o600);
    let rb = Rollback::open(r.path(), None).unwrap();
    let out = rb.run(&opts(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    let meta = std::fs::metadata(r.path().join("forge-rollback.toml")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600);
    assert!(String::from_utf8(r.read("forge-rollback.toml")).unwrap().contains("s3cr3t"));
}
