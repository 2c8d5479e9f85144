//! The other worktrees of a repository that have a branch checked out, read from git's own
//! files (`gitrepository-layout`): the main worktree's `HEAD` in the common folder, and each
//! linked worktree's `worktrees/<id>/HEAD` beside the `gitdir` file that names its `.git`.
//!
//! `git branch -f` and `git checkout` refuse to move a branch another worktree has checked
//! out; `git reset --hard` moves it anyway (the branch is this worktree's too), and the other
//! worktree is left with HEAD on the new commit and files and index on the old one.

use std::path::{Path, PathBuf};

/// Whether the `HEAD` file at `head` names the branch `branch` (`ref: refs/heads/<branch>`).
fn names_branch(head: &Path, branch: &str) -> bool {
    std::fs::read(head).is_ok_and(|bytes| {
        bytes.strip_prefix(b"ref: refs/heads/").is_some_and(|rest| rest.trim_ascii_end() == branch.as_bytes())
    })
}

/// `path`, resolved through symlinks when it exists (else as given), for comparing folders.
fn resolved(path: &Path) -> PathBuf {
    path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
}

/// The work trees other than `workdir` that have `branch` checked out, in the repository whose
/// common git folder is `common`; `main_workdir` is the main worktree's (`None`: a bare
/// repository, or one whose main work tree is not known). A linked worktree whose folder is
/// gone (`git worktree prune` would drop it) is left out: nothing there can be left behind.
/// Unreadable files are skipped: what this finds is a warning, not a refusal.
pub(crate) fn checked_out_elsewhere(
    common: &Path,
    main_workdir: Option<&Path>,
    workdir: &Path,
    branch: &str,
) -> Vec<PathBuf> {
    let me = resolved(workdir);
    let mut out = Vec::new();
    if let Some(main) = main_workdir
        && resolved(main) != me
        && names_branch(&common.join("HEAD"), branch)
    {
        out.push(main.to_path_buf());
    }
    let Ok(linked) = std::fs::read_dir(common.join("worktrees")) else { return out };
    let mut found: Vec<PathBuf> = linked
        .flatten()
        .filter(|e| names_branch(&e.path().join("HEAD"), branch))
        .filter_map(|e| {
            let gitdir = std::fs::read(e.path().join("gitdir")).ok()?;
            let dot_git = PathBuf::from(String::from_utf8(gitdir).ok()?.trim_end());
            let tree = dot_git.parent()?.to_path_buf();
            (dot_git.exists() && resolved(&tree) != me).then_some(tree)
        })
        .collect();
    found.sort();
    out.extend(found);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, content: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }

    #[test]
    fn only_other_worktrees_on_the_branch_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("main");
        let common = main.join(".git");
        write(&common.join("HEAD"), "ref: refs/heads/main\n");
        for (id, head) in
            [("same", "ref: refs/heads/main\n"), ("other", "ref: refs/heads/dev\n"), ("gone", "ref: refs/heads/main\n")]
        {
            let tree = dir.path().join(id);
            write(&common.join("worktrees").join(id).join("HEAD"), head);
            write(&common.join("worktrees").join(id).join("gitdir"), &format!("{}\n", tree.join(".git").display()));
            if id != "gone" {
                write(&tree.join(".git"), &format!("gitdir: {}\n", common.join("worktrees").join(id).display()));
            }
        }
        // From the main worktree: the linked one on `main`, not the one on `dev` or the pruned one.
        assert_eq!(checked_out_elsewhere(&common, Some(&main), &main, "main"), [dir.path().join("same")]);
        // From that linked worktree: the main one.
        assert_eq!(
            checked_out_elsewhere(&common, Some(&main), &dir.path().join("same"), "main"),
            std::slice::from_ref(&main)
        );
        // A branch nobody else has, and a `refs/heads/main-2` that only starts like `main`.
        assert!(checked_out_elsewhere(&common, Some(&main), &main, "dev-2").is_empty());
        write(&common.join("worktrees/same/HEAD"), "ref: refs/heads/main-2\n");
        assert!(checked_out_elsewhere(&common, Some(&main), &main, "main").is_empty());
    }
}
