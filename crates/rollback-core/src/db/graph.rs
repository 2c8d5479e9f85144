//! Migration graphs: revisions, their parents (merges have several), branch labels, and the
//! downgrade path between two sets of heads.

use serde::{Deserialize, Serialize};

use super::{DowngradeStep, Result, Revision};

/// Whether a migration's downgrade can restore the data its upgrade changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reversibility {
    /// A real downgrade.
    Reversible,
    /// `downgrade()` is `pass` or raises `NotImplementedError`, or the `.down.sql` is missing
    /// or empty.
    Irreversible {
        /// Why.
        reason: String,
    },
}

/// One migration file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    /// Its revision.
    pub revision: Revision,
    /// Its parents: none for a root, several for a merge.
    pub down_revisions: Vec<Revision>,
    /// Alembic branch labels.
    pub branch_labels: Vec<String>,
    /// Message or file name.
    pub description: String,
    /// The file, relative to the work tree.
    pub path: String,
    /// Whether its downgrade restores data.
    pub downgrade: Reversibility,
    /// Destructive operations found in its upgrade (`drop_table users`, `drop_column ...`):
    /// a downgrade cannot bring back the data they removed.
    pub destructive_upgrade: Vec<String>,
}

/// The migrations of one commit (or of the work tree).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MigrationGraph {
    /// Every migration, in no particular order.
    pub migrations: Vec<Migration>,
}

impl MigrationGraph {
    /// Revisions no other migration names as a parent, sorted.
    pub fn heads(&self) -> Vec<Revision> {
        todo!("db helper")
    }

    /// The migration with this revision.
    pub fn get(&self, rev: &Revision) -> Option<&Migration> {
        self.migrations.iter().find(|m| &m.revision == rev)
    }

    /// The migrations to undo, in the order they are undone, to go from `from` (the
    /// database's revisions) down to `to` (the target's heads): everything applied at `from`
    /// that is not an ancestor-or-self of `to`. Fails when `to` is not below `from`.
    pub fn downgrade_path(&self, from: &[Revision], to: &[Revision]) -> Result<Vec<DowngradeStep>> {
        let _ = (from, to);
        todo!("db helper")
    }
}
