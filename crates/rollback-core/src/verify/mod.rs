//! Service verification: the [`ServiceVerifier`] trait.
//!
//! Declared here so plans can name verification steps; HTTP, TCP, WebSocket, command, SQL and
//! flow checks arrive with the verification work. Until then a configuration with `[[checks]]`
//! is refused by `config` with a clear message, never silently skipped.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// The outcome of one check.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name from the config.
    pub name: String,
    /// Whether it passed.
    pub passed: bool,
    /// How long it took.
    pub latency: Duration,
    /// What a person can act on ("status 502, expected 200").
    pub reason: String,
}

/// Runs a set of checks against running services.
#[async_trait]
pub trait ServiceVerifier: Send + Sync {
    /// Runs every configured check, concurrently, each under its own timeout.
    async fn verify(&self) -> Vec<CheckResult>;
}
