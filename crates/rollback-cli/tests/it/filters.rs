//! Files git writes through a filter program (git LFS, git-crypt: `filter=NAME` in the
//! attributes, `filter.NAME.smudge` in the configuration). libgit2 runs no such program: the
//! git2 back-end wrote the stored bytes (an LFS pointer, ciphertext) and reported success. Now
//! it refuses before it writes anything, and the git-cli back-end rolls such files back through
//! the filter. The filter here is a real one git runs: ROT13 through `tr`, stored scrambled,
//! written plain, as git-crypt stores ciphertext.

use rollback_testkit::TestRepo;

use crate::common::picture;
use crate::shapes::{config, fr, run_id};

const ROT13: &str = "tr A-Za-z N-ZA-Mn-za-m";
const REFUSED: &str = "`app.secret` needs git's `rot13` filter (`filter.rot13` in the git configuration), which the git2 back-end cannot run";
const HINT: &str = "hint: set `backend = \"git-cli\"` under `[vcs]` in the configuration, so that the `git` program writes the files and runs the `rot13` filter; nothing was written";

fn with_filter(r: &TestRepo) {
    r.git(&["config", "filter.rot13.smudge", ROT13]);
    r.git(&["config", "filter.rot13.clean", ROT13]);
}

/// v1 and v2 of `app.secret`, stored through the filter (HEAD at v2).
fn app_with_a_filtered_file() -> TestRepo {
    let r = TestRepo::new();
    with_filter(&r);
    r.write(".gitattributes", "*.secret filter=rot13\n");
    r.write("app.secret", "password one\n");
    r.write("app.py", "v1\n");
    r.commit_all("v1");
    r.git(&["tag", "v1"]);
    r.write("app.secret", "password two\n");
    r.write("app.py", "v2\n");
    r.commit_all("v2");
    assert_eq!(r.git(&["cat-file", "-p", "HEAD:app.secret"]), "cnffjbeq gjb", "stored scrambled");
    r
}

#[test]
fn git_cli_rolls_a_filtered_file_back_through_the_filter_and_git2_refuses() {
    let r = app_with_a_filtered_file();
    let (_g2, git2) = config("git2");
    let before = picture(&r);
    let refused = fr(&r, &git2, &["run", "--fast", "--yes", "--target", "v1"], &[]);
    refused.code(4);
    assert!(refused.stderr.contains(REFUSED), "{}", refused.stderr);
    assert!(refused.stderr.contains(HINT), "{}", refused.stderr);
    assert_eq!(picture(&r), before, "nothing changed");

    let (_cli, cli) = config("git-cli");
    let out = fr(&r, &cli, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
    assert_eq!(out.ok().json()["status"], "succeeded");
    assert_eq!(r.read("app.secret"), b"password one\n", "written through the filter");
    assert_eq!(r.git(&["status", "--porcelain"]), "");
    fr(&r, &cli, &["undo", &run_id(&out), "--yes"], &[]).ok();
    assert_eq!(r.read("app.secret"), b"password two\n");
    assert_eq!(picture(&r), before, "the undo gives back the state before");
}

/// A local edit of a filtered file is reverted by the reset, through the same checkout: the
/// git2 back-end refuses that too, though the commits do not change the file. A staged new
/// file the reset removes (the target has no file there) needs no filter, and is no refusal.
#[test]
fn git2_refuses_to_revert_a_local_edit_of_a_filtered_file_not_to_remove_a_staged_one() {
    let r = app_with_a_filtered_file();
    r.write("app.py", "v3\n");
    r.git(&["commit", "-qm", "v3: app.py only", "--", "app.py"]);
    assert_eq!(r.git(&["diff", "--name-only", "HEAD~1", "HEAD"]), "app.py");
    r.write("app.secret", "password edited\n");
    let (_g2, git2) = config("git2");
    let before = picture(&r);
    let refused = fr(&r, &git2, &["run", "--fast", "--yes", "--target", "HEAD~1"], &[]);
    refused.code(4);
    assert!(refused.stderr.contains(REFUSED), "{}", refused.stderr);
    assert_eq!(picture(&r), before);

    r.git(&["checkout", "--", "app.secret"]);
    r.write("new.secret", "password new\n");
    r.git(&["add", "new.secret"]);
    let out = fr(&r, &git2, &["run", "--fast", "--yes", "--json", "--target", "HEAD~1"], &[]);
    assert_eq!(out.ok().json()["status"], "succeeded");
    assert!(!r.exists("new.secret"), "removed by the reset, kept in the backup");
    fr(&r, &git2, &["undo", &run_id(&out), "--yes"], &[]).ok();
    assert_eq!(r.read("new.secret"), b"password new\n");
}

/// The undo of a run made through git-cli, asked through git2: refused before anything
/// changes (its reset would write the filtered file back); through git-cli it goes.
#[test]
fn an_undo_through_git2_is_refused_and_goes_through_git_cli() {
    let r = app_with_a_filtered_file();
    let (_cli, cli) = config("git-cli");
    let (_g2, git2) = config("git2");
    let before = picture(&r);
    let out = fr(&r, &cli, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
    let rolled_back = picture(&r);
    let refused = fr(&r, &git2, &["undo", &run_id(&out), "--yes"], &[]);
    refused.code(4);
    assert!(refused.stderr.contains(REFUSED), "{}", refused.stderr);
    assert_eq!(picture(&r), rolled_back);
    fr(&r, &cli, &["undo", &run_id(&out), "--yes"], &[]).ok();
    assert_eq!(picture(&r), before);
}

/// A run stopped after its snapshot and resumed through git2: the reset step finds the
/// filtered file before libgit2 writes anything, fails with nothing written, and a resume
/// through git-cli finishes the run.
#[test]
fn a_resume_through_git2_stops_at_the_reset_before_writing() {
    let r = app_with_a_filtered_file();
    let (_cli, cli) = config("git-cli");
    let (_g2, git2) = config("git2");
    let env = [("FORGE_ROLLBACK_FAILPOINT", "before:reset"), ("FORGE_ROLLBACK_FAILPOINT_ACTION", "error")];
    let stopped = fr(&r, &cli, &["run", "--fast", "--yes", "--json", "--target", "v1"], &env);
    stopped.code(1);
    let before = picture(&r);
    let failed = fr(&r, &git2, &["resume", &run_id(&stopped), "--yes", "--json"], &[]);
    failed.code(1);
    assert!(failed.stderr.contains(REFUSED), "{}", failed.stderr);
    assert!(failed.stderr.contains(HINT), "{}", failed.stderr);
    assert_eq!(picture(&r), before, "the reset wrote nothing");
    let resumed = fr(&r, &cli, &["resume", &run_id(&stopped), "--yes", "--json"], &[]);
    assert_eq!(resumed.ok().json()["status"], "succeeded");
    assert_eq!(r.read("app.secret"), b"password one\n");
}

/// The target brings the attribute that applies a configured filter (HEAD has none): writing
/// its `.gitattributes` would start filtering, so git2 refuses on that file.
#[test]
fn git2_refuses_a_target_whose_attributes_apply_a_filter() {
    let r = TestRepo::new();
    with_filter(&r);
    r.write(".gitattributes", "*.secret filter=rot13\n");
    r.write("app.secret", "password one\n");
    r.commit_all("v1");
    r.git(&["tag", "v1"]);
    r.git(&["rm", "-q", ".gitattributes", "app.secret"]);
    r.write("app.py", "v2\n");
    r.commit_all("v2: no secrets");
    let (_g2, git2) = config("git2");
    let before = picture(&r);
    let refused = fr(&r, &git2, &["run", "--fast", "--yes", "--target", "v1"], &[]);
    refused.code(4);
    assert!(
        refused
            .stderr
            .contains("`.gitattributes` of the target applies git's `rot13` filter to files the checkout writes"),
        "{}",
        refused.stderr
    );
    assert_eq!(picture(&r), before);
}

/// A filter defined in the configuration but applied by no attribute changes nothing.
#[test]
fn a_configured_filter_that_no_attribute_applies_does_not_refuse() {
    let r = TestRepo::new();
    with_filter(&r);
    r.write("app.py", "v1\n");
    r.commit_all("v1");
    r.git(&["tag", "v1"]);
    r.write("app.py", "v2\n");
    r.commit_all("v2");
    let (_g2, git2) = config("git2");
    let out = fr(&r, &git2, &["run", "--fast", "--yes", "--json", "--target", "v1"], &[]);
    assert_eq!(out.ok().json()["status"], "succeeded");
    assert_eq!(r.read("app.py"), b"v1\n");
}

/// A target that deletes a filtered file: the reset only removes it, so git2 may roll back; its
/// undo would write the file back, so the undo is refused (through git-cli it goes), and with
/// `on_failure = "undo"` (an undo at once if verification fails) the run is refused up front.
#[test]
fn a_deleted_filtered_file_refuses_the_undo_and_an_undo_on_failure_run() {
    let r = app_with_a_filtered_file();
    r.write("more.secret", "password more\n");
    r.commit_all("v3: more secrets");
    let (_g2, git2) = config("git2");
    let (_cli, cli) = config("git-cli");
    let dir = tempfile::tempdir().unwrap();
    let undo_on_failure = dir.path().join("forge-rollback.toml");
    std::fs::write(&undo_on_failure, "[vcs]\nbackend = \"git2\"\n[verify]\non_failure = \"undo\"\n").unwrap();
    let before = picture(&r);
    let refused = fr(&r, undo_on_failure.to_str().unwrap(), &["run", "--fast", "--yes", "--target", "HEAD~1"], &[]);
    refused.code(4);
    assert!(refused.stderr.contains("`more.secret` needs git's `rot13` filter"), "{}", refused.stderr);
    assert_eq!(picture(&r), before);

    let out = fr(&r, &git2, &["run", "--fast", "--yes", "--json", "--target", "HEAD~1"], &[]);
    assert_eq!(out.ok().json()["status"], "succeeded");
    assert!(!r.exists("more.secret"));
    let refused = fr(&r, &git2, &["undo", &run_id(&out), "--yes"], &[]);
    refused.code(4);
    assert!(refused.stderr.contains("`more.secret` needs git's `rot13` filter"), "{}", refused.stderr);
    fr(&r, &cli, &["undo", &run_id(&out), "--yes"], &[]).ok();
    assert_eq!(picture(&r), before);
}

/// FILES2-10: a file git keeps in another encoding in the work tree (`working-tree-encoding`,
/// UTF-16 for PowerShell scripts or SQL Server files) is converted by git on checkout, and not
/// by libgit2, which wrote the repository's UTF-8 silently. The git2 back-end now refuses it
/// before it writes anything, as it refuses a filter; the git-cli back-end writes it in UTF-16,
/// as `git checkout` does. An attributes file of the target that starts giving files an
/// encoding is refused too.
#[test]
fn git2_refuses_a_file_git_writes_in_another_encoding_and_git_cli_writes_it() {
    let utf16 = |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(u16::to_le_bytes).collect() };
    let r = TestRepo::new();
    r.write(".gitattributes", "*.ps1 text working-tree-encoding=UTF-16LE eol=lf\n");
    r.write("run.ps1", utf16("Write-Output one\n"));
    r.commit_all("v1");
    r.git(&["tag", "v1"]);
    r.write("run.ps1", utf16("Write-Output two\n"));
    r.commit_all("v2");
    assert_eq!(r.git(&["cat-file", "-p", "HEAD:run.ps1"]), "Write-Output two", "stored in UTF-8");

    let (_g2, git2) = config("git2");
    let before = picture(&r);
    let refused = fr(&r, &git2, &["run", "--fast", "--yes", "--target", "v1"], &[]);
    refused.code(4);
    assert!(
        refused.stderr.contains(
            "`run.ps1` is kept in the work tree in UTF-16LE (`working-tree-encoding` in its attributes), a conversion the git2 back-end (libgit2) does not make"
        ),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("so that the `git` program writes the files in UTF-16LE"), "{}", refused.stderr);
    assert_eq!(picture(&r), before, "nothing changed");

    let (_cli, cli) = config("git-cli");
    fr(&r, &cli, &["run", "--fast", "--yes", "--target", "v1"], &[]).ok();
    assert_eq!(r.read("run.ps1"), utf16("Write-Output one\n"), "written in UTF-16LE");

    // A target whose attributes start giving `*.ps1` that encoding: refused by git2 as well.
    let r = TestRepo::new();
    r.write("run.ps1", "Write-Output one\n");
    r.commit_all("v1");
    r.write(".gitattributes", "*.ps1 text working-tree-encoding=UTF-16LE\n")
        .write("run.ps1", utf16("Write-Output one\n"));
    r.commit_all("v2 (the encoding)");
    r.git(&["tag", "v2"]);
    r.git(&["rm", "-q", ".gitattributes"]);
    r.write("run.ps1", "Write-Output one\n");
    r.commit_all("v3 (back to UTF-8)");
    let refused = fr(&r, &git2, &["run", "--fast", "--yes", "--target", "v2"], &[]);
    refused.code(4);
    assert!(
        refused.stderr.contains("`.gitattributes` of the target makes git write files in UTF-16LE"),
        "{}",
        refused.stderr
    );
}
