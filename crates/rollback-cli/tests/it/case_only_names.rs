//! Tracked names that differ only in letter case (`lib.py`, `Lib.py`) in a repository with
//! `core.ignorecase` set (a checkout copied from macOS or Windows onto Linux keeps it). libgit2's
//! checkout then takes the two for one file: with the git2 back-end the undo reported success
//! with the clean tracked `lib.py` gone from the work tree. Now the git2 back-end refuses such a
//! rollback before anything changes; `git` keeps the names apart, so git-cli goes through.

use rollback_testkit::TestRepo;

use crate::common::picture;
use crate::shapes::{config, fr, run_id};

/// v1 with `lib.py`; v2 (HEAD) adds `Lib.py`; then `core.ignorecase` is set.
fn twins() -> TestRepo {
    let r = TestRepo::new();
    r.write("Readme.md", "one\n").write("lib.py", "x\n");
    r.commit_all("v1");
    r.git(&["tag", "v1"]);
    r.write("Readme.md", "two\n").write("Lib.py", "y\n");
    r.commit_all("v2");
    r.git(&["config", "core.ignorecase", "true"]);
    r
}

#[test]
fn git2_refuses_names_that_differ_only_in_case_under_ignorecase() {
    let r = twins();
    let (_cfg_dir, cfg) = config("git2");
    let before = picture(&r);
    let plan = fr(&r, &cfg, &["plan", "--fast", "--target", "v1", "--json"], &[]).ok().json();
    assert!(
        plan["risks"].as_array().unwrap().iter().any(|x| x["code"] == "case_only_names" && x["severity"] == "high"),
        "{plan}"
    );
    let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--target", "v1"], &[]);
    out.code(4);
    assert!(
        out.stderr.contains(
            "`Lib.py` and `lib.py` are both tracked, and with `core.ignorecase` set the `git2` back-end (libgit2) takes them for one file"
        ),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("hint: nothing was changed; set `backend = \"git-cli\"`"), "{}", out.stderr);
    assert_eq!(picture(&r), before, "nothing changed");
    // A folder's name counts as well.
    let r = TestRepo::new();
    r.write("src/a.py", "a\n");
    r.commit_all("v1");
    r.git(&["tag", "v1"]);
    r.write("Src/b.py", "b\n");
    r.commit_all("v2");
    r.git(&["config", "core.ignorecase", "true"]);
    let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--target", "v1"], &[]);
    out.code(4);
    assert!(
        out.stderr.contains("`src` and `Src` are both tracked")
            || out.stderr.contains("`Src` and `src` are both tracked"),
        "{}",
        out.stderr
    );
}

#[test]
fn git_cli_and_case_sensitive_settings_roll_back_and_undo_exactly() {
    for (backend, ignorecase) in [("git-cli", "true"), ("git2", "false")] {
        let r = twins();
        r.git(&["config", "core.ignorecase", ignorecase]);
        let (_cfg_dir, cfg) = config(backend);
        let before = picture(&r);
        let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
        assert_eq!(out.ok().json()["status"], "succeeded", "{backend}");
        assert!(r.exists("lib.py") && !r.exists("Lib.py"), "{backend}");
        fr(&r, &cfg, &["undo", &run_id(&out), "--yes"], &[]).ok();
        assert_eq!(picture(&r), before, "{backend}: the undo gives back the state before");
    }
}
