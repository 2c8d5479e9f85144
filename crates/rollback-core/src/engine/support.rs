//! Small pieces every part of the engine uses: run ids, the run's log, error chains.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};
use crate::event::{Event, LogLevel, Observer, ProgressUnit};
use crate::fsutil::IoContext;
use crate::hint::{Frontend, Hint};
use crate::time::Timestamp;

/// The ref that keeps a run's starting commit reachable.
pub fn pin_ref(run_id: &str) -> String {
    format!("refs/forge-rollback/runs/{run_id}/from")
}

pub(crate) fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

pub(crate) fn new_run_id() -> String {
    format!("{}-{}", Timestamp::now().compact(), crate::state::random_hex(6))
}

pub(crate) fn valid_run_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

pub(crate) fn chain(e: &Error) -> String {
    e.chain()
}

/// Logging for one run: observer plus the run's `run.log`.
pub(crate) struct Ctx<'a> {
    pub(crate) observer: &'a dyn Observer,
    pub(crate) log: Option<File>,
    pub(crate) warnings: Vec<String>,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(observer: &'a dyn Observer) -> Self {
        Self { observer, log: None, warnings: Vec::new() }
    }

    pub(crate) fn open_log(&mut self, path: &Path) -> Result<()> {
        let f = OpenOptions::new().create(true).append(true).mode(0o600).open(path).at("open log", path)?;
        self.log = Some(f);
        Ok(())
    }

    /// Progress of long work inside `step` of run `run_id` (not written to `run.log`).
    pub(crate) fn progress(&self, run_id: &str, step: &str, unit: ProgressUnit, done: u64, total: Option<u64>) {
        self.observer.event(&Event::Progress { run_id: run_id.to_owned(), step: step.to_owned(), unit, done, total });
    }

    pub(crate) fn log(&mut self, level: LogLevel, message: impl Into<String>) {
        self.log_hint(level, message, None);
    }

    /// A log line with what to do about it, which each front-end renders in its words.
    /// `run.log` and the run's warnings (read by operators, in reports) get the CLI's.
    pub(crate) fn log_hint(&mut self, level: LogLevel, message: impl Into<String>, hint: Option<Hint>) {
        let event = Event::Log { at: Timestamp::now(), level, message: message.into(), hint };
        if let (Some(f), Some(line)) = (self.log.as_mut(), event.log_line()) {
            let _ = writeln!(f, "{line}");
        }
        if level == LogLevel::Warn
            && let Some(text) = event.text(Frontend::Cli)
        {
            self.warnings.push(text);
        }
        self.observer.event(&event);
    }
}

/// This work tree's identity in its repository: its git folder relative to the repository's
/// (`""` for the main work tree, `worktrees/NAME` for a linked one). Stable when the
/// repository moves, unlike the work tree's path.
pub(crate) fn worktree_id(vcs: &dyn crate::vcs::VcsBackend) -> String {
    let index = vcs.index_path();
    let own = index.parent().unwrap_or(vcs.git_dir());
    own.strip_prefix(vcs.git_dir()).map_or_else(|_| own.display().to_string(), |p| p.display().to_string())
}

/// A work tree identity for people.
fn show_worktree(id: &str) -> String {
    match id.strip_prefix("worktrees/") {
        None if id.is_empty() => "the main work tree".to_owned(),
        Some(name) => format!("linked work tree `{name}`"),
        None => format!("the work tree of git folder `{id}`"),
    }
}

/// Refuses to undo or resume `run` from another work tree than the one it ran in: the run's
/// snapshot and plan describe its own tree, and an undo elsewhere would write that tree's
/// files (its secrets too) here and mark the run undone. Linked work trees share the state
/// folder, and so do clones (or unrelated repositories) whose configs name the same one.
///
/// A run is this work tree's when its work-tree id ([`worktree_id`]) is this one's and its
/// repository ([`crate::journal::RunState::git_dir`]) is this one: the same git folder, or,
/// when the folder it recorded is gone, this repository holds the run's pin ref (the
/// repository was moved, `mv`, since the run: the ref is written where the run ran and a
/// clone never fetches it). A run journaled before the git folder was recorded is checked
/// by its work-tree id only.
pub(crate) fn refuse_other_worktree(
    vcs: &dyn crate::vcs::VcsBackend,
    run: &crate::journal::RunState,
    action: &str,
) -> Result<()> {
    let run_id = run.run_id.as_str();
    if let Some(recorded) = run.worktree.as_deref() {
        let here = worktree_id(vcs);
        if here != recorded {
            return Err(Error::refused(
                format!("run {run_id} ran in {}; this is {}", show_worktree(recorded), show_worktree(&here)),
                Some(
                    format!("{action} it from the work tree it ran in (`git worktree list` shows where each one is)")
                        .into(),
                ),
            ));
        }
    }
    if ran_in_this_repository(vcs, run) {
        return Ok(());
    }
    let recorded = run.git_dir.as_deref().unwrap_or(Path::new("?"));
    Err(Error::refused(
        format!(
            "run {run_id} ran in another work tree: `{}` (git folder `{}`); this is `{}` (git folder `{}`); nothing was changed",
            run.plan.workdir.display(),
            recorded.display(),
            vcs.workdir().display(),
            vcs.git_dir().display()
        ),
        Some(
            format!(
                "{action} it from the work tree it ran in (`runs list` shows where each run ran); the two share the state folder `state.dir` names"
            )
            .into(),
        ),
    ))
}

/// Whether `run` ran in this repository ([`refuse_other_worktree`]); `true` for a run
/// journaled before its git folder was recorded.
pub(crate) fn ran_in_this_repository(vcs: &dyn crate::vcs::VcsBackend, run: &crate::journal::RunState) -> bool {
    let Some(recorded) = run.git_dir.as_deref() else { return true };
    let here = vcs.git_dir();
    if recorded == here {
        return true;
    }
    match recorded.canonicalize() {
        // The same folder by another path (a symlink), or another repository.
        Ok(now) => now == here,
        // Gone: moved here, if this repository holds the run's pin ref.
        Err(_) => vcs.read_ref(&pin_ref(&run.run_id)).ok().flatten().is_some(),
    }
}

/// Whether `run` ran in this work tree: what `undo` and `resume` ask ([`refuse_other_worktree`]).
pub(crate) fn ran_here(vcs: &dyn crate::vcs::VcsBackend, run: &crate::journal::RunState) -> bool {
    run.worktree.as_deref().is_none_or(|w| w == worktree_id(vcs)) && ran_in_this_repository(vcs, run)
}

/// Stores a new backup's manifest and reads the backup back: a backup that fails its own
/// verification is refused before anything relies on it.
/// Returns the verification report.
pub(crate) fn put_verified(
    store: &dyn crate::backup::BackupStore,
    manifest: &crate::backup::Manifest,
) -> Result<crate::backup::VerifyReport> {
    store.put_manifest(manifest)?;
    refuse_unless_verified(store, manifest)
}

/// Re-hashes every blob of `manifest` (written already); a problem refuses the run.
fn refuse_unless_verified(
    store: &dyn crate::backup::BackupStore,
    manifest: &crate::backup::Manifest,
) -> Result<crate::backup::VerifyReport> {
    let report = store.verify(Some(std::slice::from_ref(&manifest.id)))?;
    if !report.problems.is_empty() {
        return Err(Error::refused(
            format!("the new backup {} failed verification: {}", manifest.id, report.problems.join("; ")),
            None,
        ));
    }
    Ok(report)
}

/// [`put_verified`] with a stat cache: a blob whose store file keeps the stat it had when an
/// earlier snapshot (or undo) hashed it and found it right is not hashed again (blob files are
/// written once, under their hash, and never changed), nor is one this snapshot wrote from
/// content it hashed while writing (same stat as then); every other blob is re-hashed. Each
/// blob found right is recorded in `cache`. `backups verify` still re-hashes everything.
pub(crate) fn put_verified_cached(
    store: &dyn crate::backup::BackupStore,
    manifest: &crate::backup::Manifest,
    cache: &mut crate::backup::statcache::StatCache,
) -> Result<crate::backup::VerifyReport> {
    store.put_manifest(manifest)?;
    let mut report = crate::backup::VerifyReport { snapshots: 1, ..Default::default() };
    let mut seen = std::collections::HashSet::new();
    for blob in manifest.blobs() {
        if !seen.insert(blob) {
            continue;
        }
        let stat = store.blob_stat(blob)?;
        if let Some(stat) = stat
            && (cache.blob_verified(blob, &stat) || cache.written_now(blob, &stat))
        {
            report.blobs += 1;
            report.bytes += stat.size;
            cache.record_blob(blob, stat);
            continue;
        }
        match store.check_blob(blob) {
            Ok(len) => {
                report.blobs += 1;
                report.bytes += len;
                if let Some(stat) = stat {
                    cache.record_blob(blob, stat);
                }
            }
            // The full verification names every problem, with the path of each blob.
            Err(crate::backup::Error::CorruptBlob { .. } | crate::backup::Error::BlobNotFound { .. }) => {
                return refuse_unless_verified(store, manifest);
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report)
}
