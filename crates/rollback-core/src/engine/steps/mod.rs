//! The steps of a plan, one module each; [`Rollback::run_step`] dispatches on the step.
mod caches;
mod db_snapshot;
mod deploy;
mod downgrade;
mod env_restore;
mod late_writes;
mod owners;
mod promote;
mod record;
mod remove_untracked;
mod reset;
mod restart;
mod restore;
mod restore_database;
mod snapshot;
mod statcache;
mod verify;

use crate::backup::Manifest;
use crate::detail::StepDetail;
use crate::engine::{Ctx, Exec, Rollback};
use crate::error::{Error, Result};
use crate::fsutil::{self, IoContext};
use crate::journal::RunState;
use crate::paths::RepoPath;
use crate::plan::{Plan, Step};
use crate::vcs;

pub(crate) use promote::found_in as autodeploy_found_in;

impl Rollback {
    // ----- steps ----------------------------------------------------------------------

    pub(crate) fn run_step(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>, step: &Step) -> Result<StepDetail> {
        match step {
            Step::Snapshot { .. } => self.step_snapshot(ctx, ex),
            Step::Reset { target, branch, changes, .. } => self.step_reset(ctx, ex, target, branch.as_deref(), changes),
            Step::RemoveUntracked { recompute, .. } => self.step_remove_untracked(ctx, ex, *recompute),
            Step::ClearCaches { .. } => self.step_clear_caches(ctx, ex),
            Step::RestoreFiles { snapshot, .. } => self.step_restore_files(ctx, ex, snapshot),
            Step::RestoreIndex { snapshot } => self.step_restore_index(ctx, snapshot),
            Step::DbSnapshot { .. } => self.step_db_snapshot(ctx, ex),
            Step::Downgrade { to, from, .. } => self.step_downgrade(ctx, ex, from, to),
            Step::RestoreEnv { record, .. } => self.step_restore_env(ctx, ex, record.as_ref()),
            Step::RestoreDatabase { snapshot, keep_current, unchanged_since, .. } => {
                let kept = if *keep_current { Some(self.keep_current_database(ctx, ex)?) } else { None };
                self.step_restore_database(ctx, ex, snapshot, kept, unchanged_since.as_ref())
            }
            Step::UpgradeDatabase { to, drops, .. } => self.step_upgrade_database(ctx, to, drops),
            Step::PutBackRows { snapshot, losses, deleted_at, counters, .. } => {
                self.step_put_back_rows(ctx, ex, snapshot, (losses, counters), deleted_at)
            }
            Step::Restart { .. } => self.step_restart(ctx, ex),
            Step::Deploy { kept, .. } => self.step_deploy(ctx, ex, kept),
            Step::Promote { production, from, to, autodeploy } => {
                self.step_promote(ctx, ex, production, from, to, *autodeploy)
            }
            Step::Verify { .. } => self.step_verify(ctx, ex),
            Step::Record => self.step_record(ctx, ex),
        }
    }

    pub(crate) fn reset_changes(plan: &Plan) -> &[vcs::Change] {
        plan.steps
            .iter()
            .find_map(|s| match s {
                Step::Reset { changes, .. } => Some(changes.as_slice()),
                _ => None,
            })
            .unwrap_or(&[])
    }

    pub(crate) fn own_manifest(&self, ex: &mut Exec<'_>) -> Result<Manifest> {
        if let Some(m) = &ex.manifest {
            return Ok(m.clone());
        }
        let state = RunState::load(ex.journal.path())?;
        let id = state
            .tree_snapshot
            .ok_or_else(|| Error::refused(format!("run {} has no completed snapshot", ex.run_id), None))?;
        let m = self.store()?.manifest(&id)?;
        ex.manifest = Some(m.clone());
        Ok(m)
    }

    pub(crate) fn remove_entry(&self, path: &RepoPath) -> Result<bool> {
        let full = path.to_fs(self.workdir());
        match std::fs::symlink_metadata(&full) {
            Ok(m) if m.is_dir() => {
                std::fs::remove_dir_all(&full).at("remove folder", &full)?;
                Ok(true)
            }
            Ok(_) => Ok(fsutil::remove_file_if_exists(&full)?),
            Err(_) => Ok(false),
        }
    }
}
