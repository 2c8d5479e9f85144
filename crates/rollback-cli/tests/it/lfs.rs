//! FILES2-5: files the reset writes that are stored in git LFS, whose objects are not on this
//! machine (a clone made after that release). git's LFS filter downloads them while `git reset
//! --hard` writes the work tree; with the LFS server down the reset stopped half-way, the live
//! release's files the target lacks already deleted. Now `plan` says it, and the `git-cli` run
//! fetches them first (`git lfs fetch`), or is refused with nothing changed. Real git-lfs, with
//! a `file://` remote (git-lfs's standalone transfer) as the LFS server that is up.

use std::process::Command;

use rollback_testkit::TestRepo;

use crate::common::{fr, picture};

/// The tests need the real git-lfs; `scripts/test.sh` installs it (apt-get, as root).
fn require_git_lfs() {
    let found = Command::new("git").args(["lfs", "version"]).output().is_ok_and(|o| o.status.success());
    assert!(
        found,
        "git-lfs is not installed: run the tests through `scripts/test.sh` (it installs it with apt-get as root), or `apt-get install git-lfs`"
    );
}

/// v1 and v2 (HEAD) each with a `model.bin` in LFS, pushed to a bare remote; then v1's object
/// is removed from this clone's LFS store (as in a clone made after v2), and a local edit and
/// an untracked file are made on top. The remote's folder is returned with the repository.
fn lfs_repo() -> (TestRepo, tempfile::TempDir) {
    require_git_lfs();
    let r = TestRepo::new();
    let server = tempfile::tempdir().unwrap();
    let remote = server.path().join("remote.git");
    r.git(&["init", "-q", "--bare", remote.to_str().unwrap()]);
    r.git(&["lfs", "install", "--local"]);
    r.git(&["lfs", "track", "*.bin"]);
    r.write("model.bin", "weights of v1\n").write("main.py", "print('v1')\n");
    r.commit_all("v1");
    r.git(&["tag", "v1"]);
    r.write("model.bin", "weights of v2\n").write("new.py", "print('new in v2')\n");
    r.commit_all("v2");
    r.git(&["remote", "add", "origin", &format!("file://{}", remote.display())]);
    r.git(&["push", "-q", "origin", "main", "--tags"]);
    let pointer = r.git(&["cat-file", "blob", "v1:model.bin"]);
    let oid = pointer.lines().find_map(|l| l.strip_prefix("oid sha256:")).unwrap().to_owned();
    std::fs::remove_file(r.path().join(".git/lfs/objects").join(&oid[..2]).join(&oid[2..4]).join(&oid)).unwrap();
    r.write("main.py", "print('v2, edited here')\n").write("notes.txt", "untracked\n");
    (r, server)
}

#[test]
fn an_lfs_object_not_here_with_the_server_down_is_refused_before_anything_changes() {
    let (r, _server) = lfs_repo();
    // The outage: the LFS server does not answer.
    r.git(&["config", "lfs.url", "http://127.0.0.1:9/"]);
    let plan = fr(&r, &["plan", "--fast", "--target", "v1", "--json"]).ok().json();
    let risk = plan["risks"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|x| x["code"] == "lfs_objects_not_fetched")
        .unwrap_or_else(|| panic!("{plan}"));
    assert!(risk["message"].as_str().unwrap().contains("1 file(s) the reset writes are stored in git LFS"), "{risk}");

    let before = picture(&r);
    let out = fr(&r, &["run", "--fast", "--yes", "--target", "v1"]);
    out.code(4);
    assert!(
        out.stderr.contains(
            "1 file(s) the reset writes are stored in git LFS and their objects are not on this machine (`model.bin` first), and fetching them failed"
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("git lfs fetch origin"), "{}", out.stderr);
    assert_eq!(picture(&r), before, "nothing changed: new.py, the edit and the untracked file are all there");
}

#[test]
fn an_lfs_object_not_here_is_fetched_first_when_the_server_answers() {
    let (r, _server) = lfs_repo();
    let out = fr(&r, &["run", "--fast", "--yes", "--json", "--target", "v1"]);
    let run = out.ok().json();
    assert_eq!(std::fs::read_to_string(r.path().join("model.bin")).unwrap(), "weights of v1\n");
    assert!(!r.path().join("new.py").exists());
    // The undo gives back v2's tree with the local work.
    fr(&r, &["undo", run["run_id"].as_str().unwrap(), "--yes"]).ok();
    assert_eq!(std::fs::read_to_string(r.path().join("model.bin")).unwrap(), "weights of v2\n");
    assert_eq!(std::fs::read_to_string(r.path().join("main.py")).unwrap(), "print('v2, edited here')\n");
    assert_eq!(std::fs::read_to_string(r.path().join("notes.txt")).unwrap(), "untracked\n");
}

/// `lfs.fetchexclude` (a server that needs no textures, say): git's LFS filter writes the
/// excluded files as their pointers, fetching nothing, so `git reset --hard` goes through. The
/// run was refused ("`origin` did not send them") although git would have written them.
#[test]
fn a_file_the_lfs_fetch_settings_leave_out_is_written_as_its_pointer_as_git_does() {
    let (r, _server) = lfs_repo();
    r.git(&["config", "lfs.fetchexclude", "*.bin"]);
    let plan = fr(&r, &["plan", "--fast", "--target", "v1", "--json"]).ok().json();
    let risk = plan["risks"].as_array().into_iter().flatten().find(|x| x["code"] == "lfs_objects_not_fetched");
    assert!(
        risk.is_some_and(|x| x["message"]
            .as_str()
            .unwrap()
            .contains("`lfs.fetchexclude` leave out are written as their pointers")),
        "{plan}"
    );

    let run = fr(&r, &["run", "--fast", "--yes", "--json", "--target", "v1"]).ok().json();
    let pointer = r.git(&["cat-file", "blob", "v1:model.bin"]);
    assert_eq!(
        std::fs::read_to_string(r.path().join("model.bin")).unwrap().trim_end(),
        pointer,
        "the pointer, as git writes it"
    );
    assert!(!r.path().join("new.py").exists());
    fr(&r, &["undo", run["run_id"].as_str().unwrap(), "--yes"]).ok();
    assert_eq!(std::fs::read_to_string(r.path().join("model.bin")).unwrap(), "weights of v2\n");
    assert_eq!(std::fs::read_to_string(r.path().join("main.py")).unwrap(), "print('v2, edited here')\n");
}

/// The same, with the LFS server down: the excluded file needs no server, so the run goes
/// through; a file the settings do not leave out is still refused, nothing changed.
#[test]
fn with_the_lfs_server_down_only_the_files_the_fetch_settings_leave_in_are_refused() {
    let (r, _server) = lfs_repo();
    r.git(&["config", "lfs.url", "http://127.0.0.1:9/"]);
    r.git(&["config", "lfs.fetchexclude", "assets/*"]);
    let before = picture(&r);
    let out = fr(&r, &["run", "--fast", "--yes", "--target", "v1"]);
    out.code(4);
    assert!(out.stderr.contains("(`model.bin` first), and fetching them failed"), "{}", out.stderr);
    assert_eq!(picture(&r), before, "nothing changed");

    r.git(&["config", "lfs.fetchexclude", "*.bin"]);
    fr(&r, &["run", "--fast", "--yes", "--target", "v1"]).ok();
    assert!(std::fs::read_to_string(r.path().join("model.bin")).unwrap().starts_with("version https://git-lfs"));
}
