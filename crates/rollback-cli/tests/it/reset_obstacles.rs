//! A file the reset cannot remove (an immutable file here; a folder the user may not write,
//! or a file mounted over, fail the same way). `git reset --hard` only warns and exits 0:
//! the run used to report success with the broken release's file still in the tree. It now
//! fails, naming the file, and `resume` finishes once the obstacle is gone.

use rollback_testkit::TestRepo;

use crate::shapes::config;

/// `chattr` on `path` (`+i` or `-i`).
fn chattr(flag: &str, path: &std::path::Path) {
    let st = std::process::Command::new("chattr").arg(flag).arg(path).status().expect("chattr (e2fsprogs)");
    assert!(st.success(), "chattr {flag} needs root and a file system with attributes (ext4), as in CI");
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
        let before = crate::common::picture(&r);
        let (plugin, settings) = (r.path().join("app/new/plugin.py"), r.path().join("app/new/settings.py"));
        chattr("+i", &plugin);
        chattr("+i", &settings);
        let (_dir, cfg) = config(backend);
        let out = crate::shapes::fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v3"], &[]);
        chattr("-i", &plugin);
        chattr("-i", &settings);
        out.code(1);
        if backend == "git-cli" {
            assert!(
                out.stderr.contains(
                    "`git reset --hard` could not remove 2 file(s) the target does not have: 'app/new/plugin.py': Operation not permitted; 'app/new/settings.py': Operation not permitted"
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
