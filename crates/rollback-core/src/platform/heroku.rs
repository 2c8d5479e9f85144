//! Heroku: roll an app back to an earlier release through the Platform API v3
//! (`https://api.heroku.com`, `Accept: application/vnd.heroku+json; version=3`, Bearer).
//!
//! - `GET /apps/{app}/releases` with `Range: version ..; order=desc, max=N`: newest first; a
//!   `206` carries `Next-Range`, sent back as `Range` for the next page. The live release is the
//!   one with `current: true`.
//! - A release's commit is its slug's: `GET /apps/{app}/slugs/{slug.id}` → `commit` (looked up
//!   once per slug). The target's release is the newest `succeeded` one whose slug was built
//!   from the target commit.
//! - `POST /apps/{app}/releases {"release": id}`: Heroku makes a *new* release ("Rollback to
//!   vN") with the earlier slug **and its config vars**; so a release "serves" another when it
//!   is that release or runs the same commit.
//! - The wait polls the newest releases until the current one serves the release with status
//!   `succeeded`; a newer release of it with status `failed` (its release phase failed) fails
//!   the wait at once.
//!
//! - A release newer than the current one with status `pending` (its release phase running)
//!   is in flight: it becomes current when it succeeds ([`Deployer::in_flight`]).
//!
//! Freeze: the Platform API has no automatic-deploy switch. GitHub auto-deploy lives in an
//! undocumented service the Heroku CLI only calls when it sets a pipeline up
//! (`kolkrabbi.heroku.com/apps/{app}/github`), so it is not driven here:
//! [`Deployer::no_autodeploy_switch`] tells the operator what to do instead.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;

use super::api::{Api, Poll, Response, poll_live};
use crate::deploy::DeployConfig;
use crate::production::{Deployer, Release, Result};
use crate::secret::Secret;
use crate::vcs::CommitId;

/// Heroku's public API.
pub const DEFAULT_API_URL: &str = "https://api.heroku.com";
/// The token's variable when `[deploy] token_env` is not set.
pub const DEFAULT_TOKEN_ENV: &str = "HEROKU_API_KEY";
const ACCEPT: &str = "application/vnd.heroku+json; version=3";
/// Releases asked for per page.
const PAGE: u32 = 100;
/// Most pages read when looking for a commit's release.
const MAX_PAGES: u32 = 10;

/// A Heroku app.
#[derive(Debug)]
pub struct Heroku {
    api: Api,
    app: String,
    live_timeout: Duration,
    poll: Duration,
    /// Slug id → commit, looked up once.
    slugs: Mutex<HashMap<String, Option<String>>>,
}

#[derive(Clone, Debug, Deserialize)]
struct HerokuRelease {
    id: String,
    version: u64,
    status: String,
    #[serde(default)]
    current: bool,
    #[serde(default)]
    description: String,
    #[serde(default)]
    slug: Option<SlugRef>,
    #[serde(default)]
    created_at: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
struct SlugRef {
    id: String,
}

#[derive(Debug, Deserialize)]
struct Slug {
    commit: Option<String>,
}

impl Heroku {
    /// The adapter `[deploy]` describes (`strategy = "heroku"`, validated).
    pub fn from_config(c: &DeployConfig) -> Self {
        let app = c.app.clone().unwrap_or_default();
        Self {
            api: Api {
                target: format!("heroku app {app}"),
                base: c.api_url.clone().unwrap_or_else(|| DEFAULT_API_URL.to_owned()).trim_end_matches('/').to_owned(),
                token_env: c.token_env.clone().unwrap_or_else(|| DEFAULT_TOKEN_ENV.to_owned()),
                token_what: "a Heroku API key (`heroku auth:token`, or an OAuth authorization)",
            },
            app,
            live_timeout: Duration::from_secs_f64(c.live_timeout_secs),
            poll: Duration::from_secs_f64(c.poll_secs),
            slugs: Mutex::default(),
        }
    }

    fn url(&self, tail: &str) -> String {
        format!("{}/apps/{}{tail}", self.api.base, self.app)
    }

    async fn get(&self, token: &Secret, url: &str, range: Option<&str>) -> Result<Response> {
        self.api
            .send(token, |client| {
                let req = client.get(url).bearer_auth(token.expose()).header("Accept", ACCEPT);
                match range {
                    Some(r) => req.header("Range", r),
                    None => req,
                }
            })
            .await
    }

    /// Pages of releases, newest first, until `stop` says enough or the pages run out.
    async fn releases(
        &self,
        pages: u32,
        max: u32,
        mut stop: impl FnMut(&HerokuRelease) -> bool,
    ) -> Result<Vec<HerokuRelease>> {
        let token = self.api.token()?;
        let mut all = Vec::new();
        let mut range = format!("version ..; order=desc, max={max}");
        for _ in 0..pages {
            let resp = self.get(&token, &self.url("/releases"), Some(&range)).await?;
            if !matches!(resp.status, 200 | 206) {
                return Err(self.api.status_error("listing releases", &resp, &token));
            }
            let page: Vec<HerokuRelease> = resp.json(&self.api)?;
            let mut done = false;
            for r in page {
                done |= stop(&r);
                all.push(r);
            }
            let next = resp.headers.get("next-range").and_then(|v| v.to_str().ok()).map(str::to_owned);
            match next {
                Some(n) if resp.status == 206 && !done => range = n,
                _ => break,
            }
        }
        Ok(all)
    }

    /// The commit `r`'s slug was built from.
    async fn commit_of(&self, r: &HerokuRelease) -> Result<Option<CommitId>> {
        let Some(slug) = &r.slug else { return Ok(None) };
        let known = self.slugs.lock().expect("lock").get(&slug.id).cloned();
        let commit = if let Some(c) = known {
            c
        } else {
            let token = self.api.token()?;
            let resp = self.get(&token, &self.url(&format!("/slugs/{}", slug.id)), None).await?;
            if resp.status != 200 {
                return Err(self.api.status_error(&format!("reading slug {}", slug.id), &resp, &token));
            }
            let c = resp.json::<Slug>(&self.api)?.commit;
            self.slugs.lock().expect("lock").insert(slug.id.clone(), c.clone());
            c
        };
        Ok(commit.as_deref().and_then(CommitId::new))
    }

    async fn release(&self, r: &HerokuRelease) -> Result<Release> {
        let created =
            r.created_at.as_deref().map(|c| format!(", created {}", c.get(..10).unwrap_or(c))).unwrap_or_default();
        let what = if r.description.is_empty() { String::new() } else { format!(": {}", r.description) };
        Ok(Release {
            id: r.id.clone(),
            commit: self.commit_of(r).await?,
            summary: format!("release v{}{what}{created}", r.version),
        })
    }
}

#[async_trait]
impl Deployer for Heroku {
    fn describe(&self) -> String {
        format!("{}, config vars roll back with the release", self.api.target)
    }

    async fn current(&self) -> Result<Release> {
        let all = self.releases(MAX_PAGES, PAGE, |r| r.current).await?;
        match all.iter().find(|r| r.current) {
            Some(r) => self.release(r).await,
            None => Err(self.api.error(
                "no release is current".to_owned(),
                Some("check `app` in `[deploy]`: the app has never been released".to_owned()),
            )),
        }
    }

    async fn in_flight(&self) -> Result<Option<Release>> {
        let newer = self.releases(MAX_PAGES, PAGE, |r| r.current).await?;
        match newer.iter().take_while(|r| !r.current).find(|r| r.status == "pending") {
            Some(r) => Ok(Some(self.release(r).await?)),
            None => Ok(None),
        }
    }

    async fn wait_settled(&self, pending: &Release, timeout: Duration) -> Result<()> {
        let check = || async { Ok(if self.in_flight().await?.is_none() { Poll::Live } else { Poll::Pending }) };
        poll_live(|| self.describe(), pending, timeout.min(self.live_timeout), self.poll, check).await
    }

    async fn find(&self, commit: &CommitId) -> Result<Option<Release>> {
        let all = self.releases(MAX_PAGES, PAGE, |_| false).await?;
        for r in all.iter().filter(|r| r.status == "succeeded") {
            if self.commit_of(r).await?.as_ref() == Some(commit) {
                return Ok(Some(self.release(r).await?));
            }
        }
        Ok(None)
    }

    async fn rollback(&self, to: &Release) -> Result<()> {
        let live = self.current().await?;
        if self.serves(&live, to) {
            return Ok(());
        }
        let token = self.api.token()?;
        let body = serde_json::json!({"release": to.id}).to_string();
        let resp = self
            .api
            .send(&token, |client| {
                client
                    .post(self.url("/releases"))
                    .bearer_auth(token.expose())
                    .header("Accept", ACCEPT)
                    .header("Content-Type", "application/json")
                    .body(body.clone())
            })
            .await?;
        if !(200..300).contains(&resp.status) {
            return Err(self.api.status_error(&format!("rolling back to release {}", to.id), &resp, &token));
        }
        Ok(())
    }

    async fn wait_live(&self, release: &Release, timeout: Duration) -> Result<()> {
        let check = || async {
            let page = self.releases(1, 5, |_| true).await?;
            if let Some(cur) = page.iter().find(|r| r.current && r.status == "succeeded")
                && self.serves(&self.release(cur).await?, release)
            {
                return Ok(Poll::Live);
            }
            if let Some(newest) = page.first()
                && newest.status == "failed"
                && self.commit_of(newest).await?.is_some_and(|c| Some(&c) == release.commit.as_ref())
            {
                return Ok(Poll::Failed(self.api.error(
                    format!("release v{} of {} failed (its release phase)", newest.version, release),
                    Some(
                        "read `heroku releases:output` for it; resume the run once it succeeds, or undo it".to_owned(),
                    ),
                )));
            }
            Ok(Poll::Pending)
        };
        poll_live(|| self.describe(), release, timeout.min(self.live_timeout), self.poll, check).await
    }

    fn serves(&self, live: &Release, release: &Release) -> bool {
        live.id == release.id || (live.commit.is_some() && live.commit == release.commit)
    }

    fn no_autodeploy_switch(&self) -> Option<String> {
        Some(
            "Heroku's Platform API cannot switch automatic deploys: turn them off in the Dashboard (the app's \
             Deploy tab, \"Disable Automatic Deploys\"), or ship through pipeline promotion; guard CI deploys \
             with `forge-rollback gate <commit> --registry-at <default branch>`"
                .to_owned(),
        )
    }
}
