//! What a downgrade destroys in the live database: the data-loss forecast.

use serde::{Deserialize, Serialize};

/// One table or column a downgrade drops, with the rows that go with it; or rows it deletes
/// from a table that stays, or values it changes in a column that stays.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DataLoss {
    /// The table.
    pub table: String,
    /// The dropped column, or `None` when the whole table goes (or, `Removed`, loses rows).
    pub column: Option<String>,
    /// The rows of a dropped table, the non-null values of a dropped column, or (`Removed`)
    /// how many rows fewer the table has.
    pub rows: u64,
    /// Dropped with its table or column, deleted from a table that stays, or changed in a
    /// column that stays. (Absent from journals written before it existed: those only knew
    /// drops.)
    #[serde(default)]
    pub kind: LossKind,
}

/// How a downgrade destroys data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    /// The table or column is dropped, and everything in it.
    #[default]
    Dropped,
    /// The table stays, with fewer rows: the downgrade deleted some (a data migration's
    /// downgrade, `DELETE FROM payments WHERE amount < 0`). Counted: the table's rows before
    /// minus after.
    Removed,
    /// The column stays, with other values in rows that stay: the downgrade changed them (an
    /// `UPDATE` mapping a value the older release does not know, a type it narrows). Counted:
    /// the rows, matched by primary key, whose value differs.
    Changed,
}

impl DataLoss {
    /// A whole table dropped, with its `rows`.
    pub fn table(table: &str, rows: u64) -> Self {
        Self { table: table.to_owned(), column: None, rows, kind: LossKind::Dropped }
    }

    /// A column dropped, with its non-null values.
    pub fn column(table: &str, column: &str, values: u64) -> Self {
        Self { table: table.to_owned(), column: Some(column.to_owned()), rows: values, kind: LossKind::Dropped }
    }

    /// `rows` deleted from a table that stays.
    pub fn removed(table: &str, rows: u64) -> Self {
        Self { table: table.to_owned(), column: None, rows, kind: LossKind::Removed }
    }

    /// `values` changed in a column that stays.
    pub fn changed(table: &str, column: &str, values: u64) -> Self {
        Self { table: table.to_owned(), column: Some(column.to_owned()), rows: values, kind: LossKind::Changed }
    }

    /// `payments (12 rows)`, `users.nickname (3 values)`, `refunds (2 rows deleted, the table
    /// stays)`, `orders.status (3 values changed)`.
    pub fn describe(&self) -> String {
        let s = |n: u64| if n == 1 { "" } else { "s" };
        match (&self.column, self.kind) {
            (Some(c), LossKind::Changed) => {
                format!("{}.{c} ({} value{} changed)", self.table, self.rows, s(self.rows))
            }
            (Some(c), _) => format!("{}.{c} ({} value{})", self.table, self.rows, s(self.rows)),
            (None, LossKind::Removed) => {
                format!("{} ({} row{} deleted, the table stays)", self.table, self.rows, s(self.rows))
            }
            (None, _) => format!("{} ({} row{})", self.table, self.rows, s(self.rows)),
        }
    }
}

/// The state of a database's schema and rows at one moment, to tell later whether anything
/// changed since: a BLAKE3 hash of its schema and, per table, the row count and an
/// order-independent digest of the rows (see `Database::fingerprint`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DbFingerprint {
    /// Hex BLAKE3.
    pub hash: String,
}
