//! The service parts of the engine: restart, deploy, verify, notifications.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Ctx, Exec, Rollback};
use crate::db::DbMigrator;
use crate::error::Result;
use crate::plan::Plan;
use crate::verify::{DbProbe, ServiceVerifier, VerificationReport, Verifier};

/// The configured database as `sql` and `db-revision` checks see it.
struct MigratorProbe(Arc<dyn DbMigrator>);

#[async_trait]
impl DbProbe for MigratorProbe {
    async fn query_scalar(&self, sql: &str) -> Result<Option<String>, String> {
        self.0.database().query_scalar(sql).await.map_err(|e| e.to_string())
    }

    async fn revisions(&self) -> Result<(Vec<String>, Vec<String>), String> {
        let current = self.0.current().await.map_err(|e| e.to_string())?;
        let heads = self.0.graph_worktree().await.map_err(|e| e.to_string())?.heads();
        Ok((current.into_iter().map(|r| r.0).collect(), heads.into_iter().map(|r| r.0).collect()))
    }
}

impl Rollback {
    /// The verifier of the configured checks.
    pub fn verifier(&self) -> Verifier {
        let probe = self.db.clone().map(|d| Arc::new(MigratorProbe(d)) as Arc<dyn DbProbe>);
        Verifier::new(self.config.checks.clone(), self.config.verify.clone(), probe, self.workdir().to_path_buf())
    }

    /// Runs the configured checks now (only those named in `only`, when given), concurrently.
    pub fn verify(&self, only: Option<&[String]>) -> Result<VerificationReport> {
        if let Some(names) = only
            && let Some(unknown) = names.iter().find(|n| !self.config.checks.iter().any(|c| &c.name == *n))
        {
            return Err(crate::Error::usage(
                format!("no check named `{unknown}`"),
                Some(format!(
                    "configured checks: {}",
                    self.config.checks.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")
                )),
            ));
        }
        let verifier = self.verifier();
        Ok(crate::rt::block_on(verifier.verify(only)))
    }

    pub(super) fn notify(
        &self,
        ctx: &mut Ctx<'_>,
        kind: crate::notify::NotifyKind,
        run_id: &str,
        plan: &Plan,
        error: Option<&str>,
    ) {
        let _ = (ctx, kind, run_id, plan, error);
    }

    pub(super) fn step_restart(&self, ctx: &mut Ctx<'_>) -> Result<serde_json::Value> {
        let _ = ctx;
        Ok(serde_json::Value::Null)
    }

    pub(super) fn step_deploy(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>) -> Result<serde_json::Value> {
        let _ = (ctx, ex);
        Ok(serde_json::Value::Null)
    }

    pub(super) fn step_verify(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>) -> Result<serde_json::Value> {
        let _ = (ctx, ex);
        Ok(serde_json::Value::Null)
    }
}
