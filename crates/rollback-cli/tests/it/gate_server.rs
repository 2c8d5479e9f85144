//! `gate` in a bare repository: a git server's `pre-receive` hook refuses a push of a release
//! marked known bad, reading the registry as the default branch holds it, and sees the commits
//! being pushed in git's quarantine.

use std::process::Command;

use rollback_testkit::clean_git_env;

use crate::common::{bare_remote, fr, messy_repo, run_in};
use crate::gate_hooks::{install_hook, push};

const REGISTRY: &str = "rollback/config/known-good-commits.json";

#[test]
fn a_pre_receive_hook_refuses_a_release_marked_known_bad_and_lets_new_commits_through() {
    let (r, [v1, _, v3]) = messy_repo();
    fr(&r, &["known-good", "bad", "v3", "--note", "broke login"]).ok();
    r.git(&["add", REGISTRY]);
    r.git(&["commit", "-q", "-m", "mark v3 bad"]);
    let remote = bare_remote(&r);
    install_hook(&remote.path().join("hooks"), true);

    // Deploying the bad release again (a branch a deploy job watches): refused by the server.
    let (ok, stderr) = push(r.path(), "v3:refs/heads/release");
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("is marked known bad in the registry (broke login)"), "{stderr}");
    // The pusher cannot unmark it on the server: the hint says where the mark is read.
    assert!(stderr.contains("then commit the registry and push it to the default branch"), "{stderr}");

    // A new commit exists only in the push's quarantine while the hook runs: it is found
    // there, and passes.
    r.write("app/fix.py", "FIX = 1\n");
    r.git(&["add", "app/fix.py"]);
    r.git(&["commit", "-q", "-m", "fix on top"]);
    let (ok, stderr) = push(r.path(), "HEAD:refs/heads/release");
    assert!(ok, "{stderr}");
    assert!(stderr.contains("is not marked known bad"), "{stderr}");

    // Run by hand in the server's repository: the same answers, the registry of its HEAD.
    run_in(remote.path(), &["gate", &v3], &[]).code(4);
    let good = run_in(remote.path(), &["gate", &v1, "--json"], &[]);
    good.ok();
    let j = good.json();
    assert_eq!((j["known_bad"].as_bool(), j["registry_found"].as_bool()), (Some(false), Some(true)), "{}", good.stdout);
    // A commit without the registry, named: bad usage, as in a work tree.
    let none = run_in(remote.path(), &["gate", &v3, "--registry-at", &v1], &[]);
    none.code(2);
    assert!(none.stderr.contains(&format!("has no registry at `{REGISTRY}`")), "{}", none.stderr);
    // An unknown commit: bad usage.
    run_in(remote.path(), &["gate", "no-such-rev"], &[]).code(2);
}

#[test]
fn the_first_push_into_an_empty_server_repository_passes_with_a_note() {
    let (r, _) = messy_repo();
    let remote = tempfile::Builder::new().prefix("fr-remote-").tempdir().unwrap();
    let out = clean_git_env(&mut Command::new("git"))
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(remote.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    install_hook(&remote.path().join("hooks"), true);
    r.git(&["remote", "add", "origin", &remote.path().display().to_string()]);
    let (ok, stderr) = push(r.path(), "main");
    assert!(ok, "{stderr}");
    assert!(stderr.contains("note: there is no registry at"), "{stderr}");
}

/// A server repository whose HEAD names `master` while every push goes to `main`: no registry
/// would be read and every commit would pass. Bad usage, naming the way out.
#[test]
fn an_unborn_head_beside_other_branches_is_bad_usage() {
    let (r, [_, _, v3]) = messy_repo();
    fr(&r, &["known-good", "bad", "v3"]).ok();
    r.git(&["add", REGISTRY]);
    r.git(&["commit", "-q", "-m", "mark v3 bad"]);
    let remote = bare_remote(&r);
    let head = clean_git_env(&mut Command::new("git"))
        .arg("--git-dir")
        .arg(remote.path())
        .args(["symbolic-ref", "HEAD", "refs/heads/master"])
        .output()
        .unwrap();
    assert!(head.status.success());
    let out = run_in(remote.path(), &["gate", &v3], &[]);
    out.code(2);
    assert!(out.stderr.contains("--registry-at main"), "{}", out.stderr);
    run_in(remote.path(), &["gate", &v3, "--registry-at", "main"], &[]).code(4);
}

/// `gate -C /srv/repo.git` run from another repository's hook, where git has set `GIT_DIR` to
/// that other repository and its push's quarantine: the folder named is the one read, objects
/// and all.
#[test]
fn a_gate_named_to_a_repository_reads_it_whatever_git_dir_says() {
    let (r, [_, _, v3]) = messy_repo();
    fr(&r, &["known-good", "bad", "v3", "--note", "broke login"]).ok();
    r.git(&["add", REGISTRY]);
    r.git(&["commit", "-q", "-m", "mark v3 bad"]);
    let remote = bare_remote(&r);
    // Another repository, whose history holds v3 unmarked.
    let (other, _) = messy_repo();
    let git_dir = other.path().join(".git");
    let objects = git_dir.join("objects");
    // As git sets them in the other repository's `pre-receive` hook (its push's quarantine).
    let env = [
        ("GIT_DIR", git_dir.to_str().unwrap()),
        ("GIT_OBJECT_DIRECTORY", objects.to_str().unwrap()),
        ("GIT_ALTERNATE_OBJECT_DIRECTORIES", objects.to_str().unwrap()),
        ("GIT_QUARANTINE_PATH", objects.to_str().unwrap()),
    ];
    let out = run_in(remote.path(), &["gate", &v3], &env);
    out.code(4);
    assert!(out.stderr.contains("is marked known bad in the registry (broke login)"), "{}", out.stderr);
    // `GIT_DIR` naming the same repository (the hook's own) is the pre-receive test above: its
    // new commit is found only through the quarantine git names.
}
