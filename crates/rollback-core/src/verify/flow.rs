//! `kind = "flow"`: HTTP requests in order, sharing variables (the seed's auth checklist:
//! register, get a token, use it, and be refused without it).

use super::Outcome;
use super::config::{ExpectStatus, FlowCheck, FlowStep};
use super::http::{Request, send};
use super::template::Vars;

/// Most bytes of a step's body read (for `body_contains` and `capture`).
const MAX_STEP_BODY: usize = 1024 * 1024;

fn label(i: usize, step: &FlowStep) -> String {
    match &step.name {
        Some(n) => format!("step {} `{n}`", i + 1),
        None => format!("step {} ({} {})", i + 1, step.method.to_ascii_uppercase(), step.url),
    }
}

/// Runs a `flow` check once.
pub(super) async fn run(flow: &FlowCheck, vars: &mut Vars) -> Outcome {
    for (name, var) in &flow.vars_env {
        match crate::secret::from_env(var) {
            Ok(v) => vars.set_secret(name, v.expose().to_owned()),
            Err(e) => return Outcome::Error(format!("variable `{name}`: {e}")),
        }
    }
    for (name, value) in &flow.vars {
        match vars.render(value) {
            Ok(v) => vars.set(name, v),
            Err(e) => return Outcome::Error(format!("variable `{name}`: {e}")),
        }
    }
    let mut outcome = Outcome::Passed(format!("{} steps passed", flow.steps.len()));
    for (i, step) in flow.steps.iter().enumerate() {
        if let Err(o) = run_step(flow, step, vars).await {
            outcome = o.map_reason(|r| format!("{}: {r}", label(i, step)));
            break;
        }
    }
    // Teardown runs whatever happened above, every step of it.
    let mut failures = Vec::new();
    for (i, step) in flow.teardown.iter().enumerate() {
        if let Err(o) = run_step(flow, step, vars).await {
            failures.push(format!("teardown {}: {}", label(i, step), o.reason()));
        }
    }
    match (outcome, failures.is_empty()) {
        (o, true) if flow.teardown.is_empty() => o,
        (Outcome::Passed(r), true) => Outcome::Passed(format!("{r}, teardown done")),
        (Outcome::Passed(_), false) => Outcome::Failed(failures.join("; ")),
        (o, true) => o.map_reason(|r| format!("{r} (teardown done)")),
        (o, false) => o.map_reason(|r| format!("{r}; {}", failures.join("; "))),
    }
}

async fn run_step(flow: &FlowCheck, step: &FlowStep, vars: &mut Vars) -> Result<(), Outcome> {
    let url = match (&flow.base_url, step.url.starts_with('/')) {
        (Some(base), true) => format!("{}{}", base.trim_end_matches('/'), step.url),
        _ => step.url.clone(),
    };
    let req = Request {
        method: &step.method,
        url,
        headers: &step.headers,
        headers_env: None,
        body: step.body.as_ref(),
        json: step.json.as_ref(),
        form: step.form.as_ref(),
        follow_redirects: true,
    };
    let mut resp = send(&req, vars).await?;
    if !ExpectStatus::accepts(step.expect_status.as_ref(), resp.status) {
        return Err(resp.unexpected_status(step.expect_status.as_ref(), vars).await);
    }
    if step.body_contains.is_none() && step.capture.is_empty() {
        return Ok(());
    }
    let body = resp.body(MAX_STEP_BODY).await?;
    if let Some(needle) = &step.body_contains
        && !String::from_utf8_lossy(&body.bytes).contains(needle.as_str())
    {
        return Err(Outcome::Failed(format!("body does not contain `{needle}`")));
    }
    if step.capture.is_empty() {
        return Ok(());
    }
    if body.truncated {
        return Err(Outcome::Failed(format!("the body is larger than {MAX_STEP_BODY} bytes: cannot capture from it")));
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&body.bytes).map_err(|e| Outcome::Failed(format!("body is not JSON: {e}")))?;
    for (name, pointer) in &step.capture {
        let value = match doc.pointer(pointer) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => {
                return Err(Outcome::Failed(format!("nothing at `{pointer}` in the JSON body to capture as `{name}`")));
            }
            Some(other) => other.to_string(),
        };
        vars.set_secret(name, value);
    }
    Ok(())
}
