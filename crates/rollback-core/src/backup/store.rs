//! The on-disk backup store.
//!
//! Layout under the store's root (folders `0700`, files `0600`: backups hold `.env` files and
//! other secrets):
//!
//! ```text
//! blobs/<first 2 hex digits>/<remaining 62 hex digits>   file content, named by BLAKE3 hash
//! snapshots/<snapshot id>.json                           one manifest per snapshot
//! ```
//!
//! # Durability
//!
//! A snapshot may hold hundreds of small files, and one `fsync` per blob would dominate the run
//! time of a rollback. So blobs are written without an fsync: a temp file in the blob's folder,
//! then a rename into place. [`BackupStore::put_manifest`] then makes all of them durable at
//! once with a single `syncfs(2)` on the store's file system, checks that every blob the
//! manifest names exists, and only then writes the manifest with
//! `fsutil::atomic_write` (temp file, fsync, rename, fsync of
//! the folder).
//!
//! The manifest is the snapshot's completion marker: a snapshot exists only once its manifest
//! does, and a manifest is only written after the blobs it names are on stable storage. A crash
//! before that point leaves blobs (or temp files) that no manifest refers to; they are harmless
//! and [`BackupStore::prune`] collects them.
//!
//! A blob that already exists with the right size is not written again (deduplication). A blob
//! torn by a crash before the `syncfs` cannot be mistaken for a complete one by a later
//! snapshot unless it has the right size; and `get_blob` and `verify` re-hash content, so a
//! damaged blob is always reported as corrupt, never silently restored.
//!
//! `prune` deletes manifests first (and syncs their folder), then blobs, so a crash part-way
//! through never leaves a manifest naming a deleted blob.
//!
//! # Whose store
//!
//! The store's folders and files must belong to the user running forge-rollback: whoever else
//! could write them could change what an undo writes into the work tree. [`FsBackupStore::open`]
//! checks the three folders (and refuses a symlink in their place), a new fan-out folder is
//! checked when it is made, and every blob and manifest is opened with `O_NOFOLLOW` and its
//! owner read from the open descriptor (`fsutil::open_private`). A blob that is not ours
//! never counts as stored: it is written again, over it. No walk over the store is needed.
//!
//! The store assumes one writer at a time (the engine holds the repository's lock): `prune`
//! running while another process is taking a snapshot would delete that snapshot's blobs.

mod holes;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use super::{
    BackupStore, BlobId, EntryKind, Error, Manifest, PruneReport, Result, SnapshotId, SnapshotSummary, VerifyReport,
};
use crate::fsutil::{self, IoContext, IoError};
use crate::paths::RepoPath;
use holes::copy_hashing;

/// The manifest format this store reads and writes.
const FORMAT: u32 = 1;

/// A content-addressed backup store in a folder (see the [module docs](self)).
#[derive(Debug, Clone)]
pub struct FsBackupStore {
    root: PathBuf,
    blobs: PathBuf,
    snapshots: PathBuf,
    /// A blob was written (or rewritten) through this store (or a clone) since its last
    /// `syncfs`.
    unflushed: Arc<AtomicBool>,
    /// `syncfs` calls made by `put_manifest` (for tests).
    flushes: Arc<AtomicU64>,
}

/// Newest manifests read at most to find that a snapshot's blobs are all already named by
/// a complete snapshot (so `put_manifest` need not flush; see the module docs).
const COVERING_MANIFESTS: usize = 3;

/// Flushes every dirty page and inode of the file system holding `dir` with one `syncfs(2)`.
pub(crate) fn syncfs(dir: &Path) -> Result<(), IoError> {
    use std::os::fd::AsRawFd;
    let f = File::open(dir).at("open", dir)?;
    // SAFETY: `f` is an open file descriptor owned by this function for the whole call;
    // `syncfs` only reads the descriptor and touches no memory of ours.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::syncfs(f.as_raw_fd()) };
    if rc == 0 { Ok(()) } else { Err(IoError::new("sync file system of", dir, io::Error::last_os_error())) }
}

/// A unique temp-file name in the folder of `path` (hidden, so listings skip it).
fn temp_path(path: &Path) -> PathBuf {
    fsutil::temp_sibling(path, "tmp")
}

/// Whether a file name in the store is a temp file (a write in progress or interrupted).
fn is_temp(name: &std::ffi::OsStr) -> bool {
    use std::os::unix::ffi::OsStrExt;
    name.as_bytes().first() == Some(&b'.')
}

/// Every blob of a manifest with the path it holds content for (`None`: the git index).
fn blob_refs(m: &Manifest) -> Vec<(&BlobId, Option<&RepoPath>)> {
    let mut out: Vec<(&BlobId, Option<&RepoPath>)> = m
        .entries
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::File { blob, .. } => Some((blob, Some(&e.path))),
            _ => None,
        })
        .collect();
    if let Some(index) = &m.index {
        out.push((&index.blob, None));
        out.extend(index.shared.iter().map(|s| (&s.blob, None)));
        out.extend(index.staged.iter().map(|s| (&s.blob, Some(&s.path))));
    }
    if let Some(db) = &m.database {
        out.push((&db.blob, None));
    }
    out
}

/// How a path is named in messages.
fn describe(path: Option<&RepoPath>) -> String {
    path.map_or_else(|| "the git index or database dump".to_owned(), |p| format!("`{p}`"))
}

/// Whether `meta` (from `lstat`) is a blob we can trust: a regular file of ours.
fn is_our_file(meta: &fs::Metadata) -> bool {
    meta.is_file() && meta.uid() == fsutil::euid()
}

/// Files up to this size are captured through memory ([`BackupStore::put_blob`]); bigger ones
/// are streamed.
const SMALL_BLOB: u64 = 4 << 20;

/// Creates `tmp` (mode `0600`, it must not exist), lets `fill` write it, and removes it again
/// if `fill` fails. Returns what `fill` returned.
fn write_temp<T>(tmp: &Path, fill: impl FnOnce(&mut File) -> Result<T, IoError>) -> Result<T, IoError> {
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(fsutil::FILE_MODE)
        .open(tmp)
        .at("create", tmp)
        .and_then(|mut f| fill(&mut f));
    if result.is_err() {
        let _ = fs::remove_file(tmp);
    }
    result
}

/// State of one blob found by `verify`.
enum BlobCheck {
    Ok,
    Missing,
    Corrupt(String),
}

impl FsBackupStore {
    /// Opens the store at `root`, creating `root`, `root/blobs` and `root/snapshots` (mode
    /// `0700`) if needed. Refuses folders that are symlinks or belong to another user (see
    /// [Whose store](self#whose-store)).
    pub fn open(root: &Path) -> Result<Self> {
        let store = Self {
            root: root.to_path_buf(),
            blobs: root.join("blobs"),
            snapshots: root.join("snapshots"),
            unflushed: Arc::new(AtomicBool::new(false)),
            flushes: Arc::new(AtomicU64::new(0)),
        };
        fsutil::create_private_dir(&store.root)?;
        fsutil::create_private_dir(&store.blobs)?;
        fsutil::create_private_dir(&store.snapshots)?;
        Ok(store)
    }

    /// Opens the store at `root` to read it, creating nothing and changing no mode: `None`
    /// when it holds no snapshot folder (nothing was ever stored there).
    pub fn open_existing(root: &Path) -> Result<Option<Self>> {
        let snapshots = root.join("snapshots");
        if !fsutil::check_dir(&snapshots)? {
            return Ok(None);
        }
        Ok(Some(Self {
            root: root.to_path_buf(),
            blobs: root.join("blobs"),
            snapshots,
            unflushed: Arc::new(AtomicBool::new(false)),
            flushes: Arc::new(AtomicU64::new(0)),
        }))
    }

    /// The store's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob's content lives.
    pub fn blob_path(&self, id: &BlobId) -> PathBuf {
        let hex = id.as_str();
        self.blobs.join(&hex[..2]).join(&hex[2..])
    }

    /// Where a snapshot's manifest lives.
    pub fn manifest_path(&self, id: &SnapshotId) -> PathBuf {
        self.snapshots.join(format!("{id}.json"))
    }

    /// Ids of every manifest on disk, sorted (oldest first). Temp files are skipped; a
    /// `.json` file whose name is not a snapshot id is an error.
    fn snapshot_ids(&self) -> Result<Vec<SnapshotId>> {
        let mut ids = Vec::new();
        // No folder, no snapshots: a refused run takes back the state folder it made, under a
        // store that stays open (`StateDir::remove_if_empty`).
        let listing = match fs::read_dir(&self.snapshots) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            listing => listing.at("list", &self.snapshots)?,
        };
        for entry in listing {
            let entry = entry.at("list", &self.snapshots)?;
            let name = entry.file_name();
            if is_temp(&name) {
                continue;
            }
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            let id = SnapshotId::parse(stem).ok_or_else(|| Error::BadManifest {
                path: entry.path(),
                detail: format!("`{stem}` is not a snapshot id"),
            })?;
            ids.push(id);
        }
        ids.sort();
        Ok(ids)
    }

    /// Checks what `manifest` (read from `path`) promises: format, id, sorted unique entries.
    fn validate(manifest: &Manifest, path: &Path, expected: &SnapshotId) -> Result<()> {
        let bad = |detail: String| Error::BadManifest { path: path.to_path_buf(), detail };
        if manifest.format != FORMAT {
            return Err(bad(format!("unsupported format {} (expected {FORMAT})", manifest.format)));
        }
        if &manifest.id != expected {
            return Err(bad(format!("its id `{}` does not match its file name (`{expected}`)", manifest.id)));
        }
        for pair in manifest.entries.windows(2) {
            if pair[0].path >= pair[1].path {
                let what = if pair[0].path == pair[1].path { "duplicate entry" } else { "entries not sorted at" };
                return Err(bad(format!("{what} `{}`", pair[1].path)));
            }
        }
        Ok(())
    }

    /// Whether every blob `manifest` names is named by one of the [`COVERING_MANIFESTS`]
    /// newest complete snapshots too: a manifest is written only after the blobs it names
    /// are on stable storage, so those blobs need no flush now. A manifest that does not
    /// read counts for nothing.
    fn covered(&self, manifest: &Manifest) -> Result<bool> {
        let mut wanted: BTreeSet<&BlobId> = blob_refs(manifest).into_iter().map(|(b, _)| b).collect();
        for id in self.snapshot_ids()?.iter().rev().filter(|id| **id != manifest.id).take(COVERING_MANIFESTS) {
            let Ok(earlier) = self.manifest(id) else { continue };
            for (blob, _) in blob_refs(&earlier) {
                wanted.remove(blob);
            }
            if wanted.is_empty() {
                return Ok(true);
            }
        }
        Ok(wanted.is_empty())
    }

    /// Re-hashes one blob file, streaming it (a blob may be bigger than memory).
    fn recheck_blob(&self, id: &BlobId) -> Result<(BlobCheck, u64)> {
        let path = self.blob_path(id);
        match fsutil::open_private(&path, OpenOptions::new().read(true), "open") {
            Ok((mut f, _)) => {
                let mut hasher = blake3::Hasher::new();
                let len = io::copy(&mut f, &mut hasher).at("read", &path)?;
                let actual = BlobId::from_hash(hasher.finalize());
                if &actual == id { Ok((BlobCheck::Ok, len)) } else { Ok((BlobCheck::Corrupt(actual.to_string()), len)) }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((BlobCheck::Missing, 0)),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes a file unless `dry_run`; returns its size.
    fn remove_counted(path: &Path, size: u64, dry_run: bool) -> Result<u64> {
        if !dry_run {
            fsutil::remove_file_if_exists(path)?;
        }
        Ok(size)
    }
}

impl BackupStore for FsBackupStore {
    fn blob_file(&self, id: &BlobId) -> Option<PathBuf> {
        Some(self.blob_path(id))
    }

    fn put_blob(&self, content: &[u8]) -> Result<(BlobId, bool)> {
        let id = BlobId::of(content);
        let path = self.blob_path(&id);
        match fs::symlink_metadata(&path) {
            Ok(meta) if is_our_file(&meta) && meta.len() == content.len() as u64 => {
                return Ok((id, false));
            }
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(IoError::new("read metadata of", path, e).into()),
        }
        let dir = path.parent().unwrap_or(&self.blobs);
        fsutil::create_private_dir(dir)?;
        let tmp = temp_path(&path);
        write_temp(&tmp, |f| f.write_all(content).at("write", &tmp))?;
        // No fsync here: `put_manifest` flushes every blob with one `syncfs`.
        self.unflushed.store(true, Ordering::SeqCst);
        if let Err(e) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(IoError::new("rename into place", &path, e).into());
        }
        Ok((id, true))
    }

    fn get_blob(&self, id: &BlobId) -> Result<Vec<u8>> {
        let path = self.blob_path(id);
        let bytes = match fsutil::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::BlobNotFound { blob: id.to_string() });
            }
            Err(e) => return Err(e.into()),
        };
        let actual = BlobId::of(&bytes);
        if &actual != id {
            return Err(Error::CorruptBlob { blob: id.to_string(), actual: actual.to_string() });
        }
        Ok(bytes)
    }

    fn put_blob_file(&self, src: &Path) -> Result<(BlobId, u64, bool)> {
        self.put_blob_from(&File::open(src).at("open", src)?, src)
    }

    fn check_blob(&self, id: &BlobId) -> Result<u64> {
        let path = self.blob_path(id);
        let mut blob = match fsutil::open_private(&path, OpenOptions::new().read(true), "open") {
            Ok((f, _)) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::BlobNotFound { blob: id.to_string() }),
            Err(e) => return Err(e.into()),
        };
        let mut hasher = blake3::Hasher::new();
        let len = io::copy(&mut blob, &mut hasher).at("read", &path)?;
        let actual = BlobId::from_hash(hasher.finalize());
        if &actual != id {
            return Err(Error::CorruptBlob { blob: id.to_string(), actual: actual.to_string() });
        }
        Ok(len)
    }

    fn copy_blob_to(&self, id: &BlobId, out: &mut File, out_path: &Path) -> Result<()> {
        let path = self.blob_path(id);
        let blob = match fsutil::open_private(&path, OpenOptions::new().read(true), "open") {
            Ok((f, _)) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::BlobNotFound { blob: id.to_string() }),
            Err(e) => return Err(e.into()),
        };
        let (actual, _) = copy_hashing(&blob, &path, out, out_path)?;
        if &actual != id {
            return Err(Error::CorruptBlob { blob: id.to_string(), actual: actual.to_string() });
        }
        Ok(())
    }

    fn put_blob_from(&self, mut source: &File, src: &Path) -> Result<(BlobId, u64, bool)> {
        // A small file is read whole: hashed first, it is not written at all when that blob
        // is there already (the common case of a second snapshot).
        let len = source.metadata().at("read metadata of", src)?.len();
        if len <= SMALL_BLOB {
            use std::io::Read as _;
            let mut content = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            source.read_to_end(&mut content).at("read", src)?;
            let (id, new) = self.put_blob(&content)?;
            return Ok((id, content.len() as u64, new));
        }
        // One pass: copy into a temp file in the blob folder while hashing, then move it to
        // its name (or drop it when that blob is there already).
        let tmp = temp_path(&self.blobs.join("incoming"));
        let (id, len) = write_temp(&tmp, |f| copy_hashing(source, src, f, &tmp))?;
        let path = self.blob_path(&id);
        if fs::symlink_metadata(&path).is_ok_and(|m| is_our_file(&m) && m.len() == len) {
            fsutil::remove_file_if_exists(&tmp)?;
            return Ok((id, len, false));
        }
        let placed = path.parent().map_or(Ok(()), fsutil::create_private_dir).and_then(|()| {
            // No fsync here: `put_manifest` flushes every blob with one `syncfs`.
            self.unflushed.store(true, Ordering::SeqCst);
            fs::rename(&tmp, &path).at("rename into place", &path)
        });
        if let Err(e) = placed {
            let _ = fs::remove_file(&tmp);
            return Err(e.into());
        }
        Ok((id, len, true))
    }

    fn get_blob_to_file(&self, id: &BlobId, dest: &Path) -> Result<()> {
        let path = self.blob_path(id);
        let blob = match fsutil::open_private(&path, OpenOptions::new().read(true), "open") {
            Ok((f, _)) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::BlobNotFound { blob: id.to_string() }),
            Err(e) => return Err(e.into()),
        };
        let tmp = temp_path(dest);
        let actual = write_temp(&tmp, |f| {
            let (actual, _) = copy_hashing(&blob, &path, f, &tmp)?;
            f.sync_all().at("sync", &tmp)?;
            Ok(actual)
        })?;
        if &actual != id {
            let _ = fs::remove_file(&tmp);
            return Err(Error::CorruptBlob { blob: id.to_string(), actual: actual.to_string() });
        }
        if let Err(e) = fs::rename(&tmp, dest) {
            let _ = fs::remove_file(&tmp);
            return Err(IoError::new("rename into place", dest, e).into());
        }
        Ok(())
    }

    fn ids(&self) -> Result<Vec<SnapshotId>> {
        self.snapshot_ids()
    }

    fn has_blob(&self, id: &BlobId) -> Result<bool> {
        let path = self.blob_path(id);
        match fs::symlink_metadata(&path) {
            Ok(meta) => Ok(is_our_file(&meta)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(IoError::new("read metadata of", path, e).into()),
        }
    }

    fn blob_stat(&self, id: &BlobId) -> Result<Option<super::statcache::FileStat>> {
        let path = self.blob_path(id);
        match fs::symlink_metadata(&path) {
            Ok(meta) if is_our_file(&meta) => Ok(Some(super::statcache::FileStat::of(&meta))),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(IoError::new("read metadata of", path, e).into()),
        }
    }

    fn put_manifest(&self, manifest: &Manifest) -> Result<()> {
        let path = self.manifest_path(&manifest.id);
        Self::validate(manifest, &path, &manifest.id)?;
        // One flush for every blob written since the last manifest (see the module docs),
        // unless none was and every blob named is named by a complete snapshot already.
        if self.unflushed.load(Ordering::SeqCst) || !self.covered(manifest)? {
            syncfs(&self.root)?;
            self.flushes.fetch_add(1, Ordering::SeqCst);
            self.unflushed.store(false, Ordering::SeqCst);
        }
        for (blob, entry_path) in blob_refs(manifest) {
            if !self.has_blob(blob)? {
                let path = entry_path.cloned().unwrap_or_else(|| RepoPath::new("(git index)").expect("a valid path"));
                return Err(Error::MissingBlob { snapshot: manifest.id.to_string(), blob: blob.to_string(), path });
            }
        }
        let json = serde_json::to_vec_pretty(manifest)
            .map_err(|e| Error::BadManifest { path: path.clone(), detail: format!("cannot serialize: {e}") })?;
        fsutil::atomic_write(&path, &json)?;
        Ok(())
    }

    fn manifest(&self, id: &SnapshotId) -> Result<Manifest> {
        let path = self.manifest_path(id);
        let bytes = match fsutil::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::UnknownSnapshot { id: id.to_string() });
            }
            Err(e) => return Err(e.into()),
        };
        let manifest: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::BadManifest {
            path: path.clone(),
            // serde_json's message ends with "at line L column C".
            detail: e.to_string(),
        })?;
        Self::validate(&manifest, &path, id)?;
        Ok(manifest)
    }

    fn list(&self) -> Result<Vec<SnapshotSummary>> {
        // A manifest that cannot be read is listed as damaged: `list` is where an operator
        // looks at a damaged store, and one torn manifest must not hide the others.
        let mut list: Vec<SnapshotSummary> = self
            .snapshot_ids()?
            .iter()
            .map(|id| match self.manifest(id) {
                Ok(m) => Ok(SnapshotSummary::of(&m)),
                Err(e @ (Error::BadManifest { .. } | Error::UnknownSnapshot { .. })) => {
                    Ok(SnapshotSummary::damaged(id, e.to_string()))
                }
                Err(e) => Err(e),
            })
            .collect::<Result<_>>()?;
        // Ids carry whole seconds only: order by creation time, then id.
        list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(list)
    }

    fn verify(&self, ids: Option<&[SnapshotId]>) -> Result<VerifyReport> {
        let ids = match ids {
            Some(ids) => ids.to_vec(),
            None => self.snapshot_ids()?,
        };
        let mut report = VerifyReport::default();
        let mut checked: HashMap<BlobId, BlobCheck> = HashMap::new();
        for id in &ids {
            let manifest = match self.manifest(id) {
                Ok(m) => m,
                Err(e @ Error::BadManifest { .. }) => {
                    report.snapshots += 1;
                    report.problems.push(format!("backup {id}: {e}"));
                    continue;
                }
                Err(e) => return Err(e),
            };
            report.snapshots += 1;
            for (blob, path) in blob_refs(&manifest) {
                if !checked.contains_key(blob) {
                    let (state, len) = self.recheck_blob(blob)?;
                    if !matches!(state, BlobCheck::Missing) {
                        report.blobs += 1;
                        report.bytes += len;
                    }
                    checked.insert(blob.clone(), state);
                }
                match &checked[blob] {
                    BlobCheck::Ok => {}
                    BlobCheck::Missing => {
                        report.problems.push(format!("backup {id}: blob {blob} for {} is missing", describe(path)));
                    }
                    BlobCheck::Corrupt(actual) => report.problems.push(format!(
                        "backup {id}: blob {blob} for {} is corrupt (its content hashes to {actual})",
                        describe(path)
                    )),
                }
            }
        }
        Ok(report)
    }

    fn prune(&self, keep: usize, protect: &[SnapshotId], dry_run: bool) -> Result<PruneReport> {
        // Oldest first by creation time (ids carry whole seconds only); a manifest that does
        // not parse sorts by its id alone.
        let mut ids: Vec<(Option<crate::time::Timestamp>, SnapshotId)> =
            self.snapshot_ids()?.into_iter().map(|id| (self.manifest(&id).ok().map(|m| m.created_at), id)).collect();
        ids.sort();
        let ids: Vec<SnapshotId> = ids.into_iter().map(|(_, id)| id).collect();
        let newest: BTreeSet<&SnapshotId> = ids.iter().rev().take(keep).collect();
        let (kept, removed): (Vec<&SnapshotId>, Vec<&SnapshotId>) =
            ids.iter().partition(|id| newest.contains(id) || protect.contains(id));

        // Every blob a kept snapshot needs. A kept manifest that does not parse is an error:
        // without it we cannot know which blobs are still needed.
        let mut referenced: BTreeSet<BlobId> = BTreeSet::new();
        for id in &kept {
            let m = self.manifest(id)?;
            referenced.extend(m.blobs().cloned());
        }

        let mut report = PruneReport {
            removed_snapshots: removed.iter().map(|id| (*id).clone()).collect(),
            kept_snapshots: kept.len(),
            ..PruneReport::default()
        };

        // 1. Manifests (and leftover temp files of interrupted manifest writes), made durable
        //    before any blob goes.
        for id in &removed {
            let path = self.manifest_path(id);
            let size = fs::symlink_metadata(&path).map_or(0, |m| m.len());
            report.freed_bytes += Self::remove_counted(&path, size, dry_run)?;
        }
        for entry in fs::read_dir(&self.snapshots).at("list", &self.snapshots)? {
            let entry = entry.at("list", &self.snapshots)?;
            if is_temp(&entry.file_name()) {
                let size = entry.metadata().map_or(0, |m| m.len());
                report.freed_bytes += Self::remove_counted(&entry.path(), size, dry_run)?;
            }
        }
        if !dry_run {
            fsutil::sync_dir(&self.snapshots)?;
        }

        // 2. Blobs no kept manifest refers to, and temp files of interrupted blob writes.
        let mut fanout: BTreeMap<PathBuf, bool> = BTreeMap::new();
        for dir in fs::read_dir(&self.blobs).at("list", &self.blobs)? {
            let dir = dir.at("list", &self.blobs)?;
            let prefix = dir.file_name();
            let Some(prefix) = prefix.to_str().map(str::to_owned) else {
                continue;
            };
            if !dir.file_type().at("read metadata of", &dir.path())?.is_dir() {
                // A file being streamed in (`put_blob_file`) when a crash came.
                if is_temp(&dir.file_name()) {
                    let size = dir.metadata().map_or(0, |m| m.len());
                    report.freed_bytes += Self::remove_counted(&dir.path(), size, dry_run)?;
                }
                continue;
            }
            let dir_path = dir.path();
            let mut emptied = true;
            for file in fs::read_dir(&dir_path).at("list", &dir_path)? {
                let file = file.at("list", &dir_path)?;
                let name = file.file_name();
                let size = file.metadata().map_or(0, |m| m.len());
                if is_temp(&name) {
                    report.freed_bytes += Self::remove_counted(&file.path(), size, dry_run)?;
                    continue;
                }
                let id = name.to_str().and_then(|n| BlobId::parse(&format!("{prefix}{n}")));
                match id {
                    Some(id) if !referenced.contains(&id) => {
                        report.freed_bytes += Self::remove_counted(&file.path(), size, dry_run)?;
                        report.removed_blobs += 1;
                    }
                    // Referenced blobs, and files that are not ours: left alone.
                    _ => emptied = false,
                }
            }
            fanout.insert(dir_path, emptied);
        }
        if !dry_run {
            for (dir, emptied) in fanout {
                if emptied {
                    let _ = fs::remove_dir(&dir);
                }
            }
        }
        Ok(report)
    }
}

/// Removes the temp files that processes no longer running left at the top of the blob folder
/// of the store at `root` (`.incoming.tmp-PID-N`: a large file was being copied in when a hangup
/// or `kill -9` ended the run), and returns how many bytes that freed. Those of a live process
/// (a `known-good mark` recording env files meanwhile) stay, as does anything named otherwise.
/// Best effort: what cannot be read or removed is left to `backups prune`, which removes every
/// temp file.
pub fn remove_dead_temp_blobs(root: &Path) -> u64 {
    let Ok(dir) = fs::read_dir(root.join("blobs")) else { return 0 };
    let mut freed = 0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let pid = name.to_str().and_then(|n| n.strip_prefix(".incoming.tmp-")?.split_once('-')?.0.parse().ok());
        let Some(pid) = pid.filter(|p: &libc::pid_t| *p > 0) else { continue };
        // SAFETY: signal 0 sends nothing; it only asks whether the process exists (EPERM: it
        // does, another user's).
        #[allow(unsafe_code)]
        let alive =
            unsafe { libc::kill(pid, 0) } == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        let size = entry.metadata().map_or(0, |m| m.len());
        if !alive && fs::remove_file(entry.path()).is_ok() {
            freed += size;
        }
    }
    freed
}

#[cfg(test)]
mod tests;
