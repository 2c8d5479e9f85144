//! `[[restart]]` steps: real programs in a temp dir, readiness against a real HTTP server.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rollback_core::event::LogLevel;
use rollback_core::restart::{self, RestartResult, RestartStep};
use rollback_core::rt;
use rollback_core::verify::config::{CheckSpec, HttpCheck};
use rollback_core::verify::{CheckConfig, Verifier, VerifySettings};
use rollback_testkit::Reaper;
use rollback_testkit::server::{Behaviour, TestServer};

fn step(name: &str, argv: &[&str]) -> RestartStep {
    let text = format!("name = {name:?}\nargv = {argv:?}\n");
    toml::from_str(&text).unwrap()
}

fn verifier(server: &TestServer, path: &str, dir: &Path) -> Verifier {
    let mut check = CheckConfig::new("api", CheckSpec::Http(HttpCheck::get(server.url(path))));
    check.timeout_secs = Some(1.0);
    Verifier::new(vec![check], VerifySettings::default(), None, dir.to_owned())
}

fn run(steps: &[RestartStep], v: &Verifier, dir: &Path) -> (Vec<RestartResult>, Vec<(LogLevel, String)>) {
    let lines = Mutex::new(Vec::new());
    let log = |level: LogLevel, line: String| lines.lock().unwrap().push((level, line));
    let results = rt::block_on(restart::run(steps, v, dir, dir, &log));
    (results, lines.into_inner().unwrap())
}

#[test]
fn steps_run_in_order_and_stop_at_the_first_failure() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start();
    let v = verifier(&server, "/health", dir.path());
    let steps = [
        step("one", &["sh", "-c", "echo one >> order.log"]),
        step("two", &["sh", "-c", "echo two >> order.log; echo 'unit failed: port in use' >&2; exit 4"]),
        step("three", &["sh", "-c", "echo three >> order.log"]),
    ];
    let (results, log) = run(&steps, &v, dir.path());
    assert_eq!(std::fs::read_to_string(dir.path().join("order.log")).unwrap(), "one\ntwo\n");
    assert_eq!(results.len(), 2, "{results:?}");
    assert!(results[0].ok && results[0].exit_code == Some(0), "{results:?}");
    let two = &results[1];
    assert_eq!((two.ok, two.exit_code), (false, Some(4)));
    assert_eq!(two.detail, "exit code 4, expected 0: unit failed: port in use");
    assert_eq!(log[0], (LogLevel::Info, "restart `one`: running `sh -c echo one >> order.log`".to_owned()));
    assert!(
        log.iter().any(|(l, m)| *l == LogLevel::Error && m.starts_with("restart `two` failed: exit code 4")),
        "{log:?}"
    );
    // An expected non-zero exit code is success.
    let mut odd = step("odd", &["sh", "-c", "exit 3"]);
    odd.expect_exit = 3;
    let (results, _) = run(&[odd], &v, dir.path());
    assert!(results[0].ok, "{results:?}");
    // A program that does not exist.
    let (results, _) = run(&[step("ghost", &["/nonexistent/restart-me"])], &v, dir.path());
    assert!(!results[0].ok && results[0].detail.starts_with("cannot run `/nonexistent/restart-me`"), "{results:?}");
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

fn read_pid(path: &Path) -> u32 {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        assert!(Instant::now() < end, "no pid in {}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_step_that_times_out_has_only_its_own_process_group_killed() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start();
    let v = verifier(&server, "/health", dir.path());
    // An unrelated process running the same program: it must survive.
    let mut reaper =
        Reaper { children: vec![std::process::Command::new("sleep").arg("300").spawn().unwrap()], pids: vec![] };
    let bystander = reaper.children[0].id();
    let mut slow = step("slow", &["sh", "-c", "sleep 300 & echo $! > child.pid; echo stuck >&2; wait"]);
    slow.timeout_secs = 1.0;
    let start = Instant::now();
    let (results, _) = run(&[slow, step("after", &["true"])], &v, dir.path());
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
    assert_eq!(results.len(), 1, "stops at the timed-out step: {results:?}");
    let r = &results[0];
    assert!(!r.ok && r.exit_code.is_none(), "{r:?}");
    assert_eq!(r.detail, "timed out after 1.0 s; its process group was killed: stuck");
    let child = read_pid(&dir.path().join("child.pid"));
    reaper.pids.push(child);
    let end = Instant::now() + Duration::from_secs(10);
    while alive(child) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(child), "the step's own background child survived");
    assert!(alive(bystander), "an unrelated process was killed");
}

#[test]
fn a_step_that_leaves_a_server_running_does_not_hold_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start();
    let v = verifier(&server, "/health", dir.path());
    // The background child keeps the step's stdout and stderr open for 300 s.
    let start = Instant::now();
    let (results, _) = run(&[step("daemon", &["sh", "-c", "sleep 300 & echo $! > daemon.pid"])], &v, dir.path());
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
    let pid = read_pid(&dir.path().join("daemon.pid"));
    let _reaper = Reaper { children: vec![], pids: vec![pid] };
    assert!(results[0].ok, "{results:?}");
    assert!(alive(pid), "a successful step's background child must keep running");
}

#[test]
fn readiness_is_polled_until_the_check_passes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(TestServer::start());
    server.set("/ready", Behaviour::Status(503));
    let v = verifier(&server, "/ready", dir.path());
    let flip = {
        let server = server.clone();
        std::thread::spawn(move || {
            server.wait_for_requests("/ready", 3, Duration::from_secs(20));
            server.set("/ready", Behaviour::Healthy);
        })
    };
    let mut s = step("api", &["true"]);
    s.ready = Some("api".into());
    s.ready_timeout_secs = 30.0;
    let (results, log) = run(&[s], &v, dir.path());
    flip.join().unwrap();
    let r = &results[0];
    assert!(r.ok, "{r:?}");
    assert!(r.ready_millis.is_some(), "{r:?}");
    assert!(r.detail.starts_with("exit code 0 after") && r.detail.contains("; ready after"), "{r:?}");
    assert!(server.requests_to("/ready").len() >= 4);
    assert!(log.iter().any(|(_, m)| m == "restart `api`: waiting for check `api` to pass (up to 30.0 s)"), "{log:?}");
}

#[test]
fn readiness_that_never_comes_fails_the_step_with_the_last_reason() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start();
    server.set("/ready", Behaviour::Status(503));
    let v = verifier(&server, "/ready", dir.path());
    let mut s = step("api", &["true"]);
    s.ready = Some("api".into());
    s.ready_timeout_secs = 1.5;
    let start = Instant::now();
    let (results, _) = run(&[s.clone(), step("next", &["true"])], &v, dir.path());
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(results.len(), 1);
    let r = &results[0];
    assert!(!r.ok && r.ready_millis.is_none(), "{r:?}");
    assert!(r.detail.contains("but check `api` did not pass within 1.5 s: status 503, expected 2xx"), "{r:?}");
    // A hanging readiness check is cut at the readiness timeout too.
    server.set("/ready", Behaviour::Hang);
    let (results, _) = run(&[s], &v, dir.path());
    assert!(!results[0].ok, "{results:?}");
    assert!(results[0].detail.contains("timed out after 1.0 s"), "{results:?}");
}

#[test]
fn validation() {
    let checks = ["api".to_owned()];
    let ok = {
        let mut s = step("api", &["systemctl", "restart", "api"]);
        s.ready = Some("api".into());
        s
    };
    restart::validate(std::slice::from_ref(&ok), &checks).unwrap();
    restart::validate(std::slice::from_ref(&ok), ["api"]).unwrap();
    let cases: Vec<(RestartStep, &str, &str)> = vec![
        (step("x", &[]), "restart[0].argv", "needs a program"),
        (step("", &["true"]), "restart[0].name", "is empty"),
        (
            {
                let mut s = ok.clone();
                s.ready = Some("web".into());
                s
            },
            "restart[0].ready",
            "no check named `web` (known: api)",
        ),
        (
            {
                let mut s = ok.clone();
                s.timeout_secs = 0.0;
                s
            },
            "restart[0].timeout_secs",
            "more than 0",
        ),
        (
            {
                let mut s = ok.clone();
                s.ready_timeout_secs = f64::NAN;
                s
            },
            "restart[0].ready_timeout_secs",
            "more than 0",
        ),
    ];
    for (s, key, msg) in cases {
        let (k, m) = restart::validate(&[s], &checks).unwrap_err();
        assert_eq!(k, key);
        assert!(m.contains(msg), "{m}");
    }
    let (k, m) = restart::validate(&[ok.clone(), ok], &checks).unwrap_err();
    assert_eq!(k, "restart[1].name");
    assert!(m.contains("unique"), "{m}");
    let e = toml::from_str::<RestartStep>("name = \"a\"\nargv = [\"x\"]\nshell = true\n").unwrap_err().to_string();
    assert!(e.contains("unknown field `shell`"), "{e}");
}

fn step_toml(text: &str) -> RestartStep {
    toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn a_step_runs_in_its_cwd_with_its_env() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("services/api")).unwrap();
    let server = TestServer::start();
    let v = verifier(&server, "/health", dir.path());
    // Default: the work tree, and the tool's whole environment (HOME is inherited), plus `env`.
    let inherit = step_toml(
        "name = \"a\"\nargv = [\"sh\", \"-c\", \"pwd > where.txt; env > env.txt\"]\nenv = { PORT = \"8001\" }\n",
    );
    let (results, _) = run(&[inherit], &v, dir.path());
    assert!(results[0].ok, "{results:?}");
    let top = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(std::fs::read_to_string(dir.path().join("where.txt")).unwrap().trim(), top.to_str().unwrap());
    let env = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
    assert!(env.lines().any(|l| l == "PORT=8001"), "{env}");
    assert!(env.lines().any(|l| l.starts_with("HOME=")), "{env}");

    // `cwd` is relative to the work tree; `env_from` passes only the variables it names.
    let only = step_toml(
        "name = \"b\"\nargv = [\"sh\", \"-c\", \"pwd > where.txt; env > env.txt\"]\ncwd = \"services/api\"\n\
         env = { PORT = \"8002\" }\nenv_from = [\"PATH\"]\n",
    );
    let (results, _) = run(&[only], &v, dir.path());
    assert!(results[0].ok, "{results:?}");
    let api = dir.path().join("services/api");
    assert_eq!(
        std::fs::read_to_string(api.join("where.txt")).unwrap().trim(),
        top.join("services/api").to_str().unwrap()
    );
    let env = std::fs::read_to_string(api.join("env.txt")).unwrap();
    assert!(env.lines().any(|l| l == "PORT=8002"), "{env}");
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");
    assert!(!env.lines().any(|l| l.starts_with("HOME=") || l.starts_with("CARGO")), "{env}");

    // An unset variable in `env_from`, or a missing folder, fails the step before it runs.
    let unset = step_toml(
        "name = \"c\"\nargv = [\"sh\", \"-c\", \"touch ran\"]\nenv_from = [\"FORGE_TEST_SURELY_UNSET_VARIABLE\"]\n",
    );
    let (results, _) = run(&[unset], &v, dir.path());
    assert!(!results[0].ok, "{results:?}");
    assert_eq!(
        results[0].detail,
        "`env_from` names `FORGE_TEST_SURELY_UNSET_VARIABLE`, which is not set in forge-rollback's environment"
    );
    let gone = step_toml("name = \"d\"\nargv = [\"sh\", \"-c\", \"touch ran\"]\ncwd = \"services/web\"\n");
    let (results, _) = run(&[gone], &v, dir.path());
    assert_eq!(results[0].detail, "`cwd` `services/web` is not a folder in the work tree");
    assert!(!dir.path().join("ran").exists());

    // Bad keys are refused at load.
    let checks: [&str; 0] = [];
    for (text, key) in [
        ("cwd = \"/srv/api\"", "restart[0].cwd"),
        ("cwd = \"../api\"", "restart[0].cwd"),
        ("env = { \"A=B\" = \"1\" }", "restart[0].env.A=B"),
        ("env_from = [\"\"]", "restart[0].env_from"),
    ] {
        let s = step_toml(&format!("name = \"e\"\nargv = [\"true\"]\n{text}\n"));
        assert_eq!(restart::validate(&[s], checks).unwrap_err().0, key, "{text}");
    }
}
