//! Repository shapes that `git status` alone does not show (issue 13, cases 1 and 3): a
//! tracked file flagged `--assume-unchanged` or `--skip-worktree` with a local edit, and a
//! work tree whose `.git` file points to a git folder elsewhere (`git init
//! --separate-git-dir`), inside another repository's work tree. Every case runs with both
//! backends.

use rollback_testkit::{TestRepo, TreeState};

use crate::common::{Out, Picture, picture, run_in};

pub(crate) const BACKENDS: [&str; 2] = ["git2", "git-cli"];
const FLAGS: [&str; 2] = ["--assume-unchanged", "--skip-worktree"];

/// The local edit git hides.
const LOCAL: &[u8] = b"DEBUG = True  # my laptop\nDATABASE_URL = 'sqlite:///dev.db'\n";
/// `settings.py` as v1 (and v3, unless the target changes it) commit it.
const COMMITTED: &[u8] = b"DEBUG = False\n";

/// A configuration choosing `backend`, in its own temp dir (outside every work tree).
pub(crate) fn config(backend: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forge-rollback.toml");
    std::fs::write(&path, format!("[vcs]\nbackend = \"{backend}\"\n")).unwrap();
    let path = path.to_str().unwrap().to_owned();
    (dir, path)
}

pub(crate) fn fr(r: &TestRepo, cfg: &str, args: &[&str], env: &[(&str, &str)]) -> Out {
    let mut all = vec!["--config", cfg];
    all.extend_from_slice(args);
    run_in(r.path(), &all, env)
}

/// The three releases with a tracked `settings.py`, flagged with `flag` and edited locally.
/// With `target_changes_it`, a fourth release changes it, so v1's version differs from
/// HEAD's.
fn app_with_local_settings(flag: &str, target_changes_it: bool) -> TestRepo {
    let r = TestRepo::new();
    r.write("settings.py", COMMITTED);
    r.three_releases();
    if target_changes_it {
        r.write("settings.py", "DEBUG = False\nCACHE = 'redis'\n");
        r.commit_all("release v4: cache settings");
    }
    r.git(&["update-index", flag, "settings.py"]);
    r.write("settings.py", LOCAL);
    assert_eq!(r.git(&["status", "--porcelain"]), "", "git hides the edit");
    r
}

/// Everything `undo` must give back, flags and index blobs included.
fn full_picture(r: &TestRepo) -> (Picture, String) {
    (picture(r), r.git(&["ls-files", "-v", "-s"]))
}

pub(crate) fn run_id(out: &Out) -> String {
    out.json()["run_id"].as_str().unwrap().to_owned()
}

/// The target has `settings.py` as HEAD has it: the rollback leaves the local edit in place,
/// still flagged (so still hidden), and `undo` gives back the exact prior state.
#[test]
fn a_flagged_local_edit_survives_a_rollback_and_its_undo() {
    for backend in BACKENDS {
        for flag in FLAGS {
            let what = format!("{backend} {flag}");
            let r = app_with_local_settings(flag, false);
            let (_cfg_dir, cfg) = config(backend);
            let before = full_picture(&r);
            let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
            out.ok();
            assert_eq!(r.head(), r.git(&["rev-parse", "v1"]), "{what}");
            assert_eq!(r.read("settings.py"), LOCAL, "{what}: the local edit is kept");
            assert!(!r.exists("app/users.py"), "{what}: the code is v1's");
            let tag = if flag == "--assume-unchanged" { "h" } else { "S" };
            assert_eq!(
                r.git(&["ls-files", "-v", "settings.py"]),
                format!("{tag} settings.py"),
                "{what}: still flagged"
            );
            assert_eq!(r.git(&["status", "--porcelain"]), "", "{what}: and still hidden");
            assert!(out.stderr.contains("Kept the local version of `settings.py`"), "{what}: {}", out.stderr);
            fr(&r, &cfg, &["undo", &run_id(&out), "--yes"], &[]).ok();
            assert_eq!(full_picture(&r), before, "{what}");
            assert_eq!(r.read("settings.py"), LOCAL, "{what}");
        }
    }
}

/// The target changes `settings.py`: its version wins (git's own reset refuses here), a
/// warning says where the local edit is, and `undo` brings the edit and the flag back.
#[test]
fn a_flagged_edit_the_target_changes_is_snapshotted_and_undo_brings_it_back() {
    for backend in BACKENDS {
        for flag in FLAGS {
            let what = format!("{backend} {flag}");
            let r = app_with_local_settings(flag, true);
            let (_cfg_dir, cfg) = config(backend);
            let before = full_picture(&r);
            let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
            out.ok();
            assert_eq!(r.head(), r.git(&["rev-parse", "v1"]), "{what}");
            assert_eq!(r.read("settings.py"), COMMITTED, "{what}: the target's version");
            let flag_name = flag.trim_start_matches("--");
            assert!(
                out.stderr.contains(&format!(
                    "[WARN] `settings.py` is marked {flag_name} and has local changes, but the target changes it"
                )),
                "{what}: {}",
                out.stderr
            );
            assert!(out.stderr.contains(&format!("`forge-rollback undo {}`", run_id(&out))), "{what}: {}", out.stderr);
            fr(&r, &cfg, &["undo", &run_id(&out), "--yes"], &[]).ok();
            assert_eq!(full_picture(&r), before, "{what}");
            assert_eq!(r.read("settings.py"), LOCAL, "{what}");
        }
    }
}

/// A run that fails, before or after the reset, then `undo`: the edit comes back.
#[test]
fn a_failed_run_then_undo_gives_the_flagged_edit_back() {
    for backend in BACKENDS {
        for flag in FLAGS {
            for point in ["inside:reset", "before:remove_untracked"] {
                let what = format!("{backend} {flag} {point}");
                let r = app_with_local_settings(flag, false);
                let (_cfg_dir, cfg) = config(backend);
                let before = full_picture(&r);
                let out = fr(
                    &r,
                    &cfg,
                    &["run", "--fast", "--yes", "--json", "--target", "v1"],
                    &[("FORGE_ROLLBACK_FAILPOINT", point), ("FORGE_ROLLBACK_FAILPOINT_ACTION", "error")],
                );
                out.code(1);
                assert_eq!(out.json()["status"], "failed", "{what}");
                assert_eq!(r.read("settings.py"), LOCAL, "{what}: kept while the run is stopped");
                fr(&r, &cfg, &["undo", &run_id(&out), "--yes"], &[]).ok();
                assert_eq!(full_picture(&r), before, "{what}");
                assert_eq!(r.read("settings.py"), LOCAL, "{what}");
            }
        }
    }
}

/// `outer` is a repository with a committed file, a dirty edit and an untracked file; `app`
/// (a sibling folder) has its git folder at `outer/store`, made by `git init
/// --separate-git-dir`, the three releases and a dirty edit.
struct Layout {
    outer: TestRepo,
    app: TestRepo,
}

impl Layout {
    fn new() -> Self {
        let outer = TestRepo::new();
        outer.write("o.txt", "outer\n");
        outer.commit_all("outer");
        outer.write("o.txt", "outer, dirty\n").write("notes.txt", "untracked in outer\n");
        let app = TestRepo::new();
        // `git init --separate-git-dir=STORE` in place of the `.git` folder `TestRepo` made:
        // a `.git` file pointing at STORE.
        std::fs::remove_dir_all(app.path().join(".git")).unwrap();
        let store = outer.path().join("store");
        app.git(&["init", "-q", "-b", "main", &format!("--separate-git-dir={}", store.display())]);
        let gitfile = std::fs::read_to_string(app.path().join(".git")).unwrap();
        assert_eq!(gitfile.trim(), format!("gitdir: {}", store.display()));
        app.three_releases();
        app.write("app/main.py", "# hotfix in progress\n").write("scratch.txt", "untracked in app\n");
        Self { outer, app }
    }

    /// The outer repository: its tree (without the app's git folder, where the state folder
    /// lives), HEAD, index and status.
    fn outer_state(&self) -> (TreeState, String, String, String) {
        let o = &self.outer;
        let tree = o.tree().without(|p| p.starts_with(b"store"));
        let status = o.git(&["status", "--porcelain", "--untracked-files=all"]);
        let status: Vec<&str> = status.lines().filter(|l| !l.starts_with("?? store/")).collect();
        (tree, o.head(), o.git(&["ls-files", "-s"]), status.join("\n"))
    }
}

/// `git init --separate-git-dir` with the git folder inside another repository's work tree:
/// the app's repository is rolled back and undone; the outer repository, its dirty edit and
/// its untracked file stay exactly as they were.
#[test]
fn separate_git_dir_rolls_back_the_app_not_the_repository_around_its_git_folder() {
    for backend in BACKENDS {
        let l = Layout::new();
        let (_cfg_dir, cfg) = config(backend);
        let outer_before = l.outer_state();
        let app_before = picture(&l.app);
        let out = fr(&l.app, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
        out.ok();
        assert_eq!(out.json()["status"], "succeeded", "{backend}");
        assert_eq!(l.app.head(), l.app.git(&["rev-parse", "v1"]), "{backend}: the app moved");
        assert_eq!(l.app.read("app/main.py"), b"def status():\n    return {\"status\": \"healthy\"}\n", "{backend}");
        assert!(!l.app.exists("scratch.txt") && !l.app.exists("app/users.py"), "{backend}");
        assert_eq!(l.outer_state(), outer_before, "{backend}: the outer repository is untouched");
        assert_eq!(l.outer.read("o.txt"), b"outer, dirty\n", "{backend}");
        fr(&l.app, &cfg, &["undo", &run_id(&out), "--yes"], &[]).ok();
        assert_eq!(picture(&l.app), app_before, "{backend}: undo restores the app");
        assert_eq!(l.outer_state(), outer_before, "{backend}: the outer repository is untouched");
    }
}

fn inode(r: &TestRepo, path: &str) -> u64 {
    std::os::unix::fs::MetadataExt::ino(&std::fs::symlink_metadata(r.path().join(path)).unwrap())
}

/// Case 15, hard links: files the snapshot holds that were one file (hard links to one
/// another: two untracked names, or an untracked name for a dirty tracked file) are one file
/// again after `undo`. A hard link to a clean tracked file git rewrites is not kept: git writes
/// a new file there, and the untracked name keeps the content as it was (a separate file).
#[test]
fn hard_links_between_captured_files_come_back_as_hard_links() {
    for backend in BACKENDS {
        let r = TestRepo::new();
        r.three_releases();
        let (_cfg_dir, cfg) = config(backend);
        r.write("data/a.bin", "shared bytes\n");
        std::fs::hard_link(r.path().join("data/a.bin"), r.path().join("data/b.bin")).unwrap();
        r.write("app/main.py", "# dirty and linked\n");
        std::fs::hard_link(r.path().join("app/main.py"), r.path().join("main-link.py")).unwrap();
        std::fs::hard_link(r.path().join("app/payments.py"), r.path().join("payments-link.py")).unwrap();
        let before = picture(&r);
        let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
        out.ok();
        let undo = fr(&r, &cfg, &["undo", &run_id(&out), "--yes"], &[]);
        undo.ok();
        assert!(undo.stderr.contains("Re-made 2 hard link(s) between restored files"), "{backend}: {}", undo.stderr);
        assert_eq!(picture(&r), before, "{backend}: content, modes, HEAD and index");
        assert_eq!(inode(&r, "data/a.bin"), inode(&r, "data/b.bin"), "{backend}: untracked pair");
        assert_eq!(inode(&r, "app/main.py"), inode(&r, "main-link.py"), "{backend}: dirty tracked + untracked");
        assert_ne!(
            inode(&r, "app/payments.py"),
            inode(&r, "payments-link.py"),
            "{backend}: clean tracked file git rewrote"
        );
        assert_eq!(r.read("payments-link.py"), b"PAY = 1\n", "{backend}");
    }
}

/// A tracked file with a local edit that the target has as HEAD has it: the reset only
/// reverts the edit. The file has two other names, one outside the work tree (a configuration
/// shared with another service) and an untracked one in the tree. libgit2 writes the file in
/// place, through its links: before, the `git2` back-end overwrote the outside file (its edit
/// lost) and the untracked name, which the undo then left with the committed content. Now
/// both back-ends write a new file, as git does: the outside file is untouched, and the undo
/// gives back the edit and makes the tree's link again.
#[test]
fn a_reverted_local_edit_is_not_written_through_its_hard_links() {
    const EDITED: &[u8] = b"sample app\nlocal note\n";
    for backend in BACKENDS {
        let r = TestRepo::new();
        r.three_releases();
        let (_cfg_dir, cfg) = config(backend);
        let outside = tempfile::tempdir().unwrap();
        let shared = outside.path().join("README-shared.md");
        r.write("README.md", EDITED);
        std::fs::hard_link(r.path().join("README.md"), &shared).unwrap();
        std::fs::hard_link(r.path().join("README.md"), r.path().join("readme-copy.md")).unwrap();
        let before = picture(&r);
        let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
        out.ok();
        assert_eq!(r.read("README.md"), b"sample app\n", "{backend}: the edit is reverted");
        assert_eq!(std::fs::read(&shared).unwrap(), EDITED, "{backend}: the file outside the work tree");
        assert!(
            !out.stderr.contains("readme-copy.md"),
            "{backend}: no word of a changed untracked file: {}",
            out.stderr
        );
        fr(&r, &cfg, &["undo", &run_id(&out), "--yes"], &[]).ok();
        assert_eq!(picture(&r), before, "{backend}: content, modes, HEAD and index");
        assert_eq!(inode(&r, "README.md"), inode(&r, "readme-copy.md"), "{backend}: one file again");
        assert_eq!(std::fs::read(&shared).unwrap(), EDITED, "{backend}: the file outside the work tree");
    }
}

/// Case 15, end-of-line conversion: `core.autocrlf` turned on after the files were checked
/// out (they are LF on disk, git calls them clean). The rollback captures the clean files it
/// rewrites when a checkout may convert bytes, so `undo` gives them back byte for byte,
/// not as CRLF.
#[test]
fn autocrlf_turned_on_after_checkout_undo_gives_clean_files_back_byte_for_byte() {
    for backend in BACKENDS {
        let r = TestRepo::new();
        r.three_releases();
        let (_cfg_dir, cfg) = config(backend);
        r.git(&["config", "core.autocrlf", "true"]);
        assert_eq!(r.git(&["status", "--porcelain"]), "", "{backend}: LF files are clean under autocrlf");
        let before = picture(&r);
        let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
        out.ok();
        assert!(r.read("app/main.py").ends_with(b"\r\n"), "{backend}: the rollback's checkout converts");
        fr(&r, &cfg, &["undo", &run_id(&out), "--yes"], &[]).ok();
        assert_eq!(picture(&r), before, "{backend}: every file byte for byte");
        assert_eq!(r.read("requirements.txt"), b"fastapi==0.111\nstripe==7\n", "{backend}");
    }
}

/// What is not preserved: conversion turned on after the rollback, before its undo. The
/// rollback had no reason to capture clean files (a checkout then wrote blobs as they are),
/// so the undo's checkout writes them with the settings of the time of the undo: CRLF.
/// Their content is otherwise the same.
#[test]
fn autocrlf_turned_on_between_rollback_and_undo_gives_checkout_bytes() {
    for backend in BACKENDS {
        let r = TestRepo::new();
        r.three_releases();
        let (_cfg_dir, cfg) = config(backend);
        let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
        out.ok();
        r.git(&["config", "core.autocrlf", "true"]);
        fr(&r, &cfg, &["undo", &run_id(&out), "--yes"], &[]).ok();
        assert_eq!(r.read("requirements.txt"), b"fastapi==0.111\r\nstripe==7\r\n", "{backend}");
        assert_eq!(r.head(), r.git(&["rev-parse", "v3"]), "{backend}");
    }
}
