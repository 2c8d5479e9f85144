//! The database and env parts of the engine: assessing them, refusing full runs they cannot
//! support, planning previews, and the dump and restore the `db_snapshot`, `downgrade` and
//! `restore_database` steps (under `steps/`) share.

use std::sync::Arc;

use super::Rollback;
use crate::assess::{self, Assessment, Severity};
use crate::backup::{BackupStore, DatabaseSnapshot, Manifest, SnapshotId};
use crate::db::{DbMigrator, Revision, show_revisions};
use crate::engine::RunOptions;
use crate::env::EnvBlock;
use crate::error::{Error, Result};
use crate::fsutil;
use crate::hint::{Action, hint};
use crate::model::RiskCode;
use crate::plan::{Level, Plan, Step};
use crate::time::Timestamp;

pub(crate) fn same(a: &[Revision], b: &[Revision]) -> bool {
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort();
    b.sort();
    a == b
}

/// Removes a temp file when dropped.
pub(crate) struct TempFile(pub(crate) std::path::PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Rollback {
    pub(crate) fn migrator(&self) -> Result<&Arc<dyn DbMigrator>> {
        self.db()?.ok_or_else(|| {
            Error::usage(
                "this step needs a database, but no `[database]` is configured".to_owned(),
                Some("add a `[database]` section (see docs/configuration.md)".into()),
            )
        })
    }

    /// Adds the database assessment and its risks; recommends `full` when the schema must
    /// move.
    /// `stop`: as for [`Rollback::assess_local_unless`]; its `Cancelled` is the one error
    /// returned.
    pub(crate) fn assess_database(&self, a: &mut Assessment, stop: &(dyn Fn() -> Option<String> + Sync)) -> Result<()> {
        // A code-only rollback must not be blocked by the database: an unset `url_env`, a
        // migration file of the broken release that does not parse... `assess` shows it as a
        // risk; full and manual runs (and their plans) fail with the error itself.
        if let Err(e) = self.assess_database_unless(a, stop) {
            if let Error::Cancelled(_) = e {
                return Err(e);
            }
            a.risks.push(assess::risk(
                RiskCode::DbNotAssessed,
                Severity::High,
                format!(
                    "the database could not be assessed: {}; a full rollback is not possible until this is fixed",
                    crate::engine::support::chain(&e)
                ),
            ));
            a.risks.sort_by_key(|r| std::cmp::Reverse(r.severity));
        }
        Ok(())
    }

    /// Full and manual levels need the database assessed: the error that stopped it, read
    /// again from the database. `stop`: as for [`Rollback::assess_local_unless`] (a run before
    /// its first step; its `Cancelled` wins).
    pub(crate) fn require_database(
        &self,
        a: &Assessment,
        level: Level,
        stop: &(dyn Fn() -> Option<String> + Sync),
    ) -> Result<()> {
        if level == Level::Fast || self.config.database.is_none() || a.database.is_some() {
            return Ok(());
        }
        let mut again = a.clone();
        self.assess_database_unless(&mut again, stop)?;
        Err(Error::refused(
            "the database could not be assessed when the run was planned".to_owned(),
            Some("assess again and rerun".into()),
        ))
    }

    fn assess_database_unless(&self, a: &mut Assessment, stop: &(dyn Fn() -> Option<String> + Sync)) -> Result<()> {
        let Some(db) = self.db()? else { return Ok(()) };
        let target = a.target.commit.id.clone();
        let d = crate::rt::block_on_unless(crate::db::assess::assess(db.as_ref(), self.vcs.as_ref(), &target), stop)
            .map_err(|why| {
            Error::Cancelled(format!("{why} while the database was being assessed; nothing was changed"))
        })??;
        a.risks.extend(d.risks.iter().cloned());
        // With a database configured, the database itself says whether the schema must move:
        // changed migration files that do not move it (a comment, a new unapplied file) are not
        // a reason for a full rollback.
        if d.needs_downgrade {
            a.recommended_level = Level::Full;
            a.recommendation = format!(
                "the database is at {}, the target expects {}: the schema must go back with the code",
                show_revisions(&d.current),
                show_revisions(&d.target_heads)
            );
        } else if a.recommended_level == Level::Full && d.reachable {
            a.recommended_level = Level::Fast;
            a.recommendation = format!(
                "migration files changed, but the database is already at the target's revision {}: rolling back the code is enough",
                show_revisions(&d.target_heads)
            );
            a.risks.retain(|r| r.code != RiskCode::MigrationsChanged);
        }
        a.risks.sort_by_key(|r| std::cmp::Reverse(r.severity));
        a.database = Some(d);
        Ok(())
    }

    /// Adds what a full rollback would change in the env files (key names only). A damaged
    /// record, or a folder where an env file goes, is a risk here (a code-only rollback does
    /// not need the env) and in [`crate::env::EnvAssessment::blocked`], which full and manual
    /// runs refuse ([`Rollback::env_refusals`]).
    pub(crate) fn assess_env(&self, a: &mut Assessment) -> Result<()> {
        let files = crate::env::files(&self.config);
        if files.is_empty() {
            return Ok(());
        }
        let target = a.target.commit.id.clone();
        let mut blocked = Vec::new();
        let (record, diffs) = match self.existing_store()? {
            Some(store) => {
                let found = crate::env::find(store.as_ref(), &target)?;
                blocked.extend(
                    found.unreadable.into_iter().map(|(record, reason)| EnvBlock::UnreadableRecord { record, reason }),
                );
                match found.newest {
                    Some((record, manifest)) => {
                        match crate::env::compare(store.as_ref(), self.workdir(), &files, &manifest) {
                            Ok(diffs) => (Some(record), diffs),
                            Err(e) => {
                                blocked.push(EnvBlock::DamagedRecord {
                                    record: record.snapshot.clone(),
                                    reason: crate::engine::support::chain(&e),
                                });
                                (Some(record), Vec::new())
                            }
                        }
                    }
                    None => (None, Vec::new()),
                }
            }
            None => (None, Vec::new()),
        };
        // A folder that is not empty where an env file goes: the restore cannot put a file
        // there, and would find out only after the reset.
        for f in &files {
            let full = f.to_fs(self.workdir());
            if std::fs::symlink_metadata(&full).is_ok_and(|m| m.is_dir())
                && std::fs::read_dir(&full).is_ok_and(|mut d| d.next().is_some())
            {
                blocked.push(EnvBlock::Folder { file: f.clone() });
            }
        }
        let existing: Vec<String> =
            files.iter().filter(|f| f.to_fs(self.workdir()).exists()).map(ToString::to_string).collect();
        if record.is_none() && existing.is_empty() && blocked.is_empty() {
            // No env file here and none recorded: nothing to say.
            return Ok(());
        }
        for f in &files {
            if let Some(link) = crate::env::symlinked_folder(self.workdir(), f) {
                a.risks.push(assess::risk(
                    RiskCode::EnvNotRecorded,
                    Severity::Info,
                    format!(
                        "env file `{f}` is below `{link}`, a symlink: env history does not follow symlinked folders, and a full rollback leaves the file as it is"
                    ),
                ));
            }
        }
        for b in &blocked {
            a.risks.push(assess::risk(
                RiskCode::EnvNotRestorable,
                Severity::High,
                format!(
                    "{}; a full rollback is refused until this is fixed, a code-only one is not affected",
                    b.message(&target)
                ),
            ));
        }
        if record.is_none() {
            a.risks.push(assess::risk(
                RiskCode::EnvNotRecorded,
                Severity::Info,
                format!(
                    "no env recorded for the target {}: a full rollback leaves the env files ({}) as they are; `known-good mark` records them",
                    target.short(),
                    existing.join(", ")
                ),
            ));
        } else if !diffs.is_empty() {
            let keys: usize = diffs.iter().map(|d| d.added.len() + d.removed.len() + d.changed.len()).sum();
            let bytes = diffs.iter().filter(|d| d.content_differs).count();
            let bytes = if bytes == 0 { String::new() } else { format!("; {bytes} differ in bytes but in no key") };
            a.risks.push(assess::risk(
                RiskCode::EnvDiffers,
                Severity::Medium,
                format!(
                    "{} env file(s) differ from those recorded with the target ({keys} key(s){bytes}): a full rollback restores them",
                    diffs.len()
                ),
            ));
            if a.recommended_level == Level::Fast {
                a.recommended_level = Level::Full;
                a.recommendation =
                    "the env files differ from those recorded with the target: they go back with the code".into();
            }
        }
        a.risks.sort_by_key(|r| std::cmp::Reverse(r.severity));
        a.env = Some(crate::env::EnvAssessment { files, target_record: record, diffs, blocked });
        Ok(())
    }

    /// Why a full or manual run must not start for the env: a damaged record it would restore
    /// from, a folder where an env file goes ([`EnvBlock`]).
    pub(crate) fn env_refusals(a: &Assessment) -> Vec<Error> {
        let Some(env) = &a.env else { return Vec::new() };
        let target = &a.target.commit.id;
        env.blocked
            .iter()
            .map(|b| {
                let hint = match b {
                    EnvBlock::Folder { file } => hint![
                        format!("move the folder `{file}` away (the rollback puts the recorded file there), or pass "),
                        Action::Fast,
                        " to roll back the code only"
                    ],
                    _ => hint![
                        "`forge-rollback backups verify` names what is damaged; ",
                        Action::MarkGood { rev: target.short().to_owned() },
                        " while that release is deployed records its env anew; or pass ",
                        Action::Fast,
                        " to roll back the code only"
                    ],
                };
                Error::refused(b.message(target), Some(hint))
            })
            .collect()
    }

    /// Why a full or manual run of this assessment must not start.
    pub(crate) fn database_refusals(&self, a: &Assessment, opts: &RunOptions) -> Vec<Error> {
        let mut out = Vec::new();
        let Some(d) = &a.database else { return out };
        if !d.reachable {
            // Another SQLite of this process has the file open: its own refusal, whose hint is
            // to run from another process, not to bring the database back.
            if let Ok(Some(db)) = self.db()
                && let Some(Err(e)) = db.database().url_database().map(crate::db::UrlDatabase::refuse_open_in_process)
            {
                out.push(e.into());
                return out;
            }
            // Say why: a lock another connection holds reads very differently from a server
            // that is down.
            let why = d
                .risks
                .iter()
                .find(|r| r.code == RiskCode::DbUnreachable)
                .map(|r| r.message.split(crate::db::assess::PATH_ASSUMED).next().unwrap_or(&r.message).to_owned());
            out.push(Error::refused(
                format!(
                    "the database {} cannot be reached: a full rollback needs it{}",
                    d.database,
                    why.map(|w| format!(" ({w})")).unwrap_or_default()
                ),
                Some(hint!["bring the database back, or pass ", Action::Fast, " to roll back the code only"]),
            ));
            return out;
        }
        for code in [RiskCode::UnknownDbRevision, RiskCode::NoDowngradePath, RiskCode::DbAheadOfCode] {
            if let Some(r) = d.risks.iter().find(|r| r.code == code) {
                out.push(Error::refused(
                    r.message.clone(),
                    Some(hint![
                        "fix the database or the migration files first; ",
                        Action::Assess,
                        " shows the details"
                    ]),
                ));
            }
        }
        if !opts.allow_irreversible
            && let Some(step) = d.path.iter().find(|p| p.irreversible.is_some())
        {
            out.push(Error::refused(
                format!(
                    "the downgrade of migration {} ({}) cannot restore data: {}",
                    step.revision,
                    step.path,
                    step.irreversible.as_deref().unwrap_or("")
                ),
                Some(hint![
                    "pass ",
                    Action::AllowIrreversible,
                    " to run it anyway (the database snapshot taken first still lets `undo` put everything back)"
                ]),
            ));
        }
        out
    }

    /// Refuses a full rollback whose migration environment would connect elsewhere than the
    /// configured database (Alembic's stock `env.py` reads `sqlalchemy.url` from its ini):
    /// the downgrade would run there. Other failures of the check are left to the steps that
    /// run Alembic, which report them. `stop`: as for [`Rollback::assess_local_unless`] (the
    /// check runs the project's `env.py`, which may hang up to the database's timeout).
    pub(crate) fn environment_refusal(&self, stop: &(dyn Fn() -> Option<String> + Sync)) -> Result<Option<Error>> {
        let Some(db) = self.db().ok().flatten() else { return Ok(None) };
        let checked = crate::rt::block_on_unless(db.check_environment(), stop).map_err(|why| {
            Error::Cancelled(format!("{why} while the migration environment was being checked; nothing was changed"))
        })?;
        Ok(match checked {
            Err(e @ crate::db::Error::EnvElsewhere { .. }) => {
                Some(Error::refused(e.to_string(), e.hint().map(Into::into)))
            }
            _ => None,
        })
    }

    /// Fills what plans show but runs do not need: the downgrade's SQL. `stop`: as for
    /// [`Rollback::environment_refusal`] (Alembic's offline mode runs `env.py` too).
    pub(crate) fn fill_previews(&self, plan: &mut Plan, stop: &(dyn Fn() -> Option<String> + Sync)) -> Result<()> {
        let Ok(Some(db)) = self.db() else { return Ok(()) };
        for step in &mut plan.steps {
            if let Step::Downgrade { from, to, sql, .. } = step {
                let previewed = crate::rt::block_on_unless(db.downgrade_sql(from, to), stop).map_err(|why| {
                    Error::Cancelled(format!(
                        "{why} while the downgrade's SQL was being previewed; nothing was changed"
                    ))
                })?;
                *sql = previewed.ok().flatten();
            }
        }
        Ok(())
    }

    /// Dumps the database into a temp file in the state folder, then into the store.
    pub(crate) fn dump_database(&self, run_id: Option<&str>, label: &str) -> Result<Manifest> {
        let db = self.migrator()?;
        let revisions = crate::rt::block_on(db.current())?;
        let tmp_dir = self.state.root().join("tmp");
        fsutil::create_private_dir(&tmp_dir)?;
        let tmp = TempFile(tmp_dir.join(format!("db-{}.dump", crate::state::random_hex(8))));
        let dump = crate::rt::block_on(db.database().snapshot(&tmp.0))?;
        let store = self.store()?;
        let (blob, _, _) = store.put_blob_file(&tmp.0)?;
        let head = self.vcs.head()?;
        let manifest = Manifest {
            format: 1,
            id: SnapshotId::generate(),
            created_at: Timestamp::now(),
            run_id: run_id.map(str::to_owned),
            workdir: self.workdir().to_path_buf(),
            head: head.commit,
            branch: head.branch,
            entries: Vec::new(),
            index: None,
            label: Some(label.to_owned()),
            database: Some(DatabaseSnapshot {
                blob,
                dump,
                database: db.database().describe(),
                migrator: db.kind().to_owned(),
                revisions,
            }),
            hard_links: Vec::new(),
            landing: std::collections::BTreeMap::new(),
            folders: Vec::new(),
        };
        store.put_manifest(&manifest)?;
        let report = store.verify(Some(std::slice::from_ref(&manifest.id)))?;
        if !report.problems.is_empty() {
            return Err(Error::refused(
                format!("the database backup {} failed verification: {}", manifest.id, report.problems.join("; ")),
                None,
            ));
        }
        Ok(manifest)
    }

    /// Puts the database back from a snapshot's dump.
    ///
    /// `guard`: only over a database that still has its fingerprint
    /// ([`crate::db::Database::restore_unchanged`]).
    pub(crate) fn restore_database_from(
        &self,
        snapshot: &SnapshotId,
        guard: Option<&crate::db::Unchanged>,
    ) -> Result<Manifest> {
        let db = self.migrator()?;
        let store = self.store()?;
        let manifest = store.manifest(snapshot)?;
        let Some(rec) = &manifest.database else {
            return Err(Error::refused(format!("backup {snapshot} holds no database dump"), None));
        };
        let tmp_dir = self.state.root().join("tmp");
        fsutil::create_private_dir(&tmp_dir)?;
        let tmp = TempFile(tmp_dir.join(format!("restore-{}.dump", crate::state::random_hex(8))));
        store.get_blob_to_file(&rec.blob, &tmp.0)?;
        crate::rt::block_on(async {
            match guard {
                Some(g) => db.database().restore_unchanged(&tmp.0, &rec.dump, g).await,
                None => db.database().restore(&tmp.0, &rec.dump).await,
            }
        })?;
        Ok(manifest)
    }

    /// Records the `[env] files` as they are now, for `commit` (`known-good mark`): the record
    /// (`None`: no env file exists) and notes on files followed or left out
    /// ([`crate::env::record`]).
    pub fn record_env(&self, commit: &crate::vcs::CommitId) -> Result<(Option<crate::env::EnvRecord>, Vec<String>)> {
        let files = crate::env::files(&self.config);
        if files.is_empty() {
            return Ok((None, Vec::new()));
        }
        self.state.ensure()?;
        let head = self.vcs.head()?;
        let store: Arc<dyn BackupStore> = self.store()?;
        let (record, notes) = crate::env::record(store.as_ref(), self.workdir(), &head, commit, &files)?;
        Ok((record, notes))
    }
}
