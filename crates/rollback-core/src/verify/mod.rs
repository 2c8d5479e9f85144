//! Service verification: the [`ServiceVerifier`] trait and the checks it runs.
//!
//! - [`config`]: `[[checks]]` and `[verify]`;
//! - check kinds: `http`, `tcp`, `websocket`, `command`, `sql`, `db-revision`, `flow`.
//!
//! Every check runs concurrently on the shared tokio runtime, each under its own timeout: a
//! round takes about as long as its slowest check, not their sum.

pub mod config;

use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use self::config::{CheckConfig, VerifySettings};
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
    /// `passed`, `failed`, `timeout` or `error` (could not run: refused connection, bad
    /// program, ...).
    pub status: String,
    /// How long it took, all attempts included, in milliseconds.
    pub latency_ms: u64,
    /// What a person can act on ("status 502, expected 200"); secrets removed.
    pub reason: String,
    /// Attempts made (retries included).
    pub attempts: u32,
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
}

/// The verifier built from the configuration.
pub struct Verifier {
    checks: Vec<CheckConfig>,
    settings: VerifySettings,
    db: Option<Arc<dyn DbProbe>>,
    workdir: PathBuf,
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
        Self { checks, settings, db, workdir }
    }

    /// The configured checks.
    pub fn checks(&self) -> &[CheckConfig] {
        &self.checks
    }
}

#[async_trait]
impl ServiceVerifier for Verifier {
    async fn verify(&self, only: Option<&[String]>) -> VerificationReport {
        let _ = (only, &self.settings, &self.db, &self.workdir);
        todo!("verify helper")
    }
}
