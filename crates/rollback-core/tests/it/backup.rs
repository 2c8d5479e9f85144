//! The backup store on disk: the exported `BackupStore` suite (`rollback_core::testing::store`)
//! against `FsBackupStore`, one test per case, then what only a store on disk has: folder and
//! file modes, hand-edited and truncated manifest files, and temp files left by interrupted
//! writes.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rollback_core::backup::store::FsBackupStore;
use rollback_core::backup::{BackupStore, EntryKind, Error, ManifestEntry, Origin, SnapshotId};
use rollback_core::paths::RepoPath;
use rollback_core::testing::store::{self as suite, file_entry, manifest, mode_of, rp, sid};
use rollback_core::time::Timestamp;
use tempfile::TempDir;

fn open_fs(dir: &Path) -> FsBackupStore {
    FsBackupStore::open(dir).unwrap()
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod fs_store {
            $(#[test] fn $case() { super::suite::$case(&super::open_fs) })*
        }

        /// A case added to the suite gets a test here too.
        #[test]
        fn every_case_of_the_suite_is_run() {
            let here = [$(stringify!($case)),*];
            let suite: Vec<&str> = suite::cases::<FsBackupStore>().iter().map(|c| c.name).collect();
            assert_eq!(here.as_slice(), suite.as_slice());
        }
    };
}

conformance!(
    round_trip_restores_the_exact_tree,
    restore_writes_exact_modes_despite_read_only_and_setuid_bits,
    restore_puts_back_a_symlink_where_the_reset_made_a_folder,
    second_capture_of_unchanged_files_writes_no_blobs,
    manifest_round_trips_and_lists_oldest_first,
    put_manifest_refuses_a_missing_blob,
    verify_reports_corrupt_and_missing_blobs,
    prune_keeps_newest_and_protected_and_collects_blobs,
    restore_refuses_a_symlinked_parent_folder_and_writes_nothing,
    restore_refuses_a_file_below_a_restored_symlink,
    corrupt_blob_fails_restore_before_any_change,
);

fn new_store() -> (TempDir, FsBackupStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBackupStore::open(&dir.path().join("backups")).unwrap();
    (dir, store)
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

fn read_tampered(edit: impl FnOnce(&mut serde_json::Value)) -> Error {
    let (_d, store) = new_store();
    let id = sid("20251210-173900-abcdef");
    let m = manifest(
        &id,
        vec![
            ManifestEntry {
                path: rp("a"),
                origin: Origin::Tracked,
                kind: EntryKind::Absent,
                owner: None,
                xattrs: vec![],
            },
            ManifestEntry {
                path: rp("b"),
                origin: Origin::Tracked,
                kind: EntryKind::Absent,
                owner: None,
                xattrs: vec![],
            },
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
    // `list` shows it as damaged rather than failing: it is where an operator looks.
    let [listed] = store.list().unwrap().try_into().unwrap();
    assert_eq!(listed.id, id);
    assert_eq!(listed.head, None);
    let why = listed.damaged.unwrap();
    assert!(why.contains("20251210-173900-abcdef.json") && why.contains("EOF"), "{why}");
    assert_eq!(listed.created_at, Timestamp::parse("2025-12-10T17:39:00Z").unwrap());
    // `verify` reports it as a problem rather than failing.
    let report = store.verify(None).unwrap();
    assert_eq!(report.problems.len(), 1);
    assert!(report.problems[0].starts_with("backup 20251210-173900-abcdef: backup manifest"), "{:?}", report.problems);
}

#[test]
fn leftovers_of_interrupted_writes_are_no_snapshots_and_prune_removes_them() {
    let (_d, store) = new_store();
    let id = sid("20251210-173900-abcdef");
    let entry = file_entry(&store, "a", b"kept");
    store.put_manifest(&manifest(&id, vec![entry])).unwrap();
    // A manifest write and a blob write cut short: their temp files stay behind.
    let manifest_temp = store.root().join("snapshots/.20251211-000000-cccccc.json.tmp-1-0");
    fs::write(&manifest_temp, "{").unwrap();
    let (orphan, _) = store.put_blob(b"orphan from a crash").unwrap();
    let blob_temp = store.blob_path(&orphan).with_file_name(".leftover.tmp-1-1");
    fs::write(&blob_temp, "partial").unwrap();

    let ids: Vec<SnapshotId> = store.list().unwrap().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, [id], "a temp manifest is not a snapshot");
    let dry = store.prune(1, &[], true).unwrap();
    assert_eq!((dry.removed_snapshots.len(), dry.removed_blobs), (0, 1));
    assert!(blob_temp.exists() && manifest_temp.exists(), "a dry run deletes nothing");
    store.prune(1, &[], false).unwrap();
    assert!(!blob_temp.exists(), "prune removes a blob write's temp file");
    assert!(!store.has_blob(&orphan).unwrap());
    assert_eq!(store.list().unwrap().len(), 1);
}

/// A folder that is not empty at a file's own path is found before anything is written or
/// removed; one holding only paths the restore removes is fine.
#[test]
fn a_non_empty_folder_in_a_files_way_is_refused_before_any_change() {
    let (_s, store) = new_store();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    fs::write(w.join("a.txt"), "now\n").unwrap();
    fs::write(w.join("gone.txt"), "remove me\n").unwrap();
    fs::create_dir_all(w.join("z/app.cfg")).unwrap();
    fs::write(w.join("z/app.cfg/keep.txt"), "someone's file\n").unwrap();
    let entries = vec![
        file_entry(&store, "a.txt", b"before\n"),
        ManifestEntry {
            path: rp("gone.txt"),
            origin: Origin::Untracked,
            kind: EntryKind::Absent,
            owner: None,
            xattrs: vec![],
        },
        file_entry(&store, "z/app.cfg", b"cfg\n"),
    ];
    let err = rollback_core::backup::snapshot::restore(&store, w, &entries).unwrap_err();
    assert!(matches!(&err, Error::UnsafeRestore { path, .. } if path == "z/app.cfg"), "{err}");
    assert!(err.to_string().contains("not empty"), "{err}");
    assert_eq!(fs::read_to_string(w.join("a.txt")).unwrap(), "now\n", "nothing restored before the refusal");
    assert!(w.join("gone.txt").exists(), "nothing removed before the refusal");
    assert_eq!(fs::read_to_string(w.join("z/app.cfg/keep.txt")).unwrap(), "someone's file\n");

    // The same folder holding only what the restore removes empties, and the file goes there.
    let entries = vec![
        file_entry(&store, "z/app.cfg", b"cfg\n"),
        ManifestEntry {
            path: rp("z/app.cfg/keep.txt"),
            origin: Origin::Untracked,
            kind: EntryKind::Absent,
            owner: None,
            xattrs: vec![],
        },
    ];
    rollback_core::backup::snapshot::restore(&store, w, &entries).unwrap();
    assert_eq!(fs::read_to_string(w.join("z/app.cfg")).unwrap(), "cfg\n");
}

/// A capture big enough to store its files on several threads gives the same manifest as one
/// file at a time would: every path once, in order, each blob holding its file's bytes; a
/// content shared by many files is one new blob; a restore gives the tree back exactly.
#[test]
fn a_capture_of_hundreds_of_files_stored_in_parallel_is_exact() {
    use rollback_core::backup::snapshot::{capture, restore};
    let (_d, store) = new_store();
    let repo = rollback_testkit::TestRepo::new();
    // 100 distinct contents, each in three files; every tenth file under a folder.
    let mut paths = write_untracked(
        &repo,
        (0..300).map(|i| {
            let path = if i % 10 == 0 { format!("dir{}/f{i}.txt", i % 7) } else { format!("f{i}.txt") };
            (path, format!("content {}\n", i % 100).repeat(1 + i % 5))
        }),
    );
    repo.symlink("link", "f1.txt");
    paths.push((rp("link"), Origin::Untracked));
    paths.push((rp("missing/file.txt"), Origin::Untracked));
    let before = repo.tree();

    let (entries, stats) = capture(&store, repo.path(), &paths).unwrap();
    assert_eq!(entries.len(), 300 + 1 + 2, "300 files, a symlink, a missing file and its folder");
    assert!(entries.windows(2).all(|w| w[0].path < w[1].path), "sorted, each path once");
    assert_eq!(stats.blobs, 300);
    let distinct: std::collections::BTreeSet<String> =
        (0..300).map(|i| format!("content {}\n", i % 100).repeat(1 + i % 5)).collect();
    assert_eq!(stats.new_blobs, distinct.len(), "a shared content is one new blob");
    for e in &entries {
        if let EntryKind::File { blob, size, .. } = &e.kind {
            let on_disk = fs::read(e.path.to_fs(repo.path())).unwrap();
            assert_eq!(store.get_blob(blob).unwrap(), on_disk, "{}", e.path);
            assert_eq!(*size, on_disk.len() as u64);
        }
    }

    for (p, _) in paths.iter().take(300) {
        fs::remove_file(p.to_fs(repo.path())).unwrap();
    }
    restore(&store, repo.path(), &entries).unwrap();
    assert_eq!(repo.tree(), before);
}

#[test]
fn the_progress_of_a_capture_rises_from_zero_to_the_total_in_at_most_101_calls() {
    use rollback_core::backup::snapshot::capture_with_progress;
    let (_d, store) = new_store();
    let repo = rollback_testkit::TestRepo::new();
    let paths = write_untracked(&repo, (0..1000).map(|i| (format!("f{i}.txt"), format!("{i}\n"))));
    let mut seen = Vec::new();
    capture_with_progress(&store, repo.path(), &paths, &mut |done| seen.push(done)).unwrap();
    assert_eq!(seen.first(), Some(&0));
    assert_eq!(seen.last(), Some(&1000));
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "rising: {seen:?}");
    // The walk (the first half) and the stores (how many of the second half this thread sees
    // depends on the scheduler) report through one throttle: before, each had its own, and
    // the walk alone made 100 calls.
    assert!(seen.len() <= 101, "{} calls: {seen:?}", seen.len());
}

/// Writes each `(path, content)` into `repo` and lists the paths as untracked captures.
fn write_untracked(
    repo: &rollback_testkit::TestRepo,
    files: impl IntoIterator<Item = (String, String)>,
) -> Vec<(RepoPath, Origin)> {
    files
        .into_iter()
        .map(|(path, content)| {
            repo.write(&path, content);
            (rp(path), Origin::Untracked)
        })
        .collect()
}

/// A captured folder's own folders come back with their modes: an empty one, a read-only one
/// (filled before it becomes read-only) and a setgid one, after the folder is removed whole.
#[test]
fn folders_a_capture_saw_come_back_with_their_modes() {
    use rollback_core::backup::snapshot::{capture_all, restore, restore_folders};
    let (_dir, store) = new_store();
    let wd = tempfile::tempdir().unwrap();
    let at = |p: &str| wd.path().join(p);
    fs::create_dir_all(at("data/cache/empty")).unwrap();
    fs::create_dir_all(at("data/ro")).unwrap();
    fs::write(at("data/ro/f.txt"), "f").unwrap();
    let modes = [("data/ro", 0o555), ("data/cache", 0o2775), ("data/cache/empty", 0o700)];
    for (p, m) in modes {
        fs::set_permissions(at(p), fs::Permissions::from_mode(m)).unwrap();
    }
    let captured = capture_all(&store, wd.path(), &[(rp("data"), Origin::Untracked)], None, &mut |_| {}).unwrap();
    let seen: Vec<(String, u32)> = captured.folders.iter().map(|f| (f.path.to_string(), f.mode)).collect();
    let top = mode_of(&at("data"));
    let expected = [("data", top), ("data/cache", 0o2775), ("data/cache/empty", 0o700), ("data/ro", 0o555)];
    assert_eq!(seen, expected.map(|(p, m)| (p.to_owned(), m)));
    fs::set_permissions(at("data/ro"), fs::Permissions::from_mode(0o755)).unwrap();
    fs::remove_dir_all(at("data")).unwrap();

    restore(&store, wd.path(), &captured.entries).unwrap();
    let stats = restore_folders(wd.path(), &captured.folders).unwrap();
    assert_eq!(stats.made, 2, "the empty folders: {stats:?}");
    assert_eq!(fs::read(at("data/ro/f.txt")).unwrap(), b"f");
    for (p, m) in modes {
        assert_eq!(mode_of(&at(p)), m, "`{p}`");
    }
    // Given back again onto the restored tree: nothing to do.
    let again = restore_folders(wd.path(), &captured.folders).unwrap();
    assert_eq!((again.made, again.modes), (0, 0));
    fs::set_permissions(at("data/ro"), fs::Permissions::from_mode(0o755)).unwrap();
}

/// A manifest written before folders were recorded (no `folders` key) still loads, with no
/// folders: an undo from it restores as before.
#[test]
fn a_manifest_without_folders_loads() {
    let (_dir, store) = new_store();
    let mut m = manifest(&sid("20251210-173900-abcdef"), vec![file_entry(&store, "a/x", b"x")]);
    m.folders = vec![rollback_core::backup::Folder {
        path: rp("a"),
        mode: 0o700,
        owner: rollback_core::backup::Owner { uid: 1, gid: 2 },
        xattrs: vec![],
    }];
    let mut json = serde_json::to_value(&m).unwrap();
    assert_eq!(json["folders"][0], serde_json::json!({"path": "a", "mode": 0o700, "uid": 1, "gid": 2}));
    json.as_object_mut().unwrap().remove("folders");
    let old: rollback_core::backup::Manifest = serde_json::from_value(json).unwrap();
    assert!(old.folders.is_empty());
    assert_eq!(old.entries, m.entries);
}

/// A sparse file (64 MiB long, two short runs of data) is stored sparse and restored sparse,
/// byte for byte. Before, both the blob and the restored file took the whole 64 MiB.
#[test]
fn a_sparse_file_is_stored_and_restored_with_its_holes() {
    use rollback_core::backup::snapshot::{capture, restore};
    use std::io::{Seek, SeekFrom, Write};
    use std::os::unix::fs::MetadataExt;
    let allocated = |p: &Path| fs::metadata(p).unwrap().blocks() * 512;
    let (_dir, store) = new_store();
    let wd = tempfile::tempdir().unwrap();
    let img = wd.path().join("disk.img");
    let mut f = fs::File::create(&img).unwrap();
    f.write_all(b"header").unwrap();
    f.seek(SeekFrom::Start(50_000_000)).unwrap();
    f.write_all(b"end").unwrap();
    f.set_len(64 << 20).unwrap();
    drop(f);
    assert!(allocated(&img) < 1 << 20, "this file system keeps holes (ext4, xfs, btrfs, tmpfs do)");
    let content = fs::read(&img).unwrap();

    let (entries, _) = capture(&store, wd.path(), &[(rp("disk.img"), Origin::Untracked)]).unwrap();
    let EntryKind::File { blob, size, .. } = &entries[0].kind else { panic!("{entries:?}") };
    assert_eq!(*size, 64 << 20);
    let stored = store.blob_file(blob).unwrap();
    assert!(allocated(&stored) < 1 << 20, "the blob keeps the holes: {} bytes", allocated(&stored));

    fs::remove_file(&img).unwrap();
    restore(&store, wd.path(), &entries).unwrap();
    assert!(allocated(&img) < 1 << 20, "the restored file keeps the holes: {} bytes", allocated(&img));
    assert!(fs::read(&img).unwrap() == content, "the same bytes");
}
