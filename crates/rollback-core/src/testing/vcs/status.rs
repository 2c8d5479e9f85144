//! Status, the index and objects.

use super::{Added, Deleted, Modified, Open, TypeChanged, backend, cid, ignored, os, rp, tracked, untracked};
use crate::testing::repo::TestRepo;
use crate::vcs::{StagedBlob, StatusEntry};

// ---------------------------------------------------------------------------------------------
// Status

/// Status: staged and unstaged changes of every kind, untracked files listed one by one, ignored
/// ones only when asked.
pub fn status_kinds(open: &Open) {
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
    let b = backend(open, &r);
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

/// An ignored folder holding tracked files: tracked changes and ignored entries as git lists them.
pub fn status_ignored_folder_with_tracked_files(open: &Open) {
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
    let b = backend(open, &r);
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

/// Status of names with spaces, newlines, quotes, tabs, non-UTF-8 bytes and glob characters.
pub fn status_odd_names(open: &Open) {
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
    let b = backend(open, &r);
    let mut expected: Vec<StatusEntry> = committed.iter().map(|n| tracked(n, None, Some(Modified))).collect();
    expected.extend([untracked(b"un tracked\n.txt"), untracked(b"u\xfe/x.txt"), untracked(b"co:lon.txt")]);
    expected.push(tracked("star*.txt", Some(Added), None));
    expected.push(untracked("\u{65e5}\u{672c}/\u{8a9e}"));
    expected.sort_by(|a, b| a.path.cmp(&b.path));
    let got = b.status(true).unwrap();
    assert_eq!(got, expected);
}

/// A conflicted merge shows the conflicted file as modified.
pub fn status_conflict(open: &Open) {
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
    let b = backend(open, &r);
    assert_eq!(b.status(false).unwrap(), [tracked("f.txt", None, Some(Modified))]);
}

/// Status on an unborn branch, after staging, and once committed (clean).
pub fn status_clean_and_unborn(open: &Open) {
    let r = TestRepo::new();
    r.write("a.txt", "a");
    let b = backend(open, &r);
    assert_eq!(b.status(true).unwrap(), [untracked("a.txt")]);
    r.git(&["add", "a.txt"]);
    assert_eq!(b.status(true).unwrap(), [tracked("a.txt", Some(Added), None)]);
    r.commit_all("a");
    assert_eq!(b.status(true).unwrap(), []);
}

// ---------------------------------------------------------------------------------------------
// Index and objects

/// The staged blobs are the index entries that differ from HEAD, with their ids and content.
pub fn staged_blobs_lists_index_changes(open: &Open) {
    let r = TestRepo::new();
    r.write("a.txt", "a\n").write("b.txt", "b\n").write("run.sh", "run\n").write("same.txt", "s\n");
    r.commit_all("base");
    r.write("a.txt", "a staged\n").write("c.txt", "c new\n").chmod("run.sh", 0o755);
    r.git(&["add", "a.txt", "c.txt", "run.sh"]);
    r.git(&["rm", "-q", "--cached", "b.txt"]);
    r.write("a.txt", "a unstaged on top\n").write("ita.txt", "intent to add\n");
    r.git(&["add", "-N", "ita.txt"]);
    let b = backend(open, &r);
    let oid = |path: &str| cid(&r.git(&["rev-parse", &format!(":{path}")]));
    let blob =
        |path: &str, content: &str| StagedBlob { path: rp(path), oid: oid(path), content: content.as_bytes().to_vec() };
    assert_eq!(
        b.staged_blobs().unwrap(),
        [blob("a.txt", "a staged\n"), blob("c.txt", "c new\n"), blob("run.sh", "run\n")]
    );
}

/// On an unborn branch every index entry is staged.
pub fn staged_blobs_on_unborn_branch(open: &Open) {
    let r = TestRepo::new();
    r.write("x.txt", "x\n").write("y/z.txt", "z\n");
    let b = backend(open, &r);
    assert_eq!(b.staged_blobs().unwrap(), []);
    r.git(&["add", "-A"]);
    let got = b.staged_blobs().unwrap();
    assert_eq!(got.iter().map(|s| s.path.clone()).collect::<Vec<_>>(), [rp("x.txt"), rp("y/z.txt")]);
    assert_eq!(got[1].content, b"z\n");
    assert_eq!(got[1].oid, cid(&r.git(&["rev-parse", ":y/z.txt"])));
}

/// Blobs are written without filters (CRLF kept) under git's ids; `has_object` sees them.
pub fn write_blob_and_has_object(open: &Open) {
    let r = TestRepo::new();
    r.git(&["config", "core.autocrlf", "true"]);
    r.write(".gitattributes", "* text=auto\n");
    let b = backend(open, &r);
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
