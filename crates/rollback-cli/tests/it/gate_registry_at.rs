//! `gate REV --registry-at REF`, the CI recipe: the registry is read where REF's own
//! configuration puts it, and in a blob-less partial clone its blob is fetched.

use std::path::Path;
use std::process::Command;

use rollback_testkit::{TestRepo, clean_git_env};

use crate::common::{fr, run_in};
use crate::partial_clones::Unreachable;

fn git_in(dir: &Path, args: &[&str]) -> String {
    let out = clean_git_env(&mut Command::new("git")).arg("-C").arg(dir).args(args).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A CI checkout: a clone of `origin` (a path or URL) with `extra` clone options, detached at
/// `rev`, that fetched `main` (`FETCH_HEAD`).
fn ci_checkout(origin: &str, extra: &[&str], rev: &str) -> TestRepo {
    let ci = TestRepo::new();
    std::fs::remove_dir_all(ci.path().join(".git")).unwrap();
    let mut args = vec!["clone", "-q", "--no-checkout"];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[origin, "."]);
    ci.git(&args);
    ci.git(&["checkout", "-q", "--detach", rev]);
    ci.git(&["fetch", "-q", "--depth=1", "origin", "main"]);
    ci
}

#[test]
fn registry_at_reads_the_registry_where_the_refs_own_configuration_puts_it() {
    let w = TestRepo::new();
    w.write("app.py", "a\n");
    let a = w.commit_all("A");
    fr(&w, &["known-good", "mark", "HEAD"]).ok();
    w.commit_all("mark A");
    w.write("app.py", "b\n");
    let b = w.commit_all("B");
    // The registry moves; a stale copy stays at the old path, without B's bad mark.
    w.write("ops/known.json", w.read("rollback/config/known-good-commits.json"));
    w.write("rollback/config/rollback.toml", "[registry]\npath = \"ops/known.json\"\n");
    w.commit_all("registry moves to ops/");
    fr(&w, &["known-good", "bad", &b, "--note", "broke login"]).ok();
    w.commit_all("B bad");

    let origin = w.path().display().to_string();
    let ci = ci_checkout(&origin, &[], &b);
    let out = fr(&ci, &["gate", &b, "--registry-at", "FETCH_HEAD"]);
    out.code(4);
    assert!(out.stderr.contains("broke login"), "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "the registry's path `ops/known.json` is the one `rollback/config/rollback.toml` of FETCH_HEAD gives"
        ),
        "{}",
        out.stderr
    );
    // `--config` names the configuration: its path is used, the stale copy there.
    std::fs::write(ci.path().join("old.toml"), "[registry]\npath = \"rollback/config/known-good-commits.json\"\n")
        .unwrap();
    fr(&ci, &["--config", "old.toml", "gate", &b, "--registry-at", "FETCH_HEAD"]).ok();

    // Without the stale copy, an older release known good passes (it was refused, exit 2).
    w.git(&["rm", "-q", "rollback/config/known-good-commits.json"]);
    w.commit_all("drop the old registry");
    ci.git(&["checkout", "-q", "--detach", &a]);
    ci.git(&["fetch", "-q", "origin", "main"]);
    let out = fr(&ci, &["gate", &a, "--registry-at", "FETCH_HEAD", "--json"]);
    out.ok();
    assert_eq!(out.json()["registry_found"], true, "{}", out.stdout);
    // A REF whose configuration names a registry it lacks: the error says which configuration.
    w.git(&["rm", "-q", "ops/known.json"]);
    w.commit_all("drop the registry");
    ci.git(&["fetch", "-q", "origin", "main"]);
    let out = fr(&ci, &["gate", &a, "--registry-at", "FETCH_HEAD"]);
    out.code(2);
    assert!(
        out.stderr.contains(
            "has no registry at `ops/known.json` (the path `rollback/config/rollback.toml` of FETCH_HEAD gives)"
        ),
        "{}",
        out.stderr
    );
}

#[test]
fn registry_at_in_a_blobless_partial_clone_fetches_the_registry() {
    let w = TestRepo::new();
    w.write("app.py", "a\n");
    w.commit_all("A");
    w.write("app.py", "b\n");
    let b = w.commit_all("B");
    fr(&w, &["known-good", "bad", &b, "--note", "broke login"]).ok();
    w.commit_all("registry: B bad");
    let remote = tempfile::Builder::new().prefix("fr-remote-").tempdir().unwrap();
    let bare = remote.path().join("server.git");
    git_in(remote.path(), &["clone", "-q", "--bare", &w.path().display().to_string(), "server.git"]);
    git_in(&bare, &["config", "uploadpack.allowFilter", "true"]);
    let url = format!("file://{}", bare.display());
    let ci = ci_checkout(&url, &["--filter=blob:none"], &b);
    let registry = git_in(ci.path(), &["rev-parse", "FETCH_HEAD:rollback/config/known-good-commits.json"]);
    let missing = git_in(ci.path(), &["rev-list", "--objects", "--missing=print", "FETCH_HEAD"]);
    assert!(missing.contains(&format!("?{registry}")), "the registry's blob is not local: {missing}");

    // The remote down: refused, naming the blob and the command that fetches it.
    {
        let _down = Unreachable::new(&bare);
        let out = run_in(ci.path(), &["gate", &b, "--registry-at", "FETCH_HEAD"], &[]);
        out.code(1);
        assert!(
            out.stderr.contains(&format!("the blob {registry} of `rollback/config/known-good-commits.json`")),
            "{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("is not in this partial clone, and fetching it from `origin` failed"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains(&format!("git cat-file blob {registry}")), "{}", out.stderr);
    }
    // The remote up: fetched, and the bad release refused.
    let out = run_in(ci.path(), &["gate", &b, "--registry-at", "FETCH_HEAD"], &[]);
    out.code(4);
    assert!(out.stderr.contains("broke login"), "{}", out.stderr);
}
