//! Files a rollback cannot change. An immutable or append-only file (`chattr +i`, `+a`) or
//! folder is found before anything changes, and the run or undo is refused (exit 4). A file
//! the reset cannot remove for another reason (a file mounted over here; a folder the user may
//! not write fails the same way): `git reset --hard` only warns and exits 0, and the run used
//! to report success with the broken release's file still in the tree. It now fails, naming
//! the file, and `resume` finishes once the obstacle is gone.

use rollback_testkit::TestRepo;

use crate::shapes::config;

/// `chattr` on `path` (`+i` or `-i`).
fn chattr(flag: &str, path: &std::path::Path) {
    let st = std::process::Command::new("chattr").arg(flag).arg(path).status().expect("chattr (e2fsprogs)");
    assert!(st.success(), "chattr {flag} needs root and a file system with attributes (ext4), as in CI");
}

/// `mount --bind` of a file over `path`, undone on drop (then the file's folder goes).
struct MountedOver {
    path: std::path::PathBuf,
    _over: tempfile::TempDir,
}

impl MountedOver {
    fn new(path: &std::path::Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let over = dir.path().join("over");
        std::fs::write(&over, "mounted over\n").unwrap();
        let st = std::process::Command::new("mount").arg("--bind").arg(&over).arg(path).status().expect("mount");
        assert!(st.success(), "mount --bind needs root, as in CI");
        Self { path: path.to_path_buf(), _over: dir }
    }
}

impl Drop for MountedOver {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.path).status();
    }
}

#[test]
fn a_file_the_reset_cannot_remove_fails_the_run_naming_it_and_resume_finishes() {
    for backend in ["git-cli", "git2"] {
        let r = TestRepo::new();
        r.three_releases();
        r.write("app/new/plugin.py", "BROKEN = True\n").write("app/new/settings.py", "LEVEL = 1\n");
        r.commit_all("release v4: a plugin");
        // A local edit: the snapshot holds it, the commit does not.
        r.write("app/new/settings.py", "LEVEL = 2 # tuned on the server\n");
        let (_dir, cfg) = config(backend);
        let mounted = MountedOver::new(&r.path().join("app/new/plugin.py"));
        // Taken through the mount: what the file shows is what the snapshot keeps.
        let before = crate::common::picture(&r);
        let out = crate::shapes::fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v3"], &[]);
        drop(mounted);
        out.code(1);
        if backend == "git-cli" {
            assert!(
                out.stderr.contains(
                    "`git reset --hard` could not remove 1 file(s) the target does not have: 'app/new/plugin.py': Device or resource busy"
                ),
                "{}",
                out.stderr
            );
        }
        assert_eq!(out.json()["status"], "failed", "{backend}: not `succeeded`");
        let id = out.json()["run_id"].as_str().unwrap().to_owned();
        assert!(r.exists("app/new/plugin.py"), "{backend}: left by the reset");

        crate::shapes::fr(&r, &cfg, &["resume", &id, "--json"], &[]).ok();
        assert!(!r.exists("app/new"), "{backend}: both removed, and their folder");
        assert_eq!(r.head(), r.git(&["rev-parse", "v3"]));
        assert!(r.git(&["status", "--porcelain"]).is_empty(), "{backend}: the tree is v3's");
        crate::shapes::fr(&r, &cfg, &["undo", &id, "--yes"], &[]).ok();
        assert_eq!(crate::common::picture(&r), before, "{backend}: the local edit is back");
    }
}

/// Immutable files the target removes, one of them locally edited: the run is refused before
/// anything changes (it used to fail half-way at the reset, HEAD moved, and the undo failed on
/// them too), naming both. Without the attribute it runs; an immutable file the undo must
/// write back refuses the undo the same way, and once lifted the undo brings the edit back.
#[test]
fn immutable_files_refuse_the_run_and_the_undo_before_anything_changes() {
    let r = TestRepo::new();
    r.three_releases();
    r.write("app/new/plugin.py", "BROKEN = True\n").write("app/new/settings.py", "LEVEL = 1\n");
    r.commit_all("release v4: a plugin");
    r.write("app/new/settings.py", "LEVEL = 2 # tuned on the server\n");
    let before = crate::common::picture(&r);
    let (plugin, settings) = (r.path().join("app/new/plugin.py"), r.path().join("app/new/settings.py"));
    chattr("+i", &plugin);
    chattr("+i", &settings);
    let out = crate::common::fr(&r, &["run", "--fast", "--yes", "--target", "v3"]);
    chattr("-i", &plugin);
    chattr("-i", &settings);
    out.code(4);
    assert!(
        out.stderr.contains("the rollback would have to change 2 path(s) that cannot be changed: `app/new/plugin.py`: immutable (`chattr +i`), `app/new/settings.py`: immutable (`chattr +i`)"),
        "{}",
        out.stderr
    );
    assert_eq!(crate::common::picture(&r), before, "nothing changed");
    let id = crate::common::rollback(&r, "v3");
    // The undo writes `app/new/` back: its folder, made again and made immutable, is in the way.
    std::fs::create_dir(r.path().join("app/new")).unwrap();
    let folder = r.path().join("app/new");
    chattr("+i", &folder);
    let undo = crate::common::fr(&r, &["undo", &id, "--yes"]);
    chattr("-i", &folder);
    undo.code(4);
    assert!(undo.stderr.contains("`app/new`: immutable (`chattr +i`)"), "{}", undo.stderr);
    assert_eq!(r.head(), r.git(&["rev-parse", "v3"]), "the undo changed nothing");
    std::fs::remove_dir(&folder).unwrap();
    crate::common::undo(&r, &id);
    assert_eq!(crate::common::picture(&r), before, "the local edit is back");
}
