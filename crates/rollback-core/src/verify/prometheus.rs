//! `kind = "prometheus"`: a PromQL query whose first sample must lie in a range, optionally
//! compared with the same query's value before the last deploy (a baseline).
//!
//! ```toml
//! [[checks]]
//! name = "error-rate"
//! kind = "prometheus"
//! url = "http://127.0.0.1:9090"
//! query = 'sum(rate(http_requests_total{status=~"5.."}[1m])) / sum(rate(http_requests_total[1m]))'
//! max = 0.05          # inclusive; `min` too (Flagger's thresholdRange)
//! for = 3             # fail only after 3 failing evaluations in a row
//! interval_secs = 1   # between those evaluations
//! no_data = "fail"    # or "pass", "inconclusive"
//! baseline = "10m"    # the query averaged over the 10 minutes before the last deploy
//! max_increase = 0.02 # now may exceed the baseline by at most this much
//! max_ratio = 2.0     # and be at most twice the baseline
//! ```
//!
//! The query goes to the HTTP API (`GET /api/v1/query`); the value is the first sample of an
//! instant vector (or the scalar). `NaN` (a ratio with no traffic) counts as no data.
//!
//! The baseline is `avg_over_time((QUERY)[WINDOW:])` evaluated at the deploy time: the mean of
//! the query over the window that ended when HEAD last moved (its reflog; the commit's time
//! when there is none). Like Flagger's and Argo Rollouts' analysis, the range is absolute and
//! the baseline relative: both must hold.

// "PagerDuty", "PromQL" are product names, not code.
#![allow(clippy::doc_markdown)]

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Outcome;
use super::config::MAX_SECS;
use crate::http::{describe_error, host_port, read_capped};
use crate::time::Timestamp;

/// What a check does when the query returns no sample.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoData {
    /// No data passes (a quiet service has no errors).
    Pass,
    /// No data fails (the default, like Flagger).
    #[default]
    Fail,
    /// No data is neither: the check is `inconclusive`; `watch` neither counts the round as
    /// failed nor as passing (no rollback, no progress towards promotion).
    Inconclusive,
}

fn one() -> u32 {
    1
}
fn default_interval() -> f64 {
    1.0
}

/// `kind = "prometheus"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusCheck {
    /// The Prometheus server (`http://127.0.0.1:9090`, a path prefix allowed).
    pub url: String,
    /// A PromQL query; its first sample is the value.
    pub query: String,
    /// Lowest passing value, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Highest passing value, inclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Failing evaluations in a row before the check fails (1: the first).
    #[serde(default = "one", rename = "for")]
    pub for_: u32,
    /// Seconds between two evaluations of one run of the check (when `for` > 1).
    #[serde(default = "default_interval")]
    pub interval_secs: f64,
    /// What no sample means.
    #[serde(default)]
    pub no_data: NoData,
    /// A window before the last deploy (`"10m"`, `"90s"`, `"1h"`) to compare with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// With `baseline`: the most the value may exceed the baseline by (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_increase: Option<f64>,
    /// With `baseline`: the most the value may be as a multiple of the baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ratio: Option<f64>,
}

/// What a `prometheus` check saw: the query, the value, the baseline beside it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MetricValue {
    /// The PromQL query.
    pub query: String,
    /// Its value (`None`: no data).
    pub value: Option<f64>,
    /// The baseline's value, when one is configured and had data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// The baseline's window (`10m`), when one is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_window: Option<String>,
    /// The end of the baseline's window: the last deploy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployed_at: Option<Timestamp>,
}

// Equality by bits: the reports holding a value compare as data (NaN never appears: it is
// read as no data).
impl PartialEq for MetricValue {
    fn eq(&self, o: &Self) -> bool {
        let bits = |v: Option<f64>| v.map(f64::to_bits);
        self.query == o.query
            && bits(self.value) == bits(o.value)
            && bits(self.baseline) == bits(o.baseline)
            && self.baseline_window == o.baseline_window
            && self.deployed_at == o.deployed_at
    }
}
impl Eq for MetricValue {}

/// Parses `90s`, `10m`, `1h`, `1d` (a plain number is seconds).
pub fn parse_window(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let bad = || format!("`{text}` is not a duration (e.g. `90s`, `10m`, `1h`)");
    let (num, unit) = match t.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => t.split_at(i),
        None => (t, "s"),
    };
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60).ok_or_else(bad)?,
        "h" => n.checked_mul(3600).ok_or_else(bad)?,
        "d" => n.checked_mul(86_400).ok_or_else(bad)?,
        _ => return Err(bad()),
    };
    if secs == 0 {
        return Err(format!("`{text}` is not longer than 0"));
    }
    Ok(Duration::from_secs(secs))
}

/// Checks the keys; `Err((key, message))`.
pub(super) fn validate(p: &PrometheusCheck) -> Result<(), (String, String)> {
    let url =
        reqwest::Url::parse(&p.url).map_err(|e| ("url".to_owned(), format!("`{}` is not a valid URL: {e}", p.url)))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(("url".into(), format!("`{}` must be an http:// or https:// URL with a host", p.url)));
    }
    if p.query.trim().is_empty() {
        return Err(("query".into(), "is empty".into()));
    }
    for (key, v) in [("min", p.min), ("max", p.max), ("max_increase", p.max_increase), ("max_ratio", p.max_ratio)] {
        if v.is_some_and(|v| !v.is_finite()) {
            return Err((key.into(), "must be a finite number".into()));
        }
    }
    if let (Some(lo), Some(hi)) = (p.min, p.max)
        && lo > hi
    {
        return Err(("min".into(), format!("{lo} is above `max` ({hi}): no value could pass")));
    }
    let has_baseline_limit = p.max_increase.is_some() || p.max_ratio.is_some();
    if p.min.is_none() && p.max.is_none() && !has_baseline_limit {
        return Err(("max".into(), "set `min`, `max`, or a `baseline` with `max_increase`/`max_ratio`".into()));
    }
    match &p.baseline {
        Some(w) => {
            parse_window(w).map_err(|m| ("baseline".to_owned(), m))?;
            if !has_baseline_limit {
                return Err(("baseline".into(), "a baseline needs `max_increase` and/or `max_ratio`".into()));
            }
        }
        None if has_baseline_limit => {
            let key = if p.max_increase.is_some() { "max_increase" } else { "max_ratio" };
            return Err((key.into(), "needs a `baseline` window (e.g. `baseline = \"10m\"`)".into()));
        }
        None => {}
    }
    if p.for_ == 0 {
        return Err(("for".into(), "must be at least 1".into()));
    }
    if !(p.interval_secs.is_finite() && (0.0..=MAX_SECS).contains(&p.interval_secs)) {
        return Err((
            "interval_secs".into(),
            format!("must be between 0 and {MAX_SECS} (one day; got {})", p.interval_secs),
        ));
    }
    Ok(())
}

/// The check's timeout must be longer than the `for` evaluations of one run wait in all.
pub(super) fn check_timeout(p: &PrometheusCheck, timeout: f64) -> Result<(), String> {
    let waits = f64::from(p.for_.saturating_sub(1)) * p.interval_secs;
    // The timeout the check will really have: none is longer than a day.
    let timeout = timeout.min(MAX_SECS);
    if waits >= timeout {
        return Err(format!(
            "{timeout} s is not enough for `for = {}` evaluations {} s apart ({waits} s of waiting); raise `timeout_secs`",
            p.for_, p.interval_secs
        ));
    }
    Ok(())
}

/// Most bytes of an API answer read.
const MAX_ANSWER: usize = 4 * 1024 * 1024;

/// The first sample of `query` at `time` (now when `None`); `Ok(None)`: no data.
async fn sample(base: &str, query: &str, time: Option<Timestamp>) -> Result<Option<f64>, String> {
    let client = crate::http::client().map_err(|e| e.to_string())?;
    let mut url =
        reqwest::Url::parse(&format!("{}/api/v1/query", base.trim_end_matches('/'))).map_err(|e| e.to_string())?;
    let target = host_port(&url);
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("query", query);
        if let Some(t) = time {
            #[allow(clippy::cast_precision_loss)]
            q.append_pair("time", &format!("{:.3}", t.as_millis() as f64 / 1000.0));
        }
    }
    let mut resp = client.get(url).send().await.map_err(|e| describe_error(e, Some(&target)))?;
    let status = resp.status().as_u16();
    let body = read_capped(&mut resp, MAX_ANSWER).await.map_err(|e| describe_error(e, Some(&target)))?;
    if body.truncated {
        return Err(format!(
            "Prometheus at {target} answered more than {} MiB (status {status}): the query returns too many series; aggregate it (`sum`, `max`, `topk`)",
            MAX_ANSWER / (1024 * 1024)
        ));
    }
    let doc: serde_json::Value = serde_json::from_slice(&body.bytes)
        .map_err(|_| format!("Prometheus at {target} answered status {status} with no JSON"))?;
    if doc.get("status").and_then(serde_json::Value::as_str) != Some("success") {
        let err = doc.get("error").and_then(serde_json::Value::as_str).unwrap_or("no reason given");
        return Err(format!("Prometheus at {target} refused the query (status {status}): {err}"));
    }
    let data = doc.get("data").ok_or_else(|| format!("Prometheus at {target}: the answer has no `data`"))?;
    let result = data.get("result");
    let pair = match data.get("resultType").and_then(serde_json::Value::as_str) {
        Some("vector") => result.and_then(|r| r.get(0)).and_then(|s| s.get("value")),
        Some("scalar") => result,
        Some(other) => {
            return Err(format!("the query returns a {other}, not an instant vector or a scalar"));
        }
        None => return Err(format!("Prometheus at {target}: the answer has no `resultType`")),
    };
    let Some(text) = pair.and_then(|p| p.get(1)).and_then(serde_json::Value::as_str) else {
        return Ok(None);
    };
    let v: f64 = text.parse().map_err(|_| format!("the sample `{text}` is not a number"))?;
    Ok((!v.is_nan()).then_some(v))
}

/// `0.0512`, trimmed.
pub fn show(v: f64) -> String {
    let s = format!("{v:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" { "0".to_owned() } else { s.to_owned() }
}

/// One evaluation: the outcome and what was seen.
async fn evaluate(p: &PrometheusCheck, deployed_at: Option<Timestamp>, seen: &mut MetricValue) -> Outcome {
    let value = match sample(&p.url, &p.query, None).await {
        Ok(v) => v,
        Err(e) => return Outcome::Error(e),
    };
    seen.value = value;
    let Some(v) = value else {
        let why = "the query returned no data";
        return match p.no_data {
            NoData::Pass => Outcome::Passed(format!("{why} (no_data = \"pass\")")),
            NoData::Fail => Outcome::Failed(format!("{why} (no_data = \"fail\")")),
            NoData::Inconclusive => Outcome::Inconclusive(format!("{why} (no_data = \"inconclusive\")")),
        };
    };
    let mut problems = Vec::new();
    if let Some(lo) = p.min
        && v < lo
    {
        problems.push(format!("below the minimum {}", show(lo)));
    }
    if let Some(hi) = p.max
        && v > hi
    {
        problems.push(format!("above the maximum {}", show(hi)));
    }
    let mut shown = format!("value {}", show(v));
    if let Some(window) = &p.baseline {
        match deployed_at {
            None => {
                let _ = write!(shown, " (no deploy time known: baseline over {window} not compared)");
            }
            Some(at) => {
                let secs = parse_window(window).map_or(600, |d| d.as_secs());
                let q = format!("avg_over_time(({})[{secs}s:])", p.query);
                match sample(&p.url, &q, Some(at)).await {
                    Err(e) => return Outcome::Error(format!("baseline: {e}")),
                    Ok(None) => {
                        let _ = write!(shown, ", no baseline data in the {window} before {at}");
                    }
                    Ok(Some(b)) => {
                        seen.baseline = Some(b);
                        let _ = write!(shown, ", baseline {} over the {window} before {at}", show(b));
                        if let Some(inc) = p.max_increase
                            && v - b > inc
                        {
                            problems.push(format!(
                                "up {} on the baseline, more than max_increase {}",
                                show(v - b),
                                show(inc)
                            ));
                        }
                        if let Some(ratio) = p.max_ratio
                            && v > b * ratio
                        {
                            problems.push(format!("more than max_ratio {} × the baseline", show(ratio)));
                        }
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        Outcome::Passed(shown)
    } else {
        Outcome::Failed(format!("{shown}: {}", problems.join("; ")))
    }
}

/// Runs a `prometheus` check once: up to `for` evaluations, `interval_secs` apart, until one
/// passes (or is inconclusive, or cannot run) or `for` have failed in a row.
pub(super) async fn run(
    p: &PrometheusCheck,
    deployed_at: Option<Timestamp>,
    seen: &mut Option<MetricValue>,
) -> Outcome {
    let mut metric = MetricValue {
        query: p.query.clone(),
        value: None,
        baseline: None,
        baseline_window: p.baseline.clone(),
        deployed_at: p.baseline.as_ref().and(deployed_at),
    };
    let mut evaluation = 0;
    loop {
        evaluation += 1;
        metric.value = None;
        metric.baseline = None;
        let outcome = evaluate(p, deployed_at, &mut metric).await;
        *seen = Some(metric.clone());
        match outcome {
            Outcome::Failed(_) if evaluation < p.for_ => {
                // Bounded when the configuration is loaded; never a panic on a value that was not.
                let pause = Duration::try_from_secs_f64(p.interval_secs.min(MAX_SECS)).unwrap_or(Duration::ZERO);
                tokio::time::sleep(pause).await;
            }
            Outcome::Failed(r) if p.for_ > 1 => {
                return Outcome::Failed(format!("{r} ({} evaluations in a row)", p.for_));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        assert_eq!(parse_window("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_window("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_window("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_window("30").unwrap(), Duration::from_secs(30));
        for bad in ["", "m", "10x", "0m", "-1m", "1.5m"] {
            assert!(parse_window(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_shown_short() {
        assert_eq!(show(0.05), "0.05");
        assert_eq!(show(2.0), "2");
        assert_eq!(show(0.0), "0");
        assert_eq!(show(-0.5), "-0.5");
    }
}
