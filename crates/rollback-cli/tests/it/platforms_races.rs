//! Production platforms when the platform does not stand still: someone deploys after the
//! run, the run's own promotion is still in flight when it is resumed or undone, the run is
//! killed between reading the automatic-deploy switch and turning it (on Render, through
//! `FakeRender`, and Railway, through `FakeRailway`), and a token variable that is not set.

use std::path::PathBuf;

use rollback_testkit::TestRepo;
use rollback_testkit::platform::{FakeRailway, FakeRender, RailwayToken};
use tempfile::TempDir;

use crate::common::{Out, fr_env, journal, messy_repo, state_dir, toml_str};

const VAR: &str = "FR_CLI_RACES_TOKEN";
const TOKEN: &str = "races-cli-planted-1b2c3d4e";
/// A commit someone else deployed after the run.
const FIX: &str = "4444444444444444444444444444444444444444";

enum Fake {
    Render(FakeRender),
    Railway(FakeRailway),
}

struct Setup {
    r: TestRepo,
    ids: [String; 3],
    f: Fake,
    _dir: TempDir,
    config: PathBuf,
}

/// The messy repo at v3, and the platform with deploys of v1, v2 and v3 (live).
fn setup(platform: &str) -> Setup {
    let (r, ids) = messy_repo();
    let refs = [("dep-1", ids[0].as_str()), ("dep-2", ids[1].as_str()), ("dep-3", ids[2].as_str())];
    let (f, url, extra) = if platform == "render" {
        let f = FakeRender::start(TOKEN, &refs);
        let url = f.api_url();
        (Fake::Render(f), url, "service_id = \"srv-1\"\n")
    } else {
        let f = FakeRailway::start(TOKEN, RailwayToken::Project, &refs);
        let url = f.api_url();
        (Fake::Railway(f), url, "service_id = \"srv-1\"\nenvironment_id = \"env-1\"\n")
    };
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("forge-rollback.toml");
    std::fs::write(
        &config,
        format!(
            "[deploy]\nstrategy = \"{platform}\"\n{extra}token_env = \"{VAR}\"\napi_url = {}\nlive_timeout_secs = 2\npoll_secs = 0.05\n",
            toml_str(&url)
        ),
    )
    .unwrap();
    Setup { r, ids, f, _dir: dir, config }
}

impl Setup {
    fn fr(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut all = vec!["--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        let mut vars = vec![(VAR, TOKEN)];
        vars.extend_from_slice(env);
        fr_env(&self.r, &all, &vars)
    }

    fn render(&self) -> &FakeRender {
        match &self.f {
            Fake::Render(f) => f,
            Fake::Railway(_) => panic!("not render"),
        }
    }

    fn auto_deploy(&self) -> bool {
        match &self.f {
            Fake::Render(f) => f.auto_deploy() == "yes",
            Fake::Railway(f) => f.auto_deploy(),
        }
    }

    fn set_auto_deploy(&self, on: bool) {
        match &self.f {
            Fake::Render(f) => f.set_auto_deploy(if on { "yes" } else { "no" }),
            Fake::Railway(f) => f.set_auto_deploy(on),
        }
    }

    fn railway(&self) -> &FakeRailway {
        match &self.f {
            Fake::Railway(f) => f,
            Fake::Render(_) => panic!("not railway"),
        }
    }

    fn live_commit(&self) -> Option<String> {
        match &self.f {
            Fake::Render(f) => f.live_commit(),
            Fake::Railway(f) => f.live_commit(),
        }
    }

    fn latest_run(&self) -> String {
        self.fr(&["runs", "list", "--json"], &[]).json()[0]["run_id"].as_str().unwrap().to_owned()
    }
}

#[test]
fn undo_refuses_with_exit_4_when_someone_deployed_since_the_run_and_changes_nothing() {
    for in_progress in [false, true] {
        let s = setup("render");
        let f = s.render();
        s.fr(&["run", "--fast", "--yes", "--target", "v1"], &[]).ok();
        let run = s.latest_run();
        f.deploy("dep-9", FIX, in_progress);
        let out = s.fr(&["undo", &run, "--yes"], &[]);
        out.code(4);
        assert!(out.stderr.contains("dep-9") && out.stderr.contains("someone deployed since"), "{}", out.stderr);
        assert!(out.stderr.contains("nothing was changed"), "{}", out.stderr);
        assert!(out.stderr.contains("hint:") && out.stderr.contains("by hand"), "{}", out.stderr);
        assert_eq!(f.rollbacks(), ["dep-1"], "in progress {in_progress}: the bad release is not promoted again");
        let live = if in_progress { s.ids[0].as_str() } else { FIX };
        assert_eq!(f.live_commit().as_deref(), Some(live), "in progress {in_progress}");
        assert_eq!(s.r.head(), s.ids[0], "in progress {in_progress}: the code stays rolled back");
        assert_eq!(f.auto_deploy(), "no", "in progress {in_progress}: the freeze stays");
    }
}

#[test]
fn undo_while_the_runs_promotion_is_in_flight_waits_then_refuses_and_its_resume_finishes() {
    let s = setup("render");
    let f = s.render();
    f.never_live(true);
    let out = s.fr(&["run", "--fast", "--yes", "--target", "v1"], &[]);
    out.code(1);
    let run = s.latest_run();
    let out = s.fr(&["undo", &run, "--yes", "--json"], &[]);
    out.code(1);
    let undo = out.json()["run_id"].as_str().unwrap().to_owned();
    assert!(out.stderr.contains("still in progress"), "{}", out.stderr);
    assert!(!out.stderr.contains("Undo complete"), "{}", out.stderr);
    assert_eq!(f.rollbacks(), ["dep-1"], "nothing sent while the run's deploy is in flight");

    // The platform finishes the run's deploy; the undo, resumed, puts v3 back over it.
    f.finish_after(0);
    let j = s.fr(&["resume", &undo, "--json"], &[]).json();
    assert_eq!(j["status"], "succeeded", "{j}");
    assert_eq!(f.rollbacks(), ["dep-1", "dep-3"]);
    assert_eq!(f.live_commit().as_deref(), Some(s.ids[2].as_str()));
}

#[test]
fn an_undo_whose_promote_step_meets_a_deploy_made_since_it_was_planned_refuses_it() {
    for in_progress in [false, true] {
        let s = setup("render");
        let f = s.render();
        s.fr(&["run", "--fast", "--yes", "--target", "v1"], &[]).ok();
        let run = s.latest_run();
        // Killed after planning, before its promote step: the plan saw only the run's release.
        let out = s.fr(&["undo", &run, "--yes"], &[("FORGE_ROLLBACK_FAILPOINT", "before:promote")]);
        assert_eq!(out.code, None, "killed\n{}", out.stderr);
        let runs = s.fr(&["runs", "list", "--json"], &[]).json();
        let undo = runs.as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap()).find(|id| *id != run);
        let undo = undo.expect("the undo's run is listed").to_owned();
        // A colleague deploys a fix meanwhile; then the undo is resumed.
        f.deploy("dep-9", FIX, in_progress);
        let out = s.fr(&["resume", &undo], &[]);
        out.code(1);
        assert!(out.stderr.contains("dep-9") && out.stderr.contains("someone deployed since"), "{}", out.stderr);
        assert!(out.stderr.contains("nothing was sent to production"), "{}", out.stderr);
        // What is left is said, and both ways on: back to the rollback's state, or finish.
        assert!(
            out.stderr.contains(&format!("put the rest back where run {run} left it: `forge-rollback undo {undo}`")),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains(&format!("then `forge-rollback resume {undo}`")), "{}", out.stderr);
        assert_eq!(f.rollbacks(), ["dep-1"], "in progress {in_progress}: the bad release is not promoted again");
        let live = if in_progress { s.ids[0].as_str() } else { FIX };
        assert_eq!(f.live_commit().as_deref(), Some(live), "in progress {in_progress}");
    }
}

#[test]
fn resume_waits_for_the_promotion_still_in_flight_instead_of_sending_it_again() {
    let s = setup("render");
    let f = s.render();
    f.never_live(true);
    s.fr(&["run", "--fast", "--yes", "--target", "v1"], &[]).code(1);
    let run = s.latest_run();
    // Still deploying when the resume first looks; live a few looks later.
    f.finish_after(3);
    let out = s.fr(&["resume", &run, "--json"], &[]);
    assert_eq!(out.json()["status"], "succeeded", "{}", out.stderr);
    assert!(out.stderr.contains("in progress already"), "{}", out.stderr);
    assert_eq!(f.rollbacks(), ["dep-1"], "promoted once");
    // The run's own promotion moved production: not "live already" in the report.
    let report = s.fr(&["report", &run], &[]);
    assert!(report.stdout.contains("production moved from deploy dep-3"), "{}", report.stdout);
    assert!(!report.stdout.contains("was live already"), "{}", report.stdout);
    assert_eq!(f.live_commit().as_deref(), Some(s.ids[0].as_str()));
}

#[test]
fn a_kill_after_the_freeze_keeps_what_the_operator_had_through_resume_and_undo() {
    for platform in ["render", "railway"] {
        for had in [true, false] {
            for resume in [true, false] {
                let at = format!("{platform}, automatic deploys {had}, resume {resume}");
                let s = setup(platform);
                s.set_auto_deploy(had);
                let out = s.fr(
                    &["run", "--fast", "--yes", "--target", "v1"],
                    &[("FORGE_ROLLBACK_FAILPOINT", "after:promote")],
                );
                assert_eq!(out.code, None, "{at}: killed\n{}", out.stderr);
                assert!(!s.auto_deploy(), "{at}: the freeze went through before the kill");
                let run = s.latest_run();
                if resume {
                    let out = s.fr(&["resume", &run, "--json"], &[]);
                    assert_eq!(out.json()["status"], "succeeded", "{at}: {}", out.stderr);
                    let said = if had { "automatic deploys turned off" } else { "automatic deploys were off already" };
                    assert!(out.stderr.contains(said), "{at}: {}", out.stderr);
                }
                let j = s.fr(&["undo", &run, "--yes", "--json"], &[]).json();
                assert_eq!(j["status"], "succeeded", "{at}: {j}");
                assert_eq!(s.live_commit().as_deref(), Some(s.ids[2].as_str()), "{at}");
                assert_eq!(s.auto_deploy(), had, "{at}: undo puts back what the operator had");
            }
        }
    }
}

#[test]
fn a_token_variable_that_is_not_set_is_bad_usage_exit_2() {
    let s = setup("render");
    let mut all = vec!["--config", s.config.to_str().unwrap()];
    all.extend_from_slice(&["plan", "--fast", "--target", "v1"]);
    let out = fr_env(&s.r, &all, &[]);
    out.code(2);
    assert!(out.stderr.contains(&format!("{VAR} is not set")), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("export {VAR}")), "{}", out.stderr);
    assert!(s.render().requests().is_empty(), "nothing asked of the platform");
}

/// Railway: the run's own promotion (a new deployment of v1) crashed after starting, and the
/// run, killed before its step ended, is resumed. The crashed deployment is what the service
/// runs, built from the target's commit, and used to pass for "live already": the resume
/// ended `succeeded` with production down. It now fails, saying the promotion failed.
#[test]
fn a_resume_does_not_take_the_runs_crashed_promotion_for_live() {
    let s = setup("railway");
    let out = s.fr(&["run", "--fast", "--yes", "--target", "v1"], &[("FORGE_ROLLBACK_FAILPOINT", "after:promote")]);
    assert_eq!(out.code, None, "killed\n{}", out.stderr);
    let run = s.latest_run();
    s.railway().crash_live();
    let out = s.fr(&["resume", &run, "--json"], &[]);
    out.code(1);
    assert_eq!(out.json()["status"], "failed", "{}", out.stderr);
    assert!(!out.stderr.contains("is live already"), "{}", out.stderr);
}

#[test]
fn an_undo_of_a_run_journaled_before_progress_records_turns_automatic_deploys_back_on() {
    // A run killed after its freeze, its journal rewritten as older versions wrote it: the
    // version before the `progress` record (no such record, no `format` in `started`), and
    // the one after it but before `format` (the record, no `format`).
    for (old, keep_progress, had, thaw) in
        [(true, false, true, true), (false, false, true, false), (true, true, false, false), (true, true, true, true)]
    {
        let s = setup("render");
        s.set_auto_deploy(had);
        let out = s.fr(&["run", "--fast", "--yes", "--target", "v1"], &[("FORGE_ROLLBACK_FAILPOINT", "after:promote")]);
        assert_eq!(out.code, None, "killed\n{}", out.stderr);
        let run = s.latest_run();
        let mut records = journal(&s.r, &run);
        if !keep_progress {
            records.retain(|r| r["record"] != "progress");
        }
        if old {
            records[0].as_object_mut().unwrap().remove("format");
        }
        let text = records.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n") + "\n";
        std::fs::write(state_dir(&s.r).join("runs").join(&run).join("journal.jsonl"), text).unwrap();
        let j = s.fr(&["undo", &run, "--yes", "--json"], &[]).json();
        let at = format!("no format {old}, progress record {keep_progress}, automatic deploys were {had}");
        assert_eq!(j["status"], "succeeded", "{at}: {j}");
        // A current journal without the record: the step never read the switch (killed in
        // its live wait), so it never switched it. With the record: what it says.
        assert_eq!(s.auto_deploy(), thaw, "{at}");
    }
}
