//! The fake Kubernetes API server: `apps/v1` Deployments with their ReplicaSets, or a
//! StatefulSet with its ControllerRevisions, in namespace `prod`, and a controller that rolls a
//! patched template out over a few reads; Argo CD's Application API and settings when a test
//! installs them.

mod argocd;
mod jobs;

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::lock;
use crate::server::{RecordedRequest, Reply, TestServer};

/// The namespace of the fake's workload.
pub const NAMESPACE: &str = "prod";
/// The workload's name.
pub const NAME: &str = "api";
const UID: &str = "uid-api-0001";

/// One revision the fake keeps (a ReplicaSet or a ControllerRevision).
#[derive(Clone, Debug, PartialEq)]
pub struct KubeRevision {
    /// Its name (`api-<hash>`).
    pub name: String,
    /// Its revision number.
    pub number: i64,
    /// Its pod template (without `pod-template-hash`).
    pub template: Value,
    /// The uid of the object that owns it.
    pub owner: String,
}

#[derive(Debug)]
struct KubeState {
    token: String,
    statefulset: bool,
    generation: i64,
    observed: i64,
    template: Value,
    paused: bool,
    labels: Value,
    annotations: Value,
    /// Annotations the controller copied from the Deployment to its ReplicaSets.
    copied: serde_json::Map<String, Value>,
    revisions: Vec<KubeRevision>,
    /// Reads of the workload left before a rollout completes.
    polls_left: u32,
    /// The revision the StatefulSet's pods run (`status.currentRevision`).
    current_revision: String,
    never_complete: bool,
    deadline_exceeded: bool,
    refuse_patch: Option<String>,
    rate_limited: u32,
    /// Reads of the workload to answer normally, then how many to answer `503`.
    unavailable: (u32, u32),
    unavailable_as_429: bool,
    page_max: usize,
    /// The Jobs created: name, body, reads left before it ends, how it ended.
    jobs: Vec<FakeJob>,
    /// Where a Job's command runs (the "image"), with which environment; `None`: Jobs succeed
    /// without running anything.
    job_runner: Option<(std::path::PathBuf, Vec<(String, String)>)>,
    job_fails: bool,
    /// Reads of a new Job before it ends.
    job_reads: u32,
    /// A Job that has not ended when it is deleted ends just before (its pod finished as the
    /// delete came).
    jobs_end_at_delete: bool,
    /// Requests under `/jobs` to answer normally, then how many to answer `503`.
    jobs_unavailable: (u32, u32),
    /// The ReplicaSet whose rollout exceeded its progress deadline (`stuck_rollout`): its
    /// `ProgressDeadlineExceeded` condition stays, naming it, until a later rollout completes.
    timed_out: Option<String>,
    /// Reads of the workload to answer at once, then how many to answer only after a while.
    slow: (u32, u32, std::time::Duration),
    argo: argocd::ArgoCd,
}

/// A Job the fake was asked to create.
#[derive(Clone, Debug, PartialEq)]
pub struct FakeJob {
    /// Its name.
    pub name: String,
    /// The body `POST`ed.
    pub body: Value,
    polls_left: u32,
    /// Whether it succeeded, once it ended (its command ran).
    ended: Option<bool>,
    /// What its command printed (stdout and stderr), when it ran.
    pub output: String,
    /// Whether it was deleted (and how: the `propagationPolicy` asked for); a deleted Job that
    /// had not ended never runs its command.
    pub deleted: Option<String>,
}

impl FakeJob {
    /// Whether it still runs: neither ended nor deleted.
    pub fn active(&self) -> bool {
        self.ended.is_none() && self.deleted.is_none()
    }
}

/// A fake Kubernetes API server speaking the REST shapes `kubectl` uses:
/// `GET`/`PATCH /apis/apps/v1/namespaces/prod/deployments/api` (`application/json-patch+json`)
/// or `.../statefulsets/api` (`application/strategic-merge-patch+json`), `GET
/// .../replicasets` and `.../controllerrevisions` (`labelSelector` required and applied;
/// `limit` with `continue` tokens, at most 2 items a page whatever `limit` asks). Bearer auth;
/// errors are `Status` objects; `429` with `Retry-After` on command.
///
/// A strategic-merge patch may also change the template in part (`kubectl rollout restart`,
/// `kubectl set image`: [`FakeKubernetes::rollout_restart`], [`FakeKubernetes::set_image`]).
/// A patch of the template makes the controller reuse the revision with the same template
/// (renumbered to the next revision, as the real controller does) or make a new one; the
/// rollout completes after two reads of the workload, or never (`never_complete`), or fails
/// with `ProgressDeadlineExceeded` naming its ReplicaSet (`deadline_exceeded`); a rollout
/// stuck so before the test (`stuck_rollout`) keeps that condition past a later patch until
/// the new rollout progresses, as kube-controller-manager does. Reads may be answered late
/// (`slow_after`) or with `503`.
///
/// `batch/v1` Jobs: `POST`, `GET` and `DELETE .../jobs/{name}`. A Job is `active` for a set
/// number of reads (`job_reads`), then its command runs (`run_jobs_in`, the kubelet of this
/// fake) and it has succeeded or failed; a deleted Job that had not ended never runs it (unless
/// `jobs_end_at_delete`: it ends just before the delete takes effect). A `DELETE` answers the
/// Job as it stood then.
pub struct FakeKubernetes {
    server: TestServer,
    state: Arc<Mutex<KubeState>>,
}

/// The pod template the fake gives a commit: the commit in the `forge-rollback/commit`
/// annotation (`annotate`) or only in the image tag.
pub fn kube_template(commit: &str, annotate: bool) -> Value {
    let annotations = if annotate { json!({"forge-rollback/commit": commit}) } else { json!({}) };
    json!({
        "metadata": {"creationTimestamp": null, "labels": {"app": NAME}, "annotations": annotations},
        "spec": {
            "containers": [{
                "name": "web",
                "image": format!("registry.example/api:{}", &commit[..commit.len().min(12)]),
                "env": [{"name": "RELEASE", "value": commit}],
                "resources": {}, "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent",
            }],
            "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
        },
    })
}

/// A short, stable hash of a template (the controller's `pod-template-hash`).
fn hash(template: &Value) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in template.to_string().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{:010x}", h & 0xff_ffff_ffff)
}

fn status(code: u16, reason: &str, message: &str) -> Reply {
    Reply::json(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message, "reason": reason, "code": code}),
    )
}

impl FakeKubernetes {
    /// Deployment `prod/api` (2 replicas) with a ReplicaSet per commit, revisions 1.. in order,
    /// the last one live; `annotate`: whether templates carry the commit annotation.
    pub fn deployment(token: &str, commits: &[&str], annotate: bool) -> Self {
        Self::start(token, commits, annotate, false)
    }

    /// StatefulSet `prod/api` with a ControllerRevision per commit, the last one live.
    pub fn statefulset(token: &str, commits: &[&str]) -> Self {
        Self::start(token, commits, true, true)
    }

    fn start(token: &str, commits: &[&str], annotate: bool, statefulset: bool) -> Self {
        let revisions: Vec<KubeRevision> = commits
            .iter()
            .zip(1..)
            .map(|(c, n)| {
                let template = kube_template(c, annotate);
                KubeRevision { name: format!("{NAME}-{}", hash(&template)), number: n, template, owner: UID.into() }
            })
            .collect();
        let live = revisions.last().expect("at least one commit");
        let state = Arc::new(Mutex::new(KubeState {
            token: token.to_owned(),
            statefulset,
            generation: i64::try_from(commits.len()).unwrap_or(1),
            observed: i64::try_from(commits.len()).unwrap_or(1),
            template: live.template.clone(),
            paused: false,
            labels: json!({"app": NAME}),
            annotations: json!({
                "deployment.kubernetes.io/revision": live.number.to_string(),
                "kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Deployment\"}",
                "kubernetes.io/change-cause": change_cause(&live.template),
            }),
            current_revision: live.name.clone(),
            copied: serde_json::Map::new(),
            revisions,
            polls_left: 0,
            never_complete: false,
            deadline_exceeded: false,
            refuse_patch: None,
            rate_limited: 0,
            unavailable: (0, 0),
            unavailable_as_429: false,
            page_max: 2,
            jobs: Vec::new(),
            job_runner: None,
            job_fails: false,
            job_reads: 1,
            jobs_end_at_delete: false,
            jobs_unavailable: (0, 0),
            timed_out: None,
            slow: (0, 0, std::time::Duration::ZERO),
            argo: argocd::ArgoCd::default(),
        }));
        let s = state.clone();
        let server = TestServer::with_handler(Arc::new(move |req| {
            let (reply, wait) = {
                let mut st = lock(&s);
                let wait = slow_read(&mut st, req);
                (kube(&mut st, req), wait)
            };
            // An API server that takes its time: the answer comes late (the state is not held).
            if let Some(wait) = wait {
                std::thread::sleep(wait);
            }
            reply
        }));
        Self { server, state }
    }

    /// The API server's URL (`[deploy] api_url`, or a kubeconfig's `server`).
    pub fn url(&self) -> String {
        self.server.url("")
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    /// The `PATCH`es received: content type and body.
    pub fn patches(&self) -> Vec<(String, Value)> {
        self.requests()
            .iter()
            .filter(|r| r.method == "PATCH")
            .map(|r| (r.header("content-type").unwrap_or("").to_owned(), r.body_json()))
            .collect()
    }

    /// The commit the workload's template carries (its `RELEASE` env value).
    pub fn live_commit(&self) -> Option<String> {
        lock(&self.state).template.pointer("/spec/containers/0/env/0/value").and_then(Value::as_str).map(str::to_owned)
    }

    /// The workload's pod template.
    pub fn template(&self) -> Value {
        lock(&self.state).template.clone()
    }

    /// The revisions, in creation order.
    pub fn revisions(&self) -> Vec<KubeRevision> {
        lock(&self.state).revisions.clone()
    }

    /// Adds a ReplicaSet (ControllerRevision) of `commit` owned by another object, with the
    /// workload's labels: the adapter must not take it for one of the workload's.
    pub fn add_foreign_revision(&self, commit: &str) {
        let mut st = lock(&self.state);
        let template = kube_template(commit, true);
        st.revisions.push(KubeRevision {
            name: format!("other-{}", hash(&template)),
            number: 99,
            template,
            owner: "uid-other".into(),
        });
    }

    /// Sets `spec.paused`.
    pub fn set_paused(&self, on: bool) {
        lock(&self.state).paused = on;
    }

    /// Adds a label or annotation to the workload (Argo CD, Flux marks).
    pub fn mark(&self, label: bool, key: &str, value: &str) {
        let mut st = lock(&self.state);
        if label {
            st.labels[key] = json!(value);
        } else {
            // The controller copies a Deployment's annotations to its ReplicaSets: as if the
            // mark had been there when they were made.
            st.annotations[key] = json!(value);
            st.copied.insert(key.to_owned(), json!(value));
        }
    }

    /// Rollouts never complete.
    pub fn never_complete(&self, on: bool) {
        lock(&self.state).never_complete = on;
    }

    /// Rollouts fail with `ProgressDeadlineExceeded`.
    pub fn deadline_exceeded(&self, on: bool) {
        lock(&self.state).deadline_exceeded = on;
    }

    /// `PATCH` answers `422 Invalid` with `message` (`None`: works).
    pub fn refuse_patch(&self, message: Option<&str>) {
        lock(&self.state).refuse_patch = message.map(str::to_owned);
    }

    /// Jobs run their container's `command` as a local process in `dir` with `env` (the
    /// kubelet of this fake), and succeed when it exits 0.
    pub fn run_jobs_in(&self, dir: &std::path::Path, env: &[(&str, &str)]) {
        lock(&self.state).job_runner =
            Some((dir.to_owned(), env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()));
    }

    /// Adds a Job named `name` that is running and succeeds after `reads` reads (one a crashed
    /// run left behind).
    pub fn add_running_job(&self, name: &str, reads: u32) {
        let body = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": NAMESPACE}});
        self.push_running_job(name, reads, body);
    }

    fn push_running_job(&self, name: &str, reads: u32, body: serde_json::Value) {
        lock(&self.state).jobs.push(FakeJob {
            name: name.to_owned(),
            body,
            polls_left: reads,
            ended: None,
            output: String::new(),
            deleted: None,
        });
    }

    /// Adds a Job named `name` that is running and ends after `reads` reads, when its pod
    /// runs `argv` (see [`Self::run_jobs_in`]): one a run killed while it waited left behind.
    pub fn add_running_job_with(&self, name: &str, reads: u32, argv: &[&str]) {
        let body = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"backoffLimit": 0, "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "web", "command": argv}]}}}});
        self.push_running_job(name, reads, body);
    }

    /// Deletes the revision (ReplicaSet, ControllerRevision) `name`, as the controller does
    /// past `revisionHistoryLimit`.
    pub fn prune_revision(&self, name: &str) {
        lock(&self.state).revisions.retain(|r| r.name != name);
    }

    /// New Jobs end (run their command) after `reads` reads of them (1 unless told).
    pub fn job_reads(&self, reads: u32) {
        lock(&self.state).job_reads = reads;
    }

    /// A Job that has not ended when a `DELETE` of it comes ends just before it (its pod
    /// finished as the delete was sent): the answer to the delete shows it succeeded or failed,
    /// and it is gone.
    pub fn jobs_end_at_delete(&self, on: bool) {
        lock(&self.state).jobs_end_at_delete = on;
    }

    /// Every Job that has not ended ends at its next read.
    pub fn end_jobs(&self) {
        for j in &mut lock(&self.state).jobs {
            j.polls_left = 0;
        }
    }

    /// After `skip` more requests under `.../jobs`, the next `n` answer `503`.
    pub fn jobs_unavailable_after(&self, skip: u32, n: u32) {
        lock(&self.state).jobs_unavailable = (skip, n);
    }

    /// The live rollout has exceeded its progress deadline (its pods never became ready), as
    /// kube-controller-manager leaves it: `ProgressDeadlineExceeded` naming its ReplicaSet.
    /// A rollout to another template makes progress and completes; until it does, the old
    /// condition stays (`syncRolloutStatus` keeps a timed-out condition it finds).
    pub fn stuck_rollout(&self) {
        let mut st = lock(&self.state);
        let live = st.revisions.iter().find(|r| r.owner == UID && r.template == st.template).map(|r| r.name.clone());
        st.timed_out = live;
    }

    /// Jobs fail (`BackoffLimitExceeded`) without running.
    pub fn jobs_fail(&self, on: bool) {
        lock(&self.state).job_fails = on;
    }

    /// The Jobs created, in order.
    pub fn jobs(&self) -> Vec<FakeJob> {
        lock(&self.state).jobs.clone()
    }

    /// Sends what `kubectl rollout restart` sends: a strategic-merge `PATCH` of the workload
    /// that sets its pod template's `kubectl.kubernetes.io/restartedAt` annotation to `at`. The
    /// controller then rolls out a new revision of the same image, command and env. Returns
    /// the answer's status code.
    pub fn rollout_restart(&self, at: &str) -> u16 {
        self.kubectl_patch(
            &json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": at}}}}}),
        )
    }

    /// Sends what `kubectl set image <workload> <container>=<image>` sends: a strategic-merge
    /// `PATCH` of that container's image (a deploy of another build, the rest of the template
    /// as it is). Returns the answer's status code.
    pub fn set_image(&self, container: &str, image: &str) -> u16 {
        self.kubectl_patch(
            &json!({"spec": {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}}),
        )
    }

    /// `PATCH`es the workload over HTTP with the strategic-merge patch `patch`, as kubectl does.
    fn kubectl_patch(&self, patch: &Value) -> u16 {
        let (token, workloads) = {
            let st = lock(&self.state);
            (st.token.clone(), if st.statefulset { "statefulsets" } else { "deployments" })
        };
        let body = patch.to_string();
        let host = self.url().trim_start_matches("http://").to_owned();
        let request = format!(
            "PATCH /apis/apps/v1/namespaces/{NAMESPACE}/{workloads}/{NAME} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/strategic-merge-patch+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut stream = std::net::TcpStream::connect(&host).expect("connect to the fake API server");
        std::io::Write::write_all(&mut stream, request.as_bytes()).expect("send the PATCH");
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer).expect("read the answer");
        answer.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0)
    }

    /// The next `n` requests get `429` with `Retry-After: 1`.
    pub fn rate_limit(&self, n: u32) {
        lock(&self.state).rate_limited = n;
    }

    /// After `skip` more reads of the workload, the next `n` are answered only after `wait`
    /// (an API server that stopped answering in time).
    pub fn slow_after(&self, skip: u32, n: u32, wait: std::time::Duration) {
        lock(&self.state).slow = (skip, n, wait);
    }

    /// After `skip` more reads of the workload, the next `n` answer `503 Service Unavailable`
    /// (an API server restarting behind its load balancer).
    pub fn unavailable_after(&self, skip: u32, n: u32) {
        let mut st = lock(&self.state);
        st.unavailable = (skip, n);
        st.unavailable_as_429 = false;
    }

    /// As [`Self::unavailable_after`], answering `429 Too Many Requests` with no
    /// `Retry-After` (API priority and fairness shedding load).
    pub fn rate_limited_after(&self, skip: u32, n: u32) {
        let mut st = lock(&self.state);
        st.unavailable = (skip, n);
        st.unavailable_as_429 = true;
    }
}

/// How long to hold the answer to `req` back ([`FakeKubernetes::slow_after`]).
fn slow_read(st: &mut KubeState, req: &RecordedRequest) -> Option<std::time::Duration> {
    let workload = if st.statefulset { "statefulsets" } else { "deployments" };
    let path = req.path.split('?').next().unwrap_or("");
    if req.method != "GET" || path != format!("/apis/apps/v1/namespaces/{NAMESPACE}/{workload}/{NAME}") {
        return None;
    }
    match st.slow {
        (_, 0, _) => None,
        (0, n, wait) => {
            st.slow.1 = n - 1;
            Some(wait)
        }
        (skip, _, _) => {
            st.slow.0 = skip - 1;
            None
        }
    }
}

/// The `kubernetes.io/change-cause` a release's ReplicaSet carries: `deploy <commit>`.
fn change_cause(template: &Value) -> String {
    format!("deploy {}", template.pointer("/spec/containers/0/env/0/value").and_then(Value::as_str).unwrap_or("?"))
}

/// A strategic merge of `patch` into `into`, as far as the fake needs it: maps are merged key
/// by key (`null` deletes a key, `$patch` is a directive, not a key), lists of named items
/// (containers, env) item by name, anything else replaces.
fn merge(into: &mut Value, patch: &Value) {
    if let (Some(items), Some(base)) = (patch.as_array(), into.as_array_mut())
        && items.iter().chain(base.iter()).all(|i| i.get("name").is_some())
    {
        for item in items {
            match base.iter_mut().find(|b| b["name"] == item["name"]) {
                Some(b) => merge(b, item),
                None => base.push(item.clone()),
            }
        }
        return;
    }
    let Some(keys) = patch.as_object() else {
        *into = patch.clone();
        return;
    };
    if !into.is_object() {
        *into = json!({});
    }
    let Some(map) = into.as_object_mut() else { return };
    for (k, v) in keys.iter().filter(|(k, _)| *k != "$patch") {
        if v.is_null() {
            map.remove(k);
        } else {
            merge(map.entry(k.clone()).or_insert(Value::Null), v);
        }
    }
}

fn without_hash(mut t: Value) -> Value {
    if let Some(l) = t.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        l.remove("pod-template-hash");
    }
    t
}

fn with_hash(t: &Value, name: &str) -> Value {
    let mut t = t.clone();
    let h = name.rsplit('-').next().unwrap_or("");
    t["metadata"]["labels"]["pod-template-hash"] = json!(h);
    t
}

fn query<'a>(path: &'a str, key: &str) -> Option<&'a str> {
    let (_, q) = path.split_once('?')?;
    q.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| v)
}

/// The name of the ReplicaSet of the workload's template.
fn live_name(st: &KubeState) -> Option<String> {
    st.revisions.iter().find(|r| r.owner == UID && r.template == st.template).map(|r| r.name.clone())
}

fn replicas_status(st: &KubeState) -> Value {
    let stuck = st.timed_out.is_some() && st.timed_out == live_name(st);
    let done = st.polls_left == 0 && !st.never_complete && !st.deadline_exceeded && !stuck;
    let updated = if done { 2 } else { 1 };
    let mut s = json!({
        "observedGeneration": st.observed, "replicas": if done { 2 } else { 3 }, "updatedReplicas": updated,
        "availableReplicas": if done { 2 } else { 1 }, "readyReplicas": if done { 2 } else { 1 },
    });
    if st.statefulset {
        let update = st.revisions.iter().find(|r| r.owner == UID && without_hash(r.template.clone()) == st.template);
        s["updateRevision"] = json!(update.map(|r| r.name.clone()));
        s["currentRevision"] = json!(st.current_revision);
    } else if st.deadline_exceeded || st.timed_out.is_some() {
        // The controller's message names the ReplicaSet whose rollout timed out.
        let rs = if st.deadline_exceeded { live_name(st) } else { st.timed_out.clone() };
        s["conditions"] = json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": format!("ReplicaSet \"{}\" has timed out progressing.", rs.unwrap_or_default())}]);
    } else {
        s["conditions"] = json!([{"type": "Progressing", "status": "True", "reason": if done { "NewReplicaSetAvailable" } else { "ReplicaSetUpdated" }, "message": "progressing"}]);
    }
    s
}

fn workload_json(st: &KubeState) -> Value {
    let kind = if st.statefulset { "StatefulSet" } else { "Deployment" };
    let mut spec = json!({"replicas": 2, "selector": {"matchLabels": {"app": NAME}}, "template": st.template});
    if st.statefulset {
        spec["updateStrategy"] = json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}});
        spec["updateStrategy"]["rollingUpdate"] = json!({});
    } else {
        spec["paused"] = json!(st.paused);
        spec["revisionHistoryLimit"] = json!(10);
    }
    json!({
        "kind": kind, "apiVersion": "apps/v1",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "uid": UID, "generation": st.generation, "resourceVersion": format!("{}", 1000 + st.generation), "labels": st.labels, "annotations": st.annotations},
        "spec": spec, "status": replicas_status(st),
    })
}

fn revision_json(st: &KubeState, r: &KubeRevision) -> Value {
    let meta = |ann: Value| {
        json!({"name": r.name, "namespace": NAMESPACE, "uid": format!("uid-{}", r.name), "labels": {"app": NAME, "pod-template-hash": r.name.rsplit('-').next()}, "annotations": ann,
               "ownerReferences": [{"apiVersion": "apps/v1", "kind": if st.statefulset { "StatefulSet" } else { "Deployment" }, "name": NAME, "uid": r.owner, "controller": true, "blockOwnerDeletion": true}]})
    };
    if st.statefulset {
        let mut t = r.template.clone();
        t["$patch"] = json!("replace");
        json!({"kind": "ControllerRevision", "apiVersion": "apps/v1", "metadata": meta(json!({})), "revision": r.number, "data": {"spec": {"template": t}}})
    } else {
        json!({"kind": "ReplicaSet", "apiVersion": "apps/v1", "metadata": meta({
            let mut a = st.copied.clone();
            a.insert("deployment.kubernetes.io/revision".into(), json!(r.number.to_string()));
            a.insert("kubernetes.io/change-cause".into(), json!(change_cause(&r.template)));
            Value::Object(a)
        }),
               "spec": {"replicas": 0, "selector": {"matchLabels": {"app": NAME}}, "template": with_hash(&r.template, &r.name)}})
    }
}

/// The controller: the revision of `template` becomes the newest (reused or new).
fn roll(st: &mut KubeState, template: Value) {
    let next = st.revisions.iter().filter(|r| r.owner == UID).map(|r| r.number).max().unwrap_or(0) + 1;
    if st.template == template {
        return;
    }
    st.template = template.clone();
    st.generation += 1;
    st.observed = st.generation;
    st.polls_left = 2;
    if let Some(r) = st.revisions.iter_mut().find(|r| r.owner == UID && r.template == template) {
        r.number = next;
    } else {
        st.revisions.push(KubeRevision {
            name: format!("{NAME}-{}", hash(&template)),
            number: next,
            template,
            owner: UID.into(),
        });
    }
    st.annotations["deployment.kubernetes.io/revision"] = json!(next.to_string());
}

fn kube(st: &mut KubeState, req: &RecordedRequest) -> Reply {
    if st.rate_limited > 0 {
        st.rate_limited -= 1;
        let mut r = status(
            429,
            "TooManyRequests",
            "the server has received too many requests and has asked us to try again later",
        );
        r.headers.push(("Retry-After".into(), "1".into()));
        return r;
    }
    if req.header("authorization") != Some(format!("Bearer {}", st.token).as_str()) {
        return status(401, "Unauthorized", "Unauthorized");
    }
    let path = req.path.split('?').next().unwrap_or("");
    if let Some(rest) = path.strip_prefix(&format!("/apis/batch/v1/namespaces/{NAMESPACE}/jobs")) {
        return jobs::jobs(st, req, rest);
    }
    if let Some(rest) = path.strip_prefix("/apis/argoproj.io/") {
        return argocd::applications(&st.argo, req, rest);
    }
    if let Some(rest) = path.strip_prefix("/api/v1/namespaces/") {
        return argocd::config_map(&st.argo, req, rest);
    }
    let (workloads, revisions) =
        if st.statefulset { ("statefulsets", "controllerrevisions") } else { ("deployments", "replicasets") };
    let base = format!("/apis/apps/v1/namespaces/{NAMESPACE}/");
    let Some(rest) = path.strip_prefix(&base) else {
        return status(404, "NotFound", "the server could not find the requested resource");
    };
    let one = format!("{workloads}/{NAME}");
    match (req.method.as_str(), rest) {
        ("GET", r) if r == one => {
            match st.unavailable {
                (0, 0) => {}
                (0, n) => {
                    st.unavailable.1 = n - 1;
                    if st.unavailable_as_429 {
                        return status(429, "TooManyRequests", "too many requests, please try again later");
                    }
                    return status(503, "ServiceUnavailable", "the server is currently unable to handle the request");
                }
                (skip, _) => st.unavailable.0 = skip - 1,
            }
            if st.polls_left > 0 && !st.never_complete && !st.deadline_exceeded {
                st.polls_left -= 1;
                if st.polls_left == 0 {
                    let update = replicas_status(st)["updateRevision"].as_str().unwrap_or("").to_owned();
                    st.current_revision = update;
                    if st.timed_out != live_name(st) {
                        // Progress: the controller replaces the old deadline condition.
                        st.timed_out = None;
                    }
                }
            }
            Reply::json(200, &workload_json(st))
        }
        ("GET", r) if r.starts_with(&format!("{workloads}/")) => {
            status(404, "NotFound", &format!("{workloads}.apps \"{}\" not found", &r[workloads.len() + 1..]))
        }
        ("GET", r) if r == revisions => {
            if query(&req.path, "labelSelector") != Some(&format!("app%3D{NAME}")) {
                return status(400, "BadRequest", "expected labelSelector app=api");
            }
            let limit = query(&req.path, "limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(usize::MAX);
            let start = match query(&req.path, "continue") {
                None => 0,
                Some(c) => match c.strip_prefix("c-").and_then(|n| n.parse().ok()) {
                    Some(n) => n,
                    None => return status(410, "Expired", "the provided continue parameter is too old"),
                },
            };
            let take = limit.min(st.page_max);
            let items: Vec<Value> = st.revisions.iter().skip(start).take(take).map(|r| revision_json(st, r)).collect();
            let more = start + take < st.revisions.len();
            let meta = if more {
                json!({"resourceVersion": "5000", "continue": format!("c-{}", start + take)})
            } else {
                json!({"resourceVersion": "5000"})
            };
            let kind = if st.statefulset { "ControllerRevisionList" } else { "ReplicaSetList" };
            Reply::json(200, &json!({"kind": kind, "apiVersion": "apps/v1", "metadata": meta, "items": items}))
        }
        ("PATCH", r) if r == one => {
            if let Some(m) = &st.refuse_patch {
                return status(422, "Invalid", m);
            }
            let body = req.body_json();
            let smp = req.header("content-type") == Some("application/strategic-merge-patch+json");
            let template = if smp {
                // A rollback's `$patch: replace` of the template, or a change merged into it
                // (`kubectl rollout restart`'s annotation).
                let Some(patch) = body.pointer("/spec/template") else {
                    return status(422, "Invalid", "spec.template: Required value");
                };
                let mut t = st.template.clone();
                if patch["$patch"] == "replace" {
                    t = patch.clone();
                    if let Some(o) = t.as_object_mut() {
                        o.remove("$patch");
                    }
                } else {
                    merge(&mut t, patch);
                }
                t
            } else {
                if st.statefulset || req.header("content-type") != Some("application/json-patch+json") {
                    return status(415, "UnsupportedMediaType", "the body of the request was in an unknown format");
                }
                let ops = body.as_array().cloned().unwrap_or_default();
                let Some(op) = ops.iter().find(|o| o["op"] == "replace" && o["path"] == "/spec/template") else {
                    return status(422, "Invalid", "expected a replace of /spec/template");
                };
                if let Some(a) = ops.iter().find(|o| o["op"] == "replace" && o["path"] == "/metadata/annotations") {
                    st.annotations = a["value"].clone();
                }
                op["value"].clone()
            };
            if template.pointer("/metadata/labels/pod-template-hash").is_some() {
                return status(
                    422,
                    "Invalid",
                    "spec.template.metadata.labels: pod-template-hash is set by the controller",
                );
            }
            if st.paused {
                st.template = template;
                st.generation += 1;
            } else {
                roll(st, template);
            }
            Reply::json(200, &workload_json(st))
        }
        _ => status(404, "NotFound", "the server could not find the requested resource"),
    }
}
