//! `run --fast` then `undo` gives back a byte-identical tree (content, mode, symlink target),
//! the same HEAD, branch and index, for every kind of local state.

use std::os::unix::ffi::OsStrExt;

use rollback_testkit::TestRepo;

use crate::common::{Picture, fr, messy_repo, picture, rollback, undo};

/// Rolls back to `target`, checks `after` on the rolled-back tree, undoes, and checks that
/// everything is as before.
#[track_caller]
fn round_trip(repo: &TestRepo, target: &str, after: impl FnOnce(&TestRepo)) -> (Picture, String) {
    let before = picture(repo);
    let run_id = rollback(repo, target);
    let target_id = repo.git(&["rev-parse", &format!("{target}^{{commit}}")]);
    assert_eq!(repo.head(), target_id, "HEAD moved to the target");
    assert_eq!(repo.branch(), before.branch, "still on the same branch");
    after(repo);
    let u = undo(repo, &run_id);
    assert_eq!(u["status"], "succeeded");
    assert_eq!(u["undo_of"], run_id.as_str());
    let now = picture(repo);
    assert_eq!(now, before, "undo restores the exact prior state");
    (before, run_id)
}

#[test]
fn messy_state_round_trips_and_rollback_matches_target() {
    let (r, [v1, _, _]) = messy_repo();
    round_trip(&r, "v1", |r| {
        assert_eq!(r.read("app/main.py"), b"def status():\n    return {\"status\": \"healthy\"}\n");
        assert!(!r.exists("app/users.py") && !r.exists("app/payments.py"));
        assert!(!r.exists("app/new_staged.py"), "staged new file removed by the reset");
        assert!(!r.exists("notes"), "untracked folder removed, empty parents too");
        assert!(!r.exists("app/__pycache__"), "caches cleared");
        assert_eq!(r.read(".env"), b"SECRET=1\n", "ignored files left alone");
        assert_eq!(r.git(&["status", "--porcelain"]), "", "clean tree at the target");
    });
    assert_eq!(r.head(), r.git(&["rev-parse", "v3"]));
    assert_ne!(r.head(), v1);
}

#[test]
fn untracked_file_at_a_path_the_target_tracks() {
    let r = TestRepo::new();
    r.write("app.py", "v1\n").write("legacy/config.py", "LEGACY = True\n");
    r.commit_all("v1");
    r.git(&["tag", "good"]);
    r.git(&["rm", "-q", "-r", "legacy"]);
    r.write("app.py", "v2\n");
    r.commit_all("v2 drops legacy");
    // Someone recreated the file by hand: untracked now, tracked by the target.
    r.write("legacy/config.py", "LEGACY = 'hand edited, precious'\n");
    round_trip(&r, "good", |r| {
        assert_eq!(r.read("legacy/config.py"), b"LEGACY = True\n", "the target's version");
    });
    assert_eq!(r.read("legacy/config.py"), b"LEGACY = 'hand edited, precious'\n");
}

#[test]
fn ignored_file_at_a_path_the_target_tracks() {
    let r = TestRepo::new();
    r.write("app.py", "v1\n").write("settings.ini", "debug=false\n");
    r.commit_all("v1 tracks settings.ini");
    r.git(&["tag", "good"]);
    r.git(&["rm", "-q", "--cached", "settings.ini"]);
    r.write(".gitignore", "settings.ini\n");
    r.commit_all("v2 ignores settings.ini");
    r.write("settings.ini", "debug=true\nsecret=local\n");
    round_trip(&r, "good", |r| assert_eq!(r.read("settings.ini"), b"debug=false\n"));
}

#[test]
fn odd_file_names_survive() {
    let r = TestRepo::new();
    r.write("a.txt", "1\n");
    r.commit_all("base");
    r.git(&["tag", "good"]);
    r.write("tracked name with spaces.txt", "t\n").write("caf\u{e9}/\u{65e5}\u{672c}.py", "x = 1\n");
    r.commit_all("add odd tracked names");
    r.write("tracked name with spaces.txt", "modified\n")
        .write("new\nline.txt", "newline in name\n")
        .write("quote\"s and 'single'.txt", "quotes\n")
        .write("tab\there.txt", "tab\n")
        .write("caf\u{e9}/\u{65e5}\u{672c}.py", "x = 2\n")
        .write("dir with space/nested/\u{1f600}.txt", "emoji\n");
    r.write(std::ffi::OsStr::from_bytes(b"latin1-\xe9.txt"), "not utf-8 name\n");
    round_trip(&r, "good", |r| {
        assert!(!r.exists("new\nline.txt") && !r.exists("tab\there.txt"));
        assert!(!r.exists(std::ffi::OsStr::from_bytes(b"latin1-\xe9.txt")));
        assert!(!r.exists("caf\u{e9}"));
    });
}

#[test]
fn symlinks_and_executable_bits_survive() {
    let r = TestRepo::new();
    r.write("run.sh", "#!/bin/sh\necho v1\n").chmod("run.sh", 0o755).symlink("current", "run.sh");
    r.commit_all("v1");
    r.git(&["tag", "good"]);
    r.write("run.sh", "#!/bin/sh\necho v2\n").write("tool.py", "print()\n").chmod("tool.py", 0o644);
    r.remove("current");
    r.symlink("current", "tool.py");
    r.commit_all("v2");
    // Local: exec bit added, tracked symlink retargeted, untracked symlinks (absolute, dangling).
    r.chmod("tool.py", 0o755).remove("current");
    r.symlink("current", "/etc/hostname").symlink("dangling", "no/such/file").symlink("to-dir", "notes");
    r.write("notes/a.txt", "a\n").chmod("notes/a.txt", 0o600);
    round_trip(&r, "good", |r| {
        assert_eq!(std::fs::read_link(r.path().join("current")).unwrap().to_str(), Some("run.sh"));
        assert!(!r.exists("dangling") && !r.exists("to-dir") && !r.exists("tool.py"));
    });
}

#[test]
fn staged_deleted_and_renamed_files_survive() {
    let r = TestRepo::new();
    r.write("a.py", "a\n").write("b.py", "b\n").write("c.py", "c\n");
    r.commit_all("v1");
    r.git(&["tag", "good"]);
    r.write("a.py", "a2\n");
    r.commit_all("v2");
    r.write("a.py", "staged a\n");
    r.git(&["add", "a.py"]);
    r.write("a.py", "staged then modified a\n");
    r.remove("b.py");
    r.git(&["mv", "c.py", "renamed.py"]);
    round_trip(&r, "good", |r| assert_eq!(r.read("b.py"), b"b\n"));
}

#[test]
fn nested_untracked_folders_and_ignored_trees_survive() {
    let r = TestRepo::new();
    r.write(".gitignore", ".venv/\n*.log\n").write("src/app.py", "1\n");
    r.commit_all("v1");
    r.git(&["tag", "good"]);
    r.write("src/app.py", "2\n");
    r.commit_all("v2");
    r.write("src/new/deeper/deepest/x.py", "x\n")
        .write("src/new/y.py", "y\n")
        .write(".venv/lib/site.py", "venv\n")
        .write(".venv/lib/__pycache__/site.cpython-311.pyc", "venv cache")
        .write("src/debug.log", "log\n");
    round_trip(&r, "good", |r| {
        assert!(!r.exists("src/new"));
        assert_eq!(r.read(".venv/lib/site.py"), b"venv\n", "ignored tree untouched");
        assert!(r.exists(".venv/lib/__pycache__/site.cpython-311.pyc"), "skip_dirs are not searched for caches");
        assert_eq!(r.read("src/debug.log"), b"log\n");
    });
}

#[test]
fn undo_can_itself_be_undone() {
    let (r, _) = messy_repo();
    let before = picture(&r);
    let run = rollback(&r, "v1");
    let after_rollback = picture(&r);
    let u = undo(&r, &run);
    assert_eq!(picture(&r), before);
    let undo_id = u["run_id"].as_str().unwrap().to_owned();
    let uu = undo(&r, &undo_id);
    assert_eq!(uu["status"], "succeeded");
    assert_eq!(picture(&r), after_rollback, "undoing the undo brings the rolled-back state back");
    // The first run is already undone: undoing it again is refused, nothing changes.
    let again = fr(&r, &["undo", &run, "--yes"]);
    again.code(4);
    assert!(again.stderr.contains("already undone"), "{}", again.stderr);
    assert_eq!(picture(&r), after_rollback);
}

#[test]
fn both_backends_roll_back_the_same_way() {
    let mut trees = Vec::new();
    for backend in ["git2", "git-cli"] {
        let (r, _) = messy_repo();
        let cfg = r.path().join(".git/fr.toml");
        std::fs::write(&cfg, format!("[vcs]\nbackend = \"{backend}\"\n")).unwrap();
        let cfg = cfg.to_str().unwrap().to_owned();
        let before = picture(&r);
        let out = fr(&r, &["--config", &cfg, "run", "--fast", "--yes", "--json", "--target", "v1"]);
        out.ok();
        trees.push(picture(&r));
        let id = out.json()["run_id"].as_str().unwrap().to_owned();
        fr(&r, &["--config", &cfg, "undo", &id, "--yes"]).ok();
        assert_eq!(picture(&r), before, "{backend}");
    }
    assert_eq!(trees[0], trees[1]);
}

/// An untracked file spelled `.GIT` (any case but `.git`) is an ordinary file on Linux that git
/// can never track: both backends leave it out of status, so a rollback neither captures nor
/// removes it, and `assess`, `run` and `undo` work instead of failing on it.
#[test]
fn an_untracked_dot_git_lookalike_is_left_alone_by_both_backends() {
    for backend in ["git2", "git-cli"] {
        let (r, _) = messy_repo();
        r.write(".GIT", "not the git dir\n").write("notes/.Git/log.txt", "kept\n");
        let cfg = r.path().join(".git/fr.toml");
        std::fs::write(&cfg, format!("[vcs]\nbackend = \"{backend}\"\n")).unwrap();
        let cfg = cfg.to_str().unwrap().to_owned();
        fr(&r, &["--config", &cfg, "assess", "--target", "v1"]).ok();
        let out = fr(&r, &["--config", &cfg, "run", "--fast", "--yes", "--json", "--target", "v1"]);
        out.ok();
        assert_eq!(r.read(".GIT"), b"not the git dir\n", "{backend}");
        assert_eq!(r.read("notes/.Git/log.txt"), b"kept\n", "{backend}: never captured, never removed");
        let id = out.json()["run_id"].as_str().unwrap().to_owned();
        fr(&r, &["--config", &cfg, "undo", &id, "--yes"]).ok();
        assert_eq!(r.read(".GIT"), b"not the git dir\n", "{backend}");
        assert_eq!(r.head(), r.git(&["rev-parse", "v3"]), "{backend}");
    }
}

/// A work tree in a folder whose name is not UTF-8: `--json` writes the path as its bytes (as
/// it writes such file names), and the run, the list of runs, the report and the undo work.
/// The journal's first record could not be written before, which left an empty journal that
/// every later command called damaged.
#[test]
fn work_tree_in_a_folder_whose_name_is_not_utf8() {
    let r = TestRepo::with_prefix(std::ffi::OsStr::from_bytes(b"fr-test-caf\xe9-"));
    r.three_releases();
    r.write("notes.txt", "draft\n").write("app/main.py", "# hotfix\n");
    let bytes: Vec<u64> = r.path().as_os_str().as_bytes().iter().map(|b| u64::from(*b)).collect();
    let a = fr(&r, &["assess", "--target", "v1", "--json"]);
    assert_eq!(a.ok().json()["workdir"], serde_json::json!(bytes));
    let (_, run_id) = round_trip(&r, "v1", |r| assert!(!r.exists("notes.txt")));
    let runs = fr(&r, &["runs", "list", "--json"]);
    let list = runs.ok().json();
    let listed: Vec<&str> = list.as_array().unwrap().iter().map(|s| s["run_id"].as_str().unwrap()).collect();
    assert_eq!(listed.len(), 2, "the run and its undo: {}", runs.stdout);
    assert_eq!(listed[0], run_id);
    let report = fr(&r, &["report", &run_id, "--json"]);
    assert_eq!(report.ok().json()["workdir"], serde_json::json!(bytes));
}
