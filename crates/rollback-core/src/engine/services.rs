//! The service parts of the engine: restart, deploy, verify, and webhook notifications.

use std::sync::Arc;

use async_trait::async_trait;

use super::{Ctx, Rollback};
use crate::db::DbMigrator;
use crate::error::{Error, Result};
use crate::event::LogLevel;
use crate::notify::{NotifyEvent, NotifyEventKind};
use crate::plan::{Plan, RunKind};
use crate::time::Timestamp;
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
        // A database that cannot be opened (an unset `url_env`) leaves `sql` checks without
        // one: they fail with that reason instead of the whole round.
        let probe = self.db().ok().flatten().cloned().map(|d| Arc::new(MigratorProbe(d)) as Arc<dyn DbProbe>);
        Verifier::new(self.config.checks.clone(), self.config.verify.clone(), probe, self.workdir().to_path_buf())
            .deployed_at(self.deployed_at())
    }

    /// When the running release was deployed, for `prometheus` baselines: when HEAD arrived
    /// at its commit (the reflog), else the commit's own time. `None` when neither is known.
    pub fn deployed_at(&self) -> Option<Timestamp> {
        if let Ok(Some(secs)) = self.vcs().head_arrived_at() {
            return Some(Timestamp::from_unix(secs));
        }
        let head = self.vcs().head().ok()?;
        self.vcs().commit_info(&head.commit).ok().map(|c| Timestamp::from_unix(c.time))
    }

    /// The verifier runs and the `verify` step use: the one given to the builder, or the one
    /// built from the configured `[[checks]]`.
    pub(crate) fn service_verifier(&self) -> Arc<dyn ServiceVerifier> {
        match self.verifier.get() {
            Some(v) => v.clone(),
            None => Arc::new(self.verifier()),
        }
    }

    /// The names of the checks a run verifies with.
    pub(crate) fn check_names(&self) -> Vec<String> {
        match self.verifier.get() {
            Some(v) => v.check_names(),
            None => self.config.checks.iter().map(|c| c.name.clone()).collect(),
        }
    }

    /// Runs the checks now (only those named in `only`, when given), concurrently. Refused
    /// without checks, and with `only` empty: an empty round would say "passed" about services
    /// nobody checked.
    pub fn verify(&self, only: Option<&[String]>) -> Result<VerificationReport> {
        let names = self.check_names();
        if only.is_some_and(<[String]>::is_empty) && !names.is_empty() {
            return Err(Error::usage(
                "no check was selected: the list of check names is empty, so there is nothing to verify".to_owned(),
                Some(
                    format!("configured checks: {}; leave the selection out to run them all", names.join(", ")).into(),
                ),
            ));
        }
        if names.is_empty() {
            return Err(Error::usage(
                "no `[[checks]]` are configured: there is nothing to verify".to_owned(),
                Some(crate::hint::hint![
                    "add `[[checks]]` to the configuration (",
                    crate::hint::Action::PrintConfig { preset: Some("forge".into()) },
                    " shows the runbook's checks)"
                ]),
            ));
        }
        if let Some(only_names) = only
            && let Some(unknown) = only_names.iter().find(|n| !names.contains(n))
        {
            return Err(Error::usage(
                format!("no check named `{unknown}`"),
                Some(format!("configured checks: {}", names.join(", ")).into()),
            ));
        }
        let verifier = self.service_verifier();
        Ok(crate::rt::block_on(verifier.verify(only)))
    }

    /// Sends a webhook event to every `[[notify]]` subscribed to it. A failing or hanging
    /// webhook is a warning, bounded by its own timeout; it never fails the run.
    pub(crate) fn notify(
        &self,
        ctx: &mut Ctx<'_>,
        kind: NotifyEventKind,
        run_id: &str,
        plan: &Plan,
        error: Option<&str>,
    ) {
        if self.config.notify.is_empty() {
            return;
        }
        let event = self.event(kind, run_id, plan, error);
        let results = crate::rt::block_on(crate::notify::send_all(&self.config.notify, &event));
        Self::log_notified(ctx, kind, &results);
    }

    /// Starts sending a webhook event on the shared runtime and returns at once; the caller
    /// collects the results later (`None`: no webhook configured).
    pub(crate) fn notify_later(
        &self,
        kind: NotifyEventKind,
        run_id: &str,
        plan: &Plan,
    ) -> Option<tokio::task::JoinHandle<Vec<crate::notify::NotifyResult>>> {
        if self.config.notify.is_empty() {
            return None;
        }
        let event = self.event(kind, run_id, plan, None);
        let configs = self.config.notify.clone();
        Some(crate::rt::runtime().spawn(async move { crate::notify::send_all(&configs, &event).await }))
    }

    /// Logs what happened to each webhook.
    pub(crate) fn log_notified(ctx: &mut Ctx<'_>, kind: NotifyEventKind, results: &[crate::notify::NotifyResult]) {
        for r in results {
            if r.ok {
                ctx.log(LogLevel::Info, format!("Notified webhook `{}` ({})", r.name, kind.as_str()));
            } else {
                ctx.log(LogLevel::Warn, format!("webhook `{}` ({}) failed: {}", r.name, kind.as_str(), r.detail));
            }
        }
    }

    pub(crate) fn event(&self, kind: NotifyEventKind, run_id: &str, plan: &Plan, error: Option<&str>) -> NotifyEvent {
        let what = match (plan.kind, plan.level) {
            (RunKind::Undo, _) => format!("undo of run {}", plan.undo_of.as_deref().unwrap_or("?")),
            (RunKind::Rollback, Some(l)) => format!("{l} rollback"),
            (RunKind::Rollback, None) => "rollback".to_owned(),
        };
        let message = match (kind, error) {
            (NotifyEventKind::Started, _) => format!("{what} started"),
            (NotifyEventKind::Succeeded, _) => format!("{what} succeeded"),
            (NotifyEventKind::VerificationFailed, _) => format!("{what}: the services failed verification"),
            (_, Some(e)) => format!("{what}: {e}"),
            (_, None) => what,
        };
        NotifyEvent {
            kind,
            run_id: run_id.to_owned(),
            level: match kind {
                NotifyEventKind::Started => LogLevel::Info,
                NotifyEventKind::Succeeded => LogLevel::Success,
                NotifyEventKind::Cancelled => LogLevel::Warn,
                NotifyEventKind::Failed | NotifyEventKind::VerificationFailed => LogLevel::Error,
            },
            from: Some(plan.from.commit.to_string()),
            to: Some(plan.to.to_string()),
            repository: self
                .workdir()
                .file_name()
                .map_or_else(|| self.workdir().display().to_string(), |n| n.to_string_lossy().into_owned()),
            message,
            time: Timestamp::now(),
        }
    }
}
