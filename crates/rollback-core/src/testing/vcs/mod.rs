//! The [`VcsBackend`] conformance suite.
//!
//! Every case builds a real repository with the `git` binary in a temp dir, opens it with the
//! backend under test and compares the answers with concrete expected values: those of `git`
//! itself. rollback-core runs it against its git2 and git CLI backends
//! (`tests/it/vcs.rs`); a new backend passes when it answers like them.
//!
//! ```no_run
//! use std::path::Path;
//! use rollback_core::vcs::{self, VcsBackend};
//!
//! fn open(dir: &Path) -> vcs::Result<Box<dyn VcsBackend>> {
//!     // Your backend here; git2's stands in for it.
//!     Ok(Box::new(vcs::git2::Git2Backend::open(dir)?))
//! }
//!
//! // All cases at once (one `#[test]`); the panic lists every case that failed.
//! rollback_core::testing::vcs::run_all(&open);
//! // Or one `#[test]` per case:
//! rollback_core::testing::vcs::status_kinds(&open);
//! ```

mod history;
mod in_the_way;
mod reset;
mod shapes;
mod status;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use self::history::*;
pub use self::in_the_way::*;
pub use self::reset::*;
pub use self::shapes::*;
pub use self::status::*;
use super::Case;
use super::repo::{TestRepo, clean_git_env};
use crate::paths::RepoPath;
use crate::vcs::{Change, ChangeKind, CommitId, StatusEntry, StatusKind, VcsBackend};

/// Opens the backend under test on a folder: the work tree's root, one of its subfolders, a
/// linked worktree, or a folder that is no repository (the backend must say so).
pub type Open = dyn Fn(&Path) -> crate::vcs::Result<Box<dyn VcsBackend>>;

/// Every case of the suite, in order.
pub const CASES: &[Case<Open>] = &[
    Case { name: "open_not_a_repository", run: open_not_a_repository },
    Case { name: "open_bare_repository", run: open_bare_repository },
    Case { name: "open_discovers_from_subfolder", run: open_discovers_from_subfolder },
    Case { name: "open_linked_worktree", run: open_linked_worktree },
    Case { name: "open_separate_git_dir", run: open_separate_git_dir },
    Case { name: "open_submodule", run: open_submodule },
    Case { name: "unborn_branch", run: unborn_branch },
    Case { name: "head_on_branch_and_detached", run: head_on_branch_and_detached },
    Case { name: "resolve_revisions", run: resolve_revisions },
    Case { name: "resolve_ambiguous_short_hash", run: resolve_ambiguous_short_hash },
    Case { name: "resolve_ambiguous_ref_name", run: resolve_ambiguous_ref_name },
    Case { name: "commit_info_and_ancestry", run: commit_info_and_ancestry },
    Case { name: "commits_between_newest_first", run: commits_between_newest_first },
    Case { name: "diff_kinds", run: diff_kinds },
    Case { name: "diff_without_renames", run: diff_without_renames },
    Case { name: "diff_marks_submodules", run: diff_marks_submodules },
    Case { name: "tracked_paths_sorted", run: tracked_paths_sorted },
    Case { name: "read_file_at_commit", run: read_file_at_commit },
    Case { name: "status_kinds", run: status_kinds },
    Case { name: "status_ignored_folder_with_tracked_files", run: status_ignored_folder_with_tracked_files },
    Case { name: "status_odd_names", run: status_odd_names },
    Case { name: "status_conflict", run: status_conflict },
    Case { name: "status_clean_and_unborn", run: status_clean_and_unborn },
    Case { name: "status_shows_flagged_changes", run: status_shows_flagged_changes },
    Case { name: "staged_blobs_lists_index_changes", run: staged_blobs_lists_index_changes },
    Case { name: "staged_blobs_on_unborn_branch", run: staged_blobs_on_unborn_branch },
    Case { name: "write_blob_and_has_object", run: write_blob_and_has_object },
    Case { name: "reset_hard_moves_branch_index_and_tree", run: reset_hard_moves_branch_index_and_tree },
    Case { name: "reset_hard_forward_and_detached", run: reset_hard_forward_and_detached },
    Case { name: "reset_hard_during_a_conflicted_merge", run: reset_hard_during_a_conflicted_merge },
    Case { name: "reset_hard_over_flagged_entries", run: reset_hard_over_flagged_entries },
    Case {
        name: "reset_hard_never_writes_through_a_symlinked_folder",
        run: reset_hard_never_writes_through_a_symlinked_folder,
    },
    Case { name: "reset_hard_over_things_in_the_way", run: reset_hard_over_things_in_the_way },
    Case { name: "checkout_branch_at_from_other_branch", run: checkout_branch_at_from_other_branch },
    Case { name: "checkout_branch_at_current_branch", run: checkout_branch_at_current_branch },
    Case { name: "refs_set_read_delete", run: refs_set_read_delete },
];

/// Runs every case against the backend `open` opens; panics naming each case that failed.
pub fn run_all(open: &Open) {
    super::run_cases("VcsBackend", CASES, open);
}

fn backend(open: &Open, repo: &TestRepo) -> Box<dyn VcsBackend> {
    open(repo.path()).expect("open the repository")
}

fn rp(bytes: impl AsRef<[u8]>) -> RepoPath {
    RepoPath::new(bytes.as_ref().to_vec()).expect("a valid repository path")
}

fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

fn cid(hex: &str) -> CommitId {
    CommitId::new(hex).expect("a commit id")
}

fn tracked(path: impl AsRef<[u8]>, staged: Option<ChangeKind>, unstaged: Option<ChangeKind>) -> StatusEntry {
    StatusEntry::new(rp(path), StatusKind::Tracked { staged, unstaged })
}

fn untracked(path: impl AsRef<[u8]>) -> StatusEntry {
    StatusEntry::new(rp(path), StatusKind::Untracked)
}

fn ignored(path: impl AsRef<[u8]>) -> StatusEntry {
    StatusEntry::new(rp(path), StatusKind::Ignored)
}

fn change(path: impl AsRef<[u8]>, kind: ChangeKind) -> Change {
    Change { path: rp(path), kind, submodule: false }
}

fn canon(p: &Path) -> PathBuf {
    p.canonicalize().expect("canonicalize")
}

use ChangeKind::{Added, Deleted, Modified, TypeChanged};

// ---------------------------------------------------------------------------------------------
// Two backends on the same repository

fn messy_repo() -> (TestRepo, String, String) {
    let r = TestRepo::new();
    let (from, to) = history::diff_fixture(&r);
    // Two embedded repositories: `sub` committed as a gitlink then made dirty, `nested` never
    // added.
    for dir in ["sub"] {
        r.write(format!("{dir}/inner.txt"), "inner\n");
        for args in [&["init", "-q", "-b", "main"][..], &["add", "-A"], &["commit", "-q", "-m", "inner"]] {
            let mut cmd = Command::new("git");
            let out = clean_git_env(&mut cmd).current_dir(r.path().join(dir)).args(args).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
    }
    r.git(&["add", "sub"]);
    r.write("logs/kept.txt", "tracked inside an ignored folder\n");
    r.git(&["add", "logs/kept.txt"]);
    r.commit_all("more");
    r.write("sub/inner.txt", "dirty submodule\n").write("logs/new.txt", "ignored\n");
    r.write("nested/inner.txt", "inner\n");
    let mut cmd = Command::new("git");
    let out = clean_git_env(&mut cmd).current_dir(r.path().join("nested")).args(["init", "-q"]).output().unwrap();
    assert!(out.status.success());
    r.write(".gitignore", "node_modules/\n*.pyc\n/build\nlogs/\n")
        .write("node_modules/pkg/index.js", "x")
        .write("src/mod.pyc", "c")
        .write("src/new file.py", "n")
        .write(os(b"src/\xff odd\n\"q\".txt"), "o")
        .write("build/a/b", "b")
        .write("mod.txt", "edited again\n")
        .write("staged only.txt", "s")
        .write("empty_dir_file", "");
    std::fs::create_dir_all(r.path().join("really/empty")).unwrap();
    r.git(&["add", "staged only.txt", "mod.txt"]);
    r.write("mod.txt", "edited again and again\n").remove("keep.txt").chmod("exec.sh", 0o644);
    r.git(&["rm", "-q", "--cached", "to_file"]);
    r.write("intent.txt", "added with -N\n");
    r.git(&["add", "-N", "intent.txt"]);
    (r, from, to)
}

/// Two backends give the same answers on one messy repository: an embedded repository
/// committed as a gitlink and made dirty, one never added, ignored folders holding tracked
/// files, odd names, staged, unstaged and intent-to-add changes. Run it with a new backend as
/// `a` and a reference backend (git2's, or the git CLI's) as `b`; it also checks some of `a`'s
/// answers against what git says.
pub fn backends_agree(a: &Open, b: &Open) {
    let (r, from, to) = messy_repo();
    let g = a(r.path()).expect("open the repository with backend `a`");
    let c = b(r.path()).expect("open the repository with backend `b`");
    let status = g.status(true).unwrap();
    assert_eq!(status, c.status(true).unwrap());
    assert_eq!(g.status(false).unwrap(), c.status(false).unwrap());
    assert!(status.contains(&ignored("node_modules")));
    assert!(status.contains(&ignored("build")));
    assert!(status.contains(&ignored("logs/new.txt")));
    assert!(status.contains(&untracked("nested")));
    assert!(status.contains(&tracked("sub", None, Some(Modified))));
    assert!(status.contains(&ignored("src/mod.pyc")));
    assert!(status.contains(&untracked(b"src/\xff odd\n\"q\".txt")));
    assert!(status.contains(&tracked("mod.txt", Some(Modified), Some(Modified))));
    assert!(status.windows(2).all(|w| w[0].path <= w[1].path));
    let d = g.diff(&cid(&from), &cid(&to)).unwrap();
    assert_eq!(d.len(), 10);
    assert_eq!(d, c.diff(&cid(&from), &cid(&to)).unwrap());
    assert_eq!(g.diff(&cid(&to), &cid(&from)).unwrap(), c.diff(&cid(&to), &cid(&from)).unwrap());
    assert_eq!(g.tracked_paths(&cid(&to)).unwrap(), c.tracked_paths(&cid(&to)).unwrap());
    assert_eq!(g.staged_blobs().unwrap(), c.staged_blobs().unwrap());
    assert_eq!(g.staged_blobs().unwrap().len(), 2);
    assert_eq!(g.head().unwrap(), c.head().unwrap());
    assert_eq!(
        g.commits_between(&cid(&from), &cid(&to), 9).unwrap(),
        c.commits_between(&cid(&from), &cid(&to), 9).unwrap()
    );
}
