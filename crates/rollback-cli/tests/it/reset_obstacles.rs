//! Files a rollback cannot change. An immutable or append-only file (`chattr +i`, `+a`) or
//! folder, or a folder the user may not write, is found before anything changes, and the run
//! or undo is refused (exit 4). A file the reset cannot remove for another reason (a file
//! mounted over): `git reset --hard` only warns and exits 0, and the run used to report
//! success with the broken release's file still in the tree. It now fails, naming the file,
//! and `resume` finishes once the obstacle is gone.

use std::os::unix::fs::MetadataExt as _;

use rollback_testkit::TestRepo;

use crate::common::Out;
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
    let plan = crate::common::fr(&r, &["plan", "--fast", "--json", "--target", "v3"]);
    let out = crate::common::fr(&r, &["run", "--fast", "--yes", "--target", "v3"]);
    chattr("-i", &plugin);
    chattr("-i", &settings);
    let plan = plan.ok().json();
    assert!(
        not_changeable(&plan).contains("`app/new/plugin.py`: immutable (`chattr +i`)"),
        "plan says it first: {plan}"
    );
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

/// The binary run as a user that folder modes bind: this one, or `nobody` (uid and gid 65534)
/// when the tests run as root (no mode binds root). The work tree and `home` are given to
/// `nobody` then, and the binary is linked (else copied) into `home` when `nobody` cannot
/// reach it where cargo built it.
struct NotRoot {
    uid: Option<u32>,
    bin: std::path::PathBuf,
    home: tempfile::TempDir,
}

impl NotRoot {
    fn new(r: &TestRepo) -> Self {
        use std::os::unix::process::CommandExt as _;
        let home = tempfile::tempdir().unwrap();
        let built = std::path::PathBuf::from(env!("CARGO_BIN_EXE_forge-rollback"));
        if std::fs::metadata("/proc/self").unwrap().uid() != 0 {
            return Self { uid: None, bin: built, home };
        }
        for dir in [r.path(), home.path()] {
            let st = std::process::Command::new("chown").args(["-R", "65534:65534"]).arg(dir).status().unwrap();
            assert!(st.success(), "chown -R nobody {}", dir.display());
        }
        let reachable = std::process::Command::new(&built).arg("--version").uid(65534).gid(65534).output().is_ok();
        let bin = if reachable {
            built
        } else {
            // Linked after the `chown`: the built binary keeps its owner.
            let to = home.path().join("forge-rollback");
            std::fs::hard_link(&built, &to).or_else(|_| std::fs::copy(&built, &to).map(drop)).unwrap();
            to
        };
        Self { uid: Some(65534), bin, home }
    }

    /// The tree, HEAD and `git status` (git run as the user: git refuses, to root, a
    /// repository another user owns).
    fn picture(&self, r: &TestRepo) -> (rollback_testkit::TreeState, String, String) {
        let git = |args: &[&str]| {
            use std::os::unix::process::CommandExt as _;
            let mut cmd = std::process::Command::new("git");
            rollback_testkit::clean_git_env(&mut cmd).arg("-C").arg(r.path()).args(args);
            if let Some(uid) = self.uid {
                cmd.uid(uid).gid(uid);
            }
            let o = cmd.output().unwrap();
            assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        (r.tree(), git(&["rev-parse", "HEAD"]), git(&["status", "--porcelain", "--untracked-files=all", "--ignored"]))
    }

    fn run(&self, r: &TestRepo, backend: &str, args: &[&str]) -> Out {
        use std::os::unix::process::CommandExt as _;
        let cfg = self.home.path().join(format!("{backend}.toml"));
        if !cfg.exists() {
            std::fs::write(&cfg, format!("[vcs]\nbackend = \"{backend}\"\n")).unwrap();
            if let Some(uid) = self.uid {
                std::os::unix::fs::chown(&cfg, Some(uid), Some(uid)).unwrap();
            }
        }
        let mut cmd = std::process::Command::new(&self.bin);
        rollback_testkit::clean_git_env(&mut cmd);
        cmd.env("NO_COLOR", "1").env("HOME", self.home.path()).arg("-C").arg(r.path()).arg("--config").arg(&cfg);
        cmd.args(args).stdin(std::process::Stdio::null());
        if let Some(uid) = self.uid {
            cmd.uid(uid).gid(uid);
        }
        let o = cmd.output().expect("run forge-rollback");
        Out {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// Not root: an untracked file in a folder the user keeps read-only (`chmod 555`), then a
/// tracked file the undo writes back into a folder made read-only after the run. Each is found
/// before anything changes: the run and the undo are refused (exit 4) naming the folder, and
/// both go through once it is writable. Before, the run moved HEAD and the tree to the target
/// and then failed to remove the file, and its undo failed after its own reset.
#[test]
fn folders_the_user_may_not_write_refuse_the_run_and_the_undo_before_anything_changes() {
    for backend in ["git2", "git-cli"] {
        let r = TestRepo::new();
        r.write("app/main.py", "v1\n");
        r.commit_all("c1");
        r.git(&["tag", "v1"]);
        r.write("app/main.py", "v2\n").write("app/new.py", "new\n");
        r.commit_all("c2");
        r.write("rodir/x", "kept read-only\n");
        let user = NotRoot::new(&r);
        chmod(&r, "rodir", 0o555);
        let before = user.picture(&r);
        // `plan` says it first.
        let plan = user.run(&r, backend, &["plan", "--fast", "--json", "--target", "v1"]).ok().json();
        assert!(not_changeable(&plan).contains("may not write: `rodir` (mode 0555"), "{backend}: {plan}");
        let refused = user.run(&r, backend, &["run", "--fast", "--yes", "--target", "v1"]);
        refused.code(4);
        assert!(refused.stderr.contains("may not write: `rodir` (mode 0555"), "{backend}: {}", refused.stderr);
        assert!(refused.stderr.contains("hint: nothing was changed"), "{backend}: {}", refused.stderr);
        assert_eq!(user.picture(&r), before, "{backend}: nothing changed");

        chmod(&r, "rodir", 0o755);
        let before = user.picture(&r);
        let out = user.run(&r, backend, &["run", "--fast", "--yes", "--json", "--target", "v1"]);
        out.ok();
        assert!(!r.exists("rodir/x") && !r.exists("app/new.py"), "{backend}");
        let run = out.json()["run_id"].as_str().unwrap().to_owned();
        chmod(&r, "app", 0o555);
        let moved = user.picture(&r);
        let refused = user.run(&r, backend, &["undo", &run, "--yes"]);
        refused.code(4);
        assert!(refused.stderr.contains("may not write: `app` (mode 0555"), "{backend}: {}", refused.stderr);
        assert_eq!(user.picture(&r), moved, "{backend}: nothing changed");
        chmod(&r, "app", 0o755);
        user.run(&r, backend, &["undo", &run, "--yes"]).ok();
        assert_eq!(user.picture(&r), before, "{backend}: the state from before");
    }
}

fn chmod(r: &TestRepo, path: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(r.path().join(path), std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The message of the plan's `files_not_changeable` risk (high), empty when it has none.
fn not_changeable(plan: &serde_json::Value) -> String {
    plan["risks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["code"] == "files_not_changeable" && x["severity"] == "high")
        .map(|x| x["message"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}
