//! Repository shapes that `git status` alone does not show: work trees whose `.git` is a file
//! pointing elsewhere, and index entries flagged assume-unchanged or skip-worktree.

use std::path::Path;
use std::process::Command;

use super::{Deleted, Modified, Open, backend, canon, cid, rp, tracked};
use crate::testing::repo::{TestRepo, clean_git_env};
use crate::vcs::{ChangeKind, FlaggedEntry, IndexFlag, StatusEntry};

use IndexFlag::{AssumeUnchanged, SkipWorktree};

fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = clean_git_env(&mut Command::new("git")).current_dir(dir).args(args).output().expect("run git");
    assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
}

fn hidden(path: &str, unstaged: ChangeKind, flag: IndexFlag) -> StatusEntry {
    StatusEntry { hidden_by: Some(flag), ..tracked(path, None, Some(unstaged)) }
}

fn flagged(path: &str, flag: IndexFlag, changed: Option<ChangeKind>) -> FlaggedEntry {
    FlaggedEntry { path: rp(path), flag, changed }
}

// ---------------------------------------------------------------------------------------------
// A `.git` file

/// `git init --separate-git-dir`: the work tree is the folder holding the `.git` file, never
/// the git folder's parent, even when that parent is another repository's work tree (and when
/// it is no repository at all).
pub fn open_separate_git_dir(open: &Open) {
    let outer = TestRepo::new();
    outer.write("outer.txt", "outer\n");
    outer.commit_all("outer");
    outer.write("outer.txt", "outer, edited\n");
    let plain = tempfile::tempdir().unwrap();
    for store in [outer.path().join("store"), plain.path().join("store")] {
        let parent = tempfile::tempdir().unwrap();
        let app = parent.path().join("app");
        let separate = format!("--separate-git-dir={}", store.display());
        git_in(parent.path(), &["init", "-q", "-b", "main", &separate, "app"]);
        std::fs::create_dir(app.join("src")).unwrap();
        std::fs::write(app.join("src/main.py"), "v1\n").unwrap();
        git_in(&app, &["add", "-A"]);
        git_in(&app, &["commit", "-q", "-m", "v1"]);
        std::fs::write(app.join("src/main.py"), "dirty\n").unwrap();
        for dir in [app.clone(), app.join("src")] {
            let b = open(&dir).unwrap_or_else(|e| panic!("open {}: {e}", dir.display()));
            assert_eq!(b.workdir(), canon(&app), "opened from {}", dir.display());
            assert_eq!(b.git_dir(), canon(&store));
            assert_eq!(b.index_path(), canon(&store).join("index"));
            assert_eq!(b.status(false).unwrap(), [tracked("src/main.py", None, Some(Modified))]);
            assert_eq!(b.head().unwrap().commit, cid(&git_in(&app, &["rev-parse", "HEAD"])));
        }
    }
}

/// A submodule's work tree, with its git folder under the superproject's `.git/modules`.
pub fn open_submodule(open: &Open) {
    let lib = TestRepo::new();
    lib.write("lib.txt", "lib\n");
    lib.commit_all("lib");
    let r = TestRepo::new();
    r.write("a.txt", "a\n");
    r.commit_all("one");
    let url = lib.path().to_str().unwrap();
    r.git(&["-c", "protocol.file.allow=always", "submodule", "add", "-q", url, "vendor/lib"]);
    r.commit_all("add lib");
    r.write("vendor/lib/lib.txt", "edited\n");
    let sub = r.path().join("vendor/lib");
    let b = open(&sub).unwrap();
    assert_eq!(b.workdir(), canon(&sub));
    assert_eq!(b.git_dir(), canon(r.path()).join(".git/modules/vendor/lib"));
    assert_eq!(b.status(false).unwrap(), [tracked("lib.txt", None, Some(Modified))]);
}

// ---------------------------------------------------------------------------------------------
// Flagged index entries

/// Local changes of flagged entries, which `git status` hides, are listed by `status` (marked
/// `hidden_by`) and `flagged`: content, executable bit, deletion. An absent skip-worktree file
/// (sparse checkout) and a file rewritten with its own bytes are not changes. Neither call
/// touches the index.
pub fn status_shows_flagged_changes(open: &Open) {
    let r = TestRepo::new();
    r.write("au.txt", "committed\n")
        .write("au_same.txt", "same\n")
        .write("au_gone.txt", "gone\n")
        .write("au_exec.sh", "x\n")
        .write("sw.txt", "committed\n")
        .write("sw_absent.txt", "sparse\n")
        .write("sw_same.txt", "same\n")
        .write("plain.txt", "plain\n");
    r.commit_all("base");
    r.git(&["update-index", "--assume-unchanged", "au.txt", "au_same.txt", "au_gone.txt", "au_exec.sh"]);
    r.git(&["update-index", "--skip-worktree", "sw.txt", "sw_absent.txt", "sw_same.txt"]);
    r.write("au.txt", "DEBUG = True\n")
        .write("au_same.txt", "same\n")
        .remove("au_gone.txt")
        .chmod("au_exec.sh", 0o755)
        .write("sw.txt", "local\n")
        .remove("sw_absent.txt")
        .write("plain.txt", "edited\n");
    assert_eq!(r.git(&["status", "--porcelain"]), " M plain.txt", "git itself hides them");
    let index = r.git(&["ls-files", "-v", "--debug"]);
    let b = backend(open, &r);
    assert_eq!(
        b.status(false).unwrap(),
        [
            hidden("au.txt", Modified, AssumeUnchanged),
            hidden("au_exec.sh", Modified, AssumeUnchanged),
            hidden("au_gone.txt", Deleted, AssumeUnchanged),
            tracked("plain.txt", None, Some(Modified)),
            hidden("sw.txt", Modified, SkipWorktree),
        ]
    );
    assert_eq!(
        b.flagged().unwrap(),
        [
            flagged("au.txt", AssumeUnchanged, Some(Modified)),
            flagged("au_exec.sh", AssumeUnchanged, Some(Modified)),
            flagged("au_gone.txt", AssumeUnchanged, Some(Deleted)),
            flagged("au_same.txt", AssumeUnchanged, None),
            flagged("sw.txt", SkipWorktree, Some(Modified)),
            flagged("sw_absent.txt", SkipWorktree, None),
            flagged("sw_same.txt", SkipWorktree, None),
        ]
    );
    assert_eq!(r.git(&["ls-files", "-v", "--debug"]), index, "the index is left as it was");
    r.git(&["update-index", "--no-assume-unchanged", "au.txt", "au_same.txt", "au_gone.txt", "au_exec.sh"]);
    r.git(&["update-index", "--no-skip-worktree", "sw.txt", "sw_absent.txt", "sw_same.txt"]);
    assert_eq!(b.flagged().unwrap(), []);
}

/// A hard reset over flagged entries with local changes: where the target has the same blob
/// the flag stays (an assume-unchanged file gets the index's content, a skip-worktree file is
/// left as it is); where it differs, the reset does not refuse (git does: "not uptodate"), the
/// file gets the target's content and the flag goes.
pub fn reset_hard_over_flagged_entries(open: &Open) {
    let r = TestRepo::new();
    r.write("au_same.txt", "au\n").write("sw_same.txt", "sw\n").write("au_diff.txt", "au at A\n");
    r.write("sw_diff.txt", "sw at A\n");
    let a = r.commit_all("A");
    r.write("au_diff.txt", "au at B\n").write("sw_diff.txt", "sw at B\n").write("b.txt", "b\n");
    r.commit_all("B");
    r.git(&["update-index", "--assume-unchanged", "au_same.txt", "au_diff.txt"]);
    r.git(&["update-index", "--skip-worktree", "sw_same.txt", "sw_diff.txt"]);
    for p in ["au_same.txt", "sw_same.txt", "au_diff.txt", "sw_diff.txt"] {
        r.write(p, "local edit\n");
    }
    let b = backend(open, &r);
    b.reset_hard(&cid(&a), "to A").unwrap();
    assert_eq!(r.head(), a);
    assert_eq!(r.read("au_same.txt"), b"au\n");
    assert_eq!(r.read("sw_same.txt"), b"local edit\n");
    assert_eq!(r.read("au_diff.txt"), b"au at A\n");
    assert_eq!(r.read("sw_diff.txt"), b"sw at A\n");
    assert!(!r.exists("b.txt"));
    assert_eq!(r.git(&["ls-files", "-v"]), "H au_diff.txt\nh au_same.txt\nH sw_diff.txt\nS sw_same.txt");
    assert_eq!(
        b.flagged().unwrap(),
        [flagged("au_same.txt", AssumeUnchanged, None), flagged("sw_same.txt", SkipWorktree, Some(Modified))]
    );
}
