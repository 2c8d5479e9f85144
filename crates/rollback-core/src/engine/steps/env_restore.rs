//! `restore_env`: the env files recorded with the target commit.

use crate::backup::{self, EntryKind, SnapshotId};
use crate::detail::StepDetail;
use crate::engine::{Ctx, Rollback};
use crate::error::Result;
use crate::event::LogLevel;

impl Rollback {
    pub(crate) fn step_restore_env(&self, ctx: &mut Ctx<'_>, record: Option<&SnapshotId>) -> Result<StepDetail> {
        let Some(record) = record else {
            ctx.log(LogLevel::Warn, "no env recorded for the target: env files left as they are");
            return Ok(StepDetail::RestoreEnv {
                record: None,
                files: Vec::new(),
                stats: None,
                recorded: Some(false),
                restored: Some(0),
            });
        };
        let store = self.store()?;
        let m = store.manifest(record)?;
        ctx.log(LogLevel::Info, format!("Restoring env files recorded with {} (record {record})...", m.head.short()));
        let stats = backup::snapshot::restore(store.as_ref(), self.workdir(), &m.entries)?;
        if stats.owners_refused > 0 {
            ctx.log(LogLevel::Warn, backup::chown::refused_warning(stats.owners_refused));
        }
        let files: Vec<String> = m
            .entries
            .iter()
            .map(|e| format!("{}{}", e.path, if e.kind == EntryKind::Absent { " (removed)" } else { "" }))
            .collect();
        ctx.log(LogLevel::Success, format!("Env files restored: {}", files.join(", ")));
        Ok(StepDetail::RestoreEnv {
            record: Some(record.clone()),
            files,
            stats: Some(stats),
            recorded: None,
            restored: None,
        })
    }
}
