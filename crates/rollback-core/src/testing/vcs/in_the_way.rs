//! Hard resets over work trees where something is in the way of the target's files: a
//! tracked folder replaced by a symlink (to shared storage outside the repository), a file
//! replaced by a symlink or a folder, a folder of untracked files where the target has a file.
//! Each case is compared with `git reset --hard` itself, run on a copy of the same repository.

use std::path::Path;
use std::process::Command;

use super::{Open, backend, cid};
use crate::testing::repo::{TestRepo, TreeState, clean_git_env};

/// Runs `setup` (which returns the target commit) on a new repository, with a folder outside it
/// that the work tree may link to; then resets hard to the target with the backend, and with
/// `git reset --hard` on a copy. The work trees, indexes and statuses must be the same, and
/// nothing outside the repository may change (neither reset may write or delete through a
/// symlink).
fn like_git(open: &Open, name: &str, setup: impl Fn(&TestRepo, &Path) -> String) -> Option<String> {
    let r = TestRepo::new();
    let outside = tempfile::Builder::new().prefix("fr-suite-outside-").tempdir().unwrap();
    let target = setup(&r, outside.path());
    let outside_before = TreeState::capture(outside.path());
    let copy = tempfile::Builder::new().prefix("fr-suite-copy-").tempdir().unwrap();
    let git = |dir: &Path, args: &[&str]| {
        let out = clean_git_env(&mut Command::new("git")).current_dir(dir).args(args).output().expect("run git");
        assert!(out.status.success(), "{name}: git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let cp = Command::new("cp").arg("-a").arg(r.path().join(".")).arg(copy.path()).status().expect("run cp");
    assert!(cp.success(), "{name}: copy the repository");
    git(copy.path(), &["reset", "-q", "--hard", &target]);
    assert_eq!(TreeState::capture(outside.path()), outside_before, "{name}: git itself wrote outside");
    let b = backend(open, &r);
    let result = b.reset_hard(&cid(&target), "reset");
    let outside_after = TreeState::capture(outside.path());
    if outside_after != outside_before {
        return Some(format!("{name}: wrote or deleted outside the repository: {outside_after:?}"));
    }
    if let Err(e) = result {
        let mut chain = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            chain = format!("{chain}: {s}");
            source = s.source();
        }
        return Some(format!("{name}: failed where git does not: {chain}"));
    }
    let (ours, theirs) = (r.tree(), TreeState::capture(copy.path()));
    if ours != theirs {
        return Some(format!("{name}: work tree {ours:?}, git's {theirs:?}"));
    }
    for args in [&["ls-files", "-s"][..], &["status", "--porcelain", "--ignored", "--untracked-files=all"]] {
        let (ours, theirs) = (git(r.path(), args), git(copy.path(), args));
        if ours != theirs {
            return Some(format!("{name}: git {args:?} says {ours:?}, after git's reset {theirs:?}"));
        }
    }
    (r.head() != target).then(|| format!("{name}: HEAD not at the target"))
}

/// Panics listing every shape of `failed` (the answers of [`like_git`]) that went wrong.
fn all_like_git(failed: impl IntoIterator<Item = Option<String>>) {
    let failed: Vec<String> = failed.into_iter().flatten().collect();
    assert!(failed.is_empty(), "{} shape(s) differ from git:\n  {}", failed.len(), failed.join("\n  "));
}

/// A tracked folder replaced in the work tree by a symlink to shared storage (`media ->
/// /srv/shared/media`, a common deploy step): git never writes or deletes through a symlink in
/// a file's parent path (it replaces the link with a folder where the target has files, and
/// leaves it where it has none). Neither may a back-end.
pub fn reset_hard_never_writes_through_a_symlinked_folder(open: &Open) {
    let shared = |r: &TestRepo, outside: &Path, keep: bool| {
        let media = outside.join("media");
        std::fs::create_dir_all(media.join("img")).unwrap();
        std::fs::write(media.join("photo.jpg"), "photo\n").unwrap();
        if keep {
            std::fs::write(media.join("img/.keep"), "shared\n").unwrap();
        }
        std::fs::remove_dir_all(r.path().join("media")).unwrap();
        r.symlink("media", &media);
    };
    all_like_git([
        // The target adds the folder that HEAD no longer has (the undo of a rollback past it).
        like_git(open, "target adds media/", |r, outside| {
            r.write("app.py", "v1\n").write("media/img/.keep", "");
            let c1 = r.commit_all("c1");
            r.write("app.py", "v2\n");
            std::fs::remove_dir_all(r.path().join("media")).unwrap();
            r.commit_all("c2");
            std::fs::create_dir(r.path().join("media")).unwrap();
            shared(r, outside, false);
            c1
        }),
        // Both track it, with other content.
        like_git(open, "target changes media/img/.keep", |r, outside| {
            r.write("app.py", "v1\n").write("media/img/.keep", "c1\n");
            let c1 = r.commit_all("c1");
            r.write("app.py", "v2\n").write("media/img/.keep", "c2\n");
            r.commit_all("c2");
            shared(r, outside, true);
            c1
        }),
        // Both track it, unchanged.
        like_git(open, "target keeps media/img/.keep", |r, outside| {
            r.write("app.py", "v1\n").write("media/img/.keep", "");
            let c1 = r.commit_all("c1");
            r.write("app.py", "v2\n");
            r.commit_all("c2");
            shared(r, outside, true);
            c1
        }),
        // HEAD tracks it, the target does not: nothing is deleted through the link.
        like_git(open, "target drops media/", |r, outside| {
            r.write("app.py", "v1\n");
            let c1 = r.commit_all("c1");
            r.write("app.py", "v2\n").write("media/img/.keep", "");
            r.commit_all("c2");
            shared(r, outside, true);
            c1
        }),
        // The same, with a file of the same content elsewhere (`__init__.py` files often are).
        like_git(open, "target drops media/, an empty file elsewhere", |r, outside| {
            r.write("app.py", "v1\n").write("pkg/__init__.py", "");
            let c1 = r.commit_all("c1");
            r.write("app.py", "v2\n").write("media/img/.keep", "");
            r.commit_all("c2");
            shared(r, outside, true);
            c1
        }),
        // A tracked file replaced by a symlink to a file outside: the reset writes the file, not
        // through the link.
        like_git(open, "tracked file replaced by a symlink", |r, outside| {
            r.write("settings.py", "DEBUG = False\n");
            let c1 = r.commit_all("c1");
            r.write("settings.py", "DEBUG = True\n");
            r.commit_all("c2");
            let shared = outside.join("settings.py");
            std::fs::write(&shared, "shared settings\n").unwrap();
            r.remove("settings.py").symlink("settings.py", &shared);
            c1
        }),
    ]);
}

/// Files, symlinks and folders in the way of what the target tracks, as a fuzzer found them:
/// a folder of untracked files where the target has a symlink (below a path HEAD tracks as a
/// file), a tracked file replaced by a symlink to a folder, a parent folder replaced by a
/// dangling or looping symlink. The back-end resets like git, or fails changing nothing.
pub fn reset_hard_over_things_in_the_way(open: &Open) {
    all_like_git([
        like_git(open, "untracked folder where the target has a symlink", |r, _| {
            r.symlink("c/d/e", "x").write("k", "k\n");
            let c1 = r.commit_all("c1");
            std::fs::remove_dir_all(r.path().join("c")).unwrap();
            r.write("c", "file c\n");
            r.commit_all("c2");
            r.remove("c").write("c/d/e/f", "untracked\n");
            c1
        }),
        // What the rollback leaves for the reset in that shape once it took the untracked
        // folder away: a tracked file deleted, the target with a symlink below its path.
        like_git(open, "deleted file where the target has a symlink below it", |r, _| {
            r.symlink("c/d/e", "x").write("k", "k\n");
            let c1 = r.commit_all("c1");
            std::fs::remove_dir_all(r.path().join("c")).unwrap();
            r.write("c", "file c\n");
            r.commit_all("c2");
            r.remove("c");
            c1
        }),
        like_git(open, "tracked folder where the target has a symlink", |r, _| {
            r.symlink("c", "x").write("k", "k\n");
            let c1 = r.commit_all("c1");
            r.remove("c").write("c/f", "tracked\n");
            r.commit_all("c2");
            r.write("c/g", "untracked\n");
            c1
        }),
        like_git(open, "tracked file replaced by a symlink to a folder", |r, _| {
            r.write("c", "c1\n").write("l", "l\n");
            let c1 = r.commit_all("c1");
            r.write("c", "c2\n");
            r.commit_all("c2");
            r.remove("c").symlink("c", ".");
            c1
        }),
        like_git(open, "tracked file replaced by a looping symlink", |r, _| {
            r.write("b/x", "b1\n");
            let c1 = r.commit_all("c1");
            r.write("b/x", "b2\n").write("a/y", "y\n");
            r.commit_all("c2");
            r.remove("b/x").symlink("b/x", "b/x");
            c1
        }),
        like_git(open, "parent folder replaced by a dangling symlink", |r, _| {
            r.symlink("c/d/e", "x").write("a/y", "y\n");
            let c1 = r.commit_all("c1");
            r.remove("c/d/e").write("c/d/e", "file\n");
            r.commit_all("c2");
            std::fs::remove_dir_all(r.path().join("c")).unwrap();
            r.symlink("c", "b/x");
            c1
        }),
        like_git(open, "parent folder replaced by a looping symlink", |r, _| {
            r.write("a/y", "y\n");
            let c1 = r.commit_all("c1");
            r.write("b/f", "f\n");
            r.commit_all("c2");
            std::fs::remove_dir_all(r.path().join("b")).unwrap();
            r.symlink("b", "b/x");
            c1
        }),
        // The fuzzer's seed 36: the target has a folder where HEAD has a symlink (`l`), and
        // keeps a symlink that leads through another one (`c -> b/x`, `b -> .`).
        like_git(open, "symlinks leading through symlinks", |r, _| {
            r.write(".gitignore", "*.log\n").write("a/f", "f\n").symlink("b", ".").symlink("c", "b/x");
            r.symlink("l", "b/x");
            let c1 = r.commit_all("c1");
            r.remove("l").write("l/f", "l\n").write("a/x/z/f", "z\n");
            let c2 = r.commit_all("c2");
            r.git(&["reset", "-q", "--hard", &c1]);
            r.symlink("a/x/u.log", "a");
            c2
        }),
        like_git(open, "parent folder replaced by a file", |r, _| {
            r.write("a/x/f", "f1\n").write("k", "k\n");
            let c1 = r.commit_all("c1");
            r.write("a/x/f", "f2\n");
            r.commit_all("c2");
            std::fs::remove_dir_all(r.path().join("a")).unwrap();
            r.write("a", "a file now\n");
            c1
        }),
    ]);
}
