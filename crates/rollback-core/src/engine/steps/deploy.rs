//! `deploy`: push, revert commit, deploy hook (`[deploy]`).

use crate::deploy::DeployStrategy;
use crate::detail::StepDetail;
use crate::engine::{Ctx, Exec, Rollback};
use crate::error::{Error, Result};
use crate::event::LogLevel;
use crate::paths::RepoPath;
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

    /// The risk `push_resets_tool_files`: `[deploy] strategy = "push"` force-pushes the target
    /// itself, and the target's registry or configuration file differs from HEAD's: the
    /// remote branch would go back to the older copy (`revert-commit` keeps HEAD's).
    pub(crate) fn push_risk(&self, a: &crate::assess::Assessment) -> Option<crate::model::Risk> {
        let cfg = self.config.deploy.as_ref().filter(|c| c.strategy == DeployStrategy::Push)?;
        let tools = self.tool_files();
        let changed: Vec<&RepoPath> = a.changes.iter().map(|c| &c.path).filter(|p| tools.contains(p)).collect();
        if changed.is_empty() {
            return None;
        }
        let branch = cfg.branch.as_deref().or(a.head.branch.as_deref()).unwrap_or("(the rolled-back branch)");
        let branch = branch.strip_prefix("refs/heads/").unwrap_or(branch);
        Some(crate::model::Risk::new(
            crate::model::RiskCode::PushResetsToolFiles,
            crate::model::RiskSeverity::High,
            format!(
                "deploy: `push` puts {} itself on `{}/{branch}`, and with it that commit's version of {} (older, or none): the bad marks committed since are gone from the branch (a server's `gate` reading it lets those releases through again), and settings changed since go back; `strategy = \"revert-commit\"` keeps HEAD's",
                a.target.commit.id.short(),
                cfg.remote,
                crate::assess::show_paths(changed)
            ),
        ))
    }

    /// `kept`: the paths a `revert-commit` commit has as `from` has them (the plan's).
    pub(crate) fn step_deploy(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>, kept: &[RepoPath]) -> Result<StepDetail> {
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
        let push_lock = self.state.push_lock_path();
        let mut keep = Vec::new();
        for path in kept {
            match path.to_str() {
                Some(p) => keep.push(p.to_owned()),
                None => ctx.log(
                    LogLevel::Warn,
                    format!("`{path}` is not UTF-8: the rollback commit has it as the target has it"),
                ),
            }
        }
        let dctx = crate::deploy::DeployContext {
            workdir: self.workdir(),
            run_id: &ex.run_id,
            from: &from,
            to: &to,
            branch: ex.plan.from.branch.as_deref(),
            push_lock: Some(&push_lock),
            keep: &keep,
        };
        match crate::rt::block_on(crate::deploy::deploy(cfg, &dctx)) {
            Ok(report) => {
                ctx.log(LogLevel::Success, format!("Deployed: {}", report.detail));
                Ok(StepDetail::Deploy { summary: report.detail.clone(), skipped: false, report: Some(report) })
            }
            Err(e) => Err(Error::Service {
                message: format!("deploy failed: {e}"),
                hint: e.hint_for(ex.plan.kind == RunKind::Undo).map(Into::into),
            }),
        }
    }

    /// Refuses (exit 2, naming the key) what the deploy step would find only after the reset:
    /// a deploy hook whose URL is not in the environment, a remote that does not exist. For
    /// plans with a deploy step, before anything changes.
    pub(crate) fn refuse_deploy_unready(&self, plan: &crate::plan::Plan) -> Result<()> {
        let Some(cfg) = &self.config.deploy else { return Ok(()) };
        if !plan.steps.iter().any(|s| matches!(s, crate::plan::Step::Deploy { .. })) {
            return Ok(());
        }
        let Err(e) = crate::rt::block_on(crate::deploy::check_ready(cfg, self.workdir())) else { return Ok(()) };
        let hint = match (&e, &cfg.hook_url_env) {
            (crate::deploy::Error::HookUrl(_), Some(var)) => Some(format!(
                "export `{var}` with the deploy hook's URL (http:// or https://), or name another variable in `[deploy] hook_url_env`; nothing was changed"
            )),
            _ => e.hint().map(|h| format!("{h}; nothing was changed")),
        };
        match e.config_key(cfg) {
            Some(key) => Err(Error::usage(format!("{key}: {e}"), hint.map(Into::into))),
            None => Err(Error::Service {
                message: format!("deploy: {e}; nothing was changed"),
                hint: e.hint().map(Into::into),
            }),
        }
    }

    /// Refuses the undo of `run` (exit 4, nothing changed) when the remote branch is not
    /// where the run's push left it: someone deployed since, and the undo's push would be
    /// refused after its reset (`push`'s lease, `revert-commit`'s fast-forward), or put the
    /// broken release back over their deploy. As [`super::super::production`] does for the
    /// platform strategies. A remote that cannot be read refuses too: the undo would stop
    /// half-way on it.
    pub(crate) fn refuse_pushed_over(&self, run: &crate::journal::RunState, branch: Option<&str>) -> Result<()> {
        let Some(cfg) = &self.config.deploy else { return Ok(()) };
        if !cfg.strategy.pushes() {
            return Ok(());
        }
        let Some(StepDetail::Deploy { report: Some(report), .. }) = run.detail_of("deploy") else { return Ok(()) };
        let Some(pushed) = &report.pushed_commit else { return Ok(()) };
        let run_id = run.run_id.as_str();
        let branch = cfg.branch.as_deref().or(branch);
        let shown = format!("{}/{}", cfg.remote, branch.unwrap_or("?"));
        let found = match crate::rt::block_on(crate::deploy::remote_tip(cfg, self.workdir(), branch)) {
            Ok(Some(tip)) if &tip == pushed => return Ok(()),
            Ok(found) => found,
            Err(e) => {
                return Err(Error::Service {
                    message: format!(
                        "cannot tell where `{shown}` is, which the undo of run {run_id} pushes to: {e}; nothing was changed"
                    ),
                    hint: e.hint().map(Into::into),
                });
            }
        };
        let short = |c: &str| c.get(..12).unwrap_or(c).to_owned();
        let now = match &found {
            Some(tip) => format!("is at {}", short(tip)),
            None => "no longer exists".to_owned(),
        };
        Err(Error::refused(
            format!(
                "`{shown}` {now}, not at {} where run {run_id} pushed it: someone deployed since, and undoing run {run_id} now would push {} over that deploy; nothing was changed",
                short(pushed),
                run.plan.from.commit.short()
            ),
            Some(
                format!(
                    "`git fetch {}` and look at `{shown}`: to keep the newer deploy, leave production as it is (undoing run {run_id} is for when {} is still live); if {} belongs in production, push it by hand",
                    cfg.remote,
                    short(pushed),
                    run.plan.from.commit.short()
                )
                .into(),
            ),
        ))
    }
}
