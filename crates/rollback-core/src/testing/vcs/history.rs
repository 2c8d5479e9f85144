//! Opening, HEAD and revisions, commits and trees.

use std::process::Command;

use super::{Added, Deleted, Modified, Open, TypeChanged, backend, canon, change, cid, os, rp};
use crate::paths::RepoPath;
use crate::testing::repo::{TestRepo, clean_git_env};
use crate::vcs::{Change, CommitId, CommitInfo, Error, Head};

// ---------------------------------------------------------------------------------------------
// Opening

/// Opening a folder that is no repository fails with `NotARepository` naming the folder.
pub fn open_not_a_repository(open: &Open) {
    let dir = tempfile::tempdir().unwrap();
    match open(dir.path()) {
        Err(Error::NotARepository { path, source }) => {
            assert_eq!(path, dir.path());
            assert!(source.is_some());
        }
        Err(e) => panic!("expected NotARepository, got {e:?}"),
        Ok(b) => panic!("opened a non-repository as {}", b.workdir().display()),
    }
}

/// Opening a bare repository fails with `BareRepository`: there is no work tree to roll back.
pub fn open_bare_repository(open: &Open) {
    let dir = tempfile::tempdir().unwrap();
    let out = clean_git_env(&mut Command::new("git")).args(["init", "-q", "--bare"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success());
    match open(dir.path()) {
        Err(Error::BareRepository { path }) => assert_eq!(canon(&path), canon(dir.path())),
        Err(e) => panic!("expected BareRepository, got {e:?}"),
        Ok(_) => panic!("opened a bare repository"),
    }
}

/// Opening a subfolder finds the repository's root, git dir and index.
pub fn open_discovers_from_subfolder(open: &Open) {
    let r = TestRepo::new();
    r.write("a/b/c.txt", "x");
    r.commit_all("one");
    let b = open(&r.path().join("a/b")).unwrap();
    let root = canon(r.path());
    assert_eq!(b.workdir(), root);
    assert_eq!(b.git_dir(), root.join(".git"));
    assert_eq!(b.index_path(), root.join(".git/index"));
    assert!(b.name() == "git2" || b.name() == "git-cli");
}

/// A linked worktree has its own work tree, index and HEAD, and the main git dir.
pub fn open_linked_worktree(open: &Open) {
    let r = TestRepo::new();
    r.write("a.txt", "x");
    r.commit_all("one");
    let parent = tempfile::tempdir().unwrap();
    let wt = parent.path().join("linked");
    r.git(&["worktree", "add", "-q", "-b", "side", wt.to_str().unwrap()]);
    let b = open(&wt).unwrap();
    let root = canon(r.path());
    assert_eq!(b.workdir(), canon(&wt));
    assert_eq!(b.git_dir(), root.join(".git"));
    assert_eq!(b.index_path(), root.join(".git/worktrees/linked/index"));
    assert_eq!(b.head().unwrap().branch.as_deref(), Some("side"));
}

// ---------------------------------------------------------------------------------------------
// HEAD and revisions

/// HEAD on a branch without commits is `UnbornBranch` naming the branch.
pub fn unborn_branch(open: &Open) {
    let r = TestRepo::new();
    let b = backend(open, &r);
    match b.head() {
        Err(Error::UnbornBranch { branch }) => assert_eq!(branch, "main"),
        other => panic!("expected UnbornBranch, got {other:?}"),
    }
}

/// HEAD names its branch, or none when detached.
pub fn head_on_branch_and_detached(open: &Open) {
    let r = TestRepo::new();
    let [v1, _, v3] = r.three_releases();
    let b = backend(open, &r);
    assert_eq!(b.head().unwrap(), Head { commit: cid(&v3), branch: Some("main".into()) });
    r.git(&["checkout", "-q", "--detach", "v1"]);
    assert_eq!(b.head().unwrap(), Head { commit: cid(&v1), branch: None });
}

/// Full and short ids, branches, tags (annotated too), `HEAD~n` resolve to commits; anything else
/// (options, ranges, trees, paths) is `UnknownRevision`.
pub fn resolve_revisions(open: &Open) {
    let r = TestRepo::new();
    let [v1, v2, v3] = r.three_releases();
    r.git(&["tag", "-a", "-m", "annotated", "ann", &v1]);
    r.git(&["branch", "old", &v2]);
    let b = backend(open, &r);
    assert_eq!(b.resolve(&v2).unwrap(), cid(&v2));
    assert_eq!(b.resolve(&v2[..7]).unwrap(), cid(&v2));
    assert_eq!(b.resolve("main").unwrap(), cid(&v3));
    assert_eq!(b.resolve("old").unwrap(), cid(&v2));
    assert_eq!(b.resolve("v1").unwrap(), cid(&v1));
    assert_eq!(b.resolve("ann").unwrap(), cid(&v1));
    assert_eq!(b.resolve("HEAD").unwrap(), cid(&v3));
    assert_eq!(b.resolve("HEAD~1").unwrap(), cid(&v2));
    assert_eq!(b.resolve("HEAD~2").unwrap(), cid(&v1));
    // Under 4 hex digits, even the start of a commit's id, is no short hash (git's minimum).
    let bad = ["nope", "-h", "--all", "", "HEAD~9", "HEAD^{tree}", "HEAD:README.md", "v1..v2", "refs/heads/nope"];
    for bad in bad.into_iter().chain(["BAD", "abc", &v1[..3]]) {
        match b.resolve(bad) {
            Err(Error::UnknownRevision { rev }) => assert_eq!(rev, bad),
            other => panic!("{}: resolve({bad:?}) gave {other:?}", b.name()),
        }
    }
}

/// A name that a tag and a branch both have, on different commits, is `AmbiguousRevision` (git
/// takes the tag, with a warning), and so is a revision built on it; so is a branch named like
/// the short hash of another commit. On the same commit, or named in full, it resolves.
pub fn resolve_ambiguous_ref_name(open: &Open) {
    let r = TestRepo::new();
    let [v1, v2, v3] = r.three_releases();
    r.git(&["tag", "release", &v1]);
    r.git(&["branch", "release", &v2]);
    r.git(&["tag", "same", &v3]);
    r.git(&["branch", "same", &v3]);
    let short = &v1[..8];
    r.git(&["branch", short, &v3]);
    let b = backend(open, &r);
    for rev in ["release", "release^0", short] {
        match b.resolve(rev) {
            Err(Error::AmbiguousRevision { rev: got }) => assert_eq!(got, rev),
            other => panic!("{}: expected AmbiguousRevision for {rev}, got {other:?}", b.name()),
        }
    }
    assert_eq!(b.resolve("refs/tags/release").unwrap(), cid(&v1));
    assert_eq!(b.resolve("tags/release").unwrap(), cid(&v1));
    assert_eq!(b.resolve("refs/heads/release^0").unwrap(), cid(&v2));
    assert_eq!(b.resolve("same").unwrap(), cid(&v3));
    assert_eq!(b.resolve(&v1).unwrap(), cid(&v1), "a full hash is never ambiguous");
}

/// A short id shared by two objects is `AmbiguousRevision`; a blob's id is no commit.
pub fn resolve_ambiguous_short_hash(open: &Open) {
    let r = TestRepo::new();
    r.write("a.txt", "a");
    r.commit_all("one");
    // Write blobs until two ids share their first 4 digits (a few hundred on average).
    let blobs = tempfile::tempdir().unwrap();
    let files: Vec<String> = (0..1500)
        .map(|i| {
            let p = blobs.path().join(format!("b{i}"));
            std::fs::write(&p, format!("blob number {i}\n")).unwrap();
            p.to_str().unwrap().to_owned()
        })
        .collect();
    let mut args = vec!["hash-object", "-w"];
    args.extend(files.iter().map(String::as_str));
    let ids = r.git(&args);
    let mut seen = std::collections::HashMap::new();
    let mut prefix = None;
    for id in ids.lines() {
        if seen.insert(id[..4].to_owned(), id.to_owned()).is_some() {
            prefix = Some(id[..4].to_owned());
            break;
        }
    }
    let prefix = prefix.expect("1500 blobs share a 4-digit prefix");
    let b = backend(open, &r);
    match b.resolve(&prefix) {
        Err(Error::AmbiguousRevision { rev }) => assert_eq!(rev, prefix),
        other => panic!("{}: expected AmbiguousRevision for {prefix}, got {other:?}", b.name()),
    }
    // A blob's full id names no commit.
    let blob = &seen[&prefix];
    assert!(matches!(b.resolve(blob), Err(Error::UnknownRevision { .. })));
}

/// Commit summary, author and time; ancestry between releases and sibling branches.
pub fn commit_info_and_ancestry(open: &Open) {
    let r = TestRepo::new();
    let [v1, v2, v3] = r.three_releases();
    let b = backend(open, &r);
    assert_eq!(
        b.commit_info(&cid(&v2)).unwrap(),
        CommitInfo {
            id: cid(&v2),
            summary: "release v2: users".into(),
            author: "Test Author".into(),
            time: 1_765_000_120
        }
    );
    assert!(b.is_ancestor(&cid(&v1), &cid(&v3)).unwrap());
    assert!(!b.is_ancestor(&cid(&v3), &cid(&v1)).unwrap());
    assert!(b.is_ancestor(&cid(&v2), &cid(&v2)).unwrap());
    // Two sibling branches: neither is an ancestor of the other.
    r.git(&["checkout", "-q", "-b", "side", &v1]);
    r.write("side.txt", "s");
    let side = r.commit_all("side work\n\nbody text");
    assert!(!b.is_ancestor(&cid(&side), &cid(&v3)).unwrap());
    assert!(!b.is_ancestor(&cid(&v3), &cid(&side)).unwrap());
    assert_eq!(b.commit_info(&cid(&side)).unwrap().summary, "side work");
}

/// The commits between two, newest first, limited, across a merge.
pub fn commits_between_newest_first(open: &Open) {
    let r = TestRepo::new();
    let [v1, v2, v3] = r.three_releases();
    let b = backend(open, &r);
    let ids = |v: Vec<CommitInfo>| v.into_iter().map(|c| c.id).collect::<Vec<_>>();
    assert_eq!(ids(b.commits_between(&cid(&v1), &cid(&v3), 10).unwrap()), [cid(&v3), cid(&v2)]);
    assert_eq!(ids(b.commits_between(&cid(&v1), &cid(&v3), 1).unwrap()), [cid(&v3)]);
    assert_eq!(ids(b.commits_between(&cid(&v1), &cid(&v3), 0).unwrap()), Vec::<CommitId>::new());
    assert_eq!(ids(b.commits_between(&cid(&v3), &cid(&v1), 10).unwrap()), Vec::<CommitId>::new());
    let full = b.commits_between(&cid(&v2), &cid(&v3), 5).unwrap();
    assert_eq!(
        full,
        [CommitInfo {
            id: cid(&v3),
            summary: "release v3: payments (broken)".into(),
            author: "Test Author".into(),
            time: 1_765_000_180,
        }]
    );
    // A merge: both sides' commits, newest first by commit time.
    r.git(&["checkout", "-q", "-b", "side", &v1]);
    r.write("side.txt", "s");
    let side = r.commit_all("side");
    r.git(&["checkout", "-q", "main"]);
    r.git(&["merge", "-q", "--no-edit", "side"]);
    let merge = r.head();
    assert_eq!(
        ids(b.commits_between(&cid(&v1), &cid(&merge), 10).unwrap()),
        [cid(&merge), cid(&side), cid(&v3), cid(&v2)]
    );
}

// ---------------------------------------------------------------------------------------------
// Trees

/// Two commits exercising every change kind. Returns (from, to).
pub(super) fn diff_fixture(r: &TestRepo) -> (String, String) {
    r.write("keep.txt", "same\n")
        .write("mod.txt", "old\n")
        .write("del.txt", "bye\n")
        .write("to_link", "file\n")
        .symlink("to_file", "keep.txt")
        .write("exec.sh", "#!/bin/sh\n")
        .write("dir/sub/deep.txt", "deep\n")
        .write("dir/gone/x.txt", "x\n")
        .write("becomes_dir", "f\n");
    let from = r.commit_all("from");
    r.write("mod.txt", "new content\n")
        .remove("del.txt")
        .remove("to_link")
        .symlink("to_link", "keep.txt")
        .remove("to_file")
        .write("to_file", "now a file\n")
        .chmod("exec.sh", 0o755)
        .write("dir/sub/deep.txt", "deeper\n")
        .write("add/new.txt", "new\n")
        .remove("becomes_dir")
        .write("becomes_dir/inner.txt", "in\n");
    std::fs::remove_dir_all(r.path().join("dir/gone")).unwrap();
    let to = r.commit_all("to");
    (from, to)
}

/// A diff between two commits lists every change kind (added, deleted, modified, mode, type
/// changes, file to folder), sorted, without renames.
pub fn diff_kinds(open: &Open) {
    let r = TestRepo::new();
    let (from, to) = diff_fixture(&r);
    let b = backend(open, &r);
    assert_eq!(
        b.diff(&cid(&from), &cid(&to)).unwrap(),
        [
            change("add/new.txt", Added),
            change("becomes_dir", Deleted),
            change("becomes_dir/inner.txt", Added),
            change("del.txt", Deleted),
            change("dir/gone/x.txt", Deleted),
            change("dir/sub/deep.txt", Modified),
            change("exec.sh", Modified),
            change("mod.txt", Modified),
            change("to_file", TypeChanged),
            change("to_link", TypeChanged),
        ]
    );
    let back = b.diff(&cid(&to), &cid(&from)).unwrap();
    assert_eq!(back.iter().filter(|c| c.kind == Added).count(), 3);
    assert_eq!(back[0], change("add/new.txt", Deleted));
    assert_eq!(b.diff(&cid(&to), &cid(&to)).unwrap(), []);
}

/// A moved file is a deletion and an addition, never a rename.
pub fn diff_without_renames(open: &Open) {
    let r = TestRepo::new();
    r.write("a.txt", "a fairly long line of content that stays the same\n");
    let from = r.commit_all("from");
    r.git(&["mv", "a.txt", "b.txt"]);
    let to = r.commit_all("to");
    let b = backend(open, &r);
    assert_eq!(b.diff(&cid(&from), &cid(&to)).unwrap(), [change("a.txt", Deleted), change("b.txt", Added)]);
}

/// A submodule (gitlink) on either side of a change is marked: moved to another commit,
/// added, removed, and a file that became one. Plain files are not.
pub fn diff_marks_submodules(open: &Open) {
    let r = TestRepo::new();
    let (one, two) = ("1".repeat(40), "2".repeat(40));
    r.write("a.txt", "a\n").write("f", "a file\n").write("gone/keep.txt", "k\n");
    r.git(&["add", "-A"]);
    r.git(&["update-index", "--add", "--cacheinfo", &format!("160000,{one},vendor/lib")]);
    r.git(&["update-index", "--add", "--cacheinfo", &format!("160000,{one},gone/sub")]);
    r.git(&["commit", "-q", "-m", "from"]);
    let from = r.git(&["rev-parse", "HEAD"]);
    r.write("a.txt", "b\n");
    r.git(&["add", "a.txt"]);
    r.git(&["update-index", "--cacheinfo", &format!("160000,{two},vendor/lib")]);
    r.git(&["update-index", "--add", "--cacheinfo", &format!("160000,{one},new/sub")]);
    r.git(&["rm", "-q", "--cached", "gone/sub", "f"]);
    r.git(&["update-index", "--add", "--cacheinfo", &format!("160000,{two},f")]);
    r.git(&["commit", "-q", "-m", "to"]);
    let to = r.git(&["rev-parse", "HEAD"]);
    let b = backend(open, &r);
    let sub = |path: &str, kind| Change { submodule: true, ..change(path, kind) };
    assert_eq!(
        b.diff(&cid(&from), &cid(&to)).unwrap(),
        [
            change("a.txt", Modified),
            sub("f", TypeChanged),
            sub("gone/sub", Deleted),
            sub("new/sub", Added),
            sub("vendor/lib", Modified),
        ]
    );
}

/// Tracked paths at a commit, sorted bytewise, odd names included.
pub fn tracked_paths_sorted(open: &Open) {
    let r = TestRepo::new();
    r.write("b.txt", "b")
        .write("a/z.txt", "z")
        .write("a.b", "ab")
        .write(os(b"bad\xff.txt"), "bad")
        .write("new\nline", "nl")
        .symlink("link", "b.txt");
    let c = r.commit_all("c");
    let b = backend(open, &r);
    let expected: Vec<RepoPath> =
        [&b"a.b"[..], b"a/z.txt", b"b.txt", b"bad\xff.txt", b"link", b"new\nline"].iter().map(rp).collect();
    assert_eq!(b.tracked_paths(&cid(&c)).unwrap(), expected);
}

/// A file's bytes at a commit (symlinks as their target; folders, missing paths and patterns as
/// `None`).
pub fn read_file_at_commit(open: &Open) {
    let r = TestRepo::new();
    r.write("dir/f.txt", "v1\n").write(os(b"odd \"name\"\t\xff"), "odd").symlink("link", "dir/f.txt");
    let c1 = r.commit_all("one");
    r.write("dir/f.txt", "v2\n").write("-dash.txt", "dash");
    let c2 = r.commit_all("two");
    let b = backend(open, &r);
    assert_eq!(b.read_file_at(&cid(&c1), &rp("dir/f.txt")).unwrap(), Some(b"v1\n".to_vec()));
    assert_eq!(b.read_file_at(&cid(&c2), &rp("dir/f.txt")).unwrap(), Some(b"v2\n".to_vec()));
    assert_eq!(b.read_file_at(&cid(&c1), &rp(b"odd \"name\"\t\xff")).unwrap(), Some(b"odd".to_vec()));
    assert_eq!(b.read_file_at(&cid(&c1), &rp("link")).unwrap(), Some(b"dir/f.txt".to_vec()));
    assert_eq!(b.read_file_at(&cid(&c2), &rp("-dash.txt")).unwrap(), Some(b"dash".to_vec()));
    assert_eq!(b.read_file_at(&cid(&c1), &rp("-dash.txt")).unwrap(), None);
    assert_eq!(b.read_file_at(&cid(&c1), &rp("dir")).unwrap(), None);
    assert_eq!(b.read_file_at(&cid(&c1), &rp("dir/missing")).unwrap(), None);
    assert_eq!(b.read_file_at(&cid(&c1), &rp("di*")).unwrap(), None);
}
