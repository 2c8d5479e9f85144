//! `rehearse` works on its copy and only there: a repository whose configuration or layout
//! would lead git from the copy back to the real repository, hooks that reach outside, and
//! special files the real run meets.

use std::os::unix::fs::PermissionsExt;

use rollback_testkit::TestRepo;

use crate::common::{fr, messy_repo};
use crate::rehearse::fingerprint;

/// `core.worktree` naming the repository's own work tree (valid, and a no-op for git) was
/// copied into the copy's `.git/config`: git then reset and cleaned the REAL tree during the
/// rehearsal, and the backup of the work it removed went away with the copy.
#[test]
fn a_core_worktree_setting_does_not_lead_the_rehearsal_to_the_real_tree() {
    let (r, ids) = messy_repo();
    r.git(&["config", "core.worktree", r.path().to_str().unwrap()]);
    let before = fingerprint(r.path());
    let out = fr(&r, &["rehearse", "--fast", "--target", "v1", "--json"]);
    out.ok();
    assert_eq!(out.json()["passed"], true, "{}", out.stdout);
    assert_eq!(fingerprint(r.path()), before, "nothing real changed");
    assert_eq!(r.head(), ids[2]);
}

/// A `.git` that is a symlink to the git folder kept elsewhere: the copy held the link, so the
/// rehearsal moved the real branch, and its runs landed in the real state folder. Refused like
/// a git folder kept elsewhere (exit 2), with nothing changed on either side.
#[test]
fn a_symlinked_git_folder_is_refused() {
    let (r, _) = messy_repo();
    let store = tempfile::tempdir().unwrap();
    let git_dir = store.path().join("app.git");
    std::fs::rename(r.path().join(".git"), &git_dir).unwrap();
    std::os::unix::fs::symlink(&git_dir, r.path().join(".git")).unwrap();
    let before = (fingerprint(r.path()), fingerprint(store.path()));
    let out = fr(&r, &["rehearse", "--fast", "--target", "v1"]);
    out.code(2);
    assert!(out.stderr.contains("keeps its git folder elsewhere"), "{}", out.stderr);
    assert_eq!((fingerprint(r.path()), fingerprint(store.path())), before);
}

/// The repository's git hooks (which notify, deploy or log) do not run on the copy; the same
/// hooks run for a real rollback.
#[test]
fn git_hooks_do_not_run_for_a_rehearsal() {
    let (r, _) = messy_repo();
    let outside = tempfile::tempdir().unwrap();
    let log = outside.path().join("hooks.log");
    for hook in ["post-checkout", "reference-transaction", "post-index-change"] {
        let path = r.path().join(".git/hooks").join(hook);
        std::fs::write(&path, format!("#!/bin/sh\necho {hook} >> '{}'\n", log.display())).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = fr(&r, &["rehearse", "--fast", "--target", "v1", "--json"]);
    out.ok();
    assert!(!log.exists(), "hooks ran: {}", std::fs::read_to_string(&log).unwrap_or_default());
    crate::common::rollback(&r, "v1");
    assert!(log.exists(), "the same hooks run for a real rollback");
}

/// A FIFO where the target has a file: the real run's snapshot cannot take it and the run
/// fails having changed nothing; the rehearsal used to leave FIFOs out of its copy and pass.
#[test]
fn a_fifo_where_the_target_has_a_file_fails_the_rehearsal_as_it_fails_the_run() {
    let r = TestRepo::new();
    r.write("app.py", "v1\n").write("legacy.txt", "old\n");
    r.commit_all("v1");
    r.git(&["tag", "v1"]);
    r.remove("legacy.txt").write("app.py", "v2\n");
    r.commit_all("v2");
    let fifo = r.path().join("legacy.txt");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a NUL-terminated path that lives for the call.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(rc, 0);
    // (No fingerprint here: it reads every file, and a FIFO blocks its reader.)
    let before =
        (r.head(), r.git(&["status", "--porcelain=v2", "--untracked-files=all"]), fingerprint(&r.path().join(".git")));
    let rehearsal = fr(&r, &["rehearse", "--fast", "--target", "v1", "--json"]);
    rehearsal.code(1);
    assert_eq!(rehearsal.json()["passed"], false, "{}", rehearsal.stdout);
    let after =
        (r.head(), r.git(&["status", "--porcelain=v2", "--untracked-files=all"]), fingerprint(&r.path().join(".git")));
    assert_eq!(after, before);
    let run = fr(&r, &["run", "--fast", "--yes", "--target", "v1"]);
    run.code(1);
    assert!(run.stderr.contains("FIFO"), "{}", run.stderr);
}

/// SIGTERM (or Ctrl-C) during a rehearsal stops it at the next step boundary of the copy's run,
/// removes the copy (its `.env` files, its database copy) and exits 5. It used to die by the
/// signal and leave the copy in `$TMPDIR`.
#[test]
fn a_signal_stops_the_rehearsal_and_removes_its_copy() {
    use std::os::unix::process::CommandExt as _;
    let (r, _) = messy_repo();
    let started = r.path().join(".git/filter-started");
    crate::lock::slow_filter(&r, &format!("touch '{}'", started.display()), 2);
    let tmp = tempfile::tempdir().unwrap();
    let out_dir = tempfile::tempdir().unwrap();
    let mut cmd = crate::common::command(r.path(), &["rehearse", "--fast", "--target", "v1"]);
    cmd.env("TMPDIR", tmp.path())
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(out_dir.path().join("stderr")).unwrap());
    let mut child = cmd.spawn().unwrap();
    crate::common::wait_until("git to run the filter on the copy", std::time::Duration::from_secs(60), || {
        started.exists()
    });
    assert!(std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap().success());
    let status = child.wait().unwrap();
    let stderr = std::fs::read_to_string(out_dir.path().join("stderr")).unwrap();
    assert_eq!(status.code(), Some(5), "{status:?}: {stderr}");
    assert!(stderr.contains("nothing of the rehearsal's copy is left"), "{stderr}");
    // There is no real run to resume or undo: the notice speaks of the copy.
    assert!(stderr.contains("stopping the rehearsal at its next boundary and removing its copy"), "{stderr}");
    assert!(!stderr.contains("`resume` or `undo`"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "left in $TMPDIR: {left:?}");
}

/// A stale `index.lock` in the real repository: exit 3 naming the real lock file, with nothing
/// copied. The copy used to be made first and carry the lock along, and the message named the
/// copy's file, deleted by then.
#[test]
fn a_stale_index_lock_is_named_where_it_is_and_nothing_is_copied() {
    let (r, _) = messy_repo();
    let lock = r.path().join(".git/index.lock");
    std::fs::write(&lock, "").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = crate::common::command(r.path(), &["rehearse", "--fast", "--target", "v1"]);
    let out = cmd.env("TMPDIR", tmp.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains(&format!("remove `{}`", lock.display())), "{stderr}");
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0, "nothing copied");
}

/// A `git clone --shared` whose `objects/info/alternates` names the lender by a relative path:
/// the rehearsal used to fail (the path does not resolve from the copy) where the run works.
#[test]
fn a_relative_alternates_path_works_on_the_copy() {
    let (lender, _) = messy_repo();
    let base = tempfile::tempdir().unwrap();
    // Deeper than the copy: the relative path does not happen to resolve from there too.
    let clone = base.path().join("deep/er/still/clone");
    std::fs::create_dir_all(clone.parent().unwrap()).unwrap();
    let st = std::process::Command::new("git")
        .args(["clone", "-q", "--shared"])
        .arg(lender.path())
        .arg(&clone)
        .env_remove("GIT_DIR")
        .status()
        .unwrap();
    assert!(st.success());
    let alternates = clone.join(".git/objects/info/alternates");
    let absolute = std::fs::read_to_string(&alternates).unwrap();
    let relative = pathdiff(std::path::Path::new(absolute.trim()), &clone.join(".git/objects"));
    std::fs::write(&alternates, format!("{}\n", relative.display())).unwrap();
    let out = crate::common::run_in(&clone, &["rehearse", "--fast", "--target", "v1", "--json"], &[]);
    out.ok();
    assert_eq!(out.json()["passed"], true, "{}", out.stdout);
}

/// `to` relative to `from` (both absolute, no symlinks): `../../lender/.git/objects`.
fn pathdiff(to: &std::path::Path, from: &std::path::Path) -> std::path::PathBuf {
    let (to, from): (Vec<_>, Vec<_>) = (to.components().collect(), from.components().collect());
    let common = to.iter().zip(&from).take_while(|(a, b)| a == b).count();
    let mut out = std::path::PathBuf::new();
    for _ in common..from.len() {
        out.push("..");
    }
    for c in &to[common..] {
        out.push(c);
    }
    out
}
