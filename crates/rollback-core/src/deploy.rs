//! `[deploy]`: putting the rolled-back code into production for apps deployed from git or by
//! a PaaS. Strategies: `push` (the rolled-back branch to a remote with
//! `--force-with-lease`), `revert-commit` (a new commit whose tree is the target's, pushed
//! without force, history kept); and an optional deploy hook (HTTP POST to a secret URL, as
//! Render and Railway offer).

use serde::{Deserialize, Serialize};

/// `[deploy]` (shape defined by the verify helper).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeployConfig {}

impl DeployConfig {
    /// Checks the section (placeholder).
    pub fn validate(&self) -> Result<(), (String, String)> {
        Ok(())
    }
}
