//! The Fly.io adapter against `FakeFly`, a local server that speaks Fly's GraphQL releases
//! (`first`/`after` + `pageInfo`) and the Machines API (Bearer or `FlyV1` auth, `{"error"}`
//! bodies, 429 + Retry-After), and, when `FORGE_ROLLBACK_LIVE_FLY_API_TOKEN` and
//! `FORGE_ROLLBACK_LIVE_FLY_APP` are set, against Fly itself (read-only).

use rollback_core::config::Config;
use rollback_core::deploy::{DeployConfig, DeployStrategy};
use rollback_core::event::Recorder;
use rollback_core::model::RiskCode;
use rollback_core::plan::{Level, Step};
use rollback_core::platform::fly::Fly;
use rollback_core::production::Deployer;
use rollback_core::prompt::AutoConfirm;
use rollback_core::testing::production::{self, DeployerUnderTest};
use rollback_core::vcs::CommitId;
use rollback_core::{ErrorKind, Rollback, RunStatus, rt};
use rollback_testkit::TestRepo;
use rollback_testkit::platform::FakeFly;

use crate::platform_common::{everything_a_run_to_v1_leaves, repo, set_token, to_v1};

const TOKEN: &str = "fly-planted-token-5d6e7f8a9b";

/// Releases v1 (rel-1), v2 (rel-2) and v3 (rel-3, on both Machines): two pages of two.
fn fake(v1: &CommitId, v2: &CommitId, v3: &CommitId) -> FakeFly {
    FakeFly::start(TOKEN, &[v1.as_str(), v2.as_str(), v3.as_str()])
}

fn deploy_config(f: &FakeFly, var: &str) -> DeployConfig {
    DeployConfig {
        strategy: DeployStrategy::Fly,
        app: Some("my-app".into()),
        token_env: Some(var.into()),
        api_url: Some(f.api_url()),
        graphql_url: Some(f.graphql_url()),
        live_timeout_secs: 3.0,
        poll_secs: 0.05,
        ..DeployConfig::default()
    }
}

fn rollback(r: &TestRepo, f: &FakeFly, var: &str) -> Rollback {
    let mut config = Config::default();
    config.deploy = Some(deploy_config(f, var));
    Rollback::builder(r.path()).config(config).build().unwrap()
}

const IMAGE_1: &str = "registry.fly.io/my-app:deployment-01";
const IMAGE_3: &str = "registry.fly.io/my-app:deployment-03";

#[test]
fn fly_passes_the_deployer_suite() {
    let (_r, v1, v2, v3) = repo();
    set_token("FR_FLY_SUITE", TOKEN);
    let servers = std::sync::Mutex::new(Vec::new());
    production::run_all(&move || {
        let f = fake(&v1, &v2, &v3);
        let d = Fly::from_config(&deploy_config(&f, "FR_FLY_SUITE"));
        servers.lock().unwrap().push(f);
        DeployerUnderTest { deployer: Box::new(d), built: vec![v1.clone(), v3.clone()] }
    });
}

#[test]
fn releases_are_paged_by_end_cursor_and_the_commit_is_read_from_the_images_label() {
    let (_r, v1, v2, v3) = repo();
    set_token("FR_FLY_SHAPE", TOKEN);
    let f = fake(&v1, &v2, &v3);
    let d = Fly::from_config(&deploy_config(&f, "FR_FLY_SHAPE"));
    let found = rt::block_on(d.find(&v1)).unwrap().expect("v1's release");
    assert_eq!((found.id.as_str(), found.commit.as_ref()), ("rel-1", Some(&v1)));
    assert!(found.summary.starts_with(&format!("release v1 ({IMAGE_1}")), "{}", found.summary);
    let reqs = f.requests();
    assert_eq!(reqs.len(), 2, "rel-1 is on the second page of two");
    for r in &reqs {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/graphql"));
        assert_eq!(r.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.body_json()["variables"]["app"], "my-app");
        assert_eq!(r.body_json()["variables"]["first"], 50);
    }
    assert!(reqs[0].body_json()["query"].as_str().unwrap().contains("releases(first: $first, after: $after)"));
    assert_eq!(reqs[0].body_json()["variables"]["after"], serde_json::Value::Null);
    assert_eq!(reqs[1].body_json()["variables"]["after"], "cur-rel-2", "the first page's endCursor");

    let live = rt::block_on(d.current()).unwrap();
    assert_eq!((live.id.as_str(), live.commit.as_ref()), ("rel-3", Some(&v3)));
    let machines = f.requests().into_iter().filter(|r| r.path.starts_with("/v1/")).collect::<Vec<_>>();
    assert_eq!(machines.len(), 1);
    assert_eq!((machines[0].method.as_str(), machines[0].path.as_str()), ("GET", "/v1/apps/my-app/machines"));
}

#[test]
fn a_flyv1_macaroon_token_is_sent_verbatim() {
    let (_r, v1, v2, v3) = repo();
    let macaroon = "FlyV1 fm2_lJPECAAAAAAAAplanted";
    set_token("FR_FLY_MACAROON", macaroon);
    let f = FakeFly::start(macaroon, &[v1.as_str(), v2.as_str(), v3.as_str()]);
    let d = Fly::from_config(&deploy_config(&f, "FR_FLY_MACAROON"));
    assert_eq!(rt::block_on(d.current()).unwrap().id, "rel-3");
    let reqs = f.requests();
    assert!(reqs.len() >= 2);
    assert!(reqs.iter().all(|r| r.header("authorization") == Some(macaroon)), "no Bearer prefix on a FlyV1 token");
}

#[test]
fn a_rejected_token_names_flys_message_and_a_429_is_waited_out() {
    let (_r, v1, v2, v3) = repo();
    set_token("FR_FLY_AUTH", "fly-wrong-token-000");
    let f = fake(&v1, &v2, &v3);
    let d = Fly::from_config(&deploy_config(&f, "FR_FLY_AUTH"));
    let err = rt::block_on(d.current()).unwrap_err();
    assert!(err.to_string().contains("listing machines failed (401): unauthorized"), "{err}");
    assert!(err.hint().unwrap().contains("FR_FLY_AUTH"), "{:?}", err.hint());
    let err = rt::block_on(d.find(&v1)).unwrap_err();
    assert!(
        err.to_string().contains("listing releases failed (401): You must be authenticated to view this."),
        "{err}"
    );

    set_token("FR_FLY_AUTH", TOKEN);
    let before = f.requests().len();
    f.rate_limit(1);
    assert_eq!(rt::block_on(d.current()).unwrap().id, "rel-3");
    let after = f.requests();
    assert_eq!(after[before].path, after[before + 1].path, "the 429'd request is sent again");
}

#[test]
fn a_run_puts_v1s_image_on_every_machine_keeping_their_config_and_undo_puts_v3s_back() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_FLY_RUN", TOKEN);
    let f = fake(&v1, &v2, &v3);
    let rb = rollback(&r, &f, "FR_FLY_RUN");
    let plan = rb.plan(Some(Level::Fast), Some("v1")).unwrap();
    let Some(Step::Promote { production, from, to, autodeploy }) = plan.steps.iter().find(|s| s.name() == "promote")
    else {
        panic!("a promote step: {plan:?}")
    };
    assert!(production.starts_with("fly app my-app (image; secrets"), "{production}");
    assert_eq!((from.id.as_str(), to.id.as_str()), ("rel-3", "rel-1"));
    assert_eq!(*autodeploy, None, "Fly has no autodeploy switch");
    let risk = plan.risks.iter().find(|r| r.code == RiskCode::NoAutodeploySwitch).expect("the freeze risk");
    assert!(risk.message.contains("no autodeploy on Fly") && risk.message.contains("forge-rollback gate"), "{risk:?}");
    assert!(plan.render().contains("no_autodeploy_switch"), "{}", plan.render());
    assert!(f.updates().is_empty(), "planning changes nothing");

    let out = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    assert_eq!(f.updates(), [("m-1".to_owned(), IMAGE_1.to_owned()), ("m-2".to_owned(), IMAGE_1.to_owned())]);
    assert_eq!(f.live_commit().as_deref(), Some(v1.as_str()));
    let post = f.requests().into_iter().find(|q| q.path == "/v1/apps/my-app/machines/m-1").unwrap();
    let config = &post.body_json()["config"];
    assert_eq!(config["image"], IMAGE_1);
    assert_eq!(config["guest"]["memory_mb"], 256, "the rest of the config is sent back as it was");
    assert_eq!(config["services"][0]["internal_port"], 8000);
    assert_eq!(config["metadata"]["fly_process_group"], "app");
    assert_eq!(config["metadata"]["fly_release_id"], "rel-1");
    assert_eq!(config["metadata"]["fly_release_version"], "1");
    // Nothing but reads and the two Machine updates: no freeze call exists to make.
    for q in f.requests() {
        let read = (q.method == "GET" && q.path == "/v1/apps/my-app/machines") || q.path == "/graphql";
        assert!(read || q.path.starts_with("/v1/apps/my-app/machines/m-"), "{} {}", q.method, q.path);
    }

    let undo = rb.undo(out.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert_eq!(f.rollbacks(), ["rel-1", "rel-3"]);
    assert_eq!(f.live_commit().as_deref(), Some(v3.as_str()));
    assert!(f.machines().iter().all(|m| m.config["image"] == IMAGE_3 && m.state == "started"));
}

#[test]
fn freeze_false_drops_the_no_autodeploy_risk() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_FLY_FREEZE", TOKEN);
    let f = fake(&v1, &v2, &v3);
    let a = rollback(&r, &f, "FR_FLY_FREEZE").assess(Some("v1")).unwrap();
    assert!(a.risks.iter().any(|r| r.code == RiskCode::NoAutodeploySwitch), "{:?}", a.risks);
    let mut config = Config::default();
    config.deploy = Some(DeployConfig { freeze: false, ..deploy_config(&f, "FR_FLY_FREEZE") });
    let rb = Rollback::builder(r.path()).config(config).build().unwrap();
    let plan = rb.plan(Some(Level::Fast), Some("v1")).unwrap();
    assert!(plan.risks.iter().all(|r| r.code != RiskCode::NoAutodeploySwitch), "{:?}", plan.risks);
    assert!(rb.assess(Some("v1")).unwrap().risks.iter().all(|r| r.code != RiskCode::NoAutodeploySwitch));
}

#[test]
fn a_target_fly_never_released_is_refused() {
    let (r, _v1, v2, v3) = repo();
    set_token("FR_FLY_NEVER", TOKEN);
    let f = FakeFly::start(TOKEN, &[v2.as_str(), v3.as_str()]);
    let rb = rollback(&r, &f, "FR_FLY_NEVER");
    let err = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    assert!(rollback_core::Error::hint(&err).unwrap().to_string().contains("`push` or `revert-commit`"), "{err}");
    assert!(f.updates().is_empty());
}

#[test]
fn a_refused_update_names_flys_error_and_resume_finishes() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_FLY_REFUSED", TOKEN);
    let f = fake(&v1, &v2, &v3);
    let rb = rollback(&r, &f, "FR_FLY_REFUSED");
    f.refuse_update(Some("machine is locked by another operation"));
    let out = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    let error = out.error.clone().unwrap_or_default();
    assert!(
        error.contains("updating machine m-1 to release v1 failed (422): machine is locked by another operation"),
        "{error}"
    );
    f.refuse_update(None);
    let resumed = rb.resume(out.run_id.as_deref().unwrap(), &Recorder::default()).unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
    assert_eq!(f.live_commit().as_deref(), Some(v1.as_str()));
    // Promoting it again (a resume after the crash) updates no Machine that runs the image.
    let before = f.updates().len();
    let d = Fly::from_config(&deploy_config(&f, "FR_FLY_REFUSED"));
    let rel1 = rt::block_on(d.find(&v1)).unwrap().unwrap();
    rt::block_on(d.rollback(&rel1)).unwrap();
    assert_eq!(f.updates().len(), before, "both Machines run the image: nothing to update");
}

#[test]
fn a_rollback_that_fails_half_way_is_resumed_on_the_rest_or_undone_on_what_moved() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_FLY_HALF", TOKEN);
    let f = fake(&v1, &v2, &v3);
    let rb = rollback(&r, &f, "FR_FLY_HALF");
    f.refuse_update_after(1, Some("machine m-2 is being migrated"));
    let out = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    assert!(out.error.clone().unwrap_or_default().contains("updating machine m-2"), "{:?}", out.error);
    assert_eq!(f.updates(), [("m-1".to_owned(), IMAGE_1.to_owned())], "m-1 moved, m-2 was refused");
    f.refuse_update(None);
    let resumed = rb.resume(out.run_id.as_deref().unwrap(), &Recorder::default()).unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
    assert_eq!(
        f.updates(),
        [("m-1".to_owned(), IMAGE_1.to_owned()), ("m-2".to_owned(), IMAGE_1.to_owned())],
        "resume updated only m-2"
    );
    assert_eq!(f.live_commit().as_deref(), Some(v1.as_str()));

    // The same failure, undone: only m-1 moved, so only m-1 goes back.
    let (r2, ..) = repo();
    let f2 = fake(&v1, &v2, &v3);
    let rb2 = rollback(&r2, &f2, "FR_FLY_HALF");
    f2.refuse_update_after(1, Some("machine m-2 is being migrated"));
    let out = rb2.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    f2.refuse_update(None);
    let undo = rb2.undo(out.run_id.as_deref().unwrap(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert_eq!(f2.updates(), [("m-1".to_owned(), IMAGE_1.to_owned()), ("m-1".to_owned(), IMAGE_3.to_owned())]);
    assert_eq!(f2.live_commit().as_deref(), Some(v3.as_str()));
}

#[test]
fn a_machine_that_never_starts_or_fails_fails_the_wait_and_resume_does_not_update_twice() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_FLY_NEVERLIVE", TOKEN);
    let f = fake(&v1, &v2, &v3);
    let rb = rollback(&r, &f, "FR_FLY_NEVERLIVE");
    f.never_start(true);
    let out = rb.run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    assert!(out.error.clone().unwrap_or_default().contains("did not go live within 3 s"), "{:?}", out.error);
    f.never_start(false);
    let resumed = rb.resume(out.run_id.as_deref().unwrap(), &Recorder::default()).unwrap();
    assert_eq!(resumed.status, RunStatus::Succeeded, "{:?}", resumed.error);
    assert_eq!(f.updates().len(), 2, "each Machine updated once");

    let (r2, ..) = repo();
    let f2 = fake(&v1, &v2, &v3);
    f2.fail_start(true);
    let out = rollback(&r2, &f2, "FR_FLY_NEVERLIVE").run(&to_v1(), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Failed);
    assert!(out.error.clone().unwrap_or_default().contains("failed to start"), "{:?}", out.error);
}

#[test]
fn the_planted_token_is_in_no_plan_journal_report_or_event() {
    let (r, v1, v2, v3) = repo();
    set_token("FR_FLY_PLANTED", TOKEN);
    let f = fake(&v1, &v2, &v3);
    f.rate_limit(1);
    let rb = rollback(&r, &f, "FR_FLY_PLANTED");
    let seen = everything_a_run_to_v1_leaves(&rb, &r);
    assert!(seen.contains("rel-1"));
    assert!(!seen.contains(TOKEN), "the token leaked");
    assert!(f.requests().iter().filter(|q| q.header("authorization") == Some(&format!("Bearer {TOKEN}"))).count() > 5);
}

/// Against Fly itself, read-only, when `FORGE_ROLLBACK_LIVE_FLY_API_TOKEN` and
/// `FORGE_ROLLBACK_LIVE_FLY_APP` are set.
#[test]
fn live_fly_read_only() {
    let (Ok(_), Ok(app)) =
        (std::env::var("FORGE_ROLLBACK_LIVE_FLY_API_TOKEN"), std::env::var("FORGE_ROLLBACK_LIVE_FLY_APP"))
    else {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "skipped: set FORGE_ROLLBACK_LIVE_FLY_API_TOKEN and FORGE_ROLLBACK_LIVE_FLY_APP to run against Fly.io"
            );
        }
        return;
    };
    let d = Fly::from_config(&DeployConfig {
        strategy: DeployStrategy::Fly,
        app: Some(app),
        token_env: Some("FORGE_ROLLBACK_LIVE_FLY_API_TOKEN".into()),
        ..DeployConfig::default()
    });
    let live = rt::block_on(d.current()).expect("the live release");
    if let Some(commit) = live.commit.clone() {
        let found = rt::block_on(d.find(&commit)).unwrap().expect("its commit's release");
        assert!(d.serves(&live, &found));
    }
}
