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
