//! Planning the `promote` step on a production target ([`Deployer`]): which release is live,
//! which one the target commit built, and, for an undo, which one goes back (and that it can).
//! Before an undo or a resume of a `--full` run: a downgrade the target may still run for it.

use super::Rollback;
use crate::assess::ProductionAssessment;
use crate::error::{Error, Result};
use crate::journal::{Record, RunState};
use crate::model::{Risk, RiskCode, RiskSeverity};
use crate::plan::{Plan, Step};
use crate::production::{Deployer, Release};

impl Rollback {
    /// What the production target says about a rollback to `target`; never an error (an
    /// assessment reads; a platform that cannot be asked is reported in `problem`).
    pub(crate) fn assess_production(&self, target: &crate::vcs::CommitId) -> Option<ProductionAssessment> {
        let d = self.deployer.as_ref()?;
        let mut p = ProductionAssessment { target: d.describe(), live: None, release: None, problem: None };
        match crate::rt::block_on(d.current()) {
            Ok(live) => p.live = Some(live),
            Err(e) => p.problem = Some(e.to_string()),
        }
        if p.problem.is_none() {
            match crate::rt::block_on(d.find(target)) {
                Ok(Some(r)) => p.release = Some(r),
                Ok(None) => {
                    p.problem = Some(format!(
                        "no release built from the target {} (the `push` or `revert-commit` strategy rebuilds one)",
                        target.short()
                    ));
                }
                Err(e) => p.problem = Some(e.to_string()),
            }
        }
        Some(p)
    }

    /// The risk `production_auto_sync` for each GitOps controller (or other deployer) the
    /// production target names. When it cannot tell or cannot be asked (the assessment's
    /// `problem` says why) and has no automatic-deploy switch to turn off, the risk
    /// `no_autodeploy_switch` instead (freeze on).
    pub(crate) fn production_risks(&self) -> Vec<crate::model::Risk> {
        let Some(d) = &self.deployer else { return Vec::new() };
        match crate::rt::block_on(d.auto_deployers()) {
            Ok(Some(found)) => found
                .into_iter()
                .map(|m| {
                    crate::model::Risk::new(
                        crate::model::RiskCode::ProductionAutoSync,
                        crate::model::RiskSeverity::Medium,
                        m,
                    )
                })
                .collect(),
            // The target cannot tell who else deploys it: without a switch to turn off,
            // a push or CI deploy may bring the bad release back.
            Ok(None) | Err(_) => self.no_freeze_risk().into_iter().collect(),
        }
    }

    /// Adds `promote` to a rollback plan when a deployer is given: the release live now and
    /// the one built from the target commit. A target the platform never built is refused.
    pub(crate) fn plan_promotion(&self, plan: &mut Plan) -> Result<()> {
        let Some(d) = &self.deployer else { return Ok(()) };
        let production = d.describe();
        let from = crate::rt::block_on(d.current())?;
        let Some(to) = crate::rt::block_on(d.find(&plan.to))? else {
            return Err(Error::refused(
                format!("production: {production} has no release built from the target {}", plan.to.short()),
                Some(
                    "pick a target the platform built, or deploy it with the `push` or `revert-commit` strategy, which rebuilds one"
                        .into(),
                ),
            ));
        };
        // The freeze: where the target can, a push must not deploy the bad release again.
        let freeze = self.config.deploy.as_ref().is_none_or(|c| c.freeze) && d.switches_autodeploy();
        insert_before_checks(plan, Step::Promote { production, from, to, autodeploy: freeze.then_some(false) });
        plan.risks.extend(self.production_risks());
        if d.runs_downgrades() {
            for step in &mut plan.steps {
                if let Step::Downgrade { migrator, .. } = step {
                    migrator.push_str(" (as a job on the production target, with the live release's image)");
                }
            }
        }
        Ok(())
    }

    /// The risk `no_autodeploy_switch`: `freeze` is on, but the target has no switch to turn.
    fn no_freeze_risk(&self) -> Option<Risk> {
        let d = self.deployer.as_ref()?;
        let wanted = self.config.deploy.as_ref().is_none_or(|c| c.freeze);
        if !wanted || d.switches_autodeploy() {
            return None;
        }
        let why =
            d.no_autodeploy_switch().unwrap_or_else(|| format!("{} has no automatic-deploy switch", d.describe()));
        Some(Risk::new(RiskCode::NoAutodeploySwitch, RiskSeverity::Medium, format!("freeze: {why}")))
    }

    /// Adds `promote` to an undo plan when the run undone began promoting: the release live
    /// before that run goes live again. Refused when production serves neither that release
    /// nor the one the run promoted (or one of them is not what is in flight there): someone
    /// deployed since, and the undo would put the release the run rolled back away from over
    /// their deploy.
    pub(crate) fn plan_repromotion(&self, plan: &mut Plan, undone: &RunState) -> Result<()> {
        let Some(UndonePromotion { production, before, froze, index, .. }) = undone_promotion(undone) else {
            return Ok(());
        };
        // Automatic deploys go back on only if the run turned them off: they were on when its
        // step read them (journaled before it switched them, or in its end record). If it
        // never read them, it never switched them. Without that record, a journal written
        // before it existed (no `format`: some such journals have it, others predate it)
        // cannot tell: as the version that wrote it would, they are taken to have been on (or
        // its plan would not have frozen them).
        let thaw = froze == Some(false)
            && match undone.done.get(index).cloned().flatten() {
                Some(crate::detail::StepDetail::Promote { autodeploy_was, .. }) => autodeploy_was != Some(false),
                _ => super::steps::autodeploy_found_in(undone, index).unwrap_or(undone.format == 0),
            };
        let Some(d) = &self.deployer else {
            return Err(Error::usage(
                format!(
                    "run {} changed production ({production}), but no production target is given now",
                    undone.run_id
                ),
                Some("open the repository with the same deployer, then undo again".into()),
            ));
        };
        let from = refuse_deploys_since(d.as_ref(), undone, None)?;
        // A promotion that cannot happen (a paused Deployment, a revision pruned since) is
        // refused now, before the undo's first step moves anything.
        if from.id != before.id {
            crate::rt::block_on(d.check_promotable(before))?;
        }
        insert_before_checks(
            plan,
            Step::Promote { production: d.describe(), from, to: before.clone(), autodeploy: thaw.then_some(true) },
        );
        Ok(())
    }

    /// Before an undo or a resume looks at the database: a downgrade of run `undone` that may
    /// still run on the production target (its Job, left by a run that was killed or gave up
    /// on it) is waited for, or the undo or resume is refused while it runs (nothing changed
    /// yet).
    pub(crate) fn wait_run_downgrade(&self, ctx: &mut super::Ctx<'_>, undone: &RunState) -> Result<()> {
        let Some(d) = self.deployer.as_ref().filter(|d| d.runs_downgrades()) else { return Ok(()) };
        let downgraded =
            undone.plan.steps.iter().enumerate().any(|(i, s)| matches!(s, Step::Downgrade { .. }) && began(undone, i));
        if !downgraded {
            return Ok(());
        }
        if let Some(job) = crate::rt::block_on(d.running_downgrade(&undone.run_id))? {
            ctx.log(
                crate::event::LogLevel::Warn,
                format!(
                    "the downgrade {job} of run {} still runs on {}: waiting for it to end before the database is looked at",
                    undone.run_id,
                    d.describe()
                ),
            );
            crate::rt::block_on(d.wait_downgrade_ended(&undone.run_id))?;
            ctx.log(crate::event::LogLevel::Info, format!("the downgrade {job} of run {} has ended", undone.run_id));
        }
        Ok(())
    }
}

/// What the promote step of an undone run moved: from `before` to `promoted_to`.
struct UndonePromotion<'a> {
    production: &'a str,
    before: &'a Release,
    promoted_to: &'a Release,
    froze: Option<bool>,
    index: usize,
}

/// The promotion of `undone`, if its promote step began (one that began may have gone through).
fn undone_promotion(undone: &RunState) -> Option<UndonePromotion<'_>> {
    undone.plan.steps.iter().enumerate().find_map(|(i, s)| match s {
        Step::Promote { production, from, to, autodeploy } if began(undone, i) => {
            Some(UndonePromotion { production, before: from, promoted_to: to, froze: *autodeploy, index: i })
        }
        _ => None,
    })
}

/// The release live now, when production runs and is deploying nothing but the two releases
/// of `undone`'s promotion (either, whole or part-way: Fly between two images keeps the
/// release's id). Anything else is refused: someone deployed since, and an undo would put the
/// release the run rolled back away from over their deploy. Asked when the undo is planned,
/// and again by its promote step (the undo's earlier steps, or the wait before a resume, may
/// take long enough for a colleague to deploy a fix).
/// `undo`: `None` when the undo is planned (nothing changed yet); at its promote step, the
/// undo's own run id (its earlier steps have run: the error says what it left, and how to go
/// either way).
pub(crate) fn refuse_deploys_since(d: &dyn Deployer, undone: &RunState, undo: Option<&str>) -> Result<Release> {
    let live = crate::rt::block_on(d.current())?;
    let Some(UndonePromotion { production, before, promoted_to, .. }) = undone_promotion(undone) else {
        return Ok(live);
    };
    let ours = |r: &Release| [promoted_to, before].iter().any(|o| r.id == o.id || d.serves(r, o));
    let pending = crate::rt::block_on(d.in_flight())?;
    let other = if ours(&live) { pending.filter(|p| !ours(p)) } else { Some(live.clone()) };
    let Some(other) = other else { return Ok(live) };
    let run_id = &undone.run_id;
    Err(Error::refused(
        format!(
            "production ({production}) {} {other}, not {promoted_to} where run {run_id} left it: someone deployed since, and undoing run {run_id} now would put {before} back over that deploy; {}",
            if ours(&live) { "is deploying" } else { "runs" },
            if undo.is_some() {
                "nothing was sent to production (the undo's earlier steps have put the code, env files and database back as they were before that run)"
            } else {
                "nothing was changed"
            },
        ),
        Some(match undo {
            None => format!(
                "if {before} belongs in production, promote it on the platform by hand; to keep the newer deploy, leave production as it is (undoing run {run_id} is for when {promoted_to} is still live)"
            )
            .into(),
            Some(undo) => crate::hint::hint![
                "to keep the newer deploy, put the rest back where run ",
                run_id.clone(),
                " left it: ",
                crate::hint::Action::undo(undo),
                format!("; to finish this undo, promote {before} on the platform by hand, then "),
                crate::hint::Action::resume(undo)
            ],
        }),
    ))
}

/// Whether step `index` of the run began (a promotion that began may have gone through).
fn began(state: &RunState, index: usize) -> bool {
    state.records.iter().any(|r| matches!(r, Record::StepBegin { index: i, .. } if *i == index))
        && !state.skipped.contains(&index)
}

/// Production moves after the code, restarts and pushes, and before the checks that prove it.
fn insert_before_checks(plan: &mut Plan, step: Step) {
    let at =
        plan.steps.iter().position(|s| matches!(s, Step::Verify { .. } | Step::Record)).unwrap_or(plan.steps.len());
    plan.steps.insert(at, step);
}
