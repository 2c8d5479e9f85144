//! Index entries flagged assume-unchanged or skip-worktree, for the libgit2 back-end: which
//! they are and whether their files changed ([`flagged`]), and what a reset keeps of them
//! ([`plan`]): libgit2's checkout knows nothing of the flags, git keeps them.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use git2::{DiffOptions, IndexEntry, Oid, Repository, Tree};

use super::{MODE_GITLINK, delta_kind, fresh_index, git2_err, repo_path};
use crate::fsutil::IoContext;
use crate::vcs::{FlaggedEntry, IndexFlag, Result};

/// `GIT_INDEX_ENTRY_VALID` (in `flags`): assume-unchanged.
const ASSUME_UNCHANGED: u16 = 0x8000;

/// `GIT_INDEX_ENTRY_SKIP_WORKTREE` (in `flags_extended`).
const SKIP_WORKTREE: u16 = 1 << 14;

/// The flag of a stage-0, non-submodule index entry, if any.
pub(super) fn index_flag(e: &IndexEntry) -> Option<IndexFlag> {
    if (e.flags >> 12) & 0x3 != 0 || e.mode == MODE_GITLINK {
        None
    } else if e.flags_extended & SKIP_WORKTREE != 0 {
        Some(IndexFlag::SkipWorktree)
    } else if e.flags & ASSUME_UNCHANGED != 0 {
        Some(IndexFlag::AssumeUnchanged)
    } else {
        None
    }
}

/// The flagged entries of the index with the object id and mode the index records, sorted by
/// path. Each is compared with its file the way git would without the flag: the entry, flag
/// cleared, in an in-memory index diffed against the work tree (stat data first, then the
/// content through the clean filters, the executable bit, the file type). An absent
/// skip-worktree file (sparse checkout) is not compared.
pub(super) fn flagged(repo: &Repository, workdir: &Path) -> Result<Vec<(FlaggedEntry, Oid, u32)>> {
    let index = fresh_index(repo)?;
    let found: Vec<(IndexEntry, IndexFlag)> = index.iter().filter_map(|e| index_flag(&e).map(|f| (e, f))).collect();
    if found.is_empty() {
        return Ok(Vec::new());
    }
    let mut probe = git2::Index::new().map_err(git2_err("create an index in memory"))?;
    let mut opts = DiffOptions::new();
    opts.include_typechange(true).disable_pathspec_match(true).ignore_submodules(true);
    let mut out = Vec::with_capacity(found.len());
    for (mut e, flag) in found {
        let path = repo_path(&e.path)?;
        out.push((FlaggedEntry { path: path.clone(), flag, changed: None }, e.id, e.mode));
        if flag == IndexFlag::SkipWorktree && std::fs::symlink_metadata(path.to_fs(workdir)).is_err() {
            continue;
        }
        e.flags &= !ASSUME_UNCHANGED;
        e.flags_extended &= !SKIP_WORKTREE;
        probe.add(&e).map_err(git2_err("copy an index entry"))?;
        opts.pathspec(OsStr::from_bytes(&e.path));
    }
    if probe.is_empty() {
        return Ok(out);
    }
    let diff = repo
        .diff_index_to_workdir(Some(&probe), Some(&mut opts))
        .map_err(git2_err("compare flagged entries with the work tree"))?;
    let mut changed = HashMap::new();
    for delta in diff.deltas() {
        if let (Some(kind), Some(path)) = (delta_kind(delta.status()), delta.old_file().path_bytes()) {
            changed.insert(path.to_vec(), kind);
        }
    }
    for (f, _, _) in &mut out {
        f.changed = changed.get(f.path.as_bytes()).copied();
    }
    out.sort_by(|a, b| a.0.path.cmp(&b.0.path));
    Ok(out)
}

/// A work-tree file kept as it is through a checkout.
enum KeptFile {
    File { path: PathBuf, content: Vec<u8>, mode: u32 },
    Symlink { path: PathBuf, target: PathBuf },
}

impl KeptFile {
    fn read(path: PathBuf) -> Result<Option<Self>> {
        let Ok(meta) = std::fs::symlink_metadata(&path) else { return Ok(None) };
        Ok(if meta.file_type().is_symlink() {
            let target = std::fs::read_link(&path).at("read symlink", &path)?;
            Some(Self::Symlink { path, target })
        } else if meta.is_file() {
            let content = std::fs::read(&path).at("read", &path)?;
            Some(Self::File { path, content, mode: std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) })
        } else {
            None
        })
    }

    fn put_back(&self) -> Result<()> {
        match self {
            Self::File { path, content, mode } => crate::fsutil::atomic_write_mode(path, content, mode & 0o7777)?,
            Self::Symlink { path, target } => {
                crate::fsutil::remove_file_if_exists(path)?;
                std::os::unix::fs::symlink(target, path).at("create symlink", path)?;
            }
        }
        Ok(())
    }
}

/// What a reset does to flagged entries, worked out before the checkout (see
/// [`VcsBackend::reset_hard`]).
#[derive(Default)]
pub(super) struct FlagPlan {
    /// The entries whose flag stays.
    keep_flags: Vec<(Vec<u8>, IndexFlag)>,
    /// The changed skip-worktree files git leaves alone.
    keep_files: Vec<KeptFile>,
}

pub(super) fn plan(repo: &Repository, workdir: &Path, tree: &Tree<'_>) -> Result<FlagPlan> {
    let mut plan = FlagPlan::default();
    for (f, id, mode) in flagged(repo, workdir)? {
        let path = f.path.as_bytes();
        let target = tree.get_path(Path::new(OsStr::from_bytes(path))).ok();
        let same = target.as_ref().is_some_and(|t| t.id() == id && u32::try_from(t.filemode()).ok() == Some(mode));
        let keep = match f.flag {
            IndexFlag::AssumeUnchanged => same,
            IndexFlag::SkipWorktree => target.is_some() && (same || f.changed.is_none()),
        };
        if same && f.flag == IndexFlag::SkipWorktree && f.changed.is_some() {
            plan.keep_files.extend(KeptFile::read(f.path.to_fs(workdir))?);
        }
        if keep {
            plan.keep_flags.push((path.to_vec(), f.flag));
        }
    }
    Ok(plan)
}

/// Flags `paths` skip-worktree in `index` (the files a sparse checkout leaves out).
pub(super) fn skip_worktree_in(index: &mut git2::Index, paths: &std::collections::HashSet<Vec<u8>>) -> Result<()> {
    for path in paths {
        let Some(mut entry) = index.get_path(Path::new(OsStr::from_bytes(path)), 0) else { continue };
        entry.flags_extended |= SKIP_WORKTREE;
        index.add(&entry).map_err(git2_err("flag an index entry skip-worktree"))?;
    }
    Ok(())
}

impl FlagPlan {
    /// Sets the kept flags again on `index`, once it holds the target's tree.
    pub(super) fn keep_flags_in(&self, index: &mut git2::Index) -> Result<()> {
        for (path, flag) in &self.keep_flags {
            let Some(mut entry) = index.get_path(Path::new(OsStr::from_bytes(path)), 0) else { continue };
            match flag {
                IndexFlag::AssumeUnchanged => entry.flags |= ASSUME_UNCHANGED,
                IndexFlag::SkipWorktree => entry.flags_extended |= SKIP_WORKTREE,
            }
            index.add(&entry).map_err(git2_err("keep an index flag"))?;
        }
        Ok(())
    }

    /// Writes the kept skip-worktree files back, after the checkout.
    pub(super) fn put_back_files(&self) -> Result<()> {
        self.keep_files.iter().try_for_each(KeptFile::put_back)
    }
}
