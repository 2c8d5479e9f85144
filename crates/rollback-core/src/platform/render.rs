//! Render: roll a service back to an earlier deploy through the public REST API
//! (`https://api.render.com/v1`, `Authorization: Bearer <API key>`).
//!
//! - `GET /services/{serviceId}/deploys?limit=N[&cursor=C]`: `[{"deploy": {...}, "cursor"}]`,
//!   newest first; the next page starts after the last item's cursor, until an empty page. The live deploy is the
//!   newest with status `live`; the target's is the newest whose `commit.id` is the target
//!   commit and that was live once (`live` or `deactivated`: it built and ran).
//! - `POST /services/{serviceId}/rollback {"deployId"}`: Render starts a *new* deploy (trigger
//!   `rollback`) from the earlier one's build, for the same commit; so a deploy "serves" a
//!   release when it is that release or was built from the same commit.
//! - A deploy newer than the live one whose status is `created`, `queued`,
//!   `build_in_progress`, `pre_deploy_in_progress` or `update_in_progress` is in flight: it
//!   replaces the live deploy when it ends ([`Deployer::in_flight`]).
//! - The wait polls the first page until the newest live deploy serves the release; a newer
//!   deploy of it ending `build_failed`, `update_failed`, `pre_deploy_failed` or `canceled`
//!   fails the wait at once.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::api::{Api, Poll, poll_live};
use crate::deploy::DeployConfig;
use crate::production::{Deployer, Release, Result};
use crate::vcs::CommitId;

/// Render's public API.
pub const DEFAULT_API_URL: &str = "https://api.render.com/v1";
/// The token's variable when `[deploy] token_env` is not set.
pub const DEFAULT_TOKEN_ENV: &str = "RENDER_API_KEY";
/// Deploys asked for per page (Render's maximum).
const PAGE: u32 = 100;
/// Most pages read when looking for a commit's deploy.
const MAX_PAGES: u32 = 10;

/// A Render service.
#[derive(Debug)]
pub struct Render {
    api: Api,
    service_id: String,
    live_timeout: Duration,
    poll: Duration,
}

#[derive(Debug, Deserialize)]
struct Item {
    deploy: Deploy,
    cursor: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
struct Deploy {
    id: String,
    status: String,
    #[serde(default)]
    commit: Option<Commit>,
    #[serde(rename = "createdAt", default)]
    created_at: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
struct Commit {
    id: String,
}

impl Deploy {
    /// Not ended yet: building, running its pre-deploy command, or starting.
    fn in_flight(&self) -> bool {
        matches!(
            self.status.as_str(),
            "created" | "queued" | "build_in_progress" | "pre_deploy_in_progress" | "update_in_progress"
        )
    }

    fn commit(&self) -> Option<CommitId> {
        self.commit.as_ref().and_then(|c| CommitId::new(&c.id))
    }

    fn release(&self) -> Release {
        let created =
            self.created_at.as_deref().map(|c| format!(" (created {})", c.get(..10).unwrap_or(c))).unwrap_or_default();
        Release { id: self.id.clone(), commit: self.commit(), summary: format!("deploy {}{created}", self.id) }
    }
}

impl Render {
    /// The adapter `[deploy]` describes (`strategy = "render"`, validated).
    pub fn from_config(c: &DeployConfig) -> Self {
        let service_id = c.service_id.clone().unwrap_or_default();
        Self {
            api: Api {
                target: format!("render service {service_id}"),
                base: c.api_url.clone().unwrap_or_else(|| DEFAULT_API_URL.to_owned()).trim_end_matches('/').to_owned(),
                token_env: c.token_env.clone().unwrap_or_else(|| DEFAULT_TOKEN_ENV.to_owned()),
                token_what: "a Render API key",
            },
            service_id,
            live_timeout: Duration::from_secs_f64(c.live_timeout_secs),
            poll: Duration::from_secs_f64(c.poll_secs),
        }
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/services/{}{tail}", self.api.base, self.service_id)
    }

    /// Pages of deploys, newest first, until `stop` says enough or the pages run out.
    async fn deploys(&self, pages: u32, limit: u32, mut stop: impl FnMut(&Deploy) -> bool) -> Result<Vec<Deploy>> {
        let token = self.api.token()?;
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..pages {
            let mut url = reqwest::Url::parse(&self.url("/deploys"))
                .map_err(|e| self.api.error(format!("`api_url` is not a URL ({e})"), None))?;
            url.query_pairs_mut().append_pair("limit", &limit.to_string());
            if let Some(c) = &cursor {
                url.query_pairs_mut().append_pair("cursor", c);
            }
            let resp = self
                .api
                .send(&token, |client| {
                    client.get(url.clone()).bearer_auth(token.expose()).header("Accept", "application/json")
                })
                .await?;
            if resp.status != 200 {
                return Err(self.api.status_error("listing deploys", &resp, &token));
            }
            let items: Vec<Item> = resp.json(&self.api)?;
            let n = items.len();
            let mut done = false;
            for item in items {
                done |= stop(&item.deploy);
                cursor = item.cursor;
                all.push(item.deploy);
            }
            // A short page is not the last one for sure: only an empty page is.
            if done || n == 0 || cursor.is_none() {
                break;
            }
        }
        Ok(all)
    }
}

#[async_trait]
impl Deployer for Render {
    fn describe(&self) -> String {
        format!("{} (code and image; environment variables stay as they are)", self.api.target)
    }

    async fn current(&self) -> Result<Release> {
        let all = self.deploys(MAX_PAGES, PAGE, |d| d.status == "live").await?;
        all.iter().find(|d| d.status == "live").map(Deploy::release).ok_or_else(|| {
            self.api.error(
                "no deploy is live".to_owned(),
                Some("check `service_id` in `[deploy]`, and that the service is not suspended".to_owned()),
            )
        })
    }

    async fn in_flight(&self) -> Result<Option<Release>> {
        let newer = self.deploys(MAX_PAGES, PAGE, |d| d.status == "live").await?;
        Ok(newer.iter().take_while(|d| d.status != "live").find(|d| d.in_flight()).map(Deploy::release))
    }

    async fn wait_settled(&self, pending: &Release, timeout: Duration) -> Result<()> {
        let check = || async { Ok(if self.in_flight().await?.is_none() { Poll::Live } else { Poll::Pending }) };
        poll_live(|| self.describe(), pending, timeout.min(self.live_timeout), self.poll, check).await
    }

    async fn find(&self, commit: &CommitId) -> Result<Option<Release>> {
        let ran =
            |d: &Deploy| d.commit().as_ref() == Some(commit) && matches!(d.status.as_str(), "live" | "deactivated");
        let all = self.deploys(MAX_PAGES, PAGE, ran).await?;
        Ok(all.iter().find(|d| ran(d)).map(Deploy::release))
    }

    async fn rollback(&self, to: &Release) -> Result<()> {
        let live = self.current().await?;
        if self.serves(&live, to) {
            return Ok(());
        }
        let token = self.api.token()?;
        let body = serde_json::json!({"deployId": to.id}).to_string();
        let resp = self
            .api
            .send(&token, |client| {
                client
                    .post(self.url("/rollback"))
                    .bearer_auth(token.expose())
                    .header("Accept", "application/json")
                    .header("Content-Type", "application/json")
                    .body(body.clone())
            })
            .await?;
        if !(200..300).contains(&resp.status) {
            return Err(self.api.status_error(&format!("rolling back to deploy {}", to.id), &resp, &token));
        }
        Ok(())
    }

    async fn wait_live(&self, release: &Release, timeout: Duration) -> Result<()> {
        let check = || async {
            let page = self.deploys(1, 10, |_| true).await?;
            if let Some(live) = page.iter().find(|d| d.status == "live")
                && self.serves(&live.release(), release)
            {
                return Ok(Poll::Live);
            }
            if let Some(newest) = page.first()
                && newest.commit().is_some()
                && newest.commit() == release.commit
                && matches!(newest.status.as_str(), "build_failed" | "update_failed" | "pre_deploy_failed" | "canceled")
            {
                return Ok(Poll::Failed(self.api.error(
                    format!("deploy {} of {} ended {}", newest.id, release, newest.status),
                    Some("read the deploy's logs on Render; resume the run once it serves, or undo it".to_owned()),
                )));
            }
            Ok(Poll::Pending)
        };
        poll_live(|| self.describe(), release, timeout.min(self.live_timeout), self.poll, check).await
    }

    fn serves(&self, live: &Release, release: &Release) -> bool {
        live.id == release.id || (live.commit.is_some() && live.commit == release.commit)
    }

    fn switches_autodeploy(&self) -> bool {
        true
    }

    /// `GET /services/{id}`: `autoDeploy` is `yes`.
    async fn autodeploy(&self) -> Result<bool> {
        #[derive(Deserialize)]
        struct Service {
            #[serde(rename = "autoDeploy")]
            auto_deploy: String,
        }
        let token = self.api.token()?;
        let resp = self
            .api
            .send(&token, |client| {
                client.get(self.url("")).bearer_auth(token.expose()).header("Accept", "application/json")
            })
            .await?;
        if resp.status != 200 {
            return Err(self.api.status_error("reading the service", &resp, &token));
        }
        Ok(resp.json::<Service>(&self.api)?.auto_deploy == "yes")
    }

    /// [`Deployer::autodeploy`], then `PATCH /services/{id} {"autoDeploy"}` if it differs.
    async fn set_autodeploy(&self, on: bool) -> Result<bool> {
        let was = self.autodeploy().await?;
        let token = self.api.token()?;
        if was == on {
            return Ok(was);
        }
        let body = serde_json::json!({"autoDeploy": if on { "yes" } else { "no" }}).to_string();
        let resp = self
            .api
            .send(&token, |client| {
                client
                    .patch(self.url(""))
                    .bearer_auth(token.expose())
                    .header("Accept", "application/json")
                    .header("Content-Type", "application/json")
                    .body(body.clone())
            })
            .await?;
        if resp.status != 200 {
            return Err(self.api.status_error("switching autoDeploy", &resp, &token));
        }
        Ok(was)
    }
}
