//! The [`BackupStore`] conformance suite.
//!
//! The cases capture real work trees into the store under test and restore them
//! ([`backup::snapshot`](crate::backup::snapshot) on top of the store), write, list, verify and
//! prune snapshots, and damage blobs the way disks do to check that the damage is found
//! before anything is restored. rollback-core runs it against [`FsBackupStore`]
//! (`tests/it/backup.rs`).
//!
//! A store under test implements [`StoreUnderTest`]: the two ways of damaging it.
//!
//! ```no_run
//! use std::path::Path;
//! use rollback_core::backup::store::FsBackupStore;
//!
//! // Your store here, kept in (or keyed by) the folder the suite gives it.
//! fn open(dir: &Path) -> FsBackupStore {
//!     FsBackupStore::open(dir).expect("open the store")
//! }
//!
//! rollback_core::testing::store::run_all(&open);
//! ```

use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tempfile::TempDir;

use super::Case;
use super::repo::{TestRepo, TreeState};
use crate::backup::snapshot::{RestoreStats, capture, restore};
use crate::backup::store::FsBackupStore;
use crate::backup::{BackupStore, BlobId, EntryKind, Error, Manifest, ManifestEntry, Origin, PutStats, SnapshotId};
use crate::paths::RepoPath;
use crate::time::Timestamp;
use crate::vcs::CommitId;

/// A [`BackupStore`] the suite can damage the way disks do, to check that the damage is found.
pub trait StoreUnderTest: BackupStore + 'static {
    /// Replaces the stored content of blob `id` with `content`, keeping its name (bit rot, a
    /// torn write).
    fn corrupt_blob(&self, id: &BlobId, content: &[u8]);

    /// Deletes blob `id` (a lost file).
    fn lose_blob(&self, id: &BlobId);
}

impl StoreUnderTest for FsBackupStore {
    fn corrupt_blob(&self, id: &BlobId, content: &[u8]) {
        let path = self.blob_path(id);
        fs::write(&path, content).unwrap_or_else(|e| panic!("overwrite {}: {e}", path.display()));
    }

    fn lose_blob(&self, id: &BlobId) {
        let path = self.blob_path(id);
        fs::remove_file(&path).unwrap_or_else(|e| panic!("remove {}: {e}", path.display()));
    }
}

/// Opens a new, empty store under test in a folder that does not exist yet (inside a temp dir
/// the suite removes afterwards).
pub type OpenStore<S> = dyn Fn(&Path) -> S;

/// Every case of the suite, in order, for a store of type `S`.
pub fn cases<S: StoreUnderTest>() -> Vec<Case<OpenStore<S>>> {
    vec![
        Case { name: "round_trip_restores_the_exact_tree", run: round_trip_restores_the_exact_tree::<S> },
        Case {
            name: "restore_writes_exact_modes_despite_read_only_and_setuid_bits",
            run: restore_writes_exact_modes_despite_read_only_and_setuid_bits::<S>,
        },
        Case {
            name: "restore_puts_back_a_symlink_where_the_reset_made_a_folder",
            run: restore_puts_back_a_symlink_where_the_reset_made_a_folder::<S>,
        },
        Case {
            name: "second_capture_of_unchanged_files_writes_no_blobs",
            run: second_capture_of_unchanged_files_writes_no_blobs::<S>,
        },
        Case {
            name: "manifest_round_trips_and_lists_oldest_first",
            run: manifest_round_trips_and_lists_oldest_first::<S>,
        },
        Case { name: "put_manifest_refuses_a_missing_blob", run: put_manifest_refuses_a_missing_blob::<S> },
        Case { name: "verify_reports_corrupt_and_missing_blobs", run: verify_reports_corrupt_and_missing_blobs::<S> },
        Case {
            name: "prune_keeps_newest_and_protected_and_collects_blobs",
            run: prune_keeps_newest_and_protected_and_collects_blobs::<S>,
        },
        Case {
            name: "restore_refuses_a_symlinked_parent_folder_and_writes_nothing",
            run: restore_refuses_a_symlinked_parent_folder_and_writes_nothing::<S>,
        },
        Case {
            name: "restore_refuses_a_file_below_a_restored_symlink",
            run: restore_refuses_a_file_below_a_restored_symlink::<S>,
        },
        Case {
            name: "corrupt_blob_fails_restore_before_any_change",
            run: corrupt_blob_fails_restore_before_any_change::<S>,
        },
    ]
}

/// Runs every case against stores `open` makes; panics naming each case that failed.
pub fn run_all<S: StoreUnderTest>(open: &OpenStore<S>) {
    super::run_cases("BackupStore", &cases::<S>(), open);
}

// Building blocks, public for a store's own tests beside the suite.

/// A repository path from text, which must be valid.
pub fn rp(p: impl Into<Vec<u8>>) -> RepoPath {
    RepoPath::new(p).unwrap()
}

/// A snapshot id from text, which must be valid.
pub fn sid(s: &str) -> SnapshotId {
    SnapshotId::parse(s).unwrap()
}

/// A new store in a fresh temp dir, kept alive by the returned `TempDir`.
fn new_store<S: StoreUnderTest>(open: &OpenStore<S>) -> (TempDir, S) {
    let dir = tempfile::tempdir().expect("create a temp dir");
    let store = open(&dir.path().join("backups"));
    (dir, store)
}

/// A manifest of `entries` with fixed fields (run `run-1`, branch `main`, HEAD `aaa…`).
pub fn manifest(id: &SnapshotId, entries: Vec<ManifestEntry>) -> Manifest {
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
        hard_links: Vec::new(),
        landing: std::collections::BTreeMap::new(),
        folders: Vec::new(),
    }
}

/// A tracked file entry (mode `0644`) whose `content` is put in `store` first.
pub fn file_entry(store: &dyn BackupStore, path: &str, content: &[u8]) -> ManifestEntry {
    let (blob, _) = store.put_blob(content).unwrap();
    ManifestEntry {
        path: rp(path),
        origin: Origin::Tracked,
        kind: EntryKind::File { blob, size: content.len() as u64, mode: 0o644 },
        owner: None,
        xattrs: vec![],
    }
}

/// The permission bits of `p` (not followed if a symlink).
pub fn mode_of(p: &Path) -> u32 {
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

/// A capture of a messy tree (modes, symlinks, odd names, absent paths, untracked folders) restores
/// it exactly, and restoring twice changes nothing.
pub fn round_trip_restores_the_exact_tree<S: StoreUnderTest>(open: &OpenStore<S>) {
    let (_d, store) = new_store(open);
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
        RestoreStats {
            files: 11,
            symlinks: 3,
            removed: 2,
            removed_dirs: 2,
            kept_dirs: 0,
            skipped: 0,
            owners_refused: 0,
            folders_made: 0,
            folder_modes: 0,
            xattrs_refused: vec![]
        }
    );
    assert!(!repo.exists("gone"));

    // Restoring again onto the restored tree changes nothing.
    restore(&store, repo.path(), &entries).unwrap();
    assert_eq!(repo.tree(), before);
}

/// A restore writes read-only and setuid files with their exact modes.
pub fn restore_writes_exact_modes_despite_read_only_and_setuid_bits<S: StoreUnderTest>(open: &OpenStore<S>) {
    let (_d, store) = new_store(open);
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

/// A restore puts a symlink back where a reset made a folder, and never removes through the symlink
/// when run again.
pub fn restore_puts_back_a_symlink_where_the_reset_made_a_folder<S: StoreUnderTest>(open: &OpenStore<S>) {
    // `a` was a symlink; the target commit tracks `a/b`, so `a/b` was captured as absent.
    let (_d, store) = new_store(open);
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

/// Blobs are deduplicated by content: a second capture of unchanged files writes nothing.
pub fn second_capture_of_unchanged_files_writes_no_blobs<S: StoreUnderTest>(open: &OpenStore<S>) {
    let (_d, store) = new_store(open);
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

/// A manifest reads back equal; `list` is oldest first with entry and byte counts; an unknown id is
/// `UnknownSnapshot`.
pub fn manifest_round_trips_and_lists_oldest_first<S: StoreUnderTest>(open: &OpenStore<S>) {
    let (_d, store) = new_store(open);
    let newer = sid("20251210-173900-bbbbbb");
    let older = sid("20251209-080000-aaaaaa");
    let e1 = file_entry(&store, "x/y", b"12345");
    let absent =
        ManifestEntry { path: rp("z"), origin: Origin::Ignored, kind: EntryKind::Absent, owner: None, xattrs: vec![] };
    let m = manifest(&newer, vec![e1, absent]);
    store.put_manifest(&m).unwrap();
    store.put_manifest(&manifest(&older, vec![])).unwrap();

    assert_eq!(store.manifest(&newer).unwrap(), m);
    let list = store.list().unwrap();
    let ids: Vec<&str> = list.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["20251209-080000-aaaaaa", "20251210-173900-bbbbbb"]);
    assert_eq!((list[1].entries, list[1].bytes), (2, 5));
    assert_eq!(list[1].branch.as_deref(), Some("main"));

    let err = store.manifest(&sid("20200101-000000-000000")).unwrap_err();
    assert!(matches!(&err, Error::UnknownSnapshot { id } if id == "20200101-000000-000000"), "{err}");
}

/// A manifest naming a blob the store does not have is refused with `MissingBlob`, and no snapshot
/// appears.
pub fn put_manifest_refuses_a_missing_blob<S: StoreUnderTest>(open: &OpenStore<S>) {
    let (_d, store) = new_store(open);
    let id = sid("20251210-173900-abcdef");
    let blob = BlobId::of(b"never stored");
    let entry = ManifestEntry {
        path: rp("app/main.py"),
        origin: Origin::Tracked,
        kind: EntryKind::File { blob: blob.clone(), size: 12, mode: 0o644 },
        owner: None,
        xattrs: vec![],
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
    assert!(matches!(store.manifest(&id), Err(Error::UnknownSnapshot { .. })), "the refused manifest was kept");
}

/// `verify` re-hashes blobs and reports corrupt and missing ones, naming the backup, blob and path;
/// `get_blob` of a corrupt blob is `CorruptBlob`.
pub fn verify_reports_corrupt_and_missing_blobs<S: StoreUnderTest>(open: &OpenStore<S>) {
    let (_d, store) = new_store(open);
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
    let mut bytes = store.get_blob(&a_blob).unwrap();
    bytes[0] ^= 0x01;
    store.corrupt_blob(&a_blob, &bytes);
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
    store.lose_blob(&b_blob);
    let report = store.verify(None).unwrap();
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    assert_eq!(report.problems[1], format!("backup {s2}: blob {b_blob} for `b.txt` is missing"));
    assert_eq!((report.snapshots, report.blobs), (2, 2));
    assert!(!store.has_blob(&b_blob).unwrap());
}

/// `prune` keeps the newest and the protected snapshots, deletes the others and the blobs only they
/// used (orphans too); a dry run reports the same and deletes nothing.
pub fn prune_keeps_newest_and_protected_and_collects_blobs<S: StoreUnderTest>(open: &OpenStore<S>) {
    let (_d, store) = new_store(open);
    let ids: Vec<SnapshotId> = (1..=5).map(|i| sid(&format!("2025120{i}-120000-00000{i}"))).collect();
    let mut unique = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let shared = file_entry(&store, "shared", b"in every snapshot");
        let own = file_entry(&store, "unique", format!("only in snapshot {i}").as_bytes());
        unique.push(blob_of(std::slice::from_ref(&own), "unique"));
        store.put_manifest(&manifest(id, vec![shared, own])).unwrap();
    }
    let shared_blob = BlobId::of(b"in every snapshot");
    // Leftover of an interrupted snapshot: a blob no manifest names.
    let (orphan, _) = store.put_blob(b"orphan from a crash").unwrap();
    let protect = [ids[0].clone()];

    let dry = store.prune(2, &protect, true).unwrap();
    assert_eq!(dry.removed_snapshots, [ids[1].clone(), ids[2].clone()]);
    assert_eq!(dry.kept_snapshots, 3);
    assert_eq!(dry.removed_blobs, 3);
    assert!(dry.freed_bytes > 0);
    assert_eq!(store.list().unwrap().len(), 5);
    assert!(store.has_blob(&orphan).unwrap());
    assert!(unique.iter().all(|b| store.has_blob(b).unwrap()));

    let report = store.prune(2, &protect, false).unwrap();
    assert_eq!(report, dry);
    let survivors: Vec<SnapshotId> = store.list().unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(survivors, [ids[0].clone(), ids[3].clone(), ids[4].clone()]);
    let present: Vec<bool> = unique.iter().map(|b| store.has_blob(b).unwrap()).collect();
    assert_eq!(present, [true, false, false, true, true]);
    assert!(store.has_blob(&shared_blob).unwrap());
    assert!(!store.has_blob(&orphan).unwrap());
    let after = store.verify(None).unwrap();
    assert!(after.problems.is_empty(), "{:?}", after.problems);
    assert_eq!((after.snapshots, after.blobs), (3, 4));

    // Nothing left to do.
    let again = store.prune(2, &protect, false).unwrap();
    assert_eq!((again.removed_snapshots.len(), again.removed_blobs, again.freed_bytes), (0, 0, 0));
}

/// A restore never writes through a symlinked parent folder, and writes nothing when it refuses.
pub fn restore_refuses_a_symlinked_parent_folder_and_writes_nothing<S: StoreUnderTest>(open: &OpenStore<S>) {
    let (_d, store) = new_store(open);
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

/// A restore refuses a file below a symlink it restores.
pub fn restore_refuses_a_file_below_a_restored_symlink<S: StoreUnderTest>(open: &OpenStore<S>) {
    let (_d, store) = new_store(open);
    let repo = TestRepo::new();
    let before = repo.tree();
    let entries = vec![
        ManifestEntry {
            path: rp("s"),
            origin: Origin::Tracked,
            kind: EntryKind::Symlink { target: crate::backup::SymlinkTarget(b"/tmp".to_vec()) },
            owner: None,
            xattrs: vec![],
        },
        file_entry(&store, "s/x", b"x"),
    ];
    let err = restore(&store, repo.path(), &entries).unwrap_err();
    assert!(matches!(&err, Error::UnsafeRestore { path, .. } if path == "s/x"), "{err}");
    assert_eq!(repo.tree(), before);
}

/// A corrupt or lost blob fails a restore before any file changes.
pub fn corrupt_blob_fails_restore_before_any_change<S: StoreUnderTest>(open: &OpenStore<S>) {
    let (_d, store) = new_store(open);
    let repo = TestRepo::new();
    repo.write("a.txt", "original a\n").write("b.txt", "original b\n");
    let paths = [(rp("a.txt"), Origin::Tracked), (rp("b.txt"), Origin::Tracked), (rp("c.txt"), Origin::Tracked)];
    let (entries, _) = capture(&store, repo.path(), &paths).unwrap();
    repo.write("a.txt", "changed a\n").write("b.txt", "changed b\n").write("c.txt", "new c\n");
    let mutated = repo.tree();

    let b_blob = blob_of(&entries, "b.txt");
    store.corrupt_blob(&b_blob, b"original B\n");
    let err = restore(&store, repo.path(), &entries).unwrap_err();
    assert!(matches!(&err, Error::CorruptBlob { blob, .. } if blob == b_blob.as_str()), "{err}");
    assert_eq!(repo.tree(), mutated);

    store.lose_blob(&b_blob);
    let err = restore(&store, repo.path(), &entries).unwrap_err();
    assert!(matches!(&err, Error::BlobNotFound { blob } if blob == b_blob.as_str()), "{err}");
    assert_eq!(repo.tree(), mutated);
    assert_eq!(TreeState::capture(repo.path()), mutated);
}
