//! What a downgrade destroys in the live database: the data-loss forecast.

use serde::{Deserialize, Serialize};

/// One table or column a downgrade drops, with the rows that go with it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DataLoss {
    /// The table.
    pub table: String,
    /// The dropped column, or `None` when the whole table goes.
    pub column: Option<String>,
    /// The rows of a dropped table, or the non-null values of a dropped column.
    pub rows: u64,
}

/// The state of a database's schema and rows at one moment, to tell later whether anything
/// changed since: a BLAKE3 hash of its schema and, per table, the row count and an
/// order-independent digest of the rows (see `Database::fingerprint`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DbFingerprint {
    /// Hex BLAKE3.
    pub hash: String,
}
