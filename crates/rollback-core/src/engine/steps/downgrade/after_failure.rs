//! A downgrade that failed, or was cut short (`kill -9`, power loss), on a database whose
//! migrations are not atomic (Alembic on SQLite: DDL commits at once) leaves a database that is
//! neither the snapshot's nor the target's: the snapshot goes back, and the rows the app wrote
//! meanwhile go back into it.
//!
//! In order:
//! 1. the database as it is is dumped into the backup store (`database-before-restore`), and
//!    the snapshot restored only over that very state (its fingerprint, checked under the
//!    restore's lock): a row committed between the dump and the restore makes it dump again,
//!    so no write escapes both;
//! 2. from a copy of that dump, the rows whose primary key the restored database does not hold
//!    are inserted into it, in one transaction ([`rows::keep_written`]). Only tables with the
//!    same columns and primary key on both sides; never overwriting a row.
//!
//! Which rows are the app's: a migration's own writes (a data migration) are committed with
//! the migration, in its transaction, and the version row moves in that same transaction; a
//! migration that failed or was killed has its writes rolled back (only DDL outside a
//! transaction stays, which changes a table's columns, not its rows). So when the database
//! is still at the run's `from` revision, no migration's writes are in it: every row the
//! snapshot lacks was written by someone else. When some migrations completed first, the
//! completed part is run again on a copy of the snapshot, and the tables it writes rows to
//! are held back (counted, not put back).
//!
//! What is not put back — a row whose key the restored database holds with other content (an
//! update made meanwhile), rows of a table without a primary key, of a table whose columns
//! differ, of a table the restored database does not have, of a held-back table — is named
//! with its count, and the database as it was before the restore is written to a file of the
//! state folder, named in the message.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::backup::{Manifest, SnapshotId};
use crate::db::{Database as _, Revision, rows};
use crate::engine::db_undo::scratch_dir;
use crate::engine::full::same;
use crate::engine::{Ctx, Exec, Rollback};
use crate::error::{Error, Result};
use crate::event::LogLevel;
use crate::fsutil;
use crate::journal::Record;

/// How many times the dump and the guarded restore are tried while the app writes between them.
const ATTEMPTS: usize = 3;

/// What [`Rollback::restore_after_failure`] did.
pub(crate) struct Restored {
    /// For the messages: what was kept where, what was put back, what was not.
    pub(crate) note: String,
    /// Rows put back into the restored database.
    pub(crate) rows_put_back: u64,
}

impl Rollback {
    /// Restores the run's database snapshot after a failed or cut-short downgrade from `from`,
    /// keeping the rows written since the snapshot (see the module). Fails, restoring
    /// nothing, when the database cannot first be dumped as it is.
    pub(crate) fn restore_after_failure(
        &self,
        ctx: &mut Ctx<'_>,
        run_id: &str,
        snapshot: &SnapshotId,
        from: &[Revision],
    ) -> Result<Restored> {
        let before = self.restore_over_dump(ctx, run_id, snapshot)?;
        let mut note = format!(" (its state before the restore is backup {}", before.id);
        let mut rows_put_back = 0;
        let not_kept = match self.keep_written_rows(&before, snapshot, from) {
            Ok(kept) => {
                rows_put_back = kept.rows_inserted();
                if rows_put_back > 0 {
                    let text = format!(
                        "{rows_put_back} row(s) written while the downgrade ran put back: {}",
                        kept.describe_inserted()
                    );
                    ctx.log(LogLevel::Success, format!("{text} (rows of the snapshot left as they are)"));
                    let _ = write!(note, "; {text}");
                }
                (!kept.not_kept.is_empty())
                    .then(|| format!("{} row(s) NOT put back: {}", kept.rows_not_kept(), kept.describe_not_kept()))
            }
            Err(e) => Some(format!(
                "the rows written while the downgrade ran could NOT be put back: {}",
                crate::engine::support::chain(&e)
            )),
        };
        if let Some(what) = not_kept {
            let kept_in = match self.write_before_restore(run_id, &before) {
                Ok(path) => format!("they are in {} (the database as it was before the restore)", path.display()),
                Err(e) => format!(
                    "they are in backup {} (writing it to the state folder failed: {})",
                    before.id,
                    crate::engine::support::chain(&e)
                ),
            };
            ctx.log(LogLevel::Warn, format!("{what}; {kept_in}"));
            let _ = write!(note, "; {what}; {kept_in}");
        }
        note.push(')');
        Ok(Restored { note, rows_put_back })
    }

    /// Dumps the database as it is, then restores `snapshot` over exactly that state; tried
    /// again when the app writes in between. Returns the dump's manifest.
    fn restore_over_dump(&self, ctx: &mut Ctx<'_>, run_id: &str, snapshot: &SnapshotId) -> Result<Manifest> {
        for _ in 0..ATTEMPTS {
            let seen = self.db_fingerprint()?;
            let before = self.dump_database(Some(run_id), "database-before-restore")?;
            if self.db_fingerprint()? != seen {
                ctx.log(LogLevel::Warn, "the database was written to while it was dumped: dumping it again".to_owned());
                continue;
            }
            let guard = crate::db::Unchanged { expect: seen.hash, since: format!("backup {} was taken", before.id) };
            match self.restore_database_from(snapshot, Some(&guard)) {
                Ok(_) => return Ok(before),
                Err(Error::Db(crate::db::Error::ChangedSince { .. })) => {
                    ctx.log(
                        LogLevel::Warn,
                        "the database was written to before the restore began: dumping it again".to_owned(),
                    );
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::Service {
            message: format!(
                "the database was written to each time it was dumped before the restore ({ATTEMPTS} tries): backup {snapshot} was not restored, so that no write is lost"
            ),
            hint: Some(crate::hint::hint!["stop the app's writes, then ", crate::hint::Action::undo(run_id)]),
        })
    }

    /// Puts the rows of the dump `before` that the restored database lacks back into it.
    fn keep_written_rows(&self, before: &Manifest, snapshot: &SnapshotId, from: &[Revision]) -> Result<rows::Kept> {
        let db = self.migrator()?.clone();
        let live = db.url_database().ok_or_else(|| {
            Error::refused(format!("the `{}` migrator's database cannot be merged row by row", db.kind()), None)
        })?;
        let rec = before.database.as_ref().expect("a database manifest");
        let dir = scratch_dir()?;
        let file = dir.path().join("before.dump");
        self.store()?.get_blob_to_file(&rec.blob, &file)?;
        // Completed migrations may have written rows themselves: their tables are held back.
        let held = if same(&rec.revisions, from) {
            Ok(BTreeSet::new())
        } else {
            self.written_by_migrations(snapshot, &rec.revisions, dir.path())
        };
        let held_why = match &held {
            Ok(_) => "the part of the downgrade that completed writes rows to it".to_owned(),
            Err(e) => format!(
                "the part of the downgrade that completed could not be run on a copy to tell its rows from the app's ({})",
                crate::engine::support::chain(e)
            ),
        };
        let skip = db.bookkeeping_tables();
        Ok(crate::rt::block_on(async {
            let copy = live.scratch_from_dump(&file, &rec.dump, dir.path()).await?;
            let result = async {
                let held = match held {
                    Ok(h) => h,
                    Err(_) => rows::census(&copy.db).await?.tables.into_keys().collect(),
                };
                rows::keep_written(live, &copy.db, &skip, &held, &held_why).await
            }
            .await;
            let discarded = copy.discard().await;
            let kept = result?;
            discarded?;
            Ok::<_, crate::db::Error>(kept)
        })?)
    }

    /// The tables whose rows the migrations from the snapshot's revision down to `to` change:
    /// found by running them on a copy of the snapshot.
    fn written_by_migrations(
        &self,
        snapshot: &SnapshotId,
        to: &[Revision],
        dir: &std::path::Path,
    ) -> Result<BTreeSet<String>> {
        let db = self.migrator()?.clone();
        let live = db.url_database().ok_or_else(|| Error::refused("the database cannot be copied".to_owned(), None))?;
        let manifest = self.store()?.manifest(snapshot)?;
        let Some(rec) = &manifest.database else {
            return Err(Error::refused(format!("backup {snapshot} holds no database dump"), None));
        };
        let file = dir.join("snapshot.dump");
        self.store()?.get_blob_to_file(&rec.blob, &file)?;
        Ok(crate::rt::block_on(async {
            let copy = live.scratch_from_dump(&file, &rec.dump, dir).await?;
            let result = async {
                let before = rows::census(&copy.db).await?;
                db.on_database(copy.db.clone(), None)
                    .ok_or_else(|| {
                        crate::db::Error::Config(format!("the `{}` migrator cannot run on a copy", db.kind()))
                    })?
                    .downgrade(to)
                    .await?;
                let after = rows::census(&copy.db).await?;
                let names: BTreeSet<String> = before.tables.keys().chain(after.tables.keys()).cloned().collect();
                Ok::<_, crate::db::Error>(
                    names.into_iter().filter(|n| before.tables.get(n) != after.tables.get(n)).collect(),
                )
            }
            .await;
            let discarded = copy.discard().await;
            let held = result?;
            discarded?;
            Ok::<_, crate::db::Error>(held)
        })?)
    }

    /// The dump `before` written to `<state>/dumps/<run>-before-restore.db` (`.dump`: a
    /// `pg_dump -Fc` archive), or with the backup's id when that name is taken.
    fn write_before_restore(&self, run_id: &str, before: &Manifest) -> Result<PathBuf> {
        let rec = before.database.as_ref().expect("a database manifest");
        let dir = self.state.root().join("dumps");
        fsutil::create_private_dir(&dir)?;
        let ext = if rec.dump.format == crate::db::database::FORMAT_SQLITE { "db" } else { "dump" };
        let mut dest = dir.join(format!("{run_id}-before-restore.{ext}"));
        if dest.exists() {
            dest = dir.join(format!("{run_id}-before-restore-{}.{ext}", before.id));
        }
        self.store()?.get_blob_to_file(&rec.blob, &dest)?;
        Ok(dest)
    }

    /// Whether the database differs from what `snapshot` holds (a copy of it compared by
    /// fingerprint). `false` when it cannot be copied (a database that is not a SQLite file
    /// or a PostgreSQL database).
    pub(crate) fn differs_from_snapshot(&self, snapshot: &SnapshotId) -> Result<bool> {
        let db = self.migrator()?.clone();
        let Some(live) = db.url_database() else { return Ok(false) };
        let manifest = self.store()?.manifest(snapshot)?;
        let Some(rec) = &manifest.database else { return Ok(false) };
        let dir = scratch_dir()?;
        let file = dir.path().join("snapshot.dump");
        self.store()?.get_blob_to_file(&rec.blob, &file)?;
        let theirs = crate::rt::block_on(async {
            let copy = live.scratch_from_dump(&file, &rec.dump, dir.path()).await?;
            let fingerprint = copy.db.fingerprint().await;
            let discarded = copy.discard().await;
            let fingerprint = fingerprint?;
            discarded?;
            Ok::<_, crate::db::Error>(fingerprint)
        })?;
        Ok(self.db_fingerprint()?.hash != theirs)
    }

    /// After a resume restored the run's database snapshot `old` and put back rows written since
    /// it (or found rows written since a downgrade that failed whole): dumps the database again and journals the dump as the run's `db_snapshot` (a second
    /// `step_end` of that step, then the downgrade's `step_begin` again), so that `undo` and a
    /// later resume use it. Returns it; `None`, with a warning, when it could not be taken.
    pub(crate) fn snapshot_again(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>, old: &SnapshotId) -> Option<SnapshotId> {
        let index = |name: &str| ex.plan.steps.iter().position(|s| s.name() == name);
        let (Some(snap_at), Some(down_at)) = (index("db_snapshot"), index("downgrade")) else { return None };
        // What this downgrade drops now (the rows put back included), for the report and the
        // undo; the plan's when it cannot be measured.
        let forecast = ex.plan.downgrade_to().and_then(|to| match self.forecast_downgrade(to) {
            Ok(f) => Some(f.losses),
            Err(e) => {
                ctx.log(
                    LogLevel::Warn,
                    format!(
                        "could not measure again what the downgrade drops (the rows put back included): {}; the report counts the plan's forecast, which does not",
                        e.chain()
                    ),
                );
                None
            }
        });
        let taken = self.dump_database(Some(&ex.run_id), "database").and_then(|m| {
            let rec = m.database.as_ref().expect("a database manifest");
            let detail = crate::detail::StepDetail::DbSnapshot {
                snapshot: m.id.clone(),
                bytes: rec.dump.size,
                format: rec.dump.format.clone(),
                revisions: rec.revisions.clone(),
                holds: None,
                forecast,
            };
            let now = crate::time::Timestamp::now();
            ex.journal.append(&Record::StepEnd { at: now, index: snap_at, step: "db_snapshot".into(), detail })?;
            ex.journal.append(&Record::StepBegin { at: now, index: down_at, step: "downgrade".into() })?;
            Ok(m.id)
        });
        match taken {
            Ok(id) => {
                ctx.log(
                    LogLevel::Success,
                    format!(
                        "Database backup {id} created (with the rows written since backup {old}): it replaces that one as what this run's undo puts back"
                    ),
                );
                Some(id)
            }
            Err(e) => {
                ctx.log(
                    LogLevel::Warn,
                    format!(
                        "could not back up the database again after putting rows back ({}): what the downgrade drops of those rows is in no backup of this run",
                        crate::engine::support::chain(&e)
                    ),
                );
                None
            }
        }
    }

    /// Whether this attempt of the run took its database snapshot (a resume that started over
    /// takes it again): the database was then as the snapshot holds it when the downgrade began.
    pub(crate) fn db_snapshot_taken_now(ex: &Exec<'_>) -> Result<bool> {
        let records = crate::journal::read(ex.journal.path())?;
        let attempt = records.iter().rposition(|r| matches!(r, Record::Resumed { .. })).unwrap_or(0);
        Ok(records[attempt..].iter().any(|r| matches!(r, Record::StepEnd { step, .. } if step == "db_snapshot")))
    }
}
