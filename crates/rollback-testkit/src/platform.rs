//! Fake platform APIs on `127.0.0.1`, speaking each platform's documented API (request shapes,
//! auth headers, pagination, error bodies) and keeping state between requests, so an adapter
//! can be run end to end and the requests it sent asserted afterwards. Failures on command: a
//! rollback the platform refuses, a release that never goes live or ends failed, `429 Too
//! Many Requests` with `Retry-After`.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde_json::{Value, json};

use crate::server::{RecordedRequest, Reply, TestServer};

/// How the fake Railway expects its token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RailwayToken {
    /// `Project-Access-Token: <token>` (and nothing else).
    Project,
    /// `Authorization: Bearer <token>`.
    Account,
}

/// One deployment the fake Railway keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RailwayDeployment {
    /// Its id.
    pub id: String,
    /// `meta.commitHash`.
    pub commit: String,
    /// `SUCCESS`, `REMOVED`, `DEPLOYING`, `FAILED`, ...
    pub status: String,
    /// `canRollback`.
    pub can_rollback: bool,
    /// Status queries left before a `DEPLOYING` deployment settles.
    polls_left: u32,
}

#[derive(Debug)]
struct RailwayState {
    token: String,
    kind: RailwayToken,
    service_id: String,
    environment_id: String,
    /// Newest first.
    deployments: Vec<RailwayDeployment>,
    next_id: u32,
    page_max: usize,
    refuse_rollback: Option<String>,
    never_live: bool,
    end_failed: bool,
    rate_limited: u32,
}

/// A fake Railway GraphQL API (`POST /graphql/v2`): `deployments` with cursor pagination
/// (at most 2 per page, whatever `first` asks, so paging is always exercised) and
/// `deploymentRollback`, which makes a new deployment from the earlier one, `DEPLOYING` for
/// one status query, then `SUCCESS` (the one it replaces becomes `REMOVED`).
pub struct FakeRailway {
    server: TestServer,
    state: Arc<Mutex<RailwayState>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FakeRailway {
    /// Service `srv-1` in environment `env-1`, a deployment per `(id, commit)` (oldest
    /// first; the last one live, the others `REMOVED` and `canRollback`).
    pub fn start(token: &str, kind: RailwayToken, deployments: &[(&str, &str)]) -> Self {
        let n = deployments.len();
        let deployments = deployments
            .iter()
            .enumerate()
            .rev()
            .map(|(i, (id, commit))| RailwayDeployment {
                id: (*id).to_owned(),
                commit: (*commit).to_owned(),
                status: if i + 1 == n { "SUCCESS" } else { "REMOVED" }.to_owned(),
                can_rollback: true,
                polls_left: 0,
            })
            .collect();
        let state = Arc::new(Mutex::new(RailwayState {
            token: token.to_owned(),
            kind,
            service_id: "srv-1".into(),
            environment_id: "env-1".into(),
            deployments,
            next_id: 100,
            page_max: 2,
            refuse_rollback: None,
            never_live: false,
            end_failed: false,
            rate_limited: 0,
        }));
        let s = state.clone();
        let server = TestServer::with_handler(Arc::new(move |req| railway(&mut lock(&s), req)));
        Self { server, state }
    }

    /// The API's URL (`[deploy] api_url`).
    pub fn api_url(&self) -> String {
        self.server.url("/graphql/v2")
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    /// The ids passed to `deploymentRollback`, in order.
    pub fn rollbacks(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(RecordedRequest::body_json)
            .filter(|b| b["query"].as_str().is_some_and(|q| q.contains("deploymentRollback(")))
            .filter_map(|b| b["variables"]["id"].as_str().map(str::to_owned))
            .collect()
    }

    /// The deployments, newest first.
    pub fn deployments(&self) -> Vec<RailwayDeployment> {
        lock(&self.state).deployments.clone()
    }

    /// The commit of the newest `SUCCESS` deployment.
    pub fn live_commit(&self) -> Option<String> {
        lock(&self.state).deployments.iter().find(|d| d.status == "SUCCESS").map(|d| d.commit.clone())
    }

    /// `deploymentRollback` answers a GraphQL error with this message from now on (`None`: works).
    pub fn refuse_rollback(&self, message: Option<&str>) {
        lock(&self.state).refuse_rollback = message.map(str::to_owned);
    }

    /// New deployments stay `DEPLOYING` forever (`true`) or settle (`false`).
    pub fn never_live(&self, on: bool) {
        lock(&self.state).never_live = on;
    }

    /// New deployments end `FAILED`.
    pub fn end_failed(&self, on: bool) {
        lock(&self.state).end_failed = on;
    }

    /// The next `n` requests get `429` with `Retry-After: 1`.
    pub fn rate_limit(&self, n: u32) {
        lock(&self.state).rate_limited = n;
    }

    /// Marks every deployment of `commit` as no longer rollbackable (`canRollback: false`).
    pub fn expire(&self, commit: &str) {
        for d in &mut lock(&self.state).deployments {
            if d.commit == commit {
                d.can_rollback = false;
            }
        }
    }
}

fn gql_error(message: &str) -> Reply {
    Reply::json(200, &json!({"errors": [{"message": message, "locations": [], "extensions": {}}], "data": null}))
}

fn authorized(st: &RailwayState, req: &RecordedRequest) -> bool {
    let project = req.header("project-access-token");
    let bearer = req.header("authorization").and_then(|v| v.strip_prefix("Bearer "));
    match st.kind {
        RailwayToken::Project => project == Some(st.token.as_str()) && bearer.is_none(),
        RailwayToken::Account => bearer == Some(st.token.as_str()) && project.is_none(),
    }
}

fn settle(st: &mut RailwayState) {
    let mut came_live = None;
    for (i, d) in st.deployments.iter_mut().enumerate() {
        if d.status != "DEPLOYING" || st.never_live {
            continue;
        }
        if d.polls_left > 0 {
            d.polls_left -= 1;
        } else if st.end_failed {
            d.status = "FAILED".into();
        } else {
            d.status = "SUCCESS".into();
            came_live = Some(i);
        }
    }
    if let Some(i) = came_live {
        for (j, d) in st.deployments.iter_mut().enumerate() {
            if j != i && d.status == "SUCCESS" {
                d.status = "REMOVED".into();
            }
        }
    }
}

fn railway(st: &mut RailwayState, req: &RecordedRequest) -> Reply {
    if st.rate_limited > 0 {
        st.rate_limited -= 1;
        let mut r = gql_error("Rate limit exceeded");
        r.status = 429;
        r.headers.push(("Retry-After".into(), "1".into()));
        return r;
    }
    if req.method != "POST" || req.path != "/graphql/v2" {
        return Reply::json(404, &json!({"message": "Not Found"}));
    }
    if req.header("content-type") != Some("application/json") {
        return Reply::json(400, &json!({"errors": [{"message": "Must provide query string."}]}));
    }
    if !authorized(st, req) {
        return gql_error("Not Authorized");
    }
    let body = req.body_json();
    let query = body["query"].as_str().unwrap_or("");
    let vars = &body["variables"];
    if query.contains("deploymentRollback(") {
        let id = vars["id"].as_str().unwrap_or("");
        let Some(from) = st.deployments.iter().find(|d| d.id == id).cloned() else {
            return gql_error("Deployment not found");
        };
        if let Some(m) = &st.refuse_rollback {
            return gql_error(m);
        }
        if !from.can_rollback {
            return gql_error("Deployment cannot be rolled back");
        }
        st.next_id += 1;
        let new = RailwayDeployment {
            id: format!("dep-{}", st.next_id),
            commit: from.commit,
            status: "DEPLOYING".into(),
            can_rollback: true,
            polls_left: 1,
        };
        st.deployments.insert(0, new);
        return Reply::json(200, &json!({"data": {"deploymentRollback": true}}));
    }
    if query.contains("deployments(") {
        settle(st);
        let input = &vars["input"];
        let mine = input["serviceId"] == st.service_id.as_str() && input["environmentId"] == st.environment_id.as_str();
        let all: Vec<&RailwayDeployment> = if mine { st.deployments.iter().collect() } else { Vec::new() };
        let first =
            vars["first"].as_u64().map_or(st.page_max, |f| usize::try_from(f).unwrap_or(usize::MAX).min(st.page_max));
        let start = vars["after"]
            .as_str()
            .and_then(|c| c.strip_prefix("cursor-"))
            .and_then(|n| n.parse::<usize>().ok())
            .map_or(0, |n| n + 1);
        let page: Vec<Value> = all
            .iter()
            .enumerate()
            .skip(start)
            .take(first)
            .map(|(i, d)| {
                json!({"cursor": format!("cursor-{i}"), "node": {
                    "id": d.id, "status": d.status, "createdAt": format!("2026-12-0{}T10:00:00.000Z", 1 + i % 9),
                    "canRollback": d.can_rollback,
                    "meta": {"commitHash": d.commit, "branch": "main", "commitMessage": "release"},
                }})
            })
            .collect();
        let end = start + page.len();
        return Reply::json(
            200,
            &json!({"data": {"deployments": {
                "edges": page,
                "pageInfo": {"hasNextPage": end < all.len(), "endCursor": end.checked_sub(1).map(|e| format!("cursor-{e}")), "hasPreviousPage": start > 0, "startCursor": null},
            }}}),
        );
    }
    gql_error("Cannot query field on type \"Query\"")
}

/// One deploy the fake Render keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RenderDeploy {
    /// Its id (`dep-...`).
    pub id: String,
    /// `commit.id`.
    pub commit: String,
    /// `live`, `deactivated`, `update_in_progress`, `build_failed`, ...
    pub status: String,
    /// `trigger`: `new_commit`, `rollback`, ...
    pub trigger: String,
    polls_left: u32,
}

#[derive(Debug)]
struct RenderState {
    token: String,
    service_id: String,
    /// Newest first.
    deploys: Vec<RenderDeploy>,
    next_id: u32,
    page_max: usize,
    auto_deploy: String,
    refuse_rollback: Option<String>,
    never_live: bool,
    end_failed: bool,
    rate_limited: u32,
}

/// A fake Render REST API under `/v1`: `GET /services/{id}/deploys` (cursor pagination, at
/// most 2 per page whatever `limit` asks), `POST /services/{id}/rollback {"deployId"}` (a new
/// deploy, trigger `rollback`, `update_in_progress` for one list, then `live`; the one it
/// replaces becomes `deactivated`), `GET`/`PATCH /services/{id}` (`autoDeploy`). Bearer auth;
/// errors as `{"id", "message"}`.
pub struct FakeRender {
    server: TestServer,
    state: Arc<Mutex<RenderState>>,
}

impl FakeRender {
    /// Service `srv-1` with a deploy per `(id, commit)` (oldest first; the last one live, the
    /// others `deactivated`), `autoDeploy: yes`.
    pub fn start(token: &str, deploys: &[(&str, &str)]) -> Self {
        let n = deploys.len();
        let deploys = deploys
            .iter()
            .enumerate()
            .rev()
            .map(|(i, (id, commit))| RenderDeploy {
                id: (*id).to_owned(),
                commit: (*commit).to_owned(),
                status: if i + 1 == n { "live" } else { "deactivated" }.to_owned(),
                trigger: "new_commit".into(),
                polls_left: 0,
            })
            .collect();
        let state = Arc::new(Mutex::new(RenderState {
            token: token.to_owned(),
            service_id: "srv-1".into(),
            deploys,
            next_id: 100,
            page_max: 2,
            auto_deploy: "yes".into(),
            refuse_rollback: None,
            never_live: false,
            end_failed: false,
            rate_limited: 0,
        }));
        let s = state.clone();
        let server = TestServer::with_handler(Arc::new(move |req| render(&mut lock(&s), req)));
        Self { server, state }
    }

    /// The API's URL (`[deploy] api_url`).
    pub fn api_url(&self) -> String {
        self.server.url("/v1")
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    /// The `deployId`s posted to `/rollback`, in order.
    pub fn rollbacks(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/rollback"))
            .filter_map(|r| r.body_json()["deployId"].as_str().map(str::to_owned))
            .collect()
    }

    /// The deploys, newest first.
    pub fn deploys(&self) -> Vec<RenderDeploy> {
        lock(&self.state).deploys.clone()
    }

    /// The commit of the `live` deploy.
    pub fn live_commit(&self) -> Option<String> {
        lock(&self.state).deploys.iter().find(|d| d.status == "live").map(|d| d.commit.clone())
    }

    /// The service's `autoDeploy` (`yes` or `no`).
    pub fn auto_deploy(&self) -> String {
        lock(&self.state).auto_deploy.clone()
    }

    /// Sets the service's `autoDeploy` (`yes` or `no`), as the dashboard would.
    pub fn set_auto_deploy(&self, value: &str) {
        value.clone_into(&mut lock(&self.state).auto_deploy);
    }

    /// `/rollback` answers `400 {"message": message}` from now on (`None`: works).
    pub fn refuse_rollback(&self, message: Option<&str>) {
        lock(&self.state).refuse_rollback = message.map(str::to_owned);
    }

    /// New deploys stay `update_in_progress` forever (`true`) or settle (`false`).
    pub fn never_live(&self, on: bool) {
        lock(&self.state).never_live = on;
    }

    /// New deploys end `update_failed`.
    pub fn end_failed(&self, on: bool) {
        lock(&self.state).end_failed = on;
    }

    /// The next `n` requests get `429` with `Retry-After: 1`.
    pub fn rate_limit(&self, n: u32) {
        lock(&self.state).rate_limited = n;
    }
}

fn render_error(status: u16, id: &str, message: &str) -> Reply {
    Reply::json(status, &json!({"id": id, "message": message}))
}

fn query_param<'a>(path: &'a str, key: &str) -> Option<&'a str> {
    let (_, q) = path.split_once('?')?;
    q.split('&').filter_map(|kv| kv.split_once('=')).find(|(k, _)| *k == key).map(|(_, v)| v)
}

fn render_deploy_json(d: &RenderDeploy, i: usize) -> Value {
    json!({
        "id": d.id, "status": d.status, "trigger": d.trigger,
        "commit": {"id": d.commit, "message": "release", "createdAt": "2026-11-30T09:00:00Z"},
        "createdAt": format!("2026-12-0{}T10:00:00Z", 1 + i % 9), "updatedAt": "2026-12-03T10:00:00Z",
        "finishedAt": if d.status == "update_in_progress" { Value::Null } else { json!("2026-12-03T10:01:00Z") },
    })
}

fn render_service_json(st: &RenderState) -> Value {
    json!({"id": st.service_id, "name": "api", "type": "web_service", "autoDeploy": st.auto_deploy, "branch": "main", "suspended": "not_suspended"})
}

fn render_settle(st: &mut RenderState) {
    let mut came_live = None;
    for (i, d) in st.deploys.iter_mut().enumerate() {
        if d.status != "update_in_progress" || st.never_live {
            continue;
        }
        if d.polls_left > 0 {
            d.polls_left -= 1;
        } else if st.end_failed {
            d.status = "update_failed".into();
        } else {
            d.status = "live".into();
            came_live = Some(i);
        }
    }
    if let Some(i) = came_live {
        for (j, d) in st.deploys.iter_mut().enumerate() {
            if j != i && d.status == "live" {
                d.status = "deactivated".into();
            }
        }
    }
}

fn render(st: &mut RenderState, req: &RecordedRequest) -> Reply {
    if st.rate_limited > 0 {
        st.rate_limited -= 1;
        let mut r = render_error(429, "rate_limit", "rate limit exceeded");
        r.headers.push(("Retry-After".into(), "1".into()));
        return r;
    }
    if req.header("authorization") != Some(format!("Bearer {}", st.token).as_str()) {
        return render_error(401, "unauthorized", "unauthorized");
    }
    let path = req.path.split('?').next().unwrap_or("");
    let Some(rest) = path.strip_prefix("/v1/services/") else {
        return render_error(404, "not_found", "not found");
    };
    let (service, tail) = rest.split_once('/').map_or((rest, ""), |(s, t)| (s, t));
    if service != st.service_id {
        return render_error(404, "not_found", "service not found");
    }
    match (req.method.as_str(), tail) {
        ("GET", "deploys") => {
            render_settle(st);
            let limit = query_param(&req.path, "limit").and_then(|l| l.parse::<usize>().ok()).unwrap_or(20);
            if !(1..=100).contains(&limit) {
                return render_error(400, "invalid_limit", "limit must be between 1 and 100");
            }
            let start = query_param(&req.path, "cursor")
                .and_then(|c| st.deploys.iter().position(|d| format!("cur-{}", d.id) == c))
                .map_or(0, |i| i + 1);
            let page: Vec<Value> = st
                .deploys
                .iter()
                .enumerate()
                .skip(start)
                .take(limit.min(st.page_max))
                .map(|(i, d)| json!({"deploy": render_deploy_json(d, i), "cursor": format!("cur-{}", d.id)}))
                .collect();
            Reply::json(200, &Value::Array(page))
        }
        ("POST", "rollback") => {
            if req.header("content-type") != Some("application/json") {
                return render_error(400, "invalid_body", "expected a JSON body");
            }
            let id = req.body_json()["deployId"].as_str().unwrap_or("").to_owned();
            let Some(from) = st.deploys.iter().find(|d| d.id == id).cloned() else {
                return render_error(404, "not_found", "deploy not found");
            };
            if let Some(m) = &st.refuse_rollback {
                return render_error(400, "invalid_deploy", m);
            }
            if !matches!(from.status.as_str(), "live" | "deactivated") {
                return render_error(400, "invalid_deploy", "cannot roll back to a deploy that never went live");
            }
            st.next_id += 1;
            let new = RenderDeploy {
                id: format!("dep-r{}", st.next_id),
                commit: from.commit,
                status: "update_in_progress".into(),
                trigger: "rollback".into(),
                polls_left: 1,
            };
            let body = render_deploy_json(&new, 0);
            st.deploys.insert(0, new);
            Reply::json(201, &body)
        }
        ("GET", "") => Reply::json(200, &render_service_json(st)),
        ("PATCH", "") => {
            let body = req.body_json();
            match body["autoDeploy"].as_str() {
                Some(v @ ("yes" | "no")) => v.clone_into(&mut st.auto_deploy),
                Some(_) => return render_error(400, "invalid_auto_deploy", "autoDeploy must be yes or no"),
                None => {}
            }
            Reply::json(200, &render_service_json(st))
        }
        _ => render_error(404, "not_found", "not found"),
    }
}

/// One release the fake Heroku keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HerokuRelease {
    /// Its id.
    pub id: String,
    /// `v1`, `v2`, ...
    pub version: u64,
    /// `succeeded`, `pending`, `failed`.
    pub status: String,
    /// The live one.
    pub current: bool,
    /// "Deploy 1a2b3c4d", "Rollback to v2".
    pub description: String,
    /// Its slug's id.
    pub slug: String,
    polls_left: u32,
}

#[derive(Debug)]
struct HerokuState {
    token: String,
    app: String,
    /// Oldest first.
    releases: Vec<HerokuRelease>,
    /// Slug id → commit.
    slugs: Vec<(String, String)>,
    page_max: usize,
    refuse_rollback: Option<String>,
    never_live: bool,
    end_failed: bool,
    rate_limited: u32,
}

/// A fake Heroku Platform API v3: `GET /apps/{app}/releases` (`Range: version ..; order=desc,
/// max=N`, `206` + `Next-Range` while more remain, at most 2 per page), `GET
/// /apps/{app}/slugs/{id}` (`commit`), `POST /apps/{app}/releases {"release"}` (a new release
/// "Rollback to vN" of the same slug, `pending` for one list, then `succeeded` and current).
/// Requires `Accept: application/vnd.heroku+json; version=3` and Bearer auth; errors as
/// `{"id", "message"}`.
pub struct FakeHeroku {
    server: TestServer,
    state: Arc<Mutex<HerokuState>>,
}

impl FakeHeroku {
    /// App `my-app` with a release per commit (oldest first, each its own slug; the last
    /// current).
    pub fn start(token: &str, commits: &[&str]) -> Self {
        let n = commits.len();
        let releases = commits
            .iter()
            .enumerate()
            .map(|(i, c)| HerokuRelease {
                id: format!("rel-{}", i + 1),
                version: i as u64 + 1,
                status: "succeeded".into(),
                current: i + 1 == n,
                description: format!("Deploy {}", &c[..8.min(c.len())]),
                slug: format!("slug-{}", i + 1),
                polls_left: 0,
            })
            .collect();
        let slugs = commits.iter().enumerate().map(|(i, c)| (format!("slug-{}", i + 1), (*c).to_owned())).collect();
        let state = Arc::new(Mutex::new(HerokuState {
            token: token.to_owned(),
            app: "my-app".into(),
            releases,
            slugs,
            page_max: 2,
            refuse_rollback: None,
            never_live: false,
            end_failed: false,
            rate_limited: 0,
        }));
        let s = state.clone();
        let server = TestServer::with_handler(Arc::new(move |req| heroku(&mut lock(&s), req)));
        Self { server, state }
    }

    /// The API's URL (`[deploy] api_url`).
    pub fn api_url(&self) -> String {
        self.server.url("")
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.server.requests()
    }

    /// The `release` ids posted to roll back, in order.
    pub fn rollbacks(&self) -> Vec<String> {
        self.requests()
            .iter()
            .filter(|r| r.method == "POST")
            .filter_map(|r| r.body_json()["release"].as_str().map(str::to_owned))
            .collect()
    }

    /// The releases, oldest first.
    pub fn releases(&self) -> Vec<HerokuRelease> {
        lock(&self.state).releases.clone()
    }

    /// The commit of the current release.
    pub fn live_commit(&self) -> Option<String> {
        let st = lock(&self.state);
        let cur = st.releases.iter().find(|r| r.current)?;
        st.slugs.iter().find(|(s, _)| *s == cur.slug).map(|(_, c)| c.clone())
    }

    /// Rollbacks answer `422 {"message": message}` from now on (`None`: work).
    pub fn refuse_rollback(&self, message: Option<&str>) {
        lock(&self.state).refuse_rollback = message.map(str::to_owned);
    }

    /// New releases stay `pending` forever (`true`) or settle (`false`).
    pub fn never_live(&self, on: bool) {
        lock(&self.state).never_live = on;
    }

    /// New releases end `failed` (their release phase failed).
    pub fn end_failed(&self, on: bool) {
        lock(&self.state).end_failed = on;
    }

    /// The next `n` requests get `429` with `Retry-After: 1`.
    pub fn rate_limit(&self, n: u32) {
        lock(&self.state).rate_limited = n;
    }
}

fn heroku_release_json(r: &HerokuRelease) -> Value {
    json!({
        "id": r.id, "version": r.version, "status": r.status, "current": r.current,
        "description": r.description, "slug": {"id": r.slug},
        "created_at": format!("2026-12-0{}T10:00:00Z", 1 + r.version % 9), "updated_at": "2026-12-03T10:00:00Z",
        "app": {"id": "app-1", "name": "my-app"}, "user": {"email": "ops@example.com", "id": "u-1"},
    })
}

fn heroku_settle(st: &mut HerokuState) {
    let never = st.never_live;
    let failed = st.end_failed;
    let mut came_live = None;
    for (i, r) in st.releases.iter_mut().enumerate() {
        if r.status != "pending" || never {
            continue;
        }
        if r.polls_left > 0 {
            r.polls_left -= 1;
        } else if failed {
            r.status = "failed".into();
        } else {
            r.status = "succeeded".into();
            came_live = Some(i);
        }
    }
    if let Some(i) = came_live {
        for (j, r) in st.releases.iter_mut().enumerate() {
            r.current = j == i;
        }
    }
}

fn heroku(st: &mut HerokuState, req: &RecordedRequest) -> Reply {
    if st.rate_limited > 0 {
        st.rate_limited -= 1;
        let mut r = render_error(
            429,
            "rate_limit",
            "Your account reached the API rate limit. Please wait a few minutes before making new requests",
        );
        r.headers.push(("Retry-After".into(), "1".into()));
        return r;
    }
    if req.header("accept") != Some("application/vnd.heroku+json; version=3") {
        return render_error(
            400,
            "bad_request",
            "Please specify a version along with Heroku's API MIME type. For example, `Accept: application/vnd.heroku+json; version=3`.",
        );
    }
    if req.header("authorization") != Some(format!("Bearer {}", st.token).as_str()) {
        return render_error(401, "unauthorized", "Invalid credentials provided.");
    }
    let Some(rest) = req.path.strip_prefix(&format!("/apps/{}/", st.app)) else {
        return render_error(404, "not_found", "Couldn't find that app.");
    };
    match (req.method.as_str(), rest) {
        ("GET", "releases") => {
            heroku_settle(st);
            let range = req.header("range").unwrap_or("version ..; order=desc, max=200");
            let max =
                range.split("max=").nth(1).and_then(|m| m.trim().parse::<usize>().ok()).unwrap_or(200).min(st.page_max);
            let below = range.strip_prefix(']').and_then(|r| r.split("..").next()).and_then(|v| v.parse::<u64>().ok());
            let mut desc: Vec<&HerokuRelease> =
                st.releases.iter().rev().filter(|r| below.is_none_or(|b| r.version < b)).collect();
            let more = desc.len() > max;
            desc.truncate(max);
            let body = Value::Array(desc.iter().map(|r| heroku_release_json(r)).collect());
            let mut reply = Reply::json(if more { 206 } else { 200 }, &body);
            if more && let Some(last) = desc.last() {
                reply.headers.push(("Next-Range".into(), format!("]{}..; order=desc, max={max}", last.version)));
            }
            reply.headers.push(("Accept-Ranges".into(), "id, version".into()));
            reply
        }
        ("GET", slug) if slug.starts_with("slugs/") => {
            let id = &slug["slugs/".len()..];
            match st.slugs.iter().find(|(s, _)| s == id) {
                Some((s, c)) => Reply::json(
                    200,
                    &json!({"id": s, "commit": c, "commit_description": "release", "stack": {"name": "heroku-24"}}),
                ),
                None => render_error(404, "not_found", "Couldn't find that slug."),
            }
        }
        ("POST", "releases") => {
            if req.header("content-type") != Some("application/json") {
                return render_error(400, "bad_request", "Invalid JSON body.");
            }
            let want = req.body_json()["release"].as_str().unwrap_or("").to_owned();
            let Some(from) = st.releases.iter().find(|r| r.id == want || r.version.to_string() == want).cloned() else {
                return render_error(404, "not_found", "Couldn't find that release.");
            };
            if let Some(m) = &st.refuse_rollback {
                return render_error(422, "invalid_params", m);
            }
            let version = st.releases.len() as u64 + 1;
            let new = HerokuRelease {
                id: format!("rel-{version}"),
                version,
                status: "pending".into(),
                current: false,
                description: format!("Rollback to v{}", from.version),
                slug: from.slug,
                polls_left: 1,
            };
            let body = heroku_release_json(&new);
            st.releases.push(new);
            Reply::json(201, &body)
        }
        _ => render_error(404, "not_found", "Not found."),
    }
}
