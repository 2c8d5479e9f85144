//! The stat cache of the state folder ([`crate::backup::statcache`]): where it lives, writing
//! it after a snapshot, and recording what an undo wrote back so that the next snapshot of
//! the same state reads nothing again.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;

use crate::backup::statcache::{FileStat, IndexRecord, StatCache};
use crate::backup::xattr::{On, Xattr};
use crate::backup::{BackupStore, BlobId, EntryKind, Manifest};
use crate::engine::Rollback;

impl Rollback {
    /// The stat cache file in the state folder.
    pub(crate) fn stat_cache_path(&self) -> PathBuf {
        self.state.root().join("statcache.json")
    }

    /// Writes `cache`. A failure is not the run's: the cache only saves time, and the next
    /// snapshot without it reads and hashes everything.
    pub(crate) fn save_stat_cache(&self, cache: &StatCache, store: &dyn BackupStore) {
        let _ = cache.save(&self.stat_cache_path(), &|b: &BlobId| store.blob_stat(b).ok().flatten());
    }

    /// After an undo wrote back the files and the index of `manifest`: records in the stat
    /// cache the stat and hash of each file as it is now (read and hashed again, after the
    /// cache's moment: what is recorded is what was read), the index when it is the one the
    /// snapshot took and HEAD is the snapshot's, and the store's blobs of the snapshot
    /// (hashed again). Files that differ from the snapshot are left out. Best effort: a file
    /// that cannot be read is left out, and nothing here fails the undo.
    pub(crate) fn record_restored(&self, manifest: &Manifest) {
        let Ok(store) = self.store() else { return };
        let workdir = self.workdir();
        let mut cache = StatCache::load(&self.stat_cache_path(), workdir);
        for e in &manifest.entries {
            let EntryKind::File { blob, .. } = &e.kind else { continue };
            let full = e.path.to_fs(workdir);
            if let Some((stat, actual, xattrs)) = stat_and_hash(&full)
                && &actual == blob
            {
                cache.record_file(&e.path, stat, blob, &xattrs);
            }
        }
        if let Some(index) = &manifest.index
            && self.vcs.head().is_ok_and(|h| h.commit == manifest.head)
            && let Some((stat, actual, _)) = stat_and_hash(&self.vcs.index_path())
            && actual == index.blob
        {
            cache.record_index(IndexRecord { stat, head: manifest.head.clone(), snapshot: index.clone() });
        }
        let mut seen = std::collections::HashSet::new();
        for blob in manifest.blobs() {
            if seen.insert(blob)
                && let Ok(Some(stat)) = store.blob_stat(blob)
                && store.check_blob(blob).is_ok()
            {
                cache.record_blob(blob, stat);
            }
        }
        self.save_stat_cache(&cache, store.as_ref());
    }
}

/// The stat of the regular file at `full` (not followed if a symlink), the hash of what was
/// read from it after that stat, and its extended attributes as they are now (an attribute
/// the undo could not give back is not recorded as if it had).
fn stat_and_hash(full: &std::path::Path) -> Option<(FileStat, BlobId, Vec<Xattr>)> {
    let mut f = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(full).ok()?;
    let meta = f.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let mut hasher = blake3::Hasher::new();
    std::io::copy(&mut f, &mut hasher).ok()?;
    let xattrs = On::Fd(&f).read().ok()?;
    Some((FileStat::of(&meta), BlobId::from_hash(hasher.finalize()), xattrs))
}
