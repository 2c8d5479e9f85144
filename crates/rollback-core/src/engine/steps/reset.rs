//! `reset`: move branch, index and tree to the target, after clearing what the snapshot
//! holds in its way; the tool's own files keep their pre-rollback content.

use crate::backup::{EntryKind, Manifest};
use crate::detail::StepDetail;
use crate::engine::support::normalize;
use crate::engine::{Ctx, Exec, Rollback, planner};
use crate::error::{Error, Result};
use crate::event::LogLevel;
use crate::failpoint;
use crate::fsutil::{self, IoContext};
use crate::paths::RepoPath;
use crate::plan::RunKind;
use crate::vcs::{self, CommitId};

impl Rollback {
    pub(crate) fn step_reset(
        &self,
        ctx: &mut Ctx<'_>,
        ex: &mut Exec<'_>,
        target: &CommitId,
        branch: Option<&str>,
        changes: &[vcs::Change],
    ) -> Result<StepDetail> {
        let manifest = self.own_manifest(ex)?;
        let head = self.vcs.head()?;
        let message = format!("forge-rollback: {} {} to {}", ex.plan.kind.as_str(), ex.run_id, target.short());
        let mut cleared = 0;
        if head.commit == ex.plan.from.commit {
            for p in planner::clear_way_from(&manifest, changes) {
                if self.remove_entry(&p)? {
                    cleared += 1;
                }
            }
            failpoint::hit("inside:reset")?;
        } else if head.commit != *target {
            return Err(Error::refused(
                format!(
                    "HEAD is at {}, neither where run {} started ({}) nor its target ({})",
                    head.commit.short(),
                    ex.run_id,
                    ex.plan.from.commit.short(),
                    target.short()
                ),
                Some(format!(
                    "something moved HEAD since the run stopped; {} restores the snapshot",
                    crate::hint::undo(&ex.run_id)
                )),
            ));
        }
        ctx.log(LogLevel::Info, format!("Reverting code to commit: {target}"));
        match branch {
            Some(b) if head.branch.as_deref() != Some(b) => self.vcs.checkout_branch_at(b, target, &message)?,
            _ => self.vcs.reset_hard(target, &message)?,
        }
        let kept = if ex.plan.kind == RunKind::Rollback { self.keep_tool_files(ctx, &manifest)? } else { Vec::new() };
        Ok(StepDetail::Reset { target: target.clone(), cleared, changed: changes.len(), kept })
    }

    /// The tool's own files inside the work tree: the registry and the configuration file.
    /// A rollback never removes them and leaves them with their pre-rollback content (the old
    /// scripts reset their own config and backups away).
    pub fn tool_files(&self) -> Vec<RepoPath> {
        let workdir = self.workdir();
        let mut out = Vec::new();
        for path in std::iter::once(self.registry_path()).chain(self.config.source.clone()) {
            let path = normalize(&if path.is_absolute() { path } else { workdir.join(path) });
            if path.starts_with(workdir)
                && let Ok(rel) = RepoPath::from_fs(workdir, &path)
                && !out.contains(&rel)
            {
                out.push(rel);
            }
        }
        out
    }

    /// Puts the registry and the config file back as they were before the reset: the target's
    /// older copies must not forget commits marked since (a bad release would become eligible
    /// again) nor settings changed since.
    pub(crate) fn keep_tool_files(&self, ctx: &mut Ctx<'_>, manifest: &Manifest) -> Result<Vec<String>> {
        let workdir = self.workdir();
        let mut kept = Vec::new();
        for rel in self.tool_files() {
            let path = rel.to_fs(workdir);
            // Content and mode as they were: a config holding an inline secret at 0600 stays
            // 0600.
            let (before, mode) = if let Some(e) = manifest.entries.iter().find(|e| e.path == rel) {
                match &e.kind {
                    EntryKind::File { blob, mode, .. } => (Some(self.store()?.get_blob(blob)?), *mode & 0o7777),
                    _ => (None, 0o644),
                }
            } else {
                let mode = std::fs::symlink_metadata(&path)
                    .map_or(0o644, |m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777);
                (self.vcs.read_file_at(&manifest.head, &rel)?, mode)
            };
            let Some(before) = before else { continue };
            if std::fs::read(&path).ok().as_deref() == Some(&before[..]) {
                continue;
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).at("create folder", parent)?;
            }
            fsutil::atomic_write_mode(&path, &before, mode)?;
            ctx.log(LogLevel::Info, format!("Kept `{rel}` as it was before the reset (commit it to keep it)"));
            kept.push(rel.to_string());
        }
        Ok(kept)
    }
}
