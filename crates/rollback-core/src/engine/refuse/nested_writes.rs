//! Nested repositories a move would write into: a folder of the work tree that holds its own
//! `.git` (a submodule's checkout, or a repository never added) where the target tracks files
//! below it, or a file in its place.
//!
//! Git writes the target's files into such a folder as into any other (`git reset --hard`
//! does not look for a `.git` below a path it writes), over the nested repository's own work:
//! a submodule that the target has as a plain tracked folder gets the target's files over its
//! checkout, its uncommitted edits overwritten, and the undo, which would delete a folder that
//! holds a `.git`, is refused. So the rollback is refused before anything changes, on every
//! back-end. ([`crate::engine::planner::refuse_nested_repos`] covers the other shape: a
//! nested repository at or below a path where the target adds a file, which the move deletes.)

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::engine::planner::holds_dot_git;
use crate::paths::RepoPath;
use crate::vcs::{Change, ChangeKind, CommitId, VcsBackend};

/// The nested repositories a move to `target` writes into, each with the first path of the
/// move that it writes there, sorted: a folder holding `.git` above a path the move writes (a
/// change other than a deletion) that is a submodule the move drops (the undo would be
/// refused), or at a path the target turns into a file or a symlink. An untracked nested
/// repository is not refused: what the move overwrites there is snapshotted as untracked
/// files, and the undo puts it back.
pub(crate) fn repos_written_into(
    workdir: &Path,
    vcs: &dyn VcsBackend,
    target: &CommitId,
    changes: &[Change],
) -> BTreeMap<RepoPath, RepoPath> {
    let mut seen: HashMap<RepoPath, bool> = HashMap::new();
    let mut out = BTreeMap::new();
    let dropped: Vec<&RepoPath> =
        changes.iter().filter(|c| c.submodule && c.kind != ChangeKind::Added).map(|c| &c.path).collect();
    for c in changes.iter().filter(|c| c.kind != ChangeKind::Deleted) {
        let mut parents: Vec<RepoPath> = c.path.ancestors().collect();
        parents.reverse();
        let found =
            parents.into_iter().find(|dir| *seen.entry(dir.clone()).or_insert_with(|| holds_dot_git(workdir, dir)));
        if let Some(dir) = found {
            if dropped.contains(&&dir) {
                out.entry(dir).or_insert_with(|| c.path.clone());
            }
        } else if c.kind == ChangeKind::TypeChanged
            && holds_dot_git(workdir, &c.path)
            && vcs.read_file_at(target, &c.path).is_ok_and(|f| f.is_some())
        {
            // A submodule (or a repository) where the target has a file or a symlink.
            out.entry(c.path.clone()).or_insert_with(|| c.path.clone());
        }
    }
    out
}

/// The refusal for [`repos_written_into`], naming them; `None` when there are none.
pub(crate) fn refuse_writes_into_repos(
    workdir: &Path,
    vcs: &dyn VcsBackend,
    target: &CommitId,
    changes: &[Change],
) -> Option<crate::Error> {
    let found = repos_written_into(workdir, vcs, target, changes);
    let (repo, path) = found.iter().next()?;
    let names = crate::assess::show_paths(found.keys());
    let example = if path == repo { String::new() } else { format!(" (`{path}`)") };
    Some(crate::Error::refused(
        format!(
            "{names}: a nested git repository (a submodule's checkout, or a folder with its own `.git`) \
             where the target tracks files{example}; the move would write them over the repository's own \
             files (its uncommitted work lost), and the rollback could not be undone"
        ),
        Some(
            "move the nested repository out of the work tree (commit or save its work first), \
             then run again; nothing was changed"
                .into(),
        ),
    ))
}
