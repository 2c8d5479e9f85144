//! Restart → deploy → verify at the end of every run, `verify`, `init --preset forge` and
//! webhooks, end to end: the binary against a real HTTP server, a real bare git remote and real
//! restart scripts.

use std::time::{Duration, Instant};

use rollback_testkit::TestRepo;
use rollback_testkit::server::{Behaviour, RecordedRequest, TestServer, refused_addr};
use serde_json::Value;

use crate::common::{Out, bare_rev, fr, messy_repo, picture, script, steps_begun, toml_str};

const HOOK_VAR: &str = "FR_TEST_DEPLOY_HOOK";

/// A messy repository (HEAD at v3 with uncommitted work) pushed to a bare `origin`, a server,
/// a restart script writing a marker, and a configuration outside the work tree.
struct Svc {
    repo: TestRepo,
    ids: [String; 3],
    remote: tempfile::TempDir,
    server: TestServer,
    tools: tempfile::TempDir,
    cfg: String,
    env: Vec<(String, String)>,
}

impl Svc {
    fn new() -> Self {
        let (repo, ids) = messy_repo();
        let remote = crate::common::bare_remote(&repo);
        let server = TestServer::start();
        let tools = tempfile::tempdir().unwrap();
        script(
            tools.path(),
            "restart.sh",
            // restart.sh MARKER NAME [EXIT]: appends `NAME restarted in DIR` to MARKER, exits EXIT.
            "if [ -f \"$1.broken\" ]; then echo 'app failed to start: port 8000 in use' >&2; exit 3; fi\necho \"$2 restarted in $(pwd)\" >> \"$1\"\nexit \"${3:-0}\"\n",
        );
        let cfg = tools.path().join("rollback.toml").display().to_string();
        Self { repo, ids, remote, server, tools, cfg, env: Vec::new() }
    }

    fn marker(&self) -> std::path::PathBuf {
        self.tools.path().join("restarted")
    }

    /// A `[[restart]]` entry running the script as `name`, exiting with `exit` (and expecting
    /// it), ready when check `ready` passes, if given.
    fn restart_named(&self, name: &str, exit: i32, ready: Option<&str>) -> String {
        let argv = [
            self.tools.path().join("restart.sh").display().to_string(),
            self.marker().display().to_string(),
            name.to_owned(),
            exit.to_string(),
        ];
        let argv: Vec<String> = argv.iter().map(|a| toml_str(a)).collect();
        let ready = ready.map(|r| format!("ready = {}\nready_timeout_secs = 30\n", toml_str(r))).unwrap_or_default();
        format!(
            "[[restart]]\nname = {}\nargv = [{}]\ntimeout_secs = 10\nexpect_exit = {exit}\n{ready}",
            toml_str(name),
            argv.join(", ")
        )
    }

    /// The `[[restart]]` entry `app`.
    fn restart_toml(&self, ready: Option<&str>) -> String {
        self.restart_named("app", 0, ready)
    }

    fn check_toml(&self, name: &str, path: &str) -> String {
        format!(
            "[[checks]]\nname = {}\nkind = \"http\"\nurl = {}\ntimeout_secs = 2\n",
            toml_str(name),
            toml_str(&self.server.url(path))
        )
    }

    fn write_cfg(&self, text: &str) {
        std::fs::write(&self.cfg, text).unwrap();
    }

    fn fr(&self, args: &[&str]) -> Out {
        let mut all = vec!["--config", self.cfg.as_str()];
        all.extend_from_slice(args);
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        crate::common::fr_env(&self.repo, &all, &env)
    }

    /// The deploy hook's URL through the environment, answered by `behaviour`.
    fn hook(&mut self, behaviour: Behaviour) -> &'static str {
        self.server.set("/deploy/srv-token-5f1c", behaviour);
        self.env.push((HOOK_VAR.to_owned(), self.server.url("/deploy/srv-token-5f1c")));
        "/deploy/srv-token-5f1c"
    }

    fn remote_main(&self) -> String {
        bare_rev(self.remote.path(), "refs/heads/main")
    }

    fn remote_rev(&self, rev: &str) -> String {
        bare_rev(self.remote.path(), rev)
    }

    fn runs(&self) -> Vec<Value> {
        let out = self.fr(&["runs", "list", "--json"]);
        out.ok();
        out.json().as_array().unwrap().clone()
    }
}

fn step_names(outcome: &Value) -> Vec<(String, String)> {
    outcome["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap().to_owned(), s["status"].as_str().unwrap().to_owned()))
        .collect()
}

fn step<'a>(outcome: &'a Value, name: &str) -> &'a Value {
    outcome["steps"].as_array().unwrap().iter().find(|s| s["step"] == name).unwrap_or_else(|| panic!("no step {name}"))
}

fn done(names: &[&str]) -> Vec<(String, String)> {
    names.iter().map(|n| ((*n).to_owned(), "done".to_owned())).collect()
}

const FAST_STEPS: [&str; 8] =
    ["snapshot", "reset", "remove_untracked", "clear_caches", "restart", "deploy", "verify", "record"];

#[test]
fn push_deploy_restart_and_verify_run_in_order_and_undo_pushes_the_old_commit_back() {
    let mut s = Svc::new();
    let hook = s.hook(Behaviour::Status(200));
    // The service comes up a little after the restart: the readiness check waits for it.
    s.server.set("/health", Behaviour::after(2, Behaviour::Status(503), Behaviour::Healthy));
    s.write_cfg(&format!(
        "{}{}{}[deploy]\nstrategy = \"push\"\nhook_url_env = \"{HOOK_VAR}\"\n",
        s.check_toml("api", "/health"),
        s.restart_toml(Some("api")),
        s.restart_named("worker", 3, None)
    ));
    let before = picture(&s.repo);
    assert_eq!(s.remote_main(), s.ids[2]);

    let out = s.fr(&["run", "--fast", "--yes", "--json", "--target", "v2"]);
    out.ok();
    let j = out.json();
    let id = j["run_id"].as_str().unwrap().to_owned();
    assert_eq!(j["status"], "succeeded", "{}", out.stdout);
    assert_eq!(step_names(&j), done(&FAST_STEPS));
    assert_eq!(steps_begun(&s.repo, &id), FAST_STEPS, "journaled in order");
    // Restart: both steps ran once, in order, in the work tree (the second exits 3, as
    // expected); the first waited until the service was up.
    let marker = std::fs::read_to_string(s.marker()).unwrap();
    let dir = s.repo.path().display();
    assert_eq!(marker, format!("app restarted in {dir}\nworker restarted in {dir}\n"));
    let restarted = &step(&j, "restart")["detail"]["steps"];
    assert_eq!((restarted[0]["name"].as_str(), restarted[0]["ok"].as_bool()), (Some("app"), Some(true)), "{restarted}");
    assert!(restarted[0]["ready_millis"].is_u64(), "{restarted}");
    assert_eq!(
        (restarted[1]["ok"].as_bool(), restarted[1]["exit_code"].as_i64()),
        (Some(true), Some(3)),
        "{restarted}"
    );
    assert!(out.stderr.contains("restart `app`: waiting for check `api` to pass"), "{}", out.stderr);
    // Deploy: the remote branch is at the target, and the hook got one POST about it.
    assert_eq!(s.remote_main(), s.ids[1]);
    let deploy = &step(&j, "deploy")["detail"];
    assert_eq!(deploy["pushed_commit"], s.ids[1].as_str(), "{deploy}");
    assert_eq!(deploy["hook_status"], 200);
    let posts = s.server.requests_to(hook);
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].method, "POST");
    let body = posts[0].body_json();
    assert_eq!((body["run_id"].as_str(), body["commit"].as_str()), (Some(id.as_str()), Some(s.ids[1].as_str())));
    assert_eq!((body["from"].as_str(), body["branch"].as_str()), (Some(s.ids[2].as_str()), Some("main")));
    // Verify: after the readiness wait (two 503s, then healthy) and the deploy.
    assert_eq!(j["verification"]["passed"], true, "{}", j["verification"]);
    assert!(s.server.requests_to("/health").len() >= 4);

    let out = s.fr(&["undo", &id, "--yes", "--json"]);
    out.ok();
    let u = out.json();
    assert_eq!(u["status"], "succeeded", "{}", out.stdout);
    assert_eq!(s.remote_main(), s.ids[2], "the undo pushed the old commit back");
    assert_eq!(picture(&s.repo), before);
    assert_eq!(std::fs::read_to_string(s.marker()).unwrap().lines().count(), 4, "the undo restarted too");
    let posts = s.server.requests_to(hook);
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[1].body_json()["commit"], s.ids[2].as_str());
}

#[test]
fn revert_commit_deploy_pushes_a_commit_with_the_targets_tree_and_keeps_history() {
    let s = Svc::new();
    s.write_cfg(&format!("{}[deploy]\nstrategy = \"revert-commit\"\n", s.check_toml("api", "/health")));
    let out = s.fr(&["run", "--fast", "--yes", "--json", "--target", "v2"]);
    out.ok();
    let j = out.json();
    let id = j["run_id"].as_str().unwrap().to_owned();
    let pushed = s.remote_main();
    assert_eq!(step(&j, "deploy")["detail"]["pushed_commit"], pushed.as_str());
    assert_ne!(pushed, s.ids[1], "a new commit, not the old one");
    assert_eq!(s.remote_rev(&format!("{pushed}^{{tree}}")), s.repo.git(&["rev-parse", "v2^{tree}"]));
    assert_eq!(s.remote_rev(&format!("{pushed}^")), s.ids[2], "on top of the broken release: history kept");
    let msg = s.repo.git(&["log", "-1", "--format=%s", &pushed]);
    assert!(msg.starts_with("Roll back to") && msg.contains(&id), "{msg}");
    // Locally the branch is back at v2 itself.
    assert_eq!(s.repo.head(), s.ids[1]);

    let out = s.fr(&["undo", &id, "--yes", "--json"]);
    out.ok();
    let again = s.remote_main();
    assert_eq!(s.remote_rev(&format!("{again}^")), pushed, "the undo adds a commit too");
    assert_eq!(s.remote_rev(&format!("{again}^{{tree}}")), s.repo.git(&["rev-parse", "v3^{tree}"]));
    assert_eq!(s.repo.head(), s.ids[2]);
}

#[test]
fn a_failed_verification_exits_6_and_on_failure_undo_puts_tree_head_and_remote_back() {
    let s = Svc::new();
    s.server.set("/health", Behaviour::Status(503));
    let base = format!("{}[deploy]\nstrategy = \"push\"\n", s.check_toml("api", "/health"));
    s.write_cfg(&base);
    let before = picture(&s.repo);

    // on_failure = "stop" (the default): the run stays, its status says what happened.
    let out = s.fr(&["run", "--fast", "--yes", "--json", "--target", "v2"]);
    out.code(6);
    let j = out.json();
    let first = j["run_id"].as_str().unwrap().to_owned();
    assert_eq!(j["status"], "verification_failed");
    assert_eq!(j["undone_by"], Value::Null);
    assert_eq!(j["verification"]["passed"], false);
    let reason = j["verification"]["checks"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("503"), "{reason}");
    assert!(out.stderr.contains("VERIFICATION FAILED"), "{}", out.stderr);
    assert_eq!((s.repo.head(), s.remote_main()), (s.ids[1].clone(), s.ids[1].clone()));
    let text = s.fr(&["runs", "show", &first]);
    text.ok();
    assert!(text.stdout.contains("status:  verification_failed"), "{}", text.stdout);
    assert!(text.stdout.contains("[FAIL] api"), "{}", text.stdout);
    let report = s.fr(&["report", &first]);
    report.ok();
    assert!(report.stdout.contains("1 of 1 service check(s) FAILED after the run"), "{}", report.stdout);
    // The header in words, not the identifier `Verification_failed`.
    assert!(report.stdout.contains("**Status**: Verification failed\n"), "{}", report.stdout);
    assert!(report.stdout.contains("- [ ] api (http): failed"), "{}", report.stdout);
    // Put it back by hand (the undo verifies against the same broken service: exit 6 too).
    s.fr(&["undo", &first, "--yes"]).code(6);
    assert_eq!(picture(&s.repo), before);

    // on_failure = "undo": the run puts everything back by itself.
    s.write_cfg(&format!("{base}[verify]\non_failure = \"undo\"\n"));
    let out = s.fr(&["run", "--fast", "--yes", "--json", "--target", "v2"]);
    out.code(6);
    let j = out.json();
    let second = j["run_id"].as_str().unwrap().to_owned();
    assert_eq!(j["status"], "verification_failed", "{}", out.stdout);
    let undone_by = j["undone_by"].as_str().expect("undone_by is set").to_owned();
    assert_eq!(picture(&s.repo), before, "tree, index, HEAD and branch are back");
    assert_eq!(s.remote_main(), s.ids[2], "the remote is back on the release it ran");
    let runs = s.runs();
    let of = |id: &str| runs.iter().find(|r| r["run_id"] == id).unwrap_or_else(|| panic!("{id} in {runs:?}")).clone();
    assert_eq!(of(&second)["status"], "undone");
    assert_eq!(of(&second)["undone_by"], undone_by.as_str());
    assert_eq!(of(&undone_by)["undo_of"], second.as_str());
    assert!(out.stderr.contains(&format!("Undoing run {second} now")), "{}", out.stderr);
    // The service fails before the rollback too: the undo's own verification says so.
    let warnings = j["warnings"].to_string();
    assert!(warnings.contains(&format!("the automatic undo {undone_by} ended verification_failed")), "{warnings}");
}

#[test]
fn a_failing_restart_step_fails_the_run_and_resume_after_the_fix_finishes_it() {
    let s = Svc::new();
    std::fs::write(format!("{}.broken", s.marker().display()), "").unwrap();
    s.server.set("/hooks/ops", Behaviour::Status(200));
    s.write_cfg(&format!(
        "{}{}[deploy]\nstrategy = \"push\"\n\n[[notify]]\nurl = {}\n",
        s.check_toml("api", "/health"),
        s.restart_toml(None),
        toml_str(&s.server.url("/hooks/ops"))
    ));
    let out = s.fr(&["run", "--fast", "--yes", "--json", "--target", "v2"]);
    out.code(1);
    let j = out.json();
    let id = j["run_id"].as_str().unwrap().to_owned();
    assert_eq!(j["status"], "failed");
    assert_eq!(kinds(&s.server, "/hooks/ops"), ["started", "failed"]);
    let failed = s.server.requests_to("/hooks/ops")[1].body_json();
    let message = failed["message"].as_str().unwrap();
    assert!(message.starts_with("fast rollback: restart step `app` failed"), "{failed}");
    let error = j["error"].as_str().unwrap();
    assert!(error.contains("restart step `app` failed: exit code 3, expected 0"), "{error}");
    assert!(error.contains("app failed to start: port 8000 in use"), "the script's stderr: {error}");
    // The hint names this run, not a placeholder.
    assert!(
        out.stderr
            .contains(&format!("hint: fix the service, then `forge-rollback resume {id}` runs the restart again")),
        "{}",
        out.stderr
    );
    let statuses: Vec<(String, String)> = step_names(&j).into_iter().skip(4).collect();
    assert_eq!(
        statuses,
        [("restart", "failed"), ("deploy", "pending"), ("verify", "pending"), ("record", "pending")]
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );
    assert_eq!(s.remote_main(), s.ids[2], "nothing deployed after the failed restart");
    assert!(!s.marker().exists());
    // The failed run blocks a new one until it is settled.
    s.fr(&["run", "--fast", "--yes", "--target", "v1"]).code(4);

    std::fs::remove_file(format!("{}.broken", s.marker().display())).unwrap();
    let out = s.fr(&["resume", &id, "--yes", "--json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["status"], "succeeded", "{}", out.stdout);
    assert_eq!(s.remote_main(), s.ids[1]);
    assert_eq!(std::fs::read_to_string(s.marker()).unwrap().lines().count(), 1);
    assert_eq!(kinds(&s.server, "/hooks/ops")[2..], ["succeeded"], "the resumed run's end is notified");
    let begun = steps_begun(&s.repo, &id);
    assert_eq!(&begun[begun.len() - 4..], ["restart", "deploy", "verify", "record"], "resumed at the restart");
    assert_eq!(begun.iter().filter(|s| *s == "reset").count(), 1, "the reset was not done again");
}

#[test]
fn a_deploy_hook_that_fails_once_fails_the_run_and_resume_deploys_once() {
    for strategy in ["push", "revert-commit"] {
        let mut s = Svc::new();
        let hook = s.hook(Behaviour::after(1, Behaviour::Status(500), Behaviour::Status(200)));
        s.write_cfg(&format!(
            "{}[deploy]\nstrategy = \"{strategy}\"\nhook_url_env = \"{HOOK_VAR}\"\n",
            s.check_toml("api", "/health")
        ));
        let out = s.fr(&["run", "--fast", "--yes", "--json", "--target", "v2"]);
        out.code(1);
        let j = out.json();
        let id = j["run_id"].as_str().unwrap().to_owned();
        let error = j["error"].as_str().unwrap();
        assert!(error.contains("the deploy hook failed: status 500"), "{strategy}: {error}");
        let pushed = s.remote_main();
        assert_ne!(pushed, s.ids[2], "{strategy}: the push happened before the hook");
        let said = format!("(the push of {} succeeded)", &pushed[..12]);
        assert!(error.contains(&said), "{strategy}: the error says the push succeeded: {error}");

        // A later second: a commit made again now would get another id.
        std::thread::sleep(Duration::from_millis(1100));
        let out = s.fr(&["resume", &id, "--yes", "--json"]);
        assert_eq!(out.code, Some(0), "{strategy}: resume after a failed hook\n{}\n{}", out.stdout, out.stderr);
        assert_eq!(out.json()["status"], "succeeded");
        assert_eq!(s.remote_main(), pushed, "{strategy}: the push is not made twice");
        assert_eq!(s.server.requests_to(hook).len(), 2, "{strategy}: the hook is called again");
    }
}

#[test]
fn verify_exit_codes_json_and_check_selection() {
    let s = Svc::new();
    s.write_cfg(&format!("{}{}", s.check_toml("api", "/health"), s.check_toml("web", "/")));
    let out = s.fr(&["verify"]);
    out.ok();
    assert!(out.stdout.contains("[ok] api") && out.stdout.contains("[ok] web"), "{}", out.stdout);
    assert!(out.stdout.contains("verification: 2 of 2 check(s) passed"), "{}", out.stdout);
    let j = s.fr(&["verify", "--json"]).json();
    assert_eq!(j["passed"], true);
    assert_eq!(j["checks"].as_array().unwrap().len(), 2);

    s.server.set("/health", Behaviour::Status(502));
    let out = s.fr(&["verify", "--json"]);
    out.code(6);
    let j = out.json();
    assert_eq!(j["passed"], false);
    assert_eq!((j["checks"][0]["name"].as_str(), j["checks"][0]["status"].as_str()), (Some("api"), Some("failed")));
    assert_eq!(j["checks"][1]["passed"], true);
    let out = s.fr(&["verify"]);
    out.code(6);
    assert!(out.stdout.contains("[FAIL] api") && out.stdout.contains("FAILED"), "{}", out.stdout);

    let out = s.fr(&["verify", "--json", "--check", "web"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["checks"].as_array().unwrap().len(), 1);
    assert_eq!(j["checks"][0]["name"], "web");

    let out = s.fr(&["verify", "--check", "web", "--check", "nope"]);
    out.code(2);
    assert!(out.stderr.contains("no check named `nope`"), "{}", out.stderr);
    assert!(out.stderr.contains("hint: configured checks: api, web"), "{}", out.stderr);
    assert!(out.stdout.is_empty());

    // Without `[[checks]]`, `verify` and `watch` have nothing to do.
    s.write_cfg("[verify]\ntimeout_secs = 1\n");
    let out = s.fr(&["verify"]);
    out.code(2);
    assert!(out.stderr.contains("no `[[checks]]` are configured"), "{}", out.stderr);
    s.fr(&["watch", "--rounds", "1"]).code(2);
}

#[test]
fn the_forge_preset_parses_and_verify_reports_every_check_refused_when_nothing_listens() {
    let mut s = Svc::new();
    s.env.push(("FORGE_CHECK_USER".into(), "forge-check".into()));
    s.env.push(("FORGE_CHECK_PASSWORD".into(), "pw".into()));
    let out = fr(&s.repo, &["init", "--preset", "forge", "--print"]);
    out.ok();
    let mut text = out.stdout.clone();
    assert!(text.contains("127.0.0.1:8000") && text.contains("127.0.0.1:5000") && text.contains("127.0.0.1:7860"));
    for port in ["8000", "5000", "7860"] {
        text = text.replace(&format!("127.0.0.1:{port}"), &refused_addr().to_string());
    }
    s.write_cfg(&text);
    let start = Instant::now();
    let out = s.fr(&["verify", "--json"]);
    out.code(6);
    let j = out.json();
    let checks = j["checks"].as_array().unwrap();
    let names: Vec<&str> = checks.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["fastapi", "flask", "gradio", "websocket", "auth"]);
    for c in checks {
        assert_eq!((c["passed"].as_bool(), c["status"].as_str()), (Some(false), Some("error")), "{c}");
        let reason = c["reason"].as_str().unwrap().to_lowercase();
        assert!(reason.contains("refused"), "{c}");
    }
    assert_eq!(checks[0]["attempts"], 3, "the preset retries the FastAPI check twice");
    assert!(start.elapsed() < Duration::from_secs(30), "refused connections fail fast: {:?}", start.elapsed());
    // `init --preset forge` writes the same text; an unknown preset is bad usage.
    fr(&s.repo, &["init", "--preset", "forge"]).ok();
    let written = std::fs::read_to_string(s.repo.path().join("rollback/config/rollback.toml")).unwrap();
    assert_eq!(written, out_text_of_preset(&s.repo));
    fr(&s.repo, &["init", "--preset", "nope", "--print"]).code(2);
}

#[test]
fn twenty_rounds_of_the_presets_auth_flow_leave_no_rows() {
    let mut s = Svc::new();
    let mut text = out_text_of_preset(&s.repo);
    text = text.replace("http://127.0.0.1:8000", &s.server.url(""));
    s.write_cfg(&text);
    // The dedicated account, created once by the operator as the preset says.
    s.server.add_user("forge-check", "check-pw");
    s.env.push(("FORGE_CHECK_USER".into(), "forge-check".into()));
    s.env.push(("FORGE_CHECK_PASSWORD".into(), "check-pw".into()));
    let before = s.server.user_count();
    for round in 0..20 {
        let out = s.fr(&["verify", "--check", "auth", "--json"]);
        out.ok();
        assert_eq!(out.json()["checks"][0]["reason"], "3 steps passed", "round {round}");
    }
    assert_eq!(s.server.user_count(), before, "the auth check left rows behind");
    assert_eq!(s.server.requests_to("/token").len(), 20);
    assert!(s.server.requests_to("/register").is_empty());
    // Without the account's credentials the check says which variable is missing.
    s.env.clear();
    let out = s.fr(&["verify", "--check", "auth", "--json"]);
    out.code(6);
    let reason = out.json()["checks"][0]["reason"].as_str().unwrap().to_owned();
    assert!(reason.contains("environment variable `FORGE_CHECK_") && reason.ends_with("is not set"), "{reason}");
    // Set but empty (a secret the deploy did not fill in) is said so.
    s.env.push(("FORGE_CHECK_USER".into(), String::new()));
    s.env.push(("FORGE_CHECK_PASSWORD".into(), "check-pw".into()));
    let out = s.fr(&["verify", "--check", "auth", "--json"]);
    out.code(6);
    let reason = out.json()["checks"][0]["reason"].as_str().unwrap().to_owned();
    assert!(reason.ends_with("the environment variable `FORGE_CHECK_USER` is empty"), "{reason}");
    assert_eq!(s.server.requests_to("/token").len(), 20, "no request without the account");
}

fn out_text_of_preset(repo: &TestRepo) -> String {
    let out = fr(repo, &["init", "--preset", "forge", "--print"]);
    out.ok();
    out.stdout
}

/// The `kind`s of the JSON events a webhook received, in order.
fn kinds(server: &TestServer, path: &str) -> Vec<String> {
    server.requests_to(path).iter().map(|r| r.body_json()["kind"].as_str().unwrap_or("?").to_owned()).collect()
}

#[test]
fn webhooks_get_started_then_succeeded_or_verification_failed() {
    let s = Svc::new();
    s.server.set("/hooks/all", Behaviour::Status(204));
    s.server.set("/hooks/slack", Behaviour::Status(200));
    s.write_cfg(&format!(
        "{}[[notify]]\nurl = {}\n\n[[notify]]\nname = \"chat\"\nurl = {}\nformat = \"slack\"\nevents = [\"verification_failed\"]\n",
        s.check_toml("api", "/health"),
        toml_str(&s.server.url("/hooks/all")),
        toml_str(&s.server.url("/hooks/slack")),
    ));
    let out = s.fr(&["run", "--fast", "--yes", "--json", "--target", "v2"]);
    out.ok();
    let id = out.json()["run_id"].as_str().unwrap().to_owned();
    assert_eq!(kinds(&s.server, "/hooks/all"), ["started", "succeeded"]);
    let events: Vec<Value> = s.server.requests_to("/hooks/all").iter().map(RecordedRequest::body_json).collect();
    for e in &events {
        assert_eq!(e["run_id"], id.as_str());
        assert_eq!((e["from"].as_str(), e["to"].as_str()), (Some(s.ids[2].as_str()), Some(s.ids[1].as_str())));
    }
    assert_eq!(events[1]["message"], "fast rollback succeeded");
    assert!(s.server.requests_to("/hooks/slack").is_empty(), "not subscribed to these events");
    assert!(out.stderr.contains("Notified webhook `webhook 1` (succeeded)"), "{}", out.stderr);
    s.fr(&["undo", &id, "--yes"]).ok();
    assert_eq!(kinds(&s.server, "/hooks/all")[2..], ["started", "succeeded"], "the undo notifies too");

    s.server.set("/health", Behaviour::Status(503));
    let out = s.fr(&["run", "--fast", "--yes", "--json", "--target", "v2"]);
    out.code(6);
    assert_eq!(kinds(&s.server, "/hooks/all")[4..], ["started", "verification_failed"]);
    let slack = s.server.requests_to("/hooks/slack");
    assert_eq!(slack.len(), 1);
    let text = slack[0].body_json()["text"].as_str().unwrap().to_owned();
    assert!(text.starts_with("[forge-rollback] rollback done but verification FAILED in "), "{text}");
}

#[test]
fn a_hanging_webhook_is_logged_and_neither_fails_nor_holds_up_the_run() {
    let s = Svc::new();
    s.server.set("/hooks/pager", Behaviour::Hang);
    s.server.set("/hooks/ok", Behaviour::Status(200));
    s.write_cfg(&format!(
        "{}[[notify]]\nname = \"pager\"\nurl = {}\ntimeout_secs = 2\nretries = 1\n\n[[notify]]\nname = \"ok\"\nurl = {}\n",
        s.check_toml("api", "/health"),
        toml_str(&s.server.url("/hooks/pager")),
        toml_str(&s.server.url("/hooks/ok")),
    ));
    let start = Instant::now();
    let out = s.fr(&["run", "--fast", "--yes", "--json", "--target", "v2"]);
    let took = start.elapsed();
    out.ok();
    let j = out.json();
    assert_eq!(j["status"], "succeeded");
    // Both events together within timeout × attempts of the run's end: ~4 s.
    assert!(took < Duration::from_secs(25), "the run took {took:?}");
    let warnings: Vec<&str> = j["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap()).collect();
    let w = "webhook `pager` (started) failed: timed out after 2.0 s";
    assert!(warnings.iter().any(|x| x.starts_with(w) && x.ends_with("(2 attempts)")), "{w} in {warnings:?}");
    // `succeeded` waits for the `started` it follows, and only gets the time that one left.
    let w = "webhook `pager` (succeeded) failed: ";
    assert!(warnings.iter().any(|x| x.starts_with(w) && x.contains("its `started`")), "{w} in {warnings:?}");
    let pager = kinds(&s.server, "/hooks/pager");
    assert_eq!(pager[..2], ["started", "started"], "two attempts of `started`, then `succeeded` if any: {pager:?}");
    assert!(pager[2..].iter().all(|k| k == "succeeded"), "{pager:?}");
    assert_eq!(kinds(&s.server, "/hooks/ok"), ["started", "succeeded"], "the other webhook still got both");
    assert_eq!(s.repo.head(), s.ids[1]);
}

#[test]
fn a_restart_step_that_hangs_is_killed_by_its_own_process_group_only() {
    let s = Svc::new();
    // An unrelated process with the same program name as the hanging step: it must survive.
    let mut bystander = std::process::Command::new("sleep").arg("120").spawn().unwrap();
    let pidfile = s.tools.path().join("step.pid");
    let hang = script(s.tools.path(), "hang.sh", &format!("echo $$ > '{}'\nexec sleep 120\n", pidfile.display()));
    s.write_cfg(&format!(
        "{}[[restart]]\nname = \"stuck\"\nargv = [{}]\ntimeout_secs = 1\n",
        s.check_toml("api", "/health"),
        toml_str(&hang)
    ));
    let start = Instant::now();
    let out = s.fr(&["run", "--fast", "--yes", "--json", "--target", "v2"]);
    let took = start.elapsed();
    out.code(1);
    assert!(took < Duration::from_secs(20), "a 1 s restart timeout took {took:?}");
    let error = out.json()["error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("restart step `stuck` failed: timed out after 1.0 s; its process group was killed"),
        "{error}"
    );
    let step_pid = std::fs::read_to_string(&pidfile).unwrap().trim().to_owned();
    let alive = |pid: &str| std::process::Command::new("kill").args(["-0", pid]).status().unwrap().success();
    assert!(!alive(&step_pid), "the step's own process is gone");
    assert!(bystander.try_wait().unwrap().is_none(), "an unrelated `sleep` was killed");
    bystander.kill().unwrap();
    bystander.wait().unwrap();
}

#[test]
fn undo_of_a_run_that_never_deployed_leaves_the_remote_alone() {
    // revert-commit: the restart failed, so nothing was deployed.
    let s = Svc::new();
    std::fs::write(format!("{}.broken", s.marker().display()), "").unwrap();
    s.write_cfg(&format!(
        "{}{}[deploy]\nstrategy = \"revert-commit\"\n",
        s.check_toml("api", "/health"),
        s.restart_toml(None)
    ));
    let before = picture(&s.repo);
    let out = s.fr(&["run", "--fast", "--yes", "--json", "--target", "v2"]);
    out.code(1);
    let id = out.json()["run_id"].as_str().unwrap().to_owned();
    assert_eq!(s.remote_main(), s.ids[2]);
    std::fs::remove_file(format!("{}.broken", s.marker().display())).unwrap();
    let out = s.fr(&["undo", &id, "--yes", "--json"]);
    assert_eq!(out.code, Some(0), "undo of a run that did not deploy\n{}\n{}", out.stdout, out.stderr);
    assert_eq!(picture(&s.repo), before);
    assert_eq!(s.remote_main(), s.ids[2], "production still runs the release it ran: nothing to push");

    // push: someone deployed after the broken release, so the run's push was refused.
    let s = Svc::new();
    s.write_cfg(&format!("{}[deploy]\nstrategy = \"push\"\n", s.check_toml("api", "/health")));
    let other = s.repo.git(&["commit-tree", "v3^{tree}", "-p", "v3", "-m", "hotfix pushed by someone else"]);
    s.repo.git(&["push", "-q", "origin", &format!("{other}:refs/heads/main")]);
    let before = picture(&s.repo);
    let out = s.fr(&["run", "--fast", "--yes", "--json", "--target", "v2"]);
    out.code(1);
    let j = out.json();
    let id = j["run_id"].as_str().unwrap().to_owned();
    assert!(j["error"].as_str().unwrap().contains("is not at"), "{}", out.stdout);
    assert_eq!(s.remote_main(), other, "the push was refused");
    let out = s.fr(&["undo", &id, "--yes", "--json"]);
    assert_eq!(out.code, Some(0), "undo of a run whose push was refused\n{}\n{}", out.stdout, out.stderr);
    assert_eq!(picture(&s.repo), before);
    assert_eq!(s.remote_main(), other, "the other deploy is left alone");
    assert!(out.stderr.contains("did not change `origin`: the undo leaves it as it is"), "{}", out.stderr);
}

#[test]
fn undo_of_a_run_whose_hook_failed_after_its_push_pushes_back() {
    for strategy in ["push", "revert-commit"] {
        let mut s = Svc::new();
        s.hook(Behaviour::after(1, Behaviour::Status(500), Behaviour::Status(200)));
        s.write_cfg(&format!(
            "{}[deploy]\nstrategy = \"{strategy}\"\nhook_url_env = \"{HOOK_VAR}\"\n",
            s.check_toml("api", "/health")
        ));
        let before = picture(&s.repo);
        let out = s.fr(&["run", "--fast", "--yes", "--json", "--target", "v2"]);
        out.code(1);
        let id = out.json()["run_id"].as_str().unwrap().to_owned();
        let pushed = s.remote_main();
        assert_ne!(pushed, s.ids[2], "{strategy}: pushed before the hook failed");
        let out = s.fr(&["undo", &id, "--yes", "--json"]);
        assert_eq!(out.code, Some(0), "{strategy}\n{}\n{}", out.stdout, out.stderr);
        assert_eq!(picture(&s.repo), before);
        let now = s.remote_main();
        if strategy == "push" {
            assert_eq!(now, s.ids[2], "the broken release's commit is back");
        } else {
            assert_eq!(s.remote_rev(&format!("{now}^")), pushed, "on top of the run's rollback commit");
            assert_eq!(s.remote_rev(&format!("{now}^{{tree}}")), s.repo.git(&["rev-parse", "v3^{tree}"]));
        }
    }
}
