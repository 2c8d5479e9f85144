//! The Render adapter against `FakeRender`, a local server that speaks Render's REST API
//! (Bearer auth, cursor pagination, `{"id","message"}` error bodies, 429 + Retry-After), and,
//! when `FORGE_ROLLBACK_LIVE_RENDER_API_KEY` is set, against Render itself (read-only).

use rollback_core::config::Config;
use rollback_core::deploy::{DeployConfig, DeployStrategy};
use rollback_core::event::Recorder;
use rollback_core::plan::{Level, Step};
use rollback_core::platform::render::Render;
use rollback_core::production::Deployer;
use rollback_core::prompt::AutoConfirm;
use rollback_core::testing::production::{self, DeployerUnderTest};
use rollback_core::vcs::CommitId;
use rollback_core::{ErrorKind, Rollback, RunStatus, rt};
use rollback_testkit::TestRepo;
use rollback_testkit::platform::FakeRender;

use crate::platform_common::{everything_a_run_to_v1_leaves, repo, set_token, to_v1};

const TOKEN: &str = "rnd-planted-key-3c4d5e6f7a";

/// Deploys of v1, v2 and v3 (live): two pages of two.
fn fake(v1: &CommitId, v2: &CommitId, v3: &CommitId) -> FakeRender {
    FakeRender::start(TOKEN, &[("dep-1", v1.as_str()), ("dep-2", v2.as_str()), ("dep-3", v3.as_str())])
}

fn deploy_config(f: &FakeRender, var: &str) -> DeployConfig {
    DeployConfig {
        strategy: DeployStrategy::Render,
        service_id: Some("srv-1".into()),
        token_env: Some(var.into()),
        api_url: Some(f.api_url()),
        live_timeout_secs: 3.0,
        poll_secs: 0.05,
        ..DeployConfig::default()
    }
}

fn rollback(r: &TestRepo, f: &FakeRender, var: &str) -> Rollback {
    let mut config = Config::default();
    config.deploy = Some(deploy_config(f, var));
    Rollback::builder(r.path()).config(config).build().unwrap()
}

#[test]
fn render_passes_the_deployer_suite() {
    let (_r, v1, v2, v3) = repo();
    set_token("FR_RND_SUITE", TOKEN);
    let servers = std::sync::Mutex::new(Vec::new());
    production::run_all(&move || {
        let f = fake(&v1, &v2, &v3);
        let d = Render::from_config(&deploy_config(&f, "FR_RND_SUITE"));
        servers.lock().unwrap().push(f);
        DeployerUnderTest { deployer: Box::new(d), built: vec![v1.clone(), v3.clone()] }
    });
}

#[test]
fn requests_carry_the_bearer_key_and_page_by_the_last_cursor() {
    let (_r, v1, v2, v3) = repo();
    set_token("FR_RND_SHAPE", TOKEN);
    let f = fake(&v1, &v2, &v3);
    let d = Render::from_config(&deploy_config(&f, "FR_RND_SHAPE"));
    let found = rt::block_on(d.find(&v1)).unwrap().expect("v1's deploy");
    assert_eq!((found.id.as_str(), found.commit.as_ref()), ("dep-1", Some(&v1)));
    let reqs = f.requests();
    assert_eq!(reqs.len(), 2, "dep-1 is on the second page of two");
    for r in &reqs {
        assert_eq!(r.method, "GET");
        assert_eq!(r.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
        assert_eq!(r.header("accept"), Some("application/json"));
    }
    assert_eq!(reqs[0].path, "/v1/services/srv-1/deploys?limit=100");
    assert_eq!(reqs[1].path, "/v1/services/srv-1/deploys?limit=100&cursor=cur-dep-2", "after the last item's cursor");
}

#[test]
fn a_rejected_key_names_renders_message_and_a_429_is_waited_out() {
    let (_r, v1, v2, v3) = repo();
    set_token("FR_RND_AUTH", "rnd-wrong-key-000");
    let f = fake(&v1, &v2, &v3);
    let d = Render::from_config(&deploy_config(&f, "FR_RND_AUTH"));
    let err = rt::block_on(d.current()).unwrap_err();
    assert!(err.to_string().contains("listing deploys failed (401): unauthorized"), "{err}");
    assert!(err.hint().unwrap().contains("FR_RND_AUTH"), "{:?}", err.hint());

    set_token("FR_RND_AUTH", TOKEN);
    f.rate_limit(1);
    assert_eq!(rt::block_on(d.current()).unwrap().id, "dep-3");
    assert_eq!(f.requests().len(), 3, "the 401, the 429, then the answer");
}

#[test]
fn a_run_rolls_back_to_v1s_deploy_and_undo_to_v3s() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_RND_RUN", TOKEN);
    let f = fake(&v1, &v2, &v3);
    let rb = rollback(&r, &f, "FR_RND_RUN");
    let plan = rb.plan(Some(Level::Fast), Some("v1")).unwrap();
    let Some(Step::Promote { production, from, to, .. }) =
        plan.steps.iter().find(|s| matches!(s, Step::Promote { .. }))
    else {
        panic!("a promote step: {plan:?}")
    };
    assert!(production.starts_with("render service srv-1"), "{production}");
    assert!(production.contains("environment variables stay"), "{production}");
    assert_eq!((from.id.as_str(), to.id.as_str()), ("dep-3", "dep-1"));
    assert!(matches!(
        plan.steps.iter().find(|s| s.name() == "promote"),
        Some(Step::Promote { autodeploy: Some(false), .. })
    ));

    let out = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    assert_eq!(f.rollbacks(), ["dep-1"]);
    assert_eq!(f.live_commit().as_deref(), Some(v1.as_str()));
    let post = f.requests().into_iter().find(|q| q.method == "POST").unwrap();
    assert_eq!(post.path, "/v1/services/srv-1/rollback");
    assert_eq!(post.body_json(), serde_json::json!({"deployId": "dep-1"}));
    // The freeze: autoDeploy off once the release serves, and the report says so.
    assert_eq!(f.auto_deploy(), "no");
    let patches: Vec<_> = f.requests().into_iter().filter(|q| q.method == "PATCH").collect();
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].path, "/v1/services/srv-1");
    assert_eq!(patches[0].body_json(), serde_json::json!({"autoDeploy": "no"}));
    let report = rb.report(out.run_id.as_deref().unwrap()).unwrap().to_markdown();
    assert!(report.contains("automatic deploys turned off"), "{report}");

    let undo = rb.undo(out.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert_eq!(f.rollbacks(), ["dep-1", "dep-3"]);
    assert_eq!(f.live_commit().as_deref(), Some(v3.as_str()));
    assert_eq!(f.auto_deploy(), "yes", "undo turns automatic deploys back on");
}

#[test]
fn autodeploy_already_off_stays_off_after_undo_and_freeze_false_never_touches_it() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_RND_FREEZE", TOKEN);
    let f = fake(&v1, &v2, &v3);
    f.set_auto_deploy("no");
    let rb = rollback(&r, &f, "FR_RND_FREEZE");
    let out = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    rb.undo(out.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(f.auto_deploy(), "no", "the operator had it off: undo leaves it off");
    assert!(f.requests().iter().all(|q| q.method != "PATCH"));

    let (r2, ..) = repo();
    let f2 = fake(&v1, &v2, &v3);
    let mut config = Config::default();
    config.deploy = Some(DeployConfig { freeze: false, ..deploy_config(&f2, "FR_RND_FREEZE") });
    let rb2 = Rollback::builder(r2.path()).config(config).build().unwrap();
    let out = rb2.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    assert_eq!(f2.auto_deploy(), "yes");
    assert!(f2.requests().iter().all(|q| q.method != "PATCH" && q.path != "/v1/services/srv-1"));
}

#[test]
fn a_target_render_never_deployed_is_refused() {
    let (r, _v1, v2, v3) = repo();
    set_token("FR_RND_NEVER", TOKEN);
    let f = FakeRender::start(TOKEN, &[("dep-2", v2.as_str()), ("dep-3", v3.as_str())]);
    let rb = rollback(&r, &f, "FR_RND_NEVER");
    let err = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(rollback_core::Error::hint(&err).unwrap().to_string().contains("`push` or `revert-commit`"), "{err}");
    assert!(f.rollbacks().is_empty());
}

#[test]
fn a_refused_rollback_names_renders_message_and_resume_finishes() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_RND_REFUSED", TOKEN);
    let f = fake(&v1, &v2, &v3);
    let rb = rollback(&r, &f, "FR_RND_REFUSED");
    f.refuse_rollback(Some("service is suspended"));
    let out = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    let error = out.error.clone().unwrap_or_default();
    assert!(error.contains("rolling back to deploy dep-1 failed (400): service is suspended"), "{error}");
    f.refuse_rollback(None);
    let resumed = rb.resume(out.run_id.as_deref().unwrap(), &Recorder::default()).unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
    assert_eq!(f.live_commit().as_deref(), Some(v1.as_str()));
}

#[test]
fn a_deploy_that_never_goes_live_or_fails_fails_the_wait_and_resume_does_not_roll_back_twice() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_RND_NEVERLIVE", TOKEN);
    let f = fake(&v1, &v2, &v3);
    let rb = rollback(&r, &f, "FR_RND_NEVERLIVE");
    f.never_live(true);
    let out = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    assert!(out.error.clone().unwrap_or_default().contains("did not go live within 3 s"), "{:?}", out.error);
    f.never_live(false);
    let resumed = rb.resume(out.run_id.as_deref().unwrap(), &Recorder::default()).unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
    assert_eq!(f.rollbacks(), ["dep-1"], "rolled back once");

    let (r2, ..) = repo();
    let f2 = fake(&v1, &v2, &v3);
    f2.end_failed(true);
    let out = rollback(&r2, &f2, "FR_RND_NEVERLIVE").run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    assert!(out.error.clone().unwrap_or_default().contains("ended update_failed"), "{:?}", out.error);
}

#[test]
fn a_502_while_waiting_for_the_deploy_is_looked_past_until_the_deadline() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_RND_HICCUP", TOKEN);
    let f = fake(&v1, &v2, &v3);
    f.hiccup_while_deploying(1);
    let out = rollback(&r, &f, "FR_RND_HICCUP").run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "one bad answer does not fail the run: {:?}", out.error);
    assert_eq!(f.rollbacks(), ["dep-1"]);
    assert_eq!(f.live_commit().as_deref(), Some(v1.as_str()));

    // An API that keeps failing: the wait ends at its deadline, naming the last failure.
    let (r2, ..) = repo();
    let f2 = fake(&v1, &v2, &v3);
    f2.hiccup_while_deploying(u32::MAX);
    let out = rollback(&r2, &f2, "FR_RND_HICCUP").run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    let error = out.error.unwrap_or_default();
    assert!(error.contains("did not go live within 3 s"), "{error}");
    assert!(error.contains("the last look failed") && error.contains("listing deploys failed (502)"), "{error}");
}

#[test]
fn a_429_the_retries_cannot_wait_out_while_waiting_for_the_deploy_is_looked_past_too() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_RND_LIMIT", TOKEN);
    let f = fake(&v1, &v2, &v3);
    // No `Retry-After`: one call gives up at once; the wait for the deploy looks again.
    f.rate_limit_while_deploying(2);
    let out = rollback(&r, &f, "FR_RND_LIMIT").run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "a rate limit is not the deploy failing: {:?}", out.error);
    assert_eq!(f.rollbacks(), ["dep-1"]);
    assert_eq!(f.live_commit().as_deref(), Some(v1.as_str()));

    // Still limited at the deadline: not live, naming the rate limit as the last look.
    let (r2, ..) = repo();
    let f2 = fake(&v1, &v2, &v3);
    f2.rate_limit_while_deploying(u32::MAX);
    let out = rollback(&r2, &f2, "FR_RND_LIMIT").run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    let error = out.error.unwrap_or_default();
    assert!(error.contains("did not go live within 3 s"), "{error}");
    assert!(error.contains("the last look failed") && error.contains("rate limited (429)"), "{error}");
}

#[test]
fn a_retry_after_given_as_an_http_date_is_waited_for_or_refused_not_read_as_now() {
    let (_r, v1, v2, v3) = repo();
    set_token("FR_RND_DATE", TOKEN);
    let f = fake(&v1, &v2, &v3);
    let d = Render::from_config(&deploy_config(&f, "FR_RND_DATE"));
    f.rate_limit_with(1, "Wed, 21 Oct 2099 07:28:00 GMT");
    let err = rt::block_on(d.current()).unwrap_err();
    assert!(err.to_string().contains("rate limited (429)"), "{err}");
    let hint = err.hint().unwrap_or_default();
    assert!(hint.contains("asked to wait") && !hint.contains("wait 0 s"), "{hint}");
    assert_eq!(f.requests().len(), 1, "a wait of decades is not taken, nor retried at once");
    f.rate_limit_with(1, "no date at all");
    let err = rt::block_on(d.current()).unwrap_err();
    assert!(err.hint().unwrap_or_default().contains("an unknown time"), "{:?}", err.hint());
}

#[test]
fn the_planted_key_is_in_no_plan_journal_report_or_event() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_RND_PLANTED", TOKEN);
    let f = fake(&v1, &v2, &v3);
    let rb = rollback(&r, &f, "FR_RND_PLANTED");
    let seen = everything_a_run_to_v1_leaves(&rb, &r);
    assert!(seen.contains("dep-1"));
    assert!(!seen.contains(TOKEN), "the key leaked");
}

/// Against Render itself, read-only, when `FORGE_ROLLBACK_LIVE_RENDER_API_KEY` and
/// `FORGE_ROLLBACK_LIVE_RENDER_SERVICE` are set.
#[test]
fn live_render_read_only() {
    let (Ok(_), Ok(service)) =
        (std::env::var("FORGE_ROLLBACK_LIVE_RENDER_API_KEY"), std::env::var("FORGE_ROLLBACK_LIVE_RENDER_SERVICE"))
    else {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "skipped: set FORGE_ROLLBACK_LIVE_RENDER_API_KEY and FORGE_ROLLBACK_LIVE_RENDER_SERVICE to run against Render"
            );
        }
        return;
    };
    let d = Render::from_config(&DeployConfig {
        strategy: DeployStrategy::Render,
        service_id: Some(service),
        token_env: Some("FORGE_ROLLBACK_LIVE_RENDER_API_KEY".into()),
        ..DeployConfig::default()
    });
    let live = rt::block_on(d.current()).expect("the live deploy");
    let commit = live.commit.clone().expect("a deploy from git names its commit");
    let found = rt::block_on(d.find(&commit)).unwrap().expect("its commit's deploy");
    assert!(d.serves(&live, &found));
}
