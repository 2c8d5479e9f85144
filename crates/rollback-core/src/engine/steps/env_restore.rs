//! `restore_env`: the env files recorded with the target commit.

use crate::backup::{self, EntryKind, ManifestEntry, SnapshotId};
use crate::detail::StepDetail;
use crate::engine::{Ctx, Exec, Rollback};
use crate::error::Result;
use crate::event::LogLevel;

impl Rollback {
    /// Writes the record's files over the live ones: only those the run's snapshot holds (the
    /// configured `[env] files`, captured before anything changed). A file the record has
    /// that the configuration no longer names was not backed up by this run: writing or
    /// removing it would lose what it holds, so it is left as it is, with a warning.
    pub(crate) fn step_restore_env(
        &self,
        ctx: &mut Ctx<'_>,
        ex: &mut Exec<'_>,
        record: Option<&SnapshotId>,
    ) -> Result<StepDetail> {
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
        let own = self.own_manifest(ex)?;
        ctx.log(LogLevel::Info, format!("Restoring env files recorded with {} (record {record})...", m.head.short()));
        // What is not written, and why: said, never counted as restored.
        let mut left: Vec<(&ManifestEntry, String)> = Vec::new();
        let mut put: Vec<ManifestEntry> = Vec::new();
        let named = crate::env::files(&self.config);
        for e in &m.entries {
            if own.entry(&e.path).is_none() {
                let why = if named.contains(&e.path) {
                    // An empty folder there: the capture holds no entry for it.
                    "this run did not back it up before it began: it is a folder, and `[env] files` names files"
                } else {
                    "this run did not back it up before it began, as `[env] files` does not name it now (name it there to have full rollbacks restore it)"
                };
                left.push((e, why.to_owned()));
            } else if let Some(link) = crate::env::symlinked_folder(self.workdir(), &e.path) {
                left.push((e, format!("`{link}` is a symlink, and env history never writes through one")));
            } else if let EntryKind::Symlink { target } = &e.kind
                && crate::env::holds(self.workdir(), &e.path, &e.kind)
            {
                // Records made before links were followed hold the link, not what it leads to.
                left.push((
                    e,
                    format!(
                        "the record holds the symlink to `{}` (it is that link already), not the content it leads to; `known-good mark` a release while it is deployed records that content",
                        String::from_utf8_lossy(&target.0)
                    ),
                ));
            } else {
                put.push(e.clone());
            }
        }
        let stats = backup::snapshot::restore(store.as_ref(), self.workdir(), &put)?;
        if stats.owners_refused > 0 {
            ctx.log(LogLevel::Warn, backup::chown::refused_warning(stats.owners_refused));
        }
        if !stats.xattrs_refused.is_empty() {
            ctx.log(LogLevel::Warn, backup::xattr::not_given_back_warning(record.as_str(), &stats.xattrs_refused));
        }
        let restored: Vec<String> = put
            .iter()
            .map(|e| format!("{}{}", e.path, if e.kind == EntryKind::Absent { " (removed)" } else { "" }))
            .collect();
        for (e, why) in &left {
            ctx.log(LogLevel::Warn, format!("env file `{}` left as it is, not restored: {why}", e.path));
        }
        if restored.is_empty() {
            ctx.log(LogLevel::Warn, "no env file restored");
        } else {
            ctx.log(LogLevel::Success, format!("Env files restored: {}", restored.join(", ")));
        }
        let files =
            restored.into_iter().chain(left.iter().map(|(e, _)| format!("{} (left as it is)", e.path))).collect();
        Ok(StepDetail::RestoreEnv {
            record: Some(record.clone()),
            files,
            stats: Some(stats),
            recorded: None,
            restored: None,
        })
    }
}
