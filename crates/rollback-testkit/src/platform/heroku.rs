//! The fake Heroku Platform API v3.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::lock;
use super::render::render_error;
use crate::server::{RecordedRequest, Reply, TestServer};

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
