//! Service verification: the [`ServiceVerifier`] trait and the checks it runs.
//!
//! - [`config`]: `[[checks]]` and `[verify]`;
//! - check kinds: `http`, `tcp`, `websocket`, `command`, `sql`, `db-revision`, `flow`,
//!   [`prometheus`].
//!
//! Every check runs concurrently on the shared tokio runtime, each under its own timeout: a
//! round takes about as long as its slowest check, not their sum.

pub mod command;
pub mod config;
mod expect_status;
mod flow;
mod http;
pub mod prometheus;
pub(crate) mod redact;
mod sql;
mod tcp;
mod template;
mod websocket;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

pub use self::config::{CheckConfig, CheckSpec, OnFailure, VerifySettings};
pub use self::prometheus::MetricValue;
use self::template::Vars;
use crate::time::Timestamp;

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name from the config.
    pub name: String,
    /// Its kind (`http`, `tcp`, ...).
    pub kind: String,
    /// Whether it passed.
    pub passed: bool,
    /// `passed`, `failed`, `timeout`, `error` (could not run: refused connection, bad
    /// program, ...) or `inconclusive` (a `prometheus` check with no data and `no_data =
    /// "inconclusive"`: neither passed nor failed).
    pub status: String,
    /// How long it took, all attempts included, in milliseconds.
    pub latency_ms: u64,
    /// What a person can act on ("status 502, expected 200"); secrets removed.
    pub reason: String,
    /// Attempts made (retries included).
    pub attempts: u32,
    /// A `prometheus` check's query, value and baseline (the last attempt's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<MetricValue>,
}

impl CheckResult {
    /// Neither passed nor failed (`inconclusive`).
    pub fn inconclusive(&self) -> bool {
        self.status == Status::Inconclusive.as_str()
    }
}

/// The outcome of one verification round.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationReport {
    /// Every check passed (true for an empty set).
    pub passed: bool,
    /// When the round began.
    pub started_at: Timestamp,
    /// Wall time of the round in milliseconds.
    pub duration_ms: u64,
    /// One result per check, in config order.
    pub checks: Vec<CheckResult>,
}

/// What `sql` and `db-revision` checks need from the database.
///
/// Implementations must not block the thread they are polled on (run blocking drivers in
/// `tokio::task::spawn_blocking`): a check is bounded by its timeout only while it yields.
#[async_trait]
pub trait DbProbe: Send + Sync {
    /// The first column of the first row of `sql`, as text (`None`: no row or NULL).
    async fn query_scalar(&self, sql: &str) -> Result<Option<String>, String>;
    /// The revisions the database is at, and the revisions the work tree's code expects
    /// (the heads of its migration files).
    async fn revisions(&self) -> Result<(Vec<String>, Vec<String>), String>;
}

/// Runs a set of checks against running services.
#[async_trait]
pub trait ServiceVerifier: Send + Sync {
    /// Runs the configured checks (only those named in `only`, when given), concurrently, each
    /// under its own timeout.
    async fn verify(&self, only: Option<&[String]>) -> VerificationReport;

    /// The names of the checks [`ServiceVerifier::verify`] runs: a plan verifies when there
    /// is at least one, and `only` may name any of them.
    fn check_names(&self) -> Vec<String>;
}

/// The verifier built from the configuration.
pub struct Verifier {
    checks: Vec<CheckConfig>,
    settings: VerifySettings,
    db: Option<Arc<dyn DbProbe>>,
    workdir: PathBuf,
    deployed_at: Option<Timestamp>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier").field("checks", &self.checks.len()).finish_non_exhaustive()
    }
}

impl Verifier {
    /// A verifier for `checks`; `db` serves `sql` and `db-revision` checks; `command` checks
    /// run in `workdir`.
    pub fn new(
        checks: Vec<CheckConfig>,
        settings: VerifySettings,
        db: Option<Arc<dyn DbProbe>>,
        workdir: PathBuf,
    ) -> Self {
        Self { checks, settings, db, workdir, deployed_at: None }
    }

    /// When the running release was deployed: the end of `prometheus` baselines' windows.
    #[must_use]
    pub fn deployed_at(mut self, at: Option<Timestamp>) -> Self {
        self.deployed_at = at;
        self
    }

    /// The configured checks.
    pub fn checks(&self) -> &[CheckConfig] {
        &self.checks
    }
}

#[async_trait]
impl ServiceVerifier for Verifier {
    fn check_names(&self) -> Vec<String> {
        self.checks.iter().map(|c| c.name.clone()).collect()
    }

    async fn verify(&self, only: Option<&[String]>) -> VerificationReport {
        let started_at = Timestamp::now();
        let clock = Instant::now();
        let selected: Vec<&CheckConfig> = match only {
            Some(names) => self.checks.iter().filter(|c| names.contains(&c.name)).collect(),
            None => self.checks.iter().collect(),
        };
        let unknown: Vec<&String> =
            only.unwrap_or_default().iter().filter(|n| !self.checks.iter().any(|c| &c.name == *n)).collect();
        // Resolved once a round: the environment the checks read is the one scrubbed.
        let ctx = Arc::new(Ctx {
            db: self.db.clone(),
            workdir: self.workdir.clone(),
            deployed_at: self.deployed_at,
            known: redact::known_secrets(&self.settings, &self.checks),
        });
        let permits = Arc::new(Semaphore::new(self.settings.concurrency.clamp(1, Semaphore::MAX_PERMITS)));
        let running = selected.into_iter().map(|check| {
            let (ctx, permits) = (ctx.clone(), permits.clone());
            let limit = duration(check.timeout_secs_or(&self.settings));
            async move {
                // Permits are handed out in config order; the timeout starts when the check
                // does, not while it waits for a permit.
                let _permit = permits.acquire_owned().await.ok();
                let (name, kind) = (check.name.clone(), check.kind());
                let known = ctx.known.clone();
                // Aborted when this is dropped too: a caller that stops waiting (a readiness wait
                // that ran out) drops it, and the check, with the program it runs, must end
                // with it, not run on detached.
                let mut task = AbortOnDrop(tokio::spawn(run_check(check.clone(), ctx, limit)));
                // A backstop, in case a check blocks its thread and its own timeout cannot fire.
                let done = tokio::time::timeout(limit + BACKSTOP_GRACE, &mut task.0).await;
                task.0.abort();
                let mut result = match done {
                    Ok(Ok(result)) => result,
                    Ok(Err(join)) => {
                        CheckResult::new(name, kind, Status::Error, limit, 1, format!("the check crashed: {join}"))
                    }
                    Err(_) => CheckResult::new(name, kind, Status::Timeout, limit, 1, timed_out(limit)),
                };
                // Every reason, whatever produced it (a timeout quoting the attempt before, a
                // crash), goes out scrubbed and escaped.
                result.reason = redact::escape_controls(&Vars::with_known(known).redact(&result.reason));
                result
            }
        });
        let mut checks = futures_util::future::join_all(running).await;
        for name in unknown {
            checks.push(CheckResult::new(
                name.clone(),
                "unknown",
                Status::Error,
                Duration::ZERO,
                0,
                format!("no check named `{name}` in the configuration"),
            ));
        }
        VerificationReport {
            passed: checks.iter().all(|c| c.passed),
            started_at,
            duration_ms: millis(clock.elapsed()),
            checks,
        }
    }
}

/// A spawned task that is aborted when this is dropped: its future is dropped, and with it
/// the guards that kill a check's program.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Extra time the backstop gives a check past its own timeout.
const BACKSTOP_GRACE: Duration = Duration::from_secs(1);

/// What checks share.
struct Ctx {
    db: Option<Arc<dyn DbProbe>>,
    workdir: PathBuf,
    deployed_at: Option<Timestamp>,
    /// The configuration's secret values, scrubbed from every reason.
    known: Arc<[String]>,
}

/// `passed`, `failed`, `timeout` or `error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Passed,
    Failed,
    Timeout,
    Error,
    Inconclusive,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Passed => "passed",
            Status::Failed => "failed",
            Status::Timeout => "timeout",
            Status::Error => "error",
            Status::Inconclusive => "inconclusive",
        }
    }
}

impl CheckResult {
    fn new(name: String, kind: &str, status: Status, latency: Duration, attempts: u32, reason: String) -> Self {
        Self {
            name,
            kind: kind.to_owned(),
            passed: status == Status::Passed,
            status: status.as_str().to_owned(),
            latency_ms: millis(latency),
            reason,
            attempts,
            metric: None,
        }
    }
}

/// What one attempt of a check found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// It passed (what was seen: "status 200").
    Passed(String),
    /// It ran and the answer was wrong.
    Failed(String),
    /// It could not run (refused connection, bad program, unset variable, ...).
    Error(String),
    /// Neither: no data to decide on (`prometheus` with `no_data = "inconclusive"`).
    Inconclusive(String),
}

impl Outcome {
    fn status(&self) -> Status {
        match self {
            Outcome::Passed(_) => Status::Passed,
            Outcome::Failed(_) => Status::Failed,
            Outcome::Error(_) => Status::Error,
            Outcome::Inconclusive(_) => Status::Inconclusive,
        }
    }

    pub(crate) fn reason(&self) -> &str {
        match self {
            Outcome::Passed(r) | Outcome::Failed(r) | Outcome::Error(r) | Outcome::Inconclusive(r) => r,
        }
    }

    pub(crate) fn map_reason(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            Outcome::Passed(r) => Outcome::Passed(f(r)),
            Outcome::Failed(r) => Outcome::Failed(f(r)),
            Outcome::Error(r) => Outcome::Error(f(r)),
            Outcome::Inconclusive(r) => Outcome::Inconclusive(f(r)),
        }
    }
}

/// A number of seconds from the config as a duration: anything not positive and finite
/// counts as the 10 s default, and nothing waits longer than a day.
pub(crate) fn duration(secs: f64) -> Duration {
    if config::valid_secs(secs) { Duration::from_secs_f64(secs.min(config::MAX_SECS)) } else { Duration::from_secs(10) }
}

/// Milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// "timed out after 1.0 s".
pub(crate) fn timed_out(limit: Duration) -> String {
    format!("timed out after {:.1} s", limit.as_secs_f64())
}

/// Attempts made so far and the last one's outcome (already without secrets).
#[derive(Default)]
struct Progress {
    attempts: u32,
    last: Option<Outcome>,
    metric: Option<MetricValue>,
}

async fn run_check(check: CheckConfig, ctx: Arc<Ctx>, limit: Duration) -> CheckResult {
    let start = Instant::now();
    let mut progress = Progress::default();
    let done = tokio::time::timeout(limit, attempts(&check, &ctx, &mut progress)).await;
    let (status, reason) = if let Ok(outcome) = done {
        (outcome.status(), outcome.reason().to_owned())
    } else {
        let mut reason = timed_out(limit);
        if progress.attempts > 1 {
            let _ = write!(reason, " (during attempt {} of {})", progress.attempts, check.retries.saturating_add(1));
        }
        if let Some(last) = &progress.last {
            let _ = write!(reason, "; the attempt before: {}", last.reason());
        }
        (Status::Timeout, reason)
    };
    let mut result =
        CheckResult::new(check.name, check.spec.kind(), status, start.elapsed(), progress.attempts.max(1), reason);
    result.metric = progress.metric;
    result
}

async fn attempts(check: &CheckConfig, ctx: &Ctx, progress: &mut Progress) -> Outcome {
    let mut backoff = config::valid_secs(check.backoff_secs).then(|| duration(check.backoff_secs));
    loop {
        progress.attempts += 1;
        let mut vars = Vars::with_known(ctx.known.clone());
        let outcome = run_once(&check.spec, ctx, &mut vars, &mut progress.metric).await;
        let outcome = outcome.map_reason(|r| vars.redact(&r));
        if matches!(outcome, Outcome::Passed(_) | Outcome::Inconclusive(_)) || progress.attempts > check.retries {
            return outcome;
        }
        progress.last = Some(outcome);
        if let Some(wait) = backoff {
            tokio::time::sleep(wait).await;
            backoff = Some(wait.saturating_mul(2));
        }
    }
}

async fn run_once(spec: &CheckSpec, ctx: &Ctx, vars: &mut Vars, metric: &mut Option<MetricValue>) -> Outcome {
    match spec {
        CheckSpec::Http(c) => http::run(c, vars).await,
        CheckSpec::Tcp(c) => tcp::run(c).await,
        CheckSpec::Websocket(c) => websocket::run(c, vars).await,
        CheckSpec::Command(c) => command::run(c, &ctx.workdir, vars).await,
        CheckSpec::Sql(c) => sql::run_sql(c, ctx.db.as_deref()).await,
        CheckSpec::DbRevision(_) => sql::run_revision(ctx.db.as_deref()).await,
        CheckSpec::Flow(c) => flow::run(c, vars).await,
        CheckSpec::Prometheus(c) => prometheus::run(c, ctx.deployed_at, metric).await,
    }
}

impl Verifier {
    /// The work tree `command` checks run in.
    pub fn workdir(&self) -> &Path {
        &self.workdir
    }

    /// The `[verify]` settings.
    pub fn settings(&self) -> &VerifySettings {
        &self.settings
    }
}
