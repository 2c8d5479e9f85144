//! The Kubernetes adapter against `FakeKubernetes`, a local server that speaks the `apps/v1`
//! REST API (Bearer auth, `labelSelector` lists paged with `continue`, `Status` error bodies,
//! 429 + Retry-After) and simulates the controller; kubeconfig and in-cluster credentials; and,
//! when `FORGE_TEST_KUBECONFIG` is set, a real cluster (read-only).

use std::path::{Path, PathBuf};
use std::time::Duration;

use rollback_core::config::Config;
use rollback_core::deploy::{DeployConfig, DeployStrategy};
use rollback_core::model::RiskCode;
use rollback_core::plan::{Level, Step};
use rollback_core::platform::kubernetes::Kubernetes;
use rollback_core::platform::kubernetes::config::{self, Sources};
use rollback_core::production::{Deployer, Error};
use rollback_core::testing::production::{self, DeployerUnderTest};
use rollback_core::vcs::CommitId;
use rollback_core::{Rollback, rt};
use rollback_testkit::TestRepo;
use rollback_testkit::platform::FakeKubernetes;
use tempfile::TempDir;

const TOKEN: &str = "k8s-planted-token-7e6d5c4b3a";
const CA: &str = include_str!("kube/ca.crt");
const CLIENT_CRT: &str = include_str!("kube/client.crt");
const CLIENT_KEY: &str = include_str!("kube/client.key");

fn repo() -> (TestRepo, [CommitId; 3]) {
    let r = TestRepo::new();
    r.three_releases();
    let id = |t: &str| CommitId::new(r.git(&["rev-parse", t]).trim()).unwrap();
    let ids = [id("v1"), id("v2"), id("v3")];
    (r, ids)
}

fn ids() -> [CommitId; 3] {
    [
        CommitId::new("1111111aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").unwrap(),
        CommitId::new("2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb").unwrap(),
        CommitId::new("3333333ccccccccccccccccccccccccccccccccc").unwrap(),
    ]
}

fn strs(ids: &[CommitId; 3]) -> [&str; 3] {
    [ids[0].as_str(), ids[1].as_str(), ids[2].as_str()]
}

/// A kubeconfig naming `server` with the planted token, in a temp dir.
fn kubeconfig(server: &str, user: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("config");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: test\nclusters:\n- name: fake\n  cluster:\n    server: {server}\ncontexts:\n- name: test\n  context:\n    cluster: fake\n    user: ci\n    namespace: prod\nusers:\n- name: ci\n  user:\n{user}"
        ),
    )
    .unwrap();
    (dir, path)
}

fn token_user() -> String {
    format!("    token: {TOKEN}\n")
}

fn deploy_config(path: &Path, statefulset: bool) -> DeployConfig {
    DeployConfig {
        strategy: DeployStrategy::Kubernetes,
        deployment: (!statefulset).then(|| "api".to_owned()),
        statefulset: statefulset.then(|| "api".to_owned()),
        kubeconfig: Some(path.to_owned()),
        live_timeout_secs: 3.0,
        poll_secs: 0.02,
        ..DeployConfig::default()
    }
}

fn sources(path: &Path) -> Sources {
    Sources { kubeconfig: Some(path.to_owned()), ..Sources::default() }
}

fn adapter(f: &FakeKubernetes, statefulset: bool) -> (TempDir, Kubernetes) {
    let (dir, path) = kubeconfig(&f.url(), &token_user());
    let k = Kubernetes::with_sources(&deploy_config(&path, statefulset), &sources(&path));
    (dir, k)
}

#[test]
fn kubernetes_passes_the_deployer_suite_for_a_deployment_and_a_statefulset() {
    for statefulset in [false, true] {
        let c = ids();
        let keep = std::sync::Mutex::new(Vec::new());
        production::run_all(&move || {
            let s = strs(&c);
            let f = if statefulset {
                FakeKubernetes::statefulset(TOKEN, &s)
            } else {
                FakeKubernetes::deployment(TOKEN, &s, true)
            };
            let (dir, k) = adapter(&f, statefulset);
            keep.lock().unwrap().push((f, dir));
            DeployerUnderTest { deployer: Box::new(k), built: vec![c[0].clone(), c[2].clone()] }
        });
    }
}

#[test]
fn revisions_are_listed_by_label_selector_page_by_page_with_the_bearer_token() {
    let c = ids();
    let f = FakeKubernetes::deployment(TOKEN, &strs(&c), true);
    f.add_foreign_revision(c[0].as_str());
    let (_dir, k) = adapter(&f, false);
    let live = rt::block_on(k.current()).unwrap();
    assert_eq!(live.commit.as_ref(), Some(&c[2]));
    assert!(live.summary.starts_with("revision 3 (replicaset api-"), "{}", live.summary);
    let reqs = f.requests();
    let paths: Vec<&str> = reqs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/apis/apps/v1/namespaces/prod/deployments/api",
            "/apis/apps/v1/namespaces/prod/replicasets?labelSelector=app%3Dapi&limit=100",
            "/apis/apps/v1/namespaces/prod/replicasets?labelSelector=app%3Dapi&limit=100&continue=c-2",
        ]
    );
    for r in &reqs {
        assert_eq!(r.method, "GET");
        assert_eq!(r.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
        assert_eq!(r.header("accept"), Some("application/json"));
    }
    // The foreign ReplicaSet of v1 (another owner) is not one of the Deployment's.
    let found = rt::block_on(k.find(&c[0])).unwrap().unwrap();
    let foreign = f.revisions().into_iter().find(|r| r.owner != "uid-api-0001").unwrap();
    assert_ne!(found.id, foreign.name);
    assert_eq!(found.id, f.revisions()[0].name);
}

#[test]
fn a_rollback_patches_the_template_without_the_hash_label_and_an_undo_finds_the_renumbered_revision() {
    let c = ids();
    let f = FakeKubernetes::deployment(TOKEN, &strs(&c), true);
    let (_dir, k) = adapter(&f, false);
    let before = rt::block_on(k.current()).unwrap();
    let to = rt::block_on(k.find(&c[0])).unwrap().unwrap();
    assert!(to.summary.starts_with("revision 1 "), "{}", to.summary);
    rt::block_on(k.rollback(&to)).unwrap();
    let patches = f.patches();
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].0, "application/json-patch+json");
    let ops = patches[0].1.as_array().unwrap();
    assert_eq!(
        (ops.len(), ops[0]["op"].as_str(), ops[0]["path"].as_str()),
        (2, Some("replace"), Some("/spec/template"))
    );
    // As kubectl: the ReplicaSet's annotations, but the Deployment's own revision and
    // last-applied-configuration.
    assert_eq!((ops[1]["op"].as_str(), ops[1]["path"].as_str()), (Some("replace"), Some("/metadata/annotations")));
    assert_eq!(ops[1]["value"]["kubernetes.io/change-cause"], format!("deploy {}", c[0].as_str()).as_str());
    assert_eq!(ops[1]["value"]["deployment.kubernetes.io/revision"], "3");
    assert_eq!(ops[1]["value"]["kubectl.kubernetes.io/last-applied-configuration"], "{\"kind\":\"Deployment\"}");
    assert!(ops[0]["value"].pointer("/metadata/labels/pod-template-hash").is_none());
    assert_eq!(ops[0]["value"], rollback_testkit::platform::kube_template(c[0].as_str(), true));
    rt::block_on(k.wait_live(&to, Duration::from_secs(5))).unwrap();
    assert_eq!(f.live_commit().as_deref(), Some(c[0].as_str()));
    // kubectl numbers the revision anew (1 -> 4); its name, the release id, stays.
    let now = rt::block_on(k.current()).unwrap();
    assert_eq!(now.id, to.id);
    assert!(now.summary.starts_with("revision 4 "), "{}", now.summary);
    // Undo: the release live before, by name, whatever its number.
    rt::block_on(k.rollback(&before)).unwrap();
    rt::block_on(k.wait_live(&before, Duration::from_secs(5))).unwrap();
    assert_eq!(f.live_commit().as_deref(), Some(c[2].as_str()));
    assert_eq!(f.revisions().len(), 3, "the controller reused the ReplicaSets");
    assert!(rt::block_on(k.current()).unwrap().summary.starts_with("revision 5 "));
}

#[test]
fn a_statefulset_gets_the_controllerrevision_data_as_a_strategic_merge_patch() {
    let c = ids();
    let f = FakeKubernetes::statefulset(TOKEN, &strs(&c));
    let (_dir, k) = adapter(&f, true);
    let to = rt::block_on(k.find(&c[1])).unwrap().unwrap();
    assert!(to.summary.contains("controllerrevision api-"), "{}", to.summary);
    rt::block_on(k.rollback(&to)).unwrap();
    let (ct, body) = f.patches().remove(0);
    assert_eq!(ct, "application/strategic-merge-patch+json");
    assert_eq!(body.pointer("/spec/template/$patch").and_then(|v| v.as_str()), Some("replace"));
    rt::block_on(k.wait_live(&to, Duration::from_secs(5))).unwrap();
    assert_eq!(f.live_commit().as_deref(), Some(c[1].as_str()));
    assert!(f.requests().iter().any(|r| r.path.contains("/controllerrevisions?labelSelector=app%3Dapi")));
}

#[test]
fn a_revision_kubectl_rollout_restart_made_serves_the_release_it_restarted_and_a_new_image_does_not() {
    for statefulset in [false, true] {
        let c = ids();
        let f = if statefulset {
            FakeKubernetes::statefulset(TOKEN, &strs(&c))
        } else {
            FakeKubernetes::deployment(TOKEN, &strs(&c), true)
        };
        let (_dir, k) = adapter(&f, statefulset);
        let before = rt::block_on(k.current()).unwrap();
        let to = rt::block_on(k.find(&c[0])).unwrap().unwrap();
        rt::block_on(k.rollback(&to)).unwrap();
        rt::block_on(k.wait_live(&to, Duration::from_secs(5))).unwrap();

        assert_eq!(f.rollout_restart("2026-12-06T09:40:00Z"), 200, "statefulset {statefulset}");
        let restarted = rt::block_on(k.current()).unwrap();
        assert_ne!(restarted.id, to.id, "statefulset {statefulset}: a new revision");
        assert!(k.serves(&restarted, &to), "statefulset {statefulset}: {restarted} serves {to}");
        assert!(!k.serves(&restarted, &before), "statefulset {statefulset}: {restarted} is not {before}");

        assert_eq!(f.set_image("web", "registry.example/api:hotfix-1"), 200, "statefulset {statefulset}");
        let other = rt::block_on(k.current()).unwrap();
        assert!(other.summary.contains("image registry.example/api:hotfix-1"), "{}", other.summary);
        assert_eq!(other.commit, to.commit, "statefulset {statefulset}: the commit annotation is the same");
        assert!(!k.serves(&other, &to), "statefulset {statefulset}: {other} is another build");
        assert!(!k.serves(&other, &restarted), "statefulset {statefulset}");
    }
}

#[test]
fn the_image_tag_names_the_commit_when_templates_carry_no_annotation() {
    let c = ids();
    let f = FakeKubernetes::deployment(TOKEN, &strs(&c), false);
    let (_dir, k) = adapter(&f, false);
    let to = rt::block_on(k.find(&c[1])).unwrap().expect("found by the image tag");
    assert_eq!(to.commit.as_ref(), Some(&c[1]));
    assert!(to.summary.contains("image registry.example/api:2222222bbbbb"), "{}", to.summary);
    assert_eq!(rt::block_on(k.current()).unwrap().commit, None, "a short tag names no full commit");
    let never = CommitId::new("4444444ddddddddddddddddddddddddddddddddd").unwrap();
    assert_eq!(rt::block_on(k.find(&never)).unwrap(), None);
}

/// Standard base64 with padding, as kubeconfigs carry `*-data`.
fn b64(s: &str) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in s.as_bytes().chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |acc, (i, &b)| acc | (u32::from(b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn message(e: &Error) -> (String, String) {
    (e.to_string(), e.hint().unwrap_or_default())
}

#[test]
fn a_paused_deployment_is_refused_before_anything_changes() {
    let c = ids();
    let f = FakeKubernetes::deployment(TOKEN, &strs(&c), true);
    f.set_paused(true);
    let (_dir, k) = adapter(&f, false);
    let to = f.revisions()[0].clone();
    let release = rollback_core::production::Release { id: to.name, commit: Some(c[0].clone()), summary: "r1".into() };
    let (msg, hint) = message(&rt::block_on(k.rollback(&release)).unwrap_err());
    assert!(msg.contains("deployment api is paused"), "{msg}");
    assert!(hint.contains("kubectl rollout resume deployment/api -n prod"), "{hint}");
    let (msg, _) = message(&rt::block_on(k.find(&c[0])).unwrap_err());
    assert!(msg.contains("paused"), "{msg}");
    assert!(f.patches().is_empty());
}

#[test]
fn rollouts_that_fail_never_finish_or_are_refused_say_so() {
    let c = ids();
    let f = FakeKubernetes::deployment(TOKEN, &strs(&c), true);
    let (_dir, k) = adapter(&f, false);
    let to = rt::block_on(k.find(&c[0])).unwrap().unwrap();

    f.refuse_patch(Some("spec.template.spec.containers[0].image: Required value"));
    let (msg, _) = message(&rt::block_on(k.rollback(&to)).unwrap_err());
    assert!(msg.contains("failed (422): spec.template.spec.containers[0].image: Required value (Invalid)"), "{msg}");
    f.refuse_patch(None);

    f.deadline_exceeded(true);
    rt::block_on(k.rollback(&to)).unwrap();
    let (msg, hint) = message(&rt::block_on(k.wait_live(&to, Duration::from_secs(30))).unwrap_err());
    assert!(msg.contains("exceeded its progress deadline"), "{msg}");
    assert!(hint.contains("kubectl describe deployment/api -n prod"), "{hint}");

    f.deadline_exceeded(false);
    f.never_complete(true);
    let err = rt::block_on(k.wait_live(&to, Duration::from_secs(30))).unwrap_err();
    assert!(matches!(err, Error::NotLive { seconds: 3, .. }), "{err}");
}

#[test]
fn a_503_while_waiting_for_the_rollout_is_looked_past_until_the_deadline() {
    let c = ids();
    let f = FakeKubernetes::deployment(TOKEN, &strs(&c), true);
    let (_dir, k) = adapter(&f, false);
    let to = rt::block_on(k.find(&c[0])).unwrap().unwrap();
    rt::block_on(k.rollback(&to)).unwrap();
    // The wait reads the workload once for its revisions, then looks: the first look fails.
    f.unavailable_after(1, 1);
    rt::block_on(k.wait_live(&to, Duration::from_secs(30))).unwrap();
    assert_eq!(f.live_commit().as_deref(), Some(c[0].as_str()));

    f.never_complete(true);
    f.unavailable_after(1, u32::MAX);
    let err = rt::block_on(k.wait_live(&to, Duration::from_secs(30))).unwrap_err();
    assert!(matches!(err, Error::NotLive { seconds: 3, .. }), "{err}");
    assert!(err.to_string().contains("the last look failed") && err.to_string().contains("(503)"), "{err}");
}

#[test]
fn a_429_while_waiting_for_the_rollout_is_looked_past_until_the_deadline() {
    let c = ids();
    let f = FakeKubernetes::deployment(TOKEN, &strs(&c), true);
    let (_dir, k) = adapter(&f, false);
    let to = rt::block_on(k.find(&c[0])).unwrap().unwrap();
    rt::block_on(k.rollback(&to)).unwrap();
    // No `Retry-After`: the call gives up at once, the wait looks again.
    f.rate_limited_after(1, 2);
    rt::block_on(k.wait_live(&to, Duration::from_secs(30))).unwrap();
    assert_eq!(f.live_commit().as_deref(), Some(c[0].as_str()));

    f.never_complete(true);
    f.rate_limited_after(1, u32::MAX);
    let err = rt::block_on(k.wait_live(&to, Duration::from_secs(30))).unwrap_err();
    assert!(matches!(err, Error::NotLive { seconds: 3, .. }), "{err}");
    assert!(
        err.to_string().contains("the last look failed") && err.to_string().contains("rate limited (429)"),
        "{err}"
    );
}

#[test]
fn a_429_is_waited_out_and_a_bad_token_names_the_status() {
    let c = ids();
    let f = FakeKubernetes::deployment(TOKEN, &strs(&c), true);
    let (_dir, k) = adapter(&f, false);
    f.rate_limit(1);
    assert_eq!(rt::block_on(k.current()).unwrap().commit.as_ref(), Some(&c[2]));
    assert_eq!(f.requests()[0].path, f.requests()[1].path, "the request was sent again");

    let (_d2, path) = kubeconfig(&f.url(), "    token: wrong-token-0000\n");
    let bad = Kubernetes::with_sources(&deploy_config(&path, false), &sources(&path));
    let (msg, hint) = message(&rt::block_on(bad.current()).unwrap_err());
    assert!(msg.contains("failed (401): Unauthorized (Unauthorized)"), "{msg}");
    assert!(hint.contains("did not accept the credentials from kubeconfig"), "{hint}");
    assert!(!msg.contains("wrong-token") && !hint.contains("wrong-token"));
}

#[test]
fn argo_cd_and_flux_marks_are_named_with_how_to_suspend_them() {
    let (r, v) = repo();
    let f = FakeKubernetes::deployment(TOKEN, &strs(&v), true);
    let (_dir, k) = adapter(&f, false);
    assert_eq!(rt::block_on(k.auto_deployers()).unwrap(), Some(Vec::new()));
    f.mark(false, "argocd.argoproj.io/tracking-id", "shop:apps/Deployment:prod/api");
    f.mark(true, "kustomize.toolkit.fluxcd.io/name", "apps");
    f.mark(true, "kustomize.toolkit.fluxcd.io/namespace", "flux-system");
    let found = rt::block_on(k.auto_deployers()).unwrap().unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].contains("Argo CD") && found[0].contains("argocd app set shop --sync-policy none"),
        "{}",
        found[0]
    );
    assert!(found[1].contains("flux suspend kustomization apps -n flux-system"), "{}", found[1]);

    let (_d, path) = kubeconfig(&f.url(), &token_user());
    let mut config = Config::default();
    config.deploy = Some(deploy_config(&path, false));
    let rb = Rollback::builder(r.path()).config(config).build().unwrap();
    let a = rb.assess(Some("v1")).unwrap();
    let risks: Vec<_> = a.risks.iter().filter(|x| x.code == RiskCode::ProductionAutoSync).collect();
    assert_eq!(risks.len(), 2, "{:?}", a.risks);
    let plan = rb.plan(Some(Level::Fast), Some("v1")).unwrap();
    assert_eq!(plan.risks.iter().filter(|x| x.code == RiskCode::ProductionAutoSync).count(), 2);
    let promote = plan.steps.iter().find_map(|s| match s {
        Step::Promote { from, to, autodeploy, .. } => Some((from.clone(), to.clone(), *autodeploy)),
        _ => None,
    });
    let (from, to, autodeploy) = promote.expect("a promote step");
    assert_eq!((from.commit.as_ref(), to.commit.as_ref(), autodeploy), (Some(&v[2]), Some(&v[0]), None));
}

#[test]
fn kubeconfig_token_file_ca_and_client_certificate_are_read_relative_to_the_file() {
    let dir = TempDir::new().unwrap();
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    std::fs::write(dir.path().join("certs/token"), format!("{TOKEN}\n")).unwrap();
    std::fs::write(dir.path().join("certs/client.crt"), CLIENT_CRT).unwrap();
    std::fs::write(dir.path().join("certs/client.key"), CLIENT_KEY).unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters:\n- name: c1\n  cluster:\n    server: https://k8s.example:6443/\n    certificate-authority-data: {}\n- name: c2\n  cluster:\n    server: https://other.example\n    insecure-skip-tls-verify: true\ncontexts:\n- name: a\n  context: {{cluster: c1, user: tf, namespace: staging}}\n- name: b\n  context: {{cluster: c2, user: cert}}\nusers:\n- name: tf\n  user:\n    tokenFile: certs/token\n- name: cert\n  user:\n    client-certificate: certs/client.crt\n    client-key: certs/client.key\n",
            b64(CA)
        ),
    )
    .unwrap();
    let a = config::load(&sources(&path)).unwrap();
    assert_eq!(a.server, "https://k8s.example:6443");
    assert_eq!(a.token.as_ref().map(rollback_core::secret::Secret::expose), Some(TOKEN));
    assert_eq!(a.ca_pem.as_deref(), Some(CA.as_bytes()));
    assert_eq!((a.namespace.as_deref(), a.insecure, a.identity_pem.is_none()), (Some("staging"), false, true));
    // The CA parses, the client is built.
    rollback_core::platform::kubernetes::client::Client::new(a, "t".into()).unwrap();

    let b = config::load(&Sources { context: Some("b".into()), ..sources(&path) }).unwrap();
    assert!(b.insecure && b.token.is_none() && b.namespace.is_none());
    let pem = b.identity_pem.clone().unwrap();
    assert!(pem.expose().contains("BEGIN CERTIFICATE") && pem.expose().contains("BEGIN PRIVATE KEY"));
    assert!(!format!("{b:?}").contains("BEGIN PRIVATE KEY"), "the key is not in Debug output");
    rollback_core::platform::kubernetes::client::Client::new(b, "t".into())
        .expect("rustls takes the client certificate");

    // Data forms, and an api_url that replaces the server.
    std::fs::write(
        &path,
        format!(
            "current-context: d\nclusters:\n- name: c\n  cluster: {{server: 'https://x'}}\ncontexts:\n- name: d\n  context: {{cluster: c, user: u}}\nusers:\n- name: u\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n",
            b64(CLIENT_CRT),
            b64(CLIENT_KEY)
        ),
    )
    .unwrap();
    let d = config::load(&Sources { api_url: Some("http://127.0.0.1:9/".into()), ..sources(&path) }).unwrap();
    assert_eq!(d.server, "http://127.0.0.1:9");
    assert!(d.identity_pem.unwrap().expose().ends_with(CLIENT_KEY));
}

#[test]
fn kubeconfig_errors_name_the_problem_and_exec_plugins_are_refused() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("config");
    let load = |text: &str, context: Option<&str>| {
        std::fs::write(&path, text).unwrap();
        config::load(&Sources { context: context.map(str::to_owned), ..sources(&path) }).unwrap_err()
    };
    let base = "current-context: a\nclusters:\n- name: c\n  cluster: {server: 'https://x'}\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n";
    let e = load(
        &format!("{base}users:\n- name: u\n  user:\n    exec:\n      command: aws\n      args: [eks, get-token]\n"),
        None,
    );
    assert!(e.message.contains("user `u` authenticates with an `exec` credential plugin"), "{}", e.message);
    assert!(e.hint.contains("kubectl create token"), "{}", e.hint);
    let e = load(&format!("{base}users:\n- name: u\n  user: {{token: t}}\n"), Some("nope"));
    assert!(e.message.contains("has no context `nope`"), "{}", e.message);
    let e = load(&format!("{base}users: []\n"), None);
    assert!(e.message.contains("names user `u`, which it does not define"), "{}", e.message);
    // A bare token where the user's map belongs: the parser's message does not quote it.
    let e = load(&format!("{base}users:\n- name: u\n  user: k8s-planted-token-9f8e\n"), None);
    assert!(e.message.contains("users[0].user: invalid type: string"), "{}", e.message);
    assert!(!e.message.contains("k8s-planted-token-9f8e"), "{}", e.message);
    let e = load("clusters: [\n", None);
    assert!(e.message.contains("is not a valid kubeconfig"), "{}", e.message);
    let e = load(&format!("{base}users:\n- name: u\n  user:\n    client-certificate-data: eA==\n"), None);
    assert!(e.message.contains("without the other"), "{}", e.message);
    let missing =
        config::load(&Sources { kubeconfig: Some(dir.path().join("nope")), ..Sources::default() }).unwrap_err();
    assert!(missing.message.contains("cannot read the kubeconfig"), "{}", missing.message);
}

#[test]
fn kubeconfig_lists_merge_and_in_cluster_credentials_come_from_the_service_account() {
    let dir = TempDir::new().unwrap();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    std::fs::write(&one, "current-context: a\ncontexts:\n- name: a\n  context: {cluster: c, user: u}\n").unwrap();
    std::fs::write(&two, format!("current-context: b\nclusters:\n- name: c\n  cluster: {{server: 'https://merged'}}\nusers:\n- name: u\n  user: {{token: {TOKEN}}}\n")).unwrap();
    let list = std::env::join_paths([&one, &dir.path().join("absent"), &two]).unwrap().into_string().unwrap();
    let m = config::load(&Sources { kubeconfig_env: Some(list), ..Sources::default() }).unwrap();
    assert_eq!((m.server.as_str(), m.token.map(|t| t.expose().to_owned())), ("https://merged", Some(TOKEN.to_owned())));

    let sa = dir.path().join("sa");
    std::fs::create_dir(&sa).unwrap();
    std::fs::write(sa.join("token"), TOKEN).unwrap();
    std::fs::write(sa.join("ca.crt"), CA).unwrap();
    std::fs::write(sa.join("namespace"), "shop\n").unwrap();
    let s = Sources {
        service_host: Some(("10.96.0.1".into(), Some("443".into()))),
        home: Some(dir.path().to_owned()),
        service_account_dir: sa.clone(),
        ..Sources::default()
    };
    let c = config::load(&s).unwrap();
    assert_eq!(c.server, "https://10.96.0.1:443");
    assert_eq!(
        (c.namespace.as_deref(), c.token.map(|t| t.expose().to_owned())),
        (Some("shop"), Some(TOKEN.to_owned()))
    );
    assert_eq!(c.ca_pem.as_deref(), Some(CA.as_bytes()));
    let v6 = config::load(&Sources { service_host: Some(("fd00::1".into(), None)), ..s }).unwrap();
    assert_eq!(v6.server, "https://[fd00::1]:443");
    // The adapter takes the namespace from the service account when `[deploy]` names none.
    let k = Kubernetes::with_sources(
        &DeployConfig { kubeconfig: None, ..deploy_config(&one, false) },
        &Sources { service_host: Some(("10.96.0.1".into(), None)), service_account_dir: sa, ..Sources::default() },
    );
    assert!(k.describe().starts_with("kubernetes deployment shop/api"), "{}", k.describe());
}

#[test]
fn kubernetes_keys_are_checked() {
    let ok = DeployConfig {
        strategy: DeployStrategy::Kubernetes,
        deployment: Some("api".into()),
        ..DeployConfig::default()
    };
    ok.validate().unwrap();
    let cases = [
        (DeployConfig { deployment: None, ..ok.clone() }, "deploy.deployment"),
        (DeployConfig { statefulset: Some("db".into()), ..ok.clone() }, "deploy.statefulset"),
        (DeployConfig { namespace: Some("Prod_1".into()), ..ok.clone() }, "deploy.namespace"),
        (DeployConfig { service_id: Some("srv".into()), ..ok.clone() }, "deploy.service_id"),
        (DeployConfig { token_env: Some("T".into()), ..ok.clone() }, "deploy.token_env"),
        (DeployConfig { commit_annotation: Some("bad key".into()), ..ok.clone() }, "deploy.commit_annotation"),
        (
            DeployConfig { argocd_instance_label: Some("Bad_Prefix/app".into()), ..ok.clone() },
            "deploy.argocd_instance_label",
        ),
        (
            DeployConfig { strategy: DeployStrategy::Render, service_id: Some("s".into()), ..ok.clone() },
            "deploy.deployment",
        ),
        (
            DeployConfig {
                strategy: DeployStrategy::Push,
                deployment: None,
                kubeconfig: Some("k".into()),
                ..ok.clone()
            },
            "deploy.kubeconfig",
        ),
    ];
    for (c, key) in cases {
        let (k, m) = c.validate().unwrap_err();
        assert_eq!(k, key, "{m}");
    }
    DeployConfig { argocd_instance_label: Some("argocd.argoproj.io/instance".into()), ..ok.clone() }
        .validate()
        .unwrap();
}

/// Against a real cluster, read-only, when `FORGE_TEST_KUBECONFIG`, `FORGE_TEST_K8S_NAMESPACE`
/// and `FORGE_TEST_K8S_DEPLOYMENT` are set (`make test-k8s`).
#[test]
fn live_kubernetes_read_only() {
    let (Ok(path), Ok(ns), Ok(name)) = (
        std::env::var("FORGE_TEST_KUBECONFIG"),
        std::env::var("FORGE_TEST_K8S_NAMESPACE"),
        std::env::var("FORGE_TEST_K8S_DEPLOYMENT"),
    ) else {
        #[allow(clippy::print_stderr)]
        {
            eprintln!(
                "skipped: set FORGE_TEST_KUBECONFIG, FORGE_TEST_K8S_NAMESPACE and FORGE_TEST_K8S_DEPLOYMENT to run against a cluster"
            );
        }
        return;
    };
    live_check(path.into(), ns, name);
}

/// What the live test checks, read-only: the live revision, its commit's revision, the marks.
fn live_check(path: PathBuf, namespace: String, name: String) {
    let c = DeployConfig {
        strategy: DeployStrategy::Kubernetes,
        namespace: Some(namespace),
        deployment: Some(name),
        kubeconfig: Some(path),
        ..DeployConfig::default()
    };
    let k = Kubernetes::from_config(&c);
    let live = rt::block_on(k.current()).expect("the live revision");
    assert!(live.summary.starts_with("revision "), "{}", live.summary);
    if let Some(commit) = &live.commit {
        let found = rt::block_on(k.find(commit)).unwrap().expect("its commit's revision");
        assert!(k.serves(&live, &found));
    }
    rt::block_on(k.auto_deployers()).expect("reads the workload's marks");
}

#[test]
fn the_live_check_passes_against_the_fake() {
    let c = ids();
    let f = FakeKubernetes::deployment(TOKEN, &strs(&c), true);
    let (_dir, path) = kubeconfig(&f.url(), &token_user());
    live_check(path, "prod".into(), "api".into());
    assert!(f.requests().iter().all(|r| r.method == "GET"), "read-only");
}

fn job_adapter(f: &FakeKubernetes, container: Option<&str>) -> (TempDir, Kubernetes) {
    let (dir, path) = kubeconfig(&f.url(), &token_user());
    let c = DeployConfig {
        container: container.map(str::to_owned),
        migrate_command: Some(["alembic", "downgrade", "{revision}"].map(str::to_owned).to_vec()),
        ..deploy_config(&path, false)
    };
    (dir, Kubernetes::with_sources(&c, &sources(&path)))
}

#[test]
fn downgrade_jobs_are_named_after_the_run_and_a_running_one_is_waited_for_not_doubled() {
    let c = ids();
    let f = FakeKubernetes::deployment(TOKEN, &strs(&c), true);
    let (_dir, k) = job_adapter(&f, None);
    assert!(k.runs_downgrades());
    // A crashed run left its Job running: the repeat waits for it.
    f.add_running_job("forge-rollback-downgrade-run-1", 3);
    let ran = rt::block_on(k.run_downgrade("run-1", &["abc".into()])).unwrap();
    assert_eq!(ran, "job forge-rollback-downgrade-run-1");
    assert!(f.requests().iter().all(|r| r.method == "GET"), "no second job");
    // It finished: a new attempt is a new Job.
    let ran = rt::block_on(k.run_downgrade("run-1", &[])).unwrap();
    assert_eq!(ran, "job forge-rollback-downgrade-run-1-2");
    let jobs = f.jobs();
    let argv = &jobs[1].body["spec"]["template"]["spec"]["containers"][0]["command"];
    assert_eq!(argv, &serde_json::json!(["alembic", "downgrade", "base"]));
    let post = f.requests().into_iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(
        (post.path.as_str(), post.header("content-type")),
        ("/apis/batch/v1/namespaces/prod/jobs", Some("application/json"))
    );
    assert_eq!(post.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));

    let (_d, k) = job_adapter(&f, Some("worker"));
    let (msg, hint) = message(&rt::block_on(k.run_downgrade("run-2", &[])).unwrap_err());
    assert!(msg.contains("has no container named `worker`"), "{msg}");
    assert!(hint.contains("`container`"), "{hint}");
}

/// An HTTPS front for the fake on 127.0.0.1: TLS with `server.crt` (signed by the test CA),
/// client certificates verified against the CA when presented, each request forwarded to the
/// fake (one request per connection, as the fake does). Records the client certificates seen.
struct TlsFront {
    port: u16,
    client_certs: std::sync::Arc<std::sync::Mutex<Vec<bool>>>,
}

impl TlsFront {
    fn start(upstream: &str) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        use std::io::{Read, Write};
        use std::sync::{Arc, Mutex};
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(CA.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let verifier =
            rustls::server::WebPkiClientVerifier::builder(Arc::new(roots)).allow_unauthenticated().build().unwrap();
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(include_bytes!("kube/server.crt")).map(Result::unwrap).collect();
        let key = PrivateKeyDer::from_pem_slice(include_bytes!("kube/server.key")).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder().with_client_cert_verifier(verifier).with_single_cert(certs, key).unwrap(),
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = reqwest::Url::parse(upstream).unwrap();
        let up = format!("{}:{}", upstream.host_str().unwrap(), upstream.port().unwrap());
        let client_certs = Arc::new(Mutex::new(Vec::new()));
        let seen = client_certs.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { return };
                let (config, up, seen) = (config.clone(), up.clone(), seen.clone());
                std::thread::spawn(move || {
                    let conn = rustls::ServerConnection::new(config).unwrap();
                    let mut tls = rustls::StreamOwned::new(conn, tcp);
                    let mut req = Vec::new();
                    let mut buf = [0u8; 8192];
                    // Headers, then the body its Content-Length announces.
                    loop {
                        let Ok(n) = tls.read(&mut buf) else { return };
                        if n == 0 {
                            return;
                        }
                        req.extend_from_slice(&buf[..n]);
                        if let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&req[..end]).to_ascii_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if req.len() >= end + 4 + len {
                                break;
                            }
                        }
                    }
                    seen.lock().unwrap().push(tls.conn.peer_certificates().is_some_and(|c| !c.is_empty()));
                    let mut backend = std::net::TcpStream::connect(&up).unwrap();
                    backend.write_all(&req).unwrap();
                    let mut resp = Vec::new();
                    backend.read_to_end(&mut resp).unwrap();
                    let _ = tls.write_all(&resp);
                    tls.conn.send_close_notify();
                    let _ = tls.flush();
                });
            }
        });
        Self { port, client_certs }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

#[test]
fn https_with_the_kubeconfigs_ca_and_client_certificate_reaches_the_api_server() {
    let c = ids();
    let f = FakeKubernetes::deployment(TOKEN, &strs(&c), true);
    let front = TlsFront::start(&f.url());
    let user = format!(
        "    token: {TOKEN}\n    client-certificate-data: {}\n    client-key-data: {}\n",
        b64(CLIENT_CRT),
        b64(CLIENT_KEY)
    );
    let cluster = |extra: &str| format!("{}\n{extra}", front.url());
    let with = |server: String, user: &str| {
        let (dir, path) = kubeconfig(&server, user);
        let k = Kubernetes::with_sources(&deploy_config(&path, false), &sources(&path));
        (dir, k)
    };
    // The CA and the client certificate from the kubeconfig: TLS verifies, the client is known.
    let (_d1, k) = with(cluster(&format!("    certificate-authority-data: {}", b64(CA))), &user);
    assert_eq!(rt::block_on(k.current()).unwrap().commit.as_ref(), Some(&c[2]));
    let seen = front.client_certs.lock().unwrap().clone();
    assert!(!seen.is_empty() && seen.iter().all(|&presented| presented), "the client certificate was sent: {seen:?}");
    // No CA: the server's certificate is not trusted, which waiting does not mend.
    let (_d2, k) = with(cluster(""), &token_user());
    let err = rt::block_on(k.current()).unwrap_err();
    assert!(!err.is_transient(), "{err:?}");
    let (msg, hint) = message(&err);
    assert!(msg.to_lowercase().contains("certificate"), "{msg}");
    assert!(hint.contains("`certificate-authority-data`"), "{hint}");
    // insecure-skip-tls-verify: accepted, without a client certificate.
    front.client_certs.lock().unwrap().clear();
    let (_d3, k) = with(cluster("    insecure-skip-tls-verify: true"), &token_user());
    assert_eq!(rt::block_on(k.current()).unwrap().commit.as_ref(), Some(&c[2]));
    let seen = front.client_certs.lock().unwrap().clone();
    assert!(!seen.is_empty() && seen.iter().all(|&presented| !presented), "{seen:?}");
}

#[test]
fn the_first_look_of_the_rollout_wait_may_fail_too() {
    let c = ids();
    let f = FakeKubernetes::deployment(TOKEN, &strs(&c), true);
    let (_dir, k) = adapter(&f, false);
    let to = rt::block_on(k.find(&c[0])).unwrap().unwrap();
    rt::block_on(k.rollback(&to)).unwrap();
    // The look right after the PATCH (the workload, for the release's revision) gets a `503`.
    f.unavailable_after(0, 1);
    rt::block_on(k.wait_live(&to, Duration::from_secs(30))).unwrap();
    assert_eq!(f.live_commit().as_deref(), Some(c[0].as_str()));
}

#[test]
fn a_rollback_away_from_a_rollout_past_its_deadline_waits_past_its_stale_condition() {
    let c = ids();
    let f = FakeKubernetes::deployment(TOKEN, &strs(&c), true);
    f.stuck_rollout();
    let (_dir, k) = adapter(&f, false);
    // The bad release's own rollout failed: said so at once.
    let bad = rt::block_on(k.current()).unwrap();
    let (msg, _) = message(&rt::block_on(k.wait_live(&bad, Duration::from_secs(30))).unwrap_err());
    assert!(msg.contains(&format!("ReplicaSet \"{}\" has timed out progressing", bad.id)), "{msg}");
    // The rollback's rollout: the condition that names the bad release's ReplicaSet stays
    // until the new one makes progress, and is not this rollout's failure.
    let to = rt::block_on(k.find(&c[0])).unwrap().unwrap();
    rt::block_on(k.rollback(&to)).unwrap();
    rt::block_on(k.wait_live(&to, Duration::from_secs(30))).unwrap();
    assert_eq!(f.live_commit().as_deref(), Some(c[0].as_str()));
}

#[test]
fn a_look_that_gets_no_answer_in_time_is_cut_at_the_waits_deadline() {
    let c = ids();
    let f = FakeKubernetes::deployment(TOKEN, &strs(&c), true);
    let (_dir, k) = adapter(&f, false);
    let to = rt::block_on(k.find(&c[0])).unwrap().unwrap();
    rt::block_on(k.rollback(&to)).unwrap();
    f.never_complete(true);
    // The API server answers the wait's looks only after 8 s; the wait is 3 s.
    f.slow_after(0, u32::MAX, Duration::from_secs(8));
    let err = rt::block_on(k.wait_live(&to, Duration::from_secs(30))).unwrap_err();
    assert!(matches!(err, Error::NotLive { seconds: 3, .. }), "{err}");
    assert!(err.to_string().contains("the API server did not answer within"), "{err}");
    f.slow_after(0, 0, Duration::ZERO);
}
