//! A path that is a file on one side and a folder on the other: in the commits (a module
//! turned into a package, and back), or in the work tree (a tracked file replaced by a folder).
//! The rollback leaves the target's tree and the undo gives back the exact picture, with both
//! backends. Before: the undo (or, the other way round, the rollback) refused with "`p` is in
//! the way of the reset", or the restore with "its parent folder `p` is not a folder"; with
//! libgit2 the rollback left `p` missing.

use rollback_testkit::TestRepo;

use crate::common::picture;
use crate::shapes::{BACKENDS, config, fr, run_id};

/// Runs `run --fast --target TARGET` and its undo with `backend`: the rollback moves HEAD to
/// `target` (`then` checks the tree there), and the undo gives back the picture from before.
fn roll_back_and_undo(r: &TestRepo, backend: &str, target: &str, then: impl Fn(&TestRepo)) {
    let (_dir, cfg) = config(backend);
    let before = picture(r);
    let commit = r.git(&["rev-parse", target]);
    let out = fr(r, &cfg, &["run", "--fast", "--yes", "--json", "--target", target], &[]);
    out.ok();
    assert_eq!(r.head(), commit, "{backend}");
    then(r);
    let undone = fr(r, &cfg, &["undo", &run_id(&out), "--yes"], &[]);
    undone.ok();
    assert_eq!(picture(r), before, "{backend}: the undo gives back the state from before");
}

/// `p` is a file in one commit and a folder holding `p/q` in the other.
fn swap(file_first: bool) -> TestRepo {
    let r = TestRepo::new();
    let side = |r: &TestRepo, file: bool| {
        if file {
            r.write("p", "a module\n");
        } else {
            r.write("p/q", "a package\n");
        }
    };
    r.write("README", "app\n");
    side(&r, file_first);
    r.commit_all("c1");
    let p = r.path().join("p");
    if file_first { std::fs::remove_file(&p) } else { std::fs::remove_dir_all(&p) }.unwrap();
    side(&r, !file_first);
    r.commit_all("c2");
    r
}

/// Both ways: a file at HEAD~1 that is a folder at HEAD, and a folder that is a file.
#[test]
fn a_file_that_is_a_folder_on_the_other_side_rolls_back_and_undoes_exactly() {
    for backend in BACKENDS {
        for (file_first, path, content) in [(true, "p", "a module\n"), (false, "p/q", "a package\n")] {
            let r = swap(file_first);
            roll_back_and_undo(&r, backend, "HEAD~1", |r| {
                assert_eq!(r.git(&["status", "--porcelain", "--untracked-files=all"]), "", "{backend}");
                assert_eq!(r.read(path), content.as_bytes(), "{backend}");
            });
        }
    }
}

/// The folder HEAD has where the target has a file holds a local edit, an untracked file and
/// an ignored one: all three come back on undo.
#[test]
fn local_work_in_a_folder_the_target_turns_into_a_file_comes_back_on_undo() {
    for backend in BACKENDS {
        // c1: the file `p`; c2: the folder `p/`; c3 (HEAD): an ignore rule.
        let r = swap(true);
        r.write(".gitignore", "*.secret\n");
        r.commit_all("ignore secrets");
        r.write("p/q", "an edit\n");
        r.write("p/new.txt", "untracked\n");
        r.write("p/prod.secret", "ignored\n");
        roll_back_and_undo(&r, backend, "HEAD~2", |r| {
            assert_eq!(r.read("p"), b"a module\n", "{backend}");
        });
        assert_eq!(r.read("p/q"), b"an edit\n", "{backend}");
        assert_eq!(r.read("p/prod.secret"), b"ignored\n", "{backend}");
    }
}

/// A tracked file removed and a folder made in its place, with a file in it.
#[test]
fn a_tracked_file_replaced_by_a_folder_in_the_work_tree_comes_back_on_undo() {
    for backend in BACKENDS {
        let r = TestRepo::new();
        r.write("repl", "x\n");
        r.commit_all("c1");
        r.write("other", "y\n");
        r.commit_all("c2");
        r.remove("repl");
        r.write("repl/inner", "inner\n");
        roll_back_and_undo(&r, backend, "HEAD~1", |r| {
            assert_eq!(r.read("repl"), b"x\n", "{backend}: HEAD~1 has the file");
        });
        assert_eq!(r.read("repl/inner"), b"inner\n");
    }
}

/// Empty folders in a folder the target turns into a file (a cache or uploads folder the app
/// keeps, made at start): the reset must remove them for the file, and the undo makes them
/// again. Before, no backup recorded them: the undo said the state was back without them.
#[test]
fn empty_folders_in_a_folder_the_target_turns_into_a_file_come_back_on_undo() {
    for backend in BACKENDS {
        // c1: the file `p`; c2 (HEAD): the folder `p/` holding `p/q`.
        let r = swap(true);
        for empty in ["p/cache", "p/uploads/2026/12"] {
            std::fs::create_dir_all(r.path().join(empty)).unwrap();
        }
        roll_back_and_undo(&r, backend, "HEAD~1", |r| {
            assert_eq!(r.read("p"), b"a module\n", "{backend}");
        });
        for empty in ["p/cache", "p/uploads/2026/12"] {
            assert!(r.path().join(empty).is_dir(), "{backend}: `{empty}` is back");
        }
    }
}

/// Folders with modes of their own, holding only untracked files the rollback removes with
/// them: a setgid folder shared by a group (`2775`), a read-only one (`0555`, filled before it
/// becomes read-only again), a private one (`0700`), and a tracked folder (`0750`) that the
/// reset empties and removes (an undo's reset makes it again with git's default mode). The
/// undo gives each its mode back. Before, all came back `0755`.
#[test]
fn folder_modes_come_back_on_undo() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |r: &TestRepo, p: &str| std::fs::metadata(r.path().join(p)).unwrap().permissions().mode() & 0o7777;
    let set = |r: &TestRepo, p: &str, m: u32| {
        std::fs::set_permissions(r.path().join(p), std::fs::Permissions::from_mode(m)).unwrap();
    };
    for backend in BACKENDS {
        let r = TestRepo::new();
        r.write("README", "app\n");
        r.commit_all("c1");
        r.write("legacy/old.py", "old\n");
        r.commit_all("c2");
        r.write("uploads/a.bin", "upload\n").write("ro/f.txt", "read only\n").write("secrets/key.pem", "key\n");
        let folders = [("uploads", 0o2775), ("ro", 0o555), ("secrets", 0o700), ("legacy", 0o750)];
        for (p, m) in folders {
            set(&r, p, m);
        }
        roll_back_and_undo(&r, backend, "HEAD~1", |r| {
            assert!(!r.exists("uploads") && !r.exists("legacy"), "{backend}: removed by the rollback");
        });
        for (p, m) in folders {
            assert_eq!(mode(&r, p), m, "{backend}: `{p}` has its mode back");
        }
        assert_eq!(r.read("ro/f.txt"), b"read only\n", "{backend}");
        set(&r, "ro", 0o755);
    }
}
