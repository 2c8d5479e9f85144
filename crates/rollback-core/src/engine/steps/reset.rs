//! `reset`: move branch, index and tree to the target, after clearing what the snapshot
//! holds in its way; the tool's own files keep their pre-rollback content, and so do files
//! flagged assume-unchanged or skip-worktree that the target does not change.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::backup::{self, EntryKind, Manifest, ManifestEntry, Origin};
use crate::detail::StepDetail;
use crate::engine::recapture::Why;
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
        let mut manifest = self.own_manifest(ex)?;
        let head = self.vcs.head()?;
        let message = format!("forge-rollback: {} {} to {}", ex.plan.kind.as_str(), ex.run_id, target.short());
        let mut cleared = 0;
        // Whether the index was refreshed just now, for the reset ([`vcs::VcsBackend::refresh`]).
        let mut refreshed = false;
        if head.commit == ex.plan.from.commit {
            // An earlier attempt was cut short (the process and its git killed half-way): what
            // git wrote or removed then is its own work, not an edit, and is no problem.
            let cut_short = crate::engine::recapture::earlier_reset_began(ex)?.then_some(target);
            // Nothing is deleted or overwritten that no backup holds: what is in the way, and
            // every tracked file the reset writes over, must still be as the snapshot captured
            // it; if something changed since, capture again first. What an attempt cut short
            // wrote is git's, not an edit.
            let mut differ = self.differ_from_index()?;
            let mut captured_again = false;
            if !self.way_problems(&manifest, changes, cut_short)?.is_empty()
                || !self.written_since(&manifest, &differ, cut_short, ex)?.is_empty()
            {
                self.recapture(ctx, ex, Why::Reset, None)?;
                manifest = self.own_manifest(ex)?;
                differ = self.differ_from_index()?;
                captured_again = true;
            }
            if let Some(e) = planner::refuse_nested_repos(self.workdir(), changes, "target") {
                return Err(e);
            }
            if captured_again
                && let Some(path) = self.written_since(&manifest, &differ, cut_short, ex)?.into_iter().next()
            {
                return Err(Error::refused(
                    format!(
                        "`{path}` is being written while the rollback runs: the reset would write over it, and it changed after the snapshot and again after it was captured again"
                    ),
                    Some(crate::hint::hint![
                        "stop whatever writes there, then ",
                        crate::hint::Action::resume(&ex.run_id),
                        " (it captures it again)"
                    ]),
                ));
            }
            if let Some((path, problem)) = self.way_problems(&manifest, changes, cut_short)?.into_iter().next() {
                return Err(Error::refused(
                    format!("`{path}` is in the way of the reset and {}", problem.while_capturing()),
                    Some(crate::hint::hint![
                        "stop whatever writes there, then ",
                        crate::hint::Action::resume(&ex.run_id),
                        " (it captures it again)"
                    ]),
                ));
            }
            let workdir = self.workdir();
            for p in planner::clear_way_from(&manifest, changes) {
                let full = p.to_fs(workdir);
                // Only a file or symlink in the work tree: after a cut-short reset the path may
                // be gone, or below a file git wrote, or a folder of git's (checked above).
                if backup::snapshot::lstat_in_tree(workdir, &p).is_some_and(|m| !m.is_dir())
                    && fsutil::remove_file_if_exists(&full)?
                {
                    cleared += 1;
                }
                if let Some(parent) = full.parent() {
                    fsutil::remove_empty_parents(parent, workdir);
                }
            }
            // Folders left empty where the target has a file. One that still holds files HEAD
            // tracks is the move's to empty (its local edits are in the snapshot). One seen
            // through a symlinked parent is not in the work tree: git replaces the link.
            for c in changes.iter().filter(|c| c.kind == vcs::ChangeKind::Added) {
                let full = c.path.to_fs(workdir);
                if backup::snapshot::lstat_in_tree(workdir, &c.path).is_some_and(|m| m.is_dir()) {
                    match std::fs::remove_dir(&full) {
                        Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {}
                        other => other.at("remove folder", &full)?,
                    }
                }
            }
            if ex.plan.kind == RunKind::Rollback {
                self.warn_flagged_overwritten(ctx, &ex.run_id, &manifest, changes)?;
            }
            refreshed = true;
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
                Some(crate::hint::hint![
                    "something moved HEAD since the run stopped; ",
                    crate::hint::Action::undo(&ex.run_id),
                    " restores the snapshot"
                ]),
            ));
        }
        ctx.log(LogLevel::Info, format!("Reverting code to commit: {target}"));
        match branch {
            Some(b) if head.branch.as_deref() != Some(b) => self.vcs.checkout_branch_at(b, target, &message)?,
            // Right after the refresh above (the way cleared since): the reset skips its own.
            _ if refreshed => self.vcs.reset_hard_refreshed(target, &message)?,
            _ => self.vcs.reset_hard(target, &message)?,
        }
        failpoint::hit("written:reset")?;
        if head.commit == *target {
            self.remove_left_behind(ctx, &manifest, &ex.plan.from.commit, changes)?;
        }
        let submodules: Vec<&RepoPath> = changes.iter().filter(|c| c.submodule).map(|c| &c.path).collect();
        if !submodules.is_empty() {
            ctx.log(
                LogLevel::Warn,
                format!(
                    "the reset moved the commit recorded for {} submodule(s) ({}), not their files: run `{}` to check those commits out",
                    submodules.len(),
                    crate::assess::show_paths(submodules.iter().copied()),
                    crate::assess::submodule_update(&submodules)
                ),
            );
        }
        // `assess` named them before (`branch_in_other_worktree`); said again where a run
        // confirmed with `--yes` (or an undo) leaves it: the log and the report.
        if let Some(moved) = branch.or(head.branch.as_deref())
            && let [first, ..] = self.vcs.worktrees_on_branch(moved).as_slice()
        {
            ctx.log(
                LogLevel::Warn,
                format!(
                    "the reset moved branch `{moved}`, which the worktree `{}` also has checked out: its HEAD is at {} now while its files and index are still the release before, shown there as staged changes; check it with `git -C {} status`",
                    first.display(),
                    target.short(),
                    first.display()
                ),
            );
        }
        let kept = if ex.plan.kind == RunKind::Rollback {
            self.keep_flagged_files(ctx, &manifest, changes)?;
            self.keep_tool_files(ctx, &manifest)?
        } else {
            Vec::new()
        };
        // Run as root, git wrote root's files (a resumed reset too: the owners were taken before).
        if crate::fsutil::euid() == 0 {
            let (given, refused) = self.give_owners_back(&manifest, changes)?;
            if given > 0 {
                ctx.log(
                    LogLevel::Info,
                    format!("Gave {given} path(s) git wrote as root's to the user that owned them, or their folder"),
                );
            }
            if refused > 0 {
                ctx.log(LogLevel::Warn, crate::backup::chown::refused_warning(refused));
            }
        }
        Ok(StepDetail::Reset { target: target.clone(), cleared, changed: changes.len(), kept })
    }

    /// What sits in the way of the paths the move adds and is not exactly as `manifest`
    /// holds it, with the reason: a captured file or symlink changed (or replaced by a
    /// folder, or now below a symlinked parent), or a file, symlink or other entry no backup
    /// holds (written after the snapshot, or a nested repository's `.git`). Empty: the way can
    /// be cleared with nothing lost.
    ///
    /// The work tree is looked at as the snapshot's capture sees it, never through a symlink:
    /// below a parent that is a symlink or a file nothing exists (capture recorded such a path
    /// as absent), so only that parent itself can be in the way.
    ///
    /// With `cut_short` (the target of an earlier attempt of this reset that was cut short),
    /// what that attempt may have left is no problem: a captured path in the way that is gone
    /// (the attempt cleared it) or holds git's output, and a path the target adds that holds
    /// it ([`Rollback::left_by_reset`]): git writes it again, and `undo` gives back what the
    /// snapshot holds.
    fn way_problems(
        &self,
        manifest: &Manifest,
        changes: &[vcs::Change],
        cut_short: Option<&CommitId>,
    ) -> Result<Vec<(RepoPath, WayProblem)>> {
        let workdir = self.workdir();
        let mut out = Vec::new();
        let left_by_reset = |p: &RepoPath| match cut_short {
            Some(to) => self.tree_left_by_reset(p, &manifest.head, to),
            None => Ok(false),
        };
        let clear: BTreeSet<RepoPath> = planner::clear_way_from(manifest, changes).into_iter().collect();
        for e in manifest.entries.iter().filter(|e| clear.contains(&e.path)) {
            if !backup::snapshot::still_in_tree_as_captured(workdir, &e.path, &e.kind) && !left_by_reset(&e.path)? {
                out.push((e.path.clone(), WayProblem::Changed));
            }
        }
        // A tracked file the move itself deletes (a file in HEAD that is a folder in the
        // target) is git's to remove: HEAD's commit holds it, and the snapshot its local edits.
        let handled: BTreeSet<RepoPath> = changes
            .iter()
            .filter(|c| c.kind == vcs::ChangeKind::Deleted)
            .map(|c| c.path.clone())
            .chain(clear.iter().cloned())
            .collect();
        // A submodule's checkout where the target records the submodule is not in the way:
        // the reset writes nothing into it.
        let kept = planner::kept_checkouts(workdir, changes);
        for c in changes.iter().filter(|c| c.kind == vcs::ChangeKind::Added) {
            // Outermost parent first, down to the path itself; the first one that is not a
            // real folder ends the way down.
            let mut down: Vec<RepoPath> = c.path.ancestors().collect();
            down.reverse();
            down.push(c.path.clone());
            for p in down {
                let full = p.to_fs(workdir);
                match std::fs::symlink_metadata(&full) {
                    Ok(m) if m.is_dir() => {
                        if p == c.path && !kept.contains(&p) {
                            walk(workdir, &full, &handled, &mut out);
                        }
                    }
                    Ok(_) => {
                        if !handled.contains(&p) && !left_by_reset(&p)? {
                            out.push((p, WayProblem::InNoBackup));
                        }
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
        Ok(out)
    }

    /// Whether what is at `path` in the work tree now is what a cut-short reset from `head`
    /// to `to` may have left ([`Rollback::left_by_reset`]): nothing (looked at as capture
    /// does, never through a symlink), such a file or symlink, or a folder holding only such
    /// files and symlinks (folders git made for the target's files).
    pub(super) fn tree_left_by_reset(&self, path: &RepoPath, head: &CommitId, to: &CommitId) -> Result<bool> {
        let workdir = self.workdir();
        let full = path.to_fs(workdir);
        let Some(meta) = backup::snapshot::lstat_in_tree(workdir, path) else { return Ok(true) };
        if meta.is_dir() {
            let rd = std::fs::read_dir(&full).at("read folder", &full)?;
            for entry in rd {
                let entry = entry.at("read folder", &full)?;
                // A `.git` is no path of the tree: a nested repository, never git's output.
                let Ok(p) = RepoPath::from_fs(workdir, &entry.path()) else { return Ok(false) };
                if !self.tree_left_by_reset(&p, head, to)? {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        let found = if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&full).at("read symlink", &full)?;
            EntryKind::Symlink {
                target: backup::SymlinkTarget(std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str()).to_vec()),
            }
        } else if meta.is_file() {
            let bytes = std::fs::read(&full).at("read", &full)?;
            let found = EntryKind::File { blob: backup::BlobId::of(&bytes), size: bytes.len() as u64, mode: 0 };
            return self.left_by_reset(path, &found, || Ok(bytes), head, to);
        } else {
            return Ok(false);
        };
        self.left_by_reset(path, &found, || Ok(Vec::new()), head, to)
    }

    /// Flagged files (assume-unchanged, skip-worktree) with local changes that the target
    /// changes: the target's version wins, and the operator is told where theirs is.
    fn warn_flagged_overwritten(
        &self,
        ctx: &mut Ctx<'_>,
        run_id: &str,
        manifest: &Manifest,
        changes: &[vcs::Change],
    ) -> Result<()> {
        let changed: BTreeSet<&RepoPath> = changes.iter().map(|c| &c.path).collect();
        for f in self.vcs.flagged()? {
            if f.changed.is_some() && changed.contains(&f.path) {
                ctx.log_hint(
                    LogLevel::Warn,
                    format!(
                        "`{}` is marked {} and has local changes, but the target changes it: it gets the target's \
                         version; yours is in backup {}",
                        f.path,
                        f.flag.as_str(),
                        manifest.id,
                    ),
                    Some(crate::hint::hint![crate::hint::Action::undo(run_id), " puts it back"]),
                );
            }
        }
        Ok(())
    }

    /// Puts back, from the snapshot, the local version of flagged files (assume-unchanged,
    /// skip-worktree) that the target has as HEAD had them: git hides such an edit from
    /// `git status` on purpose (local configuration), and a rollback that does not change
    /// the file has no reason to take it away. The reset kept their flags
    /// ([`vcs::VcsBackend::reset_hard`]), so they stay hidden.
    fn keep_flagged_files(&self, ctx: &mut Ctx<'_>, manifest: &Manifest, changes: &[vcs::Change]) -> Result<()> {
        let changed: BTreeSet<&RepoPath> = changes.iter().map(|c| &c.path).collect();
        let flagged: BTreeMap<RepoPath, vcs::IndexFlag> =
            self.vcs.flagged()?.into_iter().map(|f| (f.path, f.flag)).collect();
        let keep: Vec<ManifestEntry> = manifest
            .entries
            .iter()
            .filter(|e| e.origin == Origin::Tracked && flagged.contains_key(&e.path) && !changed.contains(&e.path))
            .cloned()
            .collect();
        if keep.is_empty() {
            return Ok(());
        }
        let stats = backup::snapshot::restore(self.store()?.as_ref(), self.workdir(), &keep)?;
        if stats.owners_refused > 0 {
            ctx.log(LogLevel::Warn, backup::chown::refused_warning(stats.owners_refused));
        }
        if !stats.xattrs_refused.is_empty() {
            ctx.log(LogLevel::Warn, backup::xattr::not_given_back_warning(manifest.id.as_str(), &stats.xattrs_refused));
        }
        for e in &keep {
            ctx.log(
                LogLevel::Info,
                format!(
                    "Kept the local version of `{}` (marked {}): the target has the same committed version",
                    e.path,
                    flagged[&e.path].as_str()
                ),
            );
        }
        Ok(())
    }

    /// The tool's own files inside the work tree: the registry and the configuration file.
    /// A rollback never removes them and leaves them with their pre-rollback content (the old
    /// scripts reset their own config and backups away).
    pub fn tool_files(&self) -> Vec<RepoPath> {
        planner::tool_files(self.workdir(), &self.config)
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

/// Why a path in the way of the reset cannot be cleared ([`Rollback::way_problems`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WayProblem {
    /// A captured file or symlink is no longer as the snapshot holds it.
    Changed,
    /// A file, symlink or other entry that no backup holds.
    InNoBackup,
    /// A folder holding a `.git`: a nested repository.
    NestedRepo,
}

impl WayProblem {
    /// The end of the refusal when the problem is still there right after a fresh capture.
    fn while_capturing(self) -> &'static str {
        match self {
            WayProblem::Changed => "changed while the run was capturing it",
            WayProblem::InNoBackup => "is in no backup (it was written while the run was capturing)",
            WayProblem::NestedRepo => "holds a nested repository (`.git`), which no backup holds",
        }
    }
}

/// Adds to `out` every entry below the folder `dir` that `handled` does not hold (cleared from
/// the snapshot, or a tracked file the move deletes): written after the snapshot, or a nested
/// repository's `.git` (reported as the folder holding it).
fn walk(workdir: &Path, dir: &Path, handled: &BTreeSet<RepoPath>, out: &mut Vec<(RepoPath, WayProblem)>) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for entry in rd.flatten() {
        let full = entry.path();
        let Ok(p) = RepoPath::from_fs(workdir, &full) else {
            // A `.git`: a nested repository, which no backup holds.
            out.extend(RepoPath::from_fs(workdir, dir).ok().map(|d| (d, WayProblem::NestedRepo)));
            continue;
        };
        match entry.file_type() {
            Ok(ft) if ft.is_dir() => walk(workdir, &full, handled, out),
            _ if handled.contains(&p) => {}
            _ => out.push((p, WayProblem::InNoBackup)),
        }
    }
}
