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
//! second one. Waiting reads `status.succeeded` / `status.failed` (and a `Failed` condition);
//! nothing else is fetched (not the logs: `kubectl logs job/<name>` shows them).

use std::time::Instant;

use serde::Deserialize;
use serde_json::{Value, json};

use super::Kubernetes;
use crate::production::Result;

/// Most attempts (Jobs) per run.
const MAX_ATTEMPTS: u32 = 20;

#[derive(Debug, Default, Deserialize)]
struct Job {
    #[serde(default)]
    status: JobStatus,
}

#[derive(Debug, Default, Deserialize)]
struct JobStatus {
    #[serde(default)]
    succeeded: i64,
    #[serde(default)]
    failed: i64,
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
    /// `Some(Ok)` succeeded, `Some(Err(why))` failed, `None` still running.
    fn outcome(&self) -> Option<std::result::Result<(), String>> {
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
        for n in 1..=MAX_ATTEMPTS {
            let name = job_name(run_id, n);
            let path = format!("{}/{name}", self.jobs_path());
            match client.get::<Job>("reading the downgrade job", &path).await? {
                Some(job) if job.status.outcome().is_some() => continue,
                Some(_) => {}
                None => {
                    let w = self.workload(&client).await?;
                    let body = self.job_body(&name, run_id, w.template(), &expand(argv, revisions))?;
                    client.create("creating the downgrade job", &self.jobs_path(), body.to_string()).await?;
                }
            }
            return self.wait_job(&client, &name, &path).await;
        }
        Err(self.error(
            format!("run {run_id} has {MAX_ATTEMPTS} downgrade jobs already"),
            Some(format!(
                "delete them: `kubectl delete jobs -n {} -l forge-rollback/purpose=downgrade`",
                self.namespace
            )),
        ))
    }

    async fn wait_job(&self, client: &super::Client, name: &str, path: &str) -> Result<String> {
        let deadline = Instant::now() + self.live_timeout;
        let logs = format!("`kubectl logs job/{name} -n {}` shows its output", self.namespace);
        loop {
            let job: Job = client.get("reading the downgrade job", path).await?.ok_or_else(|| {
                self.error(
                    format!("job {name} disappeared while it ran"),
                    Some("someone deleted it; resume the run".to_owned()),
                )
            })?;
            match job.status.outcome() {
                Some(Ok(())) => return Ok(format!("job {name}")),
                Some(Err(why)) => {
                    // The engine's own hint replaces this one: the pointer to the logs goes in the message.
                    return Err(self.error(format!("the downgrade job {name} failed ({why}; {logs})"), Some(logs)));
                }
                None => {}
            }
            if Instant::now() >= deadline {
                return Err(self.error(
                    format!(
                        "the downgrade job {name} did not finish within {} s ({logs})",
                        self.live_timeout.as_secs()
                    ),
                    Some(logs),
                ));
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
}
