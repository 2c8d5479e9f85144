//! Production targets: a run promotes the target commit's release on the platform, resume
//! finishes a promotion that failed or was cut short, undo promotes the earlier release again,
//! and a target the platform never built is refused before anything changes. Against
//! `MemDeployer`, a platform in memory that fails on command; the platform adapters run the
//! same `Deployer` suite against servers that speak their APIs.

use std::sync::Arc;

use rollback_core::config::Config;
use rollback_core::detail::StepDetail;
use rollback_core::event::Recorder;
use rollback_core::plan::{Level, Step};
use rollback_core::prompt::AutoConfirm;
use rollback_core::testing::production::{self, DeployFail, DeployerUnderTest, MemDeployer};
use rollback_core::vcs::CommitId;
use rollback_core::{ErrorKind, Rollback, RunOptions, RunStatus};
use rollback_testkit::TestRepo;

fn repo() -> (TestRepo, CommitId, CommitId) {
    let r = TestRepo::new();
    r.three_releases();
    let v1 = CommitId::new(r.git(&["rev-parse", "v1"]).trim()).unwrap();
    let v3 = CommitId::new(r.git(&["rev-parse", "v3"]).trim()).unwrap();
    (r, v1, v3)
}

/// Releases r1 (v1) and r3 (v3, live).
fn platform(v1: &CommitId, v3: &CommitId) -> Arc<MemDeployer> {
    Arc::new(MemDeployer::new("api", &[("r1", v1), ("r3", v3)]))
}

fn rollback(r: &TestRepo, d: &Arc<MemDeployer>) -> Rollback {
    Rollback::builder(r.path()).config(Config::default()).deployer(d.clone()).build().unwrap()
}

fn to_v1() -> RunOptions {
    RunOptions { level: Some(Level::Fast), target: Some("v1".into()), ..RunOptions::default() }
}

#[test]
fn the_in_memory_platform_passes_the_deployer_suite() {
    let (_r, v1, v3) = repo();
    production::run_all(&move || DeployerUnderTest {
        deployer: Box::new(MemDeployer::new("api", &[("r1", &v1), ("r3", &v3)])),
        built: vec![v1.clone(), v3.clone()],
    });
}

#[test]
fn a_run_promotes_the_targets_release_and_undo_promotes_the_earlier_one_again() {
    let (r, v1, v3) = repo();
    let d = platform(&v1, &v3);
    let rb = rollback(&r, &d);

    let plan = rb.plan(Some(Level::Fast), Some("v1")).unwrap();
    let promote = plan.steps.iter().find(|s| matches!(s, Step::Promote { .. })).expect("a promote step");
    let Step::Promote { production, from, to, .. } = promote else { unreachable!() };
    assert_eq!((production.as_str(), from.id.as_str(), to.id.as_str()), ("memory platform api", "r3", "r1"));
    assert_eq!(plan.steps.last().map(Step::name), Some("record"));

    let out = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    assert_eq!(d.live(), "r1");
    let detail = out.steps.iter().find(|s| s.step == "promote").and_then(|s| s.detail.clone());
    assert!(
        matches!(&detail, Some(StepDetail::Promote { from, to, already: false, .. }) if from.id == "r3" && to.id == "r1"),
        "{detail:?}"
    );
    let report = rb.report(out.run_id.as_deref().unwrap()).unwrap().to_markdown();
    assert!(report.contains("production moved from release r3"), "{report}");

    let undo = rb.undo(out.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert_eq!(d.live(), "r3", "the release live before the rollback is live again");
    assert_eq!(d.promoted(), ["r1", "r3"]);
    assert_eq!(r.git(&["rev-parse", "HEAD"]).trim(), v3.as_str());
}

#[test]
fn a_target_the_platform_never_built_is_refused_before_anything_changes() {
    let (r, _v1, v3) = repo();
    let d = Arc::new(MemDeployer::new("api", &[("r3", &v3)]));
    let rb = rollback(&r, &d);
    let head = r.git(&["rev-parse", "HEAD"]);
    let err = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(err.to_string().contains("no release built from the target"), "{err}");
    assert!(rollback_core::Error::hint(&err).unwrap().to_string().contains("revert-commit"), "{err}");
    assert_eq!(r.git(&["rev-parse", "HEAD"]), head);
    assert!(rb.runs().unwrap().is_empty(), "refused before a run began");
    assert!(d.promoted().is_empty());
}

#[test]
fn a_failed_promotion_is_resumed_and_one_cut_short_is_found_live() {
    for (fail, promoted_before_resume) in [(DeployFail::Rollback, 0), (DeployFail::WaitLive, 1)] {
        let (r, v1, v3) = repo();
        let d = platform(&v1, &v3);
        let rb = rollback(&r, &d);
        d.fail_on(fail);
        let out = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
        assert_eq!(out.status, RunStatus::Failed, "{fail:?}");
        assert_eq!(out.steps.iter().find(|s| s.step == "promote").unwrap().status, "failed");
        assert_eq!(d.promoted().len(), promoted_before_resume, "{fail:?}");
        assert_eq!(r.git(&["rev-parse", "HEAD"]).trim(), v1.as_str(), "the code moved before production");

        let id = out.run_id.unwrap();
        let resumed = rb.resume(&id, &Recorder::default()).unwrap();
        assert_eq!(resumed.status, RunStatus::Succeeded, "{fail:?}: {:?}", resumed.error);
        assert_eq!(d.live(), "r1");
        let already = matches!(
            resumed.steps.iter().find(|s| s.step == "promote").and_then(|s| s.detail.as_ref()),
            Some(StepDetail::Promote { already: true, .. })
        );
        assert_eq!(already, fail == DeployFail::WaitLive, "{fail:?}: found live after a cut-short promotion");
        assert_eq!(d.promoted(), ["r1"], "{fail:?}: promoted once");

        // Undo after the resume: r3 again, from the ids the plan journaled.
        rb.undo(&id, &AutoConfirm, &Recorder::default()).unwrap();
        assert_eq!(d.live(), "r3", "{fail:?}");
    }
}

#[test]
fn undo_of_a_run_that_promoted_needs_the_production_target() {
    let (r, v1, v3) = repo();
    let d = platform(&v1, &v3);
    let out = rollback(&r, &d).run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    let without = Rollback::builder(r.path()).config(Config::default()).build().unwrap();
    let err = without.undo(out.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
    assert!(err.to_string().contains("changed production"), "{err}");
    assert_eq!(d.live(), "r1", "nothing was undone half-way");
    assert_eq!(r.git(&["rev-parse", "HEAD"]).trim(), v1.as_str());
}

/// Answers `rollback` with Ok and changes nothing: the commonest adapter bug (a request sent
/// to the wrong service, or never awaited).
struct Stuck(MemDeployer);

#[async_trait::async_trait]
impl rollback_core::Deployer for Stuck {
    fn describe(&self) -> String {
        self.0.describe()
    }
    async fn current(&self) -> rollback_core::production::Result<rollback_core::production::Release> {
        self.0.current().await
    }
    async fn find(
        &self,
        c: &CommitId,
    ) -> rollback_core::production::Result<Option<rollback_core::production::Release>> {
        self.0.find(c).await
    }
    async fn rollback(&self, _to: &rollback_core::production::Release) -> rollback_core::production::Result<()> {
        Ok(())
    }
    async fn wait_live(
        &self,
        _release: &rollback_core::production::Release,
        _timeout: std::time::Duration,
    ) -> rollback_core::production::Result<()> {
        Ok(())
    }
}

#[test]
fn the_deployer_suite_fails_a_target_whose_rollback_changes_nothing() {
    let (_r, v1, v3) = repo();
    let err = std::panic::catch_unwind(|| {
        production::run_all(&move || DeployerUnderTest {
            deployer: Box::new(Stuck(MemDeployer::new("api", &[("r1", &v1), ("r3", &v3)]))),
            built: vec![v1.clone(), v3.clone()],
        });
    })
    .expect_err("a target that never promotes must not conform");
    let text = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(text.contains("rollback_makes_a_release_live_and_back"), "{text}");
}
