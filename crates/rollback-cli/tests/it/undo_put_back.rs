//! What `undo` writes back, at paths whose shape or name the restore got wrong before.
//!
//! - A tracked symlink `data -> <folder outside the tree>` replaced on the server by a real
//!   folder holding an untracked `data/notes.txt`: the rollback captures the file and the reset
//!   puts the link back. Before, the undo looked at `data/notes.txt` through that link (the
//!   outside folder's `notes.txt`), took it for the captured file "changed after the backup",
//!   kept it, and removed the link: `data/` and the operator's file were gone from the tree.
//!   A path below a symlink is not in the tree: the link is the run's own work and the undo
//!   replaces it with the folder and the file.
//! - File names up to `NAME_MAX` (255 bytes, 85 CJK characters or non-UTF-8 bytes): the restore's
//!   temp file `.<name>.restore-PID-N` was longer than that ("File name too long (os error
//!   36)"), and the undo failed half-way, and `resume` the same way.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rollback_testkit::TestRepo;

use crate::common::picture;
use crate::shapes::{BACKENDS, config, fr, run_id};

/// What the folder outside the tree holds at `notes.txt`, the name of the operator's file.
#[derive(Clone, Copy, Debug)]
enum Outside {
    /// A file of its own (the undo took it for the operator's file, changed since).
    File,
    /// A folder that is not empty (the restore took it for a folder in the way).
    Folder,
}

/// What is at `outside/notes.txt`: read without following anything.
fn outside_notes(outside: &Path) -> Vec<u8> {
    let p = outside.join("notes.txt");
    if std::fs::symlink_metadata(&p).unwrap().is_dir() {
        std::fs::read(p.join("keep")).unwrap()
    } else {
        std::fs::read(p).unwrap()
    }
}

/// HEAD tracks `data` as a symlink to `outside` (which holds a `notes.txt` of its own); in the
/// work tree `data` is a real folder with an untracked `data/notes.txt`.
fn symlink_replaced_by_a_folder(outside: &Path, shape: Outside) -> TestRepo {
    match shape {
        Outside::File => std::fs::write(outside.join("notes.txt"), "shared file\n").unwrap(),
        Outside::Folder => {
            std::fs::create_dir(outside.join("notes.txt")).unwrap();
            std::fs::write(outside.join("notes.txt/keep"), "shared file\n").unwrap();
        }
    }
    let r = TestRepo::new();
    r.write("app.py", "v1\n").symlink("data", outside);
    r.commit_all("c1");
    r.write("app.py", "v2\n");
    r.commit_all("c2");
    r.remove("data");
    r.write("data/notes.txt", "OPERATOR NOTES - only copy\n");
    r
}

#[test]
fn undo_puts_back_a_folder_that_replaced_a_tracked_symlink_never_reading_through_the_link() {
    for backend in BACKENDS {
        for shape in [Outside::File, Outside::Folder] {
            let what = format!("{backend}, outside `notes.txt` is a {shape:?}");
            let outside = tempfile::tempdir().unwrap();
            let r = symlink_replaced_by_a_folder(outside.path(), shape);
            let (_dir, cfg) = config(backend);
            let before = picture(&r);
            let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "HEAD~1"], &[]);
            out.ok();
            let rolled_back = picture(&r);
            assert!(
                std::fs::symlink_metadata(r.path().join("data")).unwrap().is_symlink(),
                "{what}: the target's link"
            );
            let undone = fr(&r, &cfg, &["undo", &run_id(&out), "--yes", "--json"], &[]);
            undone.ok();
            assert!(!undone.stderr.contains("kept `data/notes.txt`"), "{what}: {}", undone.stderr);
            assert_eq!(picture(&r), before, "{what}: the folder and the operator's file are back");
            assert_eq!(r.read("data/notes.txt"), b"OPERATOR NOTES - only copy\n", "{what}");
            assert_eq!(outside_notes(outside.path()), b"shared file\n", "{what}");
            // The undo is a run too: undoing it gives the rolled-back tree, the link again.
            fr(&r, &cfg, &["undo", &run_id(&undone), "--yes"], &[]).ok();
            assert_eq!(picture(&r), rolled_back, "{what}: the undo of the undo");
            assert_eq!(outside_notes(outside.path()), b"shared file\n", "{what}");
        }
    }
}

/// A file name of exactly `len` bytes: `stem` repeated, then ASCII to fill up.
fn long_name(stem: &[u8], len: usize, ext: &[u8]) -> Vec<u8> {
    let mut name = Vec::new();
    while name.len() + stem.len() + ext.len() <= len {
        name.extend_from_slice(stem);
    }
    name.resize(len - ext.len(), b'x');
    name.extend_from_slice(ext);
    assert_eq!(name.len(), len);
    name
}

fn under(folder: &str, name: &[u8]) -> PathBuf {
    PathBuf::from(folder).join(OsStr::from_bytes(name))
}

/// 255-byte names (the most Linux takes) of every kind the restore writes back: untracked files
/// in a folder the target lacks (CJK, non-UTF-8, two hard links to one file), an untracked
/// symlink, a tracked file with a local edit, and a tracked file flagged `--skip-worktree` with
/// a local edit the reset keeps in place (with libgit2, rewritten through a temp file of
/// `fsutil`, which had the same limit). The rollback and its undo round-trip exactly, with both
/// backends.
#[test]
fn undo_puts_back_files_whose_names_are_255_bytes_long() {
    let cjk = long_name("報告書".as_bytes(), 255, "例.pdf".as_bytes());
    let cjk_link = long_name("リンク".as_bytes(), 255, b".lnk");
    let raw = long_name(b"\xff\xfe\x80caf\xe9-", 255, b".bin");
    let hard_a = long_name("写真".as_bytes(), 255, b"-a.jpg");
    let hard_b = long_name("写真".as_bytes(), 255, b"-b.jpg");
    let tracked = long_name("設定".as_bytes(), 255, b".py");
    let flagged = long_name("秘密".as_bytes(), 255, b".env");
    assert!(std::str::from_utf8(&raw).is_err());
    for backend in BACKENDS {
        let r = TestRepo::new();
        r.write("app.py", "v1\n").write(under("conf", &tracked), "tracked v1\n");
        r.write(under("conf", &flagged), "committed\n");
        r.commit_all("c1");
        r.write("app.py", "v2\n").write("uploads/.keep", "");
        r.commit_all("c2");
        r.write(under("conf", &tracked), "local edit\n");
        let flagged_path = under("conf", &flagged);
        r.git(&["update-index", "--skip-worktree", flagged_path.to_str().unwrap()]);
        r.write(&flagged_path, "local secret\n");
        r.write(under("uploads", &cjk), "customer upload\n");
        r.write(under("uploads", &raw), "raw bytes\n");
        r.write(under("uploads", &hard_a), "one photo\n");
        std::fs::hard_link(r.path().join(under("uploads", &hard_a)), r.path().join(under("uploads", &hard_b))).unwrap();
        r.symlink(under("uploads", &cjk_link), OsStr::from_bytes(&cjk));
        let (_dir, cfg) = config(backend);
        let before = (picture(&r), r.git(&["ls-files", "-v", "-s"]));
        let out = fr(&r, &cfg, &["run", "--fast", "--yes", "--json", "--target", "HEAD~1"], &[]);
        out.ok();
        assert!(!r.exists("uploads"), "{backend}");
        assert_eq!(r.read(under("conf", &tracked)), b"tracked v1\n", "{backend}");
        assert_eq!(r.read(&flagged_path), b"local secret\n", "{backend}: the flagged edit stays");
        let undone = fr(&r, &cfg, &["undo", &run_id(&out), "--yes", "--json"], &[]);
        undone.ok();
        assert_eq!(
            (picture(&r), r.git(&["ls-files", "-v", "-s"])),
            before,
            "{backend}: every file back under its long name"
        );
        let ino = |n: &[u8]| std::fs::metadata(r.path().join(under("uploads", n))).unwrap().ino();
        assert_eq!(ino(&hard_a), ino(&hard_b), "{backend}: the hard link is made again");
        let names: Vec<_> =
            std::fs::read_dir(r.path().join("uploads")).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 6, "{backend}: no temp file left: {names:?}");
    }
}

/// An undo killed between making a temp file and renaming it over its path leaves that temp
/// file (`.NAME.restore-PID-N`) in the tree. A resumed undo removes it when its process is gone
/// and it holds nothing (or exactly the entry's content), and leaves anything else under such a
/// name: a live process's, or one holding other bytes (a file of the user's).
#[test]
fn a_resumed_undo_removes_the_temp_files_of_the_attempt_killed_before_it() {
    let (r, _) = crate::common::messy_repo();
    let id = crate::common::rollback(&r, "v1");
    let env = [("FORGE_ROLLBACK_FAILPOINT", "before:restore_files"), ("FORGE_ROLLBACK_FAILPOINT_ACTION", "error")];
    let failed = crate::common::fr_env(&r, &["undo", &id, "--yes", "--json"], &env);
    failed.code(1);
    let undo_id = failed.json()["run_id"].as_str().unwrap().to_owned();
    // A process id above the kernel's limit (`pid_max` is at most 4,194,304): never alive.
    let gone = 4_194_300;
    assert!(!std::path::Path::new(&format!("/proc/{gone}")).exists());
    let stray = format!("app/.main.py.restore-{gone}-0");
    let users = format!("app/.main.py.restore-{gone}-1");
    let live = format!("app/.main.py.restore-{}-0", std::process::id());
    r.write(&stray, "").write(&users, "my notes\n").write(&live, "");

    let resumed = crate::common::fr(&r, &["resume", &undo_id, "--json"]);
    resumed.ok();
    assert!(
        resumed.stderr.contains("Removed 1 temp file(s) an earlier attempt of this restore left"),
        "{}",
        resumed.stderr
    );
    assert!(!r.exists(&stray));
    assert_eq!(r.read(&users), b"my notes\n");
    assert!(r.exists(&live));
    assert_eq!(r.read("app/main.py"), b"# hotfix in progress\n");
}
