//! `restart`: the `[[restart]]` commands in order, each with its readiness wait.

use std::sync::{Mutex, PoisonError};

use crate::detail::StepDetail;
use crate::engine::{Ctx, Rollback};
use crate::error::{Error, Result};
use crate::event::LogLevel;

impl Rollback {
    pub(crate) fn step_restart(&self, ctx: &mut Ctx<'_>, run_id: &str) -> Result<StepDetail> {
        ctx.log(LogLevel::Info, format!("Restarting services ({} step(s))...", self.config.restart.len()));
        let verifier = self.verifier();
        // A restart command's stderr may quote a secret (`$DATABASE_URL`) or repaint the
        // terminal: scrubbed like a check's reason, in the log and in the journaled detail.
        let scrub = crate::verify::redact::scrubber(&self.config.verify, &self.config.checks);
        let shared = Mutex::new(&mut *ctx);
        let log = |level: LogLevel, message: String| {
            shared.lock().unwrap_or_else(PoisonError::into_inner).log(level, scrub(&message));
        };
        let mut results =
            crate::rt::block_on(crate::restart::run(&self.config.restart, &verifier, self.workdir(), &log));
        for r in &mut results {
            r.detail = scrub(&r.detail);
        }
        if let Some(bad) = results.iter().find(|r| !r.ok) {
            return Err(Error::Service {
                message: format!("restart step `{}` failed: {}", bad.name, bad.detail),
                hint: Some(crate::hint::hint![
                    "fix the service, then ",
                    crate::hint::Action::resume(run_id),
                    " runs the restart again"
                ]),
            });
        }
        if results.len() < self.config.restart.len() {
            return Err(Error::Service { message: "the restart stopped early".to_owned(), hint: None });
        }
        ctx.log(LogLevel::Success, format!("Services restarted ({} step(s))", results.len()));
        Ok(StepDetail::Restart { steps: results })
    }
}
