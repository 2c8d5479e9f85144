//! `[[checks]]` and `[verify]`.
//!
//! ```toml
//! [[checks]]
//! name = "fastapi"
//! kind = "http"
//! url = "http://127.0.0.1:8000/"
//! expect_status = 200
//! body_contains = "healthy"
//! ```

use serde::{Deserialize, Serialize};

/// One `[[checks]]` entry. The shape of each kind is the verify helper's to define; unknown
/// keys are refused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckConfig {
    /// Unique name.
    pub name: String,
}

impl CheckConfig {
    /// `http`, `tcp`, `websocket`, `command`, `sql`, `db-revision` or `flow`.
    pub fn kind(&self) -> &'static str {
        todo!("verify helper")
    }
}

/// What the engine does when verification after a run fails.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Stop: the run's status is `verification_failed`; the operator decides.
    #[default]
    Stop,
    /// Undo the rollback by itself.
    Undo,
}

/// `[verify]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VerifySettings {
    /// Per-check timeout when a check sets none, in seconds.
    pub timeout_secs: f64,
    /// What to do when verification after a run fails.
    pub on_failure: OnFailure,
}

impl Default for VerifySettings {
    fn default() -> Self {
        Self { timeout_secs: 10.0, on_failure: OnFailure::Stop }
    }
}

/// Checks the `[[checks]]` list: unique names, valid URLs, sane timeouts, a `sql` or
/// `db-revision` check only with a `[database]`. `Err((key, message))`.
pub fn validate(checks: &[CheckConfig], settings: &VerifySettings, has_database: bool) -> Result<(), (String, String)> {
    let _ = (checks, settings, has_database);
    Ok(())
}
