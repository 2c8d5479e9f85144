//! Test support for rollback-core and for implementers of its traits (feature `testing`).
//!
//! Two kinds of things live here:
//! - in-memory fakes that can be told to fail ([`MemBackupStore`]): they make a dependency
//!   fail at a chosen moment — a disk that fills up in the middle of a snapshot, a manifest
//!   write that fails — to check that the engine changes nothing;
//! - conformance suites for the pluggable traits, each a list of named [`Case`]s run against
//!   a backend the caller opens, a case panicking with a message naming what differs:
//!   [`vcs`] for `VcsBackend`, [`store`] for `BackupStore`, [`db`] for `DbMigrator`,
//!   [`verify`] for `ServiceVerifier`, [`production`] for `Deployer` (with [`production::MemDeployer`],
//!   a platform in memory that fails on command).
//!   rollback-core's own tests run them against its git2 and git CLI backends, its store on
//!   disk, and its SQL and Alembic migrators on SQLite and PostgreSQL; an implementer outside
//!   this crate runs the same cases against theirs.
//!
//! The suites test against real things: repositories made by the `git` binary in temp dirs,
//! real files, a real database. They need `git` on `PATH`.

pub mod db;
pub mod production;
mod repo;
pub mod store;
pub mod vcs;
pub mod verify;

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::backup::{
    BackupStore, BlobId, Error, Manifest, PruneReport, Result, SnapshotId, SnapshotSummary, VerifyReport,
};
use crate::fsutil::IoError;

/// One named case of a conformance suite, run against what `T` opens (a function making a
/// backend, a store or a sample database).
pub struct Case<T: ?Sized> {
    /// The case's name, as the suite's function is called.
    pub name: &'static str,
    /// Runs the case; panics when the backend does not conform.
    pub run: fn(&T),
}

impl<T: ?Sized> Clone for Case<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for Case<T> {}

impl<T: ?Sized> std::fmt::Debug for Case<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("name", &self.name).finish_non_exhaustive()
    }
}

/// Runs every case, each to the end even when an earlier one failed, then panics with the
/// list of the cases that failed and their messages.
pub(crate) fn run_cases<T: ?Sized>(suite: &str, cases: &[Case<T>], with: &T) {
    let mut failed = Vec::new();
    for case in cases {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (case.run)(with)));
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("(no message)");
            failed.push(format!("{}: {message}", case.name));
        }
    }
    assert!(
        failed.is_empty(),
        "{suite} conformance: {} of {} case(s) failed:\n  {}",
        failed.len(),
        cases.len(),
        failed.join("\n  ")
    );
}

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
        Ok(self.manifests.lock().expect("lock").values().map(SnapshotSummary::of).collect())
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

#[cfg(test)]
mod tests {
    use super::{Case, run_cases};

    fn passes(_: &str) {}

    fn fails(what: &str) {
        panic!("broke on {what}");
    }

    /// A runner that swallowed a failure would make every suite pass against anything.
    #[test]
    fn run_cases_runs_every_case_and_names_each_failure() {
        let cases = [
            Case { name: "first", run: fails as fn(&str) },
            Case { name: "second", run: passes },
            Case { name: "third", run: fails },
        ];
        let panic = std::panic::catch_unwind(|| run_cases("Thing", &cases, "seven")).unwrap_err();
        let message = panic.downcast_ref::<String>().expect("a formatted message");
        assert_eq!(
            message,
            "Thing conformance: 2 of 3 case(s) failed:\n  first: broke on seven\n  third: broke on seven"
        );
        run_cases("Thing", &cases[1..2], "seven");
    }
}
