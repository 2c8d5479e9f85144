//! `--full` on Kubernetes: the database downgrade runs as a `batch/v1` Job made from the live
//! pod template (the release being rolled back, whose image holds the newer migration files
//! the downgrade needs), before the rollout.
//!
//! The Job's pod is the live template's pod spec with one container: `[deploy] container` (or
//! the first), its `command` replaced by `[deploy] migrate_command` (`"{revision}"` expanded to
//! the target revisions, or `base`), its `args`, probes and lifecycle hooks removed; other
//! containers are dropped (a sidecar would keep the Job from finishing), init containers,
//! volumes, env, `envFrom`, service account and pull secrets are kept (they carry the
//! database's URL and credentials). `restartPolicy: Never`, `backoffLimit: 0` (a downgrade is
//! not retried blindly), `activeDeadlineSeconds` = `live_timeout_secs`. The pod's labels are
//! not the workload's, so no Service sends it traffic.
//!
//! The Job is named after the run (`forge-rollback-downgrade-<run>`, then `-2`, `-3`, ... for
//! later attempts): a resumed run waits for its Job that still runs instead of starting a
//! second one, and an undo waits for it before it looks at the database. Waiting reads
//! `status.succeeded` / `status.failed` (and a `Failed` condition), and `active` /
//! `terminating` (a pod that still runs or stops); nothing else is fetched (not the logs:
//! `kubectl logs job/<name>` shows them).
//!
//! The Job does not die with forge-rollback, nor when a look at it fails: a look that gets no
//! answer, a `5xx` or a `429` is looked past until the Job's own deadline
//! (`live_timeout_secs`). A wait that gives up deletes the Job (`propagationPolicy:
//! Foreground`) and waits until it is gone (at most its pod's `terminationGracePeriodSeconds`
//! and 30 s); when it cannot see it gone, the downgrade's outcome is unknown
//! ([`crate::production::Error::Unsettled`]), never "failed, nothing changed". A Job the
//! answer to that `DELETE` shows succeeded (it ended between the last look and the delete) is
//! a downgrade that succeeded.

use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::{Value, json};

use super::Kubernetes;
use crate::production::Result;

/// Most attempts (Jobs) per run.
const MAX_ATTEMPTS: u32 = 20;
/// A pod's `terminationGracePeriodSeconds` when its template does not say (Kubernetes'
/// default).
const DEFAULT_GRACE_SECS: u64 = 30;
/// How long past its pod's grace period a deleted Job may take to go: the kubelet reports the
/// pod stopped, then the garbage collector removes the Job.
const GONE_MARGIN: Duration = Duration::from_secs(30);

#[derive(Debug, Default, Deserialize)]
struct Job {
    #[serde(default)]
    spec: JobSpec,
    #[serde(default)]
    status: JobStatus,
}

#[derive(Debug, Default, Deserialize)]
struct JobSpec {
    #[serde(default)]
    template: PodTemplate,
}

#[derive(Debug, Default, Deserialize)]
struct PodTemplate {
    #[serde(default)]
    spec: PodSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodSpec {
    termination_grace_period_seconds: Option<u64>,
}

impl Job {
    /// How long this Job, deleted, may take to go: its pod gets its
    /// `terminationGracePeriodSeconds` (the live template's, kept in the Job; 30 s unless set)
    /// between the stop signal and being killed, then a margin.
    fn stop_wait(&self) -> Duration {
        let grace = self.spec.template.spec.termination_grace_period_seconds.unwrap_or(DEFAULT_GRACE_SECS);
        Duration::from_secs(grace) + GONE_MARGIN
    }
}

#[derive(Debug, Default, Deserialize)]
struct JobStatus {
    #[serde(default)]
    succeeded: i64,
    #[serde(default)]
    failed: i64,
    #[serde(default)]
    active: i64,
    #[serde(default)]
    terminating: i64,
    #[serde(default)]
    conditions: Vec<JobCondition>,
}

#[derive(Debug, Deserialize)]
struct JobCondition {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    message: String,
}

impl JobStatus {
    /// `Some(Ok)` succeeded, `Some(Err(why))` failed, `None` still running: a pod still
    /// active or stopping (a Job past its deadline is marked failed while its pod stops) may
    /// still be changing the database.
    fn outcome(&self) -> Option<std::result::Result<(), String>> {
        if self.active > 0 || self.terminating > 0 {
            return None;
        }
        if self.succeeded > 0 || self.conditions.iter().any(|c| c.kind == "Complete" && c.status == "True") {
            return Some(Ok(()));
        }
        if let Some(c) = self.conditions.iter().find(|c| c.kind == "Failed" && c.status == "True") {
            return Some(Err(format!("{}: {}", c.reason, c.message)));
        }
        (self.failed > 0).then(|| Err(format!("{} pod(s) failed", self.failed)))
    }
}

/// The Job's name for attempt `n` of run `run_id` (at most 63 characters, a DNS label).
pub fn job_name(run_id: &str, n: u32) -> String {
    let clean: String =
        run_id.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    let suffix = if n > 1 { format!("-{n}") } else { String::new() };
    let mut name = format!("forge-rollback-downgrade-{}", clean.trim_matches('-'));
    name.truncate(63 - suffix.len());
    format!("{}{suffix}", name.trim_end_matches('-'))
}

/// `argv` with an element `{revision}` replaced by `revisions` (or `base`).
pub fn expand(argv: &[String], revisions: &[String]) -> Vec<String> {
    let base = vec!["base".to_owned()];
    let revs = if revisions.is_empty() { &base } else { revisions };
    argv.iter()
        .flat_map(|a| if a == "{revision}" { revs.to_vec() } else { vec![a.replace("{revision}", &revs.join(","))] })
        .collect()
}

impl Kubernetes {
    fn jobs_path(&self) -> String {
        format!("/apis/batch/v1/namespaces/{}/jobs", self.namespace)
    }

    /// The Job for the downgrade to `revisions`, from the live template.
    fn job_body(&self, name: &str, run_id: &str, template: &Value, argv: &[String]) -> Result<Value> {
        let pod = template.get("spec").cloned().unwrap_or(Value::Null);
        let containers = pod.get("containers").and_then(Value::as_array).cloned().unwrap_or_default();
        let chosen = match &self.container {
            Some(c) => containers.iter().find(|k| k.get("name").and_then(Value::as_str) == Some(c.as_str())),
            None => containers.first(),
        };
        let Some(mut container) = chosen.cloned() else {
            return Err(self.error(
                format!(
                    "the live pod template has no container {}",
                    self.container.as_deref().map_or_else(|| "at all".to_owned(), |c| format!("named `{c}`"))
                ),
                Some("set `container` in `[deploy]` to the container whose image holds the migrations".to_owned()),
            ));
        };
        if let Some(c) = container.as_object_mut() {
            for key in ["args", "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "ports"] {
                c.remove(key);
            }
            c.insert("command".into(), json!(argv));
        }
        let mut spec = pod;
        if let Some(s) = spec.as_object_mut() {
            s.insert("containers".into(), json!([container]));
            s.insert("restartPolicy".into(), json!("Never"));
        }
        let labels = json!({"app.kubernetes.io/managed-by": "forge-rollback", "forge-rollback/purpose": "downgrade"});
        Ok(json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": self.namespace, "labels": labels, "annotations": {"forge-rollback/run-id": run_id}},
            "spec": {
                "backoffLimit": 0,
                "activeDeadlineSeconds": self.live_timeout.as_secs().max(1),
                "template": {"metadata": {"labels": labels}, "spec": spec},
            },
        }))
    }

    /// Runs the downgrade Job and waits for it; see the module's documentation.
    pub(super) async fn downgrade_job(&self, run_id: &str, revisions: &[String]) -> Result<String> {
        let Some(argv) = &self.migrate_command else {
            return Err(self.error("`[deploy] migrate_command` is not set".to_owned(), None));
        };
        let client = self.client()?;
        let deadline = Instant::now() + self.live_timeout;
        for n in 1..=MAX_ATTEMPTS {
            let name = job_name(run_id, n);
            let path = format!("{}/{name}", self.jobs_path());
            match self.read_job(&client, &path, deadline).await? {
                Some(job) if job.status.outcome().is_some() => continue,
                Some(_) => {}
                None => {
                    let w = self.workload(&client).await?;
                    let body = self.job_body(&name, run_id, w.template(), &expand(argv, revisions))?;
                    match client.create("creating the downgrade job", &self.jobs_path(), body.to_string()).await {
                        Ok(_) => {}
                        // A create that got no answer may have made the Job all the same.
                        Err(e) if e.is_transient() => return self.wait_job(&client, &name, &path, Some(e)).await,
                        Err(e) => return Err(e),
                    }
                }
            }
            return self.wait_job(&client, &name, &path, None).await;
        }
        Err(self.error(
            format!("run {run_id} has {MAX_ATTEMPTS} downgrade jobs already"),
            Some(format!(
                "delete them: `kubectl delete jobs -n {} -l forge-rollback/purpose=downgrade`",
                self.namespace
            )),
        ))
    }

    /// The Job at `path` (`None`: there is none), looking past failed looks (no answer, a
    /// `5xx`, a `429`) until `deadline`.
    async fn read_job(&self, client: &super::Client, path: &str, deadline: Instant) -> Result<Option<Job>> {
        loop {
            match client.get::<Job>("reading the downgrade job", path).await {
                Err(e) if e.is_transient() && Instant::now() < deadline => {
                    let pause = self.poll.max(e.retry_after().unwrap_or_default());
                    tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
                }
                other => return other,
            }
        }
    }

    /// Waits until Job `name` ends. A look that fails as a platform in trouble (no answer, a
    /// `5xx`, a `429`) is looked past until the deadline, as the rollout wait does: the Job
    /// runs on whether or not it is watched. Given up on (the deadline, a look that cannot be
    /// made), it is deleted; only when it is seen gone is its end known ([`Error::Platform`],
    /// a failed downgrade). Otherwise [`Error::Unsettled`]. `unsent`: the create that got no
    /// answer, when it may not have made the Job (a `404` then means nothing ran).
    async fn wait_job(
        &self,
        client: &super::Client,
        name: &str,
        path: &str,
        unsent: Option<crate::production::Error>,
    ) -> Result<String> {
        // Its `activeDeadlineSeconds`: a Job still running then is deleted.
        let wait = self.live_timeout;
        let deadline = Instant::now() + wait;
        let logs = format!("`kubectl logs job/{name} -n {}` shows its output", self.namespace);
        let mut unsent = unsent;
        // How long it may take to go once deleted, from the Job as last read (the default
        // grace period when it never was).
        let mut stop_wait = Job::default().stop_wait();
        loop {
            let mut pause = self.poll;
            match client.get::<Job>("reading the downgrade job", path).await {
                Ok(Some(job)) => match job.status.outcome() {
                    Some(Ok(())) => return Ok(format!("job {name}")),
                    // The engine's own hint replaces this one: the pointer to the logs goes in the message.
                    Some(Err(why)) => {
                        return Err(self.error(format!("the downgrade job {name} failed ({why}; {logs})"), Some(logs)));
                    }
                    None => {
                        unsent = None;
                        stop_wait = job.stop_wait();
                    }
                },
                Ok(None) => {
                    return Err(match unsent {
                        Some(e) => e,
                        // A `kubectl delete` (in the background, its default) leaves the pod stopping.
                        None => self.unsettled(
                            name,
                            &format!("job {name} disappeared while it ran (someone deleted it; its pod may still be stopping)"),
                        ),
                    });
                }
                Err(e) if e.is_transient() && Instant::now() < deadline => {
                    pause = pause.max(e.retry_after().unwrap_or_default());
                }
                Err(e) => {
                    return self.give_up(client, (name, path), &format!("could not be read ({e})"), stop_wait).await;
                }
            }
            if Instant::now() >= deadline {
                let why = format!("did not finish within {} s", wait.as_secs());
                return self.give_up(client, (name, path), &why, stop_wait).await;
            }
            tokio::time::sleep(pause.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }

    /// Deletes Job `name` at `path` (`propagationPolicy: Foreground`: the Job stays until its
    /// pod is gone; a delete that fails as a platform in trouble is tried again for as long as
    /// the wait was) and waits until it is gone, at most `stop_wait` ([`Job::stop_wait`]): a
    /// failed downgrade whose end is known, or
    /// [`Error::Unsettled`](crate::production::Error::Unsettled).
    ///
    /// Unless the Job had succeeded by the time the delete took effect: the API server answers
    /// a `DELETE` with the object as it stood then, so a Job that ended between the last look
    /// and the delete is a downgrade that succeeded, not one to restore the snapshot over. A
    /// look before the delete would leave that gap open; the answer to the delete closes it.
    /// A success seen only after the delete is not taken: the pod had been told to stop, and a
    /// program that exits 0 on `SIGTERM` has not necessarily finished its downgrade.
    async fn give_up(
        &self,
        client: &super::Client,
        (name, path): (&str, &str),
        why: &str,
        stop_wait: Duration,
    ) -> Result<String> {
        let logs = format!("`kubectl logs job/{name} -n {}` shows its output", self.namespace);
        let mut deadline = Instant::now() + self.live_timeout;
        let mut deleted = false;
        let mut last = String::new();
        loop {
            let look = if deleted {
                client.get::<Job>("reading the downgrade job", path).await.map(|j| j.is_none())
            } else {
                match client
                    .delete::<Job>("deleting the downgrade job", &format!("{path}?propagationPolicy=Foreground"))
                    .await
                {
                    Ok(Some(job)) if job.status.outcome() == Some(Ok(())) => {
                        return Ok(format!("job {name} (it had ended when it was deleted at its deadline)"));
                    }
                    Ok(found) => {
                        deleted = true;
                        deadline = Instant::now() + stop_wait;
                        Ok(found.is_none())
                    }
                    Err(e) => Err(e),
                }
            };
            match look {
                Ok(true) => {
                    return Err(self.error(
                        format!("the downgrade job {name} {why}: it was deleted, and its pod has stopped ({logs})"),
                        Some(logs),
                    ));
                }
                Ok(false) => {}
                Err(e) if e.is_transient() => last = format!(" ({e})"),
                Err(e) => {
                    last = format!(" ({e})");
                    break;
                }
            }
            if Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(self.poll.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
        let what = if deleted {
            format!(
                "was deleted but is not gone {} s later (its pod's grace period and {} s)",
                stop_wait.as_secs(),
                GONE_MARGIN.as_secs()
            )
        } else {
            "could not be deleted".to_owned()
        };
        Err(self.unsettled(name, &format!("the downgrade job {name} {why}, and it {what}{last}")))
    }

    fn unsettled(&self, name: &str, message: &str) -> crate::production::Error {
        crate::production::Error::Unsettled {
            target: self.target(),
            message: format!("{message}: it may still be changing the database"),
            hint: Some(format!(
                "see whether it still runs (`kubectl get job {name} -n {ns}`); let it end, or stop it with `kubectl delete job {name} -n {ns} --cascade=foreground`",
                ns = self.namespace
            )),
        }
    }

    /// A downgrade Job of run `run_id` that has not ended (its name), looking past failed
    /// looks until `deadline`.
    pub(super) async fn running_job(&self, run_id: &str, deadline: Instant) -> Result<Option<String>> {
        if self.migrate_command.is_none() {
            return Ok(None);
        }
        let client = self.client()?;
        for n in 1..=MAX_ATTEMPTS {
            let name = job_name(run_id, n);
            match self.read_job(&client, &format!("{}/{name}", self.jobs_path()), deadline).await? {
                Some(job) if job.status.outcome().is_some() => {}
                Some(_) => return Ok(Some(format!("job {name}"))),
                None => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Waits until no downgrade Job of run `run_id` runs, at most `live_timeout_secs` (a
    /// Job's own deadline); refused when one still does, or when that cannot be told.
    pub(super) async fn wait_jobs_ended(&self, run_id: &str) -> Result<()> {
        let deadline = Instant::now() + self.live_timeout;
        loop {
            let running = match self.running_job(run_id, deadline).await {
                Ok(None) => return Ok(()),
                Ok(Some(name)) => format!("{name} is still running"),
                Err(e) if e.is_transient() => format!("may still be running (it cannot be read: {e})"),
                Err(e) => return Err(e),
            };
            if Instant::now() >= deadline {
                return Err(crate::production::Error::Refused {
                    target: self.target(),
                    message: format!(
                        "the downgrade {running} of run {run_id}: it may still be changing the database; nothing was changed"
                    ),
                    hint: Some(format!(
                        "let it end, or stop it with `kubectl delete jobs -n {} -l forge-rollback/purpose=downgrade --cascade=foreground`; then try again",
                        self.namespace
                    )),
                });
            }
            tokio::time::sleep(self.poll.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_commands() {
        assert_eq!(job_name("20261204T011234Z-A1b2", 1), "forge-rollback-downgrade-20261204t011234z-a1b2");
        assert_eq!(job_name("x", 3), "forge-rollback-downgrade-x-3");
        assert!(job_name(&"r".repeat(80), 12).len() <= 63);
        let argv: Vec<String> = ["alembic", "downgrade", "{revision}"].map(str::to_owned).to_vec();
        assert_eq!(expand(&argv, &[]), ["alembic", "downgrade", "base"]);
        assert_eq!(expand(&argv, &["a".into(), "b".into()]), ["alembic", "downgrade", "a", "b"]);
        let sh: Vec<String> = ["sh", "-c", "migrate to {revision}"].map(str::to_owned).to_vec();
        assert_eq!(expand(&sh, &["a1".into()])[2], "migrate to a1");
    }

    #[test]
    fn a_deleted_job_is_given_its_pods_grace_period_and_a_margin_to_go() {
        // As the API server returns a Job: the pod template's grace period (from the live
        // template, or defaulted), or none when the Job was never read.
        let job = |spec: serde_json::Value| serde_json::from_value::<Job>(serde_json::json!({"spec": spec})).unwrap();
        let long = job(serde_json::json!({"template": {"spec": {"terminationGracePeriodSeconds": 300}}}));
        assert_eq!(long.stop_wait(), Duration::from_secs(330));
        let none = job(serde_json::json!({"template": {"spec": {"terminationGracePeriodSeconds": 0}}}));
        assert_eq!(none.stop_wait(), Duration::from_secs(30));
        assert_eq!(job(serde_json::json!({})).stop_wait(), Duration::from_secs(60));
        assert_eq!(Job::default().stop_wait(), Duration::from_secs(60));
    }
}
