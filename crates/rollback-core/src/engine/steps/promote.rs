//! `promote`: make the planned release live on the production target and wait until it
//! serves. Safe to repeat: a resumed run finds it live already.

use crate::detail::StepDetail;
use crate::engine::{Ctx, Rollback};
use crate::error::{Error, Result};
use crate::event::LogLevel;
use crate::production::{LIVE_TIMEOUT, Release};

impl Rollback {
    pub(crate) fn step_promote(
        &self,
        ctx: &mut Ctx<'_>,
        production: &str,
        from: &Release,
        to: &Release,
    ) -> Result<StepDetail> {
        let Some(d) = &self.deployer else {
            return Err(Error::usage(
                format!("this run promotes a release on {production}, but no production target is given"),
                Some("open the repository with the same deployer, then resume".to_owned()),
            ));
        };
        let live = crate::rt::block_on(d.current())?;
        if d.serves(&live, to) {
            ctx.log(LogLevel::Info, format!("Production {production}: {to} is live already"));
            return Ok(StepDetail::Promote { from: from.clone(), to: to.clone(), already: true });
        }
        ctx.log(LogLevel::Info, format!("Production {production}: promoting {to} (live now: {live})..."));
        crate::rt::block_on(d.rollback(to))?;
        crate::rt::block_on(d.wait_live(to, LIVE_TIMEOUT))?;
        ctx.log(LogLevel::Success, format!("Production {production}: {to} is live"));
        Ok(StepDetail::Promote { from: from.clone(), to: to.clone(), already: false })
    }
}
