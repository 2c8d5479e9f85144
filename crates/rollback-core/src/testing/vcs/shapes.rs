//! Repository shapes that `git status` alone does not show: work trees whose `.git` is a file
//! pointing elsewhere.

use std::path::Path;
use std::process::Command;

use super::{Modified, Open, canon, cid, tracked};
use crate::testing::repo::{TestRepo, clean_git_env};

fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = clean_git_env(&mut Command::new("git")).current_dir(dir).args(args).output().expect("run git");
    assert!(out.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
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
