//! `verify`: the configured checks, concurrently; a failure makes the run
//! `verification_failed`.

use crate::detail::StepDetail;
use crate::engine::{Ctx, Exec, Rollback};
use crate::error::Result;
use crate::event::LogLevel;

impl Rollback {
    pub(crate) fn step_verify(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>) -> Result<StepDetail> {
        ctx.log(LogLevel::Info, format!("Verifying services ({} check(s))...", self.check_names().len()));
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
        ex.verification = Some(report.clone());
        Ok(StepDetail::Verify(report))
    }
}
