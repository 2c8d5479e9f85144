//! The stat cache: what a file's content hashed to, the last time it was looked at, keyed by
//! what `stat` says of it, so that a snapshot of an unchanged file need not read it again.
//!
//! The same idea as git's index, with the same protection against "racy" entries:
//!
//! - per captured path, the cache keeps `(dev, ino, size, mtime_ns, ctime_ns, mode)`, the
//!   blob the content hashed to and the file's extended attributes (setting or removing one
//!   changes the ctime, so an entry that is reused still holds the file's attributes: a
//!   snapshot of unchanged files reads neither their bytes nor their attributes); for the git index file, its stat, HEAD's commit and the
//!   [`IndexSnapshot`] taken from it (the index blob and the staged objects); per stored blob,
//!   the stat of its file in the store when its content was last hashed and found right;
//! - every stat in one cache was taken after a single moment, `taken_ns`, read from the clock
//!   before the first `stat` (so before the cache is written). An entry is reused only when
//!   every field matches the file's stat now **and** both its mtime and ctime are strictly
//!   older than `taken_ns` minus the file system's timestamp granularity
//!   ([`granularity_ns`]). A change made after `taken_ns` gives the file a time at least
//!   `taken_ns` minus one clock tick, so it cannot keep the recorded stat. A file changed in
//!   the same tick as it was looked at is "racy": its entry is never reused, it is read and
//!   hashed again next time;
//! - the ctime defeats a change that restores size and mtime (`touch -r`, `os.utime`): only
//!   the kernel sets it. The inode and device defeat a file replaced by another with the same
//!   size and times;
//! - a cache that does not read (missing, truncated, another format) or that was written for
//!   another work tree is ignored: the snapshot reads and hashes everything, as without it.
//!
//! The cache is written atomically (a temp file renamed over it) after the snapshot's manifest
//! is written and verified, and after an undo has written files back. It is not synced: it
//! holds observations only, so losing it, a crash before it is written, or a crash that
//! leaves it empty or torn (it then does not read) costs time, never data.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::xattr::Xattr;
use super::{BlobId, IndexSnapshot};
use crate::fsutil::{self, IoError};
use crate::paths::RepoPath;
use crate::vcs::CommitId;

/// The cache format this code writes. 2: a split index's record holds its shared index (one of
/// format 1 may lack it, and would be reused without it). 3: a file's record holds its
/// extended attributes.
const FORMAT: u32 = 3;

/// The oldest format this code reads: a file's record of format 2 holds no extended
/// attributes, so a capture that reuses one reads the file's attributes (not its bytes).
const OLDEST_FORMAT: u32 = 2;

/// The granularity assumed of a file system that keeps sub-second times: above the tick of
/// the kernel's coarse clock that stamps file times (1 to 10 ms).
const FINE_GRANULARITY_NS: i64 = 20_000_000;

/// The granularity assumed when a time is a whole second: file systems that keep seconds
/// only, or two (FAT).
const COARSE_GRANULARITY_NS: i64 = 2_000_000_000;

/// What `stat` says of a file, as far as the cache compares it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i64,
    /// File type and permission bits.
    pub mode: u32,
}

impl FileStat {
    /// From `stat`/`lstat`/`fstat` metadata.
    pub fn of(m: &fs::Metadata) -> Self {
        Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.len(),
            mtime_ns: m.mtime().saturating_mul(1_000_000_000).saturating_add(m.mtime_nsec()),
            ctime_ns: m.ctime().saturating_mul(1_000_000_000).saturating_add(m.ctime_nsec()),
            mode: m.mode(),
        }
    }
}

/// The timestamp granularity assumed for a file with `stat`: 2 s when its mtime or ctime is a
/// whole second (a file system that keeps seconds only), else the larger of 20 ms and twice
/// the tick of the coarse clock the kernel stamps file times with.
pub fn granularity_ns(stat: &FileStat) -> i64 {
    if stat.mtime_ns % 1_000_000_000 == 0 || stat.ctime_ns % 1_000_000_000 == 0 {
        return COARSE_GRANULARITY_NS;
    }
    FINE_GRANULARITY_NS.max(coarse_tick_ns().saturating_mul(2))
}

/// The resolution of `CLOCK_REALTIME_COARSE` (the clock of file times), or 0 if unknown.
fn coarse_tick_ns() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::clock_getres(libc::CLOCK_REALTIME_COARSE, &raw mut ts) };
    if rc != 0 {
        return 0;
    }
    #[allow(clippy::useless_conversion)] // the field types differ between platforms
    let ns = i64::from(ts.tv_sec).saturating_mul(1_000_000_000).saturating_add(i64::from(ts.tv_nsec));
    ns
}

/// Whether an entry recorded as `recorded` in a cache taken at `taken_ns` may be reused for a
/// file whose stat is `now` (see the [module docs](self)).
pub fn reusable(recorded: &FileStat, now: &FileStat, taken_ns: i64) -> bool {
    let limit = taken_ns.saturating_sub(granularity_ns(recorded));
    recorded == now && recorded.mtime_ns < limit && recorded.ctime_ns < limit
}

/// Nanoseconds since the epoch, now.
pub fn now_ns() -> i64 {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The git index as last seen: its stat, HEAD then, and what the snapshot took from it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRecord {
    /// The index file's stat.
    pub stat: FileStat,
    /// HEAD's commit (the staged objects are the index's differences from its tree).
    pub head: CommitId,
    /// The index blob and its staged objects.
    pub snapshot: IndexSnapshot,
}

#[derive(Serialize, Deserialize)]
struct FileRecord {
    path: RepoPath,
    stat: FileStat,
    blob: BlobId,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    xattrs: Vec<Xattr>,
}

/// What the cache knows of a file: its stat, the blob its content hashed to, its extended
/// attributes.
type Known = (FileStat, BlobId, Vec<Xattr>);

#[derive(Serialize, Deserialize)]
struct BlobRecord {
    blob: BlobId,
    stat: FileStat,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    format: u32,
    #[serde(with = "crate::paths::os_path")]
    workdir: PathBuf,
    taken_ns: i64,
    files: Vec<FileRecord>,
    index: Option<IndexRecord>,
    blobs: Vec<BlobRecord>,
}

/// A stat cache read from disk (the previous observations) and the one being recorded now.
#[derive(Debug)]
pub struct StatCache {
    workdir: PathBuf,
    old_taken_ns: i64,
    old_files: HashMap<RepoPath, Known>,
    /// Whether the records in `old_files` hold the files' extended attributes (format 3 on).
    old_xattrs: bool,
    old_index: Option<IndexRecord>,
    old_blobs: HashMap<BlobId, FileStat>,
    taken_ns: i64,
    files: BTreeMap<RepoPath, Known>,
    index: Option<IndexRecord>,
    blobs: BTreeMap<BlobId, FileStat>,
    written: HashSet<BlobId>,
}

impl StatCache {
    /// An empty cache for `workdir`, taking its moment now.
    pub fn empty(workdir: &Path) -> Self {
        Self {
            workdir: workdir.to_path_buf(),
            old_taken_ns: i64::MIN,
            old_files: HashMap::new(),
            old_xattrs: true,
            old_index: None,
            old_blobs: HashMap::new(),
            taken_ns: now_ns(),
            files: BTreeMap::new(),
            index: None,
            blobs: BTreeMap::new(),
            written: HashSet::new(),
        }
    }

    /// Reads the cache at `path` for the work tree `workdir`, and takes the moment of the new
    /// observations (call it before the first `stat`). A cache that does not read, or that
    /// belongs to another work tree, counts as empty.
    pub fn load(path: &Path, workdir: &Path) -> Self {
        let mut cache = Self::empty(workdir);
        let Ok(bytes) = fsutil::read(path) else { return cache };
        let Ok(stored) = serde_json::from_slice::<Stored>(&bytes) else { return cache };
        if !(OLDEST_FORMAT..=FORMAT).contains(&stored.format) || stored.workdir != workdir {
            return cache;
        }
        cache.old_taken_ns = stored.taken_ns;
        cache.old_xattrs = stored.format >= 3;
        cache.old_files = stored.files.into_iter().map(|r| (r.path, (r.stat, r.blob, r.xattrs))).collect();
        cache.old_index = stored.index;
        cache.old_blobs = stored.blobs.into_iter().map(|r| (r.blob, r.stat)).collect();
        cache
    }

    /// The blob `path` held when it had stat `now`, and its extended attributes then (`None`:
    /// a cache written before they were recorded; read them from the file), if the cache may
    /// be trusted for it.
    pub fn file(&self, path: &RepoPath, now: &FileStat) -> Option<(&BlobId, Option<&[Xattr]>)> {
        let (stat, blob, xattrs) = self.old_files.get(path)?;
        reusable(stat, now, self.old_taken_ns).then_some((blob, self.old_xattrs.then_some(xattrs.as_slice())))
    }

    /// Records that `path`, with stat `stat` (taken after this cache's moment), held `blob`
    /// and had the extended attributes `xattrs` (read after that stat).
    pub fn record_file(&mut self, path: &RepoPath, stat: FileStat, blob: &BlobId, xattrs: &[Xattr]) {
        self.files.insert(path.clone(), (stat, blob.clone(), xattrs.to_vec()));
    }

    /// Whether `path`, whose stat is `now`, still holds `blob` as recorded since this cache's
    /// moment: same stat, and its times older than the moment by more than the file system's
    /// granularity (a write within the same tick could keep the stat). The check a step makes
    /// before it deletes a file the snapshot of this same run took, instead of hashing it again.
    pub fn still_recorded(&self, path: &RepoPath, now: &FileStat, blob: &BlobId) -> bool {
        self.files.get(path).is_some_and(|(stat, b, _)| b == blob && reusable(stat, now, self.taken_ns))
    }

    /// Records that the store's file of `blob`, with stat `stat`, was written from content
    /// hashed while writing it (this process, this snapshot): it needs no second hash before
    /// the snapshot counts as verified.
    pub fn record_written_blob(&mut self, blob: &BlobId, stat: FileStat) {
        self.written.insert(blob.clone());
        self.blobs.insert(blob.clone(), stat);
    }

    /// Whether `blob` was written by this process since the cache was loaded (see
    /// [`StatCache::record_written_blob`]) and its store file keeps the stat it had then.
    pub fn written_now(&self, blob: &BlobId, now: &FileStat) -> bool {
        self.written.contains(blob) && self.blobs.get(blob) == Some(now)
    }

    /// What the snapshot took from the index when it had stat `now` and HEAD was `head`.
    pub fn index(&self, now: &FileStat, head: &CommitId) -> Option<&IndexSnapshot> {
        let rec = self.old_index.as_ref()?;
        (&rec.head == head && reusable(&rec.stat, now, self.old_taken_ns)).then_some(&rec.snapshot)
    }

    /// What the snapshot took from an index whose content hashes to `blob` (read and hashed
    /// now, so no racy rule applies) with HEAD at `head`: the staged objects are a function of
    /// the index's content and HEAD's tree.
    pub fn index_with_content(&self, blob: &BlobId, head: &CommitId) -> Option<&IndexSnapshot> {
        let rec = self.old_index.as_ref()?;
        (&rec.head == head && &rec.snapshot.blob == blob).then_some(&rec.snapshot)
    }

    /// Records the index (stat taken after this cache's moment).
    pub fn record_index(&mut self, record: IndexRecord) {
        self.index = Some(record);
    }

    /// Whether the store's file of `blob`, with stat `now`, was hashed and found right before.
    pub fn blob_verified(&self, blob: &BlobId, now: &FileStat) -> bool {
        self.old_blobs.get(blob).is_some_and(|stat| reusable(stat, now, self.old_taken_ns))
    }

    /// Records that the store's file of `blob` hashed right with stat `stat` (taken after this
    /// cache's moment, before the hash).
    pub fn record_blob(&mut self, blob: &BlobId, stat: FileStat) {
        self.blobs.insert(blob.clone(), stat);
    }

    /// Writes what was recorded since [`StatCache::load`] to `path`, atomically. Blob records
    /// of the previous cache that were reusable and not seen again are kept when their store
    /// file is still there with the same stat (`stat_of` gives it): a blob file never changes.
    pub fn save(&self, path: &Path, stat_of: &dyn Fn(&BlobId) -> Option<FileStat>) -> Result<(), IoError> {
        let mut blobs = self.blobs.clone();
        for (blob, stat) in &self.old_blobs {
            if !blobs.contains_key(blob) && stat_of(blob).is_some_and(|now| reusable(stat, &now, self.old_taken_ns)) {
                blobs.insert(blob.clone(), *stat);
            }
        }
        // Carried records were reusable under the older moment; they stay so under this
        // later one, and a change since would have changed their stat.
        let stored = Stored {
            format: FORMAT,
            workdir: self.workdir.clone(),
            taken_ns: self.taken_ns,
            files: self
                .files
                .iter()
                .map(|(path, (stat, blob, xattrs))| FileRecord {
                    path: path.clone(),
                    stat: *stat,
                    blob: blob.clone(),
                    xattrs: xattrs.clone(),
                })
                .collect(),
            index: self.index.clone(),
            blobs: blobs.into_iter().map(|(blob, stat)| BlobRecord { blob, stat }).collect(),
        };
        let json = serde_json::to_vec(&stored)
            .map_err(|e| IoError::new("write", path, std::io::Error::new(std::io::ErrorKind::InvalidData, e)))?;
        write_replacing(path, &json)
    }
}

/// Writes `bytes` to a temp file next to `path` (mode `0600`) and renames it over `path`:
/// readers see the old cache or the new one. Not synced: after a crash the cache may be the
/// old one, or empty or torn, which reads as no cache (observations only, see the module
/// docs).
fn write_replacing(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let tmp = path.with_file_name(format!(".statcache.tmp-{}", std::process::id()));
    let result = (|| {
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(fsutil::FILE_MODE)
            .open(&tmp)
            .map_err(|e| IoError::new("write", path, e))?;
        f.write_all(bytes).map_err(|e| IoError::new("write", path, e))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| IoError::new("rename into place", path, e))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(mtime_ns: i64, ctime_ns: i64) -> FileStat {
        FileStat { dev: 1, ino: 2, size: 3, mtime_ns, ctime_ns, mode: 0o100_644 }
    }

    #[test]
    fn an_entry_is_reused_only_when_older_than_its_moment_minus_the_granularity() {
        let t = 1_700_000_000_123_456_789;
        let old = t - 1_000_000_000;
        assert!(reusable(&stat(old, old), &stat(old, old), t));
        // Changed in the same tick as the cache was taken: racy, never reused.
        assert!(!reusable(&stat(t - 1_000, old), &stat(t - 1_000, old), t));
        assert!(!reusable(&stat(old, t - 1_000), &stat(old, t - 1_000), t));
        assert!(!reusable(&stat(t - FINE_GRANULARITY_NS, old), &stat(t - FINE_GRANULARITY_NS, old), t));
        // Any field that differs.
        assert!(!reusable(&stat(old, old), &stat(old, old + 1), t));
        assert!(!reusable(&stat(old, old), &FileStat { ino: 9, ..stat(old, old) }, t));
        assert!(!reusable(&stat(old, old), &FileStat { dev: 9, ..stat(old, old) }, t));
        assert!(!reusable(&stat(old, old), &FileStat { size: 9, ..stat(old, old) }, t));
        assert!(!reusable(&stat(old, old), &FileStat { mode: 0o100_755, ..stat(old, old) }, t));
    }

    #[test]
    fn whole_second_times_mean_a_coarse_file_system() {
        let t = 1_700_000_010_000_000_000;
        let whole = 1_700_000_009_000_000_000;
        assert_eq!(granularity_ns(&stat(whole, whole + 5)), COARSE_GRANULARITY_NS);
        assert!(!reusable(&stat(whole, whole + 5), &stat(whole, whole + 5), t), "1 s old on a 2 s file system");
        assert!(reusable(
            &stat(whole - 2_000_000_000, whole - 1_999_999_999),
            &stat(whole - 2_000_000_000, whole - 1_999_999_999),
            t + 1
        ));
    }
}
