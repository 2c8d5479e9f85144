//! The fake Fly.io APIs: the GraphQL API's releases and the Machines API, on one server.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::lock;
use crate::server::{RecordedRequest, Reply, TestServer};

/// One Machine the fake Fly runs.
#[derive(Clone, Debug, PartialEq)]
pub struct FlyMachine {
    /// Its id.
    pub id: String,
    /// `started`, `replacing`, `starting`, `failed`, `stopped`, ...
    pub state: String,
    /// Its whole config, as the Machines API returns and takes it.
    pub config: Value,
    polls_left: u32,
}

#[derive(Clone, Debug)]
struct FlyRelease {
    id: String,
    version: u64,
    image: String,
    tag: String,
    commit: String,
}

#[derive(Debug)]
struct FlyState {
    token: String,
    app: String,
    /// Oldest first.
    releases: Vec<FlyRelease>,
    machines: Vec<FlyMachine>,
    /// Updates accepted: (machine, image, release id).
    accepted: Vec<(String, String, String)>,
    page_max: usize,
    refuse_update: Option<String>,
    /// Updates that still succeed before `refuse_update` applies.
    refuse_after: u32,
    never_start: bool,
    fail_start: bool,
    rate_limited: u32,
}

/// A fake Fly.io on one server: `POST /graphql` answers `app(name) { releases(first, after) }`
/// (newest first, at most 2 per page whatever `first` asks, `pageInfo { hasNextPage endCursor
/// }`) and `app(name) { release(id) }`, errors as `{"errors": [{"message"}]}`; the Machines
/// API answers `GET /v1/apps/{app}/machines` and `POST /v1/apps/{app}/machines/{id}
/// {"config"}` (the Machine goes `replacing` for one list, then `started`), errors as
/// `{"error"}`. Auth on both: `Authorization: Bearer <token>`, or the token itself when it is
/// a `FlyV1 ...` macaroon. Each release's image carries its commit as the `GH_SHA` label, as
/// flyctl builds it in GitHub Actions.
pub struct FakeFly {
    server: TestServer,
    state: Arc<Mutex<FlyState>>,
}

impl FakeFly {
    /// App `my-app` with a release per commit (oldest first, `complete`, each its own image)
    /// and two Machines (`m-1`, `m-2`) running the last one.
    pub fn start(token: &str, commits: &[&str]) -> Self {
        let releases: Vec<FlyRelease> = commits
            .iter()
            .enumerate()
            .map(|(i, c)| FlyRelease {
                id: format!("rel-{}", i + 1),
                version: i as u64 + 1,
                image: format!("registry.fly.io/my-app:deployment-0{}", i + 1),
                tag: format!("deployment-0{}", i + 1),
                commit: (*c).to_owned(),
            })
            .collect();
        let machines = match releases.last() {
            Some(last) => ["m-1", "m-2"]
                .iter()
                .map(|id| FlyMachine {
                    id: (*id).to_owned(),
                    state: "started".into(),
                    config: json!({
                        "image": last.image,
                        "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
                        "services": [{"protocol": "tcp", "internal_port": 8000, "ports": [{"port": 443, "handlers": ["tls", "http"]}]}],
                        "env": {"PRIMARY_REGION": "ams"},
                        "metadata": {"fly_release_id": last.id, "fly_release_version": last.version.to_string(), "fly_process_group": "app", "fly_platform_version": "v2"},
                    }),
                    polls_left: 0,
                })
                .collect(),
            None => Vec::new(),
        };
        let state = Arc::new(Mutex::new(FlyState {
            token: token.to_owned(),
            app: "my-app".into(),
            releases,
            machines,
            accepted: Vec::new(),
            page_max: 2,
            refuse_update: None,
            refuse_after: 0,
            never_start: false,
            fail_start: false,
            rate_limited: 0,
        }));
        let s = state.clone();
        let server = TestServer::with_handler(Arc::new(move |req| fly(&mut lock(&s), req)));
        Self { server, state }
    }

    /// The Machines API's URL (`[deploy] api_url`).
    pub fn api_url(&self) -> String {
        self.server.url("")
    }

    /// The GraphQL API's URL (`[deploy] graphql_url`).
    pub fn graphql_url(&self) -> String {
        self.server.url("/graphql")
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    /// The Machine updates accepted: `(machine id, image)`, in order (refused ones are in
    /// [`FakeFly::requests`] only).
    pub fn updates(&self) -> Vec<(String, String)> {
        lock(&self.state).accepted.iter().map(|(m, i, _)| (m.clone(), i.clone())).collect()
    }

    /// The releases rolled to (`metadata.fly_release_id` of accepted updates), one per run of
    /// updates for the same release.
    pub fn rollbacks(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for (_, _, release) in &lock(&self.state).accepted {
            if out.last() != Some(release) {
                out.push(release.clone());
            }
        }
        out
    }

    /// The Machines.
    pub fn machines(&self) -> Vec<FlyMachine> {
        lock(&self.state).machines.clone()
    }

    /// The commit every Machine runs, if they all run one release's image.
    pub fn live_commit(&self) -> Option<String> {
        let st = lock(&self.state);
        let image = st.machines.first()?.config["image"].as_str()?.to_owned();
        if st.machines.iter().any(|m| m.config["image"].as_str() != Some(image.as_str())) {
            return None;
        }
        st.releases.iter().find(|r| r.image == image).map(|r| r.commit.clone())
    }

    /// Machine updates answer `422 {"error": message}` from now on (`None`: work).
    pub fn refuse_update(&self, message: Option<&str>) {
        self.refuse_update_after(0, message);
    }

    /// The next `ok` Machine updates work, the ones after answer `422 {"error": message}`
    /// (a rollback that fails half way).
    pub fn refuse_update_after(&self, ok: u32, message: Option<&str>) {
        let mut st = lock(&self.state);
        st.refuse_update = message.map(str::to_owned);
        st.refuse_after = ok;
    }

    /// Updated Machines stay `starting` forever (`true`) or start (`false`).
    pub fn never_start(&self, on: bool) {
        lock(&self.state).never_start = on;
    }

    /// Updated Machines end `failed`.
    pub fn fail_start(&self, on: bool) {
        lock(&self.state).fail_start = on;
    }

    /// The next `n` requests get `429` with `Retry-After: 1`.
    pub fn rate_limit(&self, n: u32) {
        lock(&self.state).rate_limited = n;
    }
}

fn fly_error(status: u16, message: &str) -> Reply {
    Reply::json(status, &json!({"error": message}))
}

fn gql_error(status: u16, message: &str) -> Reply {
    Reply::json(status, &json!({"data": null, "errors": [{"message": message}]}))
}

fn release_json(r: &FlyRelease) -> Value {
    json!({
        "id": r.id, "version": r.version, "status": "complete",
        "createdAt": format!("2026-12-0{}T10:00:00Z", 1 + r.version % 9),
        "imageRef": r.image,
        "image": {"tag": r.tag, "config": {"architecture": "amd64", "config": {"Labels": {"GH_SHA": r.commit, "fly.app": "my-app"}}}},
    })
}

fn settle(st: &mut FlyState) {
    for m in &mut st.machines {
        if !matches!(m.state.as_str(), "replacing" | "starting") {
            continue;
        }
        if m.polls_left > 0 {
            m.polls_left -= 1;
            m.state = "starting".into();
        } else if st.never_start {
            m.state = "starting".into();
        } else if st.fail_start {
            m.state = "failed".into();
        } else {
            m.state = "started".into();
        }
    }
}

fn machine_json(m: &FlyMachine) -> Value {
    json!({
        "id": m.id, "name": format!("name-{}", m.id), "state": m.state, "region": "ams",
        "instance_id": format!("inst-{}", m.config["metadata"]["fly_release_version"].as_str().unwrap_or("0")),
        "private_ip": "fdaa::3", "config": m.config,
        "created_at": "2026-12-01T10:00:00Z", "updated_at": "2026-12-03T10:00:00Z",
    })
}

fn authorized(st: &FlyState, req: &RecordedRequest) -> bool {
    let want = if st.token.starts_with("FlyV1 ") { st.token.clone() } else { format!("Bearer {}", st.token) };
    req.header("authorization") == Some(want.as_str())
}

fn fly(st: &mut FlyState, req: &RecordedRequest) -> Reply {
    if st.rate_limited > 0 {
        st.rate_limited -= 1;
        let mut r = fly_error(429, "rate limit exceeded");
        r.headers.push(("Retry-After".into(), "1".into()));
        return r;
    }
    if req.path == "/graphql" {
        return graphql(st, req);
    }
    if !authorized(st, req) {
        return fly_error(401, "unauthorized");
    }
    let Some(rest) = req.path.strip_prefix(&format!("/v1/apps/{}/machines", st.app)) else {
        return fly_error(404, "app not found");
    };
    match (req.method.as_str(), rest) {
        ("GET", "") => {
            settle(st);
            Reply::json(200, &Value::Array(st.machines.iter().map(machine_json).collect()))
        }
        ("POST", id) if id.starts_with('/') => {
            let id = &id[1..];
            if req.header("content-type") != Some("application/json") {
                return fly_error(400, "invalid request body");
            }
            let config = req.body_json()["config"].clone();
            if !config.is_object() || config["image"].as_str().is_none_or(str::is_empty) {
                return fly_error(400, "config.image is required");
            }
            if let Some(m) = &st.refuse_update {
                if st.refuse_after == 0 {
                    return fly_error(422, m);
                }
                st.refuse_after -= 1;
            }
            let Some(machine) = st.machines.iter_mut().find(|m| m.id == id) else {
                return fly_error(404, "machine not found");
            };
            let image = config["image"].as_str().unwrap_or("").to_owned();
            let release = config["metadata"]["fly_release_id"].as_str().unwrap_or("").to_owned();
            machine.config = config;
            machine.state = "replacing".into();
            machine.polls_left = 1;
            let reply = Reply::json(200, &machine_json(machine));
            st.accepted.push((id.to_owned(), image, release));
            reply
        }
        _ => fly_error(404, "not found"),
    }
}

fn graphql(st: &FlyState, req: &RecordedRequest) -> Reply {
    if req.method != "POST" || req.header("content-type") != Some("application/json") {
        return gql_error(400, "expected a JSON POST");
    }
    if !authorized(st, req) {
        return gql_error(401, "You must be authenticated to view this.");
    }
    let body = req.body_json();
    let query = body["query"].as_str().unwrap_or("");
    let vars = &body["variables"];
    if vars["app"].as_str() != Some(st.app.as_str()) {
        return gql_error(200, "Could not find App");
    }
    if query.contains("releases(") {
        let first = vars["first"].as_u64().map_or(25, |f| usize::try_from(f).unwrap_or(25));
        let start = vars["after"]
            .as_str()
            .and_then(|c| st.releases.iter().rev().position(|r| format!("cur-{}", r.id) == c))
            .map_or(0, |i| i + 1);
        let newest_first: Vec<&FlyRelease> = st.releases.iter().rev().collect();
        let page: Vec<&FlyRelease> = newest_first.iter().skip(start).take(first.min(st.page_max)).copied().collect();
        let more = start + page.len() < newest_first.len();
        let end = page.last().map(|r| format!("cur-{}", r.id));
        return Reply::json(
            200,
            &json!({"data": {"app": {"releases": {
                "nodes": page.iter().map(|r| release_json(r)).collect::<Vec<_>>(),
                "pageInfo": {"hasNextPage": more, "hasPreviousPage": start > 0, "endCursor": end, "startCursor": null},
                "totalCount": newest_first.len(),
            }}}}),
        );
    }
    if query.contains("release(id:") {
        let id = vars["id"].as_str().unwrap_or("");
        let release = st.releases.iter().find(|r| r.id == id).map_or(Value::Null, release_json);
        return Reply::json(200, &json!({"data": {"app": {"release": release}}}));
    }
    gql_error(200, "unknown query")
}
