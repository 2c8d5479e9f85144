//! Kubernetes: roll a Deployment or a StatefulSet back to the revision built from the target
//! commit, as `kubectl rollout undo` does, over the REST API (`apps/v1`).
//!
//! - A Deployment's revisions are its ReplicaSets: listed with the Deployment's
//!   `spec.selector.matchLabels` as `labelSelector`, kept when an `ownerReferences` entry
//!   carries the Deployment's uid, numbered by their `deployment.kubernetes.io/revision`
//!   annotation. A StatefulSet's are its ControllerRevisions (`revision` field).
//! - A release's id is the ReplicaSet's (ControllerRevision's) *name*, not its number: a
//!   rollback renumbers the revision it brings back (kubectl's "revision 1" becomes revision
//!   4), but the object, named from its template's hash, stays. An undo therefore finds the
//!   release that was live before by its template, whatever its number is now.
//! - `current()`: the revision whose template is the Deployment's (kubectl's
//!   `EqualIgnoreHash`), or the StatefulSet's `status.updateRevision`.
//! - `find(commit)`: the newest revision whose pod template names the commit, in the
//!   `[deploy] commit_annotation` annotation (default `forge-rollback/commit`; a full id or a
//!   prefix of at least 7 digits) or, when the template has no such annotation, in a
//!   container's image tag (`api:1a2b3c4`, `api:sha-1a2b3c4d`).
//! - `rollback(to)`: a Deployment gets `PATCH` `application/json-patch+json`
//!   `[{"op":"replace","path":"/spec/template","value":<the ReplicaSet's template without
//!   pod-template-hash>}, {"op":"replace","path":"/metadata/annotations","value":<...>}]`
//!   (the Deployment's own last-applied-configuration and revision annotations, the
//!   ReplicaSet's others, as kubectl computes them); a paused Deployment is refused. A StatefulSet gets the
//!   ControllerRevision's `data` as `application/strategic-merge-patch+json`.
//! - `wait_live`: `kubectl rollout status`'s rules (see [`rollout`]); a Deployment whose
//!   `Progressing` condition says `ProgressDeadlineExceeded` for this rollout's ReplicaSet
//!   fails at once (one naming the ReplicaSet it replaces is waited past). Every look may
//!   fail and is repeated until the deadline, and gets at most the time left.
//! - A revision `kubectl rollout restart` made (the template's `kubectl.kubernetes.io/restartedAt`
//!   annotation is all that changed) serves the release it restarted ([`Deployer::serves`]): an
//!   undo after a restart is not refused as "someone deployed since", and puts the earlier
//!   template back whole, as `kubectl rollout undo` would.
//! - `current()` is what the workload rolls out, not what serves
//!   ([`Deployer::current_is_desired`]): a release found there is still waited for.
//! - `--full` with `[deploy] migrate_command`: the downgrade runs as a Job made from the live
//!   pod template, before the rollout ([`job`]).
//! - No automatic-deploy switch: a GitOps controller (Argo CD, Flux) found in the workload's
//!   labels and annotations is named, with how to suspend it. Without such a mark, Argo CD's
//!   tracking label (before 3.0 its only mark: `app.kubernetes.io/instance`, or the key its
//!   `argocd-cm` config map (in `[deploy] argocd_namespace`, default `argocd`) or `[deploy]
//!   argocd_instance_label` names) is looked up in Argo
//!   CD's Application API ([`argocd`]); nothing else of their APIs is called.

mod argocd;
pub mod client;
pub mod config;
pub mod job;
pub mod rollout;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::json;

use self::client::Client;
use self::config::{ConfigError, Credentials, Sources};
use self::rollout::{ControllerRevision, DEFAULT_COMMIT_ANNOTATION, ReplicaSet, Revision, Workload};
use crate::deploy::DeployConfig;
use crate::production::{Deployer, Error, Release, Result};
use crate::vcs::CommitId;

/// The least time the rollout wait gives a look (the one at its deadline).
const LAST_LOOK: Duration = Duration::from_secs(1);

/// A Deployment or a StatefulSet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `apps/v1` Deployment.
    Deployment,
    /// `apps/v1` StatefulSet.
    StatefulSet,
}

impl Kind {
    fn resource(self) -> &'static str {
        match self {
            Kind::Deployment => "deployments",
            Kind::StatefulSet => "statefulsets",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "deployment",
            Kind::StatefulSet => "statefulset",
        }
    }

    fn revision(self) -> &'static str {
        match self {
            Kind::Deployment => "replicaset",
            Kind::StatefulSet => "controllerrevision",
        }
    }
}

/// One workload on one cluster.
#[derive(Debug)]
pub struct Kubernetes {
    kind: Kind,
    name: String,
    namespace: String,
    commit_annotation: String,
    /// `[deploy] argocd_instance_label`: Argo CD's tracking label, when `argocd-cm` is not read.
    argocd_instance_label: Option<String>,
    /// `[deploy] argocd_namespace`: where Argo CD's `argocd-cm` and Applications are.
    argocd_namespace: String,
    container: Option<String>,
    migrate_command: Option<Vec<String>>,
    creds: std::result::Result<Credentials, ConfigError>,
    client: Mutex<Option<Arc<Client>>>,
    /// The release template ([`rollout::release_template`]) of each revision listed so far, by
    /// name, for [`Deployer::serves`]. A revision's name is its template's hash, so what is
    /// known of a name never goes stale.
    releases: Mutex<BTreeMap<String, serde_json::Value>>,
    live_timeout: Duration,
    poll: Duration,
}

impl Kubernetes {
    /// The adapter `[deploy]` describes (`strategy = "kubernetes"`, validated), with
    /// credentials from this process's environment.
    pub fn from_config(c: &DeployConfig) -> Self {
        Self::with_sources(c, &Sources::from_env(c.kubeconfig.clone(), c.context.clone(), c.api_url.clone()))
    }

    /// The adapter, with credentials from `sources`.
    pub fn with_sources(c: &DeployConfig, sources: &Sources) -> Self {
        let creds = config::load(sources);
        let (kind, name) = match (&c.deployment, &c.statefulset) {
            (_, Some(s)) => (Kind::StatefulSet, s.clone()),
            (d, None) => (Kind::Deployment, d.clone().unwrap_or_default()),
        };
        let namespace = c
            .namespace
            .clone()
            .or_else(|| match &creds {
                Ok(k) => k.namespace.clone(),
                // Named in the message that says why the credentials cannot be used.
                Err(e) => e.namespace.clone(),
            })
            .unwrap_or_else(|| "default".to_owned());
        Self {
            kind,
            name,
            namespace,
            commit_annotation: c.commit_annotation.clone().unwrap_or_else(|| DEFAULT_COMMIT_ANNOTATION.to_owned()),
            argocd_instance_label: c.argocd_instance_label.clone(),
            argocd_namespace: c.argocd_namespace.clone().unwrap_or_else(|| argocd::DEFAULT_NAMESPACE.to_owned()),
            container: c.container.clone(),
            migrate_command: c.migrate_command.clone(),
            creds,
            client: Mutex::new(None),
            releases: Mutex::new(BTreeMap::new()),
            live_timeout: Duration::from_secs_f64(c.live_timeout_secs),
            poll: Duration::from_secs_f64(c.poll_secs),
        }
    }

    fn target(&self) -> String {
        format!("kubernetes {} {}/{}", self.kind.name(), self.namespace, self.name)
    }

    fn error(&self, message: String, hint: Option<String>) -> Error {
        Error::Platform { target: self.target(), message, hint }
    }

    fn client(&self) -> Result<Arc<Client>> {
        let mut slot = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        // Credentials that cannot be used are a configuration problem (exit 2), found before
        // anything is asked of the cluster.
        let creds = self.creds.clone().map_err(|e| Error::Usage {
            target: self.target(),
            message: e.message,
            hint: Some(e.hint),
        })?;
        let c = Arc::new(Client::new(creds, self.target())?);
        *slot = Some(c.clone());
        Ok(c)
    }

    fn path(&self, resource: &str) -> String {
        format!("/apis/apps/v1/namespaces/{}/{resource}", self.namespace)
    }

    /// Whether `w` runs `release` (`rev`, its revision, for a Deployment) with every replica
    /// updated and ready; a rollout that failed is an error.
    fn rolled_out(&self, w: &Workload, rev: Option<&Revision>, release: &Release) -> Result<bool> {
        let serves = match (rev, self.kind) {
            (Some(r), Kind::Deployment) => w.runs(r),
            (_, Kind::StatefulSet) => w.update_revision() == Some(release.id.as_str()),
            (None, Kind::Deployment) => false,
        };
        if !serves {
            return Ok(false);
        }
        let status = match self.kind {
            Kind::Deployment => w.deployment_status(&release.id),
            Kind::StatefulSet => w.statefulset_status(),
        };
        match status {
            Ok(None) => Ok(true),
            Ok(Some(_waiting)) => Ok(false),
            Err(why) => Err(self.error(
                format!("the rollout of {release} failed: {why}"),
                Some(format!(
                    "`kubectl describe {}/{} -n {}` shows why (its pods' events and logs); fix that, then resume the run: it waits for the rollout again",
                    self.kind.name(),
                    self.name,
                    self.namespace
                )),
            )),
        }
    }

    async fn workload(&self, client: &Client) -> Result<Workload> {
        let path = format!("{}/{}", self.path(self.kind.resource()), self.name);
        client.get(&format!("reading the {}", self.kind.name()), &path).await?.ok_or_else(|| {
            self.error(
                format!("{} {} not found in namespace {}", self.kind.name(), self.name, self.namespace),
                Some(
                    "check `namespace` and the workload's name in `[deploy]`, and the kubeconfig's context".to_owned(),
                ),
            )
        })
    }

    /// The workload and its revisions, newest first.
    async fn revisions(&self, client: &Client) -> Result<(Workload, Vec<Revision>)> {
        let w = self.workload(client).await?;
        let query = w.selector_query();
        let revs = match self.kind {
            Kind::Deployment => {
                let sets: Vec<ReplicaSet> =
                    client.list("listing replicasets", &format!("{}?{query}", self.path("replicasets"))).await?;
                w.replica_set_revisions(sets)
            }
            Kind::StatefulSet => {
                let revs: Vec<ControllerRevision> = client
                    .list("listing controllerrevisions", &format!("{}?{query}", self.path("controllerrevisions")))
                    .await?;
                w.controller_revisions(revs)
            }
        };
        let mut releases = self.releases.lock().unwrap_or_else(PoisonError::into_inner);
        for r in &revs {
            releases.insert(r.name.clone(), rollout::release_template(&r.template));
        }
        drop(releases);
        Ok((w, revs))
    }

    fn live_revision<'a>(&self, w: &Workload, revs: &'a [Revision]) -> Option<&'a Revision> {
        match self.kind {
            Kind::Deployment => revs.iter().find(|r| w.runs(r)),
            Kind::StatefulSet => revs.iter().find(|r| Some(r.name.as_str()) == w.update_revision()),
        }
    }

    fn release(&self, rev: &Revision, commit: Option<&CommitId>) -> Release {
        let image = rollout::first_image(&rev.template).map(|i| format!(", image {i}")).unwrap_or_default();
        Release {
            id: rev.name.clone(),
            commit: rollout::template_commit(&rev.template, &self.commit_annotation, commit),
            summary: format!("revision {} ({} {}{image})", rev.number, self.kind.revision(), rev.name),
        }
    }

    fn refuse_paused(&self, w: &Workload) -> Result<()> {
        if self.kind == Kind::Deployment && w.paused() {
            return Err(Error::Refused {
                target: self.target(),
                message: format!("deployment {} is paused: a rollout would not start", self.name),
                hint: Some(format!(
                    "resume it first (`kubectl rollout resume deployment/{} -n {}`), or roll back by hand",
                    self.name, self.namespace
                )),
            });
        }
        Ok(())
    }
}

#[async_trait]
impl Deployer for Kubernetes {
    fn describe(&self) -> String {
        format!(
            "{} (pod template: image, command and env; ConfigMaps, Secrets and the database stay as they are)",
            self.target()
        )
    }

    async fn current(&self) -> Result<Release> {
        let client = self.client()?;
        let (w, revs) = self.revisions(&client).await?;
        let live = self.live_revision(&w, &revs).or(revs.first()).ok_or_else(|| {
            self.error(
                format!("{} {} has no revision", self.kind.name(), self.name),
                Some(format!("`kubectl rollout history {}/{}` lists none either", self.kind.name(), self.name)),
            )
        })?;
        Ok(self.release(live, None))
    }

    async fn find(&self, commit: &CommitId) -> Result<Option<Release>> {
        let client = self.client()?;
        let (w, revs) = self.revisions(&client).await?;
        self.refuse_paused(&w)?;
        Ok(revs
            .iter()
            .find(|r| {
                rollout::template_commit(&r.template, &self.commit_annotation, Some(commit)).as_ref() == Some(commit)
            })
            .map(|r| self.release(r, Some(commit))))
    }

    async fn rollback(&self, to: &Release) -> Result<()> {
        let client = self.client()?;
        let (w, revs) = self.revisions(&client).await?;
        self.refuse_paused(&w)?;
        let Some(rev) = revs.iter().find(|r| r.name == to.id) else {
            return Err(self.error(
                format!("{} {} is gone (no revision of the {} has that name now)", self.kind.revision(), to.id, self.kind.name()),
                Some("the workload's revisionHistoryLimit may have pruned it; deploy the commit with the `push` strategy instead".to_owned()),
            ));
        };
        if self.live_revision(&w, &revs).is_some_and(|live| live.name == rev.name) {
            return Ok(());
        }
        let path = format!("{}/{}", self.path(self.kind.resource()), self.name);
        let what = format!("rolling back to {} {}", self.kind.revision(), rev.name);
        match self.kind {
            Kind::Deployment => {
                // kubectl's patch: the template, and the annotations it computes.
                let body = json!([
                    {"op": "replace", "path": "/spec/template", "value": rev.template},
                    {"op": "replace", "path": "/metadata/annotations", "value": w.annotations_for(rev)},
                ])
                .to_string();
                client.patch(&what, &path, "application/json-patch+json", body).await
            }
            Kind::StatefulSet => {
                client.patch(&what, &path, "application/strategic-merge-patch+json", rev.patch.to_string()).await
            }
        }
    }

    async fn wait_live(&self, release: &Release, timeout: Duration) -> Result<()> {
        let client = self.client()?;
        let wait = timeout.min(self.live_timeout);
        let deadline = Instant::now() + wait;
        // A Deployment's release is found among its revisions once; every look, the first
        // too, may fail.
        let mut rev = None;
        // One failed look (no answer, a `5xx`, a `429`) is not the end of the wait: see `poll_live`.
        let mut last_error;
        loop {
            let mut pause = self.poll;
            let want_revisions = self.kind == Kind::Deployment && rev.is_none();
            let look = async {
                if want_revisions {
                    self.revisions(&client).await.map(|(w, revs)| (w, Some(revs)))
                } else {
                    self.workload(&client).await.map(|w| (w, None))
                }
            };
            // A look gets the time left (at least a moment, for the look at the deadline), not
            // a request's full timeout: the wait ends when `live_timeout_secs` says.
            let left = deadline.saturating_duration_since(Instant::now()).max(LAST_LOOK);
            let look = tokio::time::timeout(left, look).await.unwrap_or_else(|_| {
                Err(Error::Unavailable {
                    target: self.target(),
                    message: format!("the API server did not answer within {:.1} s", left.as_secs_f64()),
                })
            });
            match look {
                Ok((w, revs)) => {
                    if let Some(revs) = revs {
                        rev = revs.into_iter().find(|r| r.name == release.id);
                    }
                    last_error = None;
                    if self.rolled_out(&w, rev.as_ref(), release)? {
                        return Ok(());
                    }
                }
                Err(e) if e.is_transient() => {
                    pause = pause.max(e.retry_after().unwrap_or_default());
                    last_error = Some(e.to_string());
                }
                Err(e) => return Err(e),
            }
            if Instant::now() >= deadline {
                return Err(Error::NotLive {
                    target: self.describe(),
                    release: release.id.clone(),
                    seconds: wait.as_secs(),
                    last_error: last_error.take(),
                });
            }
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }

    /// The same revision, or one whose template is `release`'s but for the restart annotation
    /// (`kubectl rollout restart` made it: the same image, command and env). Both revisions must
    /// have been listed by this adapter ([`Deployer::current`] lists them all); one it never
    /// saw (pruned) is not taken for the same release.
    fn serves(&self, live: &Release, release: &Release) -> bool {
        if live.id == release.id {
            return true;
        }
        let releases = self.releases.lock().unwrap_or_else(PoisonError::into_inner);
        matches!((releases.get(&live.id), releases.get(&release.id)), (Some(a), Some(b)) if a == b)
    }

    fn current_is_desired(&self) -> bool {
        // `current()` is the workload's template: the release being rolled out.
        true
    }

    async fn check_promotable(&self, release: &Release) -> Result<()> {
        let client = self.client()?;
        let (w, revs) = self.revisions(&client).await?;
        self.refuse_paused(&w)?;
        if revs.iter().any(|r| r.name == release.id) {
            return Ok(());
        }
        Err(Error::Refused {
            target: self.target(),
            message: format!(
                "{} {} is gone (no revision of the {} has that name now: its revisionHistoryLimit may have pruned it), so {release} cannot be rolled out again",
                self.kind.revision(),
                release.id,
                self.kind.name()
            ),
            hint: Some(format!(
                "deploy that release again by your usual pipeline (`kubectl rollout history {}/{} -n {}` lists the revisions kept)",
                self.kind.name(),
                self.name,
                self.namespace
            )),
        })
    }

    fn runs_downgrades(&self) -> bool {
        self.migrate_command.is_some()
    }

    async fn run_downgrade(&self, run_id: &str, revisions: &[String]) -> Result<String> {
        self.downgrade_job(run_id, revisions).await
    }

    async fn running_downgrade(&self, run_id: &str) -> Result<Option<String>> {
        self.running_job(run_id, Instant::now() + self.live_timeout).await
    }

    async fn wait_downgrade_ended(&self, run_id: &str) -> Result<()> {
        self.wait_jobs_ended(run_id).await
    }

    async fn auto_deployers(&self) -> Result<Option<Vec<String>>> {
        let client = self.client()?;
        let w = self.workload(&client).await?;
        let mut found = w.gitops(&self.namespace);
        if found.is_empty() {
            found.extend(self.label_tracking(&client, &w).await);
        }
        Ok(Some(found))
    }
}
