//! What the database layer says while it is still working: a lock another connection holds,
//! before the wait for it ends. The db layer never prints; it hands a [`DbNotice`] to the sink
//! the engine gave it, which turns it into an [`crate::event::Event`] for the front-end.

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

/// Something worth telling the operator before an operation ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum DbNotice {
    /// Another connection holds a lock on the database; the operation keeps waiting.
    Locked {
        /// The database, password removed.
        database: String,
        /// How much longer it waits, in seconds (the rest of `database.timeout_secs`).
        waiting_secs: u64,
    },
}

impl std::fmt::Display for DbNotice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbNotice::Locked { database, waiting_secs } => write!(
                f,
                "database `{database}` is locked by another connection; still waiting for it, up to {waiting_secs}s more (database.timeout_secs)"
            ),
        }
    }
}

/// Receives notices; called from whichever thread the database work runs on.
pub type NoticeSink = Arc<dyn Fn(&DbNotice) + Send + Sync>;

/// The sink a database hands its notices to, shared by its clones; set by the engine.
#[derive(Clone, Default)]
pub(crate) struct Notices(Arc<RwLock<Option<NoticeSink>>>);

impl std::fmt::Debug for Notices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.get().is_some() { "Notices(set)" } else { "Notices(none)" })
    }
}

impl Notices {
    pub(crate) fn set(&self, sink: NoticeSink) {
        if let Ok(mut s) = self.0.write() {
            *s = Some(sink);
        }
    }

    pub(crate) fn get(&self) -> Option<NoticeSink> {
        self.0.read().ok().and_then(|s| s.clone())
    }
}
