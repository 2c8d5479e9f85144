//! The Railway adapter against `FakeRailway`, a local server that speaks Railway's GraphQL API
//! (auth headers, cursor pagination, GraphQL error bodies, 429 + Retry-After), and, when
//! `FORGE_ROLLBACK_LIVE_RAILWAY_TOKEN` is set, against Railway itself (read-only).

use rollback_core::config::Config;
use rollback_core::deploy::{DeployConfig, DeployStrategy, TokenKind};
use rollback_core::event::Recorder;
use rollback_core::plan::{Level, Step};
use rollback_core::platform::railway::Railway;
use rollback_core::production::Deployer;
use rollback_core::prompt::AutoConfirm;
use rollback_core::testing::production::{self, DeployerUnderTest};
use rollback_core::vcs::CommitId;
use rollback_core::{ErrorKind, Rollback, RunStatus, rt};
use rollback_testkit::TestRepo;
use rollback_testkit::platform::{FakeRailway, RailwayToken};

use crate::platform_common::{everything_a_run_to_v1_leaves, repo, set_token, to_v1};

const TOKEN: &str = "rw-planted-token-5f0c1d2e";

/// Deployments of v1, v2 and v3 (live): three, so listing takes two pages of two.
fn fake(kind: RailwayToken, v1: &CommitId, v2: &CommitId, v3: &CommitId) -> FakeRailway {
    FakeRailway::start(TOKEN, kind, &[("dep-1", v1.as_str()), ("dep-2", v2.as_str()), ("dep-3", v3.as_str())])
}

fn deploy_config(f: &FakeRailway, var: &str, kind: TokenKind) -> DeployConfig {
    DeployConfig {
        strategy: DeployStrategy::Railway,
        service_id: Some("srv-1".into()),
        environment_id: Some("env-1".into()),
        token_env: Some(var.into()),
        token_kind: kind,
        api_url: Some(f.api_url()),
        live_timeout_secs: 3.0,
        poll_secs: 0.05,
        ..DeployConfig::default()
    }
}

fn rollback(r: &TestRepo, f: &FakeRailway, var: &str) -> Rollback {
    let mut config = Config::default();
    config.deploy = Some(deploy_config(f, var, TokenKind::Project));
    Rollback::builder(r.path()).config(config).build().unwrap()
}

#[test]
fn railway_passes_the_deployer_suite() {
    let (_r, v1, v2, v3) = repo();
    set_token("FR_RW_SUITE", TOKEN);
    let servers = std::sync::Mutex::new(Vec::new());
    production::run_all(&move || {
        let f = fake(RailwayToken::Project, &v1, &v2, &v3);
        let d = Railway::from_config(&deploy_config(&f, "FR_RW_SUITE", TokenKind::Project));
        servers.lock().unwrap().push(f);
        DeployerUnderTest { deployer: Box::new(d), built: vec![v1.clone(), v3.clone()] }
    });
}

#[test]
fn requests_carry_the_project_token_header_the_graphql_shape_and_page_by_cursor() {
    let (_r, v1, v2, v3) = repo();
    set_token("FR_RW_SHAPE", TOKEN);
    let f = fake(RailwayToken::Project, &v1, &v2, &v3);
    let d = Railway::from_config(&deploy_config(&f, "FR_RW_SHAPE", TokenKind::Project));
    let found = rt::block_on(d.find(&v1)).unwrap().expect("v1's deployment");
    assert_eq!(found.id, "dep-1");
    assert_eq!(found.commit.as_ref(), Some(&v1));
    let reqs = f.requests();
    assert_eq!(reqs.len(), 2, "dep-1 is on the second page of two");
    for r in &reqs {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/graphql/v2"));
        assert_eq!(r.header("project-access-token"), Some(TOKEN));
        assert_eq!(r.header("authorization"), None);
        assert_eq!(r.header("content-type"), Some("application/json"));
        let b = r.body_json();
        assert!(b["query"].as_str().unwrap().contains("deployments(input: $input, first: $first, after: $after)"));
        assert_eq!(b["variables"]["input"]["serviceId"], "srv-1");
        assert_eq!(b["variables"]["input"]["environmentId"], "env-1");
    }
    assert_eq!(reqs[0].body_json()["variables"]["after"], serde_json::Value::Null);
    assert_eq!(reqs[1].body_json()["variables"]["after"], "cursor-1", "the first page's endCursor");
}

#[test]
fn an_account_token_goes_in_the_bearer_header() {
    let (_r, v1, v2, v3) = repo();
    set_token("FR_RW_ACCOUNT", TOKEN);
    let f = fake(RailwayToken::Account, &v1, &v2, &v3);
    let d = Railway::from_config(&deploy_config(&f, "FR_RW_ACCOUNT", TokenKind::Account));
    assert_eq!(rt::block_on(d.current()).unwrap().id, "dep-3");
    let r = &f.requests()[0];
    assert_eq!(r.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    assert_eq!(r.header("project-access-token"), None);

    // The same token sent as a project token: Railway's "Not Authorized", named, with a hint.
    let wrong = Railway::from_config(&deploy_config(&f, "FR_RW_ACCOUNT", TokenKind::Project));
    let err = rt::block_on(wrong.current()).unwrap_err();
    assert!(err.to_string().contains("Not Authorized"), "{err}");
    assert!(err.hint().unwrap().contains("token_kind"), "{:?}", err.hint());
    assert!(!format!("{err} {:?}", err.hint()).contains(TOKEN));
}

#[test]
fn a_missing_token_variable_is_named_with_a_hint() {
    let (_r, v1, v2, v3) = repo();
    let f = fake(RailwayToken::Project, &v1, &v2, &v3);
    let d = Railway::from_config(&deploy_config(&f, "FR_RW_UNSET_VARIABLE", TokenKind::Project));
    let err = rt::block_on(d.current()).unwrap_err();
    assert!(err.to_string().contains("FR_RW_UNSET_VARIABLE is not set"), "{err}");
    assert!(err.hint().unwrap().contains("export FR_RW_UNSET_VARIABLE"), "{:?}", err.hint());
    // Set but blank (an empty secret in the platform's UI): said so, not "not set".
    set_token("FR_RW_BLANK_VARIABLE", " \n");
    let d = Railway::from_config(&deploy_config(&f, "FR_RW_BLANK_VARIABLE", TokenKind::Project));
    let err = rt::block_on(d.current()).unwrap_err();
    assert!(err.to_string().contains("FR_RW_BLANK_VARIABLE is empty"), "{err}");
    assert!(f.requests().is_empty(), "nothing is sent without a token");
}

#[test]
fn a_live_deployment_that_crashed_is_the_one_rolled_back_from() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_RW_CRASHED", TOKEN);
    let f = fake(RailwayToken::Project, &v1, &v2, &v3);
    f.crash_live();
    let d = Railway::from_config(&deploy_config(&f, "FR_RW_CRASHED", TokenKind::Project));
    let live = rt::block_on(d.current()).unwrap();
    assert_eq!((live.id.as_str(), live.commit.as_ref()), ("dep-3", Some(&v3)), "the crashed release is what runs");

    let out = rollback(&r, &f, "FR_RW_CRASHED").run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    assert_eq!(f.rollbacks(), ["dep-1"]);
    assert_eq!(f.live_commit().as_deref(), Some(v1.as_str()));
    assert!(
        f.deployments().iter().any(|x| x.id == "dep-3" && x.status == "REMOVED"),
        "the new deployment replaced the crashed one: {:?}",
        f.deployments()
    );
}

#[test]
fn a_removed_newest_deployment_is_named_not_taken_for_none_that_ran() {
    let (_r, v1, v2, v3) = repo();
    set_token("FR_RW_REMOVED", TOKEN);
    let f = fake(RailwayToken::Project, &v1, &v2, &v3);
    // The newest that ran was taken down; an older one still says SUCCESS.
    f.set_status("dep-3", "REMOVED");
    f.set_status("dep-2", "SUCCESS");
    let d = Railway::from_config(&deploy_config(&f, "FR_RW_REMOVED", TokenKind::Project));
    let err = rt::block_on(d.current()).unwrap_err().to_string();
    assert!(err.contains("no deployment is live: the newest that ran (dep-3) was REMOVED"), "{err}");
    assert!(!err.contains("none of the"), "{err}");
}

#[test]
fn a_429_is_waited_out_as_retry_after_says() {
    let (_r, v1, v2, v3) = repo();
    set_token("FR_RW_429", TOKEN);
    let f = fake(RailwayToken::Project, &v1, &v2, &v3);
    f.rate_limit(2);
    let d = Railway::from_config(&deploy_config(&f, "FR_RW_429", TokenKind::Project));
    assert_eq!(rt::block_on(d.current()).unwrap().id, "dep-3");
    assert_eq!(f.requests().len(), 3, "two 429s, then the answer");

    f.rate_limit(10);
    let err = rt::block_on(d.current()).unwrap_err();
    assert!(err.to_string().contains("rate limited (429): Rate limit exceeded"), "{err}");
}

#[test]
fn a_run_promotes_v1s_deployment_and_undo_promotes_v3s_again() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_RW_RUN", TOKEN);
    let f = fake(RailwayToken::Project, &v1, &v2, &v3);
    let rb = rollback(&r, &f, "FR_RW_RUN");

    let plan = rb.plan(Some(Level::Fast), Some("v1")).unwrap();
    let Some(Step::Promote { production, from, to, .. }) =
        plan.steps.iter().find(|s| matches!(s, Step::Promote { .. }))
    else {
        panic!("a promote step: {plan:?}")
    };
    assert!(production.starts_with("railway service srv-1 (environment env-1)"), "{production}");
    assert!(production.contains("variables roll back"), "{production}");
    assert!(
        matches!(
            plan.steps.iter().find(|s| s.name() == "promote"),
            Some(Step::Promote { autodeploy: Some(false), .. })
        ),
        "the freeze is planned"
    );
    assert_eq!((from.id.as_str(), to.id.as_str()), ("dep-3", "dep-1"));
    assert!(f.rollbacks().is_empty(), "planning changes nothing");

    let out = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    assert_eq!(f.rollbacks(), ["dep-1"]);
    assert_eq!(f.live_commit().as_deref(), Some(v1.as_str()));
    assert!(!f.auto_deploy(), "frozen: a push does not deploy the bad release again");
    let update = f
        .requests()
        .into_iter()
        .map(|q| q.body_json())
        .find(|b| b["query"].as_str().unwrap_or("").contains("serviceInstanceAutoDeployUpdate("))
        .expect("the auto-deploy mutation");
    assert_eq!(
        update["variables"]["input"],
        serde_json::json!({"enabled": false, "environmentId": "env-1", "projectId": "prj-1", "serviceId": "srv-1"})
    );

    let undo = rb.undo(out.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert_eq!(f.rollbacks(), ["dep-1", "dep-3"], "undo re-promotes the deployment live before");
    assert_eq!(f.live_commit().as_deref(), Some(v3.as_str()));
    assert!(f.auto_deploy(), "undo turns auto-deploy back on");
}

#[test]
fn a_target_railway_never_built_is_refused_with_the_rebuild_hint() {
    let (r, _v1, v2, v3) = repo();
    set_token("FR_RW_NEVER", TOKEN);
    let f = FakeRailway::start(TOKEN, RailwayToken::Project, &[("dep-2", v2.as_str()), ("dep-3", v3.as_str())]);
    let rb = rollback(&r, &f, "FR_RW_NEVER");
    let head = r.git(&["rev-parse", "HEAD"]);
    let err = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(err.to_string().contains("no release built from the target"), "{err}");
    assert!(rollback_core::Error::hint(&err).unwrap().to_string().contains("`push` or `revert-commit`"), "{err}");
    assert_eq!(r.git(&["rev-parse", "HEAD"]), head);
    assert!(f.rollbacks().is_empty());
}

#[test]
fn a_deployment_whose_image_expired_is_refused_naming_can_rollback() {
    let (_r, v1, v2, v3) = repo();
    set_token("FR_RW_EXPIRED", TOKEN);
    let f = fake(RailwayToken::Project, &v1, &v2, &v3);
    f.expire(v1.as_str());
    let d = Railway::from_config(&deploy_config(&f, "FR_RW_EXPIRED", TokenKind::Project));
    let err = rt::block_on(d.find(&v1)).unwrap_err();
    assert!(err.to_string().contains("canRollback is false"), "{err}");
}

#[test]
fn a_refused_rollback_fails_the_step_naming_railways_message_then_resume_finishes() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_RW_REFUSED", TOKEN);
    let f = fake(RailwayToken::Project, &v1, &v2, &v3);
    let rb = rollback(&r, &f, "FR_RW_REFUSED");
    f.refuse_rollback(Some("Deployment is being removed"));
    let out = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    let error = out.error.clone().unwrap_or_default();
    assert!(error.contains("deploymentRollback failed: Deployment is being removed"), "{error}");
    assert_eq!(f.live_commit().as_deref(), Some(v3.as_str()));

    f.refuse_rollback(None);
    let resumed = rb.resume(out.run_id.as_deref().unwrap(), &Recorder::default()).unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
    assert_eq!(f.live_commit().as_deref(), Some(v1.as_str()));
}

#[test]
fn a_deployment_that_never_goes_live_or_fails_fails_the_wait_and_resume_does_not_deploy_twice() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_RW_NEVERLIVE", TOKEN);
    let f = fake(RailwayToken::Project, &v1, &v2, &v3);
    let rb = rollback(&r, &f, "FR_RW_NEVERLIVE");
    f.never_live(true);
    let out = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    assert!(out.error.clone().unwrap_or_default().contains("did not go live within 3 s"), "{:?}", out.error);
    assert_eq!(f.rollbacks(), ["dep-1"]);

    // The deployment comes up: resume finds v1 served, and promotes nothing again.
    f.never_live(false);
    let resumed = rb.resume(out.run_id.as_deref().unwrap(), &Recorder::default()).unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
    assert_eq!(f.rollbacks(), ["dep-1"], "promoted once");

    // A promotion that ends FAILED fails at once, naming the status.
    let (r2, ..) = repo();
    let f2 = fake(RailwayToken::Project, &v1, &v2, &v3);
    let rb2 = rollback(&r2, &f2, "FR_RW_NEVERLIVE");
    f2.end_failed(true);
    let out = rb2.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    assert!(out.error.clone().unwrap_or_default().contains("ended FAILED"), "{:?}", out.error);
}

#[test]
fn the_planted_token_is_in_no_plan_journal_report_or_log() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_RW_PLANTED", TOKEN);
    let f = fake(RailwayToken::Project, &v1, &v2, &v3);
    let rb = rollback(&r, &f, "FR_RW_PLANTED");
    let seen = everything_a_run_to_v1_leaves(&rb, &r);
    assert!(seen.contains("dep-1"), "the state was read");
    assert!(!seen.contains(TOKEN), "the token leaked");
    assert!(f.requests().iter().all(|q| q.header("project-access-token") == Some(TOKEN)), "and it was sent");
}

#[test]
fn an_undo_while_the_runs_promotion_is_in_flight_waits_for_it_and_does_not_claim_success() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_RW_INFLIGHT", TOKEN);
    let f = fake(RailwayToken::Project, &v1, &v2, &v3);
    let rb = rollback(&r, &f, "FR_RW_INFLIGHT");
    f.never_live(true);
    let out = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Failed, "{:?}", out.error);
    let undo = rb.undo(out.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Failed, "not complete while the run's promotion is in flight");
    assert!(undo.error.clone().unwrap_or_default().contains("still in progress"), "{:?}", undo.error);
    assert_eq!(f.rollbacks(), ["dep-1"], "nothing sent over it");

    // The platform finishes the run's promotion; the resumed undo then puts v3 back over it.
    f.never_live(false);
    let resumed = rb.resume(undo.run_id.as_deref().unwrap(), &Recorder::default()).unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
    assert_eq!(f.rollbacks(), ["dep-1", "dep-3"]);
    assert_eq!(f.live_commit().as_deref(), Some(v3.as_str()));
}

/// Against Railway itself, read-only (`current`, `find` of the live commit), when
/// `FORGE_ROLLBACK_LIVE_RAILWAY_TOKEN`, `..._SERVICE` and `..._ENVIRONMENT` are set.
#[test]
fn live_railway_read_only() {
    let vars = [
        "FORGE_ROLLBACK_LIVE_RAILWAY_TOKEN",
        "FORGE_ROLLBACK_LIVE_RAILWAY_SERVICE",
        "FORGE_ROLLBACK_LIVE_RAILWAY_ENVIRONMENT",
    ];
    let Some([_, service, environment]) = vars
        .iter()
        .map(|v| std::env::var(v).ok())
        .collect::<Option<Vec<_>>>()
        .map(|v| <[String; 3]>::try_from(v).unwrap())
    else {
        // Skipped, and says so (nextest shows a passing test's stderr with --no-capture).
        #[allow(clippy::print_stderr)]
        {
            eprintln!("skipped: set {} to run against Railway", vars.join(", "));
        }
        return;
    };
    let kind = if std::env::var("FORGE_ROLLBACK_LIVE_RAILWAY_TOKEN_KIND").as_deref() == Ok("account") {
        TokenKind::Account
    } else {
        TokenKind::Project
    };
    let d = Railway::from_config(&DeployConfig {
        strategy: DeployStrategy::Railway,
        service_id: Some(service),
        environment_id: Some(environment),
        token_env: Some(vars[0].into()),
        token_kind: kind,
        ..DeployConfig::default()
    });
    let live = rt::block_on(d.current()).expect("the live deployment");
    let commit = live.commit.clone().expect("a deployment from git names its commit");
    let found = rt::block_on(d.find(&commit)).unwrap().expect("its commit's deployment");
    assert!(d.serves(&live, &found));
}
