//! `remove_untracked`: delete the untracked files the snapshot holds, then the folders they
//! leave empty.

use std::collections::BTreeSet;

use crate::backup::{self, EntryKind};
use crate::detail::StepDetail;
use crate::engine::{Ctx, Exec, Rollback, planner};
use crate::error::Result;
use crate::event::LogLevel;
use crate::fsutil;
use crate::paths::RepoPath;
use crate::plan::Step;
use crate::vcs::StatusKind;

impl Rollback {
    pub(crate) fn step_remove_untracked(
        &self,
        ctx: &mut Ctx<'_>,
        ex: &mut Exec<'_>,
        recompute: bool,
    ) -> Result<StepDetail> {
        ctx.log(LogLevel::Info, "Cleaning untracked files...");
        let manifest = self.own_manifest(ex)?;
        let paths: Vec<RepoPath> = if recompute {
            // Undo: remove what is untracked at the restored commit, was captured by this
            // run's snapshot, and is not part of the state being restored.
            let captured: BTreeSet<&RepoPath> =
                manifest.entries.iter().filter(|e| e.kind != EntryKind::Absent).map(|e| &e.path).collect();
            let restored: BTreeSet<RepoPath> = match ex.plan.steps.iter().find_map(|s| match s {
                Step::RestoreFiles { snapshot, .. } => Some(snapshot.clone()),
                _ => None,
            }) {
                Some(id) => self
                    .store()?
                    .manifest(&id)?
                    .entries
                    .into_iter()
                    .filter(|e| e.kind != EntryKind::Absent)
                    .map(|e| e.path)
                    .collect(),
                None => BTreeSet::new(),
            };
            let mut out = Vec::new();
            for e in self.vcs.status(false)? {
                if e.kind != StatusKind::Untracked || restored.contains(&e.path) {
                    continue;
                }
                if captured.contains(&e.path) {
                    out.push(e.path);
                } else {
                    ctx.log(LogLevel::Warn, format!("left `{}` in place: it is not in this run's snapshot", e.path));
                }
            }
            out
        } else {
            let keep = self.tool_files();
            planner::removals_from(&manifest, Self::reset_changes(ex.plan))
                .into_iter()
                .filter(|p| !keep.contains(p))
                .collect()
        };
        let workdir = self.workdir();
        let mut removed = 0;
        for p in &paths {
            let full = p.to_fs(workdir);
            let captured = manifest.entry(p).map(|e| &e.kind);
            let unchanged = |k| backup::snapshot::still_as_recorded(ex.captured.as_ref(), p, &full, k);
            match std::fs::symlink_metadata(&full) {
                Ok(m) if !m.is_dir() && !captured.is_some_and(unchanged) => {
                    // Written after the snapshot (a log a process appends to): those bytes are
                    // in no backup, so the file stays.
                    ctx.log(
                        LogLevel::Warn,
                        format!(
                            "left `{p}` in place: it changed after the snapshot, and its new content is in no backup"
                        ),
                    );
                }
                Ok(m) if !m.is_dir() => {
                    fsutil::remove_file_if_exists(&full)?;
                    removed += 1;
                    if let Some(parent) = full.parent() {
                        fsutil::remove_empty_parents(parent, workdir);
                    }
                }
                _ => {}
            }
        }
        Ok(StepDetail::RemoveUntracked { removed })
    }
}
