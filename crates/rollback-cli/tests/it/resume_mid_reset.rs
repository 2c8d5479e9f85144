//! A run killed in the middle of its reset (the process and its git, as by a power loss): git
//! had written part of the target's files, one of them half-way, and removed others. `resume`
//! tells git's own output from the operator's edits, finishes the rollback, and its `undo`
//! gives back exactly the tree from before the run; an edit made between the crash and the
//! resume is kept. Also: a staged new file (or a file below a tracked file turned folder)
//! where the target has a folder is captured and cleared like an untracked one.
//!
//! The tests stop the run at the failpoint inside the reset (the way cleared, git not run yet)
//! and then do to the tree what `git reset --hard v1` had done when it died: deterministic,
//! where killing a real git mid-write is a matter of timing.

use std::fmt::Write as _;

use rollback_testkit::{Node, TestRepo};

use crate::common::{Picture, fr, fr_env, picture};
use crate::edits_since::killed_inside_the_reset;

/// v1's long file: git writes it in more than one `write`, so a kill can cut it short.
fn big_v1() -> String {
    (0..4000).fold(String::new(), |mut s, i| {
        let _ = writeln!(s, "v1 line {i}");
        s
    })
}

/// v1 adds `lib/big.txt`, `lib/small.txt` and `docs/guide.md` back (v2 deleted them) and has
/// its own `app/main.py`; v2 has `app/new.py`. On top of v2: a hotfix in `app/main.py`, a
/// staged new file `app/staged.py` and an untracked note.
fn repo_where_the_target_adds_files() -> TestRepo {
    let r = TestRepo::new();
    r.write("app/main.py", "V = 1\n")
        .write("lib/big.txt", big_v1())
        .write("lib/small.txt", "small v1\n")
        .write("docs/guide.md", "v1 guide\n");
    r.commit_all("release v1");
    r.git(&["tag", "v1"]);
    r.git(&["rm", "-rq", "lib", "docs"]);
    r.write("app/main.py", "V = 2\n").write("app/new.py", "NEW = 2\n");
    r.commit_all("release v2");
    r.write("app/main.py", "V = 2  # hotfix in progress\n")
        .write("app/staged.py", "STAGED = 1\n")
        .write("notes.txt", "incident notes\n");
    r.git(&["add", "app/staged.py"]);
    r
}

/// What `git reset --hard v1` had done when it was killed: removed `app/new.py` (v1 lacks it)
/// and the staged `app/staged.py`, rewritten `app/main.py`, written `lib/small.txt` whole,
/// `lib/big.txt` half-way and `docs/guide.md` not yet (created empty); nothing else.
fn as_git_left_it(r: &TestRepo) {
    r.remove("app/new.py").remove("app/staged.py");
    r.write("app/main.py", "V = 1\n");
    r.write("lib/small.txt", "small v1\n");
    r.write("lib/big.txt", &big_v1()[..9000]);
    r.write("docs/guide.md", "");
}

/// Resume finishes the rollback (exit 0, HEAD at v1, the target's files whole), and undo gives
/// back every byte, absence and the index from before the run.
#[test]
fn resume_finishes_a_reset_cut_short_while_git_wrote_the_targets_new_files() {
    let r = repo_where_the_target_adds_files();
    let before = picture(&r);
    let id = killed_inside_the_reset(&r);
    as_git_left_it(&r);

    let resumed = fr(&r, &["resume", &id, "--json"]);
    resumed.ok();
    assert_eq!(resumed.json()["status"], "succeeded", "{}", resumed.stderr);
    assert_eq!(r.head(), r.git(&["rev-parse", "v1"]));
    assert_eq!(r.read("lib/big.txt"), big_v1().as_bytes(), "git wrote the half-written file whole");
    assert_eq!(r.read("docs/guide.md"), b"v1 guide\n");

    fr(&r, &["undo", &id, "--yes", "--json"]).ok();
    assert_eq!(picture(&r), before, "everything as before the run");
}

/// The resume captures the tree again, then fails in the reset (an injected error), and `undo`
/// still gives back the tree from before the run: a file git was half-way writing, or had
/// written whole, was not taken for an edit by the resume's capture, and is not left behind.
#[test]
fn undo_after_a_failed_resume_does_not_keep_what_git_had_half_written() {
    let r = repo_where_the_target_adds_files();
    let before = picture(&r);
    let id = killed_inside_the_reset(&r);
    as_git_left_it(&r);

    let env = [("FORGE_ROLLBACK_FAILPOINT", "inside:reset"), ("FORGE_ROLLBACK_FAILPOINT_ACTION", "error")];
    let resumed = fr_env(&r, &["resume", &id, "--json"], &env);
    resumed.code(1);
    assert!(resumed.stderr.contains("step `reset` failed"), "{}", resumed.stderr);

    fr(&r, &["undo", &id, "--yes", "--json"]).ok();
    assert!(!r.exists("lib/big.txt"), "the half-written file is git's, not the operator's");
    assert!(!r.exists("docs/guide.md"), "so is the empty one");
    assert_eq!(picture(&r), before, "everything as before the run");
}

/// An edit made between the crash and the resume (one of the files git wrote, overwritten by
/// the operator; a tracked file; a new note) is captured by the resume and given back by the
/// undo; the rest is as before the run.
#[test]
fn an_edit_between_the_crash_and_the_resume_is_kept_by_the_undo() {
    let r = repo_where_the_target_adds_files();
    let before = picture(&r);
    let staged_before = r.git(&["ls-files", "-s"]);
    let id = killed_inside_the_reset(&r);
    as_git_left_it(&r);
    r.write("lib/small.txt", "my own notes, not v1's\n")
        .write("app/main.py", "V = 2  # edited after the crash\n")
        .write("after-crash.txt", "written while stopped\n");
    let edited = picture(&r);

    fr(&r, &["resume", &id, "--json"]).ok();
    assert_eq!(r.read("lib/small.txt"), b"small v1\n", "the rollback put the target's file there");

    fr(&r, &["undo", &id, "--yes", "--json"]).ok();
    let mut expected = before.tree.clone();
    for path in ["lib", "lib/small.txt", "app/main.py", "after-crash.txt"] {
        let node: &Node = &edited.tree.0[path.as_bytes()];
        expected.0.insert(path.as_bytes().to_vec(), node.clone());
    }
    let after = picture(&r);
    assert_eq!(after.tree, expected, "the edits, and the tree from before the run");
    assert_eq!(r.read("lib/small.txt"), b"my own notes, not v1's\n");
    assert_eq!((after.head, after.branch), (before.head, before.branch));
    assert_eq!(r.git(&["ls-files", "-s"]), staged_before, "the index from before the run");
}

/// v1 has `docs/guide.md`, v2 deletes it; HEAD is v2 and an untracked draft sits at that
/// path. The run clears the draft, then is killed; git had written `docs/guide.md` (`whole`)
/// or created it and written nothing (`!whole`). Resume finishes, and undo gives the draft
/// back; also when git had not got there (`None`).
#[test]
fn resume_after_the_reset_cleared_a_draft_and_git_wrote_over_it() {
    for git_wrote in [None, Some(true), Some(false)] {
        let r = TestRepo::new();
        r.write("app/main.py", "V = 1\n").write("docs/guide.md", "v1 guide\n");
        r.commit_all("release v1");
        r.git(&["tag", "v1"]);
        r.git(&["rm", "-q", "docs/guide.md"]);
        r.write("app/main.py", "V = 2\n");
        r.commit_all("release v2");
        r.write("docs/guide.md", "my draft\n");
        let before = picture(&r);
        let id = killed_inside_the_reset(&r);
        assert!(!r.exists("docs/guide.md"), "the way was cleared");
        match git_wrote {
            Some(true) => r.write("docs/guide.md", "v1 guide\n"),
            Some(false) => r.write("docs/guide.md", ""),
            None => &r,
        };

        let resumed = fr(&r, &["resume", &id, "--json"]);
        resumed.ok();
        assert_eq!(r.read("docs/guide.md"), b"v1 guide\n", "{git_wrote:?}");
        fr(&r, &["undo", &id, "--yes", "--json"]).ok();
        assert_eq!(r.read("docs/guide.md"), b"my draft\n", "{git_wrote:?}");
        assert_eq!(picture(&r), before, "{git_wrote:?}");
    }
}

/// v1 has the folder `x` (with `x/y`), v2 does not; HEAD is v2.
fn repo_where_the_target_has_folder_x() -> TestRepo {
    let r = TestRepo::new();
    r.write("x/y", "y\n").write("app.py", "v1\n");
    r.commit_all("release v1");
    r.git(&["tag", "v1"]);
    r.git(&["rm", "-rq", "x"]);
    r.write("app.py", "v2\n");
    r.commit_all("release v2");
    r
}

/// A staged new file `x` where the target has the folder `x`: the run captures it, clears it
/// and rolls back (it was refused as "in no backup"); undo gives back the file and the index.
#[test]
fn a_staged_new_file_where_the_target_has_a_folder_rolls_back_and_comes_back() {
    let r = repo_where_the_target_has_folder_x();
    r.write("x", "the operator's new file\n");
    r.git(&["add", "x"]);
    r.write("x", "the operator's new file, edited since staged\n");
    let before = picture(&r);
    let out = fr(&r, &["run", "--fast", "--yes", "--json", "--target", "v1"]);
    out.ok();
    let id = out.json()["run_id"].as_str().unwrap().to_owned();
    assert_eq!(r.read("x/y"), b"y\n");
    fr(&r, &["undo", &id, "--yes", "--json"]).ok();
    assert_eq!(picture(&r), before);
    assert_eq!(r.git(&["show", ":x"]), "the operator's new file", "the staged content is in the index again");
}

/// The same staged file, the run killed inside the reset (after the way was cleared): resume
/// finishes and undo gives everything back.
#[test]
fn a_staged_new_file_where_the_target_has_a_folder_survives_a_crash_inside_the_reset() {
    let r = repo_where_the_target_has_folder_x();
    r.write("x", "the operator's new file\n");
    r.git(&["add", "x"]);
    let before = picture(&r);
    let id = killed_inside_the_reset(&r);
    assert!(!r.exists("x"), "the way was cleared, the file is in the snapshot");
    fr(&r, &["resume", &id, "--json"]).ok();
    assert_eq!(r.read("x/y"), b"y\n");
    fr(&r, &["undo", &id, "--yes", "--json"]).ok();
    assert_eq!(picture(&r), before);
}

/// An ignored file (not one `clean.ignored` removes) inside a folder that replaced a tracked
/// symlink, where the target has a file: captured below the tracked path, cleared, and given
/// back by undo (it was refused as "in no backup").
#[test]
fn an_ignored_file_below_a_tracked_symlink_turned_folder_rolls_back_and_comes_back() {
    let r = TestRepo::new();
    r.write(".gitignore", "*.log\n").write("a", "file a\n");
    r.commit_all("release v1");
    r.git(&["tag", "v1"]);
    r.git(&["rm", "-q", "a"]);
    r.symlink("a/x", "/tmp").write("a/y", "y\n");
    r.commit_all("release v2");
    r.remove("a/x").write("a/x/app.log", "log line\n");
    let before: Picture = picture(&r);
    let out = fr(&r, &["run", "--fast", "--yes", "--json", "--target", "v1"]);
    out.ok();
    let id = out.json()["run_id"].as_str().unwrap().to_owned();
    assert_eq!(r.read("a"), b"file a\n");
    fr(&r, &["undo", &id, "--yes", "--json"]).ok();
    assert_eq!(picture(&r), before);
}
