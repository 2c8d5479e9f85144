//! `VcsBackend` conformance suite: every test runs against both backends.
//!
//! Each test is a function taking a [`Factory`]; the `conformance!` macro at the bottom
//! generates `git2::<test>` and `git_cli::<test>` from one list. Tests build real repositories
//! with [`TestRepo`] and compare results with concrete expected values, so both backends are
//! held to the same behaviour (that of `git` itself).

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use rollback_core::paths::RepoPath;
use rollback_core::vcs::cli::GitCliBackend;
use rollback_core::vcs::git2::Git2Backend;
use rollback_core::vcs::{
    Change, ChangeKind, CommitId, CommitInfo, Error, Head, StagedBlob, StatusEntry, StatusKind, VcsBackend,
};
use rollback_testkit::{Node, TestRepo, clean_git_env};

/// Opens a backend on a folder.
type Factory = fn(&Path) -> Result<Box<dyn VcsBackend>, Error>;

fn open_git2(dir: &Path) -> Result<Box<dyn VcsBackend>, Error> {
    Ok(Box::new(Git2Backend::open(dir)?))
}

fn open_cli(dir: &Path) -> Result<Box<dyn VcsBackend>, Error> {
    Ok(Box::new(GitCliBackend::open(dir)?))
}

fn open(factory: Factory, repo: &TestRepo) -> Box<dyn VcsBackend> {
    factory(repo.path()).expect("open repository")
}

fn rp(bytes: impl AsRef<[u8]>) -> RepoPath {
    RepoPath::new(bytes.as_ref().to_vec()).unwrap()
}

fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}

fn cid(hex: &str) -> CommitId {
    CommitId::new(hex).unwrap()
}

fn tracked(path: impl AsRef<[u8]>, staged: Option<ChangeKind>, unstaged: Option<ChangeKind>) -> StatusEntry {
    StatusEntry { path: rp(path), kind: StatusKind::Tracked { staged, unstaged } }
}

fn untracked(path: impl AsRef<[u8]>) -> StatusEntry {
    StatusEntry { path: rp(path), kind: StatusKind::Untracked }
}

fn ignored(path: impl AsRef<[u8]>) -> StatusEntry {
    StatusEntry { path: rp(path), kind: StatusKind::Ignored }
}

fn change(path: impl AsRef<[u8]>, kind: ChangeKind) -> Change {
    Change { path: rp(path), kind }
}

fn canon(p: &Path) -> PathBuf {
    p.canonicalize().unwrap()
}

use ChangeKind::{Added, Deleted, Modified, TypeChanged};

// ---------------------------------------------------------------------------------------------
// Opening

fn open_not_a_repository(factory: Factory) {
    let dir = tempfile::tempdir().unwrap();
    match factory(dir.path()) {
        Err(Error::NotARepository { path, source }) => {
            assert_eq!(path, dir.path());
            assert!(source.is_some());
        }
        Err(e) => panic!("expected NotARepository, got {e:?}"),
        Ok(b) => panic!("opened a non-repository as {}", b.workdir().display()),
    }
}

fn open_bare_repository(factory: Factory) {
    let dir = tempfile::tempdir().unwrap();
    let out = clean_git_env(&mut Command::new("git")).args(["init", "-q", "--bare"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success());
    match factory(dir.path()) {
        Err(Error::BareRepository { path }) => assert_eq!(canon(&path), canon(dir.path())),
        Err(e) => panic!("expected BareRepository, got {e:?}"),
        Ok(_) => panic!("opened a bare repository"),
    }
}

fn open_discovers_from_subfolder(factory: Factory) {
    let r = TestRepo::new();
    r.write("a/b/c.txt", "x");
    r.commit_all("one");
    let b = factory(&r.path().join("a/b")).unwrap();
    let root = canon(r.path());
    assert_eq!(b.workdir(), root);
    assert_eq!(b.git_dir(), root.join(".git"));
    assert_eq!(b.index_path(), root.join(".git/index"));
    assert!(b.name() == "git2" || b.name() == "git-cli");
}

fn open_linked_worktree(factory: Factory) {
    let r = TestRepo::new();
    r.write("a.txt", "x");
    r.commit_all("one");
    let parent = tempfile::tempdir().unwrap();
    let wt = parent.path().join("linked");
    r.git(&["worktree", "add", "-q", "-b", "side", wt.to_str().unwrap()]);
    let b = factory(&wt).unwrap();
    let root = canon(r.path());
    assert_eq!(b.workdir(), canon(&wt));
    assert_eq!(b.git_dir(), root.join(".git"));
    assert_eq!(b.index_path(), root.join(".git/worktrees/linked/index"));
    assert_eq!(b.head().unwrap().branch.as_deref(), Some("side"));
}

// ---------------------------------------------------------------------------------------------
// HEAD and revisions

fn unborn_branch(factory: Factory) {
    let r = TestRepo::new();
    let b = open(factory, &r);
    match b.head() {
        Err(Error::UnbornBranch { branch }) => assert_eq!(branch, "main"),
        other => panic!("expected UnbornBranch, got {other:?}"),
    }
}

fn head_on_branch_and_detached(factory: Factory) {
    let r = TestRepo::new();
    let [v1, _, v3] = r.three_releases();
    let b = open(factory, &r);
    assert_eq!(b.head().unwrap(), Head { commit: cid(&v3), branch: Some("main".into()) });
    r.git(&["checkout", "-q", "--detach", "v1"]);
    assert_eq!(b.head().unwrap(), Head { commit: cid(&v1), branch: None });
}

fn resolve_revisions(factory: Factory) {
    let r = TestRepo::new();
    let [v1, v2, v3] = r.three_releases();
    r.git(&["tag", "-a", "-m", "annotated", "ann", &v1]);
    r.git(&["branch", "old", &v2]);
    let b = open(factory, &r);
    assert_eq!(b.resolve(&v2).unwrap(), cid(&v2));
    assert_eq!(b.resolve(&v2[..7]).unwrap(), cid(&v2));
    assert_eq!(b.resolve("main").unwrap(), cid(&v3));
    assert_eq!(b.resolve("old").unwrap(), cid(&v2));
    assert_eq!(b.resolve("v1").unwrap(), cid(&v1));
    assert_eq!(b.resolve("ann").unwrap(), cid(&v1));
    assert_eq!(b.resolve("HEAD").unwrap(), cid(&v3));
    assert_eq!(b.resolve("HEAD~1").unwrap(), cid(&v2));
    assert_eq!(b.resolve("HEAD~2").unwrap(), cid(&v1));
    for bad in ["nope", "-h", "--all", "", "HEAD~9", "HEAD^{tree}", "HEAD:README.md", "v1..v2", "refs/heads/nope"] {
        match b.resolve(bad) {
            Err(Error::UnknownRevision { rev }) => assert_eq!(rev, bad),
            other => panic!("{}: resolve({bad:?}) gave {other:?}", b.name()),
        }
    }
}

fn resolve_ambiguous_short_hash(factory: Factory) {
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
    let b = open(factory, &r);
    match b.resolve(&prefix) {
        Err(Error::AmbiguousRevision { rev }) => assert_eq!(rev, prefix),
        other => panic!("{}: expected AmbiguousRevision for {prefix}, got {other:?}", b.name()),
    }
    // A blob's full id names no commit.
    let blob = &seen[&prefix];
    assert!(matches!(b.resolve(blob), Err(Error::UnknownRevision { .. })));
}

fn commit_info_and_ancestry(factory: Factory) {
    let r = TestRepo::new();
    let [v1, v2, v3] = r.three_releases();
    let b = open(factory, &r);
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

fn commits_between_newest_first(factory: Factory) {
    let r = TestRepo::new();
    let [v1, v2, v3] = r.three_releases();
    let b = open(factory, &r);
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
fn diff_fixture(r: &TestRepo) -> (String, String) {
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

fn diff_kinds(factory: Factory) {
    let r = TestRepo::new();
    let (from, to) = diff_fixture(&r);
    let b = open(factory, &r);
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

fn diff_without_renames(factory: Factory) {
    let r = TestRepo::new();
    r.write("a.txt", "a fairly long line of content that stays the same\n");
    let from = r.commit_all("from");
    r.git(&["mv", "a.txt", "b.txt"]);
    let to = r.commit_all("to");
    let b = open(factory, &r);
    assert_eq!(b.diff(&cid(&from), &cid(&to)).unwrap(), [change("a.txt", Deleted), change("b.txt", Added)]);
}

fn tracked_paths_sorted(factory: Factory) {
    let r = TestRepo::new();
    r.write("b.txt", "b")
        .write("a/z.txt", "z")
        .write("a.b", "ab")
        .write(os(b"bad\xff.txt"), "bad")
        .write("new\nline", "nl")
        .symlink("link", "b.txt");
    let c = r.commit_all("c");
    let b = open(factory, &r);
    let expected: Vec<RepoPath> =
        [&b"a.b"[..], b"a/z.txt", b"b.txt", b"bad\xff.txt", b"link", b"new\nline"].iter().map(rp).collect();
    assert_eq!(b.tracked_paths(&cid(&c)).unwrap(), expected);
}

fn read_file_at_commit(factory: Factory) {
    let r = TestRepo::new();
    r.write("dir/f.txt", "v1\n").write(os(b"odd \"name\"\t\xff"), "odd").symlink("link", "dir/f.txt");
    let c1 = r.commit_all("one");
    r.write("dir/f.txt", "v2\n").write("-dash.txt", "dash");
    let c2 = r.commit_all("two");
    let b = open(factory, &r);
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

// ---------------------------------------------------------------------------------------------
// Status

fn status_kinds(factory: Factory) {
    let r = TestRepo::new();
    r.write(".gitignore", "build/\n*.log\n")
        .write("mod.txt", "m\n")
        .write("staged.txt", "s\n")
        .write("both.txt", "b\n")
        .write("del.txt", "d\n")
        .write("rmcached.txt", "r\n")
        .write("exec.sh", "x\n")
        .write("type.txt", "t\n")
        .write("clean.txt", "c\n");
    r.commit_all("base");
    r.write("mod.txt", "modified\n")
        .write("staged.txt", "staged!\n")
        .write("both.txt", "both staged\n")
        .write("added.txt", "new\n");
    r.git(&["add", "staged.txt", "both.txt", "added.txt"]);
    r.write("both.txt", "both staged and modified\n")
        .remove("del.txt")
        .chmod("exec.sh", 0o755)
        .remove("type.txt")
        .symlink("type.txt", "clean.txt")
        .write("u/a/b/c.txt", "c")
        .write("u/d.txt", "d")
        .write("build/out.o", "o")
        .write("build/sub/deep.o", "o")
        .write("logs/x.log", "l")
        .write("top.log", "l");
    r.git(&["rm", "-q", "--cached", "rmcached.txt"]);
    r.write("intent.txt", "i\n");
    r.git(&["add", "-N", "intent.txt"]);
    let b = open(factory, &r);
    let mut common = vec![
        tracked("added.txt", Some(Added), None),
        tracked("both.txt", Some(Modified), Some(Modified)),
        tracked("del.txt", None, Some(Deleted)),
        tracked("exec.sh", None, Some(Modified)),
        tracked("intent.txt", None, Some(Added)),
        tracked("mod.txt", None, Some(Modified)),
        tracked("rmcached.txt", Some(Deleted), None),
        untracked("rmcached.txt"),
        tracked("staged.txt", Some(Modified), None),
        tracked("type.txt", None, Some(TypeChanged)),
        untracked("u/a/b/c.txt"),
        untracked("u/d.txt"),
    ];
    assert_eq!(b.status(false).unwrap(), common);
    common.extend([ignored("build"), ignored("logs/x.log"), ignored("top.log")]);
    common.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(b.status(true).unwrap(), common);
}

fn status_ignored_folder_with_tracked_files(factory: Factory) {
    let r = TestRepo::new();
    r.write("logs/kept.txt", "k").write("logs/t/tracked", "t").write("top.txt", "x");
    r.commit_all("base");
    r.write(".gitignore", "logs/\nbuild/\n");
    r.git(&["add", ".gitignore"]);
    r.commit_all("ignore logs");
    r.write("logs/y.txt", "y")
        .write("logs/deep/x.txt", "x")
        .write("logs/deep/d2/z", "z")
        .write("logs/t/u", "u")
        .write("logs/kept.txt", "kept, modified");
    // git lists ignored folders even when they are empty.
    std::fs::create_dir_all(r.path().join("logs/empty/empty2")).unwrap();
    std::fs::create_dir_all(r.path().join("build/x")).unwrap();
    let b = open(factory, &r);
    assert_eq!(
        b.status(true).unwrap(),
        [
            ignored("build"),
            ignored("logs/deep"),
            ignored("logs/empty"),
            tracked("logs/kept.txt", None, Some(Modified)),
            ignored("logs/t/u"),
            ignored("logs/y.txt"),
        ]
    );
    assert_eq!(b.status(false).unwrap(), [tracked("logs/kept.txt", None, Some(Modified))]);
}

fn status_odd_names(factory: Factory) {
    let r = TestRepo::new();
    let committed: [&[u8]; 8] = [
        b"sp ace.txt",
        b"new\nline.txt",
        b"quo\"te.txt",
        b"tab\there.txt",
        "caf\u{e9}.txt".as_bytes(),
        b"bad\xff.txt",
        b"dir with space/inner file.txt",
        b"back\\slash.txt",
    ];
    for name in committed {
        r.write(os(name), "1");
    }
    r.commit_all("odd");
    for name in committed {
        r.write(os(name), "changed");
    }
    let fresh: [&[u8]; 5] =
        [b"un tracked\n.txt", b"u\xfe/x.txt", b"star*.txt", b"co:lon.txt", "\u{65e5}\u{672c}/\u{8a9e}".as_bytes()];
    for name in fresh {
        r.write(os(name), "new");
    }
    r.git(&["add", "--", "star*.txt"]);
    let b = open(factory, &r);
    let mut expected: Vec<StatusEntry> = committed.iter().map(|n| tracked(n, None, Some(Modified))).collect();
    expected.extend([untracked(b"un tracked\n.txt"), untracked(b"u\xfe/x.txt"), untracked(b"co:lon.txt")]);
    expected.push(tracked("star*.txt", Some(Added), None));
    expected.push(untracked("\u{65e5}\u{672c}/\u{8a9e}"));
    expected.sort_by(|a, b| a.path.cmp(&b.path));
    let got = b.status(true).unwrap();
    assert_eq!(got, expected);
}

fn status_conflict(factory: Factory) {
    let r = TestRepo::new();
    r.write("f.txt", "base\n");
    r.commit_all("base");
    r.git(&["checkout", "-q", "-b", "side"]);
    r.write("f.txt", "side\n");
    r.commit_all("side");
    r.git(&["checkout", "-q", "main"]);
    r.write("f.txt", "main\n");
    r.commit_all("main");
    let out = r.git_output(&["merge", "-q", "side"]);
    assert!(!out.status.success());
    let b = open(factory, &r);
    assert_eq!(b.status(false).unwrap(), [tracked("f.txt", None, Some(Modified))]);
}

fn status_clean_and_unborn(factory: Factory) {
    let r = TestRepo::new();
    r.write("a.txt", "a");
    let b = open(factory, &r);
    assert_eq!(b.status(true).unwrap(), [untracked("a.txt")]);
    r.git(&["add", "a.txt"]);
    assert_eq!(b.status(true).unwrap(), [tracked("a.txt", Some(Added), None)]);
    r.commit_all("a");
    assert_eq!(b.status(true).unwrap(), []);
}

// ---------------------------------------------------------------------------------------------
// Index and objects

fn staged_blobs_lists_index_changes(factory: Factory) {
    let r = TestRepo::new();
    r.write("a.txt", "a\n").write("b.txt", "b\n").write("run.sh", "run\n").write("same.txt", "s\n");
    r.commit_all("base");
    r.write("a.txt", "a staged\n").write("c.txt", "c new\n").chmod("run.sh", 0o755);
    r.git(&["add", "a.txt", "c.txt", "run.sh"]);
    r.git(&["rm", "-q", "--cached", "b.txt"]);
    r.write("a.txt", "a unstaged on top\n").write("ita.txt", "intent to add\n");
    r.git(&["add", "-N", "ita.txt"]);
    let b = open(factory, &r);
    let oid = |path: &str| cid(&r.git(&["rev-parse", &format!(":{path}")]));
    let blob =
        |path: &str, content: &str| StagedBlob { path: rp(path), oid: oid(path), content: content.as_bytes().to_vec() };
    assert_eq!(
        b.staged_blobs().unwrap(),
        [blob("a.txt", "a staged\n"), blob("c.txt", "c new\n"), blob("run.sh", "run\n")]
    );
}

fn staged_blobs_on_unborn_branch(factory: Factory) {
    let r = TestRepo::new();
    r.write("x.txt", "x\n").write("y/z.txt", "z\n");
    let b = open(factory, &r);
    assert_eq!(b.staged_blobs().unwrap(), []);
    r.git(&["add", "-A"]);
    let got = b.staged_blobs().unwrap();
    assert_eq!(got.iter().map(|s| s.path.clone()).collect::<Vec<_>>(), [rp("x.txt"), rp("y/z.txt")]);
    assert_eq!(got[1].content, b"z\n");
    assert_eq!(got[1].oid, cid(&r.git(&["rev-parse", ":y/z.txt"])));
}

fn write_blob_and_has_object(factory: Factory) {
    let r = TestRepo::new();
    r.git(&["config", "core.autocrlf", "true"]);
    r.write(".gitattributes", "* text=auto\n");
    let b = open(factory, &r);
    let hello = cid("ce013625030ba8dba906f756967f9e9ca394464a");
    assert!(!b.has_object(&hello).unwrap());
    assert_eq!(b.write_blob(b"hello\n").unwrap(), hello);
    assert!(b.has_object(&hello).unwrap());
    assert_eq!(r.git(&["cat-file", "-p", hello.as_str()]), "hello");
    // No filters: CRLF is stored as is.
    let crlf = b.write_blob(b"a\r\nb\r\n").unwrap();
    assert_eq!(r.git(&["cat-file", "-s", crlf.as_str()]), "6");
    let empty = b.write_blob(b"").unwrap();
    assert_eq!(empty, cid("e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"));
    assert!(!b.has_object(&cid("0123456789012345678901234567890123456789")).unwrap());
}

// ---------------------------------------------------------------------------------------------
// Resetting

/// Commit A (exec bit, symlink, `only_a.txt`) and commit B on `main`. Returns (A, B, tree at A).
fn reset_fixture(r: &TestRepo) -> (String, String, rollback_testkit::TreeState) {
    r.write(".gitignore", "cache/\n")
        .write("run.sh", "#!/bin/sh\necho a\n")
        .chmod("run.sh", 0o755)
        .symlink("link", "a.txt")
        .write("a.txt", "a at A\n")
        .write("only_a.txt", "only in A\n")
        .write("dir/x.txt", "x\n");
    let a = r.commit_all("A");
    let tree_a = r.tree();
    r.write("run.sh", "#!/bin/sh\necho b\n")
        .chmod("run.sh", 0o644)
        .remove("link")
        .write("link", "now a file\n")
        .write("a.txt", "a at B, longer\n")
        .remove("only_a.txt")
        .write("new_in_b.txt", "b\n");
    std::fs::remove_dir_all(r.path().join("dir")).unwrap();
    let b = r.commit_all("B");
    (a, b, tree_a)
}

fn last_reflog(r: &TestRepo, reference: &str) -> String {
    r.git(&["reflog", "show", "-1", "--format=%gs", reference])
}

fn reset_hard_moves_branch_index_and_tree(factory: Factory) {
    let r = TestRepo::new();
    let (a, _b, tree_a) = reset_fixture(&r);
    // Mess: edits, a staged new file, untracked and ignored files, and an untracked file at a
    // path that A tracks.
    r.write("a.txt", "dirty edit\n").write("staged_new.txt", "staged\n");
    r.git(&["add", "staged_new.txt"]);
    r.write("keep.tmp", "untracked\n")
        .write("cache/blob.bin", "ignored\n")
        .write("only_a.txt", "untracked in the way\n");
    let b = open(factory, &r);
    b.reset_hard(&cid(&a), "forge-rollback: to A").unwrap();
    assert_eq!(b.head().unwrap(), Head { commit: cid(&a), branch: Some("main".into()) });
    assert_eq!(r.head(), a);
    let mut expected = tree_a.0.clone();
    expected.insert(b"keep.tmp".to_vec(), Node::File { content: b"untracked\n".to_vec(), mode: 0o644 });
    expected.insert(b"cache".to_vec(), Node::Dir);
    expected.insert(b"cache/blob.bin".to_vec(), Node::File { content: b"ignored\n".to_vec(), mode: 0o644 });
    assert_eq!(r.tree().0, expected);
    assert_eq!(r.read("only_a.txt"), b"only in A\n");
    assert!(matches!(r.tree().0.get(&b"run.sh"[..]), Some(Node::File { mode: 0o755, .. })));
    assert_eq!(r.tree().0.get(&b"link"[..]), Some(&Node::Symlink(b"a.txt".to_vec())));
    assert!(!r.exists("staged_new.txt"));
    assert_eq!(b.status(true).unwrap(), [ignored("cache"), untracked("keep.tmp")]);
    assert_eq!(b.staged_blobs().unwrap(), []);
    assert!(last_reflog(&r, "main").contains("forge-rollback: to A"), "{}", last_reflog(&r, "main"));
    assert!(last_reflog(&r, "HEAD").contains("forge-rollback: to A"), "{}", last_reflog(&r, "HEAD"));
}

fn reset_hard_forward_and_detached(factory: Factory) {
    let r = TestRepo::new();
    let (a, b_id, tree_a) = reset_fixture(&r);
    let tree_b = r.tree();
    r.git(&["checkout", "-q", "--detach", &a]);
    assert_eq!(r.tree(), tree_a);
    let b = open(factory, &r);
    b.reset_hard(&cid(&b_id), "forward").unwrap();
    assert_eq!(b.head().unwrap(), Head { commit: cid(&b_id), branch: None });
    assert_eq!(r.tree(), tree_b);
    assert_eq!(r.git(&["rev-parse", "main"]), b_id);
    b.reset_hard(&cid(&a), "back").unwrap();
    assert_eq!(b.head().unwrap(), Head { commit: cid(&a), branch: None });
    assert_eq!(r.git(&["rev-parse", "main"]), b_id);
    assert_eq!(r.tree(), tree_a);
    assert_eq!(b.status(true).unwrap(), []);
}

fn reset_hard_during_a_conflicted_merge(factory: Factory) {
    let r = TestRepo::new();
    r.write("f.txt", "base\n").write("other.txt", "o\n");
    r.commit_all("base");
    r.git(&["checkout", "-q", "-b", "side"]);
    r.write("f.txt", "side\n").write("side_only.txt", "s\n");
    r.commit_all("side");
    r.git(&["checkout", "-q", "main"]);
    r.write("f.txt", "main\n");
    let main = r.commit_all("main");
    let tree = r.tree();
    assert!(!r.git_output(&["merge", "-q", "side"]).status.success());
    assert!(r.path().join(".git/MERGE_HEAD").exists());
    let b = open(factory, &r);
    b.reset_hard(&cid(&main), "abort merge").unwrap();
    assert_eq!(r.tree(), tree);
    assert_eq!(b.status(true).unwrap(), []);
    assert!(!r.path().join(".git/MERGE_HEAD").exists());
    assert_eq!(b.head().unwrap(), Head { commit: cid(&main), branch: Some("main".into()) });
}

fn checkout_branch_at_from_other_branch(factory: Factory) {
    let r = TestRepo::new();
    let (a, b_id, tree_a) = reset_fixture(&r);
    r.git(&["checkout", "-q", "-b", "feature"]);
    r.write("feature.txt", "f\n");
    let feature = r.commit_all("feature");
    r.write("a.txt", "dirty\n");
    let b = open(factory, &r);
    b.checkout_branch_at("main", &cid(&a), "undo: back to main").unwrap();
    assert_eq!(b.head().unwrap(), Head { commit: cid(&a), branch: Some("main".into()) });
    assert_eq!(r.branch().as_deref(), Some("main"));
    assert_eq!(r.tree(), tree_a);
    assert_eq!(r.git(&["rev-parse", "feature"]), feature);
    assert_eq!(b.status(true).unwrap(), []);
    // A branch that does not exist yet is created.
    b.checkout_branch_at("rescue/one", &cid(&b_id), "undo: rescue").unwrap();
    assert_eq!(b.head().unwrap(), Head { commit: cid(&b_id), branch: Some("rescue/one".into()) });
    assert_eq!(r.git(&["rev-parse", "main"]), a);
    assert!(!r.exists("only_a.txt"));
    assert!(last_reflog(&r, "rescue/one").contains("undo: rescue"));
    assert!(b.checkout_branch_at("bad..name", &cid(&a), "x").is_err());
    assert!(b.checkout_branch_at("-x", &cid(&a), "x").is_err());
    assert_eq!(b.head().unwrap().branch.as_deref(), Some("rescue/one"));
}

fn checkout_branch_at_current_branch(factory: Factory) {
    let r = TestRepo::new();
    let (a, b_id, tree_a) = reset_fixture(&r);
    let b = open(factory, &r);
    assert_eq!(b.head().unwrap().commit, cid(&b_id));
    b.checkout_branch_at("main", &cid(&a), "undo: main to A").unwrap();
    assert_eq!(b.head().unwrap(), Head { commit: cid(&a), branch: Some("main".into()) });
    assert_eq!(r.tree(), tree_a);
    assert_eq!(b.status(true).unwrap(), []);
    assert!(last_reflog(&r, "main").contains("undo: main to A"));
}

fn refs_set_read_delete(factory: Factory) {
    let r = TestRepo::new();
    let [v1, v2, v3] = r.three_releases();
    let b = open(factory, &r);
    let name = "refs/forge-rollback/runs/20251210-173900-abcdef/from";
    assert_eq!(b.read_ref(name).unwrap(), None);
    b.set_ref(name, &cid(&v1), "rollback: remember").unwrap();
    assert_eq!(b.read_ref(name).unwrap(), Some(cid(&v1)));
    assert_eq!(r.git(&["rev-parse", name]), v1);
    b.set_ref(name, &cid(&v2), "rollback: move").unwrap();
    assert_eq!(b.read_ref(name).unwrap(), Some(cid(&v2)));
    assert_eq!(b.read_ref("refs/heads/main").unwrap(), Some(b.head().unwrap().commit));
    assert_eq!(b.read_ref("refs/tags/v1").unwrap(), Some(cid(&v1)));
    b.delete_ref(name).unwrap();
    assert_eq!(b.read_ref(name).unwrap(), None);
    assert!(r.git_output(&["rev-parse", "--verify", "-q", name]).stdout.is_empty());
    b.delete_ref(name).unwrap();
    b.delete_ref("refs/forge-rollback/never").unwrap();
    // Only full names under refs/: HEAD and branches are never touched by mistake.
    for bad in ["HEAD", "main", "-d", "refs/"] {
        assert!(matches!(b.set_ref(bad, &cid(&v1), "x"), Err(Error::UnknownRevision { .. })), "{bad}");
        assert!(matches!(b.delete_ref(bad), Err(Error::UnknownRevision { .. })), "{bad}");
    }
    assert!(b.set_ref("refs/bad..name", &cid(&v1), "x").is_err());
    assert_eq!(b.head().unwrap(), Head { commit: cid(&v3), branch: Some("main".into()) });
}

// ---------------------------------------------------------------------------------------------
// Both backends on the same repository

fn messy_repo() -> (TestRepo, String, String) {
    let r = TestRepo::new();
    let (from, to) = diff_fixture(&r);
    // Two embedded repositories: `sub` committed as a gitlink then made dirty, `nested` never
    // added.
    for dir in ["sub"] {
        r.write(format!("{dir}/inner.txt"), "inner\n");
        for args in [&["init", "-q", "-b", "main"][..], &["add", "-A"], &["commit", "-q", "-m", "inner"]] {
            let mut cmd = Command::new("git");
            let out = clean_git_env(&mut cmd).current_dir(r.path().join(dir)).args(args).output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
    }
    r.git(&["add", "sub"]);
    r.write("logs/kept.txt", "tracked inside an ignored folder\n");
    r.git(&["add", "logs/kept.txt"]);
    r.commit_all("more");
    r.write("sub/inner.txt", "dirty submodule\n").write("logs/new.txt", "ignored\n");
    r.write("nested/inner.txt", "inner\n");
    let mut cmd = Command::new("git");
    let out = clean_git_env(&mut cmd).current_dir(r.path().join("nested")).args(["init", "-q"]).output().unwrap();
    assert!(out.status.success());
    r.write(".gitignore", "node_modules/\n*.pyc\n/build\nlogs/\n")
        .write("node_modules/pkg/index.js", "x")
        .write("src/mod.pyc", "c")
        .write("src/new file.py", "n")
        .write(os(b"src/\xff odd\n\"q\".txt"), "o")
        .write("build/a/b", "b")
        .write("mod.txt", "edited again\n")
        .write("staged only.txt", "s")
        .write("empty_dir_file", "");
    std::fs::create_dir_all(r.path().join("really/empty")).unwrap();
    r.git(&["add", "staged only.txt", "mod.txt"]);
    r.write("mod.txt", "edited again and again\n").remove("keep.txt").chmod("exec.sh", 0o644);
    r.git(&["rm", "-q", "--cached", "to_file"]);
    r.write("intent.txt", "added with -N\n");
    r.git(&["add", "-N", "intent.txt"]);
    (r, from, to)
}

#[test]
fn both_backends_agree() {
    let (r, from, to) = messy_repo();
    let g = open_git2(r.path()).unwrap();
    let c = open_cli(r.path()).unwrap();
    let status = g.status(true).unwrap();
    assert_eq!(status, c.status(true).unwrap());
    assert_eq!(g.status(false).unwrap(), c.status(false).unwrap());
    assert!(status.contains(&ignored("node_modules")));
    assert!(status.contains(&ignored("build")));
    assert!(status.contains(&ignored("logs/new.txt")));
    assert!(status.contains(&untracked("nested")));
    assert!(status.contains(&tracked("sub", None, Some(Modified))));
    assert!(status.contains(&ignored("src/mod.pyc")));
    assert!(status.contains(&untracked(b"src/\xff odd\n\"q\".txt")));
    assert!(status.contains(&tracked("mod.txt", Some(Modified), Some(Modified))));
    assert!(status.windows(2).all(|w| w[0].path <= w[1].path));
    let d = g.diff(&cid(&from), &cid(&to)).unwrap();
    assert_eq!(d.len(), 10);
    assert_eq!(d, c.diff(&cid(&from), &cid(&to)).unwrap());
    assert_eq!(g.diff(&cid(&to), &cid(&from)).unwrap(), c.diff(&cid(&to), &cid(&from)).unwrap());
    assert_eq!(g.tracked_paths(&cid(&to)).unwrap(), c.tracked_paths(&cid(&to)).unwrap());
    assert_eq!(g.staged_blobs().unwrap(), c.staged_blobs().unwrap());
    assert_eq!(g.staged_blobs().unwrap().len(), 2);
    assert_eq!(g.head().unwrap(), c.head().unwrap());
    assert_eq!(
        g.commits_between(&cid(&from), &cid(&to), 9).unwrap(),
        c.commits_between(&cid(&from), &cid(&to), 9).unwrap()
    );
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod git2 {
            $(#[test] fn $test() { super::$test(super::open_git2) })*
        }
        mod git_cli {
            $(#[test] fn $test() { super::$test(super::open_cli) })*
        }
    };
}

conformance!(
    open_not_a_repository,
    open_bare_repository,
    open_discovers_from_subfolder,
    open_linked_worktree,
    unborn_branch,
    head_on_branch_and_detached,
    resolve_revisions,
    resolve_ambiguous_short_hash,
    commit_info_and_ancestry,
    commits_between_newest_first,
    diff_kinds,
    diff_without_renames,
    tracked_paths_sorted,
    read_file_at_commit,
    status_kinds,
    status_ignored_folder_with_tracked_files,
    status_odd_names,
    status_conflict,
    status_clean_and_unborn,
    staged_blobs_lists_index_changes,
    staged_blobs_on_unborn_branch,
    write_blob_and_has_object,
    reset_hard_moves_branch_index_and_tree,
    reset_hard_forward_and_detached,
    reset_hard_during_a_conflicted_merge,
    checkout_branch_at_from_other_branch,
    checkout_branch_at_current_branch,
    refs_set_read_delete,
);
