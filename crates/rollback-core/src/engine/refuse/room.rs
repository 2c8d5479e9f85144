//! Room for a checkout. `git reset --hard` writes the files that change one by one: on a file
//! system that fills up half-way (a full disk is a classic cause of the incident itself) it
//! stops with part of the tree at the target, a torn file where the disk ran out, and, with
//! `git`, only "unable to write file" to say why. The run and the undo count first what their
//! reset writes, and refuse with nothing changed when it does not fit.

use std::collections::HashSet;
use std::path::Path;

use crate::backup::snapshot::{add_missing_folders, lstat_in_tree};
use crate::vcs::{Change, ChangeKind, CommitId, VcsBackend};

/// What a checkout of `to` writes over the work tree for `changes` (between the commit checked
/// out and `to`): the bytes of each file it writes beyond those of the file there now (a new
/// version is written whole before the old one goes, but the old one's blocks are not counted
/// twice), and an inode for each file and folder it makes where none is. A blob whose size
/// cannot be read (a partial clone's, fetched later) counts as empty. Files removed are not
/// taken off: git may write before it removes.
pub(crate) fn checkout_needs<'a>(
    vcs: &dyn VcsBackend,
    workdir: &Path,
    to: &CommitId,
    changes: impl IntoIterator<Item = &'a Change>,
) -> (u64, u64) {
    let (mut bytes, mut inodes) = (0u64, 0u64);
    let mut folders = HashSet::new();
    for c in changes {
        if c.kind == ChangeKind::Deleted || c.submodule {
            continue;
        }
        let size = vcs.blob_size_at(to, &c.path).ok().flatten().unwrap_or(0);
        let now = lstat_in_tree(workdir, &c.path);
        bytes += size.saturating_sub(now.as_ref().map_or(0, |m| if m.is_file() { m.len() } else { 0 }));
        if now.is_none() {
            inodes += 1;
            add_missing_folders(workdir, &c.path, &mut folders);
        }
    }
    (bytes, inodes + folders.len() as u64)
}

/// The refusal of a rollback whose reset to `to` (`changes` from HEAD) does not fit in the work
/// tree's file system: its files, and the index, which git writes whole beside the old one.
pub(crate) fn refusal(vcs: &dyn VcsBackend, workdir: &Path, to: &CommitId, changes: &[Change]) -> Option<crate::Error> {
    let (files, inodes) = checkout_needs(vcs, workdir, to, changes);
    let index = std::fs::metadata(vcs.index_path()).map_or(0, |m| m.len());
    let needed = files + index;
    let hint = |what: String| Some(format!("free {what} there, then run again; nothing was changed").into());
    let available = crate::backup::snapshot::free_space(workdir).ok()?;
    if needed > available {
        return Some(crate::Error::refused(
            format!(
                "the rollback's reset needs {needed} byte(s) free ({files} for the tracked files it writes, {index} for the index), but `{}` has {available} byte(s) free: it would stop half-way",
                workdir.display()
            ),
            hint(format!("at least {} byte(s)", needed - available)),
        ));
    }
    match crate::backup::snapshot::free_inodes(workdir) {
        Ok(Some(free)) if inodes > free => Some(crate::Error::refused(
            format!(
                "the rollback's reset makes {inodes} file(s) and folder(s) where none is, but `{}` can hold only {free} more (it runs out of inodes): it would stop half-way",
                workdir.display()
            ),
            hint(format!("at least {} inode(s) (delete files)", inodes - free)),
        )),
        _ => None,
    }
}
