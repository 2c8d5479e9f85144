//! `restore_files` and `restore_index` (undo): write back what a snapshot recorded.

use crate::backup::{self, SnapshotId};
use crate::engine::{Ctx, Rollback};
use crate::error::{Error, Result};
use crate::event::LogLevel;
use crate::fsutil;

impl Rollback {
    pub(crate) fn step_restore_files(&self, ctx: &mut Ctx<'_>, snapshot: &SnapshotId) -> Result<serde_json::Value> {
        ctx.log(LogLevel::Info, format!("Restoring files from backup {snapshot}..."));
        let store = self.store()?;
        let m = store.manifest(snapshot)?;
        let stats = backup::snapshot::restore(store.as_ref(), self.workdir(), &m.entries)?;
        Ok(serde_json::to_value(stats).unwrap_or_default())
    }

    pub(crate) fn step_restore_index(&self, ctx: &mut Ctx<'_>, snapshot: &SnapshotId) -> Result<serde_json::Value> {
        let store = self.store()?;
        let m = store.manifest(snapshot)?;
        let Some(index) = &m.index else { return Ok(serde_json::json!({ "restored": false })) };
        ctx.log(LogLevel::Info, "Restoring the index (staged changes)...");
        let mut written = 0;
        for s in &index.staged {
            if !self.vcs.has_object(&s.oid)? {
                let content = store.get_blob(&s.blob)?;
                let oid = self.vcs.write_blob(&content)?;
                if oid != s.oid {
                    return Err(Error::refused(
                        format!("staged content of `{}` hashes to {oid}, not {}", s.path, s.oid),
                        None,
                    ));
                }
                written += 1;
            }
        }
        let bytes = store.get_blob(&index.blob)?;
        fsutil::atomic_write_mode(&self.vcs.index_path(), &bytes, 0o644)?;
        Ok(serde_json::json!({ "restored": true, "objects_written": written }))
    }
}
