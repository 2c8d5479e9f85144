//! `undo` keeps what happened after the run: commits made on top of the rolled-back release.

use rollback_core::config::Config;
use rollback_core::event::Recorder;
use rollback_core::plan::Level;
use rollback_core::prompt::{AutoConfirm, Confirmation, Prompter};
use rollback_core::{Rollback, RunOptions, RunStatus};
use rollback_testkit::TestRepo;

/// Answers yes and keeps what it was asked.
#[derive(Default)]
struct Keep(std::sync::Mutex<Vec<String>>);

impl Prompter for Keep {
    fn confirm(&self, request: &Confirmation) -> rollback_core::Result<bool> {
        self.0.lock().unwrap().push(request.summary.clone());
        Ok(true)
    }
}

#[test]
fn a_hotfix_committed_after_the_rollback_is_kept_on_a_branch_when_the_run_is_undone() {
    let r = TestRepo::new();
    r.three_releases();
    let v3 = r.head();
    let rb = Rollback::builder(r.path()).config(Config::default()).build().unwrap();
    let opts = RunOptions { level: Some(Level::Fast), target: Some("v1".into()), ..RunOptions::default() };
    let run = rb.run(&opts, &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    let id = run.run_id.unwrap();

    // Production runs v1; someone commits a hotfix on the rolled-back branch.
    r.write("app/hotfix.py", "FIX = 1\n");
    r.git(&["add", "app/hotfix.py"]);
    r.git(&["commit", "-q", "-m", "hotfix on v1"]);
    let hotfix = r.head();

    let asked = Keep::default();
    let undo = rb.undo(&id, &asked, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert_eq!(r.head(), v3, "the undo moved the branch back to where the run started");

    let branch = format!("forge-rollback/kept-{id}");
    assert_eq!(r.git(&["rev-parse", &branch]).trim(), hotfix.trim(), "the hotfix is kept on its own branch");
    let summary = asked.0.lock().unwrap().join("\n");
    assert!(summary.contains(&branch) && summary.contains("hotfix on v1"), "the confirmation names it:\n{summary}");
    assert!(
        undo.warnings.iter().any(|w| w.contains(&branch) && w.contains("hotfix on v1")),
        "the outcome says so: {:?}",
        undo.warnings
    );
}

#[test]
fn an_undo_with_nothing_committed_since_makes_no_branch() {
    let r = TestRepo::new();
    r.three_releases();
    let rb = Rollback::builder(r.path()).config(Config::default()).build().unwrap();
    let opts = RunOptions { level: Some(Level::Fast), target: Some("v1".into()), ..RunOptions::default() };
    let id = rb.run(&opts, &AutoConfirm, &Recorder::default()).unwrap().run_id.unwrap();
    rb.undo(&id, &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(r.git(&["branch", "--list", "forge-rollback/*"]).trim(), "");
}
