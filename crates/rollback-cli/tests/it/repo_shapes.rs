//! Repository shapes found by an exploration of `run` + `undo` on 2026-12-05: an edit a
//! file system monitor (`core.fsmonitor`) missed; assume-unchanged entries whose stat data are
//! stale (a copied or restored tree, `core.ignoreStat`); sparse checkouts (cone and non-cone,
//! with a file of HEAD where the target has a folder) and a sparse index; executable bits set
//! by hand under `core.fileMode=false`; a locked-down file the move does not change, with
//! stale stat data. Every case runs with both back-ends and compares the whole picture (tree,
//! modes, HEAD, branch, status, index entries and their flags) before the rollback and after
//! its undo.

use rollback_testkit::{Node, TestRepo};

use crate::common::{Picture, picture};
use crate::shapes::{BACKENDS, config, fr, run_id};

/// Makes the stat data git keeps for `path` stale, its content unchanged, as a copied or
/// restored tree, or a `touch`, does: its modification time goes back to 2001.
fn make_stat_stale(r: &TestRepo, path: &str) {
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(978_307_200);
    std::fs::File::options().write(true).open(r.path().join(path)).unwrap().set_modified(old).unwrap();
}

/// Everything `undo` must give back, index entries and their flags included.
fn full_picture(r: &TestRepo) -> (Picture, String) {
    (picture(r), r.git(&["ls-files", "-s", "-v"]))
}

/// `run --fast --target target` then `undo` with `backend`; the picture between the two.
fn run_and_undo(r: &TestRepo, backend: &str, target: &str) -> (Picture, String) {
    let (_cfg_dir, cfg) = config(backend);
    let out = fr(r, &cfg, &["run", "--fast", "--yes", "--json", "--target", target], &[]);
    out.ok();
    let between = full_picture(r);
    fr(r, &cfg, &["undo", &run_id(&out), "--yes", "--json"], &[]).ok();
    between
}

const LOCAL: &str = "def status():\n    return {\"status\": \"patched on the box\"}\n";

/// A monitor that lost events (Watchman restarted, an inotify queue overflowed) tells git that
/// nothing changed: `git status` shows no edit. The status scan and the reset look at every
/// file regardless, so the edit is captured, and `undo` gives it back. Before, with the
/// `git-cli` back-end, the edit was neither listed nor captured, and the reset wrote v1's
/// file over it: `undo` brought back the committed file, the edit was gone.
#[test]
fn an_edit_a_file_system_monitor_missed_is_captured_and_comes_back_on_undo() {
    for backend in BACKENDS {
        let r = TestRepo::new();
        r.three_releases();
        let hook = r.path().join(".git/hooks/fsmonitor-lost-events");
        std::fs::write(&hook, "#!/bin/sh\nprintf 'token\\0'\n").unwrap();
        std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        r.git(&["config", "core.fsmonitor", hook.to_str().unwrap()]);
        r.git(&["config", "core.fsmonitorHookVersion", "2"]);
        r.git(&["status"]);
        r.write("app/main.py", LOCAL);
        assert_eq!(r.git(&["status", "--porcelain"]), "", "{backend}: the monitor hides the edit from git");
        let before = full_picture(&r);
        let between = run_and_undo(&r, backend, "v1");
        assert!(between.0.tree.contains("app/main.py") && !between.0.tree.contains("app/users.py"), "{backend}");
        assert_eq!(full_picture(&r), before, "{backend}: the edit git did not see is back");
        assert_eq!(r.read("app/main.py"), LOCAL.as_bytes(), "{backend}");
    }
}

/// Every tracked file flagged assume-unchanged (by hand, or by `core.ignoreStat`, which flags
/// each entry git writes), with stat data that no longer matches (the tree was copied, or
/// restored from a backup: here, new modification times). Git checks a flagged entry it must
/// rewrite or delete against its stat data: before, `git reset --hard` stopped half-way with
/// "Entry 'app/main.py' not uptodate. Cannot merge." (`git-cli` back-end), the index already
/// changed. Now the flags of the entries the target changes are cleared first, as those of
/// changed files were; an edit of one is captured and comes back on undo.
#[test]
fn assume_unchanged_entries_with_stale_stat_data_do_not_stop_the_reset_half_way() {
    for backend in BACKENDS {
        for ignore_stat in [false, true] {
            let what = format!("{backend}, core.ignoreStat {ignore_stat}");
            let r = TestRepo::new();
            r.three_releases();
            let files: Vec<String> = r.git(&["ls-files"]).lines().map(str::to_owned).collect();
            if ignore_stat {
                // Git flags each entry it fills in: every one, once all are added again.
                r.git(&["config", "core.ignoreStat", "true"]);
                r.git(&["rm", "-r", "-q", "--cached", "."]);
                r.git(&["add", "-A"]);
            } else {
                let mut args = vec!["update-index", "--assume-unchanged", "--"];
                args.extend(files.iter().map(String::as_str));
                r.git(&args);
            }
            assert!(r.git(&["ls-files", "-v"]).lines().all(|l| l.starts_with("h ")), "{what}: every entry flagged");
            for f in &files {
                make_stat_stale(&r, f);
            }
            r.write("requirements.txt", "fastapi==0.111\nstripe==7\nsentry-sdk==2\n");
            let before = full_picture(&r);
            let between = run_and_undo(&r, backend, "v1");
            assert_eq!(between.0.head, r.git(&["rev-parse", "v1"]), "{what}");
            assert!(!between.0.tree.contains("app/payments.py"), "{what}: v1's tree");
            assert_eq!(full_picture(&r), before, "{what}");
        }
    }
}

/// Releases `v1` and `v2`: `a/b/` stays inside the sparse checkout, `lib/` and `docs/more/`
/// outside; `p` is a top file in v1 and a folder outside the checkout in v2; `m` is a file in
/// v1 and a folder in v2 with files both sides of the checkout's edge.
fn sparse_app() -> TestRepo {
    let r = TestRepo::new();
    for f in ["top.txt", "a/own.txt", "a/b/deep/x.py", "a/c/y.py", "lib/z.py", "lib/k/m.py", "docs/r.md", "p", "m"] {
        r.write(f, format!("{f} v1\n"));
    }
    r.commit_all("release v1");
    r.git(&["tag", "v1"]);
    for f in ["a/b/new.py", "a/c/new.py", "lib/new/n.py", "newtop.txt", "docs/more/s.md"] {
        r.write(f, format!("{f} v2\n"));
    }
    r.write("lib/z.py", "z v2\n").write("a/b/deep/x.py", "x v2\n");
    r.git(&["rm", "-q", "p", "m", "lib/k/m.py"]);
    r.write("p/inside.py", "p v2\n").write("m/b/in.py", "m in\n").write("m/c/out.py", "m out\n");
    r.commit_all("release v2");
    r.git(&["tag", "v2"]);
    r
}

/// A sparse checkout stays sparse: the files it leaves out are not written by the rollback
/// nor by its undo, and keep their skip-worktree flag; the rollback leaves what `git reset
/// --hard` leaves, and `undo` the picture from before. Before, the `git2` back-end (libgit2
/// has no sparse checkout) wrote every file of the repository, `undo` included, and the
/// flags were lost.
#[test]
fn a_sparse_checkout_stays_sparse_through_a_rollback_and_its_undo() {
    let cone = ["--cone", "a/b", "m/b"];
    let patterns = ["--no-cone", "/a/b/", "/m/b/", "*.md", "!/docs/more/"];
    for set in [&cone[..], &patterns[..]] {
        let mut between = Vec::new();
        for backend in BACKENDS {
            let what = format!("{backend}, sparse-checkout set {set:?}");
            let r = sparse_app();
            let mut args = vec!["sparse-checkout", "set"];
            args.extend_from_slice(set);
            r.git(&args);
            assert!(!r.exists("lib") && !r.exists("p/inside.py") && !r.exists("m/c"), "{what}: sparse");
            r.write("a/b/new.py", "a local edit inside\n").write("a/b/untracked.txt", "untracked inside\n");
            let before = full_picture(&r);
            let (tree, flags) = run_and_undo(&r, backend, "v1");
            for out in ["lib", "a/c", "docs/more", "p/inside.py", "m/c"] {
                assert!(!tree.tree.contains(out), "{what}: the rollback wrote `{out}`, left out");
            }
            for out in ["lib/z.py", "a/c/y.py"] {
                assert!(flags.lines().any(|l| l.starts_with("S ") && l.ends_with(out)), "{what}: {out}\n{flags}");
            }
            assert_eq!(full_picture(&r), before, "{what}");
            between.push((tree, flags));
        }
        assert_eq!(between[0], between[1], "{set:?}: both back-ends leave what git leaves");
    }
}

/// `core.fileMode=false` (a tree cloned on a file system without modes, or an operator tired
/// of mode changes in `git status`): git ignores the executable bit, so a `chmod` is clean to
/// it. Before, the bit changed by hand was lost: `undo` gave back the bit the commit records
/// for a file the rollback changes (both back-ends), and `git reset --hard` rewrote an
/// untouched file whose `chmod` had made its stat data stale (`git-cli`).
#[test]
fn executable_bits_changed_under_file_mode_false_come_back_on_undo() {
    for backend in BACKENDS {
        let r = TestRepo::new();
        r.three_releases();
        r.git(&["config", "core.fileMode", "false"]);
        // v3 changes `requirements.txt` from v1; `README.md` is the same in both.
        r.chmod("requirements.txt", 0o755).chmod("README.md", 0o755).chmod("app/main.py", 0o600);
        assert_eq!(r.git(&["status", "--porcelain"]), "", "{backend}: git sees no change");
        let before = full_picture(&r);
        // `git status` (here and in the picture) records the stat data; a copy, a restore or
        // a `touch` since leaves them stale again (the picture holds no times).
        make_stat_stale(&r, "README.md");
        let between = run_and_undo(&r, backend, "v1");
        assert!(
            matches!(between.0.tree.0.get(&b"README.md"[..]), Some(Node::File { mode: 0o755, .. })),
            "{backend}: the rollback leaves a file it does not change as it is"
        );
        assert_eq!(full_picture(&r), before, "{backend}: the modes set by hand are back");
    }
}

/// A sparse index (`git sparse-checkout set --sparse-index`) holds folder entries libgit2
/// cannot read: the `git2` back-end says so, by name, and changes nothing (before: "libgit2:
/// read status" over libgit2's own words). The `git-cli` back-end rolls it back and undoes it.
#[test]
fn a_sparse_index_is_named_by_git2_and_rolled_back_by_git_cli() {
    for backend in BACKENDS {
        let r = sparse_app();
        r.git(&["sparse-checkout", "set", "--cone", "--sparse-index", "a/b"]);
        assert!(r.git(&["ls-files", "--sparse", "-s"]).contains("040000"), "{backend}: a sparse index");
        r.write("a/b/new.py", "a local edit inside\n");
        let before = full_picture(&r);
        if backend == "git2" {
            let (_cfg_dir, cfg) = config(backend);
            let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--target", "v1"], &[]);
            assert_eq!(out.code, Some(4), "refused, like a split index: {}", out.stderr);
            assert!(out.stderr.contains("sparse index"), "{}", out.stderr);
            assert!(out.stderr.contains("hint: nothing was changed"), "{}", out.stderr);
        } else {
            run_and_undo(&r, backend, "v1");
        }
        assert_eq!(full_picture(&r), before, "{backend}");
    }
}

/// A clean file the rollback does not change, locked down by hand (`chmod 600`), whose stat
/// data no longer match the index (a `touch`, a copied or restored tree). Before, with the
/// `git-cli` back-end, `git reset --hard` rewrote it (it rewrites every file whose stat data
/// differ) with the mode a checkout writes, `0644`, and `undo` did not bring `0600` back (the
/// snapshot holds only the files the move changes). Now the index is refreshed first and the
/// reset leaves the file alone, as the git2 back-end does.
#[test]
fn a_locked_down_file_the_rollback_does_not_change_keeps_its_mode_when_its_stat_data_are_stale() {
    for backend in BACKENDS {
        let r = TestRepo::new();
        r.three_releases();
        // `README.md` is the same in v1 and v3.
        r.chmod("README.md", 0o600);
        let before = full_picture(&r);
        make_stat_stale(&r, "README.md");
        let between = run_and_undo(&r, backend, "v1");
        assert!(
            matches!(between.0.tree.0.get(&b"README.md"[..]), Some(Node::File { mode: 0o600, .. })),
            "{backend}: the rollback leaves a file it does not change as it is"
        );
        assert_eq!(full_picture(&r), before, "{backend}");
    }
}
