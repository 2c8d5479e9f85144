//! What each step did, as journaled with its `step_end` record and read back by `resume`,
//! `undo`, the incident report and Python: one typed variant per step kind.
//!
//! Journals are JSON lines with `"kind"` naming the variant. Journals written before the
//! variant tag existed hold the same fields without it; [`crate::journal`] fills the tag in
//! from the record's step name when it reads them, so old runs still resume and undo.

use serde::{Deserialize, Serialize};

use crate::backup::SnapshotId;
use crate::backup::snapshot::RestoreStats;
use crate::db::Revision;
use crate::deploy::DeployReport;
use crate::production::Release;
use crate::restart::RestartResult;
use crate::vcs::CommitId;
use crate::verify::VerificationReport;

/// What a completed step did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StepDetail {
    /// `snapshot`: the work-tree snapshot taken and verified.
    Snapshot {
        /// The snapshot (`undo RUN` restores it).
        snapshot: SnapshotId,
        /// Paths captured.
        entries: usize,
        /// Their bytes.
        bytes: u64,
        /// Blobs the store did not hold yet.
        new_blobs: u64,
        /// Their bytes.
        new_bytes: u64,
        /// Blobs read back and hashed.
        verified_blobs: u64,
    },
    /// `reset`: branch, index and tree moved.
    Reset {
        /// The commit moved to.
        target: CommitId,
        /// Untracked or ignored entries removed from the target's way (all snapshotted).
        cleared: usize,
        /// Tracked paths that changed.
        changed: usize,
        /// The tool's own files put back as they were before the reset.
        kept: Vec<String>,
    },
    /// `remove_untracked`: untracked files deleted (all snapshotted).
    RemoveUntracked {
        /// Files removed.
        removed: usize,
    },
    /// `clear_caches`: caches removed.
    ClearCaches {
        /// Paths removed.
        removed: usize,
    },
    /// `restore_files` (undo): files written back from a snapshot.
    RestoreFiles(RestoreStats),
    /// `restore_index` (undo): the index written back.
    RestoreIndex {
        /// Whether the snapshot held an index.
        restored: bool,
        /// Objects of staged changes written to the object store.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        objects_written: Option<usize>,
    },
    /// `db_snapshot`: the database dumped into the store.
    DbSnapshot {
        /// The snapshot holding the dump.
        snapshot: SnapshotId,
        /// Dump size.
        bytes: u64,
        /// `sqlite-backup` or `pg-custom`.
        format: String,
        /// The database's revisions when dumped.
        revisions: Vec<Revision>,
        /// In an undo: the fingerprint of the database when it was dumped. A `restore_database`
        /// the undo did not choose for "nothing written since the run" (`--restore-snapshot`,
        /// journals without fingerprints) checks, under its lock, that the database still has
        /// it (then it is the same before and after the dump: what the dump holds): rows
        /// written after this dump would be in no backup. The undo of this undo compares the
        /// database with it when none of this undo's database steps completed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        holds: Option<crate::model::DbFingerprint>,
        /// Taken again by a resume that put rows written since back into the restored
        /// database: what the downgrade drops of the database as it is now (the forecast run
        /// again), in place of the plan's. `None` for the run's first snapshot.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        forecast: Option<Vec<crate::model::DataLoss>>,
    },
    /// `downgrade`: the schema moved back.
    Downgrade {
        /// Revisions before.
        from: Vec<Revision>,
        /// Revisions after.
        to: Vec<Revision>,
        /// The database was at the target already (a resumed run).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        already: bool,
        /// The database as the downgrade left it, before the code moved and the services
        /// restarted: `undo` compares the database with it to know whether anything was
        /// written since. `None` in journals written before it was recorded, or when it could
        /// not be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        db_after: Option<crate::model::DbFingerprint>,
    },
    /// `restore_env`: env files written back from the target's record.
    RestoreEnv {
        /// The env record used (`None`: none was recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        record: Option<SnapshotId>,
        /// The files, `(removed)` after those the record holds as absent.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        files: Vec<String>,
        /// What the restore wrote.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stats: Option<RestoreStats>,
        /// `Some(false)`: no env was recorded, the files were left as they are.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recorded: Option<bool>,
        /// With `recorded: false`: `0`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        restored: Option<usize>,
    },
    /// `restore_database` (undo): the database back from a snapshot.
    RestoreDatabase {
        /// The snapshot restored.
        snapshot: SnapshotId,
        /// The database's revisions after.
        revisions: Vec<Revision>,
        /// Where the database as it was before the restore was written
        /// (`--restore-snapshot`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        kept: Option<std::path::PathBuf>,
        /// The database as this step left it, for the undo of this undo: compared with the
        /// database then, to know whether anything was written since. `None` in journals
        /// written before it was recorded, or when it could not be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        db_after: Option<crate::model::DbFingerprint>,
    },
    /// `upgrade_database` (undo of a database changed since its run): the schema brought
    /// forward.
    UpgradeDatabase {
        /// Revisions before.
        from: Vec<Revision>,
        /// Revisions after.
        to: Vec<Revision>,
        /// The database was there already (a resumed undo).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        already: bool,
        /// The database as this step left it, for the undo of this undo: compared with the
        /// database then, to know whether anything was written since. `None` in journals
        /// written before it was recorded, or when it could not be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        db_after: Option<crate::model::DbFingerprint>,
    },
    /// `put_back_rows`: the dropped rows and values back from the run's database snapshot.
    PutBackRows {
        /// The snapshot they came from.
        snapshot: SnapshotId,
        /// Rows inserted into dropped tables.
        rows_inserted: u64,
        /// Rows that were there already, identical.
        rows_present: u64,
        /// Column values written back.
        values_set: u64,
        /// Values the downgrade changed that were not written back, per column: the value
        /// there was no longer the one the downgrade and the upgrade leave (the app changed it,
        /// or deleted its row).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        values_left: Vec<crate::model::DataLoss>,
        /// SQLite: the `AUTOINCREMENT` tables whose counter was moved up to the snapshot's.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        counters_raised: Vec<String>,
        /// The database as this step left it, for the undo of this undo: compared with the
        /// database then, to know whether anything was written since. `None` in journals
        /// written before it was recorded, or when it could not be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        db_after: Option<crate::model::DbFingerprint>,
    },
    /// `restart`: the `[[restart]]` steps' results.
    Restart {
        /// One per restart step, in order.
        steps: Vec<RestartResult>,
    },
    /// `deploy`: what reached production.
    Deploy {
        /// For people; no secrets.
        summary: String,
        /// Left alone on purpose (an undo of a run that did not change the remote).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        skipped: bool,
        /// The deploy's report, when one ran.
        #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
        report: Option<DeployReport>,
    },
    /// `promote`: the release made live on the production target.
    Promote {
        /// The release live before.
        from: Release,
        /// The release live now.
        to: Release,
        /// It was live already (a resumed run whose promotion had gone through).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        already: bool,
        /// The platform's automatic deploys were set to this (`false`: frozen), and were
        /// `autodeploy_was` before; absent when left alone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        autodeploy: Option<bool>,
        /// Whether automatic deploys were on before this step set them.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        autodeploy_was: Option<bool>,
    },
    /// `verify`: the verification round.
    Verify(VerificationReport),
    /// `record`: where HEAD ended.
    Record {
        /// HEAD.
        head: CommitId,
        /// The branch, if not detached.
        branch: Option<String>,
    },
    /// A step the operator skipped (manual runs).
    Skipped,
}

impl StepDetail {
    /// The snapshot a `snapshot` or `db_snapshot` step took.
    pub fn snapshot(&self) -> Option<&SnapshotId> {
        match self {
            StepDetail::Snapshot { snapshot, .. } | StepDetail::DbSnapshot { snapshot, .. } => Some(snapshot),
            _ => None,
        }
    }

    /// A step skipped by the operator, or a deploy left alone on purpose.
    pub fn is_skipped(&self) -> bool {
        matches!(self, StepDetail::Skipped | StepDetail::Deploy { skipped: true, .. })
    }
}

/// What a step found part-way, journaled (a `progress` record) before it acts on it, so a
/// resume or an undo after a crash knows it even though the step never ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ProgressDetail {
    /// `promote`: whether the platform's automatic deploys were on, read before the step
    /// switches them (an undo turns them back on only if they were).
    AutodeployFound {
        /// They were on.
        on: bool,
    },
}

/// What a failed step left behind, journaled with its `step_failed` record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailureDetail {
    /// `false`: the step put the database back as it was before it (a failed downgrade whose
    /// migration rolled back whole), so an undo has nothing to restore from it.
    pub database_changed: bool,
}
