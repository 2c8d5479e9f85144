//! `[deploy] strategy = "kubernetes"` through the binary, against `FakeKubernetes` (a local
//! server speaking the `apps/v1` API, with a controller that rolls templates out): the plan's
//! revision ids, a kill at each point of the promote step followed by resume or undo, a resume
//! whose rollout had not finished, the refusal when no revision of the target exists, a paused
//! Deployment (for an undo too, and a pruned ReplicaSet), unusable credentials (exit 2), the
//! freeze messages (none to turn off; Argo CD named with how to suspend it, by its marks; its
//! tracking label in `platforms_kubernetes_argocd`), a planted token,
//! and `--full`'s downgrade Job: its body, a failed one, one read through `503`s, one that
//! cannot be seen to end, one that ends as it is deleted at its deadline, and one a killed run
//! left running, which `undo` waits for. An undo
//! after a `kubectl rollout restart` goes ahead; one after another image was deployed is refused.

use std::path::PathBuf;

use rollback_testkit::TestRepo;
use rollback_testkit::platform::FakeKubernetes;
use tempfile::TempDir;

use crate::common::{Out, fr_env, messy_repo, state_dir, toml_str};

const TOKEN: &str = "k8s-cli-planted-5f4e3d2c1b";

pub(crate) struct Setup {
    pub(crate) r: TestRepo,
    ids: [String; 3],
    pub(crate) f: FakeKubernetes,
    _dir: TempDir,
    pub(crate) config: PathBuf,
    kubeconfig: PathBuf,
}

/// The messy repo at v3; the Deployment has revisions of `built` (indexes into v1..v3), the
/// last one live. Config and kubeconfig live outside the work tree.
pub(crate) fn setup(built: &[usize]) -> Setup {
    let (r, ids) = messy_repo();
    let commits: Vec<&str> = built.iter().map(|&i| ids[i].as_str()).collect();
    let f = FakeKubernetes::deployment(TOKEN, &commits, true);
    let dir = TempDir::new().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: fake\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: ci, namespace: prod}}\nusers:\n- name: ci\n  user:\n    token: {TOKEN}\n",
            f.url()
        ),
    )
    .unwrap();
    let config = dir.path().join("forge-rollback.toml");
    std::fs::write(
        &config,
        format!(
            "[deploy]\nstrategy = \"kubernetes\"\ndeployment = \"api\"\nkubeconfig = {}\nlive_timeout_secs = 3\npoll_secs = 0.05\n",
            toml_str(kubeconfig.to_str().unwrap())
        ),
    )
    .unwrap();
    Setup { r, ids, f, _dir: dir, config, kubeconfig }
}

impl Setup {
    /// Appends `line` (a `key = value` of `[deploy]`, the config's last table) to the config.
    pub(crate) fn add_to_deploy(&self, line: &str) {
        let mut config = std::fs::read_to_string(&self.config).unwrap();
        config.push_str(line);
        config.push('\n');
        std::fs::write(&self.config, config).unwrap();
    }

    pub(crate) fn fr(&self, args: &[&str]) -> Out {
        self.fr_env(args, &[])
    }

    fn fr_env(&self, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut all = vec!["--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        fr_env(&self.r, &all, env)
    }

    fn name_of(&self, i: usize) -> String {
        self.f.revisions()[i].name.clone()
    }
}

#[test]
fn plan_json_carries_the_replicaset_names_and_assess_names_the_revisions() {
    let s = setup(&[0, 1, 2]);
    let j = s.fr(&["plan", "--fast", "--target", "v1", "--json"]).json();
    let promote = j["steps"].as_array().unwrap().iter().find(|st| st["step"] == "promote").expect("a promote step");
    assert_eq!(promote["from"]["id"], s.name_of(2).as_str());
    assert_eq!(promote["to"]["id"], s.name_of(0).as_str());
    assert_eq!(promote["to"]["commit"], s.ids[0].as_str());
    assert!(promote["production"].as_str().unwrap().starts_with("kubernetes deployment prod/api"), "{promote}");
    assert!(promote.get("autodeploy").is_none(), "no switch to turn: {promote}");

    let assess = s.fr(&["assess", "--target", "v1"]);
    assess.ok();
    let line = assess
        .stdout
        .lines()
        .find(|l| l.starts_with("production: kubernetes deployment prod/api"))
        .unwrap_or_else(|| panic!("{}", assess.stdout));
    assert!(line.contains("revision 3 (replicaset") && line.contains("-> revision 1 (replicaset"), "{line}");
    assert!(line.contains("ConfigMaps, Secrets and the database stay as they are"), "{line}");
    assert!(s.f.patches().is_empty(), "planning changes nothing");
}

#[test]
fn a_kill_at_each_point_of_the_promote_step_is_resumed_or_undone() {
    for point in ["before:promote", "after:promote", "end:promote"] {
        for finish in ["resume", "undo"] {
            let s = setup(&[0, 1, 2]);
            let at = format!("{point} {finish}");
            let out = s.fr_env(&["run", "--fast", "--yes", "--target", "v1"], &[("FORGE_ROLLBACK_FAILPOINT", point)]);
            assert_eq!(out.code, None, "{at}: killed\n{}", out.stderr);
            let promoted = usize::from(point != "before:promote");
            assert_eq!(s.f.patches().len(), promoted, "{at}");
            let id = s.fr(&["runs", "list", "--json"]).json()[0]["run_id"].as_str().unwrap().to_owned();
            if finish == "resume" {
                let j = s.fr(&["resume", &id, "--json"]).json();
                assert_eq!(j["status"], "succeeded", "{at}: {j}");
                assert_eq!(s.f.patches().len(), 1, "{at}: patched once");
                assert_eq!(s.f.live_commit().as_deref(), Some(s.ids[0].as_str()), "{at}");
                assert_eq!(s.r.head(), s.ids[0], "{at}");
            } else {
                let j = s.fr(&["undo", &id, "--yes", "--json"]).json();
                assert_eq!(j["status"], "succeeded", "{at}: {j}");
                assert_eq!(s.f.live_commit().as_deref(), Some(s.ids[2].as_str()), "{at}: v3 serves again");
                assert_eq!(s.f.patches().len(), 2 * promoted, "{at}: undo patches back only what was patched");
                assert_eq!(s.f.revisions().len(), 3, "{at}: the ReplicaSets were reused");
                assert_eq!(s.r.head(), s.ids[2], "{at}");
            }
        }
    }
}

#[test]
fn a_target_with_no_revision_is_refused_with_exit_4_and_a_paused_deployment_is_refused() {
    let s = setup(&[1, 2]);
    let head = s.r.head();
    let out = s.fr(&["run", "--fast", "--yes", "--target", "v1"]);
    out.code(4);
    assert!(out.stderr.contains("has no release built from the target"), "{}", out.stderr);
    assert!(out.stderr.contains("`push` or `revert-commit`"), "{}", out.stderr);

    s.f.set_paused(true);
    let out = s.fr(&["run", "--fast", "--yes", "--target", "v2"]);
    out.code(4);
    assert!(out.stderr.contains("deployment api is paused"), "{}", out.stderr);
    assert!(out.stderr.contains("kubectl rollout resume deployment/api -n prod"), "{}", out.stderr);
    assert_eq!(s.r.head(), head, "nothing changed");
    assert!(s.f.patches().is_empty());
}

#[test]
fn freeze_says_nothing_deploys_it_or_names_argo_cd_with_how_to_suspend_it() {
    let s = setup(&[0, 1, 2]);
    let out = s.fr(&["run", "--fast", "--yes", "--target", "v2"]);
    out.ok();
    assert!(
        out.stderr.contains("no automatic deploys found (no Argo CD or Flux marks): nothing to freeze"),
        "{}",
        out.stderr
    );

    let s = setup(&[0, 1, 2]);
    s.f.mark(false, "argocd.argoproj.io/tracking-id", "shop:apps/Deployment:prod/api");
    let plan = s.fr(&["plan", "--fast", "--target", "v1"]);
    plan.ok();
    assert!(
        plan.stdout.contains("risk production_auto_sync: Argo CD manages api (application shop)"),
        "{}",
        plan.stdout
    );
    let assess = s.fr(&["assess", "--target", "v1", "--json"]).json();
    assert!(assess["risks"].as_array().unwrap().iter().any(|r| r["code"] == "production_auto_sync"), "{assess}");
    let out = s.fr(&["run", "--fast", "--yes", "--target", "v1"]);
    out.ok();
    assert!(out.stderr.contains("argocd app set shop --sync-policy none"), "{}", out.stderr);
}

fn files(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
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
    // A refused token: the server's Status is shown, the token is not.
    let text = std::fs::read_to_string(&s.kubeconfig).unwrap();
    std::fs::write(&s.kubeconfig, text.replace(TOKEN, "k8s-wrong-token-0000")).unwrap();
    let bad = s.fr(&["plan", "--fast", "--target", "v1"]);
    bad.code(1);
    assert!(bad.stderr.contains("failed (401): Unauthorized"), "{}", bad.stderr);
    assert!(!bad.stderr.contains("k8s-wrong-token"), "{}", bad.stderr);
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
    assert!(all.contains(&s.name_of(0)), "the run promoted v1's ReplicaSet");
    assert!(!all.contains(TOKEN), "the token leaked");
    let sent = s.f.requests().iter().filter(|q| q.header("authorization") == Some(&format!("Bearer {TOKEN}"))).count();
    assert!(sent > 5, "the token was sent ({sent} requests)");
}

/// An Alembic app over v0..v3 on SQLite at v3, its Deployment with revisions of v1..v3, and a
/// `migrate_command` that the fake runs (as a kubelet would) in the work tree: the live
/// release's image, whose migration files are v3's.
fn full_setup() -> (TestRepo, rollback_testkit::db::MigrationFixture, FakeKubernetes, TempDir, PathBuf) {
    use rollback_testkit::db::{MigrationFixture, MigratorKind, python};
    let r = TestRepo::new();
    let fx = MigrationFixture::new(&r, MigratorKind::Alembic);
    let url = [("DATABASE_URL", "sqlite:///app.db")];
    let up = std::process::Command::new(python())
        .args(["-m", "alembic", "upgrade", "head"])
        .current_dir(r.path())
        .envs(url)
        .output()
        .unwrap();
    assert!(up.status.success(), "{}", String::from_utf8_lossy(&up.stderr));
    let f = FakeKubernetes::deployment(TOKEN, &[&fx.commits[1], &fx.commits[2], &fx.commits[3]], true);
    f.run_jobs_in(r.path(), &url);
    let dir = TempDir::new().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "current-context: f\nclusters:\n- name: f\n  cluster: {{server: '{}'}}\ncontexts:\n- name: f\n  context: {{cluster: f, user: u, namespace: prod}}\nusers:\n- name: u\n  user: {{token: {TOKEN}}}\n",
            f.url()
        ),
    )
    .unwrap();
    let config = dir.path().join("forge-rollback.toml");
    std::fs::write(
        &config,
        format!(
            "[database]\nkind = \"alembic\"\nurl = \"sqlite:///app.db\"\npython = {py}\n\n[deploy]\nstrategy = \"kubernetes\"\ndeployment = \"api\"\ncontainer = \"web\"\nkubeconfig = {}\nmigrate_command = [{py}, \"-m\", \"alembic\", \"downgrade\", \"{{revision}}\"]\nlive_timeout_secs = 30\npoll_secs = 0.05\n",
            toml_str(kubeconfig.to_str().unwrap()),
            py = toml_str(&python()),
        ),
    )
    .unwrap();
    (r, fx, f, dir, config)
}

fn alembic_version(r: &TestRepo) -> String {
    let out = std::process::Command::new(rollback_testkit::db::python())
        .args(["-c", "import sqlite3,sys; print(sqlite3.connect(sys.argv[1]).execute('select version_num from alembic_version').fetchone()[0])"])
        .arg(r.path().join("app.db"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[test]
fn full_runs_the_downgrade_as_a_job_with_the_live_image_before_the_rollout_and_undo_puts_both_back() {
    let (r, fx, f, _dir, config) = full_setup();
    let fr = |args: &[&str]| {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        fr_env(&r, &all, &[])
    };
    let plan = fr(&["plan", "--full", "--target", "v2"]);
    plan.ok();
    assert!(
        plan.stdout.contains("(as a job on the production target, with the live release's image)"),
        "{}",
        plan.stdout
    );
    assert!(f.jobs().is_empty(), "planning runs no job");

    let out = fr(&["run", "--full", "--yes", "--json", "--target", "v2"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["status"], "succeeded", "{j}");
    let steps: Vec<&str> = j["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(&steps[..4], ["snapshot", "db_snapshot", "downgrade", "reset"]);
    assert!(steps.contains(&"promote"));
    assert!(out.stderr.contains("Downgrade job forge-rollback-downgrade-"), "{}", out.stderr);
    assert_eq!(alembic_version(&r), fx.revisions[1]);
    assert_eq!(r.head(), fx.commits[2]);
    assert_eq!(f.live_commit().as_deref(), Some(fx.commits[2].as_str()));

    let jobs = f.jobs();
    assert_eq!(jobs.len(), 1);
    let body = &jobs[0].body;
    let pod = &body["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(pod["containers"].as_array().unwrap().len(), 1);
    assert_eq!(container["name"], "web");
    assert_eq!(container["image"], format!("registry.example/api:{}", &fx.commits[3][..12]), "the live (v3) image");
    let argv: Vec<&str> = container["command"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(&argv[1..], ["-m", "alembic", "downgrade", fx.revisions[1].as_str()]);
    assert_eq!(container["env"][0]["name"], "RELEASE", "the template's env is kept");
    assert_eq!((pod["restartPolicy"].as_str(), body["spec"]["backoffLimit"].as_i64()), (Some("Never"), Some(0)));
    assert!(body["spec"]["template"]["metadata"]["labels"].get("app").is_none(), "no Service selects the job's pod");
    // The Job ran before the rollout's PATCH.
    let reqs = f.requests();
    let post = reqs.iter().position(|q| q.method == "POST").unwrap();
    let patch = reqs.iter().position(|q| q.method == "PATCH").unwrap();
    assert!(post < patch, "the downgrade runs before the rollout");
    assert_eq!(reqs[post].path, "/apis/batch/v1/namespaces/prod/jobs");

    let id = j["run_id"].as_str().unwrap();
    let undo = fr(&["undo", id, "--yes", "--json"]);
    undo.ok();
    assert_eq!(undo.json()["status"], "succeeded");
    assert_eq!(alembic_version(&r), fx.revisions[2]);
    assert_eq!(r.head(), fx.commits[3]);
    assert_eq!(f.live_commit().as_deref(), Some(fx.commits[3].as_str()));
    assert_eq!(f.jobs().len(), 1, "undo restores the database here, from the run's snapshot");
}

#[test]
fn a_failed_downgrade_job_stops_the_run_before_the_code_or_the_rollout_move() {
    let (r, fx, f, _dir, config) = full_setup();
    f.jobs_fail(true);
    let out = fr_env(&r, &["--config", config.to_str().unwrap(), "run", "--full", "--yes", "--target", "v2"], &[]);
    out.code(1);
    assert!(out.stderr.contains("the downgrade job forge-rollback-downgrade-"), "{}", out.stderr);
    assert!(out.stderr.contains("BackoffLimitExceeded"), "{}", out.stderr);
    assert!(out.stderr.contains("kubectl logs job/forge-rollback-downgrade-"), "{}", out.stderr);
    assert_eq!(r.head(), fx.commits[3], "the code was not touched");
    assert_eq!(alembic_version(&r), fx.revisions[2]);
    assert!(f.patches().is_empty(), "no rollout");
}

#[test]
fn a_kill_around_the_downgrade_job_is_resumed_without_a_second_job_or_undone() {
    for (point, finish) in [
        ("inside:downgrade", "resume"),
        ("after:downgrade", "resume"),
        ("end:downgrade", "undo"),
        ("before:promote", "resume"),
    ] {
        let at = format!("{point} {finish}");
        let (r, fx, f, _dir, config) = full_setup();
        let fr = |args: &[&str], env: &[(&str, &str)]| {
            let mut all = vec!["--config", config.to_str().unwrap()];
            all.extend_from_slice(args);
            fr_env(&r, &all, env)
        };
        let out = fr(&["run", "--full", "--yes", "--target", "v2"], &[("FORGE_ROLLBACK_FAILPOINT", point)]);
        assert_eq!(out.code, None, "{at}: killed\n{}", out.stderr);
        let ran = usize::from(point != "inside:downgrade");
        assert_eq!(f.jobs().len(), ran, "{at}");
        let id = fr(&["runs", "list", "--json"], &[]).json()[0]["run_id"].as_str().unwrap().to_owned();
        if finish == "resume" {
            let j = fr(&["resume", &id, "--json"], &[]).json();
            assert_eq!(j["status"], "succeeded", "{at}: {j}");
            assert_eq!(f.jobs().len(), 1, "{at}: one job in all");
            assert_eq!(alembic_version(&r), fx.revisions[1], "{at}");
            assert_eq!(f.live_commit().as_deref(), Some(fx.commits[2].as_str()), "{at}");
            assert_eq!(r.head(), fx.commits[2], "{at}");
        } else {
            let j = fr(&["undo", &id, "--yes", "--json"], &[]).json();
            assert_eq!(j["status"], "succeeded", "{at}: {j}");
            assert_eq!(alembic_version(&r), fx.revisions[2], "{at}");
            assert_eq!(f.live_commit().as_deref(), Some(fx.commits[3].as_str()), "{at}");
            assert!(f.patches().is_empty(), "{at}: the rollout never began");
            assert_eq!(r.head(), fx.commits[3], "{at}");
        }
    }
}

/// The name of run `run`'s first downgrade Job.
fn job_of(run: &str) -> String {
    let clean: String =
        run.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    format!("forge-rollback-downgrade-{}", clean.trim_matches('-'))
}

/// [`full_setup`] with `live_timeout_secs = 2` (the Job's deadline and the waits for it).
fn full_setup_short() -> (TestRepo, rollback_testkit::db::MigrationFixture, FakeKubernetes, TempDir, PathBuf) {
    let (r, fx, f, dir, config) = full_setup();
    let text = std::fs::read_to_string(&config).unwrap().replace("live_timeout_secs = 30", "live_timeout_secs = 2");
    std::fs::write(&config, text).unwrap();
    (r, fx, f, dir, config)
}

#[test]
fn a_503_while_reading_the_downgrade_job_is_looked_past_and_the_job_waited_for() {
    let (r, fx, f, _dir, config) = full_setup();
    // The Job runs for a few reads; two reads in the middle get no answer (the looks for an
    // earlier Job of the run and the create come first).
    f.job_reads(4);
    f.jobs_unavailable_after(3, 2);
    let out =
        fr_env(&r, &["--config", config.to_str().unwrap(), "run", "--full", "--yes", "--json", "--target", "v2"], &[]);
    out.ok();
    assert_eq!(out.json()["status"], "succeeded", "{}", out.stderr);
    assert_eq!(alembic_version(&r), fx.revisions[1]);
    assert_eq!(f.jobs().len(), 1, "one job");
    assert!(!f.jobs()[0].active());
    assert_eq!(f.live_commit().as_deref(), Some(fx.commits[2].as_str()));
}

#[test]
fn a_downgrade_job_that_cannot_be_seen_to_end_is_not_called_harmless_and_the_undo_waits_for_it() {
    let (r, fx, f, _dir, config) = full_setup_short();
    let fr = |args: &[&str]| {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        fr_env(&r, &all, &[])
    };
    // The Job runs on; the API server stops answering about it after it was created.
    f.job_reads(u32::MAX);
    f.jobs_unavailable_after(3, u32::MAX);
    let out = fr(&["run", "--full", "--yes", "--target", "v2"]);
    out.code(1);
    assert!(out.stderr.contains("the downgrade's outcome is not known"), "{}", out.stderr);
    assert!(out.stderr.contains("could not be deleted"), "{}", out.stderr);
    assert!(!out.stderr.contains("the database is as it was"), "{}", out.stderr);
    assert!(!out.stderr.contains("having changed nothing"), "{}", out.stderr);
    assert!(f.patches().is_empty(), "no rollout");
    assert_eq!(r.head(), fx.commits[3], "the code was not touched");
    let id = fr(&["runs", "list", "--json"]).json()[0]["run_id"].as_str().unwrap().to_owned();

    // The API server answers again; the Job still runs: a resume and an undo are refused,
    // nothing changed.
    f.jobs_unavailable_after(0, 0);
    let out = fr(&["resume", &id]);
    out.code(4);
    assert!(out.stderr.contains(&format!("{} is still running", job_of(&id))), "{}", out.stderr);
    let out = fr(&["undo", &id, "--yes"]);
    out.code(4);
    assert!(out.stderr.contains(&format!("{} is still running", job_of(&id))), "{}", out.stderr);
    assert!(out.stderr.contains("nothing was changed"), "{}", out.stderr);
    assert!(f.jobs()[0].active());

    // It ends (and downgrades): the undo waits for it, then puts the database back.
    f.end_jobs();
    let out = fr(&["undo", &id, "--yes", "--json"]);
    out.ok();
    assert_eq!(out.json()["status"], "succeeded", "{}", out.stderr);
    assert!(!f.jobs()[0].active());
    assert_eq!(alembic_version(&r), fx.revisions[2], "the undo restored the database after the job's downgrade");
    assert_eq!(r.head(), fx.commits[3]);
}

#[test]
fn a_downgrade_job_given_up_on_and_seen_gone_is_a_failed_downgrade_and_a_resume_runs_it_again() {
    let (r, fx, f, _dir, config) = full_setup_short();
    let fr = |args: &[&str]| {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        fr_env(&r, &all, &[])
    };
    // The Job runs past its deadline (`live_timeout_secs`): the wait gives up and deletes it;
    // the API server answers throughout, so it is seen gone, its command never having run.
    f.job_reads(u32::MAX);
    let out = fr(&["run", "--full", "--yes", "--target", "v2"]);
    out.code(1);
    let id = fr(&["runs", "list", "--json"]).json()[0]["run_id"].as_str().unwrap().to_owned();
    let job = job_of(&id);
    assert!(
        out.stderr.contains(&format!(
            "the downgrade job {job} did not finish within 2 s: it was deleted, and its pod has stopped"
        )),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("outcome is not known"), "its end is known: {}", out.stderr);
    assert_eq!(f.jobs()[0].deleted.as_deref(), Some("Foreground"), "deleted, its pod with it");
    assert!(!f.jobs()[0].active());
    // A failed downgrade: the database as it was (here restored from the run's snapshot), the
    // code and the rollout not touched.
    assert_eq!(alembic_version(&r), fx.revisions[2]);
    assert_eq!(r.head(), fx.commits[3], "the code was not touched");
    assert!(f.patches().is_empty(), "no rollout");
    assert!(out.stderr.contains("the database was restored from backup"), "{}", out.stderr);
    let shown = fr(&["runs", "show", &id, "--json"]).json();
    assert_eq!(shown["outcome"]["status"], "failed", "{shown}");
    let failed = shown["journal"].as_array().unwrap().iter().find(|rec| rec["record"] == "step_failed").unwrap();
    assert_eq!(failed["detail"]["database_changed"], false, "undo has nothing of this run's to put back: {failed}");

    // Its hint: resume once the cause is fixed (here, a Job that ends in time): the downgrade
    // runs again, as a new Job under the free name, then the rest of the run.
    f.job_reads(1);
    let out = fr(&["resume", &id, "--json"]);
    out.ok();
    assert_eq!(out.json()["status"], "succeeded", "{}", out.stderr);
    assert_eq!(f.jobs().len(), 2);
    assert_eq!(f.jobs()[1].name, job);
    assert_eq!(alembic_version(&r), fx.revisions[1]);
    assert_eq!(r.head(), fx.commits[2]);
    assert_eq!(f.live_commit().as_deref(), Some(fx.commits[2].as_str()));
}

#[test]
fn a_downgrade_job_that_ends_as_its_deadline_comes_is_a_downgrade_that_succeeded() {
    let (r, fx, f, _dir, config) = full_setup_short();
    // The Job runs until the wait's deadline, and its pod finishes the downgrade just before
    // the wait's `DELETE` reaches the API server: the answer to the delete shows it succeeded.
    f.job_reads(u32::MAX);
    f.jobs_end_at_delete(true);
    let out =
        fr_env(&r, &["--config", config.to_str().unwrap(), "run", "--full", "--yes", "--json", "--target", "v2"], &[]);
    out.ok();
    assert_eq!(out.json()["status"], "succeeded", "{}", out.stderr);
    assert!(out.stderr.contains("(it had ended when it was deleted at its deadline) succeeded"), "{}", out.stderr);
    assert!(!out.stderr.contains("restored from backup"), "{}", out.stderr);
    assert_eq!(f.jobs()[0].deleted.as_deref(), Some("Foreground"), "given up on, then seen ended");
    assert_eq!(alembic_version(&r), fx.revisions[1], "the job's downgrade stands, not the snapshot");
    assert_eq!(r.head(), fx.commits[2]);
    assert_eq!(f.live_commit().as_deref(), Some(fx.commits[2].as_str()));
}

#[test]
fn an_undo_waits_for_the_downgrade_job_a_killed_run_left_running() {
    let (r, fx, f, _dir, config) = full_setup_short();
    let fr = |args: &[&str], env: &[(&str, &str)]| {
        let mut all = vec!["--config", config.to_str().unwrap()];
        all.extend_from_slice(args);
        fr_env(&r, &all, env)
    };
    let out = fr(&["run", "--full", "--yes", "--target", "v2"], &[("FORGE_ROLLBACK_FAILPOINT", "inside:downgrade")]);
    assert_eq!(out.code, None, "killed\n{}", out.stderr);
    let id = fr(&["runs", "list", "--json"], &[]).json()[0]["run_id"].as_str().unwrap().to_owned();
    // The Job the run had started goes on after the kill, and downgrades when it ends.
    let python = rollback_testkit::db::python();
    f.add_running_job_with(&job_of(&id), 3, &[&python, "-m", "alembic", "downgrade", &fx.revisions[1]]);
    let out = fr(&["undo", &id, "--yes", "--json"], &[]);
    out.ok();
    assert_eq!(out.json()["status"], "succeeded", "{}", out.stderr);
    assert!(out.stderr.contains("still runs on kubernetes deployment prod/api"), "{}", out.stderr);
    assert!(!f.jobs()[0].active(), "the undo ended after the job");
    assert_eq!(alembic_version(&r), fx.revisions[2], "the job's downgrade was put back");
    assert_eq!(r.head(), fx.commits[3]);
}

#[test]
fn a_resumed_run_whose_rollout_has_not_finished_waits_for_it_instead_of_calling_it_live() {
    for stuck in ["never completes", "exceeded its deadline"] {
        let s = setup(&[0, 1, 2]);
        let fail = |on: bool| {
            if stuck == "never completes" { s.f.never_complete(on) } else { s.f.deadline_exceeded(on) }
        };
        fail(true);
        let out = s.fr(&["run", "--fast", "--yes", "--target", "v1"]);
        out.code(1);
        let id = s.fr(&["runs", "list", "--json"]).json()[0]["run_id"].as_str().unwrap().to_owned();
        let out = s.fr(&["resume", &id, "--json"]);
        out.code(1);
        assert!(!out.stderr.contains("is live already"), "{stuck}: {}", out.stderr);
        assert_eq!(out.json()["status"], "failed", "{stuck}");
        assert_eq!(s.f.patches().len(), 1, "{stuck}: not sent again");

        fail(false);
        let out = s.fr(&["resume", &id, "--json"]);
        out.ok();
        assert_eq!(out.json()["status"], "succeeded", "{stuck}: {}", out.stderr);
        assert_eq!(s.f.patches().len(), 1, "{stuck}: not sent again");
        assert_eq!(s.f.live_commit().as_deref(), Some(s.ids[0].as_str()));
    }
}

#[test]
fn an_undo_after_a_rollout_restart_puts_the_earlier_template_back_but_one_after_a_new_image_is_refused() {
    for case in ["restart", "restart while the undo was cut short", "new image"] {
        let s = setup(&[0, 1, 2]);
        let out = s.fr(&["run", "--fast", "--yes", "--json", "--target", "v1"]);
        out.ok();
        let run = out.json()["run_id"].as_str().unwrap().to_owned();
        let v3 = s.f.revisions()[2].template.clone();
        let cut_short = case == "restart while the undo was cut short";
        let undo = if cut_short {
            // Planned (production ran the run's release), killed before its promote step.
            let out = s.fr_env(&["undo", &run, "--yes"], &[("FORGE_ROLLBACK_FAILPOINT", "before:promote")]);
            assert_eq!(out.code, None, "{case}: killed\n{}", out.stderr);
            let runs = s.fr(&["runs", "list", "--json"]).json();
            let ids = runs.as_array().unwrap().iter().map(|r| r["run_id"].as_str().unwrap().to_owned());
            ids.into_iter().find(|id| *id != run)
        } else {
            None
        };
        // The operator restarts the pods (to pick up a ConfigMap put back by hand), or deploys
        // another image: either way the controller makes a new ReplicaSet.
        let code = if case == "new image" {
            s.f.set_image("web", "registry.example/api:hotfix-1")
        } else {
            s.f.rollout_restart("2026-12-06T09:40:00Z")
        };
        assert_eq!(code, 200, "{case}");
        assert_eq!(s.f.revisions().len(), 4, "{case}: a new revision");
        let out = match &undo {
            Some(undo) => s.fr(&["resume", undo, "--json"]),
            None => s.fr(&["undo", &run, "--yes", "--json"]),
        };
        if case == "new image" {
            out.code(4);
            assert!(out.stderr.contains("someone deployed since"), "{case}: {}", out.stderr);
            assert!(out.stderr.contains("image registry.example/api:hotfix-1"), "{case}: {}", out.stderr);
            assert_eq!(s.r.head(), s.ids[0], "{case}: nothing changed");
            assert_eq!(s.f.patches().len(), 2, "{case}: the run's rollout and the new image only");
            continue;
        }
        assert!(!out.stderr.contains("someone deployed since"), "{case}: {}", out.stderr);
        out.ok();
        assert_eq!(out.json()["status"], "succeeded", "{case}: {}", out.stderr);
        // What `kubectl rollout undo` would do: the earlier template back whole, with no
        // restart annotation, on the earlier ReplicaSet.
        assert_eq!(s.f.template(), v3, "{case}");
        assert_eq!(s.f.revisions().len(), 4, "{case}: v3's ReplicaSet was reused");
        assert_eq!(s.r.head(), s.ids[2], "{case}");
        let (_, last) = s.f.patches().pop().unwrap();
        assert_eq!(last[0]["value"], v3, "{case}: the undo's patch");
    }
}

#[test]
fn an_undo_whose_release_cannot_be_rolled_out_again_is_refused_before_anything_changes() {
    let s = setup(&[0, 1, 2]);
    let out = s.fr(&["run", "--fast", "--yes", "--json", "--target", "v1"]);
    out.ok();
    let id = out.json()["run_id"].as_str().unwrap().to_owned();

    s.f.set_paused(true);
    let out = s.fr(&["undo", &id, "--yes"]);
    out.code(4);
    assert!(out.stderr.contains("deployment api is paused"), "{}", out.stderr);
    assert_eq!(s.r.head(), s.ids[0], "the code was not moved");

    // The release the run rolled back away from (v3) was pruned since.
    s.f.set_paused(false);
    let v3 = s.name_of(2);
    s.f.prune_revision(&v3);
    let out = s.fr(&["undo", &id, "--yes"]);
    out.code(4);
    assert!(out.stderr.contains(&format!("replicaset {v3} is gone")), "{}", out.stderr);
    assert_eq!(s.r.head(), s.ids[0], "the code was not moved");
    assert_eq!(s.f.patches().len(), 1, "only the run's own rollout");
    assert_eq!(s.fr(&["runs", "list", "--json"]).json().as_array().unwrap().len(), 1, "no undo run was started");
}

#[test]
fn credentials_that_cannot_be_used_exit_2_naming_the_contexts_namespace() {
    let s = setup(&[0, 1, 2]);
    let text = std::fs::read_to_string(&s.kubeconfig).unwrap();
    let exec = text.replace(&format!("    token: {TOKEN}\n"), "    exec: {command: aws, args: [eks, get-token]}\n");
    std::fs::write(&s.kubeconfig, exec).unwrap();
    let out = s.fr(&["plan", "--fast", "--target", "v1"]);
    out.code(2);
    assert!(out.stderr.contains("kubernetes deployment prod/api: kubeconfig"), "{}", out.stderr);
    assert!(out.stderr.contains("an `exec` credential plugin"), "{}", out.stderr);

    std::fs::write(&s.kubeconfig, text).unwrap();
    s.add_to_deploy("context = \"nope\"");
    let out = s.fr(&["plan", "--fast", "--target", "v1"]);
    out.code(2);
    assert!(out.stderr.contains("has no context `nope`"), "{}", out.stderr);
    assert!(s.f.requests().is_empty(), "nothing was asked of the cluster");
}
