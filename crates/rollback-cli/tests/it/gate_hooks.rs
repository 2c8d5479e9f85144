//! `gate` as a git server's `pre-receive` hook, through real pushes: in a repository with a
//! work tree (push-to-deploy), guarding the default branch's own registry and configuration
//! (`--ref`), and for tags that name a tree or a blob.

use std::path::Path;
use std::process::Command;

use rollback_testkit::{TestRepo, clean_git_env};

use crate::common::{bare_remote, fr, run_in};

const REGISTRY: &str = "rollback/config/known-good-commits.json";
const CONFIG: &str = "rollback/config/rollback.toml";

/// The `pre-receive` hook in `hooks`: the one docs/cli.md gives (`--ref "$ref"`), or the one
/// it gave before (`with_ref` false).
pub(crate) fn install_hook(hooks: &Path, with_ref: bool) {
    let hook = hooks.join("pre-receive");
    let opt = if with_ref { " --ref \"$ref\"" } else { "" };
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\nwhile read -r _ new ref; do\n  [ \"$new\" = 0000000000000000000000000000000000000000 ] || '{}' gate \"$new\"{opt} || exit 1\ndone\n",
            env!("CARGO_BIN_EXE_forge-rollback")
        ),
    )
    .unwrap();
    let mut perms = std::fs::metadata(&hook).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&hook, perms).unwrap();
}

/// `git push origin SPEC` from `repo`: (success, stderr).
pub(crate) fn push(repo: &Path, spec: &str) -> (bool, String) {
    let out =
        clean_git_env(&mut Command::new("git")).current_dir(repo).args(["push", "origin", spec]).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Three releases, v3 marked known bad and the registry committed on `main`.
fn team_repo() -> (TestRepo, [String; 3]) {
    let r = TestRepo::new();
    let ids = r.three_releases();
    fr(&r, &["known-good", "mark", "v1"]).ok();
    fr(&r, &["known-good", "bad", "v3", "--note", "broke login"]).ok();
    r.commit_all("registry: v3 bad");
    (r, ids)
}

/// A clone of `server` (a path) in a new test repository's folder.
fn clone_of(server: &Path) -> TestRepo {
    let c = TestRepo::new();
    std::fs::remove_dir_all(c.path().join(".git")).unwrap();
    c.git(&["clone", "-q", &server.display().to_string(), "."]);
    c
}

/// A push-to-deploy server: a repository with a work tree (`receive.denyCurrentBranch
/// updateInstead`) cloned from `r`, with the hook.
fn deploy_server(r: &TestRepo, with_ref: bool) -> TestRepo {
    let server = clone_of(r.path());
    server.git(&["config", "receive.denyCurrentBranch", "updateInstead"]);
    install_hook(&server.path().join(".git/hooks"), with_ref);
    server
}

#[test]
fn a_push_to_deploy_repository_sees_the_pushed_commits_in_the_quarantine() {
    let (r, [_, _, v3]) = team_repo();
    let server = deploy_server(&r, true);
    let client = clone_of(server.path());

    // A new commit is only in git's quarantine while the hook runs: it was "unknown".
    client.write("app/fix.py", "FIX = 1\n");
    client.commit_all("a new, good commit");
    let (ok, stderr) = push(client.path(), "HEAD:main");
    assert!(ok, "{stderr}");
    assert!(stderr.contains("is not marked known bad"), "{stderr}");
    assert_eq!(server.head(), client.head(), "the work tree was updated");

    // The release marked bad is still refused, to any branch.
    let (ok, stderr) = push(client.path(), &format!("{v3}:refs/heads/deploy"));
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("is marked known bad in the registry (broke login)"), "{stderr}");

    // The hook without `--ref` (the one documented before) works there too.
    install_hook(&server.path().join(".git/hooks"), false);
    client.write("app/fix.py", "FIX = 2\n");
    client.commit_all("another new commit");
    let (ok, stderr) = push(client.path(), "HEAD:main");
    assert!(ok, "{stderr}");
}

#[test]
fn the_hook_refuses_a_push_that_leaves_the_registry_or_config_of_main_unreadable() {
    let (r, _) = team_repo();
    let remote = bare_remote(&r);
    install_hook(&remote.path().join("hooks"), true);
    let client = clone_of(remote.path());
    let before = crate::common::bare_rev(remote.path(), "main");

    client.write(REGISTRY, "{\"commits\": [\n");
    client.commit_all("registry edit gone wrong");
    let (ok, stderr) = push(client.path(), "HEAD:main");
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("this push leaves the registry or configuration of main unreadable"), "{stderr}");
    assert!(stderr.contains(&format!("the pushed main:{REGISTRY}")), "the file is named: {stderr}");
    assert!(stderr.contains("EOF while parsing"), "the parse error is quoted: {stderr}");
    // The same commit on another branch moves nothing the hook reads: it passes.
    let (ok, stderr) = push(client.path(), "HEAD:refs/heads/wip");
    assert!(ok, "{stderr}");

    // A configuration this forge-rollback cannot load (a newer one's key).
    client.git(&["reset", "-q", "--hard", "HEAD~1"]);
    client.write(CONFIG, "[vcs]\nsome_newer_key = 60\n");
    client.commit_all("config with a key this forge-rollback does not know");
    let (ok, stderr) = push(client.path(), "HEAD:main");
    assert!(!ok, "{stderr}");
    assert!(stderr.contains(&format!("the pushed main:{CONFIG}")), "{stderr}");
    assert!(stderr.contains("some_newer_key"), "{stderr}");
    assert_eq!(crate::common::bare_rev(remote.path(), "main"), before, "main did not move");
}

#[test]
fn a_server_whose_registry_cannot_be_read_says_so_and_accepts_the_push_that_repairs_it() {
    let (r, [v1, _, v3]) = team_repo();
    let remote = bare_remote(&r);
    // The hook documented before `--ref`: it lets the damage through.
    install_hook(&remote.path().join("hooks"), false);
    let client = clone_of(remote.path());
    client.write(REGISTRY, "{\"commits\": [\n");
    client.commit_all("registry edit gone wrong");
    let (ok, stderr) = push(client.path(), "HEAD:main");
    assert!(ok, "{stderr}");

    // Every push is refused now, with why and the way out.
    let (ok, stderr) = push(client.path(), &format!("{v1}:refs/heads/hotfix"));
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains(
            "the registry or configuration on main (this server's HEAD) cannot be read, so no push can be judged"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("push a commit to main that repairs the file"), "{stderr}");
    // The repair is refused too by the old hook (the lock-out it had).
    client.git(&["revert", "--no-edit", "HEAD"]);
    let (ok, _) = push(client.path(), "HEAD:main");
    assert!(!ok);

    // With the documented hook, the repair is accepted, judged by the registry it brings.
    install_hook(&remote.path().join("hooks"), true);
    let (ok, stderr) = push(client.path(), "HEAD:main");
    assert!(ok, "{stderr}");
    assert!(stderr.contains("this push repairs it"), "{stderr}");
    // And the bad release is refused again, by the repaired registry.
    let (ok, stderr) = push(client.path(), &format!("{v3}:refs/heads/deploy"));
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("is marked known bad"), "{stderr}");
}

#[test]
fn a_push_to_deploy_server_whose_config_or_registry_cannot_be_read_accepts_the_repair() {
    let (r, _) = team_repo();
    let server = deploy_server(&r, false);
    let client = clone_of(server.path());
    client.write(CONFIG, "[vcs]\nsome_newer_key = 60\n");
    client.commit_all("config with a key this forge-rollback does not know");
    let (ok, stderr) = push(client.path(), "HEAD:main");
    assert!(ok, "{stderr}");
    assert!(server.read(CONFIG).starts_with(b"[vcs]"), "the work tree holds the broken config");

    client.git(&["revert", "--no-edit", "HEAD"]);
    let (ok, stderr) = push(client.path(), "HEAD:main");
    assert!(!ok, "the old hook refuses the repair: {stderr}");
    assert!(stderr.contains("cannot be read, so no push can be judged"), "{stderr}");
    install_hook(&server.path().join(".git/hooks"), true);
    let (ok, stderr) = push(client.path(), "HEAD:main");
    assert!(ok, "{stderr}");
    assert!(stderr.contains("this push repairs it"), "{stderr}");
    assert!(!server.exists(CONFIG), "the repair reached the work tree");

    // The registry in the work tree garbled (through the old hook): the same way out.
    install_hook(&server.path().join(".git/hooks"), false);
    client.write(REGISTRY, "{\"commits\": [\n");
    client.commit_all("registry edit gone wrong");
    let (ok, stderr) = push(client.path(), "HEAD:main");
    assert!(ok, "{stderr}");
    client.git(&["revert", "--no-edit", "HEAD"]);
    let (ok, stderr) = push(client.path(), "HEAD:main");
    assert!(!ok, "{stderr}");
    assert!(stderr.contains("the registry or configuration on main (this server's HEAD) cannot be read"), "{stderr}");
    install_hook(&server.path().join(".git/hooks"), true);
    let (ok, stderr) = push(client.path(), "HEAD:main");
    assert!(ok, "{stderr}");
    assert!(stderr.contains("this push repairs it"), "{stderr}");
}

#[test]
fn tags_of_a_blob_or_a_tree_pass_the_gate_with_a_note() {
    let (r, _) = team_repo();
    let remote = bare_remote(&r);
    install_hook(&remote.path().join("hooks"), true);
    let client = clone_of(remote.path());
    client.git(&["tag", "key-blob", "HEAD:app/main.py"]);
    client.git(&["tag", "-a", "-m", "the tree", "v-tree", "HEAD^{tree}"]);
    let blob = client.git(&["rev-parse", "HEAD:app/main.py"]);
    for tag in ["key-blob", "v-tree"] {
        let (ok, stderr) = push(client.path(), tag);
        assert!(ok, "{tag}: {stderr}");
        assert!(stderr.contains("not a commit: nothing to gate"), "{stderr}");
    }

    // By hand, in a work tree and in the bare repository.
    let out = fr(&client, &["gate", "key-blob", "--json"]);
    out.ok();
    assert_eq!(out.json()["kind"], "blob", "{}", out.stdout);
    assert_eq!(out.json()["known_bad"], false);
    assert!(out.stderr.contains(&format!("{blob} is a blob, not a commit: nothing to gate")), "{}", out.stderr);
    let out = run_in(remote.path(), &["gate", "v-tree"], &[]);
    out.ok();
    assert!(out.stderr.contains("is a tree, not a commit"), "{}", out.stderr);

    // A full hash that names nothing here: no "longer hash" hint.
    let out = fr(&client, &["gate", &"ab".repeat(20)]);
    out.code(2);
    assert!(!out.stderr.contains("longer hash"), "{}", out.stderr);
    assert!(out.stderr.contains("no object has that id in this repository"), "{}", out.stderr);
}
