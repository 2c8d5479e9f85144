//! `promote`: make the planned release live on the production target and wait until it
//! serves; then, if the plan says so, turn the platform's automatic deploys off (the freeze
//! after a rollback) or back on (an undo). Safe to repeat: a resumed run finds the release
//! live already, and setting the switch to what it is changes nothing.

use crate::detail::StepDetail;
use crate::engine::{Ctx, Rollback};
use crate::error::{Error, Result};
use crate::event::LogLevel;
use crate::production::{Deployer, LIVE_TIMEOUT, Release};

impl Rollback {
    pub(crate) fn step_promote(
        &self,
        ctx: &mut Ctx<'_>,
        production: &str,
        from: &Release,
        to: &Release,
        autodeploy: Option<bool>,
    ) -> Result<StepDetail> {
        let Some(d) = &self.deployer else {
            return Err(Error::usage(
                format!("this run promotes a release on {production}, but no production target is given"),
                Some("open the repository with the same deployer, then resume".into()),
            ));
        };
        let live = crate::rt::block_on(d.current())?;
        let already = d.serves(&live, to);
        if already {
            ctx.log(LogLevel::Info, format!("Production {production}: {to} is live already"));
        } else {
            ctx.log(LogLevel::Info, format!("Production {production}: promoting {to} (live now: {live})..."));
            crate::rt::block_on(d.rollback(to))?;
            crate::rt::block_on(d.wait_live(to, LIVE_TIMEOUT))?;
            ctx.log(LogLevel::Success, format!("Production {production}: {to} is live"));
        }
        let autodeploy_was = if let Some(on) = autodeploy {
            Some(switch(ctx, d.as_ref(), production, on)?)
        } else {
            others(ctx, d.as_ref(), production);
            None
        };
        Ok(StepDetail::Promote { from: from.clone(), to: to.clone(), already, autodeploy, autodeploy_was })
    }
}

/// On a target with no switch, says who else deploys it (a GitOps controller that will
/// re-apply the release in git), or that nothing does.
fn others(ctx: &mut Ctx<'_>, d: &dyn Deployer, production: &str) {
    if d.switches_autodeploy() {
        return;
    }
    match crate::rt::block_on(d.auto_deployers()) {
        Ok(Some(found)) if found.is_empty() => ctx.log(
            LogLevel::Info,
            format!(
                "Production {production}: no automatic deploys found (no Argo CD or Flux marks): nothing to freeze"
            ),
        ),
        Ok(Some(found)) => {
            for m in found {
                ctx.log(LogLevel::Warn, format!("Production {production}: {m}"));
            }
        }
        Ok(None) => {}
        Err(e) => ctx.log(LogLevel::Warn, format!("Production {production}: cannot tell who else deploys it: {e}")),
    }
}

/// Sets the automatic deploys and says so.
fn switch(ctx: &mut Ctx<'_>, d: &dyn Deployer, production: &str, on: bool) -> Result<bool> {
    let was = crate::rt::block_on(d.set_autodeploy(on))?;
    let message = match (on, was) {
        (false, true) => {
            "automatic deploys turned off: a push to the branch will not deploy the bad release again (undo turns them back on)"
        }
        (false, false) => "automatic deploys were off already",
        (true, false) => "automatic deploys turned back on",
        (true, true) => "automatic deploys were on already",
    };
    ctx.log(if was == on { LogLevel::Info } else { LogLevel::Warn }, format!("Production {production}: {message}"));
    Ok(was)
}
