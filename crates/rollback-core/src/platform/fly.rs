//! Fly.io: put an earlier release's image back on an app's Machines. Releases are listed
//! through Fly's GraphQL API (`https://api.fly.io/graphql`); the Machines are driven through
//! the Machines API (`https://api.machines.dev`). Both take `Authorization: Bearer <token>`,
//! or a `FlyV1 ...` macaroon token (`fly tokens create deploy`) sent verbatim.
//!
//! - `app(name) { releases(first, after) { nodes {..} pageInfo {..} } }`, newest first, page by
//!   page: each release's `imageRef`, `version`, `status` and image. The target's release is
//!   the newest `complete` one built from the target commit.
//! - A release's commit: Fly records none of its own. It is read from the image: its
//!   `org.opencontainers.image.revision` or `GH_SHA` label (flyctl sets `GH_SHA` when it builds
//!   in GitHub Actions), or its tag when the tag is a full commit id (`fly deploy
//!   --image-label <sha>`).
//! - The live release: the image most Machines run (`GET /v1/apps/{app}/machines`,
//!   `config.image`), matched to the release their `config.metadata.fly_release_id` names,
//!   else to the newest release of that image. When the Machines run different images, it
//!   is returned without its commit and serves nothing: a resumed rollback or an undo then
//!   updates the Machines still on the other image.
//! - Rollback: `app { release(id) { imageRef } }`, then for each Machine not on it `POST
//!   /v1/apps/{app}/machines/{id} {"config": <its config, image and release metadata
//!   replaced>}`. Machines already on the image are left alone, so a resumed run updates only
//!   the rest. Secrets (`fly secrets`), volumes and databases are not rolled back.
//! - The wait lists the Machines until every one runs the image and is `started`; one that
//!   ends `failed` fails the wait at once.
//!
//! Freeze: Fly has no server-side automatic deploy (deploys come from `fly deploy`, usually in
//! CI); [`Deployer::no_autodeploy_switch`] says so, and `forge-rollback gate` guards CI.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::api::{Api, Poll, Response, poll_live};
use crate::deploy::DeployConfig;
use crate::production::{Deployer, Release, Result};
use crate::secret::Secret;
use crate::vcs::CommitId;

/// The Machines API.
pub const DEFAULT_API_URL: &str = "https://api.machines.dev";
/// The GraphQL API (releases).
pub const DEFAULT_GRAPHQL_URL: &str = "https://api.fly.io/graphql";
/// The token's variable when `[deploy] token_env` is not set.
pub const DEFAULT_TOKEN_ENV: &str = "FLY_API_TOKEN";
/// Releases asked for per page.
const PAGE: u32 = 50;
/// Most pages read when looking for a commit's release.
const MAX_PAGES: u32 = 20;
/// Image labels that name the commit an image was built from.
const COMMIT_LABELS: [&str; 2] = ["org.opencontainers.image.revision", "GH_SHA"];

const LIST: &str = "query AppReleases($app: String!, $first: Int, $after: String) { app(name: $app) { \
releases(first: $first, after: $after) { nodes { id version status createdAt imageRef \
image { tag config } } pageInfo { hasNextPage endCursor } } } }";
const ONE: &str = "query AppRelease($app: String!, $id: ID!) { app(name: $app) { \
release(id: $id) { id version status createdAt imageRef image { tag config } } } }";

/// A Fly.io app.
#[derive(Debug)]
pub struct Fly {
    /// The Machines API.
    api: Api,
    graphql_url: String,
    app: String,
    live_timeout: Duration,
    poll: Duration,
}

#[derive(Debug, Deserialize)]
struct Gql<T> {
    data: Option<T>,
    #[serde(default)]
    errors: Vec<GqlError>,
}

#[derive(Debug, Deserialize)]
struct GqlError {
    message: String,
}

#[derive(Debug, Deserialize)]
struct AppData<T> {
    app: Option<T>,
}

#[derive(Debug, Deserialize)]
struct Releases {
    releases: Connection,
}

#[derive(Debug, Deserialize)]
struct OneRelease {
    release: Option<FlyRelease>,
}

#[derive(Debug, Deserialize)]
struct Connection {
    #[serde(default)]
    nodes: Vec<FlyRelease>,
    #[serde(rename = "pageInfo")]
    page_info: PageInfo,
}

#[derive(Debug, Deserialize)]
struct PageInfo {
    #[serde(rename = "hasNextPage")]
    has_next_page: bool,
    #[serde(rename = "endCursor")]
    end_cursor: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
struct FlyRelease {
    id: String,
    version: u64,
    status: String,
    #[serde(rename = "createdAt", default)]
    created_at: Option<String>,
    #[serde(rename = "imageRef", default)]
    image_ref: Option<String>,
    #[serde(default)]
    image: Option<Image>,
}

#[derive(Clone, Debug, Deserialize)]
struct Image {
    #[serde(default)]
    tag: Option<String>,
    #[serde(default)]
    config: Option<ImageConfig>,
}

/// An image's config blob: labels at the top (Docker's `ContainerConfig` shape) or under
/// `config` (the OCI image config).
#[derive(Clone, Debug, Default, Deserialize)]
struct ImageConfig {
    #[serde(rename = "Labels", default)]
    labels: Option<HashMap<String, String>>,
    #[serde(default)]
    config: Option<Box<ImageConfig>>,
}

/// A Machine as `GET /v1/apps/{app}/machines` lists it. Its `config` is sent back whole with
/// the image replaced, so it is kept as the API gave it.
#[derive(Clone, Debug, Deserialize)]
struct Machine {
    id: String,
    state: String,
    #[serde(default)]
    config: Map<String, Value>,
}

impl Machine {
    fn image(&self) -> Option<&str> {
        self.config.get("image").and_then(Value::as_str)
    }

    fn release_id(&self) -> Option<&str> {
        self.config.get("metadata")?.get("fly_release_id")?.as_str()
    }

    /// Gone or going: not part of what serves.
    fn is_gone(&self) -> bool {
        matches!(self.state.as_str(), "destroyed" | "destroying")
    }
}

impl ImageConfig {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels.as_ref().and_then(|l| l.get(name)).map(String::as_str).or_else(|| self.config.as_ref()?.label(name))
    }
}

impl FlyRelease {
    fn commit(&self) -> Option<CommitId> {
        let image = self.image.as_ref()?;
        let labelled =
            image.config.as_ref().and_then(|c| COMMIT_LABELS.iter().find_map(|l| c.label(l))).and_then(CommitId::new);
        labelled.or_else(|| image.tag.as_deref().and_then(CommitId::new))
    }

    fn is_complete(&self) -> bool {
        matches!(self.status.as_str(), "complete" | "succeeded")
    }

    fn release(&self) -> Release {
        let created =
            self.created_at.as_deref().map(|c| format!(", created {}", c.get(..10).unwrap_or(c))).unwrap_or_default();
        let image = self.image_ref.as_deref().map(|i| format!(" ({i}{created})")).unwrap_or_default();
        Release { id: self.id.clone(), commit: self.commit(), summary: format!("release v{}{image}", self.version) }
    }
}

/// `Authorization`: a `FlyV1 ...` token verbatim, anything else as a Bearer token.
fn authorization(token: &Secret) -> String {
    let t = token.expose();
    if t.starts_with("FlyV1 ") { t.to_owned() } else { format!("Bearer {t}") }
}

impl Fly {
    /// The adapter `[deploy]` describes (`strategy = "fly"`, validated).
    pub fn from_config(c: &DeployConfig) -> Self {
        let app = c.app.clone().unwrap_or_default();
        Self {
            api: Api {
                target: format!("fly app {app}"),
                base: c.api_url.clone().unwrap_or_else(|| DEFAULT_API_URL.to_owned()).trim_end_matches('/').to_owned(),
                token_env: c.token_env.clone().unwrap_or_else(|| DEFAULT_TOKEN_ENV.to_owned()),
                token_what: "a Fly.io token (`fly tokens create deploy`, or `fly auth token`)",
            },
            graphql_url: c.graphql_url.clone().unwrap_or_else(|| DEFAULT_GRAPHQL_URL.to_owned()),
            app,
            live_timeout: Duration::from_secs_f64(c.live_timeout_secs),
            poll: Duration::from_secs_f64(c.poll_secs),
        }
    }

    fn machines_url(&self, tail: &str) -> String {
        format!("{}/v1/apps/{}/machines{tail}", self.api.base, self.app)
    }

    async fn graphql<T: for<'de> Deserialize<'de>>(&self, what: &str, body: Value) -> Result<T> {
        let token = self.api.token()?;
        let resp: Response = self
            .api
            .send(&token, |client| {
                client
                    .post(&self.graphql_url)
                    .header("Authorization", authorization(&token))
                    .header("Content-Type", "application/json")
                    .body(body.to_string())
            })
            .await?;
        if !(200..300).contains(&resp.status) {
            return Err(self.api.status_error(what, &resp, &token));
        }
        let answer: Gql<AppData<T>> = resp.json(&self.api)?;
        if !answer.errors.is_empty() {
            let said = answer.errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; ");
            let hint = said.to_ascii_lowercase().contains("not authorized").then(|| {
                format!(
                    "check the token in {} ({}) and that it can see this app",
                    self.api.token_env, self.api.token_what
                )
            });
            return Err(self
                .api
                .error(crate::secret::redact_in(&format!("{what} failed: {said}"), [token.expose()]), hint));
        }
        answer.data.and_then(|d| d.app).ok_or_else(|| {
            self.api.error(
                format!("{what}: no app named {}", self.app),
                Some("check `app` in `[deploy]` and that the token belongs to its organization".to_owned()),
            )
        })
    }

    /// Pages of releases, newest first, until `stop` says enough or the pages run out.
    async fn releases(&self, pages: u32, mut stop: impl FnMut(&FlyRelease) -> bool) -> Result<Vec<FlyRelease>> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..pages {
            let body = json!({"query": LIST, "variables": {"app": self.app, "first": PAGE, "after": after}});
            let data: Releases = self.graphql("listing releases", body).await?;
            let mut done = false;
            for r in data.releases.nodes {
                done |= stop(&r);
                all.push(r);
            }
            if done || !data.releases.page_info.has_next_page {
                break;
            }
            match data.releases.page_info.end_cursor {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        Ok(all)
    }

    /// The release with this id, with its image.
    async fn release_by_id(&self, id: &str) -> Result<(FlyRelease, String)> {
        let data: OneRelease = self
            .graphql(&format!("reading release {id}"), json!({"query": ONE, "variables": {"app": self.app, "id": id}}))
            .await?;
        let Some(r) = data.release else {
            return Err(self.api.error(format!("release {id} does not exist"), None));
        };
        match r.image_ref.clone() {
            Some(image) if !image.is_empty() => Ok((r, image)),
            _ => Err(self.api.error(format!("release v{} has no image to deploy", r.version), None)),
        }
    }

    /// The app's Machines, those destroyed left out.
    async fn machines(&self) -> Result<Vec<Machine>> {
        let token = self.api.token()?;
        let resp = self
            .api
            .send(&token, |client| {
                client
                    .get(self.machines_url(""))
                    .header("Authorization", authorization(&token))
                    .header("Accept", "application/json")
            })
            .await?;
        if resp.status != 200 {
            return Err(self.api.status_error("listing machines", &resp, &token));
        }
        let all: Vec<Machine> = resp.json(&self.api)?;
        Ok(all.into_iter().filter(|m| !m.is_gone()).collect())
    }

    /// Points one Machine at `release`'s image.
    async fn update(&self, token: &Secret, m: &Machine, release: &FlyRelease, image: &str) -> Result<()> {
        let mut config = m.config.clone();
        config.insert("image".into(), Value::String(image.to_owned()));
        let metadata = config.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(meta) = metadata {
            meta.insert("fly_release_id".into(), Value::String(release.id.clone()));
            meta.insert("fly_release_version".into(), Value::String(release.version.to_string()));
        }
        let body = json!({"config": config}).to_string();
        let resp = self
            .api
            .send(token, |client| {
                client
                    .post(self.machines_url(&format!("/{}", m.id)))
                    .header("Authorization", authorization(token))
                    .header("Content-Type", "application/json")
                    .header("Accept", "application/json")
                    .body(body.clone())
            })
            .await?;
        if !(200..300).contains(&resp.status) {
            return Err(self.api.status_error(
                &format!("updating machine {} to release v{}", m.id, release.version),
                &resp,
                token,
            ));
        }
        Ok(())
    }
}

#[async_trait]
impl Deployer for Fly {
    fn describe(&self) -> String {
        format!("{} (image; secrets, volumes and databases stay as they are)", self.api.target)
    }

    async fn current(&self) -> Result<Release> {
        let machines = self.machines().await?;
        let mut counts: Vec<(&str, usize)> = Vec::new();
        for image in machines.iter().filter_map(Machine::image) {
            match counts.iter_mut().find(|(i, _)| *i == image) {
                Some((_, n)) => *n += 1,
                None => counts.push((image, 1)),
            }
        }
        let Some(&(image, n)) = counts.iter().rev().max_by_key(|(_, n)| *n) else {
            return Err(self.api.error(
                "the app has no machines".to_owned(),
                Some("check `app` in `[deploy]`; an app that was never deployed has nothing to roll back".to_owned()),
            ));
        };
        let named: Vec<&str> =
            machines.iter().filter(|m| m.image() == Some(image)).filter_map(Machine::release_id).collect();
        let all = self.releases(MAX_PAGES, |r| r.image_ref.as_deref() == Some(image)).await?;
        let of_image: Vec<&FlyRelease> = all.iter().filter(|r| r.image_ref.as_deref() == Some(image)).collect();
        let found = of_image.iter().find(|r| named.contains(&r.id.as_str())).or_else(|| of_image.first());
        let Some(r) = found else {
            return Err(self.api.error(
                format!("the machines run {image}, which no release lists"),
                Some("the image was put on the machines by hand (`fly machine update --image`); deploy a release with `fly deploy` first".to_owned()),
            ));
        };
        let mut live = r.release();
        if n < machines.len() {
            // Half way between two images (a deploy under way, or a rollback that failed half
            // way): no release is live in full, so this one serves nothing ([`Fly::serves`])
            // and a promotion of either goes through.
            live.summary = format!("{} on {n} of {} machines", live.summary, machines.len());
            live.commit = None;
        }
        Ok(live)
    }

    async fn find(&self, commit: &CommitId) -> Result<Option<Release>> {
        let hit = |r: &FlyRelease| r.is_complete() && r.image_ref.is_some() && r.commit().as_ref() == Some(commit);
        let all = self.releases(MAX_PAGES, hit).await?;
        Ok(all.iter().find(|r| hit(r)).map(FlyRelease::release))
    }

    async fn rollback(&self, to: &Release) -> Result<()> {
        let (release, image) = self.release_by_id(&to.id).await?;
        let machines = self.machines().await?;
        if machines.is_empty() {
            return Err(self.api.error("the app has no machines".to_owned(), None));
        }
        let token = self.api.token()?;
        for m in machines.iter().filter(|m| m.image() != Some(image.as_str())) {
            self.update(&token, m, &release, &image).await?;
        }
        Ok(())
    }

    async fn wait_live(&self, release: &Release, timeout: Duration) -> Result<()> {
        let (_, image) = self.release_by_id(&release.id).await?;
        let check = || async {
            let machines = self.machines().await?;
            let on: Vec<&Machine> = machines.iter().filter(|m| m.image() == Some(image.as_str())).collect();
            if let Some(m) = on.iter().find(|m| m.state == "failed") {
                return Ok(Poll::Failed(self.api.error(
                    format!("machine {} on {release} failed to start", m.id),
                    Some("read `fly logs --machine` for it; resume the run once it starts, or undo it".to_owned()),
                )));
            }
            let all_on = !machines.is_empty() && on.len() == machines.len();
            Ok(if all_on && on.iter().all(|m| m.state == "started") { Poll::Live } else { Poll::Pending })
        };
        poll_live(|| self.describe(), release, timeout.min(self.live_timeout), self.poll, check).await
    }

    /// Only a release with its commit known serves: [`Deployer::current`] leaves the commit
    /// out when the Machines run different images, and a promotion must then go through.
    fn serves(&self, live: &Release, release: &Release) -> bool {
        live.commit.is_some() && (live.id == release.id || live.commit == release.commit)
    }

    fn no_autodeploy_switch(&self) -> Option<String> {
        Some(
            "no autodeploy on Fly: releases come from `fly deploy` (usually in CI), which nothing here can switch off; \
             make CI run `forge-rollback gate <commit> --registry-at <default branch>` before it deploys"
                .to_owned(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release(tag: &str, config: &str) -> FlyRelease {
        serde_json::from_value(json!({
            "id": "rel-1", "version": 1, "status": "complete", "imageRef": format!("registry.fly.io/a:{tag}"),
            "image": {"tag": tag, "config": serde_json::from_str::<Value>(config).unwrap()},
        }))
        .unwrap()
    }

    #[test]
    fn a_releases_commit_comes_from_a_label_then_from_a_full_commit_tag() {
        let sha = "0123456789abcdef0123456789abcdef01234567";
        let oci = format!(r#"{{"config": {{"Labels": {{"org.opencontainers.image.revision": "{sha}"}}}}}}"#);
        assert_eq!(release("deployment-01", &oci).commit().unwrap().as_str(), sha);
        let docker = format!(r#"{{"Labels": {{"GH_SHA": "{sha}"}}}}"#);
        assert_eq!(release("deployment-01", &docker).commit().unwrap().as_str(), sha);
        assert_eq!(release(sha, r#"{"config": {"Labels": null}}"#).commit().unwrap().as_str(), sha);
        assert_eq!(release("deployment-01", r#"{"config": {}}"#).commit(), None);
        assert_eq!(release("0123456", "{}").commit(), None, "a short tag is not a commit id");
    }

    #[test]
    fn a_flyv1_token_is_sent_as_it_is_and_any_other_as_bearer() {
        assert_eq!(authorization(&Secret::new("FlyV1 fm2_abc")), "FlyV1 fm2_abc");
        assert_eq!(authorization(&Secret::new("abc")), "Bearer abc");
    }
}
