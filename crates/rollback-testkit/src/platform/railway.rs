//! The fake Railway GraphQL API.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::lock;
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
    auto_deploy: bool,
}

/// A fake Railway GraphQL API (`POST /graphql/v2`): `deployments` with cursor pagination
/// (at most 2 per page, whatever `first` asks, so paging is always exercised) and
/// `deploymentRollback`, which makes a new deployment from the earlier one, `DEPLOYING` for
/// one status query, then `SUCCESS` (the one it replaces becomes `REMOVED`).
pub struct FakeRailway {
    server: TestServer,
    state: Arc<Mutex<RailwayState>>,
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
            auto_deploy: true,
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

    /// The service instance's auto-deploy (`serviceInstanceAutoDeployStatus.enabled`).
    pub fn auto_deploy(&self) -> bool {
        lock(&self.state).auto_deploy
    }

    /// Sets auto-deploy, as the dashboard would.
    pub fn set_auto_deploy(&self, on: bool) {
        lock(&self.state).auto_deploy = on;
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

    /// The live deployment crashes after starting (status `CRASHED`), as a bad release does.
    pub fn crash_live(&self) {
        if let Some(d) = lock(&self.state).deployments.iter_mut().find(|d| d.status == "SUCCESS") {
            d.status = "CRASHED".into();
        }
    }

    /// Sets deployment `id`'s status, as Railway would after something outside the test.
    pub fn set_status(&self, id: &str, status: &str) {
        if let Some(d) = lock(&self.state).deployments.iter_mut().find(|d| d.id == id) {
            status.clone_into(&mut d.status);
        }
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
            // What it replaces is removed, running or crashed.
            if j != i && matches!(d.status.as_str(), "SUCCESS" | "SLEEPING" | "CRASHED") {
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
    let mine = |v: &Value| {
        v["serviceId"] == st.service_id.as_str()
            && v["environmentId"] == st.environment_id.as_str()
            && v["projectId"] == "prj-1"
    };
    if query.contains("serviceInstanceAutoDeployStatus(") {
        if !mine(vars) {
            return gql_error("Service instance not found");
        }
        return Reply::json(
            200,
            &json!({"data": {"serviceInstanceAutoDeployStatus": {"enabled": st.auto_deploy, "canEnable": true, "reason": null}}}),
        );
    }
    if query.contains("serviceInstanceAutoDeployUpdate(") {
        let input = &vars["input"];
        if !mine(input) {
            return gql_error("Service instance not found");
        }
        let Some(on) = input["enabled"].as_bool() else {
            return gql_error(
                "Variable \"$input\" got invalid value; Field \"enabled\" of required type \"Boolean!\" was not provided.",
            );
        };
        st.auto_deploy = on;
        return Reply::json(200, &json!({"data": {"serviceInstanceAutoDeployUpdate": {"enabled": on}}}));
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
                    "id": d.id, "projectId": "prj-1", "status": d.status, "createdAt": format!("2026-12-0{}T10:00:00.000Z", 1 + i % 9),
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
