//! `[[notify]]`: webhooks on start, success, failure and verification failure. Slack-compatible
//! (`{"text": ...}`) or a generic JSON event. A failing or hanging webhook is logged and never
//! fails or delays a rollback beyond its timeout. Webhook URLs are secrets.

use serde::{Deserialize, Serialize};

/// One `[[notify]]` entry (shape defined by the verify helper).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NotifyConfig {}

/// Checks the `[[notify]]` list (placeholder).
pub fn validate(configs: &[NotifyConfig]) -> Result<(), (String, String)> {
    let _ = configs;
    Ok(())
}

/// What happened (placeholder).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NotifyKind {
    /// A run started.
    Started,
    /// It succeeded.
    Succeeded,
    /// It failed.
    Failed,
    /// Verification failed.
    VerificationFailed,
    /// Cancelled.
    Cancelled,
}
