//! How an undo puts a database back, and the steps that do it when rows were written since the
//! run: `upgrade_database` and `put_back_rows`.
//!
//! A run's downgrade records, with its `step_end`, a fingerprint of the database it leaves
//! (`Database::fingerprint`), taken before the code moves and the services restart: from then
//! on the rolled-back app may write. The undo compares the database with it:
//! - the same: nothing was written since, the snapshot goes back byte for byte
//!   (`restore_database`);
//! - different: the schema is brought forward with the restored migration files (an upgrade),
//!   then what the downgrade dropped comes back from the run's snapshot, matched by primary
//!   key, and the rows written since stay. Both are rehearsed on copies first; what cannot be
//!   put back faithfully (a dropped column of a table without a primary key, a value whose row
//!   was deleted since, a table or column created again, a row the upgrade creates under a key
//!   the snapshot holds with other content) is refused before anything changes, naming it;
//!   `--restore-snapshot` then restores the snapshot after keeping the database as it is in a
//!   file of the state folder.
//!
//! The undo of an undo compares the database with what that undo's last database step
//! recorded the same way; when rows were written since and the undo had brought the schema
//! forward, it goes back down (see `db_back`). Runs without a fingerprint (journals from
//! before it was recorded) go back by restoring the snapshot, as before.

use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use super::planner::DbUndoMode;
use super::{Ctx, Exec, Rollback};

use crate::backup::{DatabaseSnapshot, EntryKind, Manifest, SnapshotId};
use crate::db::{Revision, rows, show_revisions};
use crate::detail::StepDetail;
use crate::error::{Error, Result};
use crate::event::LogLevel;
use crate::fsutil::{self, IoError};
use crate::journal::RunState;
use crate::model::{DataLoss, DbFingerprint, LossKind};
use crate::plan::RunKind;

/// A private temp folder for scratch copies, removed when dropped (see [`crate::tmpdir`]).
pub(super) fn scratch_dir() -> Result<crate::tmpdir::Scratch> {
    Ok(crate::tmpdir::create(crate::tmpdir::Kind::Rows)?)
}

impl Rollback {
    /// The database as it is now, as a fingerprint.
    pub(crate) fn db_fingerprint(&self) -> Result<DbFingerprint> {
        let db = self.migrator()?;
        Ok(DbFingerprint { hash: crate::rt::block_on(db.database().fingerprint())? })
    }

    /// The database's fingerprint right after a downgrade, for its undo; a warning (and
    /// `None`: the undo will then restore the snapshot exactly) when it cannot be read.
    pub(crate) fn fingerprint_after_downgrade(&self, ctx: &mut Ctx<'_>) -> Option<DbFingerprint> {
        self.fingerprint_after(ctx, "downgrade")
    }

    /// The database's fingerprint right after a step that changed it (`what`: `downgrade`,
    /// `restore`, `upgrade`, `put-back`), for the undo of its run; a warning (and `None`: that
    /// undo will then restore the snapshot exactly) when it cannot be read.
    pub(crate) fn fingerprint_after(&self, ctx: &mut Ctx<'_>, what: &str) -> Option<DbFingerprint> {
        match self.db_fingerprint() {
            Ok(f) => Some(f),
            Err(e) => {
                ctx.log(
                    LogLevel::Warn,
                    format!(
                        "could not record the database's state after the {what} ({}): its undo will restore the database snapshot exactly",
                        super::support::chain(&e)
                    ),
                );
                None
            }
        }
    }

    /// How an undo of `target` puts back the database its snapshot `rec` holds; refuses, before
    /// anything changes, when rows written since would be lost and `restore_snapshot` is not
    /// set.
    pub(crate) fn db_undo_mode(
        &self,
        target: &RunState,
        files: &Manifest,
        snapshot: &SnapshotId,
        rec: &DatabaseSnapshot,
        restore_snapshot: bool,
    ) -> Result<DbUndoMode> {
        if restore_snapshot {
            return Ok(DbUndoMode::Restore { keep_current: true, unchanged_since: None });
        }
        let is_undo = target.plan.kind == RunKind::Undo;
        let recorded = if is_undo {
            super::db_back::left_by_undo(target)
        } else {
            match target.detail_of("downgrade") {
                Some(StepDetail::Downgrade { db_after, .. }) => db_after.as_ref(),
                _ => None,
            }
        };
        // A downgrade that began and never completed (killed, or failed and not put back)
        // recorded no state to compare with. The database is then the snapshot's, or somewhere
        // between it and the target, plus whatever the app wrote since: restoring the snapshot
        // exactly would delete those writes. It goes the row-keeping way instead (an upgrade
        // from where the downgrade stopped, none when it stopped at the snapshot's revisions,
        // and the put-back), rehearsed first; what that cannot do faithfully is refused.
        // Only where a migration cut short changed nothing (atomic: the native migrator, anything
        // on PostgreSQL). Where it may have committed part of its work (Alembic on SQLite), what
        // it changed cannot be told: the snapshot is restored exactly, as before, and rows the
        // app wrote since stay in the undo's own database snapshot.
        let cut_short = !is_undo
            && recorded.is_none()
            && target.plan.downgrade_to().is_some()
            && target.detail_of("downgrade").is_none()
            && self.migrator()?.failed_migration_rolls_back_whole();
        let recorded = match recorded {
            Some(recorded) => Some(recorded),
            None if cut_short => None,
            None => return Ok(DbUndoMode::Restore { keep_current: false, unchanged_since: None }),
        };
        if let Some(recorded) = recorded
            && self.db_fingerprint()? == *recorded
        {
            // Nothing written since the run: its snapshot goes back exactly, provided nothing
            // is written before the restore either (checked under the restore's lock).
            return Ok(DbUndoMode::Restore { keep_current: false, unchanged_since: Some(recorded.clone()) });
        }
        let refuse = |what: String| {
            Error::refused(
                format!(
                    "the database changed since run {} and its undo cannot keep those writes: {what}",
                    target.run_id
                ),
                Some(crate::hint::hint![
                    "pass ",
                    crate::hint::Action::RestoreSnapshot,
                    format!(
                        " to dump the database as it is now into the state folder, then restore the snapshot {snapshot} as it was (the writes made since stay only in that dump)"
                    )
                ]),
            )
        };
        // The rows come back from the snapshot's dump: a damaged one is refused as the exact
        // restore's is, before it is read (its blob's own error names no backup and no way on).
        super::undo_checks::refuse_damaged_backup(self, snapshot, "the database's rows")?;
        let db = self.migrator()?;
        let Some(live) = db.url_database() else {
            return Err(refuse(format!("the `{}` migrator's database cannot be merged row by row", db.kind())));
        };
        // The undo of an undo that brought the schema forward goes down again.
        if is_undo && let Some(path) = self.path_down_to(&rec.revisions)? {
            return self.backward_mode(live, rec, path, &refuse);
        }
        // Where a downgrade cut short stopped: it dropped what the database lacks now (the
        // census tells), and deleted and changed rows only down to there (told by running it
        // that far on a copy), nothing at all when it stopped at the snapshot's revisions (a
        // migration that failed or was killed has its row writes rolled back).
        let stopped_at = if cut_short { Some(crate::rt::block_on(db.current())?) } else { None };
        let mut forecast: Vec<DataLoss> = match &stopped_at {
            Some(at) if super::full::same(at, &rec.revisions) => Vec::new(),
            Some(_) => target.data_loss_forecast().iter().filter(|l| l.kind != LossKind::Dropped).cloned().collect(),
            None => target.data_loss_forecast().to_vec(),
        };
        let store = self.store()?;
        let dir = scratch_dir()?;
        let file = dir.path().join("snapshot.dump");
        store.get_blob_to_file(&rec.blob, &file)?;
        // A run whose forecast could not be made has none to go by: what its downgrade deleted
        // and changed is measured here, by running it again on a copy of the snapshot. Without
        // it the undo would put back only the dropped tables and columns, and say the state is
        // back.
        let unmeasured = match &stopped_at {
            Some(at) if super::full::same(at, &rec.revisions) => None,
            Some(at) => Some(at.clone()),
            None => target.plan.downgrade_to().map(<[Revision]>::to_vec),
        };
        if let Some(to) = unmeasured.filter(|_| target.data_loss_unknown().is_some()) {
            forecast = self.measure_downgrade(files, rec, &file, &to, dir.path()).map_err(|e| {
                refuse(format!(
                    "its data-loss forecast could not be made, so what its downgrade deleted and changed is unknown, and measuring it on a copy of the snapshot failed: {}",
                    super::support::chain(&e)
                ))
            })?;
        }
        let (losses, obstacles) = crate::rt::block_on(async {
            let copy = live.scratch_from_dump(&file, &rec.dump, dir.path()).await?;
            let result = async {
                let (snap, now) = (rows::census(&copy.db).await?, rows::census(live).await?);
                let mut losses = rows::dropped(&snap, &now, &db.bookkeeping_tables());
                // The forecast also names tables the downgrade dropped that exist again now,
                // and the rows it deleted from tables that stay (counted by the forecast only).
                for l in &forecast {
                    if !losses.iter().any(|x| x.table == l.table && x.column == l.column && x.kind == l.kind) {
                        losses.push(l.clone());
                    }
                }
                let mut losses: Vec<DataLoss> = losses
                    .into_iter()
                    .filter_map(|l| {
                        let t = snap.tables.get(&l.table)?;
                        // Deleted and changed rows are counted by the forecast only.
                        let rows = match (&l.column, l.kind) {
                            (_, LossKind::Removed | LossKind::Changed) => l.rows,
                            (None, LossKind::Dropped) => t.rows,
                            (Some(c), LossKind::Dropped) => *t.columns.get(c)?,
                        };
                        (rows > 0).then_some(DataLoss { rows, ..l })
                    })
                    .collect();
                losses.sort_by(|a, b| (&a.table, &a.column, a.kind).cmp(&(&b.table, &b.column, b.kind)));
                let obstacles = rows::obstacles(live, &copy.db, &losses).await?;
                Ok::<_, crate::db::Error>((losses, obstacles))
            }
            .await;
            let discarded = copy.discard().await;
            let out = result?;
            discarded?;
            Ok::<_, crate::db::Error>(out)
        })
        .map_err(|e| refuse(format!("it could not be compared with the snapshot on a copy: {e}")))?;
        if !obstacles.is_empty() {
            return Err(refuse(obstacles.join("; ")));
        }
        // Rows the downgrade deleted from tables that stay, and values it changed in columns
        // that stay, are told by running it again.
        let deleted_at = if let Some(at) = stopped_at.filter(|_| rows::needs_marks(&losses)) {
            at
        } else if rows::needs_marks(&losses) {
            target.plan.downgrade_to().map(<[Revision]>::to_vec).ok_or_else(|| {
                refuse("the rows its downgrade deleted cannot be told: it has no downgrade step".into())
            })?
        } else {
            Vec::new()
        };
        let (upgrade_drops, counters) =
            self.rehearse_forward(files, rec, &file, &losses, &deleted_at, dir.path()).map_err(|e| {
                // A failed statement names the scratch copy, which is gone by now: its words only.
                let why = match &e {
                    Error::Db(crate::db::Error::Query { detail, .. }) => detail.clone(),
                    _ => super::support::chain(&e),
                };
                refuse(format!("rehearsed on a copy of the database, the undo fails: {why}"))
            })?;
        Ok(DbUndoMode::Forward { to: rec.revisions.clone(), losses, upgrade_drops, deleted_at, counters })
    }

    /// The undo's database steps, rehearsed on a copy of the database as it is now, with the
    /// migration files of the tree the undo puts back (commit and snapshot, written under
    /// `dir`): the upgrade, then the put-back from the snapshot copy (the rows the run's
    /// downgrade deleted told first, see [`mark_deleted`]). A conflict only the upgrade creates
    /// (seed rows under the same keys with other content) is found here, before anything
    /// changes. Returns what the upgrade itself drops of the database as it is now (values
    /// written while rolled back into columns the newer schema does not have), and the
    /// `AUTOINCREMENT` tables whose counter it leaves below the snapshot's.
    fn rehearse_forward(
        &self,
        files: &Manifest,
        rec: &DatabaseSnapshot,
        snapshot_file: &std::path::Path,
        losses: &[DataLoss],
        deleted_at: &[Revision],
        dir: &std::path::Path,
    ) -> Result<(Vec<DataLoss>, Vec<String>)> {
        let tree = dir.join("tree");
        self.materialize(files, &tree)?;
        let db = self.migrator()?;
        let live = db.url_database().ok_or_else(|| Error::refused("the database cannot be copied".to_owned(), None))?;
        let on = |copy: &crate::db::UrlDatabase| {
            db.on_database(copy.clone(), Some(&tree))
                .ok_or_else(|| crate::db::Error::Config(format!("the `{}` migrator cannot run on a copy", db.kind())))
        };
        Ok(crate::rt::block_on(async {
            let (now, snap) = live.scratch_now_and_dump(snapshot_file, &rec.dump, dir).await?;
            let result = async {
                let before = rows::census(&now.db).await?;
                on(&now.db)?.upgrade(&rec.revisions).await?;
                let after = rows::census(&now.db).await?;
                let counters = rows::counters_behind(&now.db, &snap.db).await?;
                let from = Dumped { live, file: snapshot_file, dump: &rec.dump, dir };
                mark_deleted(from, &on, &snap.db, (deleted_at, &rec.revisions), losses).await?;
                rows::put_back(&now.db, &snap.db, losses).await?;
                let drops: Vec<DataLoss> = rows::dropped(&before, &after, &db.bookkeeping_tables())
                    .into_iter()
                    .filter(|l| l.rows > 0)
                    .collect();
                Ok::<_, crate::db::Error>((drops, counters))
            }
            .await;
            let (a, b) = (now.discard().await, snap.discard().await);
            let out = result?;
            a?;
            b?;
            Ok::<_, crate::db::Error>(out)
        })?)
    }

    /// What the run's downgrade, to `to`, destroys of its snapshot (the dump `snapshot_file`):
    /// the forecast a run makes before it starts, made again on two copies of the snapshot (one
    /// taken down with the migration files of the tree the undo puts back, written under `dir`,
    /// compared with the other), for a run whose own forecast could not be made.
    fn measure_downgrade(
        &self,
        files: &Manifest,
        rec: &DatabaseSnapshot,
        snapshot_file: &std::path::Path,
        to: &[Revision],
        dir: &std::path::Path,
    ) -> Result<Vec<DataLoss>> {
        let tree = dir.join("measure-tree");
        self.materialize(files, &tree)?;
        let db = self.migrator()?;
        let live = db.url_database().ok_or_else(|| Error::refused("the database cannot be copied".to_owned(), None))?;
        Ok(crate::rt::block_on(async {
            let snap = live.scratch_from_dump(snapshot_file, &rec.dump, dir).await?;
            let down = match live.scratch_from_dump(snapshot_file, &rec.dump, dir).await {
                Ok(down) => down,
                Err(e) => {
                    let _ = snap.discard().await;
                    return Err(e);
                }
            };
            let result = async {
                let on = db.on_database(down.db.clone(), Some(&tree)).ok_or_else(|| {
                    crate::db::Error::Config(format!("the `{}` migrator cannot run on a copy", db.kind()))
                })?;
                let before = rows::census(&snap.db).await?;
                on.downgrade(to).await?;
                let _ = on.take_warnings();
                let after = rows::census(&down.db).await?;
                let skip = db.bookkeeping_tables();
                let mut losses = rows::dropped(&before, &after, &skip);
                losses.extend(rows::removed_and_changed(&snap.db, &down.db, &before, &after, &skip).await?);
                Ok::<_, crate::db::Error>(losses)
            }
            .await;
            let (a, b) = (snap.discard().await, down.discard().await);
            let out = result?;
            a?;
            b?;
            Ok::<_, crate::db::Error>(out)
        })?)
    }

    /// Writes the tree an undo puts back into `dir`: every file of commit `files.head`, then
    /// the files the snapshot holds (bytes, mode, symlinks, absences).
    fn materialize(&self, files: &Manifest, dir: &std::path::Path) -> Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let write = |path: &crate::paths::RepoPath, bytes: &[u8], mode: Option<u32>| -> Result<()> {
            let dest = path.to_fs(dir);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| IoError::new("create folder", parent, e))?;
            }
            let _ = std::fs::remove_file(&dest);
            std::fs::write(&dest, bytes).map_err(|e| IoError::new("write", &dest, e))?;
            if let Some(m) = mode {
                std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(m))
                    .map_err(|e| IoError::new("set the mode of", &dest, e))?;
            }
            Ok(())
        };
        for path in self.vcs.tracked_paths(&files.head)? {
            if let Some(bytes) = self.vcs.read_file_at(&files.head, &path)? {
                write(&path, &bytes, None)?;
            }
        }
        let store = self.store()?;
        for e in &files.entries {
            match &e.kind {
                EntryKind::File { blob, mode, .. } => write(&e.path, &store.get_blob(blob)?, Some(*mode))?,
                EntryKind::Symlink { target } => {
                    let dest = e.path.to_fs(dir);
                    if let Some(parent) = dest.parent() {
                        std::fs::create_dir_all(parent).map_err(|err| IoError::new("create folder", parent, err))?;
                    }
                    let _ = std::fs::remove_file(&dest);
                    std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(&target.0), &dest)
                        .map_err(|err| IoError::new("create symlink", &dest, err))?;
                }
                EntryKind::Absent => {
                    let _ = std::fs::remove_file(e.path.to_fs(dir));
                }
            }
        }
        Ok(())
    }

    /// `upgrade_database`: the schema forward to `to` with the work tree's (restored) files.
    pub(crate) fn step_upgrade_database(
        &self,
        ctx: &mut Ctx<'_>,
        to: &[Revision],
        drops: &[DataLoss],
    ) -> Result<StepDetail> {
        let db = self.migrator()?.clone();
        let from = crate::rt::block_on(db.current())?;
        if super::full::same(&from, to) {
            ctx.log(LogLevel::Info, format!("Database already at {}", show_revisions(to)));
            let db_after = self.fingerprint_after(ctx, "upgrade");
            return Ok(StepDetail::UpgradeDatabase { from: from.clone(), to: from, already: true, db_after });
        }
        ctx.log(
            LogLevel::Info,
            format!(
                "Upgrading database {} from {} to {} (it changed since the run: its rows stay)...",
                db.database().describe(),
                show_revisions(&from),
                show_revisions(to)
            ),
        );
        if !drops.is_empty() {
            ctx.log(
                LogLevel::Warn,
                format!(
                    "the upgrade removes {} of the rolled-back schema: renamed by it, or dropped with whatever the app wrote there while rolled back (kept in this undo's database snapshot)",
                    rows::describe(drops)
                ),
            );
        }
        let upgraded = crate::rt::block_on(db.upgrade(to));
        for w in db.take_warnings() {
            ctx.log(LogLevel::Warn, w);
        }
        upgraded?;
        let now = crate::rt::block_on(db.current())?;
        ctx.log(LogLevel::Success, format!("Database at {}", show_revisions(&now)));
        let db_after = self.fingerprint_after(ctx, "upgrade");
        Ok(StepDetail::UpgradeDatabase { from, to: now, already: false, db_after })
    }

    /// `put_back_rows`: what the downgrade dropped (or deleted from tables that stay), back
    /// from the run's database snapshot, with the `AUTOINCREMENT` counters below the
    /// snapshot's (`counters`: those the plan knew of; every one is moved).
    pub(crate) fn step_put_back_rows(
        &self,
        ctx: &mut Ctx<'_>,
        ex: &Exec<'_>,
        snapshot: &SnapshotId,
        (losses, counters): (&[DataLoss], &[String]),
        deleted_at: &[Revision],
    ) -> Result<StepDetail> {
        let db = self.migrator()?.clone();
        let live = db.url_database().ok_or_else(|| {
            Error::refused(format!("the `{}` migrator's database cannot be merged row by row", db.kind()), None)
        })?;
        let manifest = self.store()?.manifest(snapshot)?;
        let Some(rec) = &manifest.database else {
            return Err(Error::refused(format!("backup {snapshot} holds no database dump"), None));
        };
        let what = rows::with_counters((!losses.is_empty()).then(|| rows::describe(losses)), counters);
        ctx.log(LogLevel::Info, format!("Putting back {what} from backup {snapshot}..."));
        let dir = scratch_dir()?;
        let file = dir.path().join("snapshot.dump");
        self.store()?.get_blob_to_file(&rec.blob, &file)?;
        let stats = crate::rt::block_on(async {
            let copy = live.scratch_from_dump(&file, &rec.dump, dir.path()).await?;
            // The migration files are the run's again: the downgrade runs as it did.
            let on = |c: &crate::db::UrlDatabase| {
                db.on_database(c.clone(), None).ok_or_else(|| {
                    crate::db::Error::Config(format!("the `{}` migrator cannot run on a copy", db.kind()))
                })
            };
            let result = async {
                let from = Dumped { live, file: &file, dump: &rec.dump, dir: dir.path() };
                mark_deleted(from, &on, &copy.db, (deleted_at, &rec.revisions), losses).await?;
                rows::put_back(live, &copy.db, losses).await
            }
            .await;
            let discarded = copy.discard().await;
            let stats = result?;
            discarded?;
            Ok::<_, crate::db::Error>(stats)
        })
        .map_err(|e| {
            // One transaction: nothing was put back. The upgrade stays; the way on is to undo
            // this undo, then restore the snapshot explicitly.
            let undone = ex.plan.undo_of.as_deref().unwrap_or("RUN");
            Error::Service {
                message: format!("nothing was put back: {e}"),
                hint: Some(crate::hint::hint![
                    crate::hint::Action::undo(&ex.run_id),
                    " returns to the state before this undo (the rows written since included); then ",
                    crate::hint::Action::undo(undone),
                    " with ",
                    crate::hint::Action::RestoreSnapshot,
                    " restores the snapshot after keeping the database in a file"
                ]),
            }
        })?;
        ctx.log(
            LogLevel::Success,
            format!(
                "{} row(s) put back ({} there already), {} column value(s) written back{}",
                stats.rows_inserted,
                stats.rows_present,
                stats.values_set,
                rows::counters_moved(&stats.counters_raised)
            ),
        );
        if !stats.values_left.is_empty() {
            ctx.log(
                LogLevel::Warn,
                format!(
                    "NOT written back: {}: the value there now is not the one the downgrade and this undo's upgrade leave (the app changed it while rolled back, or deleted its row); the values from before the run are in backup {snapshot}",
                    rows::describe(&stats.values_left)
                ),
            );
        }
        Ok(StepDetail::PutBackRows {
            snapshot: snapshot.clone(),
            rows_inserted: stats.rows_inserted,
            rows_present: stats.rows_present,
            values_set: stats.values_set,
            values_left: stats.values_left,
            counters_raised: stats.counters_raised,
            db_after: self.fingerprint_after(ctx, "put-back"),
        })
    }

    /// `--restore-snapshot`: the database as it is now (this undo's own `db_snapshot`) written
    /// to a file in the state folder, before the restore; returns where.
    pub(crate) fn keep_current_database(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>) -> Result<PathBuf> {
        let own = self
            .own_db_snapshot(ex)?
            .ok_or_else(|| Error::refused(format!("run {} has no database snapshot to keep", ex.run_id), None))?;
        let manifest = self.store()?.manifest(&own)?;
        let Some(rec) = &manifest.database else {
            return Err(Error::refused(format!("backup {own} holds no database dump"), None));
        };
        let dir = self.state.root().join("dumps");
        fsutil::create_private_dir(&dir)?;
        let ext = if rec.dump.format == crate::db::database::FORMAT_SQLITE { "db" } else { "dump" };
        let dest = dir.join(format!("{}-before-restore.{ext}", ex.run_id));
        self.store()?.get_blob_to_file(&rec.blob, &dest)?;
        ctx.log(
            LogLevel::Warn,
            format!(
                "the database as it was before this restore (with the writes made since the run) is kept in {} ({}; also backup {own})",
                dest.display(),
                if ext == "db" { "a SQLite file" } else { "a `pg_dump -Fc` archive for pg_restore" }
            ),
        );
        Ok(dest)
    }
}

/// A database snapshot on disk, and where to make scratch copies of it.
struct Dumped<'a> {
    /// The live database (its engine and settings).
    live: &'a crate::db::UrlDatabase,
    /// The dump.
    file: &'a std::path::Path,
    dump: &'a crate::db::DbDump,
    /// Where SQLite copies go.
    dir: &'a std::path::Path,
}

/// Tells, in the snapshot copy `snap`, the rows the run's downgrade deleted from tables that
/// stay and the values it changed in columns that stay (`Removed` and `Changed` losses; see
/// `rows::mark_downgraded` and `rows::mark_round_trip`): that downgrade, to `deleted_at`,
/// runs again with `on`'s migrator on one more copy of the snapshot `from`, and for changed
/// values the upgrade the undo runs, to `up_to`, after it; the copy is discarded after.
/// Nothing to do when `losses` has none.
async fn mark_deleted(
    from: Dumped<'_>,
    on: &(dyn Fn(&crate::db::UrlDatabase) -> crate::db::Result<std::sync::Arc<dyn crate::db::DbMigrator>> + Sync),
    snap: &crate::db::UrlDatabase,
    (deleted_at, up_to): (&[Revision], &[Revision]),
    losses: &[DataLoss],
) -> crate::db::Result<()> {
    if !rows::needs_marks(losses) {
        return Ok(());
    }
    let down = from.live.scratch_from_dump(from.file, from.dump, from.dir).await?;
    let result = async {
        on(&down.db)?.downgrade(deleted_at).await?;
        rows::mark_downgraded(snap, &down.db, losses).await?;
        if losses.iter().any(|l| l.kind == crate::model::LossKind::Changed) {
            on(&down.db)?.upgrade(up_to).await?;
            rows::mark_round_trip(snap, &down.db, losses).await?;
        }
        Ok(())
    }
    .await;
    let discarded = down.discard().await;
    result?;
    discarded
}
