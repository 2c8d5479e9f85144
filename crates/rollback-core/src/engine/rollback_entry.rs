//! The rollback entry of the pipeline: `run`, asked (assess and confirm first, then plan again
//! under the lock) or unattended (`--yes`: nobody to ask, so everything under the lock).

use super::pipeline::{Entry, Job, Next, Start};
use super::support::new_run_id;
use super::{Ctx, Rollback, RunOptions, RunOutcome, StepReport};
use crate::assess::{self, Assessment};
use crate::error::{Error, Result};
use crate::event::{LogLevel, Observer};
use crate::hint::{Action, hint};
use crate::journal::RunStatus;
use crate::model::{DataLoss, Risk};
use crate::plan::{Level, RunKind};
use crate::prompt::{Confirmation, Prompter};
use crate::time::Timestamp;

pub(crate) struct RollbackEntry<'a> {
    pub(crate) opts: &'a RunOptions,
}

/// What was settled before the lock.
pub(crate) enum Ready {
    /// Assessed and confirmed: the run must find HEAD where the operator saw it.
    Confirmed {
        assessment: Box<Assessment>,
        level: Level,
        /// The data-loss forecast the operator confirmed, and why it is missing if it is.
        forecast: (Vec<DataLoss>, Vec<Risk>),
    },
    /// `--yes`: only the input was checked; assess under the lock.
    Unattended,
}

impl Entry for RollbackEntry<'_> {
    type Ready = Ready;

    fn dry_run(&self) -> bool {
        self.opts.dry_run
    }

    fn command(&self) -> String {
        "run".to_owned()
    }

    fn prepare(&self, rb: &Rollback, ctx: &mut Ctx<'_>, prompter: &dyn Prompter) -> Result<Next<Ready>> {
        let opts = self.opts;
        Rollback::check_scope(opts)?;
        if prompter.is_automatic() && !opts.dry_run {
            if opts.level == Some(Level::Manual) {
                return Err(Error::usage(
                    "a manual rollback asks before every step: it cannot run unattended",
                    Some(hint![
                        "drop ",
                        Action::Yes,
                        " to approve each step, or use ",
                        Action::Full,
                        " to run them all"
                    ]),
                ));
            }
            // Bad input is reported before anything is written, even the state folder.
            if let Err(e) = rb.check_target(opts.target.as_deref()) {
                // A live run may be why (it has moved HEAD onto the target): name it instead.
                rb.refuse_locked()?;
                return Err(e);
            }
            return Ok(Next::Go(Ready::Unattended));
        }
        let stop = || ctx.observer.stop_waiting();
        let a = match rb.assess_local_unless(opts.target.as_deref(), &stop) {
            Ok(a) => a,
            Err(e) if opts.dry_run => return Err(e),
            Err(e) => {
                rb.refuse_locked()?;
                return Err(e);
            }
        };
        let level = Rollback::level_for(&a, opts);
        rb.require_database(&a, level, &stop)?;
        let mut plan = rb.scoped_plan(&a, level, opts)?;
        // A live run first (it is unfinished too, but must not be resumed or undone): the
        // refusals below may fetch a partial clone's blobs or put the branch move to the
        // `reference-transaction` hook (a ref transaction, with its locks), which must not meet
        // that run's reset. A dry run does neither, and is not refused for a live run.
        if !opts.dry_run {
            rb.refuse_locked()?;
        }
        let refusals = rb.refusals(&a, opts, level, &stop)?;
        if opts.dry_run || level == Level::Manual {
            rb.fill_previews(&mut plan, &stop)?;
        }
        if refusals.is_empty() || opts.dry_run {
            rb.forecast_plan_unless(&mut plan, &stop)?;
        }
        if opts.dry_run {
            // A target marked known bad is refused outright, as the run would refuse it: no
            // flag of `run` lifts the mark, so a dry run that exits 0 would be a lie.
            if let Some(e) = Rollback::known_bad_refusal(&a) {
                return Err(e);
            }
            let mut warnings: Vec<String> =
                a.risks.iter().filter(|r| r.severity > assess::Severity::Info).map(|r| r.message.clone()).collect();
            warnings.extend(rb.no_database_warning(level));
            warnings.extend(refusals.iter().map(|e| format!("a run would refuse: {e}")));
            return Ok(Next::Done(Box::new(RunOutcome {
                run_id: None,
                kind: RunKind::Rollback,
                status: RunStatus::Planned,
                level: Some(level),
                from: a.head.commit.clone(),
                branch: a.head.branch.clone(),
                to: a.target.commit.id.clone(),
                backup_id: None,
                undo_of: None,
                started_at: Timestamp::now(),
                finished_at: None,
                duration_ms: 0,
                steps: plan
                    .steps
                    .iter()
                    .map(|s| StepReport { step: s.name().into(), status: "pending".into(), detail: None })
                    .collect(),
                warnings,
                error: None,
                plan: Some(plan),
                verification: None,
                undone_by: None,
                interrupted: false,
            })));
        }
        // Then an unfinished run: until it is settled, the tree is between two states.
        rb.refuse_unsettled()?;
        if let Some(e) = refusals.into_iter().next() {
            return Err(e);
        }
        Rollback::warn_schema(ctx, &a, level);
        if let Some(w) = rb.no_database_warning(level) {
            ctx.log(LogLevel::Warn, w);
        }
        let request = Confirmation {
            action: "rollback".into(),
            summary: Rollback::summary(&a, &plan, level),
            plan: plan.clone(),
        };
        if !prompter.confirm(&request)? {
            return Err(Error::Cancelled("the operator declined; nothing was changed".into()));
        }
        Ok(Next::Go(Ready::Confirmed { assessment: Box::new(a), level, forecast: (plan.data_loss, plan.risks) }))
    }

    fn settle(&self, rb: &Rollback, ctx: &mut Ctx<'_>, ready: Ready, _prompter: &dyn Prompter) -> Result<Next<Job>> {
        let opts = self.opts;
        let seq = Rollback::next_seq(&rb.refuse_unsettled()?);
        let (now, level, forecast) = match ready {
            Ready::Unattended => {
                let a = rb.assess_local_unless(opts.target.as_deref(), &|| ctx.observer.stop_waiting())?;
                let level = Rollback::level_for(&a, opts);
                rb.require_database(&a, level, &|| ctx.observer.stop_waiting())?;
                if let Some(e) = rb.refusals(&a, opts, level, &|| ctx.observer.stop_waiting())?.into_iter().next() {
                    return Err(e);
                }
                Rollback::warn_schema(ctx, &a, level);
                if let Some(w) = rb.no_database_warning(level) {
                    ctx.log(LogLevel::Warn, w);
                }
                (a, level, None)
            }
            Ready::Confirmed { assessment: a, level, forecast } => {
                // Plan again under the lock, from the state as it is now.
                let now = rb.assess_local_unless(Some(a.target.commit.id.as_str()), &|| ctx.observer.stop_waiting())?;
                rb.require_database(&now, level, &|| ctx.observer.stop_waiting())?;
                if now.head != a.head {
                    return Err(Error::refused(
                        format!(
                            "HEAD moved from {} to {} while the rollback was being confirmed",
                            a.head.commit.short(),
                            now.head.commit.short()
                        ),
                        Some("assess again and rerun".into()),
                    ));
                }
                (now, level, Some(forecast))
            }
        };
        let mut plan = rb.scoped_plan(&now, level, opts)?;
        // The journal keeps the forecast with the plan: the one the operator confirmed, or,
        // unattended, one made now.
        if let Some((losses, risks)) = forecast {
            (plan.data_loss, plan.risks) = (losses, risks);
        } else {
            rb.forecast_plan_unless(&mut plan, &|| ctx.observer.stop_waiting())?;
            // Unattended, no one saw the summary that says so: the log, the result and the
            // report do.
            if let Some(r) = plan.risks.iter().find(|r| r.code == crate::model::RiskCode::DataLossUnknown) {
                ctx.log(
                    LogLevel::Warn,
                    format!("{}; the database is backed up before the downgrade, and `undo` puts it back", r.message),
                );
            }
        }
        if level == Level::Manual {
            rb.fill_previews(&mut plan, &|| ctx.observer.stop_waiting())?;
        }
        Ok(Next::Go(Job {
            run_id: new_run_id(),
            plan,
            start: Start::New { reason: opts.reason.clone(), severity: opts.severity, actor: opts.actor.clone(), seq },
            manual: level == Level::Manual,
        }))
    }
}

impl Rollback {
    /// Runs a rollback: plan, safety checks, confirmation, then the steps under the lock.
    pub fn run(&self, opts: &RunOptions, prompter: &dyn Prompter, observer: &dyn Observer) -> Result<RunOutcome> {
        self.drive(&RollbackEntry { opts }, prompter, observer)
    }
}
