//! The fake Render REST API.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::lock;
use crate::server::{RecordedRequest, Reply, TestServer};

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
    retry_after: String,
    hiccups: u32,
    limits_while_deploying: u32,
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
            retry_after: "1".into(),
            hiccups: 0,
            limits_while_deploying: 0,
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

    /// Deploys in progress go live after `lists` more lists of the deploys (new ones too: no
    /// longer `never_live`).
    pub fn finish_after(&self, lists: u32) {
        let mut st = lock(&self.state);
        st.never_live = false;
        for d in st.deploys.iter_mut().filter(|d| d.status == "update_in_progress") {
            d.polls_left = lists;
        }
    }

    /// Someone deploys `commit` outside forge-rollback (a push, the dashboard): a new deploy
    /// `id`, live at once (`in_progress`: `update_in_progress` until `finish_after`).
    pub fn deploy(&self, id: &str, commit: &str, in_progress: bool) {
        let mut st = lock(&self.state);
        if !in_progress {
            for d in st.deploys.iter_mut().filter(|d| d.status == "live") {
                d.status = "deactivated".into();
            }
        }
        let status = if in_progress { "update_in_progress" } else { "live" };
        st.deploys.insert(
            0,
            RenderDeploy {
                id: id.to_owned(),
                commit: commit.to_owned(),
                status: status.into(),
                trigger: "new_commit".into(),
                polls_left: if in_progress { u32::MAX } else { 0 },
            },
        );
    }

    /// The next `n` lists of the deploys made while a deploy is in progress answer
    /// `502 Bad Gateway` (a platform API's bad moment during the wait).
    pub fn hiccup_while_deploying(&self, n: u32) {
        lock(&self.state).hiccups = n;
    }

    /// The next `n` lists of the deploys made while a deploy is in progress answer `429` with
    /// no `Retry-After` (a limit the client's retries of one call cannot wait out).
    pub fn rate_limit_while_deploying(&self, n: u32) {
        lock(&self.state).limits_while_deploying = n;
    }

    /// New deploys end `update_failed`.
    pub fn end_failed(&self, on: bool) {
        lock(&self.state).end_failed = on;
    }

    /// The next `n` requests get `429` with `Retry-After: 1`.
    pub fn rate_limit(&self, n: u32) {
        self.rate_limit_with(n, "1");
    }

    /// The next `n` requests get `429` with this `Retry-After` (seconds, or an HTTP date).
    pub fn rate_limit_with(&self, n: u32, retry_after: &str) {
        let mut st = lock(&self.state);
        st.rate_limited = n;
        retry_after.clone_into(&mut st.retry_after);
    }
}

pub(super) fn render_error(status: u16, id: &str, message: &str) -> Reply {
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
        r.headers.push(("Retry-After".into(), st.retry_after.clone()));
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
            if st.limits_while_deploying > 0 && st.deploys.iter().any(|d| d.status == "update_in_progress") {
                st.limits_while_deploying -= 1;
                return render_error(429, "rate_limit", "rate limit exceeded");
            }
            if st.hiccups > 0 && st.deploys.iter().any(|d| d.status == "update_in_progress") {
                st.hiccups -= 1;
                // What a proxy in front of the API sends: not Render's JSON.
                return Reply { status: 502, headers: Vec::new(), body: "Bad Gateway".into() };
            }
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
