use super::*;

fn manifest_of(blobs: &[&BlobId]) -> Manifest {
    let entries = blobs
        .iter()
        .enumerate()
        .map(|(i, b)| super::super::ManifestEntry {
            path: RepoPath::new(format!("f{i}")).unwrap(),
            origin: super::super::Origin::Untracked,
            kind: EntryKind::File { blob: (*b).clone(), size: 1, mode: 0o644 },
            owner: None,
            xattrs: vec![],
        })
        .collect();
    Manifest {
        format: FORMAT,
        id: SnapshotId::generate(),
        created_at: crate::time::Timestamp::now(),
        run_id: None,
        workdir: PathBuf::from("/w"),
        head: crate::vcs::CommitId::new("a".repeat(40)).unwrap(),
        branch: None,
        entries,
        index: None,
        label: None,
        database: None,
        hard_links: Vec::new(),
        landing: std::collections::BTreeMap::new(),
        folders: Vec::new(),
    }
}

/// `put_manifest` flushes when a blob was written, or when a blob it names is in no
/// complete snapshot yet (left by a run that crashed before its flush); not when every
/// blob is already named by a complete snapshot.
#[test]
fn put_manifest_flushes_only_blobs_no_complete_snapshot_names() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBackupStore::open(dir.path()).unwrap();
    let flushes = || store.flushes.load(Ordering::SeqCst);
    let (a, _) = store.put_blob(b"a").unwrap();
    store.put_manifest(&manifest_of(&[&a])).unwrap();
    assert_eq!(flushes(), 1, "a new blob is flushed");
    assert!(!store.put_blob(b"a").unwrap().1);
    store.put_manifest(&manifest_of(&[&a])).unwrap();
    assert_eq!(flushes(), 1, "nothing new: no flush");
    // A blob another process wrote and never flushed (it crashed before its manifest).
    let other = FsBackupStore::open(dir.path()).unwrap();
    let (b, _) = other.put_blob(b"b").unwrap();
    assert!(!store.put_blob(b"b").unwrap().1);
    store.put_manifest(&manifest_of(&[&a, &b])).unwrap();
    assert_eq!(flushes(), 2, "a blob no complete snapshot names is flushed");
    assert!(store.put_blob(b"c").unwrap().1);
    store.put_manifest(&manifest_of(&[&a])).unwrap();
    assert_eq!(flushes(), 3, "a blob written since the last flush is flushed");
}

#[test]
fn files_stream_in_and_out_checked_against_their_hash() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBackupStore::open(&dir.path().join("store")).unwrap();
    let src = dir.path().join("dump");
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&src, &content).unwrap();
    let (id, len, new) = store.put_blob_file(&src).unwrap();
    assert_eq!((id.clone(), len, new), (BlobId::of(&content), content.len() as u64, true));
    assert!(!store.put_blob_file(&src).unwrap().2, "stored once");
    let leftovers: Vec<_> =
        std::fs::read_dir(&store.blobs).unwrap().flatten().filter(|e| is_temp(&e.file_name())).collect();
    assert!(leftovers.is_empty(), "no temp file left behind");
    let out = dir.path().join("back");
    store.get_blob_to_file(&id, &out).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), content);
    // A damaged blob is refused and nothing is written.
    let mut damaged = content.clone();
    damaged[10] ^= 1;
    std::fs::write(store.blob_path(&id), &damaged).unwrap();
    let again = dir.path().join("again");
    assert!(matches!(store.get_blob_to_file(&id, &again), Err(Error::CorruptBlob { .. })));
    assert!(!again.exists());
    // A temp file a crash left at the top of the blob folder is collected by prune.
    std::fs::write(store.blobs.join(".incoming.tmp-1-1"), b"torn").unwrap();
    assert_eq!(store.prune(0, &[], false).unwrap().freed_bytes, 4 + damaged.len() as u64);
}

#[test]
fn blob_paths_fan_out_by_two_hex_digits() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBackupStore::open(dir.path()).unwrap();
    let id = BlobId::of(b"hello");
    let p = store.blob_path(&id);
    assert_eq!(p.parent().unwrap().file_name().unwrap().to_str().unwrap(), &id.as_str()[..2]);
    assert_eq!(p.file_name().unwrap().to_str().unwrap(), &id.as_str()[2..]);
    assert_eq!(p.file_name().unwrap().len(), 62);
}

#[test]
fn put_blob_deduplicates_and_leaves_no_temp_files() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBackupStore::open(dir.path()).unwrap();
    let (id, new) = store.put_blob(b"content").unwrap();
    assert!(new);
    let (id2, new2) = store.put_blob(b"content").unwrap();
    assert_eq!(id, id2);
    assert!(!new2);
    let folder = store.blob_path(&id).parent().unwrap().to_path_buf();
    assert_eq!(fs::read_dir(folder).unwrap().count(), 1);
    assert_eq!(store.get_blob(&id).unwrap(), b"content");
}

#[test]
fn torn_blob_of_wrong_size_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBackupStore::open(dir.path()).unwrap();
    let (id, _) = store.put_blob(b"0123456789").unwrap();
    fs::write(store.blob_path(&id), b"01234").unwrap();
    let (_, new) = store.put_blob(b"0123456789").unwrap();
    assert!(new);
    assert_eq!(store.get_blob(&id).unwrap(), b"0123456789");
}

#[test]
fn missing_blob_error_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBackupStore::open(dir.path()).unwrap();
    let id = BlobId::of(b"never stored");
    let err = store.get_blob(&id).unwrap_err();
    assert!(matches!(&err, Error::BlobNotFound { blob } if blob == id.as_str()), "{err}");
    assert!(err.to_string().contains(id.as_str()));
    assert!(!store.has_blob(&id).unwrap());
}
