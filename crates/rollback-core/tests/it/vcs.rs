//! `VcsBackend` conformance: the exported suite (`rollback_core::testing::vcs`) against both
//! backends, one test per case and backend, and the two backends compared on one messy
//! repository.

use std::path::Path;

use rollback_core::testing::vcs as suite;
use rollback_core::vcs::cli::GitCliBackend;
use rollback_core::vcs::git2::Git2Backend;
use rollback_core::vcs::{Error, VcsBackend};

fn open_git2(dir: &Path) -> Result<Box<dyn VcsBackend>, Error> {
    Ok(Box::new(Git2Backend::open(dir)?))
}

fn open_cli(dir: &Path) -> Result<Box<dyn VcsBackend>, Error> {
    Ok(Box::new(GitCliBackend::open(dir)?))
}

/// The command line with its libgit2 reader: what `vcs::open` and the engine use.
fn open_cli_reader(dir: &Path) -> Result<Box<dyn VcsBackend>, Error> {
    Ok(Box::new(GitCliBackend::open_with_reader(dir)?))
}

#[test]
fn both_backends_agree() {
    suite::backends_agree(&open_git2, &open_cli);
    suite::backends_agree(&open_cli, &open_cli_reader);
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod git2 {
            $(#[test] fn $case() { super::suite::$case(&super::open_git2) })*
        }
        mod git_cli {
            $(#[test] fn $case() { super::suite::$case(&super::open_cli) })*
        }
        mod git_cli_reader {
            $(#[test] fn $case() { super::suite::$case(&super::open_cli_reader) })*
        }

        /// A case added to the suite gets a test here too.
        #[test]
        fn every_case_of_the_suite_is_run() {
            let here = [$(stringify!($case)),*];
            let suite: Vec<&str> = suite::CASES.iter().map(|c| c.name).collect();
            assert_eq!(here.as_slice(), suite.as_slice());
        }
    };
}

conformance!(
    open_not_a_repository,
    open_bare_repository,
    open_discovers_from_subfolder,
    open_linked_worktree,
    open_separate_git_dir,
    open_submodule,
    unborn_branch,
    head_on_branch_and_detached,
    resolve_revisions,
    resolve_ambiguous_short_hash,
    resolve_ambiguous_ref_name,
    commit_info_and_ancestry,
    commits_between_newest_first,
    diff_kinds,
    diff_without_renames,
    diff_marks_submodules,
    tracked_paths_sorted,
    read_file_at_commit,
    status_kinds,
    status_ignored_folder_with_tracked_files,
    status_odd_names,
    status_conflict,
    status_clean_and_unborn,
    status_shows_flagged_changes,
    staged_blobs_lists_index_changes,
    staged_blobs_on_unborn_branch,
    write_blob_and_has_object,
    reset_hard_moves_branch_index_and_tree,
    reset_hard_forward_and_detached,
    reset_hard_during_a_conflicted_merge,
    reset_hard_over_flagged_entries,
    reset_hard_never_writes_through_a_symlinked_folder,
    reset_hard_over_things_in_the_way,
    checkout_branch_at_from_other_branch,
    checkout_branch_at_current_branch,
    refs_set_read_delete,
);

/// Runs git in `repo` with its committer date (that of reflog entries too) set to `date`.
fn git_at(repo: &rollback_testkit::TestRepo, date: &str, args: &[&str]) {
    let mut cmd = std::process::Command::new("git");
    rollback_testkit::clean_git_env(&mut cmd)
        .current_dir(repo.path())
        .env("GIT_COMMITTER_DATE", date)
        .env("GIT_AUTHOR_DATE", date)
        .args(args);
    assert!(cmd.status().unwrap().success(), "git {args:?}");
}

/// `head_arrived_at`: when HEAD moved onto its commit (the reflog), not the commit's own date.
/// A linked worktree reads its own reflog (its git dir).
#[test]
fn both_backends_know_when_head_arrived_at_its_commit() {
    const Y2001: i64 = 978_307_200;
    const Y2030: i64 = 1_893_456_000;
    let repo = rollback_testkit::TestRepo::new();
    let [v1, _, _] = repo.three_releases();
    // A commit dated 2001: its reflog entry says 2001 too.
    repo.write("old.txt", "old");
    git_at(&repo, "@978307200 +0000", &["add", "-A"]);
    git_at(&repo, "@978307200 +0000", &["commit", "-q", "-m", "old"]);
    let b = Git2Backend::open(repo.path()).unwrap();
    assert_eq!(b.head_arrived_at().unwrap(), Some(Y2001));
    // Moving HEAD away and back onto it in 2030: it arrived in 2030, whatever the commit's date.
    let old = repo.head();
    git_at(&repo, "@1800000000 +0000", &["reset", "-q", "--hard", &v1]);
    git_at(&repo, "@1893456000 +0000", &["reset", "-q", "--hard", &old]);
    assert_eq!(b.head_arrived_at().unwrap(), Some(Y2030));
    assert_eq!(b.commit_info(&b.head().unwrap().commit).unwrap().time, Y2001);
    // A checkout of the same commit on another branch is not an arrival.
    git_at(&repo, "@1900000000 +0000", &["checkout", "-q", "-B", "other"]);
    assert_eq!(b.head_arrived_at().unwrap(), Some(Y2030));
    // The git CLI backend reads the same reflog.
    assert_eq!(GitCliBackend::open(repo.path()).unwrap().head_arrived_at().unwrap(), Some(Y2030));
    // A linked worktree has its own HEAD and reflog.
    let linked = tempfile::tempdir().unwrap();
    let wt = linked.path().join("wt");
    git_at(&repo, "@1950000000 +0000", &["worktree", "add", "-q", wt.to_str().unwrap(), &v1]);
    assert_eq!(Git2Backend::open(&wt).unwrap().head_arrived_at().unwrap(), Some(1_950_000_000));
    assert_eq!(GitCliBackend::open(&wt).unwrap().head_arrived_at().unwrap(), Some(1_950_000_000));
    assert_eq!(b.head_arrived_at().unwrap(), Some(Y2030));
}

/// With its libgit2 reader, the command-line backend answers reads without starting `git`:
/// with no `git` on `PATH`, HEAD, revisions, commits, ancestry, diffs, trees, refs and the
/// flagged entries are still read, where the backend without a reader cannot even read HEAD.
#[test]
fn git_cli_reader_reads_without_a_git_process() {
    let repo = rollback_testkit::TestRepo::new();
    let [v1, _, v3] = repo.three_releases();
    repo.git(&["update-ref", "refs/forge-rollback/pin", &v1]);
    repo.write("staged.txt", "staged\n");
    repo.git(&["add", "staged.txt"]);
    let with_reader = GitCliBackend::open_with_reader(repo.path()).unwrap();
    let without = GitCliBackend::open(repo.path()).unwrap();
    let empty = tempfile::tempdir().unwrap();
    // SAFETY: nextest runs each test in its own process; no other thread reads PATH.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("PATH", empty.path());
    }
    assert!(matches!(without.head(), Err(Error::GitNotFound(_))));
    let b: &dyn VcsBackend = &with_reader;
    let head = b.head().unwrap();
    assert_eq!(head.commit.as_str(), v3);
    let v1_id = b.resolve("HEAD~2").unwrap();
    assert_eq!(v1_id.as_str(), v1);
    assert_eq!(b.commit_info(&v1_id).unwrap().id, v1_id);
    assert!(b.is_ancestor(&v1_id, &head.commit).unwrap());
    assert_eq!(b.commits_between(&v1_id, &head.commit, 10).unwrap().len(), 2);
    assert!(!b.diff(&head.commit, &v1_id).unwrap().is_empty());
    assert!(!b.tracked_paths(&v1_id).unwrap().is_empty());
    assert_eq!(b.read_ref("refs/forge-rollback/pin").unwrap(), Some(v1_id));
    assert!(b.flagged().unwrap().is_empty());
}

/// A checkout converts a path's bytes only through attribute files in its folder or above
/// (or settings): an attributes file elsewhere in the tree does not count, for any backend.
#[test]
fn checkout_converts_looks_at_the_attribute_files_above_the_paths() {
    let repo = rollback_testkit::TestRepo::new();
    repo.write("docs/.gitattributes", "*.txt text eol=crlf\n");
    repo.write("docs/guide/a.txt", "a\n");
    repo.write("src/main.txt", "m\n");
    repo.write("lib/a/b/.gitattributes", "*.txt text\n");
    repo.write("lib/a/b/c/d.txt", "d\n");
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "-m", "attributes"]);
    let path = |s: &str| rollback_core::paths::RepoPath::new(s).unwrap();
    let (docs, src) = (path("docs/guide/a.txt"), path("src/main.txt"));
    for open in [open_git2, open_cli, open_cli_reader] {
        let b = open(repo.path()).unwrap();
        let head = b.head().unwrap().commit;
        assert!(!b.checkout_converts(&head, &[&src]).unwrap(), "{}: src/ has no attributes", b.name());
        assert!(b.checkout_converts(&head, &[&src, &docs]).unwrap(), "{}: docs/ has", b.name());
        let (deep, new) = (path("lib/a/b/c/d.txt"), path("not/in/the/tree.txt"));
        assert!(b.checkout_converts(&head, &[&deep]).unwrap(), "{}: lib/a/b/ has, three folders up", b.name());
        assert!(!b.checkout_converts(&head, &[&new]).unwrap(), "{}: a folder the tree lacks", b.name());
    }
    repo.write(".gitattributes", "* -text\n");
    repo.git(&["add", "-A"]);
    repo.git(&["commit", "-q", "-m", "root attributes"]);
    for open in [open_git2, open_cli, open_cli_reader] {
        let b = open(repo.path()).unwrap();
        let head = b.head().unwrap().commit;
        assert!(b.checkout_converts(&head, &[&src]).unwrap(), "{}: the root's apply to all", b.name());
    }
}

/// A reset that would write a file through a filter program (`filter=rot13`, a smudge command
/// in the configuration, as git LFS and git-crypt set up): the git2 backend stops before it
/// writes anything, whether the commits change the file or only a local edit is reverted, and
/// `filter_not_run` names it beforehand; the command-line backend runs the filter.
#[test]
fn a_reset_through_a_filter_program_is_refused_by_git2_before_writing() {
    let repo = rollback_testkit::TestRepo::new();
    let rot13 = "tr A-Za-z N-ZA-Mn-za-m";
    repo.git(&["config", "filter.rot13.smudge", rot13]);
    repo.git(&["config", "filter.rot13.clean", rot13]);
    repo.write(".gitattributes", "*.secret filter=rot13\n");
    repo.write("app.secret", "one\n");
    repo.commit_all("v1");
    let v1 = rollback_core::vcs::CommitId::new(repo.head()).unwrap();
    repo.write("app.secret", "two\n");
    repo.commit_all("v2");
    let v2 = rollback_core::vcs::CommitId::new(repo.head()).unwrap();
    let secret = rollback_core::paths::RepoPath::new("app.secret").unwrap();
    let b = Git2Backend::open(repo.path()).unwrap();
    let refused = |e: Error| matches!(&e, Error::FilterNotRun { path, driver, by_attributes: false } if path == "app.secret" && driver == "rot13");

    // The commits change it.
    assert!(b.filter_not_run(&v1, &[&secret]).unwrap().is_some_and(refused));
    let index = repo.index_state();
    assert!(b.reset_hard(&v1, "test").is_err_and(refused));
    assert_eq!((repo.head(), repo.read("app.secret"), repo.index_state()), (v2.to_string(), b"two\n".to_vec(), index));

    // Only a local edit, reverted by a reset to HEAD.
    repo.write("app.secret", "edited\n");
    assert!(b.reset_hard(&v2, "test").is_err_and(refused));
    assert_eq!(repo.read("app.secret"), b"edited\n");

    // The command-line backend writes it through the filter, and does not refuse.
    let cli = GitCliBackend::open(repo.path()).unwrap();
    assert!(cli.filter_not_run(&v1, &[&secret]).unwrap().is_none());
    cli.reset_hard(&v1, "test").unwrap();
    assert_eq!(repo.read("app.secret"), b"one\n");
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
}
