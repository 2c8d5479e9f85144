//! No one can use the state folder against the user running forge-rollback (issue 13): a
//! `state.dir` that resolves into the work tree through a symlink is refused like one written
//! inside it (case 5).

use std::fs;
use std::path::Path;

use rollback_core::config::Config;
use rollback_core::event::Recorder;
use rollback_core::plan::Level;
use rollback_core::{AutoConfirm, ErrorKind, Rollback, RunOptions, RunStatus};
use rollback_testkit::TestRepo;

fn config(state_dir: &Path) -> Config {
    Config::parse(&format!("[state]\ndir = {:?}\n", state_dir.display().to_string()), None).unwrap()
}

fn fast_to(target: &str) -> RunOptions {
    RunOptions { level: Some(Level::Fast), target: Some(target.into()), ..RunOptions::default() }
}

/// A repository at v3 with an untracked file (which a rollback captures and removes), and a
/// folder outside it.
struct Scene {
    repo: TestRepo,
    outside: tempfile::TempDir,
}

impl Scene {
    fn new() -> Self {
        let repo = TestRepo::new();
        repo.three_releases();
        repo.write("notes.txt", "mine\n");
        Self { repo, outside: tempfile::tempdir().unwrap() }
    }
}

#[test]
fn a_state_dir_that_resolves_into_the_work_tree_through_a_symlink_is_refused() {
    let s = Scene::new();
    let tree = s.repo.path().canonicalize().unwrap();
    // A link outside the tree to a folder in it: `<outside>/link/state` is `<tree>/app/state`.
    std::os::unix::fs::symlink(tree.join("app"), s.outside.path().join("link")).unwrap();
    let tree_before = s.repo.tree();
    for configured in [s.outside.path().join("link/state"), s.outside.path().join("link/./sub/../state")] {
        let err = Rollback::builder(s.repo.path()).config(config(&configured)).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
        let text = err.to_string();
        let resolved = tree.join("app/state");
        for part in [
            "state.dir",
            &format!("`{}` resolves to `{}`", configured.display(), resolved.display()),
            &format!("inside the work tree `{}`", tree.display()),
        ] {
            assert!(text.contains(part), "says `{part}`: {text}");
        }
    }
    // Relative to the work tree, through a link in it that points back in.
    s.repo.symlink("deploy", "app");
    let err = Rollback::builder(s.repo.path()).config(config(Path::new("deploy/state"))).build().unwrap_err();
    assert!(err.to_string().contains("`deploy/state` resolves to"), "{err}");
    s.repo.remove("deploy");
    assert!(s.repo.tree() == tree_before, "nothing was created in the tree");

    // A link in the tree that points out of it is fine: the state goes where it resolves to,
    // so the run may remove the (untracked) link and the undo still finds its backup.
    let out = s.outside.path().join("real-state");
    fs::create_dir(&out).unwrap();
    s.repo.symlink("state-link", &out);
    let rb = Rollback::builder(s.repo.path()).config(config(Path::new("state-link/x"))).build().unwrap();
    let run = rb.run(&fast_to("v1"), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert!(!s.repo.exists("state-link"), "the run removed the untracked link");
    let id = run.run_id.unwrap();
    assert!(out.join("x/runs").join(&id).join("journal.jsonl").is_file());
    let undo = rb.undo(&id, &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert_eq!(s.repo.read("notes.txt"), b"mine\n");
    assert!(s.repo.exists("state-link"));
}
