//! Undo of shapes the server's work tree has and the commits do not show.
//!
//! - A tracked folder (`media/img/.keep`) replaced on the server by a symlink to shared
//!   storage (`media -> /srv/shared/media`), the target release tracking it too. The undo's
//!   reset writes `media/img/.keep`, the restore removes it (it was absent) and puts the link
//!   back where `media` is a folder holding only an empty `media/img`. Before: the checks
//!   allowed that folder, the writer removed only an empty one, so `restore_files` failed with
//!   "a folder that is not empty is in the way", left `media` a plain folder, and `resume`
//!   failed the same way every time.
//! - A clean tracked file the operator locked down (`chmod 640 settings.py`, holding a secret)
//!   that the target changes: git records only the x bit, so it was not captured and came back
//!   world-readable (`0644`) after rollback + undo.
//!
//! Every case runs with both backends.

use std::os::unix::fs::PermissionsExt;

use rollback_testkit::{TestRepo, TreeState};

use crate::common::picture;
use crate::shapes::{BACKENDS, config, fr, run_id};

/// `media/img/.keep` tracked at HEAD (and at HEAD~1 with `target_has_it`); on the server
/// `media` is a symlink to `shared` (outside the work tree, holding a photo).
fn shared_media(shared: &std::path::Path, target_has_it: bool) -> TestRepo {
    std::fs::write(shared.join("photo.jpg"), "photo\n").unwrap();
    let r = TestRepo::new();
    r.write("app.py", "v1\n");
    if target_has_it {
        r.write("media/img/.keep", "");
    }
    r.commit_all("c1");
    r.write("app.py", "v2\n").write("media/img/.keep", "");
    r.commit_all("c2");
    std::fs::remove_dir_all(r.path().join("media")).unwrap();
    r.symlink("media", shared);
    r
}

/// Rollback then undo gives back the link exactly; nothing is written through it. (With
/// `git2`, a target that tracks the folder too is left out: its reset writes
/// `media/img/.keep` through the link, a bug of its own.)
#[test]
fn a_tracked_folder_replaced_by_a_symlink_to_shared_storage_undoes_exactly() {
    for (backend, target_has_it) in [("git2", false), ("git-cli", false), ("git-cli", true)] {
        let what = format!("{backend}, the target tracks `media/img/.keep`: {target_has_it}");
        let shared = tempfile::tempdir().unwrap();
        let r = shared_media(shared.path(), target_has_it);
        let (_dir, cfg) = config(backend);
        let before = picture(&r);
        let shared_before = TreeState::capture(shared.path());
        let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "HEAD~1"], &[]);
        out.ok();
        assert_eq!(r.git(&["status", "--porcelain", "--untracked-files=all"]), "", "{what}: the target's tree");
        let undone = fr(&r, &cfg, &["undo", &run_id(&out), "--yes", "--json"], &[]);
        undone.ok();
        assert_eq!(undone.json()["status"], "succeeded", "{what}: {}", undone.stderr);
        assert_eq!(picture(&r), before, "{what}: the undo gives back the state from before");
        let link = std::fs::symlink_metadata(r.path().join("media")).unwrap();
        assert!(link.file_type().is_symlink(), "{what}: `media` is the link again");
        assert_eq!(TreeState::capture(shared.path()), shared_before, "{what}: nothing written through the link");
    }
}

fn mode(r: &TestRepo, rel: &str) -> u32 {
    std::fs::symlink_metadata(r.path().join(rel)).unwrap().permissions().mode() & 0o7777
}

/// Clean tracked files with modes git does not record (`0640`, `0750`, `0600`), changed or
/// deleted by the target: the undo gives them back with their modes (the rollback writes
/// the target's files as git does). Modes that differ from git's whatever the umask.
#[test]
fn clean_tracked_files_with_locked_down_modes_get_their_modes_back() {
    for backend in BACKENDS {
        let r = TestRepo::new();
        r.write("settings.py", "SECRET_KEY=old\n").write("deploy.sh", "echo old\n").write("app.py", "v1\n");
        r.write("README.md", "same in both\n").chmod("deploy.sh", 0o755);
        r.commit_all("c1");
        r.write("settings.py", "SECRET_KEY=new\n").write("deploy.sh", "echo new\n").write("token.txt", "t\n");
        r.commit_all("c2");
        r.chmod("settings.py", 0o640).chmod("deploy.sh", 0o750).chmod("token.txt", 0o600);
        // Unchanged by the target: the reset leaves it alone.
        r.chmod("README.md", 0o640);
        assert_eq!(r.git(&["status", "--porcelain"]), "", "{backend}: git sees no change");
        let (_dir, cfg) = config(backend);
        let before = picture(&r);
        let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "HEAD~1"], &[]);
        out.ok();
        assert_eq!(r.read("settings.py"), b"SECRET_KEY=old\n", "{backend}");
        assert!(!r.path().join("token.txt").exists(), "{backend}");
        let undone = fr(&r, &cfg, &["undo", &run_id(&out), "--yes", "--json"], &[]);
        undone.ok();
        assert_eq!(mode(&r, "settings.py"), 0o640, "{backend}: not world-readable again");
        assert_eq!(mode(&r, "deploy.sh"), 0o750, "{backend}");
        assert_eq!(mode(&r, "token.txt"), 0o600, "{backend}");
        assert_eq!(mode(&r, "README.md"), 0o640, "{backend}");
        assert_eq!(picture(&r), before, "{backend}: the undo gives back the state from before");
        assert_eq!(r.git(&["status", "--porcelain"]), "", "{backend}: clean again");
    }
}
