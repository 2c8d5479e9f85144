//! Owners after `sudo forge-rollback run` then `sudo forge-rollback undo` on a server where the
//! app's files belong to another user (`www-data`): every file and symlink the snapshot holds
//! comes back with its owner (user and group), and a setuid or setgid file with those bits
//! too (`chown` clears them, so the restore sets the owner first). Before, the restore wrote
//! them all owned by root, and the app could no longer write its own files.
//!
//! These tests give files away with `chown`: they need root (as CI runs them) and fail, saying
//! so, when run as another user.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, lchown};
use std::path::Path;

use rollback_testkit::TestRepo;

use crate::common::picture;
use crate::shapes::{BACKENDS, config, fr, run_id};

/// The app user's ids (no such user needs to exist).
const UID: u32 = 4242;
const GID: u32 = 4343;

/// Panics unless this process runs as root: a test that cannot give files away must not pass
/// as if it had checked owners.
#[track_caller]
fn require_root() {
    let euid = std::fs::metadata("/proc/self").expect("read /proc/self").uid();
    assert!(
        euid == 0,
        "this test gives files away with chown and needs root (CI runs it as root); it runs as uid {euid}\n\
         hint: run it as root, or leave it out with `-E 'not test(owner)'`"
    );
}

/// `chown -hR UID:GID` of everything below `dir` but `.git` (git refuses a repository whose
/// `.git` belongs to another user); `dir` itself is left to root.
fn give_away(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == ".git" {
            continue;
        }
        let path = entry.path();
        lchown(&path, Some(UID), Some(GID)).unwrap();
        if entry.file_type().unwrap().is_dir() {
            give_away(&path);
        }
    }
}

/// Every path below `dir` but `.git`, with its owner and permission bits (`lstat`: a symlink's
/// own owner).
fn owners(dir: &Path) -> BTreeMap<String, (u32, u32, String)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, (u32, u32, String)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_name() == ".git" {
                continue;
            }
            let path = entry.path();
            let m = std::fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.insert(rel, (m.uid(), m.gid(), format!("{:o}", m.mode() & 0o7777)));
            if m.is_dir() {
                walk(root, &path, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

/// The three releases at v3 with local work the rollback to v1 changes, all of it owned by
/// the app user: tracked files edited on the server and clean ones (the reset rewrites
/// `requirements.txt` and deletes `app/payments.py`, which nobody edited: git writes them
/// back as root's), untracked files in folders the rollback removes, a setuid and a setgid
/// program in a folder of root's, an untracked symlink, an ignored `.env`.
fn app_owned_by_another_user() -> TestRepo {
    let r = TestRepo::new();
    r.three_releases();
    r.write("app/main.py", "# hotfix in progress\n")
        .write("app/users.py", "USERS = ['ops']\n")
        .write("notes/incident.md", "users report 500\n")
        .write("uploads/avatar.png", "png")
        .write("bin/tool", "#!/bin/sh\n")
        .write("bin/group-tool", "#!/bin/sh\n")
        .write(".env", "SECRET=1\n")
        .symlink("current.py", "app/main.py");
    give_away(r.path());
    // A folder of root's holding files of the app's: it comes back root's, not the app's.
    lchown(r.path().join("bin"), Some(0), Some(0)).unwrap();
    // After the chown: it clears these bits.
    r.chmod("bin/tool", 0o4755).chmod("bin/group-tool", 0o2750);
    r
}

/// `run --fast` to v1 then `undo`, as root: owners, modes and content are back exactly, for
/// every path of the tree.
#[test]
fn undo_as_root_gives_back_every_owner() {
    require_root();
    for backend in BACKENDS {
        let r = app_owned_by_another_user();
        let (_dir, cfg) = config(backend);
        let before = picture(&r);
        let owners_before = owners(r.path());
        assert_eq!(owners_before["bin/tool"], (UID, GID, "4755".to_owned()), "{backend}: the setup");
        assert_eq!(owners_before["current.py"].0, UID, "{backend}: the setup");
        assert_eq!(owners_before["bin"].0, 0, "{backend}: the setup");
        let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
        out.ok();
        assert!(!r.exists("app/payments.py") && !r.exists("uploads"), "{backend}: the rollback ran");
        let undone = fr(&r, &cfg, &["undo", &run_id(&out), "--yes", "--json"], &[]);
        undone.ok();
        assert_eq!(undone.json()["status"], "succeeded", "{backend}: {}", undone.stderr);
        assert_eq!(picture(&r), before, "{backend}: the undo gives back the tree");
        assert_eq!(owners(r.path()), owners_before, "{backend}: owners and modes are back exactly");
    }
}

/// The snapshot records each file's and symlink's owner (so that `undo` can give it back),
/// and nothing for paths that were absent.
#[test]
fn the_snapshot_records_owners() {
    require_root();
    let r = app_owned_by_another_user();
    let (_dir, cfg) = config("git-cli");
    let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
    out.ok();
    let backup = out.json()["backup_id"].as_str().expect("a backup id").to_owned();
    let manifest = crate::common::state_dir(&r).join("backups/snapshots").join(format!("{backup}.json"));
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let entries = m["entries"].as_array().unwrap();
    let owner_of = |path: &str| {
        let e = entries.iter().find(|e| e["path"] == path).unwrap_or_else(|| panic!("`{path}` captured: {m}"));
        e["owner"].clone()
    };
    let app = serde_json::json!({ "uid": UID, "gid": GID });
    for path in ["app/main.py", "app/payments.py", "notes/incident.md", "current.py"] {
        assert_eq!(owner_of(path), app, "`{path}`");
    }
    // Its folder is root's: recorded, as it differs from the file's owner.
    let root_folder = serde_json::json!({ "uid": UID, "gid": GID, "folders": [{ "uid": 0, "gid": 0 }] });
    assert_eq!(owner_of("bin/tool"), root_folder);
    assert!(
        entries.iter().filter(|e| e["type"] == "absent").all(|e| e.get("owner").is_none()),
        "absent paths have no owner: {m}"
    );
}

/// v1 with `app/legacy/old.py` and `ops/run.sh`, v2 without them; every path the app's but `ops/`,
/// a folder of root's. At v2.
fn release_that_drops_files() -> TestRepo {
    let r = TestRepo::new();
    r.write("app/main.py", "v1\n")
        .write("app/legacy/old.py", "old\n")
        .write("README.md", "sample app\n")
        .write("ops/run.sh", "#!/bin/sh\n")
        .symlink("current.py", "app/main.py");
    r.commit_all("v1");
    r.git(&["tag", "v1"]);
    r.remove("app/legacy/old.py").remove("ops/run.sh").remove("current.py");
    r.write("app/main.py", "v2\n").symlink("current.py", "README.md");
    r.commit_all("v2");
    give_away(r.path());
    // A folder of root's (left empty by v2): what the target adds there has no other owner
    // to take.
    lchown(r.path().join("ops"), Some(0), Some(0)).unwrap();
    r
}

/// The owners after the rollback to v1 of [`release_that_drops_files`].
#[track_caller]
fn assert_rolled_back_owners(r: &TestRepo, backend: &str) {
    assert_eq!(r.read("app/legacy/old.py"), b"old\n", "{backend}: the rollback ran");
    let now = owners(r.path());
    for path in ["app/main.py", "app/legacy", "app/legacy/old.py", "current.py", "README.md"] {
        assert_eq!((now[path].0, now[path].1), (UID, GID), "{backend}: `{path}` is the app's: {now:?}");
    }
    assert_eq!((now["ops/run.sh"].0, now["ops/run.sh"].1), (0, 0), "{backend}: in a folder of root's");
}

/// A reset killed right after git wrote the target, before the owners were given, then
/// resumed: what git wrote is the app's all the same. The owners were taken with the snapshot,
/// before anything changed; looked for after the crash, git's own new folder and files would
/// have passed for what was there, and stayed root's.
#[test]
fn a_reset_killed_after_git_wrote_gives_the_owners_on_resume() {
    require_root();
    for backend in BACKENDS {
        let r = release_that_drops_files();
        let (_dir, cfg) = config(backend);
        let kill = [("FORGE_ROLLBACK_FAILPOINT", "written:reset")];
        let killed = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &kill);
        assert_eq!(killed.code, None, "{backend}: killed by a signal\n{}", killed.stderr);
        assert_eq!(owners(r.path())["app/legacy/old.py"].0, 0, "{backend}: git wrote it root's");
        let runs = fr(&r, &cfg, &["runs", "list", "--json"], &[]).json();
        let id = runs[0]["run_id"].as_str().unwrap().to_owned();
        fr(&r, &cfg, &["resume", &id, "--json"], &[]).ok();
        assert_rolled_back_owners(&r, backend);
    }
}

/// `run --fast` as root on an app that belongs to another user: what the reset writes is the
/// app's, not root's (git writes root's): a file the target changes keeps its owner, one it
/// adds back (and the folder git makes for it) gets the owner of the folder it lands in, and a
/// symlink the target changes keeps its owner too. A file in a folder of root's that nothing
/// owned before stays root's. Before, every one was root's after the rollback.
#[test]
fn a_rollback_as_root_leaves_what_the_reset_writes_to_the_apps_user() {
    require_root();
    for backend in BACKENDS {
        let r = release_that_drops_files();
        let (_dir, cfg) = config(backend);
        fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]).ok();
        assert_rolled_back_owners(&r, backend);
    }
}

/// The binary with `args`, as root without `CAP_CHOWN` (`setpriv`, util-linux): root that may
/// not give files away, as in a user namespace without the owner's id or on NFS with
/// `root_squash`.
fn fr_without_chown(r: &TestRepo, cfg: &str, args: &[&str]) -> crate::common::Out {
    let mut cmd = std::process::Command::new("setpriv");
    rollback_testkit::clean_git_env(&mut cmd);
    cmd.args(["--bounding-set", "-chown", "--", env!("CARGO_BIN_EXE_forge-rollback"), "-C"])
        .arg(r.path())
        .args(["--config", cfg])
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null());
    let o = cmd.output().expect("run setpriv (util-linux)");
    crate::common::Out {
        code: o.status.code(),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// Root that may not give files away: the run and its undo do not fail half-way over owners.
/// Every file comes back with its content and mode; what root wrote stays root's, and both
/// say so in a warning. Before, the reset step failed after `git reset --hard` had run, and
/// the undo failed after its removals, without putting the local edits back.
#[test]
fn root_that_may_not_give_files_away_warns_and_goes_on() {
    require_root();
    for backend in BACKENDS {
        let r = app_owned_by_another_user();
        let (_dir, cfg) = config(backend);
        let before = picture(&r);
        let out = fr_without_chown(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"]);
        out.ok();
        // (libgit2 rewrites a changed file in place, keeping its owner; git writes a new one.)
        if owners(r.path())["app/main.py"].0 == 0 {
            assert!(
                out.stderr.contains("left root's: this system does not let root give files away"),
                "{backend}: {}",
                out.stderr
            );
        }
        let undone = fr_without_chown(&r, &cfg, &["undo", &run_id(&out), "--yes", "--json"]);
        undone.ok();
        assert_eq!(undone.json()["status"], "succeeded", "{backend}: {}", undone.stderr);
        assert!(undone.stderr.contains("left root's"), "{backend}: {}", undone.stderr);
        assert_eq!(picture(&r), before, "{backend}: content and modes are back");
        assert_eq!(owners(r.path())["app/main.py"].0, 0, "{backend}: root's, as the warning says");
    }
}

/// A file the rollback turns into a folder (v2 has a file `conf`, v1 a folder `conf/` with
/// `app.ini`): git makes the folder where the file was, and both are the app's, like the file
/// they replace.
#[test]
fn a_folder_git_makes_where_a_file_was_is_the_apps() {
    require_root();
    for backend in BACKENDS {
        let r = TestRepo::new();
        r.write("conf/app.ini", "[app]\n").write("README.md", "x\n");
        r.commit_all("v1");
        r.git(&["tag", "v1"]);
        r.remove("conf/app.ini");
        std::fs::remove_dir(r.path().join("conf")).unwrap();
        r.write("conf", "app = 1\n");
        r.commit_all("v2");
        give_away(r.path());
        let (_dir, cfg) = config(backend);
        fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]).ok();
        let now = owners(r.path());
        for path in ["conf", "conf/app.ini"] {
            assert_eq!((now[path].0, now[path].1), (UID, GID), "{backend}: `{path}`: {now:?}");
        }
    }
}
