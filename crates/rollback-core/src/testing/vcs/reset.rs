//! Moving HEAD, the index and the work tree; refs.

use super::{Open, backend, cid, ignored, untracked};
use crate::testing::repo::{Node, TestRepo, TreeState};
use crate::vcs::{Error, Head};

// ---------------------------------------------------------------------------------------------
// Resetting

/// Commit A (exec bit, symlink, `only_a.txt`) and commit B on `main`. Returns (A, B, tree at A).
fn reset_fixture(r: &TestRepo) -> (String, String, TreeState) {
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

/// A hard reset moves the branch, index and work tree, keeps untracked and ignored files, and
/// writes the reflog message.
pub fn reset_hard_moves_branch_index_and_tree(open: &Open) {
    let r = TestRepo::new();
    let (a, _b, tree_a) = reset_fixture(&r);
    // Mess: edits, a staged new file, untracked and ignored files, and an untracked file at a
    // path that A tracks.
    r.write("a.txt", "dirty edit\n").write("staged_new.txt", "staged\n");
    r.git(&["add", "staged_new.txt"]);
    r.write("keep.tmp", "untracked\n")
        .write("cache/blob.bin", "ignored\n")
        .write("only_a.txt", "untracked in the way\n");
    let b = backend(open, &r);
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

/// A hard reset on a detached HEAD moves HEAD only, forward and back.
pub fn reset_hard_forward_and_detached(open: &Open) {
    let r = TestRepo::new();
    let (a, b_id, tree_a) = reset_fixture(&r);
    let tree_b = r.tree();
    r.git(&["checkout", "-q", "--detach", &a]);
    assert_eq!(r.tree(), tree_a);
    let b = backend(open, &r);
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

/// A hard reset ends a conflicted merge.
pub fn reset_hard_during_a_conflicted_merge(open: &Open) {
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
    let b = backend(open, &r);
    b.reset_hard(&cid(&main), "abort merge").unwrap();
    assert_eq!(r.tree(), tree);
    assert_eq!(b.status(true).unwrap(), []);
    assert!(!r.path().join(".git/MERGE_HEAD").exists());
    assert_eq!(b.head().unwrap(), Head { commit: cid(&main), branch: Some("main".into()) });
}

/// `checkout_branch_at` from another branch moves and checks out the named branch (creating it if
/// needed), refusing bad names.
pub fn checkout_branch_at_from_other_branch(open: &Open) {
    let r = TestRepo::new();
    let (a, b_id, tree_a) = reset_fixture(&r);
    r.git(&["checkout", "-q", "-b", "feature"]);
    r.write("feature.txt", "f\n");
    let feature = r.commit_all("feature");
    r.write("a.txt", "dirty\n");
    let b = backend(open, &r);
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

/// `checkout_branch_at` of the current branch moves it like a hard reset.
pub fn checkout_branch_at_current_branch(open: &Open) {
    let r = TestRepo::new();
    let (a, b_id, tree_a) = reset_fixture(&r);
    let b = backend(open, &r);
    assert_eq!(b.head().unwrap().commit, cid(&b_id));
    b.checkout_branch_at("main", &cid(&a), "undo: main to A").unwrap();
    assert_eq!(b.head().unwrap(), Head { commit: cid(&a), branch: Some("main".into()) });
    assert_eq!(r.tree(), tree_a);
    assert_eq!(b.status(true).unwrap(), []);
    assert!(last_reflog(&r, "main").contains("undo: main to A"));
}

/// Refs under `refs/` are set, read and deleted; HEAD, short names and bad names are refused.
pub fn refs_set_read_delete(open: &Open) {
    let r = TestRepo::new();
    let [v1, v2, v3] = r.three_releases();
    let b = backend(open, &r);
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
