//! What the PaaS adapter tests (Fly, Heroku, Railway, Render) share: the token variable, the
//! repository with three releases, the run to v1, and everything a run leaves behind for the
//! planted-token checks.

use rollback_core::event::Recorder;
use rollback_core::plan::Level;
use rollback_core::prompt::AutoConfirm;
use rollback_core::vcs::CommitId;
use rollback_core::{Rollback, RunOptions, RunStatus};
use rollback_testkit::TestRepo;

pub fn set_token(var: &str, value: &str) {
    // SAFETY: nextest runs each test in its own process; every test uses its own variable.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var(var, value);
    }
}

/// A repository with the releases v1, v2 and v3 (HEAD), and their commits.
pub fn repo() -> (TestRepo, CommitId, CommitId, CommitId) {
    let r = TestRepo::new();
    r.three_releases();
    let id = |t: &str| CommitId::new(r.git(&["rev-parse", t]).trim()).unwrap();
    let (v1, v2, v3) = (id("v1"), id("v2"), id("v3"));
    (r, v1, v2, v3)
}

pub fn to_v1() -> RunOptions {
    RunOptions { level: Some(Level::Fast), target: Some("v1".into()), ..RunOptions::default() }
}

/// Plans and runs a fast rollback of `r` to v1, which must succeed, and returns all it left for
/// a reader: the plan (debug and JSON), the outcome, the events, the report, and every file
/// under `.git` (journal, log, backups, state).
pub fn everything_a_run_to_v1_leaves(rb: &Rollback, r: &TestRepo) -> String {
    let plan = rb.plan(Some(Level::Fast), Some("v1")).unwrap();
    let events = Recorder::default();
    let out = rb.run(&to_v1(), &AutoConfirm, &events).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    let report = rb.report(out.run_id.as_deref().unwrap()).unwrap();
    let mut seen =
        format!("{plan:?}\n{}\n{out:?}\n{events:?}\n{}", serde_json::to_string(&plan).unwrap(), report.to_markdown());
    let mut stack = vec![r.path().join(".git")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            } else {
                seen.push_str(&String::from_utf8_lossy(&std::fs::read(e.path()).unwrap()));
            }
        }
    }
    seen
}
