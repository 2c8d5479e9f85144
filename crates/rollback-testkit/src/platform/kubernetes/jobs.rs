//! The fake's `batch/v1` Jobs: `POST`, `GET` and `DELETE .../jobs/{name}`; a Job's command
//! runs as a local process (the kubelet of this fake) when its time is up.

use serde_json::{Value, json};

use super::{FakeJob, KubeState, query, status};
use crate::server::{RecordedRequest, Reply};

fn job_json(j: &FakeJob) -> Value {
    let mut body = j.body.clone();
    body["status"] = match j.ended {
        None => json!({"active": 1, "ready": 0, "terminating": 0, "startTime": "2026-12-04T10:00:00Z"}),
        Some(true) => {
            json!({"succeeded": 1, "active": 0, "conditions": [{"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"}]})
        }
        Some(false) => {
            json!({"failed": 1, "active": 0, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]})
        }
    };
    body
}

fn run_job(st: &KubeState, body: &Value) -> (bool, String) {
    if st.job_fails {
        return (false, String::new());
    }
    let Some((dir, env)) = &st.job_runner else { return (true, String::new()) };
    let argv: Vec<String> = body
        .pointer("/spec/template/spec/containers/0/command")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    let Some((program, args)) = argv.split_first() else { return (false, "no command".into()) };
    match std::process::Command::new(program).args(args).current_dir(dir).envs(env.iter().map(|(k, v)| (k, v))).output()
    {
        Ok(o) => (
            o.status.success(),
            format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
        ),
        Err(e) => (false, e.to_string()),
    }
}

/// Job `i` ends: its pod runs the command (a Job added with no pod template succeeds).
fn end_job(st: &mut KubeState, i: usize) {
    let (ok, output) = if st.jobs[i].body.pointer("/spec/template").is_some() {
        run_job(st, &st.jobs[i].body)
    } else {
        (true, String::new())
    };
    st.jobs[i].ended = Some(ok);
    st.jobs[i].output = output;
}

pub(super) fn jobs(st: &mut KubeState, req: &RecordedRequest, rest: &str) -> Reply {
    match st.jobs_unavailable {
        (0, 0) => {}
        (0, n) => {
            st.jobs_unavailable.1 = n - 1;
            return status(503, "ServiceUnavailable", "the server is currently unable to handle the request");
        }
        (skip, _) => st.jobs_unavailable.0 = skip - 1,
    }
    match (req.method.as_str(), rest) {
        ("POST", "") => {
            if req.header("content-type") != Some("application/json") {
                return status(415, "UnsupportedMediaType", "the body of the request was in an unknown format");
            }
            let body = req.body_json();
            let name = body.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("").to_owned();
            if body["kind"] != "Job" || body["apiVersion"] != "batch/v1" || name.is_empty() {
                return status(422, "Invalid", "expected a batch/v1 Job with a name");
            }
            if body.pointer("/spec/template/spec/restartPolicy").and_then(Value::as_str) != Some("Never") {
                return status(
                    422,
                    "Invalid",
                    "spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\"",
                );
            }
            // A deleted Job's name is free again (the fake's Jobs are gone at once).
            if st.jobs.iter().any(|j| j.name == name && j.deleted.is_none()) {
                return status(409, "AlreadyExists", &format!("jobs.batch \"{name}\" already exists"));
            }
            let job =
                FakeJob { name, body, polls_left: st.job_reads, ended: None, output: String::new(), deleted: None };
            let reply = job_json(&job);
            st.jobs.push(job);
            Reply::json(201, &reply)
        }
        ("GET", r) if r.starts_with('/') => {
            let name = &r[1..];
            let Some(i) = st.jobs.iter().position(|j| j.name == name && j.deleted.is_none()) else {
                return status(404, "NotFound", &format!("jobs.batch \"{name}\" not found"));
            };
            // The Job's pod runs its command (as a kubelet would) when the Job's time is up.
            if st.jobs[i].ended.is_none() && st.jobs[i].polls_left == 0 {
                end_job(st, i);
            }
            let j = &mut st.jobs[i];
            j.polls_left = j.polls_left.saturating_sub(1);
            Reply::json(200, &job_json(j))
        }
        // Gone at once, its pod with it (the fake's pods stop at once, so `Foreground` ends
        // the same way); the answer is the Job as it stood when the delete took effect, marked
        // for deletion (with `Foreground`, by the finalizer that holds it until its pod is
        // gone), as the API server's.
        ("DELETE", r) if r.starts_with('/') => {
            let name = &r[1..];
            let Some(i) = st.jobs.iter().position(|j| j.name == name && j.deleted.is_none()) else {
                return status(404, "NotFound", &format!("jobs.batch \"{name}\" not found"));
            };
            // Its pod finished just before the delete reached the API server
            // (`jobs_end_at_delete`): the Job had ended by then.
            if st.jobs_end_at_delete && st.jobs[i].ended.is_none() {
                end_job(st, i);
            }
            let policy = query(&req.path, "propagationPolicy").unwrap_or("Orphan").to_owned();
            let j = &mut st.jobs[i];
            let mut reply = job_json(j);
            reply["metadata"]["deletionTimestamp"] = json!("2026-12-04T10:05:00Z");
            if policy == "Foreground" {
                reply["metadata"]["finalizers"] = json!(["foregroundDeletion"]);
            }
            j.deleted = Some(policy);
            Reply::json(200, &reply)
        }
        _ => status(404, "NotFound", "the server could not find the requested resource"),
    }
}
