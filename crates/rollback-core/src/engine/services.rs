//! The service parts of the engine: restart, deploy, verify, and webhook notifications.

use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;

use super::{Ctx, Exec, Rollback};
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
    }

    /// Runs the configured checks now (only those named in `only`, when given), concurrently.
    /// Refused without checks: an empty round would say "passed" about services nobody
    /// checked.
    pub fn verify(&self, only: Option<&[String]>) -> Result<VerificationReport> {
        if self.config.checks.is_empty() {
            return Err(Error::usage(
                "no `[[checks]]` are configured: there is nothing to verify".to_owned(),
                Some(
                    "add `[[checks]]` to the configuration (`forge-rollback init --preset forge --print` shows the runbook's checks)"
                        .to_owned(),
                ),
            ));
        }
        if let Some(names) = only
            && let Some(unknown) = names.iter().find(|n| !self.config.checks.iter().any(|c| &c.name == *n))
        {
            return Err(Error::usage(
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

    /// Sends a webhook event to every `[[notify]]` subscribed to it. A failing or hanging
    /// webhook is a warning, bounded by its own timeout; it never fails the run.
    pub(super) fn notify(
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
    pub(super) fn notify_later(
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
    pub(super) fn log_notified(ctx: &mut Ctx<'_>, kind: NotifyEventKind, results: &[crate::notify::NotifyResult]) {
        for r in results {
            if r.ok {
                ctx.log(LogLevel::Info, format!("Notified webhook `{}` ({})", r.name, kind.as_str()));
            } else {
                ctx.log(LogLevel::Warn, format!("webhook `{}` ({}) failed: {}", r.name, kind.as_str(), r.detail));
            }
        }
    }

    fn event(&self, kind: NotifyEventKind, run_id: &str, plan: &Plan, error: Option<&str>) -> NotifyEvent {
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

    pub(super) fn step_restart(&self, ctx: &mut Ctx<'_>) -> Result<serde_json::Value> {
        ctx.log(LogLevel::Info, format!("Restarting services ({} step(s))...", self.config.restart.len()));
        let verifier = self.verifier();
        let shared = Mutex::new(&mut *ctx);
        let log = |level: LogLevel, message: String| {
            shared.lock().unwrap_or_else(PoisonError::into_inner).log(level, message);
        };
        let results = crate::rt::block_on(crate::restart::run(&self.config.restart, &verifier, self.workdir(), &log));
        let detail = serde_json::json!({ "steps": results });
        if let Some(bad) = results.iter().find(|r| !r.ok) {
            return Err(Error::Service {
                message: format!("restart step `{}` failed: {}", bad.name, bad.detail),
                hint: Some("fix the service, then `forge-rollback resume RUN` runs the restart again".to_owned()),
            });
        }
        if results.len() < self.config.restart.len() {
            return Err(Error::Service { message: "the restart stopped early".to_owned(), hint: None });
        }
        ctx.log(LogLevel::Success, format!("Services restarted ({} step(s))", results.len()));
        Ok(detail)
    }

    /// The commit production runs before this deploy: HEAD before the run; for an undo, what
    /// the run it undoes pushed. `None`: an undo of a run that did not change the remote
    /// (it failed before its deploy, or its push was refused), which leaves the remote alone.
    fn production_commit(&self, ex: &Exec<'_>, cfg: &crate::deploy::DeployConfig) -> Option<String> {
        let here = ex.plan.from.commit.to_string();
        if ex.plan.kind != RunKind::Undo {
            return Some(here);
        }
        let Some(orig) = &ex.plan.undo_of else { return Some(here) };
        let Ok(state) = self.load_run(orig) else { return Some(here) };
        if let Some(deployed) = state.detail_of("deploy") {
            return match deployed.get("pushed_commit").and_then(|v| v.as_str()) {
                Some(pushed) => Some(pushed.to_owned()),
                None if deployed.get("skipped").is_some_and(|v| v == true) => None,
                None => Some(here),
            };
        }
        if cfg.strategy == crate::deploy::DeployStrategy::None {
            return Some(here);
        }
        // Its deploy did not complete: it may still have pushed (its hook failed after the
        // push). The remote says: at the run's target, or at a commit the run made.
        let branch = cfg.branch.as_deref().or(state.plan.from.branch.as_deref());
        let tip = crate::rt::block_on(crate::deploy::remote_tip(cfg, self.workdir(), branch));
        match tip {
            Ok(Some(tip)) => {
                let pushed_by_run = tip == state.plan.to.as_str()
                    || crate::rt::block_on(crate::deploy::made_by_run(cfg, self.workdir(), &tip, orig))
                        .unwrap_or(false);
                pushed_by_run.then_some(tip)
            }
            Ok(None) => None,
            // Unreachable now: the push will say so.
            Err(_) => Some(here),
        }
    }

    pub(super) fn step_deploy(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>) -> Result<serde_json::Value> {
        let Some(cfg) = &self.config.deploy else {
            return Ok(serde_json::json!({ "summary": "no [deploy] configured" }));
        };
        ctx.log(LogLevel::Info, format!("Deploying ({})...", cfg.strategy.as_str()));
        let Some(from) = self.production_commit(ex, cfg) else {
            let summary = format!(
                "run {} did not change `{}`: the undo leaves it as it is",
                ex.plan.undo_of.as_deref().unwrap_or("?"),
                cfg.remote
            );
            ctx.log(LogLevel::Info, summary.clone());
            return Ok(serde_json::json!({ "summary": summary, "skipped": true }));
        };
        let to = ex.plan.to.to_string();
        let dctx = crate::deploy::DeployContext {
            workdir: self.workdir(),
            run_id: &ex.run_id,
            from: &from,
            to: &to,
            branch: ex.plan.from.branch.as_deref(),
        };
        match crate::rt::block_on(crate::deploy::deploy(cfg, &dctx)) {
            Ok(report) => {
                ctx.log(LogLevel::Success, format!("Deployed: {}", report.detail));
                let mut detail = serde_json::to_value(&report).unwrap_or_default();
                if let Some(o) = detail.as_object_mut() {
                    o.insert("summary".into(), serde_json::Value::String(report.detail.clone()));
                }
                Ok(detail)
            }
            Err(e) => Err(Error::Service { message: format!("deploy failed: {e}"), hint: e.hint() }),
        }
    }

    pub(super) fn step_verify(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>) -> Result<serde_json::Value> {
        ctx.log(LogLevel::Info, format!("Verifying services ({} check(s))...", self.config.checks.len()));
        let report = self.verify(None)?;
        for c in &report.checks {
            if c.passed {
                ctx.log(LogLevel::Success, format!("check `{}` passed in {} ms", c.name, c.latency_ms));
            } else {
                ctx.log(LogLevel::Error, format!("check `{}` {}: {}", c.name, c.status, c.reason));
            }
        }
        let failed = report.checks.iter().filter(|c| !c.passed).count();
        if failed == 0 {
            ctx.log(
                LogLevel::Success,
                format!("All {} check(s) passed in {} ms", report.checks.len(), report.duration_ms),
            );
        } else {
            ctx.log(
                LogLevel::Error,
                format!("{failed} of {} check(s) FAILED ({} ms)", report.checks.len(), report.duration_ms),
            );
        }
        let detail = serde_json::to_value(&report).unwrap_or_default();
        ex.verification = Some(report);
        Ok(detail)
    }
}
