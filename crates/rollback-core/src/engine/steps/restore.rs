//! `restore_files` and `restore_index` (undo): write back what a snapshot recorded.

use crate::backup::{self, EntryKind, ManifestEntry, Origin, SnapshotId};
use crate::detail::StepDetail;
use crate::engine::{Ctx, Exec, Rollback};
use crate::error::{Error, Result};
use crate::event::LogLevel;
use crate::fsutil;

impl Rollback {
    pub(crate) fn step_restore_files(
        &self,
        ctx: &mut Ctx<'_>,
        ex: &mut Exec<'_>,
        snapshot: &SnapshotId,
    ) -> Result<StepDetail> {
        ctx.log(LogLevel::Info, format!("Restoring files from backup {snapshot}..."));
        let store = self.store()?;
        let m = store.manifest(snapshot)?;
        self.warn_env_edited_since(ctx, ex, &m);
        let workdir = self.workdir();
        // An untracked file the run left in place because it changed after the snapshot (a
        // log a process appends to), or that was written again since: what is on disk now is
        // its latest content, and it stays; the content from before the run stays in the
        // backup. A path whose parent is a symlink now (one the run's reset put back where a
        // folder was) is not that file changed since: it is not in the tree at all, whatever
        // the link leads to, and is never looked at through the link; the restore puts the
        // folder and the file back in the link's place.
        let (newer, entries): (Vec<ManifestEntry>, Vec<ManifestEntry>) = m.entries.iter().cloned().partition(|e| {
            matches!(e.origin, Origin::Untracked | Origin::Ignored)
                && e.kind != EntryKind::Absent
                && backup::snapshot::lstat_in_tree(workdir, &e.path).is_some_and(|md| !md.is_dir())
                && !backup::snapshot::still_as_captured(&e.path.to_fs(workdir), &e.kind)
        });
        for e in &newer {
            ctx.log(
                LogLevel::Warn,
                format!(
                    "kept `{}` as it is now: it changed after backup {snapshot}, which still holds the content from before the run",
                    e.path
                ),
            );
        }
        // An earlier attempt of this step, killed between making a temp file and renaming it
        // over its path, left that temp file in the tree.
        if crate::engine::recapture::earlier_attempt_began(ex, "restore_files")? {
            let strays = backup::snapshot::remove_stray_temps(workdir, &entries)?;
            if strays > 0 {
                ctx.log(
                    LogLevel::Info,
                    format!("Removed {strays} temp file(s) an earlier attempt of this restore left"),
                );
            }
        }
        let mut stats = backup::snapshot::restore(store.as_ref(), workdir, &entries)?;
        let linked = backup::snapshot::relink(workdir, &entries, &m.hard_links)?;
        if linked > 0 {
            ctx.log(LogLevel::Info, format!("Re-made {linked} hard link(s) between restored files"));
        }
        // Last: empty folders the run removed, and each folder's mode (a read-only folder is
        // set once its files are in and linked).
        let folders = backup::snapshot::restore_folders(workdir, &m.folders)?;
        stats.folders_made = folders.made;
        stats.folder_modes = folders.modes;
        stats.owners_refused += folders.owners_refused;
        stats.xattrs_refused.extend(folders.xattrs_refused);
        if folders.modes_refused > 0 {
            ctx.log(
                LogLevel::Warn,
                format!(
                    "{} folder(s) keep the mode they have now: they belong to another user, and only their owner or root can give back the mode recorded in backup {snapshot}",
                    folders.modes_refused
                ),
            );
        }
        if stats.owners_refused > 0 {
            ctx.log(LogLevel::Warn, backup::chown::refused_warning(stats.owners_refused));
        }
        if !stats.xattrs_refused.is_empty() {
            ctx.log(LogLevel::Warn, backup::xattr::not_given_back_warning(snapshot.as_str(), &stats.xattrs_refused));
        }
        // The registry and the config as they are now, not as they were before the run: a
        // `known-good bad` mark made since (by an operator or `watch`) must survive the undo.
        let own = self.own_manifest(ex)?;
        self.keep_tool_files(ctx, &own)?;
        Ok(StepDetail::RestoreFiles(stats))
    }

    pub(crate) fn step_restore_index(&self, ctx: &mut Ctx<'_>, snapshot: &SnapshotId) -> Result<StepDetail> {
        let store = self.store()?;
        let m = store.manifest(snapshot)?;
        let Some(index) = &m.index else {
            self.record_restored(&m);
            return Ok(StepDetail::RestoreIndex { restored: false, objects_written: None });
        };
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
        let index_path = self.vcs.index_path();
        // A split index names its shared index file: git may have deleted that one since (it
        // expires two weeks after a newer one is written), and cannot read the index without.
        // The file is named by its content's hash, so one there with other content is damaged
        // (truncated by a full disk, overwritten): the backup's is given back over it.
        if let Some(name) = crate::vcs::index_scan::shared_index_name(&bytes) {
            let path = index_path.with_file_name(&name);
            let present = std::fs::symlink_metadata(&path).is_ok();
            match index.shared.as_ref().filter(|s| s.name == name) {
                Some(shared) => {
                    let content = store.get_blob(&shared.blob)?;
                    if !present || std::fs::read(&path).ok().as_deref() != Some(content.as_slice()) {
                        fsutil::atomic_write_mode(&path, &content, 0o644)?;
                        let why = if present { "was damaged" } else { "was gone" };
                        ctx.log(
                            LogLevel::Info,
                            format!("Gave back the shared index `{name}` the split index needs (it {why})"),
                        );
                    }
                }
                None if !present => {
                    return Err(missing_shared_index(snapshot, &name, "the index was not written back"));
                }
                None => {}
            }
        }
        fsutil::atomic_write_mode(&index_path, &bytes, 0o644)?;
        // Read back by git (with `git-cli`; libgit2 ignores a split index's link): an index it
        // cannot read would leave every git command failing. The index is written: a failed
        // step, not a refusal.
        if let Err(e) = self.vcs.staged_blobs() {
            let hint = "the undo's own backup holds the index from before it: undo this undo to go back; or `rm .git/index && git reset` makes a readable index from HEAD, without the staged changes";
            return Err(Error::Service {
                message: format!("git cannot read the index restored from backup {snapshot}: {e}"),
                hint: Some(hint.into()),
            });
        }
        self.record_restored(&m);
        Ok(StepDetail::RestoreIndex { restored: true, objects_written: Some(written) })
    }
}

/// The undo of a split index whose shared index file `name` is gone from the repository and
/// not in backup `snapshot` (one taken before forge-rollback captured shared indexes); `then`
/// says what was done about it.
pub(crate) fn missing_shared_index(snapshot: &SnapshotId, name: &str, then: &str) -> Error {
    Error::refused(
        format!(
            "the index in backup {snapshot} is a split index (`core.splitIndex`) whose shared index `{name}` is gone (git deletes an old one once a newer one is two weeks old) and not in the backup: git could not read that index; {then}"
        ),
        Some(
            format!(
                "put `{name}` back in the git folder from a copy of the repository (a file-system snapshot, a backup of the server), then undo again"
            )
            .into(),
        ),
    )
}

impl Rollback {
    /// Refuses the undo from `manifest` before anything changes when its index is a split
    /// index whose shared index file is neither in the repository nor in the backup.
    pub(crate) fn refuse_missing_shared_index(&self, manifest: &crate::backup::Manifest) -> Result<()> {
        let Some(index) = &manifest.index else { return Ok(()) };
        if index.shared.is_some() {
            // Captured with it: the damaged-backup check covers its blob.
            return Ok(());
        }
        // A blob that cannot be read is the damaged-backup refusal's to name (with its way on),
        // under the lock: not this check's raw "corrupt" error.
        let Ok(bytes) = self.store()?.get_blob(&index.blob) else { return Ok(()) };
        match crate::vcs::index_scan::shared_index_name(&bytes) {
            Some(name) if std::fs::symlink_metadata(self.vcs.index_path().with_file_name(&name)).is_err() => {
                Err(missing_shared_index(&manifest.id, &name, "nothing was changed"))
            }
            _ => Ok(()),
        }
    }
}
