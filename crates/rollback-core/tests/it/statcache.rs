//! The snapshot's stat cache (`backup::statcache`): an entry is reused only when every stat
//! field matches and the file is older than the cache's moment minus the file system's
//! granularity. Each test writes a cache file by hand whose entry names the WRONG blob (one
//! of the same size, in the store): a capture that reuses the entry would record that blob,
//! so the right blob proves the file was read and hashed again.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rollback_core::backup::statcache::{FileStat, StatCache};
use rollback_core::backup::store::FsBackupStore;
use rollback_core::backup::{BackupStore, BlobId, EntryKind, Origin, snapshot};
use rollback_core::paths::RepoPath;
use tempfile::TempDir;

struct Setup {
    _dirs: (TempDir, TempDir),
    wd: std::path::PathBuf,
    store: FsBackupStore,
    cache: std::path::PathBuf,
    decoy: BlobId,
}

/// A work tree holding `a.txt` ("real"), a store holding a decoy blob of the same size.
fn setup() -> Setup {
    let wd = tempfile::tempdir().unwrap();
    let state = tempfile::tempdir().unwrap();
    fs::write(wd.path().join("a.txt"), b"real").unwrap();
    let store = FsBackupStore::open(&state.path().join("backups")).unwrap();
    let (decoy, _) = store.put_blob(b"fake").unwrap();
    let cache = state.path().join("statcache.json");
    Setup { wd: wd.path().to_path_buf(), _dirs: (wd, state), store, cache, decoy }
}

fn stat_json(s: &FileStat) -> serde_json::Value {
    serde_json::json!({
        "dev": s.dev, "ino": s.ino, "size": s.size,
        "mtime_ns": s.mtime_ns, "ctime_ns": s.ctime_ns, "mode": s.mode,
    })
}

/// Writes a cache for `workdir` taken at `taken_ns` that says `a.txt` with `stat` held `blob`.
fn write_cache(path: &Path, workdir: &Path, taken_ns: i64, stat: &FileStat, blob: &BlobId) {
    let v = serde_json::json!({
        "format": 2,
        "workdir": workdir,
        "taken_ns": taken_ns,
        "files": [{ "path": "a.txt", "stat": stat_json(stat), "blob": blob.as_str() }],
        "index": null,
        "blobs": [],
    });
    fs::write(path, serde_json::to_vec(&v).unwrap()).unwrap();
}

fn stat_now(p: &Path) -> FileStat {
    FileStat::of(&fs::symlink_metadata(p).unwrap())
}

/// The blob a capture through the cache records for `a.txt`.
fn captured_blob(s: &Setup) -> BlobId {
    let mut cache = StatCache::load(&s.cache, &s.wd);
    let paths = [(RepoPath::new("a.txt").unwrap(), Origin::Tracked)];
    let (entries, _) = snapshot::capture_cached(&s.store, &s.wd, &paths, Some(&mut cache), &mut |_| {}).unwrap();
    match &entries[0].kind {
        EntryKind::File { blob, .. } => blob.clone(),
        other => panic!("{other:?}"),
    }
}

const HOUR_NS: i64 = 3_600_000_000_000;

#[test]
fn an_old_entry_is_reused_without_reading_the_file() {
    let s = setup();
    let st = stat_now(&s.wd.join("a.txt"));
    write_cache(&s.cache, &s.wd, st.ctime_ns.max(st.mtime_ns) + HOUR_NS, &st, &s.decoy);
    // The decoy proves the entry was used (the file says "real").
    assert_eq!(captured_blob(&s), s.decoy);
}

#[test]
fn an_entry_taken_in_the_same_tick_as_the_change_is_rehashed() {
    let s = setup();
    let st = stat_now(&s.wd.join("a.txt"));
    // The file changed 1 ms before the cache's moment (well within the same second).
    write_cache(&s.cache, &s.wd, st.ctime_ns.max(st.mtime_ns) + 1_000_000, &st, &s.decoy);
    assert_eq!(captured_blob(&s), BlobId::of(b"real"));
}

#[test]
fn a_change_that_puts_size_and_mtime_back_is_found_by_the_ctime() {
    let s = setup();
    let path = s.wd.join("a.txt");
    fs::write(&path, b"fake").unwrap();
    let before = stat_now(&path);
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    write_cache(&s.cache, &s.wd, before.ctime_ns.max(before.mtime_ns) + HOUR_NS, &before, &s.decoy);
    // Same size, mtime put back (as `os.utime` would): only the ctime moves.
    fs::write(&path, b"real").unwrap();
    fs::File::options().write(true).open(&path).unwrap().set_modified(mtime).unwrap();
    let after = stat_now(&path);
    assert_eq!((after.size, after.mtime_ns, after.ino), (before.size, before.mtime_ns, before.ino));
    if after.ctime_ns == before.ctime_ns {
        // Both changes in one tick of the coarse clock: the entry is racy all the same (the
        // ctime is within the granularity of the moment), so it is hashed again.
        write_cache(&s.cache, &s.wd, before.ctime_ns + 1_000_000, &before, &s.decoy);
    }
    assert_eq!(captured_blob(&s), BlobId::of(b"real"));
}

#[test]
fn a_file_replaced_by_another_with_the_same_size_and_mtime_is_rehashed() {
    let s = setup();
    let path = s.wd.join("a.txt");
    let old = fs::metadata(&path).unwrap();
    let other = s.wd.join("other");
    fs::write(&other, b"real").unwrap();
    fs::File::options().write(true).open(&other).unwrap().set_modified(old.modified().unwrap()).unwrap();
    fs::rename(&other, &path).unwrap();
    let now = stat_now(&path);
    assert_ne!(now.ino, old.ino());
    // An entry that matches the new file in everything but the inode.
    let recorded = FileStat { ino: old.ino(), ..now };
    write_cache(&s.cache, &s.wd, now.ctime_ns.max(now.mtime_ns) + HOUR_NS, &recorded, &s.decoy);
    assert_eq!(captured_blob(&s), BlobId::of(b"real"));
    // The same entry with the right inode is reused: the inode alone made the difference.
    write_cache(&s.cache, &s.wd, now.ctime_ns.max(now.mtime_ns) + HOUR_NS, &now, &s.decoy);
    assert_eq!(captured_blob(&s), s.decoy);
}

#[test]
fn a_truncated_cache_reads_as_none() {
    let s = setup();
    let st = stat_now(&s.wd.join("a.txt"));
    write_cache(&s.cache, &s.wd, st.ctime_ns.max(st.mtime_ns) + HOUR_NS, &st, &s.decoy);
    let full = fs::read(&s.cache).unwrap();
    fs::write(&s.cache, &full[..full.len() / 2]).unwrap();
    assert_eq!(captured_blob(&s), BlobId::of(b"real"));
}

#[test]
fn a_cache_of_another_work_tree_is_ignored() {
    let s = setup();
    let st = stat_now(&s.wd.join("a.txt"));
    let elsewhere = s.wd.join("elsewhere");
    write_cache(&s.cache, &elsewhere, st.ctime_ns.max(st.mtime_ns) + HOUR_NS, &st, &s.decoy);
    assert_eq!(captured_blob(&s), BlobId::of(b"real"));
}

#[test]
fn an_entry_whose_blob_left_the_store_is_not_reused() {
    let s = setup();
    let st = stat_now(&s.wd.join("a.txt"));
    let missing = BlobId::of(b"gone");
    write_cache(&s.cache, &s.wd, st.ctime_ns.max(st.mtime_ns) + HOUR_NS, &st, &missing);
    assert_eq!(captured_blob(&s), BlobId::of(b"real"));
    assert!(s.store.has_blob(&BlobId::of(b"real")).unwrap(), "read and stored");
}

#[test]
fn a_capture_records_what_it_read_and_the_cache_round_trips() {
    let s = setup();
    let mut cache = StatCache::load(&s.cache, &s.wd);
    let paths = [(RepoPath::new("a.txt").unwrap(), Origin::Tracked)];
    snapshot::capture_cached(&s.store, &s.wd, &paths, Some(&mut cache), &mut |_| {}).unwrap();
    cache.save(&s.cache, &|_| None).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&fs::read(&s.cache).unwrap()).unwrap();
    assert_eq!(v["files"][0]["path"], "a.txt");
    assert_eq!(v["files"][0]["blob"], BlobId::of(b"real").as_str());
    assert_eq!(v["files"][0]["stat"]["ino"], fs::metadata(s.wd.join("a.txt")).unwrap().ino());
    assert_eq!(fs::metadata(&s.cache).unwrap().mode() & 0o777, 0o600);
    // Read back, the entry (just written: racy) is not reused, and the file is read again.
    assert_eq!(captured_blob(&s), BlobId::of(b"real"));
}

/// `lsetxattr(path, user.origin, value)`; `false` when the temp folder's file system keeps no
/// user attributes (the tests below then have nothing to check, and say so).
#[allow(clippy::print_stderr)] // says why it is skipped
fn set_origin(path: &Path, value: &[u8]) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let p = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: NUL-terminated path and name, and a readable value of the length given.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::lsetxattr(p.as_ptr(), c"user.origin".as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    let e = std::io::Error::last_os_error();
    if rc != 0 && e.raw_os_error() == Some(libc::EOPNOTSUPP) {
        eprintln!("skipped: the temp folder's file system keeps no user attributes");
        return false;
    }
    assert_eq!(rc, 0, "set user.origin: {e}");
    true
}

/// What a capture through the cache records for `a.txt`: its blob and its `user.origin`.
fn captured_with_origin(s: &Setup) -> (BlobId, Option<Vec<u8>>) {
    let mut cache = StatCache::load(&s.cache, &s.wd);
    let paths = [(RepoPath::new("a.txt").unwrap(), Origin::Tracked)];
    let (entries, _) = snapshot::capture_cached(&s.store, &s.wd, &paths, Some(&mut cache), &mut |_| {}).unwrap();
    cache.save(&s.cache, &|b| s.store.blob_stat(b).ok().flatten()).unwrap();
    let origin = entries[0].xattrs.iter().find(|x| x.name == b"user.origin").map(|x| x.value.clone());
    match &entries[0].kind {
        EntryKind::File { blob, .. } => (blob.clone(), origin),
        other => panic!("{other:?}"),
    }
}

/// A snapshot that reuses an entry (and reads nothing of the file) records the extended
/// attributes the entry was taken with; one set since changes the ctime, so the file is
/// looked at again and the new value recorded.
#[test]
fn a_reused_statcache_entry_keeps_the_extended_attributes() {
    let s = setup();
    let path = s.wd.join("a.txt");
    if !set_origin(&path, b"operator") {
        return;
    }
    // Older than the next cache's moment by more than the granularity: its entry is reusable.
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert_eq!(captured_with_origin(&s), (BlobId::of(b"real"), Some(b"operator".to_vec())), "read from the file");
    let cache = StatCache::load(&s.cache, &s.wd);
    assert!(cache.file(&RepoPath::new("a.txt").unwrap(), &stat_now(&path)).is_some(), "the entry is reusable");
    assert_eq!(captured_with_origin(&s), (BlobId::of(b"real"), Some(b"operator".to_vec())), "from the cache");

    assert!(set_origin(&path, b"changed"));
    assert_eq!(captured_with_origin(&s).1, Some(b"changed".to_vec()), "a changed attribute is seen");
}

/// A cache written before attributes were recorded (format 2) is still reused for the bytes
/// (the decoy proves the file was not read), and the attributes are read from the file.
#[test]
fn a_format_2_statcache_entry_is_reused_with_the_files_extended_attributes() {
    let s = setup();
    let path = s.wd.join("a.txt");
    if !set_origin(&path, b"operator") {
        return;
    }
    let st = stat_now(&path);
    write_cache(&s.cache, &s.wd, st.ctime_ns.max(st.mtime_ns) + HOUR_NS, &st, &s.decoy);
    assert_eq!(captured_with_origin(&s), (s.decoy.clone(), Some(b"operator".to_vec())));
}
