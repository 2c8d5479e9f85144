//! The Heroku adapter against `FakeHeroku`, a local server that speaks the Platform API v3
//! (versioned `Accept`, Bearer auth, `Range`/`Next-Range` pagination, slugs, `{"id","message"}`
//! errors, 429 + Retry-After), and, when `FORGE_ROLLBACK_LIVE_HEROKU_API_KEY` is set, against
//! Heroku itself (read-only).

use rollback_core::config::Config;
use rollback_core::deploy::{DeployConfig, DeployStrategy};
use rollback_core::event::Recorder;
use rollback_core::model::{RiskCode, RiskSeverity};
use rollback_core::plan::{Level, Step};
use rollback_core::platform::heroku::Heroku;
use rollback_core::production::Deployer;
use rollback_core::prompt::AutoConfirm;
use rollback_core::testing::production::{self, DeployerUnderTest};
use rollback_core::vcs::CommitId;
use rollback_core::{ErrorKind, Rollback, RunStatus, rt};
use rollback_testkit::TestRepo;
use rollback_testkit::platform::FakeHeroku;

use crate::platform_common::{everything_a_run_to_v1_leaves, repo, set_token, to_v1};

const TOKEN: &str = "hk-planted-key-8e9f0a1b2c";

/// Releases v1 (rel-1), v2 (rel-2) and v3 (rel-3, current): two pages of two.
fn fake(v1: &CommitId, v2: &CommitId, v3: &CommitId) -> FakeHeroku {
    FakeHeroku::start(TOKEN, &[v1.as_str(), v2.as_str(), v3.as_str()])
}

fn deploy_config(f: &FakeHeroku, var: &str) -> DeployConfig {
    DeployConfig {
        strategy: DeployStrategy::Heroku,
        app: Some("my-app".into()),
        token_env: Some(var.into()),
        api_url: Some(f.api_url()),
        live_timeout_secs: 3.0,
        poll_secs: 0.05,
        ..DeployConfig::default()
    }
}

fn rollback(r: &TestRepo, f: &FakeHeroku, var: &str) -> Rollback {
    let mut config = Config::default();
    config.deploy = Some(deploy_config(f, var));
    Rollback::builder(r.path()).config(config).build().unwrap()
}

#[test]
fn heroku_passes_the_deployer_suite() {
    let (_r, v1, v2, v3) = repo();
    set_token("FR_HK_SUITE", TOKEN);
    let servers = std::sync::Mutex::new(Vec::new());
    production::run_all(&move || {
        let f = fake(&v1, &v2, &v3);
        let d = Heroku::from_config(&deploy_config(&f, "FR_HK_SUITE"));
        servers.lock().unwrap().push(f);
        DeployerUnderTest { deployer: Box::new(d), built: vec![v1.clone(), v3.clone()] }
    });
}

#[test]
fn requests_carry_the_versioned_accept_and_bearer_and_page_by_next_range() {
    let (_r, v1, v2, v3) = repo();
    set_token("FR_HK_SHAPE", TOKEN);
    let f = fake(&v1, &v2, &v3);
    let d = Heroku::from_config(&deploy_config(&f, "FR_HK_SHAPE"));
    let found = rt::block_on(d.find(&v1)).unwrap().expect("v1's release");
    assert_eq!((found.id.as_str(), found.commit.as_ref()), ("rel-1", Some(&v1)));
    assert!(found.summary.starts_with("release v1: Deploy "), "{}", found.summary);
    let reqs = f.requests();
    for r in &reqs {
        assert_eq!(r.method, "GET");
        assert_eq!(r.header("accept"), Some("application/vnd.heroku+json; version=3"));
        assert_eq!(r.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    }
    let lists: Vec<_> = reqs.iter().filter(|r| r.path == "/apps/my-app/releases").collect();
    assert_eq!(lists.len(), 2, "three releases, two per page");
    assert_eq!(lists[0].header("range"), Some("version ..; order=desc, max=100"));
    assert_eq!(lists[1].header("range"), Some("]2..; order=desc, max=2"), "the first page's Next-Range, sent back");
    let slugs: Vec<_> =
        reqs.iter().filter(|r| r.path.starts_with("/apps/my-app/slugs/")).map(|r| r.path.as_str()).collect();
    assert_eq!(
        slugs,
        ["/apps/my-app/slugs/slug-3", "/apps/my-app/slugs/slug-2", "/apps/my-app/slugs/slug-1"],
        "each slug read once"
    );
}

#[test]
fn a_rejected_key_names_herokus_message_and_a_429_is_waited_out() {
    let (_r, v1, v2, v3) = repo();
    set_token("FR_HK_AUTH", "hk-wrong-key-0000");
    let f = fake(&v1, &v2, &v3);
    let d = Heroku::from_config(&deploy_config(&f, "FR_HK_AUTH"));
    let err = rt::block_on(d.current()).unwrap_err();
    assert!(err.to_string().contains("listing releases failed (401): Invalid credentials provided."), "{err}");
    set_token("FR_HK_AUTH", TOKEN);
    f.rate_limit(1);
    assert_eq!(rt::block_on(d.current()).unwrap().id, "rel-3");
}

#[test]
fn a_run_rolls_back_to_v1s_release_and_undo_to_v3s() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_HK_RUN", TOKEN);
    let f = fake(&v1, &v2, &v3);
    let rb = rollback(&r, &f, "FR_HK_RUN");
    let plan = rb.plan(Some(Level::Fast), Some("v1")).unwrap();
    let Some(Step::Promote { production, from, to, autodeploy }) = plan.steps.iter().find(|s| s.name() == "promote")
    else {
        panic!("a promote step: {plan:?}")
    };
    assert!(
        production.starts_with("heroku app my-app") && production.contains("config vars roll back"),
        "{production}"
    );
    assert_eq!((from.id.as_str(), to.id.as_str()), ("rel-3", "rel-1"));
    assert_eq!(*autodeploy, None, "no autodeploy switch in the Platform API");

    let out = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    assert_eq!(f.rollbacks(), ["rel-1"]);
    let post = f.requests().into_iter().find(|q| q.method == "POST").unwrap();
    assert_eq!(post.path, "/apps/my-app/releases");
    assert_eq!(post.body_json(), serde_json::json!({"release": "rel-1"}));
    assert_eq!(f.live_commit().as_deref(), Some(v1.as_str()));
    assert_eq!(f.releases().last().unwrap().description, "Rollback to v1");

    let undo = rb.undo(out.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert_eq!(f.rollbacks(), ["rel-1", "rel-3"]);
    assert_eq!(f.live_commit().as_deref(), Some(v3.as_str()));
}

#[test]
fn freeze_on_heroku_is_a_risk_saying_what_to_do_and_calls_nothing_but_the_rollback() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_HK_FREEZE", TOKEN);
    let f = fake(&v1, &v2, &v3);
    let rb = rollback(&r, &f, "FR_HK_FREEZE");
    let a = rb.assess(Some("v1")).unwrap();
    let risk = a.risks.iter().find(|r| r.code == RiskCode::NoAutodeploySwitch).expect("the freeze risk");
    assert_eq!(risk.severity, RiskSeverity::Medium);
    for must in ["cannot switch automatic deploys", "Dashboard", "Disable Automatic Deploys", "pipeline promotion"] {
        assert!(risk.message.contains(must), "{must}: {}", risk.message);
    }
    let plan = rb.plan(Some(Level::Fast), Some("v1")).unwrap();
    assert!(plan.risks.iter().any(|r| r.code == RiskCode::NoAutodeploySwitch), "{:?}", plan.risks);
    let out = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    for q in f.requests() {
        let allowed = q.method == "GET" || (q.method == "POST" && q.path == "/apps/my-app/releases");
        assert!(allowed, "{} {}", q.method, q.path);
    }
    assert_eq!(f.rollbacks(), ["rel-1"]);

    let mut config = Config::default();
    config.deploy = Some(DeployConfig { freeze: false, ..deploy_config(&f, "FR_HK_FREEZE") });
    let quiet = Rollback::builder(r.path()).config(config).build().unwrap();
    assert!(quiet.assess(Some("v2")).unwrap().risks.iter().all(|r| r.code != RiskCode::NoAutodeploySwitch));
}

#[test]
fn a_target_heroku_never_released_is_refused() {
    let (r, _v1, v2, v3) = repo();
    set_token("FR_HK_NEVER", TOKEN);
    let f = FakeHeroku::start(TOKEN, &[v2.as_str(), v3.as_str()]);
    let err = rollback(&r, &f, "FR_HK_NEVER").run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(rollback_core::Error::hint(&err).unwrap().to_string().contains("`push` or `revert-commit`"), "{err}");
    assert!(f.rollbacks().is_empty());
}

#[test]
fn a_refused_rollback_names_herokus_message_and_resume_finishes() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_HK_REFUSED", TOKEN);
    let f = fake(&v1, &v2, &v3);
    let rb = rollback(&r, &f, "FR_HK_REFUSED");
    f.refuse_rollback(Some("App is in maintenance mode"));
    let out = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    let error = out.error.clone().unwrap_or_default();
    assert!(error.contains("rolling back to release rel-1 failed (422): App is in maintenance mode"), "{error}");
    f.refuse_rollback(None);
    let resumed = rb.resume(out.run_id.as_deref().unwrap(), &Recorder::default()).unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
    assert_eq!(f.live_commit().as_deref(), Some(v1.as_str()));
}

#[test]
fn a_release_that_stays_pending_or_fails_fails_the_wait_and_resume_does_not_roll_back_twice() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_HK_PENDING", TOKEN);
    let f = fake(&v1, &v2, &v3);
    let rb = rollback(&r, &f, "FR_HK_PENDING");
    f.never_live(true);
    let out = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    assert!(out.error.clone().unwrap_or_default().contains("did not go live within 3 s"), "{:?}", out.error);
    f.never_live(false);
    let resumed = rb.resume(out.run_id.as_deref().unwrap(), &Recorder::default()).unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
    assert_eq!(f.rollbacks(), ["rel-1"], "rolled back once");

    let (r2, ..) = repo();
    let f2 = fake(&v1, &v2, &v3);
    f2.end_failed(true);
    let out = rollback(&r2, &f2, "FR_HK_PENDING").run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    assert!(out.error.clone().unwrap_or_default().contains("failed (its release phase)"), "{:?}", out.error);
}

#[test]
fn the_planted_key_is_in_no_plan_journal_report_or_event() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_HK_PLANTED", TOKEN);
    let f = fake(&v1, &v2, &v3);
    let rb = rollback(&r, &f, "FR_HK_PLANTED");
    let seen = everything_a_run_to_v1_leaves(&rb, &r);
    assert!(seen.contains("rel-1"));
    assert!(!seen.contains(TOKEN), "the key leaked");
}

#[test]
fn an_undo_while_the_runs_promotion_is_in_flight_waits_for_it_and_does_not_claim_success() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_HK_INFLIGHT", TOKEN);
    let f = fake(&v1, &v2, &v3);
    let rb = rollback(&r, &f, "FR_HK_INFLIGHT");
    f.never_live(true);
    let out = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Failed, "{:?}", out.error);
    let undo = rb.undo(out.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Failed, "not complete while the run's promotion is in flight");
    assert!(undo.error.clone().unwrap_or_default().contains("still in progress"), "{:?}", undo.error);
    assert_eq!(f.rollbacks(), ["rel-1"], "nothing sent over it");

    // The platform finishes the run's promotion; the resumed undo then puts v3 back over it.
    f.never_live(false);
    let resumed = rb.resume(undo.run_id.as_deref().unwrap(), &Recorder::default()).unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
    assert_eq!(f.rollbacks(), ["rel-1", "rel-3"]);
    assert_eq!(f.live_commit().as_deref(), Some(v3.as_str()));
}

/// Against Heroku itself, read-only, when `FORGE_ROLLBACK_LIVE_HEROKU_API_KEY` and
/// `FORGE_ROLLBACK_LIVE_HEROKU_APP` are set.
#[test]
fn live_heroku_read_only() {
    let (Ok(_), Ok(app)) =
        (std::env::var("FORGE_ROLLBACK_LIVE_HEROKU_API_KEY"), std::env::var("FORGE_ROLLBACK_LIVE_HEROKU_APP"))
    else {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "skipped: set FORGE_ROLLBACK_LIVE_HEROKU_API_KEY and FORGE_ROLLBACK_LIVE_HEROKU_APP to run against Heroku"
            );
        }
        return;
    };
    let d = Heroku::from_config(&DeployConfig {
        strategy: DeployStrategy::Heroku,
        app: Some(app),
        token_env: Some("FORGE_ROLLBACK_LIVE_HEROKU_API_KEY".into()),
        ..DeployConfig::default()
    });
    let live = rt::block_on(d.current()).expect("the current release");
    if let Some(commit) = live.commit.clone() {
        let found = rt::block_on(d.find(&commit)).unwrap().expect("its commit's release");
        assert!(d.serves(&live, &found));
    }
}
