//! `[deploy]` with the `push` and `revert-commit` strategies against real bare remotes: what is
//! refused before anything changes (the hook's variable, the remote, the branch name, an undo
//! after someone deployed), what a refusing remote says, and a push that outlives a killed run.

use std::path::PathBuf;
use std::time::Duration;

use rollback_testkit::TestRepo;

use crate::common::{Background, Out, bare_rev, messy_repo, picture, wait_until};

/// A messy repository (HEAD at v3) pushed to a bare `origin`, and a configuration outside the
/// work tree.
struct Setup {
    repo: TestRepo,
    ids: [String; 3],
    remote: tempfile::TempDir,
    dir: tempfile::TempDir,
    cfg: String,
}

impl Setup {
    fn new(deploy: &str) -> Self {
        let (repo, ids) = messy_repo();
        let remote = crate::common::bare_remote(&repo);
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("rollback.toml").display().to_string();
        let s = Self { repo, ids, remote, dir, cfg };
        s.config(deploy);
        s
    }

    fn config(&self, deploy: &str) {
        std::fs::write(&self.cfg, format!("[deploy]\n{deploy}\n")).unwrap();
    }

    fn fr(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut all = vec!["--config", self.cfg.as_str()];
        all.extend_from_slice(args);
        crate::common::fr_env(&self.repo, &all, env)
    }

    fn background(&self, args: &[&str], env: &[(&str, &str)]) -> Background {
        let mut all = vec!["--config", self.cfg.as_str()];
        all.extend_from_slice(args);
        Background::spawn(self.repo.path(), &all, env)
    }

    fn main(&self) -> String {
        bare_rev(self.remote.path(), "refs/heads/main")
    }

    /// The remote's `pre-receive` hook (a shell script).
    fn pre_receive(&self, body: &str) {
        let hook = self.remote.path().join("hooks/pre-receive");
        std::fs::write(&hook, format!("#!/bin/sh\n{body}")).unwrap();
        let mut perms = std::fs::metadata(&hook).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&hook, perms).unwrap();
    }

    /// Someone else deploys a hotfix on top of what the remote runs now; its id.
    fn someone_pushes(&self) -> String {
        let now = self.main();
        let hotfix = self.repo.git(&[
            "commit-tree",
            &format!("{now}^{{tree}}"),
            "-p",
            &now,
            "-m",
            "hotfix pushed by someone else",
        ]);
        self.repo.git(&["push", "-q", "origin", &format!("{hotfix}:refs/heads/main")]);
        hotfix
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Creates the file `release` when dropped: a remote hook waiting for it ends even when an
/// assertion fails first.
struct Release(PathBuf);

impl Drop for Release {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "");
    }
}

fn run_id(out: &Out) -> String {
    out.json()["run_id"].as_str().unwrap_or_else(|| panic!("no run id\n{}\n{}", out.stdout, out.stderr)).to_owned()
}

#[test]
fn an_undo_waits_for_a_push_that_outlived_its_killed_run_and_refuses_while_it_runs() {
    let s = Setup::new("strategy = \"push\"");
    let (pushing, release) = (s.file("pushing"), s.file("release"));
    let _release_on_failure = Release(release.clone());
    // The remote takes the push, then holds it in its hook until the test lets it go (at most
    // ten minutes), as a slow git host does.
    s.pre_receive(&format!(
        "touch '{}'\ni=0\nwhile [ ! -e '{}' ] && [ $i -lt 6000 ]; do sleep 0.1; i=$((i+1)); done\nexit 0\n",
        pushing.display(),
        release.display()
    ));
    let before = picture(&s.repo);
    let run = s.background(&["run", "--fast", "--yes", "--json", "--target", "v2"], &[]);
    wait_until("the push to reach the remote's hook", Duration::from_secs(120), || pushing.exists());
    // The operator kills the run that seems stuck: the remote's side of the push goes on.
    run.kill_9();
    let killed = run.wait(Duration::from_secs(60));
    assert_eq!(killed.code, None, "killed by the signal");
    let runs = s.fr(&["runs", "list", "--json"], &[]);
    let id = runs.json()[0]["run_id"].as_str().unwrap().to_owned();
    assert_eq!(s.main(), s.ids[2], "the push has not landed yet");

    // While that push may still land, the remote's reading means nothing: the undo waits, then
    // refuses like a git holding the repository (exit 3), changing nothing.
    let rolled_back = picture(&s.repo);
    let out = s.fr(&["undo", &id, "--yes", "--json"], &[]);
    out.code(3);
    assert!(
        out.stderr.contains(&format!("the `git push` of run {id}")) && out.stderr.contains("is still running"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("kill -- -"), "the hint names its process group: {}", out.stderr);
    assert_eq!(picture(&s.repo), rolled_back, "the undo changed nothing");
    let out = s.fr(&["resume", &id, "--json"], &[]);
    out.code(3);

    // The push lands once the remote lets it; the undo then finds the rollback in production
    // and pushes the broken release's commit back, as after any push of the run.
    std::fs::write(&release, "").unwrap();
    let out = s.fr(&["undo", &id, "--yes", "--json"], &[]);
    out.ok();
    assert_eq!(picture(&s.repo), before);
    assert_eq!(s.main(), s.ids[2], "production is back on the release the run rolled back from");
    assert!(!out.stderr.contains("did not change"), "{}", out.stderr);
}

#[test]
fn a_hook_variable_that_is_not_set_is_refused_before_anything_changes() {
    let s = Setup::new("strategy = \"push\"\nhook_url_env = \"FR_TEST_DEPLOY_HOOK_UNSET\"");
    let before = picture(&s.repo);
    for (args, value) in [
        (&["plan", "--fast", "--target", "v2"][..], None),
        (&["run", "--fast", "--dry-run", "--target", "v2"][..], None),
        (&["rehearse", "--fast", "--target", "v2"][..], None),
        (&["run", "--fast", "--yes", "--target", "v2"][..], None),
        (&["run", "--fast", "--yes", "--target", "v2"][..], Some("")),
        (&["run", "--fast", "--yes", "--target", "v2"][..], Some("ftp://deploy.example.com/hook")),
    ] {
        let env: Vec<(&str, &str)> = value.map(|v| ("FR_TEST_DEPLOY_HOOK_UNSET", v)).into_iter().collect();
        let out = s.fr(args, &env);
        out.code(2);
        let problem = match value {
            None => "is not set",
            Some("") => "is empty",
            Some(_) => "holds no usable URL",
        };
        assert!(
            out.stderr.contains("deploy.hook_url_env")
                && out.stderr.contains(&format!("`FR_TEST_DEPLOY_HOOK_UNSET` {problem}")),
            "{args:?}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("ftp://"), "the URL is a secret: {}", out.stderr);
        assert_eq!(picture(&s.repo), before, "{args:?}: nothing changed");
        assert_eq!(s.main(), s.ids[2], "{args:?}: nothing pushed");
    }
}

#[test]
fn a_remote_refusing_force_pushes_is_not_someone_deploying_and_revert_commit_then_goes_through() {
    let s = Setup::new("strategy = \"push\"");
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(s.remote.path())
        .args(["config", "receive.denyNonFastForwards", "true"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = s.fr(&["run", "--fast", "--yes", "--json", "--target", "v2"], &[]);
    out.code(1);
    let id = run_id(&out);
    let error = out.json()["error"].as_str().unwrap().to_owned();
    assert_eq!(s.main(), s.ids[2], "nobody pushed: the remote is where production was");
    assert!(error.contains("refused the push to `main`: [remote rejected] (non-fast-forward)"), "{error}");
    assert!(error.contains("denying non-fast-forward"), "what the remote said: {error}");
    assert!(!error.contains("someone") && !out.stderr.contains("someone deployed"), "{error}\n{}", out.stderr);
    assert!(out.stderr.contains("strategy = \"revert-commit\""), "{}", out.stderr);
    // As the hint says: a new commit on top goes through, without force.
    s.config("strategy = \"revert-commit\"");
    s.fr(&["resume", &id, "--json"], &[]).ok();
    let tip = s.main();
    assert_eq!(bare_rev(s.remote.path(), &format!("{tip}^")), s.ids[2]);
    assert_eq!(bare_rev(s.remote.path(), &format!("{tip}^{{tree}}")), s.repo.git(&["rev-parse", "v2^{tree}"]));
}

#[test]
fn the_remotes_reason_for_refusing_is_in_the_error() {
    for strategy in ["push", "revert-commit"] {
        let s = Setup::new(&format!("strategy = \"{strategy}\""));
        s.pre_receive(
            "echo 'POLICY-42: main is protected, deploy via the release train' >&2\necho 'see https://ops:s3cr3t@wiki.example.com/p' >&2\nexit 1\n",
        );
        let out = s.fr(&["run", "--fast", "--yes", "--json", "--target", "v2"], &[]);
        out.code(1);
        let error = out.json()["error"].as_str().unwrap().to_owned();
        assert!(error.contains("[remote rejected] (pre-receive hook declined)"), "{strategy}: {error}");
        assert!(
            error.contains("it said: POLICY-42: main is protected, deploy via the release train"),
            "{strategy}: {error}"
        );
        assert!(!error.contains("s3cr3t"), "{strategy}: credentials in a URL are removed: {error}");
        let report = s.fr(&["report", &run_id(&out)], &[]);
        assert!(report.ok().stdout.contains("POLICY-42"), "{strategy}: {}", report.stdout);
        assert_eq!(s.main(), s.ids[2]);
    }
}

#[test]
fn an_undo_after_someone_deployed_over_the_rollback_is_refused_before_anything_changes() {
    for strategy in ["push", "revert-commit"] {
        let s = Setup::new(&format!("strategy = \"{strategy}\""));
        let out = s.fr(&["run", "--fast", "--yes", "--json", "--target", "v2"], &[]);
        out.ok();
        let id = run_id(&out);
        let hotfix = s.someone_pushes();
        let rolled_back = picture(&s.repo);
        let out = s.fr(&["undo", &id, "--yes", "--json"], &[]);
        out.code(4);
        assert!(
            out.stderr.contains(&format!("`origin/main` is at {}", &hotfix[..12]))
                && out.stderr.contains("someone deployed since")
                && out.stderr.contains("nothing was changed"),
            "{strategy}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("the local rollback stands"), "{strategy}: {}", out.stderr);
        assert_eq!(picture(&s.repo), rolled_back, "{strategy}: the work tree was left rolled back");
        assert_eq!(s.main(), hotfix, "{strategy}: their deploy is left alone");
    }
}

#[test]
fn an_undo_whose_push_is_refused_after_its_reset_does_not_say_the_rollback_stands() {
    // Someone deploys between the undo's checks and its deploy step: the push is refused then,
    // and the hint speaks of the undo.
    let s = Setup::new("strategy = \"push\"");
    let out = s.fr(&["run", "--fast", "--yes", "--json", "--target", "v2"], &[]);
    out.ok();
    let id = run_id(&out);
    let release = s.file("release");
    let release_str = release.display().to_string();
    let undo = s.background(
        &["undo", &id, "--yes", "--json"],
        &[
            ("FORGE_ROLLBACK_FAILPOINT", "before:deploy"),
            ("FORGE_ROLLBACK_FAILPOINT_ACTION", "pause"),
            ("FORGE_ROLLBACK_FAILPOINT_RELEASE", &release_str),
        ],
    );
    let reached = PathBuf::from(format!("{release_str}.reached"));
    wait_until("the undo's deploy step", Duration::from_secs(120), || reached.exists());
    let hotfix = s.someone_pushes();
    std::fs::write(&release, "").unwrap();
    let out = undo.wait(Duration::from_secs(120));
    out.code(1);
    assert!(out.stderr.contains("someone deployed after the run being undone"), "{}", out.stderr);
    assert!(!out.stderr.contains("the local rollback stands"), "{}", out.stderr);
    assert_eq!(s.main(), hotfix);
}

#[test]
fn a_missing_remote_is_refused_before_anything_changes() {
    let s = Setup::new("strategy = \"push\"\nremote = \"upstream\"");
    let before = picture(&s.repo);
    for args in [
        &["plan", "--fast", "--target", "v2"][..],
        &["rehearse", "--fast", "--target", "v2"][..],
        &["run", "--fast", "--yes", "--target", "v2"][..],
    ] {
        let out = s.fr(args, &[]);
        out.code(2);
        assert!(
            out.stderr.contains("deploy.remote: there is no remote `upstream` in this repository"),
            "{args:?}: {}",
            out.stderr
        );
        assert_eq!(picture(&s.repo), before);
    }
}

#[test]
fn a_branch_name_git_refuses_is_refused_before_anything_changes() {
    let s = Setup::new("strategy = \"push\"");
    let before = picture(&s.repo);
    for branch in ["a@{b", "a//b", ".hidden", "@"] {
        s.config(&format!("strategy = \"push\"\nbranch = \"{branch}\""));
        let out = s.fr(&["run", "--fast", "--yes", "--target", "v2"], &[]);
        out.code(2);
        assert!(out.stderr.contains("deploy.branch"), "{branch}: {}", out.stderr);
        assert_eq!(picture(&s.repo), before, "{branch}");
    }
}

#[test]
fn a_remote_that_leads_nowhere_fails_with_gits_own_exit_status() {
    let s = Setup::new("strategy = \"push\"");
    s.repo.git(&["remote", "add", "gone", &s.dir.path().join("no-such-repo.git").display().to_string()]);
    s.config("strategy = \"push\"\nremote = \"gone\"");
    let out = s.fr(&["run", "--fast", "--yes", "--json", "--target", "v2"], &[]);
    out.code(1);
    let error = out.json()["error"].as_str().unwrap().to_owned();
    assert!(error.contains("failed (exit code 128)"), "{error}");
    assert_eq!(s.main(), s.ids[2]);
}

#[test]
fn deploy_config_errors_name_the_key_as_written() {
    let s = Setup::new("hook_timeout_secs = 0");
    let out = s.fr(&["plan", "--fast", "--target", "v2"], &[]);
    out.code(2);
    assert!(out.stderr.contains("deploy.hook_timeout_secs: must be more than 0"), "{}", out.stderr);
    assert!(!out.stderr.contains("deploy.deploy."), "{}", out.stderr);
    s.config("hook_url_env = \"X\"\nhook_expect_status = []");
    let out = s.fr(&["plan", "--fast", "--target", "v2"], &[]);
    out.code(2);
    assert!(out.stderr.contains("`hook_expect_status` is an empty list"), "{}", out.stderr);
}

/// `git show <rev>` in a bare repository; `None` when it has no such object.
fn bare_show(remote: &std::path::Path, rev: &str) -> Option<String> {
    let out = rollback_testkit::clean_git_env(&mut std::process::Command::new("git"))
        .arg("--git-dir")
        .arg(remote)
        .args(["show", rev])
        .output()
        .unwrap();
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn a_revert_commit_keeps_the_registry_and_config_of_production_so_the_server_gate_still_refuses_bad_releases() {
    const REGISTRY: &str = "rollback/config/known-good-commits.json";
    const CONFIG: &str = "rollback/config/rollback.toml";
    let r = TestRepo::new();
    // The target: a release with the configuration of its day, before any registry.
    r.write("app.py", "v1\n").write(CONFIG, "# as of v1\n[deploy]\nstrategy = \"revert-commit\"\n");
    let target = r.commit_all("v1");
    // Release X, marked known bad (committed), then a broken release on top.
    r.write("app.py", "broken\n");
    let bad = r.commit_all("X");
    crate::common::fr(&r, &["known-good", "bad", &bad, "--note", "broke login"]).ok();
    r.write(CONFIG, "# changed since v1\n[deploy]\nstrategy = \"revert-commit\"\n");
    r.commit_all("registry: X bad; config changed");
    r.write("app.py", "broken again\n");
    let from = r.commit_all("release 3 (broken)");
    let remote = crate::common::bare_remote(&r);
    r.git(&["config", "user.name", "Operator"]);
    r.git(&["config", "user.email", "operator@example.com"]);
    let main = || bare_rev(remote.path(), "refs/heads/main");
    // `forge-rollback -C <bare> gate <commit>`, as the server's pre-receive hook runs it.
    let gate = |commit: &str| crate::common::run_in(remote.path(), &["gate", commit], &[]);
    gate(&bad).code(4);

    // The plan says which files the pushed commit keeps.
    let plan = crate::common::fr(&r, &["plan", "--fast", "--target", &target]);
    plan.ok();
    assert!(
        plan.stdout.contains(&format!("keeps `{REGISTRY}`, `{CONFIG}` as production's commit has them")),
        "{}",
        plan.stdout
    );

    assert!(!plan.stdout.contains("push_resets_tool_files"), "{}", plan.stdout);
    // With `push` (the target itself, force-pushed) they would go back: the plan warns.
    let push_cfg = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(push_cfg.path(), "[deploy]\nstrategy = \"push\"\n").unwrap();
    let cfg = push_cfg.path().display().to_string();
    let plan = crate::common::fr(&r, &["--config", &cfg, "plan", "--fast", "--target", &target]);
    plan.ok();
    assert!(
        plan.stdout.contains(&format!(
            "risk push_resets_tool_files: deploy: `push` puts {} itself on `origin/main`, and with it that commit's version of `{REGISTRY}` (older, or none):",
            &target[..7]
        )),
        "{}",
        plan.stdout
    );

    let out = crate::common::fr(&r, &["run", "--fast", "--yes", "--json", "--target", &target]);
    out.ok();
    let id = run_id(&out);
    let pushed = main();
    assert_eq!(bare_rev(remote.path(), &format!("{pushed}^")), from, "on top of production: history kept");
    // The code is the target's; the registry and the configuration are production's.
    assert_eq!(bare_show(remote.path(), &format!("{pushed}:app.py")).unwrap(), "v1\n");
    for path in [REGISTRY, CONFIG] {
        assert_eq!(
            bare_show(remote.path(), &format!("{pushed}:{path}")),
            bare_show(remote.path(), &format!("{from}:{path}")),
            "{path}"
        );
    }
    let deploy = out.json()["steps"].as_array().unwrap().iter().find(|s| s["step"] == "deploy").cloned().unwrap();
    assert_eq!(deploy["detail"]["kept"], serde_json::json!([REGISTRY, CONFIG]), "{deploy}");
    // The server's gate reads the registry of its default branch: X is still refused.
    let refused = gate(&bad);
    refused.code(4);
    assert!(refused.stderr.contains("is marked known bad in the registry (broke login)"), "{}", refused.stderr);

    // The undo puts production's own commit back, tree and all, on top of the rollback commit.
    crate::common::fr(&r, &["undo", &id, "--yes"]).ok();
    let again = main();
    assert_eq!(bare_rev(remote.path(), &format!("{again}^")), pushed);
    assert_eq!(
        bare_rev(remote.path(), &format!("{again}^{{tree}}")),
        r.git(&["rev-parse", &format!("{from}^{{tree}}")])
    );
    assert_eq!(r.head(), from);
    gate(&bad).code(4);
}
