//! What the reset looks at again right before it writes: tracked files written since the
//! snapshot ([`Rollback::written_since`], from [`Rollback::differ_from_index`]), and, on a
//! reset an earlier attempt already made, the files git could not remove then
//! ([`Rollback::remove_left_behind`]).

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::io::Read as _;
use std::os::unix::ffi::OsStrExt;

use crate::backup::beneath::Dir;
use crate::backup::{self, BlobId, EntryKind, Manifest, ManifestEntry, Origin};
use crate::engine::{Ctx, Exec, Rollback};
use crate::error::Result;
use crate::event::LogLevel;
use crate::fsutil::IoContext;
use crate::paths::RepoPath;
use crate::vcs::{self, CommitId};

impl Rollback {
    /// The tracked paths whose work-tree entry differs from the index now: what the index's
    /// refresh reports ([`vcs::VcsBackend::refresh`], which records the stat data of the rest
    /// for the reset), and the flagged entries (assume-unchanged, skip-worktree) changed,
    /// which it does not look at and `git reset --hard` writes over all the same.
    pub(super) fn differ_from_index(&self) -> Result<Vec<RepoPath>> {
        let mut differ = self.vcs.refresh()?;
        differ.extend(self.vcs.flagged()?.into_iter().filter(|f| f.changed.is_some()).map(|f| f.path));
        differ.sort();
        differ.dedup();
        Ok(differ)
    }

    /// Files and symlinks the reset writes over that hold what no backup does: each of
    /// `differ` ([`Rollback::differ_from_index`]) that is a file or symlink and that `manifest`
    /// does not hold as it is now (written since the snapshot, or clean then and not now), and
    /// each tracked file `manifest` captured that changed since. A folder is left to the way
    /// checks (a submodule's, or one where a file was). With `cut_short` (the target of an
    /// earlier attempt of the reset that was cut short), what that attempt may have left is
    /// git's output, not a write ([`Rollback::left_by_reset`]).
    pub(super) fn written_since(
        &self,
        manifest: &Manifest,
        differ: &[RepoPath],
        cut_short: Option<&CommitId>,
        ex: &Exec<'_>,
    ) -> Result<Vec<RepoPath>> {
        let workdir = self.workdir();
        let cache = ex.captured.as_ref();
        let is_file = |p: &RepoPath| backup::snapshot::lstat_in_tree(workdir, p).is_some_and(|m| !m.is_dir());
        let changed = |e: &ManifestEntry| match &e.kind {
            EntryKind::Absent => is_file(&e.path),
            kind => {
                is_file(&e.path) && !backup::snapshot::still_as_recorded(cache, &e.path, &e.path.to_fs(workdir), kind)
            }
        };
        let mut out: BTreeSet<&RepoPath> =
            differ.iter().filter(|p| manifest.entry(p).map_or_else(|| is_file(p), changed)).collect();
        out.extend(manifest.entries.iter().filter(|e| e.origin == Origin::Tracked && changed(e)).map(|e| &e.path));
        let mut written = Vec::new();
        for p in out {
            if let Some(to) = cut_short
                && self.tree_left_by_reset(p, &manifest.head, to)?
            {
                continue;
            }
            written.push(p.clone());
        }
        Ok(written)
    }

    /// After a reset an earlier attempt already made (HEAD at the target): files the target
    /// lacks that git could not remove then ([`vcs::Error::NotRemoved`]: a folder the user may
    /// not write, an immutable file) are untracked now, and `git reset` leaves them. Each that
    /// still holds what the starting commit `from` has for it, or what the run's snapshot
    /// `manifest` holds for it (a local edit; bytes a checkout converted), is removed: one of
    /// them keeps it. Anything else is left. Looked at and removed through its folder, never
    /// through a symlink ([`Dir`]); a file is read only if it is a regular file of the right
    /// size.
    pub(super) fn remove_left_behind(
        &self,
        ctx: &mut Ctx<'_>,
        manifest: &Manifest,
        from: &CommitId,
        changes: &[vcs::Change],
    ) -> Result<()> {
        let workdir = self.workdir();
        let mut removed = 0;
        for c in changes.iter().filter(|c| c.kind == vcs::ChangeKind::Deleted && !c.submodule) {
            let full = c.path.to_fs(workdir);
            let Some((dir, name)) = Dir::holding(workdir, c.path.as_path()).at("open folder", &full)? else { continue };
            let Some((_, meta)) = dir.entry(name).at("read metadata of", &full)? else { continue };
            let keeps = |bytes_of: &dyn Fn(u64) -> Result<Option<Vec<u8>>>| -> Result<bool> {
                let captured = match manifest.entry(&c.path).map(|e| &e.kind) {
                    Some(EntryKind::File { size, blob, .. }) if meta.is_file() && meta.len() == *size => {
                        bytes_of(*size)?.is_some_and(|b| BlobId::of(&b) == *blob)
                    }
                    Some(EntryKind::Symlink { target }) if meta.file_type().is_symlink() => {
                        bytes_of(meta.len())?.is_some_and(|b| b == target.0)
                    }
                    _ => false,
                };
                Ok(captured
                    || match self.vcs.read_file_at(from, &c.path)? {
                        Some(at_from) if at_from.len() as u64 == meta.len() => {
                            bytes_of(meta.len())?.is_some_and(|b| b == at_from)
                        }
                        _ => false,
                    })
            };
            let read = |len: u64| -> Result<Option<Vec<u8>>> { read_entry(&dir, name, &meta, len, &full) };
            if (meta.is_file() || meta.file_type().is_symlink()) && keeps(&read)? {
                dir.remove(name, false).at("remove", &full)?;
                removed += 1;
                // The folders it leaves empty, as git removes them; never through a symlink.
                for folder in c.path.ancestors() {
                    let parent = Dir::holding(workdir, folder.as_path()).ok().flatten();
                    if parent.is_none_or(|(p, name)| p.remove(name, true).is_err()) {
                        break;
                    }
                }
            }
        }
        if removed > 0 {
            ctx.log(LogLevel::Info, format!("Removed {removed} file(s) an earlier attempt of the reset could not"));
        }
        Ok(())
    }
}

/// The bytes of `name` in `dir` (`meta` is what it is): a symlink's target, or a regular
/// file's content when it holds `len` bytes, read through a handle opened without following
/// a symlink or waiting on a FIFO. `None` when it is something else by now.
fn read_entry(
    dir: &Dir,
    name: &OsStr,
    meta: &std::fs::Metadata,
    len: u64,
    full: &std::path::Path,
) -> Result<Option<Vec<u8>>> {
    if meta.file_type().is_symlink() {
        return Ok(dir.read_link(name).ok().map(|t| t.as_bytes().to_vec()));
    }
    let Ok(mut file) = dir.open_file(name) else { return Ok(None) };
    let now = file.metadata().at("read metadata of", full)?;
    if !now.is_file() || now.len() != len {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.read_to_end(&mut bytes).at("read", full)?;
    Ok(Some(bytes))
}
