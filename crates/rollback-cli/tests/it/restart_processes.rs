//! `[[restart]]` programs as processes, end to end with the binary: what a restart script
//! leaves running keeps working, nothing it or a readiness check runs outlives its run, a
//! setting it lacks is refused before anything changes, and what it prints is scrubbed of the
//! `.env` values it may quote.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use rollback_testkit::{Reaper, TestRepo};

use crate::common::{Background, Out, fr, messy_repo, picture, script, state_dir, toml_str, wait_until};

/// Whether process `pid` is running (not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().is_some_and(|rest| !rest.trim_start().starts_with('Z')))
}

/// The pid written to `path`, once it is there.
fn read_pid(path: &Path) -> u32 {
    let mut pid = 0;
    wait_until(&format!("a pid in {}", path.display()), Duration::from_secs(20), || {
        pid = std::fs::read_to_string(path).ok().and_then(|t| t.trim().parse().ok()).unwrap_or(0);
        pid != 0
    });
    pid
}

/// The configuration, kept outside the work tree (in `tools`).
fn write_cfg(tools: &Path, text: &str) {
    std::fs::write(tools.join("rollback.toml"), text).unwrap();
}

/// The binary with the configuration of `tools` and the variables `env` added.
fn frc(repo: &TestRepo, tools: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let cfg = tools.join("rollback.toml").display().to_string();
    let mut all = vec!["--config", cfg.as_str()];
    all.extend_from_slice(args);
    crate::common::fr_env(repo, &all, env)
}

fn run_dirs(repo: &TestRepo) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(state_dir(repo).join("runs"))
        .map_or_else(|_| Vec::new(), |d| d.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
}

#[test]
fn a_server_a_restart_script_leaves_running_can_still_write_its_logs_after_the_run() {
    let (repo, _) = messy_repo();
    let tools = tempfile::tempdir().unwrap();
    let (go, result, pidfile) = (tools.path().join("go"), tools.path().join("result"), tools.path().join("worker.pid"));
    // The "server": it ignores SIGPIPE (a killed one would say nothing), waits until the run
    // is over, then logs to the stdout and stderr it inherited from the restart program.
    let worker = script(
        tools.path(),
        "worker.sh",
        &format!(
            "trap '' PIPE\nwhile [ ! -f '{go}' ]; do sleep 0.05; done\n\
             if echo 'worker: GET / 200' >&2 && echo 'worker: served'; then echo ok > '{result}'; else echo broken > '{result}'; fi\n",
            go = go.display(),
            result = result.display()
        ),
    );
    let start = format!("'{worker}' & echo $! > '{}'", pidfile.display());
    write_cfg(
        tools.path(),
        &format!("[[restart]]\nname = \"web/api\"\nargv = [\"sh\", \"-c\", {}]\ntimeout_secs = 30\n", toml_str(&start)),
    );
    let out = frc(&repo, tools.path(), &["run", "--fast", "--yes", "--json", "--target", "v2"], &[]);
    let _reaper = Reaper { children: vec![], pids: vec![read_pid(&pidfile)] };
    out.ok();
    std::fs::write(&go, "").unwrap();
    wait_until("the worker's log attempt", Duration::from_secs(20), || result.exists());
    assert_eq!(std::fs::read_to_string(&result).unwrap().trim(), "ok", "the server could not write its log");
    // Its output is in the run's folder, private, under the step's number and name.
    let run_id = out.json()["run_id"].as_str().unwrap().to_owned();
    let dir = state_dir(&repo).join("runs").join(&run_id);
    for (file, line) in
        [("restart-1-web_api.stderr", "worker: GET / 200"), ("restart-1-web_api.stdout", "worker: served")]
    {
        let path = dir.join(file);
        wait_until(&format!("`{line}` in {file}"), Duration::from_secs(20), || {
            std::fs::read_to_string(&path).is_ok_and(|t| t.contains(line))
        });
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600, "{file}");
    }
}

#[test]
fn a_readiness_check_cut_off_by_ready_timeout_is_killed() {
    let (repo, _) = messy_repo();
    let tools = tempfile::tempdir().unwrap();
    let pidfile = tools.path().join("check.pid");
    let check = format!("echo $$ > '{}'; exec sleep 120", pidfile.display());
    write_cfg(
        tools.path(),
        &format!(
            "[[checks]]\nname = \"slow\"\nkind = \"command\"\nargv = [\"sh\", \"-c\", {}]\ntimeout_secs = 100\n\n\
             [[restart]]\nname = \"svc\"\nargv = [\"true\"]\nready = \"slow\"\nready_timeout_secs = 1\n",
            toml_str(&check)
        ),
    );
    let out = frc(&repo, tools.path(), &["run", "--fast", "--yes", "--json", "--target", "v2"], &[]);
    let pid = read_pid(&pidfile);
    let _reaper = Reaper { children: vec![], pids: vec![pid] };
    out.code(1);
    let error = out.json()["error"].as_str().unwrap().to_owned();
    assert!(error.contains("but check `slow` did not pass within 1.0 s"), "{error}");
    wait_until("the cut-off check's program to be killed", Duration::from_secs(20), || !alive(pid));
}

#[test]
fn a_restart_program_dies_with_a_killed_forge_rollback() {
    let (repo, _) = messy_repo();
    let tools = tempfile::tempdir().unwrap();
    let pidfile = tools.path().join("restart.pid");
    let hang = format!("echo $$ > '{}'; exec sleep 120", pidfile.display());
    write_cfg(
        tools.path(),
        &format!("[[restart]]\nname = \"svc\"\nargv = [\"sh\", \"-c\", {}]\ntimeout_secs = 100\n", toml_str(&hang)),
    );
    let cfg = tools.path().join("rollback.toml").display().to_string();
    let run = Background::spawn(repo.path(), &["--config", &cfg, "run", "--fast", "--yes", "--target", "v2"], &[]);
    let pid = read_pid(&pidfile);
    let _reaper = Reaper { children: vec![], pids: vec![pid] };
    run.kill_9();
    run.wait(Duration::from_secs(20));
    // Nothing is left to enforce its timeout, and a `resume` would start a second copy.
    wait_until("the restart program to die with forge-rollback", Duration::from_secs(20), || !alive(pid));
}

#[test]
fn an_unset_env_from_variable_or_a_missing_cwd_is_refused_before_anything_changes() {
    const VAR: &str = "FR_TEST_RESTART_DEPLOY_TOKEN";
    let (repo, ids) = messy_repo();
    let tools = tempfile::tempdir().unwrap();
    let before = picture(&repo);
    for (setting, named) in
        [(format!("env_from = [\"PATH\", \"{VAR}\"]"), VAR), ("cwd = \"services/api\"".to_owned(), "services/api")]
    {
        write_cfg(tools.path(), &format!("[[restart]]\nname = \"svc\"\nargv = [\"true\"]\n{setting}\n"));
        let out = frc(&repo, tools.path(), &["run", "--fast", "--yes", "--target", "v2"], &[]);
        out.code(2);
        assert!(out.stderr.contains(&format!("`{named}`")), "{setting}: {}", out.stderr);
        assert!(out.stderr.contains("hint:"), "{}", out.stderr);
        assert_eq!(repo.head(), ids[2], "{setting}: HEAD moved");
        assert!(run_dirs(&repo).is_empty(), "{setting}: a run was started");
        // A dry run says the run would refuse.
        let dry = frc(&repo, tools.path(), &["run", "--dry-run", "--fast", "--target", "v2"], &[]);
        dry.ok();
        let said = format!("{}{}", dry.stdout, dry.stderr);
        assert!(said.contains("a run would refuse: `[[restart]]` `svc`") && said.contains(named), "{setting}: {said}");
    }
    assert_eq!(picture(&repo), before);
}

#[test]
fn a_cwd_the_target_brings_is_no_reason_to_refuse() {
    let r = TestRepo::new();
    let tools = tempfile::tempdir().unwrap();
    r.write("app/main.py", "V = 1\n").write("services/api/run.sh", "echo up\n");
    r.commit_all("release v1");
    r.git(&["tag", "v1"]);
    r.git(&["rm", "-q", "-r", "services"]);
    r.write("app/main.py", "V = 2\n");
    r.commit_all("release v2: services moved out");
    let marker = tools.path().join("restarted-in");
    let body = format!("pwd > '{}'", marker.display());
    write_cfg(
        tools.path(),
        &format!("[[restart]]\nname = \"svc\"\nargv = [\"sh\", \"-c\", {}]\ncwd = \"services/api\"\n", toml_str(&body)),
    );
    frc(&r, tools.path(), &["run", "--fast", "--yes", "--target", "v1"], &[]).ok();
    let dir = std::fs::read_to_string(&marker).unwrap();
    assert!(dir.trim().ends_with("services/api"), "{dir}");
}

#[test]
fn a_restart_that_fails_for_an_env_from_variable_unset_at_resume_names_it() {
    const VAR: &str = "FR_TEST_RESTART_API_KEY";
    let (repo, _) = messy_repo();
    let tools = tempfile::tempdir().unwrap();
    let broken = tools.path().join("broken");
    std::fs::write(&broken, "").unwrap();
    let body = format!("if [ -f '{}' ]; then echo 'not up yet' >&2; exit 3; fi", broken.display());
    write_cfg(
        tools.path(),
        &format!(
            "[[restart]]\nname = \"svc\"\nargv = [\"sh\", \"-c\", {}]\nenv_from = [\"PATH\", \"{VAR}\"]\n",
            toml_str(&body)
        ),
    );
    let out = frc(&repo, tools.path(), &["run", "--fast", "--yes", "--json", "--target", "v2"], &[(VAR, "k-1")]);
    out.code(1);
    assert!(out.stderr.contains("hint: fix the service"), "{}", out.stderr);
    let run_id = out.json()["run_id"].as_str().unwrap().to_owned();
    std::fs::remove_file(&broken).unwrap();
    // Resumed where the variable is not set: the hint says to set it, not to fix the service.
    let out = frc(&repo, tools.path(), &["resume", &run_id, "--yes"], &[]);
    out.code(1);
    assert!(out.stderr.contains(&format!("`env_from` names `{VAR}`, which is not set")), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("hint: set `{VAR}` in the environment")), "{}", out.stderr);
    frc(&repo, tools.path(), &["resume", &run_id, "--yes"], &[(VAR, "k-1")]).ok();
}

#[test]
fn env_values_a_failing_restart_quotes_appear_in_no_output() {
    const RECORDED: &str = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
    const CURRENT: &str = "sk_live_NEWROTATEDxxxxxxxxxxxxxx";
    let r = TestRepo::new();
    let tools = tempfile::tempdir().unwrap();
    r.write(".gitignore", ".env\n").write("app/main.py", "V = 1\n");
    r.commit_all("release v1");
    r.git(&["tag", "v1"]);
    r.write(".env", format!("STRIPE_KEY={RECORDED}\nDEBUG=1\nPORT=8000\nDB_HOST=localhost\nAPP_ENV=production\n"));
    fr(&r, &["known-good", "mark", "HEAD"]).ok();
    // The app quotes the key it read, and the one it had before (kept outside the tree, as an
    // app holds it in memory; not in its argv, which the plan shows).
    let before = tools.path().join("before");
    std::fs::write(&before, format!("was {CURRENT}\n")).unwrap();
    let body = format!(
        ". ./.env; cat '{b}'; echo \"stripe.AuthenticationError: invalid key $STRIPE_KEY ($(cat '{b}'))\" >&2; \
         echo \"address already in use: ('0.0.0.0', $PORT) on $DB_HOST ($APP_ENV)\" >&2; exit 1",
        b = before.display()
    );
    write_cfg(tools.path(), &format!("[[restart]]\nname = \"api\"\nargv = [\"sh\", \"-c\", {}]\n", toml_str(&body)));
    r.write("app/main.py", "V = 2\n");
    r.commit_all("release v2");
    r.write(".env", format!("STRIPE_KEY={CURRENT}\nPORT=8000\n"));
    let out = frc(&r, tools.path(), &["run", "--full", "--yes", "--target", "v1"], &[]);
    out.code(1);
    assert!(out.stderr.contains("stripe.AuthenticationError: invalid key ***"), "{}", out.stderr);
    // The values that say what failed, which name no secret, are left as they are.
    assert!(
        out.stderr.contains("address already in use: ('0.0.0.0', 8000) on localhost (production)"),
        "{}",
        out.stderr
    );
    let mut places = vec![("stdout".to_owned(), out.stdout.clone()), ("stderr".to_owned(), out.stderr.clone())];
    for dir in run_dirs(&r) {
        for file in std::fs::read_dir(&dir).unwrap().flatten() {
            let text = String::from_utf8_lossy(&std::fs::read(file.path()).unwrap()).into_owned();
            places.push((file.path().display().to_string(), text));
        }
    }
    assert!(places.iter().any(|(p, _)| p.ends_with("restart-1-api.stderr")), "{places:?}");
    for (place, text) in &places {
        assert!(!text.contains("sk_live_"), "a `.env` value in {place}: {text}");
    }
}
