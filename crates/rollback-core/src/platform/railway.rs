//! Railway: promote an earlier deployment of a service through the public GraphQL API
//! (`https://backboard.railway.app/graphql/v2`).
//!
//! - `deployments(input: {serviceId, environmentId}, first, after)`, newest first, page by
//!   page (`pageInfo.endCursor`): the live deployment is the newest with status `SUCCESS`,
//!   `SLEEPING` or `CRASHED` (a release that crashed after starting is still what the service
//!   runs, and the usual reason to roll back), unless a `REMOVED` one is newer than it (then
//!   it was replaced); the target's is the newest whose `meta.commitHash` is the target commit and
//!   that can still be rolled back to (`canRollback`).
//! - `deploymentRollback(id)`: Railway makes a *new* deployment from the earlier one's image
//!   and variables. That new deployment serves the same commit, so a deployment "serves" a
//!   release when it is that release or was built from the same commit ([`Deployer::serves`]).
//! - A deployment newer than the live one with status `INITIALIZING`, `QUEUED`, `WAITING`,
//!   `BUILDING` or `DEPLOYING` is in flight: it replaces the live one when it ends
//!   ([`Deployer::in_flight`]).
//! - The wait polls the list until the newest live deployment serves the release; a newer
//!   deployment of it that ends `FAILED` or `CRASHED` fails the wait at once.
//!
//! Freeze: `serviceInstanceAutoDeployStatus` / `serviceInstanceAutoDeployUpdate` (the
//! project's id read from the deployments).
//!
//! Tokens: a project token goes in `Project-Access-Token`, an account or team token in
//! `Authorization: Bearer` (`[deploy] token_kind`).

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use super::api::{Api, Poll, Response, poll_live};
use crate::deploy::{DeployConfig, TokenKind};
use crate::production::{Deployer, Error, Release, Result};
use crate::secret::Secret;
use crate::vcs::CommitId;

/// Railway's public API.
pub const DEFAULT_API_URL: &str = "https://backboard.railway.app/graphql/v2";
/// The token's variable when `[deploy] token_env` is not set.
pub const DEFAULT_TOKEN_ENV: &str = "RAILWAY_TOKEN";
/// Deployments asked for per page.
const PAGE: u32 = 50;
/// Most pages read when looking for a commit's deployment.
const MAX_PAGES: u32 = 20;

const LIST: &str = "query Deployments($input: DeploymentListInput!, $first: Int, $after: String) { \
deployments(input: $input, first: $first, after: $after) { \
edges { node { id projectId status createdAt canRollback meta } } pageInfo { hasNextPage endCursor } } }";
const ROLLBACK: &str = "mutation DeploymentRollback($id: String!) { deploymentRollback(id: $id) }";
const AUTODEPLOY_STATUS: &str = "query AutoDeployStatus($environmentId: String!, $projectId: String!, $serviceId: String!) { \
serviceInstanceAutoDeployStatus(environmentId: $environmentId, projectId: $projectId, serviceId: $serviceId) { enabled canEnable reason } }";
const AUTODEPLOY_UPDATE: &str = "mutation AutoDeployUpdate($input: ServiceInstanceAutoDeployUpdateInput!) { \
serviceInstanceAutoDeployUpdate(input: $input) { enabled } }";

/// A Railway service in one environment.
#[derive(Debug)]
pub struct Railway {
    api: Api,
    service_id: String,
    environment_id: String,
    token_kind: TokenKind,
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
struct ListData {
    deployments: Connection,
}

#[derive(Debug, Deserialize)]
struct Connection {
    edges: Vec<Edge>,
    #[serde(rename = "pageInfo")]
    page_info: PageInfo,
}

#[derive(Debug, Deserialize)]
struct Edge {
    node: Deployment,
}

#[derive(Debug, Deserialize)]
struct PageInfo {
    #[serde(rename = "hasNextPage")]
    has_next_page: bool,
    #[serde(rename = "endCursor")]
    end_cursor: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
struct Deployment {
    id: String,
    #[serde(rename = "projectId", default)]
    project_id: Option<String>,
    status: String,
    #[serde(rename = "createdAt", default)]
    created_at: Option<String>,
    #[serde(rename = "canRollback", default)]
    can_rollback: bool,
    #[serde(default)]
    meta: Option<Meta>,
}

#[derive(Clone, Debug, Default, Deserialize)]
struct Meta {
    #[serde(rename = "commitHash", default)]
    commit_hash: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AutoDeployStatusData {
    #[serde(rename = "serviceInstanceAutoDeployStatus")]
    status: AutoDeployStatus,
}

#[derive(Debug, Deserialize)]
struct AutoDeployStatus {
    enabled: bool,
    #[serde(rename = "canEnable", default)]
    can_enable: bool,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct AutoDeployUpdateData {
    #[serde(rename = "serviceInstanceAutoDeployUpdate")]
    result: AutoDeployEnabled,
}

#[derive(Debug, Deserialize)]
struct AutoDeployEnabled {
    enabled: bool,
}

#[derive(Debug, Deserialize)]
struct RollbackData {
    #[serde(rename = "deploymentRollback")]
    deployment_rollback: bool,
}

impl Deployment {
    fn commit(&self) -> Option<CommitId> {
        self.meta.as_ref()?.commit_hash.as_deref().and_then(CommitId::new)
    }

    fn is_live(&self) -> bool {
        matches!(self.status.as_str(), "SUCCESS" | "SLEEPING")
    }

    /// What the service runs, if nothing newer replaced it: live, or crashed after starting.
    fn is_current(&self) -> bool {
        self.is_live() || self.status == "CRASHED"
    }

    /// Not ended yet: queued, building or starting.
    fn in_flight(&self) -> bool {
        matches!(self.status.as_str(), "INITIALIZING" | "QUEUED" | "WAITING" | "BUILDING" | "DEPLOYING")
    }

    fn release(&self) -> Release {
        // `createdAt` is RFC 3339: its date is enough for people.
        let created =
            self.created_at.as_deref().map(|c| format!(" (created {})", c.get(..10).unwrap_or(c))).unwrap_or_default();
        Release { id: self.id.clone(), commit: self.commit(), summary: format!("deployment {}{created}", self.id) }
    }
}

impl Railway {
    /// The adapter `[deploy]` describes (`strategy = "railway"`, validated).
    pub fn from_config(c: &DeployConfig) -> Self {
        let service_id = c.service_id.clone().unwrap_or_default();
        let environment_id = c.environment_id.clone().unwrap_or_default();
        Self {
            api: Api {
                target: format!("railway service {service_id} (environment {environment_id})"),
                base: c.api_url.clone().unwrap_or_else(|| DEFAULT_API_URL.to_owned()),
                token_env: c.token_env.clone().unwrap_or_else(|| DEFAULT_TOKEN_ENV.to_owned()),
                token_what: match c.token_kind {
                    TokenKind::Project => "a Railway project token",
                    TokenKind::Account => "a Railway account or team token",
                },
            },
            service_id,
            environment_id,
            token_kind: c.token_kind,
            live_timeout: Duration::from_secs_f64(c.live_timeout_secs),
            poll: Duration::from_secs_f64(c.poll_secs),
        }
    }

    async fn graphql<T: for<'de> Deserialize<'de>>(&self, what: &str, body: serde_json::Value) -> Result<T> {
        let token = self.api.token()?;
        let resp: Response = self
            .api
            .send(&token, |client| {
                let req = client.post(&self.api.base).header("Content-Type", "application/json").body(body.to_string());
                match self.token_kind {
                    TokenKind::Project => req.header("Project-Access-Token", token.expose()),
                    TokenKind::Account => req.bearer_auth(token.expose()),
                }
            })
            .await?;
        if !(200..300).contains(&resp.status) {
            return Err(self.api.status_error(what, &resp, &token));
        }
        let answer: Gql<T> = resp.json(&self.api)?;
        if !answer.errors.is_empty() {
            return Err(self.refused(what, &answer.errors, &token));
        }
        answer.data.ok_or_else(|| self.api.error(format!("{what}: the API answered no data"), None))
    }

    fn refused(&self, what: &str, errors: &[GqlError], token: &Secret) -> Error {
        let said = errors.iter().map(|e| e.message.as_str()).collect::<Vec<_>>().join("; ");
        let hint = said.to_ascii_lowercase().contains("not authorized").then(|| {
            format!(
                "check the token in {} ({}; `token_kind` says which header carries it) and that it can see this service",
                self.api.token_env, self.api.token_what
            )
        });
        self.api.error(crate::secret::redact_in(&format!("{what} failed: {said}"), [token.expose()]), hint)
    }

    /// Pages of deployments, newest first, until `stop` says enough or the pages run out.
    async fn deployments(&self, pages: u32, mut stop: impl FnMut(&Deployment) -> bool) -> Result<Vec<Deployment>> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..pages {
            let body = json!({
                "query": LIST,
                "variables": {
                    "input": {"serviceId": self.service_id, "environmentId": self.environment_id},
                    "first": PAGE,
                    "after": after,
                },
            });
            let data: ListData = self.graphql("listing deployments", body).await?;
            let mut done = false;
            for e in data.deployments.edges {
                done |= stop(&e.node);
                all.push(e.node);
            }
            if done || !data.deployments.page_info.has_next_page {
                break;
            }
            match data.deployments.page_info.end_cursor {
                Some(c) => after = Some(c),
                None => break,
            }
        }
        Ok(all)
    }

    /// The deployment the service runs: the newest `SUCCESS`, `SLEEPING` or `CRASHED` one, as
    /// long as no `REMOVED` one is newer (a crashed deployment that was replaced is not it).
    async fn live(&self) -> Result<Deployment> {
        let all = self.deployments(MAX_PAGES, |d| d.is_current() || d.status == "REMOVED").await?;
        let hint = || {
            Some("the service runs nothing Railway can roll back from: deploy it on Railway, then try again".to_owned())
        };
        match all.iter().position(|d| d.is_current() || d.status == "REMOVED") {
            Some(i) if all[i].is_current() => Ok(all[i].clone()),
            // Older deployments that ran may follow; the newest one was taken down since.
            Some(i) => Err(self
                .api
                .error(format!("no deployment is live: the newest that ran ({}) was REMOVED", all[i].id), hint())),
            None if all.is_empty() => Err(self.api.error(
                "the service has no deployments in this environment".to_owned(),
                Some("check the service and environment ids in `[deploy]`".to_owned()),
            )),
            None => Err(self.api.error(
                format!(
                    "no deployment is live: none of the {} read is SUCCESS, SLEEPING or CRASHED (the newest is {})",
                    all.len(),
                    all[0].status
                ),
                hint(),
            )),
        }
    }
}

impl Railway {
    /// The ids the auto-deploy calls take (the project's read from the service's deployments),
    /// and `serviceInstanceAutoDeployStatus`.
    async fn autodeploy_status(&self) -> Result<(serde_json::Value, AutoDeployStatus)> {
        let page = self.deployments(1, |_| true).await?;
        let Some(project_id) = page.iter().find_map(|d| d.project_id.clone()) else {
            return Err(self.api.error("the service has no deployment to read its project from".to_owned(), None));
        };
        let ids = json!({"environmentId": self.environment_id, "projectId": project_id, "serviceId": self.service_id});
        let status: AutoDeployStatusData =
            self.graphql("reading auto-deploy", json!({"query": AUTODEPLOY_STATUS, "variables": ids})).await?;
        Ok((ids, status.status))
    }
}

fn same_commit(a: &Release, b: &Release) -> bool {
    a.commit.is_some() && a.commit == b.commit
}

#[async_trait]
impl Deployer for Railway {
    fn describe(&self) -> String {
        format!("{}, variables roll back with the deployment", self.api.target)
    }

    async fn current(&self) -> Result<Release> {
        Ok(self.live().await?.release())
    }

    async fn in_flight(&self) -> Result<Option<Release>> {
        let newer = self.deployments(MAX_PAGES, Deployment::is_current).await?;
        Ok(newer.iter().take_while(|d| !d.is_current()).find(|d| d.in_flight()).map(Deployment::release))
    }

    async fn wait_settled(&self, pending: &Release, timeout: Duration) -> Result<()> {
        let check = || async { Ok(if self.in_flight().await?.is_none() { Poll::Live } else { Poll::Pending }) };
        poll_live(|| self.describe(), pending, timeout.min(self.live_timeout), self.poll, check).await
    }

    async fn find(&self, commit: &CommitId) -> Result<Option<Release>> {
        let hit = |d: &Deployment| d.commit().as_ref() == Some(commit);
        let all = self.deployments(MAX_PAGES, |d| hit(d) && (d.can_rollback || d.is_live())).await?;
        let mut of_commit = all.iter().filter(|d| hit(d)).peekable();
        if of_commit.peek().is_none() {
            return Ok(None);
        }
        match of_commit.find(|d| d.can_rollback || d.is_live()) {
            Some(d) => Ok(Some(d.release())),
            None => Err(self.api.error(
                format!("the deployments of commit {} can no longer be rolled back to (canRollback is false)", commit.short()),
                Some("Railway keeps images for a limited time: redeploy the commit with the `push` or `revert-commit` strategy".to_owned()),
            )),
        }
    }

    async fn rollback(&self, to: &Release) -> Result<()> {
        let live = self.current().await?;
        if self.serves(&live, to) {
            return Ok(());
        }
        let data: RollbackData =
            self.graphql("deploymentRollback", json!({"query": ROLLBACK, "variables": {"id": to.id}})).await?;
        if !data.deployment_rollback {
            return Err(self.api.error(format!("deploymentRollback({}) answered false", to.id), None));
        }
        Ok(())
    }

    async fn wait_live(&self, release: &Release, timeout: Duration) -> Result<()> {
        let check = || async {
            let page = self.deployments(1, |_| true).await?;
            if let Some(live) = page.iter().find(|d| d.is_live())
                && self.serves(&live.release(), release)
            {
                return Ok(Poll::Live);
            }
            // The newest deployment is the promotion: a failed one will not come live.
            if let Some(newest) = page.first()
                && newest.commit().is_some()
                && newest.commit() == release.commit
                && matches!(newest.status.as_str(), "FAILED" | "CRASHED" | "REMOVED" | "SKIPPED")
            {
                return Ok(Poll::Failed(self.api.error(
                    format!("deployment {} of {} ended {}", newest.id, release, newest.status),
                    Some("read the deployment's logs on Railway; resume the run once it serves, or undo it".to_owned()),
                )));
            }
            Ok(Poll::Pending)
        };
        poll_live(|| self.describe(), release, timeout.min(self.live_timeout), self.poll, check).await
    }

    fn serves(&self, live: &Release, release: &Release) -> bool {
        live.id == release.id || same_commit(live, release)
    }

    fn switches_autodeploy(&self) -> bool {
        true
    }

    /// `serviceInstanceAutoDeployStatus`'s `enabled`.
    async fn autodeploy(&self) -> Result<bool> {
        Ok(self.autodeploy_status().await?.1.enabled)
    }

    /// [`Deployer::autodeploy`], then `serviceInstanceAutoDeployUpdate` if it differs.
    async fn set_autodeploy(&self, on: bool) -> Result<bool> {
        let (ids, status) = self.autodeploy_status().await?;
        let was = status.enabled;
        if was == on {
            return Ok(was);
        }
        if on && !status.can_enable {
            return Err(self.api.error(
                format!(
                    "auto-deploy cannot be turned back on: {}",
                    status.reason.as_deref().unwrap_or("Railway gave no reason")
                ),
                Some("turn it on in the service's settings once the source is connected".to_owned()),
            ));
        }
        let mut input = ids;
        input["enabled"] = json!(on);
        let done: AutoDeployUpdateData = self
            .graphql(
                "serviceInstanceAutoDeployUpdate",
                json!({"query": AUTODEPLOY_UPDATE, "variables": {"input": input}}),
            )
            .await?;
        if done.result.enabled != on {
            return Err(self
                .api
                .error(format!("serviceInstanceAutoDeployUpdate left enabled = {}", done.result.enabled), None));
        }
        Ok(was)
    }
}
