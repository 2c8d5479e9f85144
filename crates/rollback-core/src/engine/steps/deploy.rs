//! `deploy`: push, revert commit, deploy hook (`[deploy]`).

use crate::detail::StepDetail;
use crate::engine::{Ctx, Exec, Rollback};
use crate::error::{Error, Result};
use crate::event::LogLevel;
use crate::plan::RunKind;

impl Rollback {
    /// The commit production runs before this deploy: HEAD before the run; for an undo, what
    /// the run it undoes pushed. `None`: an undo of a run that did not change the remote
    /// (it failed before its deploy, or its push was refused), which leaves the remote alone.
    pub(crate) fn production_commit(&self, ex: &Exec<'_>, cfg: &crate::deploy::DeployConfig) -> Option<String> {
        let here = ex.plan.from.commit.to_string();
        if ex.plan.kind != RunKind::Undo {
            return Some(here);
        }
        let Some(orig) = &ex.plan.undo_of else { return Some(here) };
        let Ok(state) = self.load_run(orig) else { return Some(here) };
        if let Some(deployed) = state.detail_of("deploy") {
            let pushed = match deployed {
                StepDetail::Deploy { report: Some(r), .. } => r.pushed_commit.clone(),
                _ => None,
            };
            return match pushed {
                Some(pushed) => Some(pushed),
                None if deployed.is_skipped() => None,
                None => Some(here),
            };
        }
        if !cfg.strategy.pushes() {
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

    pub(crate) fn step_deploy(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>) -> Result<StepDetail> {
        let Some(cfg) = &self.config.deploy else {
            return Ok(StepDetail::Deploy { summary: "no [deploy] configured".into(), skipped: false, report: None });
        };
        ctx.log(LogLevel::Info, format!("Deploying ({})...", cfg.strategy.as_str()));
        let Some(from) = self.production_commit(ex, cfg) else {
            let summary = format!(
                "run {} did not change `{}`: the undo leaves it as it is",
                ex.plan.undo_of.as_deref().unwrap_or("?"),
                cfg.remote
            );
            ctx.log(LogLevel::Info, summary.clone());
            return Ok(StepDetail::Deploy { summary, skipped: true, report: None });
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
                Ok(StepDetail::Deploy { summary: report.detail.clone(), skipped: false, report: Some(report) })
            }
            Err(e) => Err(Error::Service { message: format!("deploy failed: {e}"), hint: e.hint().map(Into::into) }),
        }
    }
}
