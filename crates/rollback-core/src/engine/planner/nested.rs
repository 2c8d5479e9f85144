//! Nested git repositories (folders of the work tree holding their own `.git`) at the paths a
//! move adds: one where the target has a file is refused (the move would delete it with its
//! history), and the checkout of a submodule the target records there is left as it is.

use std::collections::BTreeSet;
use std::path::Path;

use crate::backup::snapshot::lstat_in_tree;
use crate::paths::RepoPath;
use crate::vcs::{Change, ChangeKind};

/// Whether the folder `dir` of the work tree (not seen through a symlink) holds an entry named
/// `.git`, in any letter case.
pub(crate) fn holds_dot_git(workdir: &Path, dir: &RepoPath) -> bool {
    if !lstat_in_tree(workdir, dir).is_some_and(|m| m.is_dir()) {
        return false;
    }
    let Ok(entries) = std::fs::read_dir(dir.to_fs(workdir)) else { return false };
    entries.flatten().any(|e| e.file_name().as_encoded_bytes().eq_ignore_ascii_case(b".git"))
}

/// The submodules the move adds whose folder is already a repository's checkout (it holds a
/// `.git`): the submodule's own checkout, which git left in place when a rollback dropped the
/// submodule, or a clone made before `git submodule add`. A reset that writes a gitlink writes
/// nothing into its folder (git makes the folder only when it is missing), so nothing there is
/// in the move's way: it is not captured, cleared or removed, and keeps its `.git`, its
/// history and its local work. Sorted.
pub fn kept_checkouts(workdir: &Path, changes: &[Change]) -> BTreeSet<RepoPath> {
    changes
        .iter()
        .filter(|c| c.submodule && c.kind == ChangeKind::Added && holds_dot_git(workdir, &c.path))
        .map(|c| c.path.clone())
        .collect()
}

/// Folders on disk that are nested git repositories (they hold an entry named `.git`, in any
/// letter case, at any depth) and sit at or below a path the move adds: the reset would
/// delete them whole, their history with them, and a snapshot cannot hold a repository's
/// `.git` safely (it would capture a live object database, locks and hooks). Sorted; each is
/// the folder holding the `.git`. A submodule's checkout where the target records that
/// submodule ([`kept_checkouts`]) is not in the way: the gitlink writes nothing there.
fn nested_repos_in_the_way(workdir: &Path, changes: &[Change]) -> Vec<RepoPath> {
    fn walk(workdir: &Path, dir: &Path, out: &mut BTreeSet<RepoPath>) {
        let Ok(rd) = std::fs::read_dir(dir) else { return };
        for entry in rd.flatten() {
            let Ok(ft) = entry.file_type() else { continue };
            if entry.file_name().as_encoded_bytes().eq_ignore_ascii_case(b".git") {
                if let Ok(p) = RepoPath::from_fs(workdir, dir) {
                    out.insert(p);
                }
            } else if ft.is_dir() {
                walk(workdir, &entry.path(), out);
            }
        }
    }
    let kept = kept_checkouts(workdir, changes);
    let mut out = BTreeSet::new();
    for c in changes.iter().filter(|c| c.kind == ChangeKind::Added && !kept.contains(&c.path)) {
        // Not through a symlinked parent: what it leads to is not in the work tree.
        if lstat_in_tree(workdir, &c.path).is_some_and(|m| m.is_dir()) {
            walk(workdir, &c.path.to_fs(workdir), &mut out);
        }
    }
    out.into_iter().collect()
}

/// The refusal for nested repositories in the way of a move (see
/// [`nested_repos_in_the_way`]), naming them; `None` when there are none.
pub fn refuse_nested_repos(workdir: &Path, changes: &[Change], what: &str) -> Option<crate::Error> {
    let found = nested_repos_in_the_way(workdir, changes);
    if found.is_empty() {
        return None;
    }
    let names = crate::assess::show_paths(&found);
    Some(crate::Error::refused(
        format!(
            "{names}: a nested git repository (a folder with its own `.git`) where the {what} has a file; \
             the move would delete it with its history, and backups do not hold a repository's `.git`"
        ),
        Some(
            "move the nested repository out of the work tree (or make it a submodule), then run again; \
             nothing was changed"
                .into(),
        ),
    ))
}
