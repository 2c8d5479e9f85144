//! `[deploy]` against a real bare remote made with `git init --bare`, and deploy hooks against
//! a real HTTP server.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rollback_core::deploy::{self, DeployConfig, DeployContext, DeployStrategy, Error};
use rollback_core::rt;
use rollback_core::secret::Secret;
use rollback_testkit::server::{Behaviour, TestServer, refused_addr};
use rollback_testkit::{TestRepo, clean_git_env};
use tempfile::TempDir;

/// A repository with three releases, its `main` pushed to a bare `origin`.
struct Setup {
    repo: TestRepo,
    remote: TempDir,
    releases: [String; 3],
}

fn git(dir: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("git");
    clean_git_env(&mut cmd).arg("-C").arg(dir).args(args);
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn setup() -> Setup {
    let repo = TestRepo::new();
    let releases = repo.three_releases();
    let remote = tempfile::tempdir().unwrap();
    git(remote.path(), &["init", "--bare", "-q", "-b", "main"]);
    repo.git(&["remote", "add", "origin", remote.path().to_str().unwrap()]);
    repo.git(&["push", "-q", "origin", "main"]);
    // deploy runs git without the test identity variables: give the repository its own.
    repo.git(&["config", "user.name", "Operator"]);
    repo.git(&["config", "user.email", "operator@example.com"]);
    // The rollback itself: the work tree and branch back at v1.
    repo.git(&["reset", "-q", "--hard", &releases[0]]);
    Setup { repo, remote, releases }
}

impl Setup {
    fn remote_main(&self) -> String {
        git(self.remote.path(), &["rev-parse", "refs/heads/main"])
    }

    fn ctx(&self) -> DeployContext<'_> {
        DeployContext {
            workdir: self.repo.path(),
            run_id: "20251210-173900-ab12",
            from: &self.releases[2],
            to: &self.releases[0],
            branch: Some("main"),
            push_lock: None,
            keep: &[],
        }
    }

    /// Someone else deploys a hotfix on top of v3 after the broken release.
    fn someone_pushes(&self) -> String {
        let other = TestRepo::new();
        let url = self.remote.path().to_str().unwrap();
        other.git(&["fetch", "-q", url, "main"]);
        other.git(&["reset", "-q", "--hard", "FETCH_HEAD"]);
        other.write("HOTFIX", "1\n");
        let hotfix = other.commit_all("hotfix");
        other.git(&["push", "-q", url, "HEAD:refs/heads/main"]);
        hotfix
    }
}

fn config(strategy: DeployStrategy) -> DeployConfig {
    DeployConfig { strategy, ..DeployConfig::default() }
}

#[test]
fn push_puts_the_target_on_the_remote_branch() {
    let s = setup();
    assert_eq!(s.remote_main(), s.releases[2]);
    let report = rt::block_on(deploy::deploy(&config(DeployStrategy::Push), &s.ctx())).unwrap();
    assert_eq!(s.remote_main(), s.releases[0]);
    assert_eq!(report.pushed_commit.as_deref(), Some(s.releases[0].as_str()));
    assert_eq!((report.remote.as_deref(), report.branch.as_deref()), (Some("origin"), Some("main")));
    assert_eq!(report.detail, format!("pushed {} to origin/main", &s.releases[0][..12]));
    assert_eq!(report.hook_status, None);
}

#[test]
fn push_is_refused_when_the_remote_moved() {
    let s = setup();
    let hotfix = s.someone_pushes();
    let err = rt::block_on(deploy::deploy(&config(DeployStrategy::Push), &s.ctx())).unwrap_err();
    assert!(matches!(&err, Error::RemoteMoved { expected, .. } if *expected == s.releases[2]), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!("the remote branch `origin/main` is not at {}", s.releases[2])),
        "{err}"
    );
    assert!(err.hint().unwrap().contains("git fetch origin"));
    assert_eq!(s.remote_main(), hotfix, "the hotfix is still live");
}

#[test]
fn revert_commit_pushes_the_targets_tree_on_top_of_production() {
    let s = setup();
    let report = rt::block_on(deploy::deploy(&config(DeployStrategy::RevertCommit), &s.ctx())).unwrap();
    let pushed = report.pushed_commit.clone().unwrap();
    assert_eq!(s.remote_main(), pushed);
    let r = s.remote.path();
    assert_eq!(
        git(r, &["rev-parse", &format!("{pushed}^{{tree}}")]),
        git(r, &["rev-parse", &format!("{}^{{tree}}", s.releases[0])])
    );
    assert_eq!(git(r, &["rev-parse", &format!("{pushed}^")]), s.releases[2], "parent is production: history kept");
    assert_eq!(
        git(r, &["log", "-1", "--format=%s|%an", &pushed]),
        format!("Roll back to {} (forge-rollback run 20251210-173900-ab12)|Operator", &s.releases[0][..12])
    );
    assert!(report.detail.starts_with("pushed ") && report.detail.ends_with(" to origin/main"), "{report:?}");
}

#[test]
fn revert_commit_keeps_the_kept_paths_as_production_has_them_and_a_second_attempt_finds_its_push() {
    let s = setup();
    // Production: v3 with README.md deleted, pushed and fetched.
    let other = TestRepo::new();
    let url = s.remote.path().to_str().unwrap();
    other.git(&["fetch", "-q", url, "main"]);
    other.git(&["reset", "-q", "--hard", "FETCH_HEAD"]);
    other.git(&["rm", "-q", "README.md"]);
    let production = other.commit_all("drop the readme");
    other.git(&["push", "-q", url, "HEAD:refs/heads/main"]);
    s.repo.git(&["fetch", "-q", "origin"]);
    // Changed since v1, added since v1, removed since v1, the same as v1, in neither, and a
    // folder (not a tool file: left as the target has it).
    let keep: Vec<String> = ["requirements.txt", "app/payments.py", "README.md", ".gitignore", "nowhere.json", "app"]
        .map(str::to_owned)
        .into();
    let ctx = DeployContext { from: &production, keep: &keep, ..s.ctx() };
    let report = rt::block_on(deploy::deploy(&config(DeployStrategy::RevertCommit), &ctx)).unwrap();
    let pushed = report.pushed_commit.clone().unwrap();
    assert_eq!(s.remote_main(), pushed);
    assert_eq!(report.kept, ["requirements.txt", "app/payments.py", "README.md"]);
    assert!(
        report.detail.contains("; kept `requirements.txt`, `app/payments.py`, `README.md` as production ("),
        "{report:?}"
    );
    let r = s.remote.path();
    // `<mode> <type> <id>\t<path>`, one a line, sorted by path.
    let files = |commit: &str| git(r, &["ls-tree", "-r", commit]);
    let path = |line: &str| line.split_once('\t').unwrap().1.to_owned();
    // v1's tree with production's requirements.txt and app/payments.py, and no README.md.
    let from_target = files(&s.releases[0]);
    let from_target = from_target.lines().filter(|l| !["README.md", "requirements.txt"].contains(&path(l).as_str()));
    let from_production = files(&production);
    let from_production =
        from_production.lines().filter(|l| ["requirements.txt", "app/payments.py"].contains(&path(l).as_str()));
    let mut expected: Vec<&str> = from_target.chain(from_production).collect();
    expected.sort_by_key(|l| path(l));
    assert_eq!(files(&pushed).lines().collect::<Vec<_>>(), expected);
    assert_eq!(git(r, &["rev-parse", &format!("{pushed}^")]), production);
    // The repository's own index is untouched.
    assert_eq!(s.repo.git(&["status", "--porcelain", "--untracked-files=no"]), "");

    // The same run again (a resume after its hook failed), its new commit made by someone else
    // so that it differs from the pushed one: the run's commit on the remote is found.
    s.repo.git(&["config", "user.name", "Another Operator"]);
    let again = rt::block_on(deploy::deploy(&config(DeployStrategy::RevertCommit), &ctx)).unwrap();
    assert_eq!(again.pushed_commit.as_deref(), Some(pushed.as_str()));
    assert_eq!(s.remote_main(), pushed);
}

#[test]
fn revert_commit_is_refused_as_a_non_fast_forward_when_the_remote_moved() {
    let s = setup();
    let hotfix = s.someone_pushes();
    let err = rt::block_on(deploy::deploy(&config(DeployStrategy::RevertCommit), &s.ctx())).unwrap_err();
    assert!(matches!(err, Error::NonFastForward { .. }), "{err:?}");
    assert!(err.to_string().contains("non-fast-forward"), "{err}");
    assert_eq!(s.remote_main(), hotfix);
}

#[test]
fn a_repository_without_an_identity_still_gets_its_rollback_commit() {
    let s = setup();
    // No global identity either: a HOME of our own.
    let home = tempfile::tempdir().unwrap();
    // SAFETY: nextest runs each test in its own process; no other thread reads these.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("HOME", home.path());
        std::env::set_var("XDG_CONFIG_HOME", home.path());
    }
    s.repo.git(&["config", "--unset", "user.name"]);
    s.repo.git(&["config", "--unset", "user.email"]);
    s.repo.git(&["config", "user.useConfigOnly", "true"]);
    let report = rt::block_on(deploy::deploy(&config(DeployStrategy::RevertCommit), &s.ctx())).unwrap();
    let pushed = report.pushed_commit.unwrap();
    assert_eq!(
        git(s.remote.path(), &["log", "-1", "--format=%an <%ae>", &pushed]),
        "forge-rollback <forge-rollback@localhost>"
    );
}

#[test]
fn bad_remotes_branches_and_commits_are_clear_errors() {
    let s = setup();
    let mut c = config(DeployStrategy::Push);
    c.remote = "nowhere".into();
    let err = rt::block_on(deploy::deploy(&c, &s.ctx())).unwrap_err();
    assert!(matches!(err, Error::Git { .. }), "{err:?}");
    assert!(err.to_string().contains("nowhere"), "{err}");
    assert!(err.to_string().contains("(exit code 128)"), "git's own exit status: {err}");
    // Found before a run changes anything.
    let err = rt::block_on(deploy::check_ready(&c, s.repo.path())).unwrap_err();
    assert!(matches!(err, Error::NoRemote { .. }), "{err:?}");
    assert_eq!(err.config_key(&c), Some("deploy.remote"));
    rt::block_on(deploy::check_ready(&config(DeployStrategy::Push), s.repo.path())).unwrap();
    let detached = DeployContext { branch: None, ..s.ctx() };
    let err = rt::block_on(deploy::deploy(&config(DeployStrategy::Push), &detached)).unwrap_err();
    assert!(matches!(err, Error::NoBranch), "{err:?}");
    // A configured branch works with a detached HEAD; it must exist on the remote at `from`.
    let mut c = config(DeployStrategy::Push);
    c.branch = Some("release".into());
    let err = rt::block_on(deploy::deploy(&c, &detached)).unwrap_err();
    assert!(matches!(err, Error::RemoteMoved { .. }), "{err:?}");
    s.repo.git(&["push", "-q", "origin", &format!("{}:refs/heads/release", s.releases[2])]);
    rt::block_on(deploy::deploy(&c, &detached)).unwrap();
    assert_eq!(git(s.remote.path(), &["rev-parse", "refs/heads/release"]), s.releases[0]);
    let injected = DeployContext { to: "--upload-pack=touch /tmp/x", ..s.ctx() };
    let err = rt::block_on(deploy::deploy(&config(DeployStrategy::Push), &injected)).unwrap_err();
    assert!(matches!(err, Error::Invalid { what: "commit id", .. }), "{err:?}");
}

const HOOK_KEY: &str = "srv-d3adb33fk3y";

#[test]
fn the_deploy_hook_is_posted_and_its_url_never_shown() {
    let s = setup();
    let server = TestServer::start();
    server.set(&format!("/deploy/{HOOK_KEY}"), Behaviour::Status(200));
    let mut c = config(DeployStrategy::Push);
    c.hook_url = Some(Secret::new(server.url(&format!("/deploy/{HOOK_KEY}?key={HOOK_KEY}"))));
    let report = rt::block_on(deploy::deploy(&c, &s.ctx())).unwrap();
    assert_eq!(report.hook_status, Some(200));
    assert!(report.detail.ends_with("; deploy hook answered 200"), "{report:?}");
    let got = server.requests_to(&format!("/deploy/{HOOK_KEY}"));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].header("content-type"), Some("application/json"));
    assert!(got[0].header("user-agent").unwrap().starts_with("forge-rollback/"));
    let body = got[0].body_json();
    assert_eq!(body["run_id"], "20251210-173900-ab12");
    assert_eq!(body["commit"], s.releases[0].as_str());
    assert_eq!(body["branch"], "main");
    let shown =
        format!("{report:?} {} {c:?} {}", serde_json::to_string(&report).unwrap(), serde_json::to_string(&c).unwrap());
    assert!(!shown.contains(HOOK_KEY), "{shown}");
}

fn hook_error(c: &DeployConfig, s: &Setup) -> Error {
    let start = Instant::now();
    let err = rt::block_on(deploy::deploy(c, &s.ctx())).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
    let shown = format!("{err} {err:?} {}", err.hint().unwrap_or_default());
    assert!(!shown.contains(HOOK_KEY), "{shown}");
    err
}

#[test]
fn failing_hanging_and_unreachable_hooks_are_errors_without_the_url() {
    let s = setup();
    let server = TestServer::start();
    let path = format!("/deploy/{HOOK_KEY}");
    // Hook only (a PaaS that deploys from its own copy): no push.
    let mut c = config(DeployStrategy::None);
    c.hook_timeout_secs = 1.0;
    c.hook_url = Some(Secret::new(server.url(&path)));
    server.set(&path, Behaviour::Status(500));
    let err = hook_error(&c, &s);
    assert!(matches!(&err, Error::Hook { pushed_commit: None, .. }), "{err:?}");
    assert_eq!(err.to_string(), "the deploy hook failed: status 500, expected 2xx");
    server.set(&path, Behaviour::Hang);
    let err = hook_error(&c, &s);
    assert_eq!(err.to_string(), "the deploy hook failed: timed out after 1.0 s");
    server.set(&path, Behaviour::RedirectLoop);
    let err = hook_error(&c, &s);
    assert_eq!(err.to_string(), "the deploy hook failed: status 302, expected 2xx", "redirects are not followed");
    let down = refused_addr();
    c.hook_url = Some(Secret::new(format!("http://{down}/deploy/{HOOK_KEY}")));
    let err = hook_error(&c, &s);
    assert_eq!(err.to_string(), "the deploy hook failed: connection refused");
    assert!(!err.to_string().contains(&down.port().to_string()));
    // After a successful push, the error says what was pushed.
    let mut c = config(DeployStrategy::Push);
    c.hook_url = Some(Secret::new(server.url(&path)));
    server.set(&path, Behaviour::Status(503));
    let err = hook_error(&c, &s);
    assert!(matches!(&err, Error::Hook { pushed_commit: Some(p), .. } if *p == s.releases[0]), "{err:?}");
    assert!(err.hint().unwrap().starts_with("the push succeeded"));
    // The URL from the environment: unset is a clear error naming the variable.
    let mut c = config(DeployStrategy::None);
    c.hook_url_env = Some("FORGE_ROLLBACK_TEST_UNSET_HOOK".into());
    let err = hook_error(&c, &s);
    assert_eq!(err.to_string(), "deploy hook: the environment variable `FORGE_ROLLBACK_TEST_UNSET_HOOK` is not set");
}

#[test]
fn nothing_configured_does_nothing() {
    let s = setup();
    let c = DeployConfig::default();
    assert!(!c.is_active());
    let report = rt::block_on(deploy::deploy(&c, &s.ctx())).unwrap();
    assert_eq!(report.detail, "nothing to deploy (no strategy, no hook)");
    assert_eq!(s.remote_main(), s.releases[2], "the remote is untouched");
}

#[test]
fn config_parsing_and_validation() {
    let c: DeployConfig = toml::from_str("strategy = \"revert-commit\"\nhook_url_env = \"HOOK\"\n").unwrap();
    assert_eq!((c.strategy, c.remote.as_str(), c.branch.as_deref()), (DeployStrategy::RevertCommit, "origin", None));
    c.validate().unwrap();
    let e = toml::from_str::<DeployConfig>("strategy = \"force\"\n").unwrap_err().to_string();
    assert!(e.contains("unknown variant `force`"), "{e}");
    let e = toml::from_str::<DeployConfig>("strategy = \"push\"\nforce = true\n").unwrap_err().to_string();
    assert!(e.contains("unknown field `force`"), "{e}");
    let secret_url = format!("ftp://example.com/{HOOK_KEY}");
    let cases = [
        (DeployConfig { remote: "-oops".into(), ..config(DeployStrategy::Push) }, "deploy.remote"),
        (DeployConfig { branch: Some("a b".into()), ..config(DeployStrategy::Push) }, "deploy.branch"),
        (
            DeployConfig {
                hook_url: Some(Secret::new("http://h/x")),
                hook_url_env: Some("H".into()),
                ..DeployConfig::default()
            },
            "deploy.hook_url",
        ),
        (DeployConfig { hook_url: Some(Secret::new(secret_url)), ..DeployConfig::default() }, "deploy.hook_url"),
        (DeployConfig { hook_timeout_secs: 0.0, ..DeployConfig::default() }, "deploy.hook_timeout_secs"),
        (DeployConfig { push_timeout_secs: -1.0, ..config(DeployStrategy::Push) }, "deploy.push_timeout_secs"),
    ];
    for (c, key) in cases {
        let (k, m) = c.validate().unwrap_err();
        assert_eq!(k, key, "{m}");
        assert!(!m.contains(HOOK_KEY), "{m}");
    }
}
