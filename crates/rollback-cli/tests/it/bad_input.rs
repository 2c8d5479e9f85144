//! Bad input gets a clear error and a documented exit code, and changes nothing.

use rollback_testkit::TestRepo;

use crate::common::{fr, messy_repo, picture, run_in};

#[track_caller]
fn refused_unchanged(r: &TestRepo, args: &[&str], code: i32, needle: &str) -> String {
    let before = picture(r);
    let out = fr(r, args);
    out.code(code);
    assert!(out.stderr.contains(needle), "expected `{needle}` in:\n{}", out.stderr);
    assert!(out.stderr.starts_with("error: "), "{}", out.stderr);
    assert_eq!(picture(r), before, "{args:?} changed nothing");
    out.stderr
}

#[test]
fn unknown_and_ambiguous_revisions() {
    let (r, _) = messy_repo();
    let e = refused_unchanged(&r, &["run", "--fast", "--yes", "--target", "nope"], 2, "unknown revision `nope`");
    assert!(e.contains("hint: give a longer hash"), "{e}");
    refused_unchanged(&r, &["assess", "--target=-rf"], 2, "unknown revision `-rf`");
    refused_unchanged(&r, &["plan", "--target", "HEAD~99"], 2, "unknown revision");

    // A tag and a branch of one name, on different commits: git would take the tag.
    let (v1, v2) = (r.git(&["rev-parse", "v1"]), r.git(&["rev-parse", "v2"]));
    r.git(&["tag", "release", v1.trim()]);
    r.git(&["branch", "release", v2.trim()]);
    let e =
        refused_unchanged(&r, &["run", "--fast", "--yes", "--target", "release"], 2, "ambiguous revision `release`");
    assert!(e.contains("`refs/tags/release`, `refs/heads/release`"), "{e}");
    refused_unchanged(&r, &["known-good", "mark", "release"], 2, "ambiguous revision `release`");
    let plan = fr(&r, &["plan", "--target", "refs/heads/release", "--json"]);
    plan.ok();
    assert_eq!(plan.json()["to"].as_str(), Some(v2.trim()), "{}", plan.stdout);
}

#[test]
fn not_a_repository_and_unborn_branch() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_in(dir.path(), &["assess"], &[]);
    out.code(2);
    assert!(out.stderr.contains("is not a git repository"), "{}", out.stderr);
    let r = TestRepo::new();
    r.write("a.txt", "a");
    let out = fr(&r, &["run", "--fast", "--yes", "--target", "HEAD"]);
    out.code(4);
    assert!(out.stderr.contains("the current branch `main` has no commits yet"), "{}", out.stderr);
    assert!(!r.path().join(".git/forge-rollback").exists(), "no state created");
}

#[test]
fn detached_head_is_refused() {
    let (r, _) = messy_repo();
    r.git(&["stash", "-q", "--include-untracked"]);
    r.git(&["checkout", "-q", "--detach", "v2"]);
    let e = refused_unchanged(&r, &["run", "--fast", "--yes", "--target", "v1"], 4, "HEAD is detached");
    assert!(e.contains("hint: check out the branch"), "{e}");
    let a = fr(&r, &["assess", "--target", "v1", "--json"]).json();
    assert!(a["risks"].as_array().unwrap().iter().any(|x| x["code"] == "detached_head"));
}

#[test]
fn no_target_without_registry_is_refused_never_head_minus_one() {
    let (r, _) = messy_repo();
    let e = refused_unchanged(&r, &["run", "--fast", "--yes"], 2, "no rollback target");
    assert!(e.contains("known-good mark"), "{e}");
    // HEAD is never its own target, and the message says so: HEAD marked good is still none.
    fr(&r, &["known-good", "mark", "HEAD"]).ok();
    let head = r.git(&["rev-parse", "--short=7", "HEAD"]);
    let e = refused_unchanged(&r, &["assess"], 2, "no rollback target");
    assert!(e.contains(&format!("other than HEAD ({head})")), "{e}");
}

#[test]
fn not_an_ancestor_is_refused_unless_allowed() {
    let (r, _) = messy_repo();
    r.git(&["stash", "-q", "--include-untracked"]);
    r.git(&["checkout", "-q", "-b", "side", "v1"]);
    r.write("side.py", "s\n");
    r.commit_all("side work");
    r.git(&["checkout", "-q", "main"]);
    refused_unchanged(&r, &["run", "--fast", "--yes", "--target", "side"], 4, "is not an ancestor of HEAD");
    let out = fr(&r, &["run", "--fast", "--yes", "--target", "side", "--allow-non-ancestor", "--json"]);
    out.ok();
    assert_eq!(r.read("side.py"), b"s\n");
}

#[test]
fn no_terminal_and_no_yes_refuses_instead_of_hanging() {
    let (r, _) = messy_repo();
    let e = refused_unchanged(&r, &["run", "--fast", "--target", "v1"], 4, "no terminal to confirm the rollback on");
    assert!(e.contains("hint: pass `--yes`"), "{e}");
    assert!(!r.path().join(".git/forge-rollback").exists(), "refused before any state was written");
    // A manual run cannot take `--yes` (refused: it asks before every step): not suggested.
    let before = picture(&r);
    let out = fr(&r, &["run", "--manual", "--target", "v1"]);
    out.code(4);
    let e = out.stderr;
    assert!(e.contains("error: no terminal to confirm the rollback on"), "{e}");
    assert!(e.contains("a manual rollback needs a terminal") && !e.contains("pass `--yes`"), "{e}");
    assert_eq!(picture(&r), before);
}

#[test]
fn invalid_database_config_names_its_key_once() {
    // The key as written in the file: `database.url`, never `database.database.url`.
    let (r, _) = messy_repo();
    r.write("forge-rollback.toml", "[database]\nkind = \"sql\"\n");
    let e = refused_unchanged(&r, &["assess", "--target", "v1"], 2, "forge-rollback.toml`: database.url: set `url`");
    assert!(!e.contains("database.database"), "{e}");
    r.write("forge-rollback.toml", "[database]\nkind = \"sql\"\nurl = \"sqlite:///app.db\"\ntimeout_secs = 0\n");
    let e = refused_unchanged(&r, &["assess", "--target", "v1"], 2, "forge-rollback.toml`: database.timeout_secs: ");
    assert!(!e.contains("database.database"), "{e}");
}

#[test]
fn malformed_config_and_registry_name_line_and_column() {
    let (r, _) = messy_repo();
    r.write("forge-rollback.toml", "[caches]\nglobs = [\"**/*.pyc\"\nskip_dirs = 3\n");
    let e = refused_unchanged(&r, &["assess", "--target", "v1"], 2, "invalid config `");
    assert!(e.contains("forge-rollback.toml` at line 3"), "{e}");
    r.write("forge-rollback.toml", "[vcs]\nbackend = \"svn\"\n");
    refused_unchanged(&r, &["run", "--fast", "--yes", "--target", "v1"], 2, "at line 2, column 11");
    r.write("forge-rollback.toml", "[database]\nurl = \"sqlite:///app.db\"\n");
    refused_unchanged(&r, &["run", "--yes", "--target", "v1"], 2, "missing field `kind`");
    r.remove("forge-rollback.toml");
    r.write("rollback/config/known-good-commits.json", "{\n  \"commits\": [\n    {\"hash\": 12}\n  ]\n}\n");
    refused_unchanged(&r, &["run", "--fast", "--yes"], 2, "known-good-commits.json` at line 3");
    // A revision that moves (or an option) is not a commit: refused with its line, never
    // handed to git.
    r.write(
        "rollback/config/known-good-commits.json",
        "{\n  \"commits\": [\n    {\"hash\": \"HEAD~1\", \"verified\": true}\n  ]\n}\n",
    );
    refused_unchanged(
        &r,
        &["run", "--fast", "--yes"],
        2,
        "known-good-commits.json` line 3: `HEAD~1` is not a commit hash",
    );
    let out = fr(&r, &["--config", "/nonexistent/x.toml", "assess"]);
    out.code(2);
    assert!(out.stderr.contains("cannot read config `/nonexistent/x.toml`"), "{}", out.stderr);
}

/// `database.url_env` naming a variable that is unset or empty: the error names the variable
/// and what is wrong with it, the hint says where to set it, and nothing changes.
#[test]
fn a_database_url_variable_that_is_unset_or_empty_is_named_with_a_hint() {
    let (r, _) = messy_repo();
    r.write("migrations/.keep", "");
    r.write(
        "forge-rollback.toml",
        "[database]\nkind = \"sql\"\nurl_env = \"FORGE_TEST_SURELY_UNSET_DB_URL\"\nmigrations_dir = \"migrations\"\n",
    );
    let e = refused_unchanged(
        &r,
        &["run", "--full", "--yes", "--target", "v1"],
        2,
        "error: database config: the environment variable `FORGE_TEST_SURELY_UNSET_DB_URL` is not set",
    );
    assert!(
        e.contains(
            "hint: set `FORGE_TEST_SURELY_UNSET_DB_URL` to the database URL in the environment of the process that runs the rollback"
        ),
        "{e}"
    );
    let before = picture(&r);
    let out = crate::common::fr_env(
        &r,
        &["run", "--full", "--yes", "--target", "v1"],
        &[("FORGE_TEST_SURELY_UNSET_DB_URL", "")],
    );
    out.code(2);
    assert!(
        out.stderr.contains("the environment variable `FORGE_TEST_SURELY_UNSET_DB_URL` is empty"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: set `FORGE_TEST_SURELY_UNSET_DB_URL`"), "{}", out.stderr);
    assert_eq!(picture(&r), before);
}

/// A bare repository (what a deploy pulls from) has no work tree: the hint says to run in
/// the clone the app runs from.
#[test]
fn a_bare_repository_is_refused_with_a_hint() {
    let (r, _) = messy_repo();
    let bare = crate::common::bare_remote(&r);
    let out = run_in(bare.path(), &["run", "--fast", "--yes", "--target", "v1"], &[]);
    out.code(2);
    assert!(out.stderr.contains("is a bare repository; there is no work tree to roll back"), "{}", out.stderr);
    assert!(
        out.stderr.contains("hint: roll back the clone the app runs from, not the repository it pulls from: run there, or point at it with `-C DIR`"),
        "{}",
        out.stderr
    );
    assert!(!bare.path().join("forge-rollback").exists(), "no state created");
}

/// A repository another user owns (an operator's `sudo` on the deploy user's checkout): git
/// refuses it, and so both back-ends did, as "not a git repository" with a hint to run inside
/// one. Now the error names the owner, and the hint says to run as that user or to trust the
/// repository. Giving the repository away needs root (`chown`), as CI runs.
#[test]
fn a_repository_another_user_owns_names_its_owner() {
    let uid = std::process::Command::new("id").arg("-u").output().unwrap();
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        #[allow(clippy::print_stderr)] // a skip says why
        {
            eprintln!("skipped: giving a repository to another user needs root");
        }
        return;
    }
    for backend in crate::shapes::BACKENDS {
        let (r, _) = messy_repo();
        let (_dir, cfg) = crate::shapes::config(backend);
        let before = picture(&r);
        let chown = |owner: &str, path: &std::path::Path| {
            let out = std::process::Command::new("chown").args(["-R", owner]).arg(path).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        };
        chown("nobody", r.path());
        let out = crate::shapes::fr(&r, &cfg, &["run", "--fast", "--yes", "--target", "v1"], &[]);
        chown("root", r.path());
        out.code(2);
        let path = r.path().canonicalize().unwrap();
        assert!(
            out.stderr.contains(&format!(
                "error: `{}` belongs to nobody, not to root who runs forge-rollback, and git refuses a repository another user owns",
                path.display()
            )),
            "{backend}: {}",
            out.stderr
        );
        assert!(
            out.stderr.contains(&format!("hint: run as nobody (`sudo -u nobody …`), so that backups and the journal belong to the repository's owner too; or, if you trust the repository, let git use it: `git config --global --add safe.directory {}`", path.display())),
            "{backend}: {}",
            out.stderr
        );
        assert!(!out.stderr.contains("is not a git repository"), "{backend}: {}", out.stderr);
        assert_eq!(picture(&r), before, "{backend}");
        assert!(!r.path().join(".git/forge-rollback").exists(), "{backend}: no state created");

        // The work tree is ours, its `.git` is not: git refuses that too, and the error names it.
        chown("nobody", &r.path().join(".git"));
        let out = crate::shapes::fr(&r, &cfg, &["assess", "--target", "v1"], &[]);
        chown("root", &r.path().join(".git"));
        out.code(2);
        assert!(
            out.stderr.contains(&format!("error: `{}/.git` belongs to nobody, not to root", path.display())),
            "{backend}: {}",
            out.stderr
        );
        assert!(out.stderr.contains(&format!("safe.directory {}`", path.display())), "{backend}: {}", out.stderr);
    }
}

#[test]
fn state_dir_inside_the_work_tree_is_refused() {
    let (r, _) = messy_repo();
    r.write("forge-rollback.toml", "[state]\ndir = \"rollback/state\"\n");
    refused_unchanged(&r, &["run", "--fast", "--yes", "--target", "v1"], 2, "is inside the work tree");
}

#[test]
fn unknown_flags_and_commands_exit_2() {
    let (r, _) = messy_repo();
    fr(&r, &["run", "--fastest"]).code(2);
    fr(&r, &["explode"]).code(2);
    fr(&r, &["run", "--fast", "--full"]).code(2);
    fr(&r, &["undo", "../../etc", "--yes"]).code(2);
    fr(&r, &["resume", "20990101-000000-abcdef"]).code(2);
}

#[test]
fn manual_level_with_yes_is_refused() {
    let (r, _) = messy_repo();
    let e = refused_unchanged(&r, &["run", "--manual", "--yes", "--target", "v1"], 2, "cannot run unattended");
    assert!(e.contains("hint: drop `--yes`"), "{e}");
}

#[test]
fn plan_and_dry_run_write_nothing() {
    let (r, _) = messy_repo();
    let before = picture(&r);
    fr(&r, &["plan", "--fast", "--target", "v1"]).ok();
    let out = fr(&r, &["run", "--fast", "--dry-run", "--target", "v1", "--json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["status"], "planned");
    assert!(j["run_id"].is_null());
    assert_eq!(j["plan"]["steps"][0]["step"], "snapshot");
    assert_eq!(picture(&r), before);
    assert!(!r.path().join(".git/forge-rollback").exists(), "not even the state folder");
    let refs = r.git(&["for-each-ref", "refs/forge-rollback"]);
    assert_eq!(refs, "");
}

#[test]
fn nothing_to_roll_back_is_refused() {
    let r = TestRepo::new();
    r.write("a", "1");
    r.commit_all("only");
    refused_unchanged(&r, &["run", "--fast", "--yes", "--target", "HEAD"], 4, "nothing to roll back");
}
