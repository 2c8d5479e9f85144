//! `[deploy] strategy = "railway"`, `"render"`, `"heroku"` and `"fly"` through the binary, against
//! `FakeRailway`, `FakeRender`, `FakeHeroku` and `FakeFly` (local servers speaking the platforms' APIs): the plan's production line and release ids, a kill at
//! each point of the promote step followed by resume or undo, the refusal when Railway never
//! built the target, a bad `[deploy]`, and a planted token that reaches no output or file.

use std::path::{Path, PathBuf};

use rollback_testkit::TestRepo;
use rollback_testkit::platform::{FakeFly, FakeHeroku, FakeRailway, FakeRender, RailwayToken};
use tempfile::TempDir;

use crate::common::{Out, fr_env, messy_repo, state_dir, toml_str};

const VAR: &str = "FR_CLI_RAILWAY_TOKEN";
const TOKEN: &str = "rw-cli-planted-9a8b7c6d5e";

/// A fake platform of either kind.
enum Fake {
    Railway(FakeRailway),
    Render(FakeRender),
    Heroku(FakeHeroku),
    Fly(FakeFly),
}

impl Fake {
    fn rollbacks(&self) -> Vec<String> {
        match self {
            Fake::Railway(f) => f.rollbacks(),
            Fake::Render(f) => f.rollbacks(),
            Fake::Heroku(f) => f.rollbacks(),
            Fake::Fly(f) => f.rollbacks(),
        }
    }

    /// Automatic deploys (`yes`/`no`); Heroku and Fly have no switch the adapter turns.
    fn auto_deploy(&self) -> Option<String> {
        match self {
            Fake::Railway(f) => Some(if f.auto_deploy() { "yes" } else { "no" }.to_owned()),
            Fake::Heroku(_) | Fake::Fly(_) => None,
            Fake::Render(f) => Some(f.auto_deploy()),
        }
    }

    fn live_commit(&self) -> Option<String> {
        match self {
            Fake::Railway(f) => f.live_commit(),
            Fake::Render(f) => f.live_commit(),
            Fake::Heroku(f) => f.live_commit(),
            Fake::Fly(f) => f.live_commit(),
        }
    }
}

struct Setup {
    r: TestRepo,
    ids: [String; 3],
    f: FakeRailway,
    _dir: TempDir,
    config: PathBuf,
}

/// The messy repo at v3; Railway has deployments of v1, v2 and v3 (live). The config lives
/// outside the work tree (a rollback removes untracked files).
fn setup(deployments: &[usize]) -> Setup {
    let (r, ids) = messy_repo();
    let list: Vec<(String, &str)> = deployments.iter().map(|&i| (format!("dep-{}", i + 1), ids[i].as_str())).collect();
    let refs: Vec<(&str, &str)> = list.iter().map(|(a, b)| (a.as_str(), *b)).collect();
    let f = FakeRailway::start(TOKEN, RailwayToken::Project, &refs);
    let (dir, config) = write_config("railway", &f.api_url(), "service_id = \"srv-1\"\nenvironment_id = \"env-1\"\n");
    Setup { r, ids, f, _dir: dir, config }
}

fn write_config(strategy: &str, api_url: &str, extra: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new().unwrap();
    let config = dir.path().join("forge-rollback.toml");
    std::fs::write(
        &config,
        format!(
            "[deploy]\nstrategy = \"{strategy}\"\n{extra}token_env = \"{VAR}\"\napi_url = {}\nlive_timeout_secs = 3\npoll_secs = 0.05\n",
            toml_str(api_url)
        ),
    )
    .unwrap();
    (dir, config)
}

/// Either platform with deploys of v1, v2 and v3 (live), and the run through the binary.
struct Any {
    r: TestRepo,
    ids: [String; 3],
    f: Fake,
    _dir: TempDir,
    config: PathBuf,
}

fn setup_any(platform: &str) -> Any {
    let (r, ids) = messy_repo();
    let refs = [("dep-1", ids[0].as_str()), ("dep-2", ids[1].as_str()), ("dep-3", ids[2].as_str())];
    let (f, (dir, config)) = if platform == "railway" {
        let f = FakeRailway::start(TOKEN, RailwayToken::Project, &refs);
        let c = write_config("railway", &f.api_url(), "service_id = \"srv-1\"\nenvironment_id = \"env-1\"\n");
        (Fake::Railway(f), c)
    } else if platform == "render" {
        let f = FakeRender::start(TOKEN, &refs);
        let c = write_config("render", &f.api_url(), "service_id = \"srv-1\"\n");
        (Fake::Render(f), c)
    } else if platform == "heroku" {
        let f = FakeHeroku::start(TOKEN, &[ids[0].as_str(), ids[1].as_str(), ids[2].as_str()]);
        let c = write_config("heroku", &f.api_url(), "app = \"my-app\"\n");
        (Fake::Heroku(f), c)
    } else {
        let f = FakeFly::start(TOKEN, &[ids[0].as_str(), ids[1].as_str(), ids[2].as_str()]);
        let extra = format!("app = \"my-app\"\ngraphql_url = {}\n", toml_str(&f.graphql_url()));
        let c = write_config("fly", &f.api_url(), &extra);
        (Fake::Fly(f), c)
    };
    Any { r, ids, f, _dir: dir, config }
}

impl Any {
    fn fr_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut all = vec!["--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        let mut vars = vec![(VAR, TOKEN)];
        vars.extend_from_slice(env);
        fr_env(&self.r, &all, &vars)
    }
}

impl Setup {
    fn fr(&self, args: &[&str]) -> Out {
        self.fr_env(args, &[])
    }

    fn fr_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut all = vec!["--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        let mut vars = vec![(VAR, TOKEN)];
        vars.extend_from_slice(env);
        fr_env(&self.r, &all, &vars)
    }
}

#[test]
fn plan_prints_the_production_line_and_plan_json_carries_railways_deployment_ids() {
    let s = setup(&[0, 1, 2]);
    let out = s.fr(&["plan", "--fast", "--target", "v1"]);
    out.ok();
    let line =
        out.stdout.lines().find(|l| l.contains("railway service srv-1")).unwrap_or_else(|| panic!("{}", out.stdout));
    assert!(line.contains("dep-3") && line.contains("dep-1"), "{line}");
    assert!(line.contains(&s.ids[2][..7]) && line.contains(&s.ids[0][..7]), "{line}");

    let assess = s.fr(&["assess", "--target", "v1"]);
    assess.ok();
    let line = assess
        .stdout
        .lines()
        .find(|l| l.starts_with("production: railway service srv-1"))
        .unwrap_or_else(|| panic!("{}", assess.stdout));
    assert!(line.contains("dep-3") && line.contains("-> deployment dep-1"), "{line}");
    let j = s.fr(&["assess", "--target", "v1", "--json"]).json();
    assert_eq!(j["production"]["live"]["id"], "dep-3");
    assert_eq!(j["production"]["release"]["id"], "dep-1");

    let j = s.fr(&["plan", "--fast", "--target", "v1", "--json"]).json();
    let promote = j["steps"].as_array().unwrap().iter().find(|st| st["step"] == "promote").expect("a promote step");
    assert_eq!(promote["from"]["id"], "dep-3");
    assert_eq!(promote["to"]["id"], "dep-1");
    assert_eq!(promote["to"]["commit"], s.ids[0].as_str());
    assert!(s.f.rollbacks().is_empty(), "planning changes nothing");
}

#[test]
fn a_kill_at_each_point_of_the_promote_step_is_resumed_or_undone_on_each_platform() {
    for platform in ["railway", "render", "heroku", "fly"] {
        for point in ["before:promote", "after:promote", "end:promote"] {
            for finish in ["resume", "undo"] {
                let s = setup_any(platform);
                let at = format!("{platform} {point} {finish}");
                let out =
                    s.fr_env(&["run", "--fast", "--yes", "--target", "v1"], &[("FORGE_ROLLBACK_FAILPOINT", point)]);
                assert_eq!(out.code, None, "{at}: killed\n{}", out.stderr);
                let promoted = usize::from(point != "before:promote");
                assert_eq!(s.f.rollbacks().len(), promoted, "{at}");
                let id = s.fr_env(&["runs", "list", "--json"], &[]).json()[0]["run_id"].as_str().unwrap().to_owned();
                if finish == "resume" {
                    let j = s.fr_env(&["resume", &id, "--json"], &[]).json();
                    assert_eq!(j["status"], "succeeded", "{at}: {j}");
                    let first = if matches!(platform, "heroku" | "fly") { "rel-1" } else { "dep-1" };
                    assert_eq!(s.f.rollbacks(), [first], "{at}: promoted once");
                    assert_eq!(s.f.live_commit().as_deref(), Some(s.ids[0].as_str()), "{at}");
                    assert_eq!(s.r.head(), s.ids[0], "{at}");
                    let frozen = matches!(platform, "railway" | "render").then(|| "no".to_owned());
                    assert_eq!(s.f.auto_deploy(), frozen, "{at}: frozen after the rollback");
                } else {
                    let j = s.fr_env(&["undo", &id, "--yes", "--json"], &[]).json();
                    assert_eq!(j["status"], "succeeded", "{at}: {j}");
                    assert_eq!(s.f.live_commit().as_deref(), Some(s.ids[2].as_str()), "{at}: v3 serves again");
                    let (one, three) =
                        if matches!(platform, "heroku" | "fly") { ("rel-1", "rel-3") } else { ("dep-1", "dep-3") };
                    let again: Vec<String> = if promoted == 1 { vec![one.into(), three.into()] } else { Vec::new() };
                    assert_eq!(s.f.rollbacks(), again, "{at}: undo re-promotes only what was promoted");
                    assert_eq!(s.r.head(), s.ids[2], "{at}");
                    let on = matches!(platform, "railway" | "render").then(|| "yes".to_owned());
                    assert_eq!(s.f.auto_deploy(), on, "{at}: automatic deploys on again");
                }
            }
        }
    }
}

#[test]
fn on_fly_and_heroku_plan_says_there_is_no_autodeploy_switch_and_freeze_false_silences_it() {
    for (platform, says) in [("fly", "no autodeploy on Fly"), ("heroku", "Disable Automatic Deploys")] {
        let s = setup_any(platform);
        let out = s.fr_env(&["plan", "--fast", "--target", "v1"], &[]);
        out.ok();
        let line =
            out.stdout.lines().find(|l| l.contains("no_autodeploy_switch")).unwrap_or_else(|| panic!("{}", out.stdout));
        assert!(line.contains(says) && line.contains("forge-rollback gate"), "{platform}: {line}");
        let j = s.fr_env(&["assess", "--target", "v1", "--json"], &[]).json();
        assert!(j["risks"].as_array().unwrap().iter().any(|r| r["code"] == "no_autodeploy_switch"), "{platform}: {j}");
        assert!(s.f.rollbacks().is_empty(), "{platform}: planning changes nothing");

        let config = std::fs::read_to_string(&s.config).unwrap();
        std::fs::write(&s.config, config.replace("[deploy]\n", "[deploy]\nfreeze = false\n")).unwrap();
        let out = s.fr_env(&["plan", "--fast", "--target", "v1"], &[]);
        out.ok();
        assert!(!out.stdout.contains("no_autodeploy_switch"), "{platform}: {}", out.stdout);
    }
}

#[test]
fn a_fly_strategy_needs_app_and_graphql_url_is_only_for_fly() {
    let s = setup_any("fly");
    std::fs::write(&s.config, "[deploy]\nstrategy = \"fly\"\n").unwrap();
    let out = s.fr_env(&["plan", "--fast", "--target", "v1"], &[]);
    out.code(2);
    assert!(out.stderr.contains("deploy.app") && out.stderr.contains("required"), "{}", out.stderr);
    std::fs::write(&s.config, "[deploy]\nstrategy = \"fly\"\napp = \"my-app\"\ngraphql_url = \"ftp://x\"\n").unwrap();
    let out = s.fr_env(&["plan", "--fast", "--target", "v1"], &[]);
    out.code(2);
    assert!(out.stderr.contains("deploy.graphql_url"), "{}", out.stderr);
    std::fs::write(&s.config, "[deploy]\nstrategy = \"render\"\nservice_id = \"srv-1\"\ngraphql_url = \"https://x\"\n")
        .unwrap();
    let out = s.fr_env(&["plan", "--fast", "--target", "v1"], &[]);
    out.code(2);
    assert!(out.stderr.contains("deploy.graphql_url") && out.stderr.contains("not used"), "{}", out.stderr);
    assert!(s.f.rollbacks().is_empty());
}

#[test]
fn a_target_railway_never_built_is_refused_with_exit_4_and_the_rebuild_hint() {
    let s = setup(&[1, 2]);
    let head = s.r.head();
    let assess = s.fr(&["assess", "--target", "v1"]);
    assess.ok();
    assert!(assess.stdout.contains("no release built from the target"), "{}", assess.stdout);
    let out = s.fr(&["run", "--fast", "--yes", "--target", "v1"]);
    out.code(4);
    assert!(out.stderr.contains("has no release built from the target"), "{}", out.stderr);
    assert!(out.stderr.contains("`push` or `revert-commit`"), "{}", out.stderr);
    assert_eq!(s.r.head(), head);
    assert!(s.f.rollbacks().is_empty());
}

#[test]
fn a_railway_strategy_without_its_ids_is_a_config_error_naming_the_key() {
    let s = setup(&[0, 1, 2]);
    std::fs::write(&s.config, "[deploy]\nstrategy = \"railway\"\nenvironment_id = \"env-1\"\n").unwrap();
    let out = s.fr(&["plan", "--fast", "--target", "v1"]);
    out.code(2);
    assert!(out.stderr.contains("deploy.service_id") && out.stderr.contains("required"), "{}", out.stderr);
    std::fs::write(&s.config, "[deploy]\nstrategy = \"push\"\nservice_id = \"srv-1\"\n").unwrap();
    let out = s.fr(&["plan", "--fast", "--target", "v1"]);
    out.code(2);
    assert!(out.stderr.contains("deploy.service_id"), "{}", out.stderr);
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn the_planted_token_reaches_no_output_log_journal_or_report() {
    let s = setup(&[0, 1, 2]);
    s.f.rate_limit(1);
    let mut seen = Vec::new();
    for args in [
        &["assess", "--target", "v1"][..],
        &["plan", "--fast", "--target", "v1", "--json"],
        &["run", "--fast", "--yes", "--target", "v1"],
    ] {
        let out = s.fr(args);
        out.ok();
        seen.push(format!("{}{}", out.stdout, out.stderr));
    }
    let id = s.fr(&["runs", "list", "--json"]).json()[0]["run_id"].as_str().unwrap().to_owned();
    let out = s.fr(&["undo", &id, "--yes"]);
    out.ok();
    seen.push(format!("{}{}", out.stdout, out.stderr));
    // A refused token: the platform's message is shown, the token is not.
    let bad = s.fr_env(&["plan", "--fast", "--target", "v1"], &[(VAR, "rw-wrong-token-0000")]);
    bad.code(1);
    assert!(bad.stderr.contains("Not Authorized"), "{}", bad.stderr);
    let mut paths = Vec::new();
    files(&state_dir(&s.r), &mut paths);
    let names: Vec<String> = paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for must in ["journal.jsonl", "run.log", "report.md", "report.json"] {
        assert!(names.iter().any(|n| n == must), "{must} in {names:?}");
    }
    for p in paths {
        seen.push(String::from_utf8_lossy(&std::fs::read(p).unwrap()).into_owned());
    }
    let all = seen.join("\n");
    assert!(all.contains("dep-1"), "the run promoted dep-1");
    assert!(!all.contains(TOKEN), "the token leaked");
    let sent = s.f.requests().iter().filter(|q| q.header("project-access-token") == Some(TOKEN)).count();
    assert!(sent > 5, "the token was sent ({sent} requests)");
}

#[test]
fn gate_exits_4_for_a_commit_marked_known_bad_and_0_otherwise() {
    let (r, ids) = messy_repo();
    crate::common::fr(&r, &["known-good", "bad", "v3", "--note", "500s on /token"]).ok();
    let bad = crate::common::fr(&r, &["gate", "v3"]);
    bad.code(4);
    assert!(bad.stderr.contains(&format!("commit {} is marked known bad", &ids[2][..7])), "{}", bad.stderr);
    assert!(bad.stderr.contains("500s on /token") && bad.stderr.contains("hint:"), "{}", bad.stderr);
    let j = crate::common::fr(&r, &["gate", &ids[2], "--json"]);
    j.code(4);
    assert_eq!(j.json()["known_bad"], true);
    assert_eq!(j.json()["commit"], ids[2].as_str());

    let good = crate::common::fr(&r, &["gate", "v1"]);
    good.ok();
    assert!(good.stdout.contains("is not marked known bad"), "{}", good.stdout);
    crate::common::fr(&r, &["gate", "no-such-rev"]).code(2);

    // Lifting the mark opens the gate.
    crate::common::fr(&r, &["known-good", "unmark", "v3"]).ok();
    crate::common::fr(&r, &["gate", "v3"]).ok();
}
