//! `snapshot`: capture everything later steps change or delete, plus the index; verify it;
//! pin HEAD with a ref.

use crate::backup::statcache::{FileStat, IndexRecord, StatCache};
use crate::backup::{
    self, BackupStore, IndexSnapshot, Manifest, Origin, PutStats, SharedIndex, SnapshotId, StagedObject,
};
use crate::detail::StepDetail;
use crate::engine::support::pin_ref;
use crate::engine::{Ctx, Exec, Rollback, planner};
use crate::error::{Error, Result};
use crate::event::{LogLevel, ProgressUnit};
use crate::failpoint;
use crate::fsutil;
use crate::paths::RepoPath;
use crate::time::Timestamp;

impl Rollback {
    /// Removes the `<ref>.lock` file of one of the run's own refs (`refs/forge-rollback/...`)
    /// that a run killed while it wrote the ref left behind: git and libgit2 refuse to write
    /// the ref for as long as the file is there, so the run could never be resumed. Such a
    /// lock is stale: only forge-rollback writes these refs, and a run writes its own under the
    /// run lock, which this process holds.
    fn clear_stale_ref_lock(&self, ctx: &mut Ctx<'_>, name: &str) -> Result<()> {
        if !name.starts_with("refs/forge-rollback/") {
            return Ok(());
        }
        let lock = self.vcs.git_dir().join(format!("{name}.lock"));
        match std::fs::remove_file(&lock) {
            Ok(()) => {
                ctx.log(
                    LogLevel::Info,
                    format!("removed `{}`, left by a run killed while it wrote that ref", lock.display()),
                );
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(fsutil::IoError::new("remove the stale ref lock", &lock, e).into()),
        }
    }

    pub(crate) fn step_snapshot(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>) -> Result<StepDetail> {
        ctx.log(LogLevel::Info, "Creating backup of current state...");
        let head = self.vcs.head()?;
        if head.commit != ex.plan.from.commit {
            return Err(Error::refused(
                format!(
                    "HEAD is at {}, not at {} where the run started",
                    head.commit.short(),
                    ex.plan.from.commit.short()
                ),
                None,
            ));
        }
        let store = self.store()?;
        let workdir = self.workdir();
        let captures = if ex.fresh_plan {
            ex.plan.captures().to_vec()
        } else {
            // A resume scans again; the env files a full plan (or an undo) captures are not in
            // `git status` (they are ignored), so they come from the plan.
            let status = self.vcs.status(true)?;
            let env: Vec<RepoPath> =
                ex.plan.captures().iter().filter(|c| c.origin == Origin::Env).map(|c| c.path.clone()).collect();
            planner::with_env_files(
                planner::captures(workdir, &self.config, &status, Self::reset_changes(ex.plan)),
                &env,
            )
        };
        let mut paths: Vec<(RepoPath, Origin)> = captures.into_iter().map(|c| (c.path, c.origin)).collect();
        paths.extend(self.checkout_captures(&head.commit, Self::reset_changes(ex.plan), &paths)?);
        let total = paths.len() as u64;
        // Before anything changes: whose what the reset will write where nothing stays is.
        let landing = self.landing_owners(Self::reset_changes(ex.plan));
        // Read before the first `stat`: its moment bounds what the next snapshot may reuse.
        let mut cache = StatCache::load(&self.stat_cache_path(), workdir);
        let backup::snapshot::Captured { entries, mut folders, mut stats } =
            backup::snapshot::capture_all(store.as_ref(), workdir, &paths, Some(&mut cache), &mut |done| {
                ctx.progress(&ex.run_id, "snapshot", ProgressUnit::Files, done, Some(total));
            })?;
        // The folders of the files the reset rewrites or deletes: git removes a folder it
        // empties, and an undo's reset makes it again with the default mode.
        let rewritten: Vec<&RepoPath> = Self::reset_changes(ex.plan)
            .iter()
            .filter(|c| c.kind != crate::vcs::ChangeKind::Added)
            .map(|c| &c.path)
            .collect();
        backup::snapshot::add_folders_above(workdir, &rewritten, &mut folders)?;
        let (index, index_stats) = self.capture_index(store.as_ref(), Some((&mut cache, &head.commit)))?;
        stats.blobs += index_stats.blobs;
        stats.new_blobs += index_stats.new_blobs;
        stats.new_bytes += index_stats.new_bytes;
        let hard_links = backup::snapshot::hard_link_groups(workdir, &entries);
        failpoint::hit("inside:snapshot")?;
        let manifest = Manifest {
            format: 1,
            id: SnapshotId::generate(),
            created_at: Timestamp::now(),
            run_id: Some(ex.run_id.clone()),
            workdir: workdir.to_path_buf(),
            head: head.commit.clone(),
            branch: head.branch.clone(),
            entries,
            index,
            label: None,
            database: None,
            hard_links,
            landing,
            folders,
        };
        let report = crate::engine::support::put_verified_cached(store.as_ref(), &manifest, &mut cache)?;
        self.save_stat_cache(&cache, store.as_ref());
        self.clear_stale_ref_lock(ctx, &pin_ref(&ex.run_id))?;
        self.vcs.set_ref(&pin_ref(&ex.run_id), &head.commit, "forge-rollback: keep the pre-rollback commit")?;
        ctx.log(
            LogLevel::Success,
            format!(
                "Backup {} created and verified: {} path(s), {} byte(s), {} new byte(s) stored",
                manifest.id,
                manifest.entries.len(),
                manifest.content_bytes(),
                stats.new_bytes
            ),
        );
        let detail = StepDetail::Snapshot {
            snapshot: manifest.id.clone(),
            entries: manifest.entries.len(),
            bytes: manifest.content_bytes(),
            new_blobs: stats.new_blobs as u64,
            new_bytes: stats.new_bytes,
            verified_blobs: report.blobs as u64,
        };
        ex.manifest = Some(manifest);
        ex.captured = Some(cache);
        Ok(detail)
    }

    /// Clean tracked files the reset rewrites or deletes, when a checkout may convert bytes
    /// ([`crate::vcs::VcsBackend::checkout_converts`]): captured too, so `undo` gives back
    /// their exact bytes rather than what a checkout with today's settings writes (a file
    /// checked out before `core.autocrlf` was turned on would come back with CRLF). Without
    /// conversion, git writes them back byte for byte and they are not captured.
    ///
    /// Likewise under `core.fileMode=false`: git then ignores the executable bit, so a file
    /// whose bit was changed by hand (`chmod -x deploy.sh`) is clean to it, and a checkout
    /// writes the bit the commit records.
    pub(crate) fn checkout_captures(
        &self,
        head: &crate::vcs::CommitId,
        changes: &[crate::vcs::Change],
        already: &[(RepoPath, Origin)],
    ) -> Result<Vec<(RepoPath, Origin)>> {
        let rewritten: Vec<&RepoPath> = changes
            .iter()
            .filter(|c| c.kind != crate::vcs::ChangeKind::Added && !already.iter().any(|(p, _)| p == &c.path))
            .map(|c| &c.path)
            .collect();
        let mode_ignored = || -> Result<bool> {
            Ok(self
                .vcs
                .config_value("core.fileMode")?
                .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "false" | "no" | "off" | "0")))
        };
        if rewritten.is_empty() || !(self.vcs.checkout_converts(head, &rewritten)? || mode_ignored()?) {
            return Ok(Vec::new());
        }
        Ok(rewritten
            .into_iter()
            .filter(|p| std::fs::symlink_metadata(p.to_fs(self.workdir())).is_ok_and(|m| m.is_file()))
            .map(|p| (p.clone(), Origin::Tracked))
            .collect())
    }

    /// The index file and the staged objects it names, into `store` (`None`: no index).
    ///
    /// With a stat cache and HEAD's commit: when the index file keeps the stat of a reusable
    /// cache entry taken with the same HEAD, and the store still holds its blobs, what was
    /// taken then is taken again without reading the index or asking git for the staged
    /// objects. Otherwise the index is read; when its content is the cached one (same hash,
    /// same HEAD) the staged objects are the cached ones, without asking git. The index is
    /// recorded in the cache either way.
    ///
    /// A split index (`core.splitIndex`) is only half of the index: the shared index file it
    /// names is captured with it, so that an undo can give it back once git has deleted it.
    pub(crate) fn capture_index(
        &self,
        store: &dyn BackupStore,
        mut cache: Option<(&mut StatCache, &crate::vcs::CommitId)>,
    ) -> Result<(Option<IndexSnapshot>, PutStats)> {
        use std::io::Read as _;
        let mut stats = PutStats::default();
        let index_path = self.vcs.index_path();
        let mut file = match std::fs::File::open(&index_path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((None, stats)),
            Err(e) => return Err(fsutil::IoError::new("read", &index_path, e).into()),
        };
        let stat = FileStat::of(&file.metadata().map_err(|e| fsutil::IoError::new("read", &index_path, e))?);
        if let Some((c, head)) = cache.as_mut()
            && let Some(known) = c.index(&stat, head)
            && store.blob_stat(&known.blob)?.is_some_and(|b| b.size == stat.size)
            && known.staged.iter().try_fold(true, |all, s| Ok::<_, Error>(all && store.has_blob(&s.blob)?))?
            && known.shared.as_ref().map_or(Ok(true), |s| store.has_blob(&s.blob))?
        {
            let known = known.clone();
            stats.blobs += 1;
            c.record_index(IndexRecord { stat, head: (*head).clone(), snapshot: known.clone() });
            return Ok((Some(known), stats));
        }
        let mut bytes = Vec::with_capacity(usize::try_from(stat.size).unwrap_or(0));
        file.read_to_end(&mut bytes).map_err(|e| fsutil::IoError::new("read", &index_path, e))?;
        drop(file);
        let (blob, new) = store.put_blob(&bytes)?;
        stats.blobs += 1;
        if new {
            stats.new_blobs += 1;
            stats.new_bytes += bytes.len() as u64;
        }
        let shared = self.capture_shared_index(store, &index_path, &bytes, &mut stats)?;
        // The same content with the same HEAD: the same staged objects, without asking git.
        if let Some((c, head)) = cache.as_mut()
            && let Some(known) = c.index_with_content(&blob, head)
            && known.shared == shared
            && known.staged.iter().try_fold(true, |all, s| Ok::<_, Error>(all && store.has_blob(&s.blob)?))?
        {
            let known = known.clone();
            c.record_index(IndexRecord { stat, head: (*head).clone(), snapshot: known.clone() });
            return Ok((Some(known), stats));
        }
        let mut staged = Vec::new();
        for s in self.vcs.staged_blobs()? {
            let (b, new) = store.put_blob(&s.content)?;
            if new {
                stats.new_blobs += 1;
                stats.new_bytes += s.content.len() as u64;
            }
            staged.push(StagedObject { path: s.path, oid: s.oid, blob: b });
        }
        let snapshot = IndexSnapshot { blob, staged, shared };
        if let Some((c, head)) = cache {
            c.record_index(IndexRecord { stat, head: head.clone(), snapshot: snapshot.clone() });
        }
        Ok((Some(snapshot), stats))
    }

    /// The shared index file the split index `bytes` (read from `index_path`) names, into
    /// `store`; `None` when the index is not split. One that is missing already (git cannot
    /// read this index either) is not captured: the undo then refuses, unless it is back.
    fn capture_shared_index(
        &self,
        store: &dyn BackupStore,
        index_path: &std::path::Path,
        bytes: &[u8],
        stats: &mut PutStats,
    ) -> Result<Option<SharedIndex>> {
        let Some(name) = crate::vcs::index_scan::shared_index_name(bytes) else { return Ok(None) };
        let path = index_path.with_file_name(&name);
        let content = match std::fs::read(&path) {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(fsutil::IoError::new("read", &path, e).into()),
        };
        let (blob, new) = store.put_blob(&content)?;
        stats.blobs += 1;
        if new {
            stats.new_blobs += 1;
            stats.new_bytes += content.len() as u64;
        }
        Ok(Some(SharedIndex { name, blob }))
    }
}
