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

    /// Starts sending the `started` event of a run on the shared runtime and returns at once;
    /// [`Rollback::notify_end`] collects it (`None`: no webhook configured).
    pub(crate) fn notify_later(&self, run_id: &str, plan: &Plan) -> Option<crate::notify::Sending> {
        if self.config.notify.is_empty() {
            return None;
        }
        let event = self.event(NotifyEventKind::Started, run_id, plan, None);
        Some(crate::notify::Sending::start(&self.config.notify, &event))
    }

    /// Sends a recorded run's last event (`kind`, with its `error`) to every `[[notify]]`
    /// subscribed to it, while collecting its `started` ([`Rollback::notify_later`]); logs what
    /// each webhook did and returns it all (empty without webhooks). A failing or hanging
    /// webhook is a warning, bounded by its own timeout ([`crate::notify::send_after`]); it
    /// never fails the run.
    ///
    /// A cancel asked for during the wait ([`crate::event::Observer::cancelled`]) stops it at
    /// once: the run is recorded already, and only the webhooks not answered yet are given up.
    /// One asked for earlier does not (it was for the steps, and the run's `cancelled` event
    /// must still go out).
    pub(crate) fn notify_end(
        &self,
        ctx: &mut Ctx<'_>,
        ex: &mut super::exec::Exec<'_>,
        kind: NotifyEventKind,
        error: Option<&str>,
        cancelled_before: bool,
    ) -> Vec<crate::notify::NotifyResult> {
        let before = ex.started_notice.take();
        if self.config.notify.is_empty() {
            return Vec::new();
        }
        let event = self.event(kind, &ex.run_id, ex.plan, error);
        let observer = ctx.observer;
        let stop = move || !cancelled_before && observer.cancelled().is_some();
        let (started, last) =
            crate::rt::block_on(crate::notify::send_after(&self.config.notify, before, &event, &stop));
        Self::log_notified(ctx, &started);
        Self::log_notified(ctx, &last);
        started.into_iter().chain(last).collect()
    }

    /// Logs what happened to each webhook.
    fn log_notified(ctx: &mut Ctx<'_>, results: &[crate::notify::NotifyResult]) {
        for r in results {
            match r.warning() {
                None => ctx.log(LogLevel::Info, format!("Notified webhook `{}` ({})", r.name, r.kind.as_str())),
                Some(warning) => ctx.log(LogLevel::Warn, warning),
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
            run_kind: plan.kind,
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
