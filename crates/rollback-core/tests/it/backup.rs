//! Backup store and snapshot tests.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rollback_core::backup::snapshot::{RestoreStats, capture, restore};
use rollback_core::backup::store::FsBackupStore;
use rollback_core::backup::{
    BackupStore, BlobId, EntryKind, Error, Manifest, ManifestEntry, Origin, PutStats, SnapshotId,
};
use rollback_core::paths::RepoPath;
use rollback_core::time::Timestamp;
use rollback_core::vcs::CommitId;
use rollback_testkit::{TestRepo, TreeState};
use tempfile::TempDir;

fn rp(p: impl Into<Vec<u8>>) -> RepoPath {
    RepoPath::new(p).unwrap()
}

fn sid(s: &str) -> SnapshotId {
    SnapshotId::parse(s).unwrap()
}

fn new_store() -> (TempDir, FsBackupStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBackupStore::open(&dir.path().join("backups")).unwrap();
    (dir, store)
}

fn manifest(id: &SnapshotId, entries: Vec<ManifestEntry>) -> Manifest {
    Manifest {
        format: 1,
        id: id.clone(),
        created_at: Timestamp::from_unix(1_765_000_000),
        run_id: Some("run-1".into()),
        workdir: "/repo".into(),
        head: CommitId::new("a".repeat(40)).unwrap(),
        branch: Some("main".into()),
        entries,
        index: None,
        label: None,
        database: None,
    }
}

fn file_entry(store: &FsBackupStore, path: &str, content: &[u8]) -> ManifestEntry {
    let (blob, _) = store.put_blob(content).unwrap();
    ManifestEntry {
        path: rp(path),
        origin: Origin::Tracked,
        kind: EntryKind::File { blob, size: content.len() as u64, mode: 0o644 },
    }
}

fn mode_of(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn blob_of(entries: &[ManifestEntry], path: &str) -> BlobId {
    let e = entries.iter().find(|e| e.path.as_bytes() == path.as_bytes()).unwrap();
    match &e.kind {
        EntryKind::File { blob, .. } => blob.clone(),
        other => panic!("{path} is {other:?}"),
    }
}

const BAD: &[u8] = b"bad\xff";

/// A messy work tree; returns the paths to capture.
fn messy_tree(repo: &TestRepo) -> Vec<(RepoPath, Origin)> {
    repo.write("plain.txt", "plain\n")
        .write("run.sh", "#!/bin/sh\necho hi\n")
        .chmod("run.sh", 0o755)
        .write("secret.env", "TOKEN=x\n")
        .chmod("secret.env", 0o600)
        .write("dir/nested/deep.txt", "deep\n")
        .write("dir/other.txt", "other\n")
        .write("name with space.txt", "space\n")
        .write("new\nline.txt", "newline\n")
        .write("quo\"te's.txt", "quotes\n")
        .write("tab\there.txt", "tab\n")
        .write("café ünïcode.txt", "unicode\n")
        .write(OsStr::from_bytes(BAD), b"\x00\xff binary")
        .symlink("link-rel", "plain.txt")
        .symlink("link-abs", "/etc/hostname")
        .symlink("link-dangling", "does/not/exist");
    let tracked = [
        "plain.txt",
        "run.sh",
        "secret.env",
        "name with space.txt",
        "new\nline.txt",
        "quo\"te's.txt",
        "tab\there.txt",
        "café ünïcode.txt",
        "link-rel",
        "link-abs",
        "link-dangling",
        "gone/sub/file.txt",
        "was-deleted.txt",
    ];
    let mut paths: Vec<(RepoPath, Origin)> = tracked.iter().map(|p| (rp(*p), Origin::Tracked)).collect();
    paths.push((rp(BAD), Origin::Untracked));
    paths.push((rp("dir"), Origin::Untracked));
    paths
}

#[test]
fn round_trip_restores_the_exact_tree() {
    let (_d, store) = new_store();
    let repo = TestRepo::new();
    let paths = messy_tree(&repo);
    let before = repo.tree();

    let (entries, stats) = capture(&store, repo.path(), &paths).unwrap();
    // 11 files (dir/ expands to 2), 3 symlinks, 4 absent (gone, gone/sub, gone/sub/file.txt,
    // was-deleted.txt).
    assert_eq!(entries.len(), 18);
    let mut sorted: Vec<&[u8]> = entries.iter().map(|e| e.path.as_bytes()).collect();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, entries.iter().map(|e| e.path.as_bytes()).collect::<Vec<_>>());
    assert_eq!(stats.blobs, 11);
    assert_eq!(stats.new_blobs, 11);
    let absent: Vec<String> =
        entries.iter().filter(|e| e.kind == EntryKind::Absent).map(|e| e.path.to_string()).collect();
    assert_eq!(absent, ["gone", "gone/sub", "gone/sub/file.txt", "was-deleted.txt"]);
    let find = |p: &[u8]| entries.iter().find(|e| e.path.as_bytes() == p).unwrap();
    assert!(matches!(find(b"run.sh").kind, EntryKind::File { mode: 0o755, size: 18, .. }));
    assert!(matches!(find(b"secret.env").kind, EntryKind::File { mode: 0o600, .. }));
    assert!(matches!(find(b"plain.txt").kind, EntryKind::File { mode: 0o644, .. }));
    assert_eq!(find(BAD).origin, Origin::Untracked);
    assert_eq!(find(b"dir/nested/deep.txt").origin, Origin::Untracked);
    match &find(b"link-abs").kind {
        EntryKind::Symlink { target } => assert_eq!(target.0, b"/etc/hostname"),
        other => panic!("{other:?}"),
    }

    // What a reset might do to the tree.
    repo.write("plain.txt", "changed\n")
        .chmod("run.sh", 0o644)
        .remove("secret.env")
        .remove("dir/nested/deep.txt")
        .write("dir/other.txt", "other, changed\n")
        .write("gone/sub/file.txt", "now tracked\n")
        .write("was-deleted.txt", "back\n")
        .remove("link-rel")
        .write("link-rel", "a file now\n")
        .remove("link-abs")
        .symlink("link-abs", "/somewhere/else")
        .remove("link-dangling")
        .remove("name with space.txt")
        .remove(OsStr::from_bytes(BAD))
        .symlink(OsStr::from_bytes(BAD), "plain.txt")
        .write("tab\there.txt", "tab changed\n");
    fs::remove_dir(repo.path().join("dir/nested")).unwrap();
    fs::create_dir(repo.path().join("name with space.txt")).unwrap();
    assert_ne!(repo.tree(), before);

    let restored = restore(&store, repo.path(), &entries).unwrap();
    assert_eq!(repo.tree(), before);
    assert_eq!(
        restored,
        RestoreStats { files: 11, symlinks: 3, removed: 2, removed_dirs: 2, kept_dirs: 0, skipped: 0 }
    );
    assert!(!repo.exists("gone"));

    // Restoring again onto the restored tree changes nothing.
    restore(&store, repo.path(), &entries).unwrap();
    assert_eq!(repo.tree(), before);
}

#[test]
fn restore_writes_exact_modes_despite_read_only_and_setuid_bits() {
    let (_d, store) = new_store();
    let repo = TestRepo::new();
    repo.write("ro.txt", "read only\n").chmod("ro.txt", 0o444).write("x", "x").chmod("x", 0o4750);
    let before = repo.tree();
    let paths = [(rp("ro.txt"), Origin::Tracked), (rp("x"), Origin::Tracked)];
    let (entries, _) = capture(&store, repo.path(), &paths).unwrap();
    repo.chmod("ro.txt", 0o644).write("ro.txt", "writable\n").chmod("x", 0o644);
    restore(&store, repo.path(), &entries).unwrap();
    assert_eq!(repo.tree(), before);
    assert_eq!(mode_of(&repo.path().join("ro.txt")), 0o444);
    assert_eq!(mode_of(&repo.path().join("x")), 0o4750);
}

#[test]
fn restore_puts_back_a_symlink_where_the_reset_made_a_folder() {
    // `a` was a symlink; the target commit tracks `a/b`, so `a/b` was captured as absent.
    let (_d, store) = new_store();
    let repo = TestRepo::new();
    repo.write("target/b", "outside the link\n").symlink("a", "target");
    let before = repo.tree();
    let paths = [(rp("a"), Origin::Untracked), (rp("a/b"), Origin::Tracked)];
    let (entries, _) = capture(&store, repo.path(), &paths).unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[1].kind, EntryKind::Absent);
    // The reset replaces the symlink with a real folder holding `a/b`.
    repo.remove("a").write("a/b", "tracked content\n");
    let stats = restore(&store, repo.path(), &entries).unwrap();
    assert_eq!(repo.tree(), before);
    assert_eq!(stats.symlinks, 1);
    assert_eq!(stats.removed, 1);
    // Undoing a no-op: `a` is still the symlink; the absent `a/b` must not be removed through it.
    let stats = restore(&store, repo.path(), &entries).unwrap();
    assert_eq!(stats.skipped, 1);
    assert_eq!(repo.read("target/b"), b"outside the link\n");
    assert_eq!(repo.tree(), before);
}

#[test]
fn second_capture_of_unchanged_files_writes_no_blobs() {
    let (_d, store) = new_store();
    let repo = TestRepo::new();
    repo.write("a", "hello").write("b", "world").write("c", "hello");
    let paths = [(rp("a"), Origin::Tracked), (rp("b"), Origin::Tracked), (rp("c"), Origin::Tracked)];

    let (_, first) = capture(&store, repo.path(), &paths).unwrap();
    assert_eq!(first, PutStats { blobs: 3, bytes: 15, new_blobs: 2, new_bytes: 10 });

    let (_, second) = capture(&store, repo.path(), &paths).unwrap();
    assert_eq!(second, PutStats { blobs: 3, bytes: 15, new_blobs: 0, new_bytes: 0 });

    repo.write("b", "changed!");
    let (entries, third) = capture(&store, repo.path(), &paths).unwrap();
    assert_eq!(third, PutStats { blobs: 3, bytes: 18, new_blobs: 1, new_bytes: 8 });
    assert_eq!(store.get_blob(&blob_of(&entries, "b")).unwrap(), b"changed!");
}

#[test]
fn store_folders_are_0700_and_files_0600() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("state/backups");
    let store = FsBackupStore::open(&root).unwrap();
    for d in [&root, &root.join("blobs"), &root.join("snapshots")] {
        assert_eq!(mode_of(d), 0o700, "{}", d.display());
    }
    let entry = file_entry(&store, "f", b"secret");
    let EntryKind::File { blob, .. } = &entry.kind else { unreachable!() };
    let blob_path = store.blob_path(blob);
    assert_eq!(mode_of(&blob_path), 0o600);
    assert_eq!(mode_of(blob_path.parent().unwrap()), 0o700);
    let id = sid("20251210-173900-abcdef");
    store.put_manifest(&manifest(&id, vec![entry])).unwrap();
    let mpath = root.join("snapshots/20251210-173900-abcdef.json");
    assert_eq!(store.manifest_path(&id), mpath);
    assert_eq!(mode_of(&mpath), 0o600);
    // Reopening an existing store with loose folder modes tightens them.
    fs::set_permissions(root.join("blobs"), fs::Permissions::from_mode(0o755)).unwrap();
    FsBackupStore::open(&root).unwrap();
    assert_eq!(mode_of(&root.join("blobs")), 0o700);
}

#[test]
fn manifest_round_trips_and_lists_oldest_first() {
    let (_d, store) = new_store();
    let newer = sid("20251210-173900-bbbbbb");
    let older = sid("20251209-080000-aaaaaa");
    let e1 = file_entry(&store, "x/y", b"12345");
    let absent = ManifestEntry { path: rp("z"), origin: Origin::Ignored, kind: EntryKind::Absent };
    let m = manifest(&newer, vec![e1, absent]);
    store.put_manifest(&m).unwrap();
    store.put_manifest(&manifest(&older, vec![])).unwrap();
    // A leftover temp file of an interrupted manifest write is not a snapshot.
    fs::write(store.root().join("snapshots/.20251211-000000-cccccc.json.tmp-1-0"), "{").unwrap();

    assert_eq!(store.manifest(&newer).unwrap(), m);
    let list = store.list().unwrap();
    let ids: Vec<&str> = list.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["20251209-080000-aaaaaa", "20251210-173900-bbbbbb"]);
    assert_eq!((list[1].entries, list[1].bytes), (2, 5));
    assert_eq!(list[1].branch.as_deref(), Some("main"));

    let err = store.manifest(&sid("20200101-000000-000000")).unwrap_err();
    assert!(matches!(&err, Error::UnknownSnapshot { id } if id == "20200101-000000-000000"), "{err}");
}

#[test]
fn put_manifest_refuses_a_missing_blob() {
    let (_d, store) = new_store();
    let id = sid("20251210-173900-abcdef");
    let blob = BlobId::of(b"never stored");
    let entry = ManifestEntry {
        path: rp("app/main.py"),
        origin: Origin::Tracked,
        kind: EntryKind::File { blob: blob.clone(), size: 12, mode: 0o644 },
    };
    let err = store.put_manifest(&manifest(&id, vec![entry])).unwrap_err();
    match &err {
        Error::MissingBlob { snapshot, blob: b, path } => {
            assert_eq!(snapshot, id.as_str());
            assert_eq!(b, blob.as_str());
            assert_eq!(path.as_bytes(), b"app/main.py");
        }
        other => panic!("{other}"),
    }
    assert!(store.list().unwrap().is_empty());
    assert!(!store.manifest_path(&id).exists());
}

#[test]
fn verify_reports_corrupt_and_missing_blobs() {
    let (_d, store) = new_store();
    let shared = file_entry(&store, "shared.txt", b"shared content");
    let a = file_entry(&store, "a.txt", b"aaaa");
    let b = file_entry(&store, "b.txt", b"bb");
    let s1 = sid("20251201-000000-000001");
    let s2 = sid("20251202-000000-000002");
    store.put_manifest(&manifest(&s1, vec![a.clone(), shared.clone()])).unwrap();
    store.put_manifest(&manifest(&s2, vec![b.clone(), shared])).unwrap();

    let clean = store.verify(None).unwrap();
    assert!(clean.problems.is_empty(), "{:?}", clean.problems);
    assert_eq!((clean.snapshots, clean.blobs, clean.bytes), (2, 3, 14 + 4 + 2));
    let only_s1 = store.verify(Some(std::slice::from_ref(&s1))).unwrap();
    assert_eq!((only_s1.snapshots, only_s1.blobs, only_s1.bytes), (1, 2, 18));

    // Flip one byte of a.txt's blob.
    let a_blob = blob_of(&[a], "a.txt");
    let a_path = store.blob_path(&a_blob);
    let mut bytes = fs::read(&a_path).unwrap();
    bytes[0] ^= 0x01;
    fs::write(&a_path, &bytes).unwrap();
    let report = store.verify(None).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].starts_with(&format!("backup {s1}: blob {a_blob} for `a.txt` is corrupt")),
        "{:?}",
        report.problems
    );
    let err = store.get_blob(&a_blob).unwrap_err();
    match &err {
        Error::CorruptBlob { blob, actual } => {
            assert_eq!(blob, a_blob.as_str());
            assert_eq!(actual, BlobId::of(&bytes).as_str());
        }
        other => panic!("{other}"),
    }

    // Delete b.txt's blob.
    let b_blob = blob_of(&[b], "b.txt");
    fs::remove_file(store.blob_path(&b_blob)).unwrap();
    let report = store.verify(None).unwrap();
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    assert_eq!(report.problems[1], format!("backup {s2}: blob {b_blob} for `b.txt` is missing"));
    assert_eq!((report.snapshots, report.blobs), (2, 2));
    assert!(!store.has_blob(&b_blob).unwrap());
}

#[test]
fn prune_keeps_newest_and_protected_and_collects_blobs() {
    let (_d, store) = new_store();
    let ids: Vec<SnapshotId> = (1..=5).map(|i| sid(&format!("2025120{i}-120000-00000{i}"))).collect();
    let mut unique = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let shared = file_entry(&store, "shared", b"in every snapshot");
        let own = file_entry(&store, "unique", format!("only in snapshot {i}").as_bytes());
        unique.push(blob_of(std::slice::from_ref(&own), "unique"));
        store.put_manifest(&manifest(id, vec![shared, own])).unwrap();
    }
    let shared_blob = BlobId::of(b"in every snapshot");
    // Leftovers of an interrupted snapshot: a blob no manifest names, and a temp file.
    let (orphan, _) = store.put_blob(b"orphan from a crash").unwrap();
    let temp = store.blob_path(&orphan).with_file_name(".leftover.tmp-1-1");
    fs::write(&temp, "partial").unwrap();
    let protect = [ids[0].clone()];

    let dry = store.prune(2, &protect, true).unwrap();
    assert_eq!(dry.removed_snapshots, [ids[1].clone(), ids[2].clone()]);
    assert_eq!(dry.kept_snapshots, 3);
    assert_eq!(dry.removed_blobs, 3);
    assert!(dry.freed_bytes > 0);
    assert_eq!(store.list().unwrap().len(), 5);
    assert!(store.has_blob(&orphan).unwrap() && temp.exists());
    assert!(unique.iter().all(|b| store.has_blob(b).unwrap()));

    let report = store.prune(2, &protect, false).unwrap();
    assert_eq!(report, dry);
    let survivors: Vec<SnapshotId> = store.list().unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(survivors, [ids[0].clone(), ids[3].clone(), ids[4].clone()]);
    let present: Vec<bool> = unique.iter().map(|b| store.has_blob(b).unwrap()).collect();
    assert_eq!(present, [true, false, false, true, true]);
    assert!(store.has_blob(&shared_blob).unwrap());
    assert!(!store.has_blob(&orphan).unwrap());
    assert!(!temp.exists());
    let after = store.verify(None).unwrap();
    assert!(after.problems.is_empty(), "{:?}", after.problems);
    assert_eq!((after.snapshots, after.blobs), (3, 4));

    // Nothing left to do.
    let again = store.prune(2, &protect, false).unwrap();
    assert_eq!((again.removed_snapshots.len(), again.removed_blobs, again.freed_bytes), (0, 0, 0));
}

/// Writes a hand-edited copy of a valid manifest and returns what reading it gives.
fn read_tampered(edit: impl FnOnce(&mut serde_json::Value)) -> Error {
    let (_d, store) = new_store();
    let id = sid("20251210-173900-abcdef");
    let m = manifest(
        &id,
        vec![
            ManifestEntry { path: rp("a"), origin: Origin::Tracked, kind: EntryKind::Absent },
            ManifestEntry { path: rp("b"), origin: Origin::Tracked, kind: EntryKind::Absent },
        ],
    );
    let mut value = serde_json::to_value(&m).unwrap();
    edit(&mut value);
    let text = serde_json::to_string_pretty(&value).unwrap();
    fs::write(store.manifest_path(&id), text).unwrap();
    store.manifest(&id).unwrap_err()
}

fn bad_manifest_detail(err: &Error) -> String {
    match err {
        Error::BadManifest { path, detail } => {
            assert!(path.ends_with("snapshots/20251210-173900-abcdef.json"), "{}", path.display());
            detail.clone()
        }
        other => panic!("expected BadManifest, got {other}"),
    }
}

#[test]
fn tampered_manifests_are_rejected() {
    for (bad_path, expected) in
        [("../x", "`../x`"), ("/etc/passwd", "absolute path `/etc/passwd`"), (".git/config", "`.git` directory")]
    {
        let err = read_tampered(|v| v["entries"][0]["path"] = bad_path.into());
        let detail = bad_manifest_detail(&err);
        assert!(detail.contains(expected) && detail.contains("line "), "{bad_path}: {detail}");
    }

    let err = read_tampered(|v| v["entries"].as_array_mut().unwrap().reverse());
    assert_eq!(bad_manifest_detail(&err), "entries not sorted at `a`");

    let err = read_tampered(|v| {
        let first = v["entries"][0].clone();
        v["entries"][1] = first;
    });
    assert_eq!(bad_manifest_detail(&err), "duplicate entry `a`");

    let err = read_tampered(|v| v["format"] = 2.into());
    assert_eq!(bad_manifest_detail(&err), "unsupported format 2 (expected 1)");

    let err = read_tampered(|v| v["id"] = "20990101-000000-ffffff".into());
    assert!(bad_manifest_detail(&err).contains("does not match"), "{err}");

    let err = read_tampered(|v| v["entries"][0]["type"] = "fifo".into());
    assert!(bad_manifest_detail(&err).contains("line "), "{err}");
}

#[test]
fn truncated_manifest_is_rejected_with_position_and_list_names_it() {
    let (_d, store) = new_store();
    let id = sid("20251210-173900-abcdef");
    store.put_manifest(&manifest(&id, vec![])).unwrap();
    let path = store.manifest_path(&id);
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, &text[..text.len() / 2]).unwrap();
    let err = store.manifest(&id).unwrap_err();
    let detail = bad_manifest_detail(&err);
    assert!(detail.contains("EOF") && detail.contains("line ") && detail.contains("column "), "{detail}");
    let err = store.list().unwrap_err();
    assert!(err.to_string().contains("20251210-173900-abcdef.json"), "{err}");
    // `verify` reports it as a problem rather than failing.
    let report = store.verify(None).unwrap();
    assert_eq!(report.problems.len(), 1);
    assert!(report.problems[0].starts_with("backup 20251210-173900-abcdef: backup manifest"), "{:?}", report.problems);
}

#[test]
fn restore_refuses_a_symlinked_parent_folder_and_writes_nothing() {
    let (_d, store) = new_store();
    let repo = TestRepo::new();
    let outside = tempfile::tempdir().unwrap();
    repo.write("aaa.txt", "current\n").symlink("sub", outside.path());
    let before = repo.tree();
    let entries =
        vec![file_entry(&store, "aaa.txt", b"from the backup\n"), file_entry(&store, "sub/evil.txt", b"escaped\n")];
    let err = restore(&store, repo.path(), &entries).unwrap_err();
    match &err {
        Error::UnsafeRestore { path, reason } => {
            assert_eq!(path, "sub/evil.txt");
            assert_eq!(reason, "its parent folder `sub` is a symlink");
        }
        other => panic!("{other}"),
    }
    assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    assert_eq!(repo.tree(), before);
}

#[test]
fn restore_refuses_a_file_below_a_restored_symlink() {
    let (_d, store) = new_store();
    let repo = TestRepo::new();
    let before = repo.tree();
    let entries = vec![
        ManifestEntry {
            path: rp("s"),
            origin: Origin::Tracked,
            kind: EntryKind::Symlink { target: rollback_core::backup::SymlinkTarget(b"/tmp".to_vec()) },
        },
        file_entry(&store, "s/x", b"x"),
    ];
    let err = restore(&store, repo.path(), &entries).unwrap_err();
    assert!(matches!(&err, Error::UnsafeRestore { path, .. } if path == "s/x"), "{err}");
    assert_eq!(repo.tree(), before);
}

#[test]
fn corrupt_blob_fails_restore_before_any_change() {
    let (_d, store) = new_store();
    let repo = TestRepo::new();
    repo.write("a.txt", "original a\n").write("b.txt", "original b\n");
    let paths = [(rp("a.txt"), Origin::Tracked), (rp("b.txt"), Origin::Tracked), (rp("c.txt"), Origin::Tracked)];
    let (entries, _) = capture(&store, repo.path(), &paths).unwrap();
    repo.write("a.txt", "changed a\n").write("b.txt", "changed b\n").write("c.txt", "new c\n");
    let mutated = repo.tree();

    let b_blob = blob_of(&entries, "b.txt");
    fs::write(store.blob_path(&b_blob), "original B\n").unwrap();
    let err = restore(&store, repo.path(), &entries).unwrap_err();
    assert!(matches!(&err, Error::CorruptBlob { blob, .. } if blob == b_blob.as_str()), "{err}");
    assert_eq!(repo.tree(), mutated);

    fs::remove_file(store.blob_path(&b_blob)).unwrap();
    let err = restore(&store, repo.path(), &entries).unwrap_err();
    assert!(matches!(&err, Error::BlobNotFound { blob } if blob == b_blob.as_str()), "{err}");
    assert_eq!(repo.tree(), mutated);
    assert_eq!(TreeState::capture(repo.path()), mutated);
}
