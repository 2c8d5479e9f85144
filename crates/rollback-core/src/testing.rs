//! In-memory fakes for testing the engine's failure paths (feature `testing`).
//!
//! Real behaviour is tested against real git repositories and the real store; these fakes
//! exist to make a dependency fail at a chosen moment — a disk that fills up in the middle of
//! a snapshot, a manifest write that fails — and check that the engine changes nothing.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::backup::{
    BackupStore, BlobId, Error, Manifest, PruneReport, Result, SnapshotId, SnapshotSummary, VerifyReport,
};
use crate::fsutil::IoError;

/// Which call of [`MemBackupStore`] fails.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailOn {
    /// The `n`-th `put_blob` from now (1 = the next) fails with "no space left on device".
    PutBlob(usize),
    /// The next `put_manifest` fails with "no space left on device".
    PutManifest,
}

/// A backup store in memory that can be told to fail.
#[derive(Debug, Default)]
pub struct MemBackupStore {
    blobs: Mutex<BTreeMap<BlobId, Vec<u8>>>,
    manifests: Mutex<BTreeMap<SnapshotId, Manifest>>,
    fail: Mutex<Option<FailOn>>,
}

fn disk_full() -> Error {
    Error::Io(IoError::new("write", "<memory store>", std::io::Error::from(std::io::ErrorKind::StorageFull)))
}

impl MemBackupStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// Arms a failure.
    pub fn fail_on(&self, f: FailOn) {
        *self.fail.lock().expect("lock") = Some(f);
    }

    /// Number of blobs stored.
    pub fn blob_count(&self) -> usize {
        self.blobs.lock().expect("lock").len()
    }

    /// Number of complete snapshots.
    pub fn snapshot_count(&self) -> usize {
        self.manifests.lock().expect("lock").len()
    }
}

impl BackupStore for MemBackupStore {
    fn put_blob(&self, content: &[u8]) -> Result<(BlobId, bool)> {
        {
            let mut fail = self.fail.lock().expect("lock");
            if let Some(FailOn::PutBlob(n)) = *fail {
                if n <= 1 {
                    *fail = None;
                    return Err(disk_full());
                }
                *fail = Some(FailOn::PutBlob(n - 1));
            }
        }
        let id = BlobId::of(content);
        let mut blobs = self.blobs.lock().expect("lock");
        let new = !blobs.contains_key(&id);
        blobs.entry(id.clone()).or_insert_with(|| content.to_vec());
        Ok((id, new))
    }

    fn get_blob(&self, id: &BlobId) -> Result<Vec<u8>> {
        self.blobs
            .lock()
            .expect("lock")
            .get(id)
            .cloned()
            .ok_or_else(|| Error::UnknownSnapshot { id: format!("blob {id}") })
    }

    fn has_blob(&self, id: &BlobId) -> Result<bool> {
        Ok(self.blobs.lock().expect("lock").contains_key(id))
    }

    fn put_manifest(&self, manifest: &Manifest) -> Result<()> {
        {
            let mut fail = self.fail.lock().expect("lock");
            if *fail == Some(FailOn::PutManifest) {
                *fail = None;
                return Err(disk_full());
            }
        }
        self.manifests.lock().expect("lock").insert(manifest.id.clone(), manifest.clone());
        Ok(())
    }

    fn manifest(&self, id: &SnapshotId) -> Result<Manifest> {
        self.manifests
            .lock()
            .expect("lock")
            .get(id)
            .cloned()
            .ok_or_else(|| Error::UnknownSnapshot { id: id.to_string() })
    }

    fn list(&self) -> Result<Vec<SnapshotSummary>> {
        Ok(self
            .manifests
            .lock()
            .expect("lock")
            .values()
            .map(|m| SnapshotSummary {
                id: m.id.clone(),
                created_at: m.created_at,
                run_id: m.run_id.clone(),
                head: m.head.clone(),
                branch: m.branch.clone(),
                entries: m.entries.len(),
                bytes: m.content_bytes(),
                label: m.label.clone(),
            })
            .collect())
    }

    fn verify(&self, ids: Option<&[SnapshotId]>) -> Result<VerifyReport> {
        let manifests = self.manifests.lock().expect("lock");
        let blobs = self.blobs.lock().expect("lock");
        let mut report = VerifyReport::default();
        for m in manifests.values().filter(|m| ids.is_none_or(|ids| ids.contains(&m.id))) {
            report.snapshots += 1;
            for b in m.blobs() {
                report.blobs += 1;
                match blobs.get(b) {
                    Some(c) if BlobId::of(c) == *b => report.bytes += c.len() as u64,
                    Some(_) => report.problems.push(format!("backup {}: blob {b} is corrupt", m.id)),
                    None => report.problems.push(format!("backup {}: blob {b} is missing", m.id)),
                }
            }
        }
        Ok(report)
    }

    fn prune(&self, _keep: usize, _protect: &[SnapshotId], _dry_run: bool) -> Result<PruneReport> {
        Ok(PruneReport::default())
    }
}
