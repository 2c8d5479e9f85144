//! What a rollback would do to the database: where it is, where the target commit expects it,
//! the downgrade path, and its risks. Reads only.

use serde::{Deserialize, Serialize};

use super::{DbMigrator, DowngradeStep, Revision};
use crate::assess::Risk;
use crate::vcs::{CommitId, VcsBackend};

/// The database part of an assessment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DbAssessment {
    /// `alembic` or `sql`.
    pub kind: String,
    /// The database, password removed.
    pub database: String,
    /// Whether it could be reached (when not, the rest is what the files say).
    pub reachable: bool,
    /// The revision(s) the database is at.
    pub current: Vec<Revision>,
    /// The head revision(s) of the migration files in the work tree.
    pub code_heads: Vec<Revision>,
    /// The head revision(s) of the target commit's migration files.
    pub target_heads: Vec<Revision>,
    /// The migrations a full rollback undoes, in order.
    pub path: Vec<DowngradeStep>,
    /// Whether the schema must move (current differs from the target's heads).
    pub needs_downgrade: bool,
    /// Risks, with stable codes: `db_unreachable`, `irreversible_downgrade`,
    /// `destructive_upgrade`, `multiple_heads`, `db_ahead_of_code`, `unknown_db_revision`,
    /// `no_downgrade_path`, `edited_migration`.
    pub risks: Vec<Risk>,
}

/// Assesses the database for a rollback to `target`. A database that cannot be reached is a
/// risk, not an error (the assessment is still useful); files that do not parse are errors.
pub async fn assess(migrator: &dyn DbMigrator, vcs: &dyn VcsBackend, target: &CommitId) -> super::Result<DbAssessment> {
    let _ = (migrator, vcs, target);
    todo!("db helper")
}
