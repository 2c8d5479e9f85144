//! `promote`: make the planned release live on the production target and wait until it
//! serves; then, if the plan says so, turn the platform's automatic deploys off (the freeze
//! after a rollback) or back on (an undo). Safe to repeat: a resumed run finds the release
//! live already, or its promotion still in flight (and waits for it rather than send it
//! again), and setting the switch to what it is changes nothing.
//!
//! Nothing is decided while another deploy is in flight on the platform (the run's own
//! promotion that did not go live in time, a colleague's deploy): it would replace whatever
//! this step makes live a moment later. The step waits for it to end (at most the live
//! timeout), then looks again. An undo does not wait for a colleague's deploy: it refuses,
//! as it does when planned, when production runs or deploys anything but the two releases
//! of the run it undoes.

use crate::detail::{ProgressDetail, StepDetail};
use crate::engine::production::refuse_deploys_since;
use crate::engine::{Ctx, Exec, Rollback};
use crate::error::{Error, Result};
use crate::event::LogLevel;
use crate::journal::{Record, RunState};
use crate::model::RunKind;
use crate::plan::Step;
use crate::production::{self, Deployer, LIVE_TIMEOUT, Release};
use crate::time::Timestamp;

impl Rollback {
    pub(crate) fn step_promote(
        &self,
        ctx: &mut Ctx<'_>,
        ex: &mut Exec<'_>,
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
        // An undo puts the release its run rolled back away from over nothing but that run's
        // own promotion: a deploy since (the undo's earlier steps take minutes on a big
        // database; a resume may come hours later) is refused, as when it was planned.
        let undone = match (&ex.plan.kind, &ex.plan.undo_of) {
            (RunKind::Undo, Some(id)) => Some(self.load_run(id)?),
            _ => None,
        };
        if let Some(undone) = &undone {
            refuse_deploys_since(d.as_ref(), undone, Some(&ex.run_id))?;
        }
        let already = match crate::rt::block_on(d.in_flight())? {
            Some(pending) if d.serves(&pending, to) => {
                wait_to_serve(
                    ctx,
                    d.as_ref(),
                    production,
                    to,
                    &format!("{pending}, a promotion of {to}, is in progress"),
                )?;
                // Not "live already": this run's own promotion (sent before) moved production.
                false
            }
            Some(pending) => {
                ctx.log(
                    LogLevel::Warn,
                    format!(
                        "Production {production}: {pending} is still in progress and would replace whatever is promoted now: waiting for it to end"
                    ),
                );
                crate::rt::block_on(d.wait_settled(&pending, LIVE_TIMEOUT))
                    .map_err(|e| still_in_flight(e, production, &pending))?;
                if let Some(undone) = &undone {
                    refuse_deploys_since(d.as_ref(), undone, Some(&ex.run_id))?;
                }
                promote(ctx, d.as_ref(), production, to)?
            }
            None => promote(ctx, d.as_ref(), production, to)?,
        };
        let autodeploy_was = if let Some(on) = autodeploy {
            let was = autodeploy_found(d.as_ref(), ex)?;
            switch(ctx, d.as_ref(), production, on, was)?;
            Some(was)
        } else {
            others(ctx, d.as_ref(), production);
            None
        };
        Ok(StepDetail::Promote { from: from.clone(), to: to.clone(), already, autodeploy, autodeploy_was })
    }
}

/// Waits until `to`, whose promotion (`what`) is under way already, serves: not sent again.
fn wait_to_serve(ctx: &mut Ctx<'_>, d: &dyn Deployer, production: &str, to: &Release, what: &str) -> Result<()> {
    ctx.log(
        LogLevel::Info,
        format!("Production {production}: {what} already: waiting for it to serve (not sent again)"),
    );
    crate::rt::block_on(d.wait_live(to, LIVE_TIMEOUT))?;
    ctx.log(LogLevel::Success, format!("Production {production}: {to} is live"));
    Ok(())
}

/// Makes `to` live unless it is already, and waits until it serves; whether it was live
/// already.
fn promote(ctx: &mut Ctx<'_>, d: &dyn Deployer, production: &str, to: &Release) -> Result<bool> {
    let live = crate::rt::block_on(d.current())?;
    // The very release asked for is what runs: nothing to send, whatever its health. Another
    // release of the same build (the run's own promotion, on a resume) may have crashed after
    // starting (Railway's `CRASHED`: what the service runs, not serving): one look by the
    // platform's own "live" decides, and a promotion it says failed is the error.
    if d.serves(&live, to) {
        let same = live.id == to.id;
        // Where "live" is only what the target rolls out (Kubernetes' template), the very
        // release asked for is looked at too: a resumed run's own rollout, cut short.
        let serving = if same && !d.current_is_desired() {
            true
        } else {
            match crate::rt::block_on(d.wait_live(to, std::time::Duration::ZERO)) {
                Ok(()) => true,
                Err(production::Error::NotLive { .. }) => false,
                Err(e) => return Err(e.into()),
            }
        };
        if serving {
            ctx.log(LogLevel::Info, format!("Production {production}: {to} is live already"));
            return Ok(true);
        }
        if same {
            // Waited for as a promotion is (not sent again).
            wait_to_serve(ctx, d, production, to, &format!("{to} is being rolled out"))?;
            return Ok(false);
        }
    }
    ctx.log(LogLevel::Info, format!("Production {production}: promoting {to} (live now: {live})..."));
    crate::rt::block_on(d.rollback(to))?;
    crate::rt::block_on(d.wait_live(to, LIVE_TIMEOUT))?;
    ctx.log(LogLevel::Success, format!("Production {production}: {to} is live"));
    Ok(false)
}

/// A deploy in flight that did not end within the wait: nothing was sent.
fn still_in_flight(e: production::Error, production: &str, pending: &Release) -> Error {
    match e {
        production::Error::NotLive { seconds, .. } => Error::refused(
            format!(
                "production {production}: {pending} is still in progress after {seconds} s, and would replace whatever this step promoted; nothing was sent"
            ),
            Some(
                "wait until it ends on the platform (or cancel it there), then resume this run: it looks at what is live again"
                    .into(),
            ),
        ),
        other => other.into(),
    }
}

/// Whether automatic deploys were on before this run's `promote` switched them: journaled
/// (a `progress` record) the first time the step reads it, before it switches anything, and
/// taken from the journal by a resumed step, which would otherwise read the value it set
/// itself before a crash.
fn autodeploy_found(d: &dyn Deployer, ex: &mut Exec<'_>) -> Result<bool> {
    let index = ex.plan.steps.iter().position(|s| matches!(s, Step::Promote { .. })).unwrap_or_default();
    let state = RunState::load(ex.journal.path())?;
    if let Some(on) = found_in(&state, index) {
        return Ok(on);
    }
    let on = crate::rt::block_on(d.autodeploy())?;
    ex.journal.append(&Record::Progress {
        at: Timestamp::now(),
        index,
        step: "promote".into(),
        detail: ProgressDetail::AutodeployFound { on },
    })?;
    Ok(on)
}

/// What step `index` of `state` journaled it found about automatic deploys, if it got that far.
pub(crate) fn found_in(state: &RunState, index: usize) -> Option<bool> {
    state.records.iter().rev().find_map(|r| match r {
        Record::Progress { index: i, detail: ProgressDetail::AutodeployFound { on }, .. } if *i == index => Some(*on),
        _ => None,
    })
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

/// Sets the automatic deploys (`was`: what the step found before it switched anything) and
/// says so.
fn switch(ctx: &mut Ctx<'_>, d: &dyn Deployer, production: &str, on: bool, was: bool) -> Result<()> {
    crate::rt::block_on(d.set_autodeploy(on))?;
    let message = match (on, was) {
        (false, true) => {
            "automatic deploys turned off: a push to the branch will not deploy the bad release again (undo turns them back on)"
        }
        (false, false) => "automatic deploys were off already",
        (true, false) => "automatic deploys turned back on",
        (true, true) => "automatic deploys were on already",
    };
    ctx.log(if was == on { LogLevel::Info } else { LogLevel::Warn }, format!("Production {production}: {message}"));
    Ok(())
}
