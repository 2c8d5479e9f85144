//! Capturing the work tree again after a run's snapshot, so that nothing written since is
//! lost: a resume does it before its first step (the operator may have fixed a migration file
//! as the hint said, or edited an env file), and the reset does it when a path it must clear
//! changed since the snapshot ([`super::steps`]).
//!
//! The new snapshot is a whole manifest: the latest content of every path the run's last
//! snapshot held, plus every path changed since, with HEAD and branch as the run found them.
//! It is journaled ([`Record::Recaptured`]) and replaces the run's snapshot for every later
//! step and for `undo`, so `undo` of a resumed run gives back the latest content of every file.
//!
//! What "latest" means depends on where the tree stands:
//! - HEAD where the run started (the reset has not moved it): everything `git status` shows,
//!   the env files, what sits where the target adds a path, and every path of the last
//!   snapshot, as they are now; except a path the run itself removed to clear the reset's way
//!   (a reset interrupted half-way), and what git's reset, cut short, wrote or removed
//!   ([`Rollback::left_by_reset`]), which keep the content the snapshot holds;
//! - HEAD at the target (the reset is done): only the env files, and only while `restore_env`
//!   has not finished: it is the one remaining step that overwrites a file the snapshot holds.
//!   Once it has begun, only the files holding neither the snapshot's content nor the
//!   record's (an edit made after the crash: each file is replaced whole, never half-written).
//!   Edits to other files made on the rolled-back tree are captured by the undo's own
//!   snapshot, as always.

use std::collections::{BTreeMap, BTreeSet};

use super::{Ctx, Exec, Rollback, planner};
use crate::backup::{self, EntryKind, Manifest, ManifestEntry, Origin, SnapshotId};
use crate::error::Result;
use crate::event::LogLevel;
use crate::journal::{Record, RunState};
use crate::paths::RepoPath;
use crate::time::Timestamp;
use crate::vcs::CommitId;

/// Why the tree is captured again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Why {
    /// A resume, before its first step.
    Resume,
    /// The reset found a path in its way changed since the snapshot.
    Reset,
}

impl Why {
    fn as_str(self) -> &'static str {
        match self {
            Why::Resume => "resume",
            Why::Reset => "reset",
        }
    }
}

impl Rollback {
    /// Captures what changed since the run's last snapshot into a new one (see the [module
    /// docs](self)); returns whether one was taken (`false`: nothing changed, or nothing the
    /// remaining steps could overwrite).
    ///
    /// With `only`, just those paths are captured again, wherever HEAD is: untracked files,
    /// whose content does not depend on the commit checked out.
    pub(crate) fn recapture(
        &self,
        ctx: &mut Ctx<'_>,
        ex: &mut Exec<'_>,
        why: Why,
        only: Option<&[RepoPath]>,
    ) -> Result<bool> {
        let old = self.own_manifest(ex)?;
        let state = RunState::load(ex.journal.path())?;
        let plan = ex.plan;
        let begins = |name: &str| step_begins(&state, plan, name);
        // Whether an earlier attempt of the reset may have removed paths already (the reset
        // calling this has journaled its own begin).
        let reset_touched = begins("reset") > usize::from(why == Why::Reset);
        let head = self.vcs.head()?;
        let workdir = self.workdir();
        let changes = Self::reset_changes(plan);
        let env: Vec<RepoPath> =
            plan.captures().iter().filter(|c| c.origin == Origin::Env).map(|c| c.path.clone()).collect();
        let at_start = head.commit == old.head;
        let origin_of = |p: &RepoPath| old.entry(p).map_or(Origin::Untracked, |e| e.origin);
        let paths: Vec<(RepoPath, Origin)> = if let Some(only) = only {
            only.iter().map(|p| (p.clone(), origin_of(p))).collect()
        } else if at_start {
            let status = self.vcs.status(true)?;
            let fresh = planner::with_env_files(planner::captures(workdir, &self.config, &status, changes), &env);
            // The snapshot's own origins first: the first origin given wins.
            let mut paths: Vec<(RepoPath, Origin)> = old
                .entries
                .iter()
                .map(|e| (e.path.clone(), e.origin))
                .chain(fresh.into_iter().map(|c| (c.path, c.origin)))
                .collect();
            paths.extend(self.checkout_captures(&head.commit, changes, &paths)?);
            paths
        } else if head.commit == plan.to
            && plan.steps.iter().any(|s| s.name() == "restore_env")
            && begins("restore_env") == 0
        {
            let records = self.env_records(plan)?;
            let env = env_entries(&old, records.iter().map(|(_, m)| m));
            old.entries.iter().filter(|e| env.contains(&e.path)).map(|e| (e.path.clone(), e.origin)).collect()
        } else if head.commit == plan.to
            && let Some(i) = plan.steps.iter().position(|s| s.name() == "restore_env")
            && state.done.get(i).is_some_and(Option::is_none)
            && begins("restore_env") > 0
        {
            // `restore_env` was cut short. It replaces each file whole (a temp file renamed
            // over it), so a file holding neither what the snapshot holds nor what the record
            // puts there was edited since the crash: the resume is about to overwrite it.
            let record = match &plan.steps[i] {
                crate::plan::Step::RestoreEnv { record: Some(id), .. } => Some(self.store()?.manifest(id)?),
                _ => None,
            };
            let written = |p: &RepoPath| {
                record.as_ref().and_then(|m| m.entry(p)).is_some_and(|e| crate::env::holds(workdir, p, &e.kind))
            };
            let env = env_entries(&old, &record);
            old.entries
                .iter()
                .filter(|e| env.contains(&e.path))
                .filter(|e| !crate::env::holds(workdir, &e.path, &e.kind) && !written(&e.path))
                .map(|e| (e.path.clone(), e.origin))
                .collect()
        } else {
            return Ok(false);
        };
        let store = self.store()?;
        let (fresh, stats) = backup::snapshot::capture(store.as_ref(), workdir, &paths)?;
        let removed_by_run: BTreeSet<RepoPath> = if only.is_none() && at_start && reset_touched {
            planner::clear_way_from(&old, changes).into_iter().collect()
        } else {
            BTreeSet::new()
        };
        // Folders the clearing removed once they were empty: gone by the run's doing too.
        let removed_by_run_or_above = |p: &RepoPath| removed_by_run.iter().any(|r| r.starts_with(p));
        // An earlier reset was cut short (killed with the process, or by a signal): git had
        // written some of the target's files already. They are the reset's work, not edits:
        // the snapshot keeps what it holds there.
        let written_by_reset: BTreeSet<RepoPath> = if only.is_none() && at_start && reset_touched {
            self.written_by_reset(store.as_ref(), &fresh, &old, &plan.to)?
        } else {
            BTreeSet::new()
        };
        let fresh_paths: BTreeSet<RepoPath> = fresh.iter().map(|e| e.path.clone()).collect();
        let mut merged: BTreeMap<RepoPath, ManifestEntry> =
            old.entries.iter().map(|e| (e.path.clone(), e.clone())).collect();
        for e in fresh {
            if (e.kind == EntryKind::Absent && removed_by_run_or_above(&e.path)) || written_by_reset.contains(&e.path) {
                continue;
            }
            // A file or symlink of the old snapshot that is a folder now: the folder's content
            // replaces it.
            if e.kind != EntryKind::Absent {
                for anc in e.path.ancestors() {
                    if !fresh_paths.contains(&anc) && merged.get(&anc).is_some_and(|o| o.kind != EntryKind::Absent) {
                        merged.remove(&anc);
                    }
                }
            }
            merged.insert(e.path.clone(), e);
        }
        let changed = merged.values().filter(|e| !old.entries.contains(e)).count()
            + old.entries.iter().filter(|e| !merged.contains_key(&e.path)).count();
        // The index as it is now, unless the reset may have rewritten it already.
        let index = if only.is_none() && at_start && !reset_touched {
            self.capture_index(store.as_ref(), None)?.0
        } else {
            old.index.clone()
        };
        if changed == 0 && index == old.index {
            ctx.log(LogLevel::Info, format!("Nothing changed since backup {}", old.id));
            return Ok(false);
        }
        let entries: Vec<ManifestEntry> = merged.into_values().collect();
        // Links as they are now, plus the old snapshot's groups whose files are unchanged.
        let mut hard_links = backup::snapshot::hard_link_groups(workdir, &entries);
        for g in &old.hard_links {
            let same = g.iter().all(|p| entries.iter().find(|e| &e.path == p) == old.entry(p));
            if same && !hard_links.iter().any(|h| h.iter().any(|p| g.contains(p))) {
                hard_links.push(g.clone());
            }
        }
        let manifest = Manifest {
            format: 1,
            id: SnapshotId::generate(),
            created_at: Timestamp::now(),
            run_id: Some(ex.run_id.clone()),
            workdir: workdir.to_path_buf(),
            head: old.head.clone(),
            branch: old.branch.clone(),
            entries,
            index,
            label: None,
            database: None,
            hard_links,
            landing: old.landing.clone(),
            folders: old.folders.clone(),
        };
        super::support::put_verified(store.as_ref(), &manifest)?;
        ex.journal.append(&Record::Recaptured {
            at: Timestamp::now(),
            snapshot: manifest.id.clone(),
            replaces: old.id.clone(),
            changed,
            reason: why.as_str().to_owned(),
        })?;
        ctx.log(
            LogLevel::Info,
            format!(
                "Captured the work tree again before going on ({}): {changed} path(s) changed since backup {}; \
                 backup {} holds them ({} new byte(s) stored) and is what `undo` restores",
                why.as_str(),
                old.id,
                manifest.id,
                stats.new_bytes
            ),
        );
        ex.manifest = Some(manifest);
        Ok(true)
    }

    /// Of the `fresh` captures, the paths where a `reset --hard` to `to` that was cut short
    /// may have left what is there now ([`Rollback::left_by_reset`], from `old`'s HEAD), or
    /// nothing where `old`'s index staged a file (a staged new file the target lacks: git
    /// removes it).
    fn written_by_reset(
        &self,
        store: &dyn backup::BackupStore,
        fresh: &[ManifestEntry],
        old: &Manifest,
        to: &CommitId,
    ) -> Result<BTreeSet<RepoPath>> {
        let staged: BTreeSet<&RepoPath> = old.index.iter().flat_map(|i| i.staged.iter().map(|s| &s.path)).collect();
        let mut out = BTreeSet::new();
        for e in fresh {
            if e.kind == EntryKind::Absent && staged.contains(&e.path) {
                out.insert(e.path.clone());
                continue;
            }
            let bytes = || match &e.kind {
                EntryKind::File { blob, .. } => Ok(store.get_blob(blob)?),
                _ => Ok(Vec::new()),
            };
            if self.left_by_reset(&e.path, &e.kind, bytes, &old.head, to)? {
                out.insert(e.path.clone());
            }
        }
        Ok(out)
    }

    /// Whether `found` at `path` is what a `reset --hard` from `head` to `to` that was cut short
    /// (the process and its git killed by a power loss, or by a signal) may have left there,
    /// git's own output rather than an edit:
    /// - nothing, where the target or HEAD tracks a file (one git removed, or unlinked and had
    ///   not written again);
    /// - a file or symlink whose content is exactly what the target or HEAD has at `path`;
    /// - a file holding the first bytes of the target's content and less than all of it
    ///   (empty included): git writes a file from its start, and was killed while writing it.
    ///
    /// Anything else is kept as an edit. An edit that happens to look like one of these is
    /// counted as the reset's too: the commits hold that content (a cut-short one is a part of
    /// the target's), and `undo` gives back what the run's snapshot holds at `path`.
    /// `bytes` gives a file's content; it is read only for the cut-short check.
    pub(crate) fn left_by_reset(
        &self,
        path: &RepoPath,
        found: &EntryKind,
        bytes: impl FnOnce() -> Result<Vec<u8>>,
        head: &CommitId,
        to: &CommitId,
    ) -> Result<bool> {
        let at_target = self.vcs.read_file_at(to, path)?;
        let at_head = || self.vcs.read_file_at(head, path);
        Ok(match found {
            EntryKind::Absent => at_target.is_some() || at_head()?.is_some(),
            EntryKind::Symlink { target } => {
                at_target.as_deref() == Some(&target.0[..]) || at_head()?.as_deref() == Some(&target.0[..])
            }
            EntryKind::File { blob, size, .. } => {
                let same = |b: &[u8]| backup::BlobId::of(b) == *blob;
                match at_target.as_deref() {
                    Some(t) if same(t) => true,
                    Some(t) if *size < t.len() as u64 && t.starts_with(&bytes()?) => true,
                    _ => at_head()?.as_deref().is_some_and(same),
                }
            }
        })
    }

    /// The env records the `restore_env` steps of `plan` write, by the index of their step.
    pub(crate) fn env_records(&self, plan: &crate::plan::Plan) -> Result<Vec<(usize, Manifest)>> {
        let mut out = Vec::new();
        for (i, step) in plan.steps.iter().enumerate() {
            if let crate::plan::Step::RestoreEnv { record: Some(id), .. } = step {
                out.push((i, self.store()?.manifest(id)?));
            }
        }
        Ok(out)
    }
}

/// The paths of `manifest` (a snapshot of a run) that are env files: captured as
/// [`Origin::Env`], or named by one of `records`, the env records the run's `restore_env`
/// writes ([`Rollback::env_records`]). A configured env file that git tracks and that had local
/// edits is captured as tracked (the reset discards those edits), and is an env file all the
/// same.
pub(crate) fn env_entries<'a>(
    manifest: &Manifest,
    records: impl IntoIterator<Item = &'a Manifest>,
) -> BTreeSet<RepoPath> {
    let mut out: BTreeSet<RepoPath> =
        manifest.entries.iter().filter(|e| e.origin == Origin::Env).map(|e| e.path.clone()).collect();
    for record in records {
        out.extend(record.entries.iter().map(|e| &e.path).filter(|p| manifest.entry(p).is_some()).cloned());
    }
    out
}

/// How many times the journal `state` shows step `name` of `plan` begun.
fn step_begins(state: &RunState, plan: &crate::plan::Plan, name: &str) -> usize {
    state
        .records
        .iter()
        .filter(|r| matches!(r, Record::StepBegin { index, .. } if plan.steps.get(*index).is_some_and(|s| s.name() == name)))
        .count()
}

/// Whether an attempt of the run's reset began before the one running now (the reset calling
/// this has journaled its own begin) and was cut short: HEAD has not moved, but git may have
/// written, or removed, part of the tree already ([`Rollback::left_by_reset`]). Only a resumed
/// run can have one: a new run (its plan made now, `fresh_plan`) begins each step once, so its
/// journal is not read again on the fast path.
pub(crate) fn earlier_reset_began(ex: &Exec<'_>) -> Result<bool> {
    earlier_attempt_began(ex, "reset")
}

/// Whether an attempt of the run's step `name` began before the one running now (which has
/// journaled its own begin); never for a new run (`fresh_plan`), whose journal is not read.
pub(crate) fn earlier_attempt_began(ex: &Exec<'_>, name: &str) -> Result<bool> {
    if ex.fresh_plan {
        return Ok(false);
    }
    Ok(step_begins(&RunState::load(ex.journal.path())?, ex.plan, name) > 1)
}
