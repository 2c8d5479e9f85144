//! `clear_caches`: remove `__pycache__`, `*.pyc` and configured cache globs.

use crate::detail::StepDetail;
use crate::engine::{Ctx, Exec, Rollback, planner};
use crate::error::Result;
use crate::event::LogLevel;
use crate::plan::Step;

impl Rollback {
    pub(crate) fn step_clear_caches(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>) -> Result<StepDetail> {
        ctx.log(LogLevel::Info, "Clearing Python cache...");
        // A fresh plan listed the caches from the status taken under the lock; a resumed run
        // asks again.
        let guard = planner::CacheGuard::new(&self.config, self.workdir());
        let found = match (
            ex.fresh_plan,
            ex.plan.steps.iter().find_map(|s| match s {
                Step::ClearCaches { found } => Some(found),
                _ => None,
            }),
        ) {
            (true, Some(found)) => found.clone(),
            _ => planner::find_caches(&self.config, &self.vcs.status(true)?, Self::reset_changes(ex.plan), &guard),
        };
        let mut removed = 0;
        // Whatever the plan says (a plan journaled by another version, say), a protected path
        // is never cleared: caches are deleted without a snapshot.
        for p in found.iter().filter(|p| !guard.protects(p)) {
            if self.remove_entry(p)? {
                removed += 1;
            }
            // A cache folder emptied by removing its files one by one goes too.
            for parent in p.ancestors() {
                if !self.config.is_cache(&parent) || std::fs::remove_dir(parent.to_fs(self.workdir())).is_err() {
                    break;
                }
            }
        }
        Ok(StepDetail::ClearCaches { removed })
    }
}
