//! A `reference-transaction` hook that rejects moving the branch (a "release freeze" guard).
//! `git reset --hard` writes the work tree and the index first and moves the branch last, so
//! the hook's "no" came after the files and the index were the target's, with HEAD still on
//! the old commit. Now the git-cli back-end asks the hook first, in a transaction it then
//! aborts: a refusal (exit 4) quoting the hook, with nothing changed.

use rollback_testkit::TestRepo;

use crate::common::{picture, script};
use crate::shapes::{config, fr, run_id};

#[test]
fn a_hook_that_rejects_the_branch_move_refuses_the_run_with_nothing_changed() {
    let r = TestRepo::new();
    r.write("main.py", "v1\n");
    r.commit_all("v1");
    r.git(&["tag", "v1"]);
    r.write("main.py", "v2\n").write("new.py", "new\n");
    r.commit_all("v2");
    r.write("main.py", "local edit\n").write("note.txt", "untracked\n");
    let freeze = r.path().join(".git/freeze");
    let hooks = tempfile::tempdir().unwrap();
    script(
        hooks.path(),
        "reference-transaction",
        &format!(
            "[ \"$1\" = prepared ] || exit 0\nwhile read old new ref; do\n  if [ \"$ref\" = refs/heads/main ] && [ -e '{}' ]; then echo 'freeze: main is protected' >&2; exit 1; fi\ndone\nexit 0\n",
            freeze.display()
        ),
    );
    r.git(&["config", "core.hooksPath", &hooks.path().display().to_string()]);
    std::fs::write(&freeze, "").unwrap();
    let (_cfg_dir, cfg) = config("git-cli");
    let before = picture(&r);
    let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--target", "v1"], &[]);
    out.code(4);
    assert!(
        out.stderr.contains("the repository's `reference-transaction` hook refuses to move `main` to ")
            && out.stderr.contains(": freeze: main is protected"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: nothing was changed"), "{}", out.stderr);
    assert_eq!(picture(&r), before, "nothing changed");
    // The freeze lifted, the hook lets the same run through, and the undo is exact.
    std::fs::remove_file(&freeze).unwrap();
    let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
    assert_eq!(out.ok().json()["status"], "succeeded");
    assert_eq!(r.read("main.py"), b"v1\n");
    fr(&r, &cfg, &["undo", &run_id(&out), "--yes"], &[]).ok();
    assert_eq!(picture(&r), before, "the undo gives back the state before");
}

/// The freeze put in place while the tree is rolled back: the undo's own branch move is put to
/// the hook before anything changes too, and refused with the hook's words.
#[test]
fn a_hook_set_up_after_the_run_refuses_its_undo_with_nothing_changed() {
    let r = TestRepo::new();
    r.write("main.py", "v1\n");
    r.commit_all("v1");
    r.git(&["tag", "v1"]);
    r.write("main.py", "v2\n");
    r.commit_all("v2");
    r.write("main.py", "local edit\n");
    let (_cfg_dir, cfg) = config("git-cli");
    let before = picture(&r);
    let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
    assert_eq!(out.ok().json()["status"], "succeeded");
    let hooks = tempfile::tempdir().unwrap();
    script(
        hooks.path(),
        "reference-transaction",
        "[ \"$1\" = prepared ] || exit 0\nwhile read old new ref; do\n  [ \"$ref\" = refs/heads/main ] && { echo 'freeze: main is protected' >&2; exit 1; }\ndone\nexit 0\n",
    );
    r.git(&["config", "core.hooksPath", &hooks.path().display().to_string()]);
    let rolled_back = picture(&r);
    let undo = fr(&r, &cfg, &["undo", &run_id(&out), "--yes"], &[]);
    undo.code(4);
    assert!(undo.stderr.contains(": freeze: main is protected"), "{}", undo.stderr);
    assert_eq!(picture(&r), rolled_back, "nothing changed");
    r.git(&["config", "--unset", "core.hooksPath"]);
    fr(&r, &cfg, &["undo", &run_id(&out), "--yes"], &[]).ok();
    assert_eq!(picture(&r), before);
}
