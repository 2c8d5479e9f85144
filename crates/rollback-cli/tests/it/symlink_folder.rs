//! A path that is a symlink to a folder on one side and a real folder on the other: in the
//! commits (a tracked `static -> assets` replaced by a folder, relative or absolute), or in the
//! work tree (an untracked symlink where the target has a folder). The snapshot records a path
//! below a symlinked parent as absent (it never reads through the link), and the reset now sees
//! the tree the same way. Before: the undo (or, the other way round, the rollback) refused with
//! "`static/site.css` is in the way of the reset and changed while the run was capturing it",
//! and `resume` refused the same way forever.
//!
//! Also: undoing an undo, or undos out of order, no longer reports (and keeps on a branch) the
//! commits the undo moves away from as "made since the run"; a commit made since still is.

use std::time::Duration;

use rollback_testkit::TestRepo;

use crate::common::{picture, rollback, undo};
use crate::lock::paused_before;
use crate::shapes::{BACKENDS, config, fr, run_id};

/// What the symlink points to: a folder in the work tree, or one outside it by absolute path.
#[derive(Clone, Copy, Debug)]
enum Link {
    Relative,
    Absolute,
}

/// `static` is a symlink to a folder at HEAD~1 and a real folder holding `static/site.css` at
/// HEAD (`symlink_first`), or the other way round. `assets/site.css` (the relative link's
/// folder) is tracked in both; the absolute link leads to `outside`, a folder of its own.
fn swap(symlink_first: bool, link: Link, outside: &std::path::Path) -> TestRepo {
    let r = TestRepo::new();
    std::fs::write(outside.join("site.css"), "outside\n").unwrap();
    let target = match link {
        Link::Relative => "assets".to_owned(),
        Link::Absolute => outside.to_str().unwrap().to_owned(),
    };
    let side = |r: &TestRepo, symlink: bool, version: &str| {
        if symlink {
            r.symlink("static", &target);
        } else {
            r.write("static/site.css", "in the tree\n");
        }
        r.write("app.py", version);
    };
    r.write("assets/site.css", "assets\n");
    side(&r, symlink_first, "v1\n");
    r.commit_all("c1");
    let p = r.path().join("static");
    if symlink_first { std::fs::remove_file(&p) } else { std::fs::remove_dir_all(&p) }.unwrap();
    side(&r, !symlink_first, "v2\n");
    r.commit_all("c2");
    r
}

/// Both ways, both kinds of link, both backends: the rollback gives the target's tree (the
/// link with its exact bytes, or the real folder), the undo gives back the exact picture, and
/// nothing is written through the link.
#[test]
fn a_symlink_to_a_folder_that_is_a_real_folder_on_the_other_side_rolls_back_and_undoes_exactly() {
    for backend in BACKENDS {
        for symlink_first in [true, false] {
            for link in [Link::Relative, Link::Absolute] {
                let what = format!("{backend}, symlink at the target: {symlink_first}, {link:?}");
                let outside = tempfile::tempdir().unwrap();
                let r = swap(symlink_first, link, outside.path());
                let (_dir, cfg) = config(backend);
                let before = picture(&r);
                let commit = r.git(&["rev-parse", "HEAD~1"]);
                let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "HEAD~1"], &[]);
                out.ok();
                assert_eq!(r.head(), commit, "{what}");
                assert_eq!(r.git(&["status", "--porcelain", "--untracked-files=all"]), "", "{what}");
                let meta = std::fs::symlink_metadata(r.path().join("static")).unwrap();
                assert_eq!(meta.file_type().is_symlink(), symlink_first, "{what}");
                if !symlink_first {
                    assert_eq!(r.read("static/site.css"), b"in the tree\n", "{what}");
                }
                let undone = fr(&r, &cfg, &["undo", &run_id(&out), "--yes"], &[]);
                undone.ok();
                assert_eq!(picture(&r), before, "{what}: the undo gives back the state from before");
                assert_eq!(r.read("assets/site.css"), b"assets\n", "{what}: nothing written through the link");
                assert_eq!(
                    std::fs::read(outside.path().join("site.css")).unwrap(),
                    b"outside\n",
                    "{what}: nothing written through the link"
                );
            }
        }
    }
}

/// An untracked symlink to a folder outside the tree sits where the target has a folder with
/// a file: the rollback backs up the link and replaces it by the folder (nothing written
/// through it), and the undo puts the link back.
#[test]
fn an_untracked_symlink_where_the_target_has_a_folder_is_replaced_and_comes_back_on_undo() {
    for backend in BACKENDS {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("legacy.py"), "precious\n").unwrap();
        let r = TestRepo::new();
        r.write("old/legacy.py", "legacy v1\n").write("app.py", "v1\n");
        r.commit_all("v1");
        r.git(&["rm", "-q", "-r", "old"]);
        r.write("app.py", "v2\n");
        r.commit_all("v2");
        r.symlink("old", outside.path());
        let (_dir, cfg) = config(backend);
        let before = picture(&r);
        let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "HEAD~1"], &[]);
        out.ok();
        assert!(std::fs::symlink_metadata(r.path().join("old")).unwrap().is_dir(), "{backend}");
        assert_eq!(r.read("old/legacy.py"), b"legacy v1\n", "{backend}");
        assert_eq!(std::fs::read(outside.path().join("legacy.py")).unwrap(), b"precious\n", "{backend}");
        fr(&r, &cfg, &["undo", &run_id(&out), "--yes"], &[]).ok();
        assert_eq!(picture(&r), before, "{backend}: the link is back");
        assert_eq!(std::fs::read(outside.path().join("legacy.py")).unwrap(), b"precious\n", "{backend}");
    }
}

/// A captured untracked `d/f` is in the way of the target's `d/f`; while the run waits before
/// its reset, `d` becomes a symlink to a folder outside the tree holding a file with the very
/// same bytes. Looked at through the link, `d/f` is still "as captured" and, after capturing
/// again, a file in no backup: the run refused. Now a path below a symlink is not there: the
/// run captures again (the link), clears the link itself (never the file it leads to), and
/// the undo puts the link back.
#[test]
fn a_folder_replaced_by_a_symlink_while_the_run_waits_is_never_cleared_through_the_link() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("f"), "local\n").unwrap();
    let r = TestRepo::new();
    r.write("d/f", "tracked\n").write("app.py", "v1\n");
    r.commit_all("v1");
    r.git(&["rm", "-q", "-r", "d"]);
    r.write("app.py", "v2\n");
    r.commit_all("v2");
    r.write("d/f", "local\n");
    let (run, release) = paused_before(&r, &["run", "--fast", "--yes", "--json", "--target", "HEAD~1"], "reset");
    std::fs::remove_dir_all(r.path().join("d")).unwrap();
    r.symlink("d", outside.path());
    let swapped = picture(&r);
    std::fs::write(&release, "").unwrap();
    let out = run.wait(Duration::from_secs(120));
    out.ok();
    assert_eq!(std::fs::read(outside.path().join("f")).unwrap(), b"local\n", "never deleted through the link");
    assert_eq!(r.read("d/f"), b"tracked\n");
    assert!(std::fs::symlink_metadata(r.path().join("d")).unwrap().is_dir());
    undo(&r, out.json()["run_id"].as_str().unwrap());
    assert_eq!(picture(&r), swapped, "the undo puts the link back");
    assert_eq!(std::fs::read(outside.path().join("f")).unwrap(), b"local\n");
}

/// The warnings of an undo's JSON outcome.
fn warnings(j: &serde_json::Value) -> Vec<String> {
    j["warnings"].as_array().unwrap().iter().map(|w| w.as_str().unwrap().to_owned()).collect()
}

/// The `forge-rollback/kept-*` branches.
fn kept_branches(r: &TestRepo) -> String {
    r.git(&["branch", "--list", "forge-rollback/kept-*"])
}

/// Undoing an undo moves away from the commits the undo moved back to: none of them was made
/// since, so nothing is reported and no branch is made; the picture is the rolled-back one.
#[test]
fn an_undo_of_an_undo_reports_and_keeps_no_commits() {
    let r = TestRepo::new();
    r.three_releases();
    let a = rollback(&r, "v1");
    let rolled_back = picture(&r);
    let u = undo(&r, &a)["run_id"].as_str().unwrap().to_owned();
    let j = undo(&r, &u);
    assert!(warnings(&j).iter().all(|w| !w.contains("made since")), "{:?}", warnings(&j));
    assert_eq!(kept_branches(&r), "");
    assert_eq!(picture(&r), rolled_back);
}

/// Stacked runs: A (v3 → v2), B (v2 → v1). Undoing A first is refused (B moved HEAD since:
/// `undo_refusals`); undone newest first, B (back to v2) then A (back to v3), neither
/// reports nor keeps a commit: v2 and v3 were there before the runs.
#[test]
fn undos_out_of_order_report_and_keep_no_commits() {
    let r = TestRepo::new();
    r.three_releases();
    let before_a = picture(&r);
    let a = rollback(&r, "v2");
    let b = rollback(&r, "v1");
    crate::common::fr(&r, &["undo", &a, "--yes"]).code(4);
    let jb = undo(&r, &b);
    let ja = undo(&r, &a);
    for j in [&ja, &jb] {
        assert!(warnings(j).iter().all(|w| !w.contains("made since")), "{:?}", warnings(j));
    }
    assert_eq!(kept_branches(&r), "");
    assert_eq!(picture(&r), before_a);
}

/// A hotfix committed after an undo is made since it: undoing that undo keeps it on a branch,
/// and names it alone (not the releases the undo moves away from).
#[test]
fn a_commit_made_after_an_undo_is_kept_alone_when_the_undo_is_undone() {
    let r = TestRepo::new();
    r.three_releases();
    let a = rollback(&r, "v1");
    let u = undo(&r, &a)["run_id"].as_str().unwrap().to_owned();
    r.write("app/hotfix.py", "FIX = 1\n");
    let hotfix = r.commit_all("hotfix on v3");
    let j = undo(&r, &u);
    let made: Vec<String> = warnings(&j).into_iter().filter(|w| w.contains("made since")).collect();
    assert_eq!(made.len(), 1, "{made:?}");
    assert!(made[0].starts_with("1 commit(s) made since") && made[0].contains("hotfix on v3"), "{made:?}");
    let branch = format!("forge-rollback/kept-{u}");
    assert_eq!(r.git(&["rev-parse", &branch]).trim(), hotfix.trim());
}
