//! Building plans. Pure reads of the repository; nothing is written.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use crate::assess::{Assessment, ChangedFile};
use crate::backup::{EntryKind, Manifest, Origin};
use crate::config::Config;
use crate::paths::RepoPath;
use crate::plan::{Capture, Level, Plan, RunKind, Step};
use crate::vcs::{Change, ChangeKind, CommitId, StatusEntry, StatusKind, VcsBackend};

pub use super::undo_plan::{DbRestore, DbUndoMode, undo_plan};

mod nested;

pub(crate) use nested::holds_dot_git;
pub use nested::{kept_checkouts, refuse_nested_repos};

/// Whether `p` is in the way of a path the target adds: the same path, an ancestor of it
/// (a file where the target needs a folder) or below it (a folder where the target needs a
/// file).
pub fn in_the_way(p: &RepoPath, added: &BTreeSet<&RepoPath>) -> bool {
    added.iter().any(|a| a.starts_with(p) || p.starts_with(a))
}

/// Lists the files below an ignored folder that match the `clean.ignored` globs.
fn ignored_files_below(workdir: &Path, dir: &RepoPath, config: &Config, out: &mut Vec<RepoPath>) {
    let Ok(rd) = std::fs::read_dir(dir.to_fs(workdir)) else { return };
    for entry in rd.flatten() {
        let Ok(p) = RepoPath::from_fs(workdir, &entry.path()) else { continue };
        let Ok(ft) = entry.file_type() else { continue };
        if ft.is_dir() {
            ignored_files_below(workdir, &p, config, out);
        } else if config.clean_ignored(&p) {
            out.push(p);
        }
    }
}

/// Every path a move from HEAD to a commit with `changes` (HEAD → target) must capture:
/// tracked files with changes (staged or not), untracked files, whatever sits on disk at or
/// around a path the target adds (an ignored `.env` the target tracks, a file where the target
/// needs a folder, a folder where it needs a file), and ignored files configured to be
/// cleaned. Other ignored files are left alone and not captured.
pub fn captures(workdir: &Path, config: &Config, status: &[StatusEntry], changes: &[Change]) -> Vec<Capture> {
    let mut out: BTreeMap<RepoPath, Origin> = BTreeMap::new();
    for e in status {
        match &e.kind {
            StatusKind::Tracked { .. } => {
                out.insert(e.path.clone(), Origin::Tracked);
            }
            StatusKind::Untracked => {
                out.entry(e.path.clone()).or_insert(Origin::Untracked);
            }
            StatusKind::Ignored => {
                if config.clean_ignored(&e.path) {
                    out.entry(e.path.clone()).or_insert(Origin::Ignored);
                } else if std::fs::symlink_metadata(e.path.to_fs(workdir)).is_ok_and(|m| m.is_dir()) {
                    let mut below = Vec::new();
                    ignored_files_below(workdir, &e.path, config, &mut below);
                    for p in below {
                        out.entry(p).or_insert(Origin::Ignored);
                    }
                }
            }
        }
    }
    // HEAD tracks these; the reset handles them and git keeps their content.
    let tracked_at_head: BTreeSet<&RepoPath> =
        changes.iter().filter(|c| c.kind != ChangeKind::Added).map(|c| &c.path).collect();
    // ... but not their permission bits beyond the x bit, nor their owner: a clean file the
    // reset rewrites or deletes whose mode is not the one a checkout writes (`chmod 600
    // settings.py`) is captured, so that the undo gives it back with its mode; so is a file or
    // symlink another user owns when this runs as root (`sudo` over the files of `www-data`:
    // git writes root's), so that the undo gives it back to its owner; so is one with extended
    // attributes (an ACL, a capability, `user.*`: git writes a new file without them). One
    // `lstat` per path, and one `llistxattr` for a file whose stat says nothing.
    let umask = umask();
    let root = crate::fsutil::euid() == 0;
    for c in changes.iter().filter(|c| c.kind != ChangeKind::Added && !c.submodule) {
        let full = c.path.to_fs(workdir);
        if !out.contains_key(&c.path)
            && std::fs::symlink_metadata(&full).is_ok_and(|m| {
                let given_away = root && (m.uid(), m.gid()) != (0, 0);
                (m.is_file() || m.is_symlink())
                    && (given_away
                        || m.is_file() && !checkout_writes(m.permissions().mode(), umask)
                        || has_xattrs(&full))
            })
        {
            out.insert(c.path.clone(), Origin::Tracked);
        }
    }
    for c in changes.iter().filter(|c| c.kind == ChangeKind::Added) {
        for (i, p) in std::iter::once(c.path.clone()).chain(c.path.ancestors()).enumerate() {
            if tracked_at_head.contains(&p) || out.contains_key(&p) {
                continue;
            }
            match std::fs::symlink_metadata(p.to_fs(workdir)) {
                // An ancestor folder is where it should be.
                Ok(m) if m.is_dir() && i > 0 => {}
                // The added path itself (file, symlink or a folder in its place), or a file
                // where the target needs a folder: not tracked by HEAD, so untracked or ignored.
                Ok(_) => {
                    let origin = status
                        .iter()
                        .find(|e| p.starts_with(&e.path) && e.kind == StatusKind::Untracked)
                        .map_or(Origin::Ignored, |_| Origin::Untracked);
                    out.insert(p, origin);
                }
                Err(_) => {}
            }
        }
    }
    // Untracked work in a submodule's checkout the move keeps is the submodule's, and stays
    // where it is with it.
    let kept = kept_checkouts(workdir, changes);
    out.into_iter()
        .filter(|(path, origin)| *origin == Origin::Tracked || !kept.iter().any(|k| path.starts_with(k)))
        .map(|(path, origin)| Capture { path, origin })
        .collect()
}

/// Whether the file or symlink at `full` (not followed) has an extended attribute a checkout
/// does not give the file it writes. A security label (`security.selinux`) does not count: the
/// system labels the new file by its policy, as it labelled this one. An attribute that cannot
/// be listed counts as none (the capture, which reads it again, says what is wrong).
fn has_xattrs(full: &Path) -> bool {
    crate::backup::xattr::On::Path(full).read().is_ok_and(|xattrs| xattrs.iter().any(|x| x.name != b"security.selinux"))
}

/// Whether a checkout writes a file with exactly the permission bits of `mode` (`st_mode`)
/// under `umask`: `0666` or `0777` (by the file's x bit) narrowed by the umask, as `git`
/// does, which is also `0644` or `0755` narrowed by it, as libgit2 does. When the two differ
/// (a umask of `002`) no mode is taken to be what a checkout writes.
fn checkout_writes(mode: u32, umask: u32) -> bool {
    let (wide, narrow) = if mode & 0o100 != 0 { (0o777, 0o755) } else { (0o666, 0o644) };
    let bits = mode & 0o7777;
    bits == wide & !umask && bits == narrow & !umask
}

/// The process's umask: from `/proc/self/status` where it is there (reading it changes
/// nothing), else by setting it and putting it back.
fn umask() -> u32 {
    let from_proc = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines().find_map(|l| l.strip_prefix("Umask:")).and_then(|v| u32::from_str_radix(v.trim(), 8).ok())
    });
    from_proc.unwrap_or_else(|| {
        // SAFETY: `umask` cannot fail; the old value is put back at once.
        #[allow(unsafe_code)]
        let old = unsafe {
            let old = libc::umask(0o022);
            libc::umask(old);
            old
        };
        #[allow(clippy::useless_conversion)] // `mode_t` differs between platforms
        u32::from(old)
    })
}

/// Cache paths to clear, from the work tree's status: caches are never tracked, so git lists
/// them as untracked files or ignored entries, and the cost follows what is dirty, not the size
/// of the repository. Only entries git lists are taken, exactly: git lists a folder whole
/// (`app/__pycache__`) only when nothing in it is tracked, so a tracked file inside a cache
/// folder is never removed. Nothing under `caches.skip_dirs` (`.venv`, ...); nothing the
/// target tracks or that stands in its way; nothing [`CacheGuard`] protects.
pub fn find_caches(config: &Config, status: &[StatusEntry], changes: &[Change], guard: &CacheGuard) -> Vec<RepoPath> {
    let added: BTreeSet<&RepoPath> = changes.iter().filter(|c| c.kind == ChangeKind::Added).map(|c| &c.path).collect();
    let skipped = |p: &RepoPath| {
        p.as_bytes().split(|b| *b == b'/').any(|c| config.caches.skip_dirs.iter().any(|s| s.as_bytes() == c))
    };
    status
        .iter()
        .filter(|e| matches!(e.kind, StatusKind::Untracked | StatusKind::Ignored))
        .filter(|e| !skipped(&e.path) && config.is_cache(&e.path) && !in_the_way(&e.path, &added))
        .filter(|e| !guard.protects(&e.path))
        .map(|e| e.path.clone())
        .collect()
}

/// What `clear_caches` never deletes, whatever `[caches] globs` match (caches are deleted
/// without a snapshot): the `[env] files`; the configured SQLite database file and its `-wal`,
/// `-shm` and `-journal` files (when its URL can be read now); the configuration file; the
/// registry; the state folder; a folder holding any of them, or a `.git` (a nested repository)
/// at any depth. Paths inside `.git` are never work-tree paths ([`RepoPath::new`] refuses
/// them), and tracked files are never listed as caches (see [`find_caches`]).
#[derive(Clone, Debug)]
pub struct CacheGuard {
    workdir: std::path::PathBuf,
    paths: Vec<RepoPath>,
}

impl CacheGuard {
    /// The protected paths of `config` in `workdir`.
    pub fn new(config: &Config, workdir: &Path) -> Self {
        let mut paths: Vec<RepoPath> = Vec::new();
        let mut add = |p: &Path| {
            let abs = if p.is_absolute() { p.to_path_buf() } else { workdir.join(p) };
            // As written, and resolved for real (symlinks, `..`): either may be how the status
            // names it.
            let resolved_root = crate::fsutil::resolve(workdir);
            for (path, root) in [(abs.clone(), workdir.to_path_buf()), (crate::fsutil::resolve(&abs), resolved_root)] {
                if let Ok(rel) = path.strip_prefix(&root)
                    && let Ok(rp) = RepoPath::from_fs(Path::new(""), rel)
                    && !paths.contains(&rp)
                {
                    paths.push(rp);
                }
            }
        };
        for f in &config.env.files {
            add(f);
        }
        if let Some(db) = &config.database
            && let Ok(url) = db.resolve_url()
            && let Ok(crate::db::url::DbUrl::Sqlite { path }) = crate::db::url::DbUrl::parse(&url, workdir)
        {
            add(&path);
            for suffix in ["-wal", "-shm", "-journal"] {
                let mut side = path.clone().into_os_string();
                side.push(suffix);
                add(Path::new(&side));
            }
        }
        if let Some(source) = &config.source {
            // Given on the command line: relative to the current folder, not the work tree.
            add(&crate::fsutil::resolve(source));
        }
        add(&config.registry.path);
        if let Some(dir) = &config.state.dir {
            add(dir);
        }
        Self { workdir: workdir.to_path_buf(), paths }
    }

    /// Whether `path` must not be cleared: it is a protected path, lies inside one, or is a
    /// folder holding one (or a `.git`).
    pub fn protects(&self, path: &RepoPath) -> bool {
        self.paths.iter().any(|q| q.starts_with(path) || path.starts_with(q)) || holds_git(&path.to_fs(&self.workdir))
    }
}

/// Whether `dir` is a folder with a `.git` (file or folder) at any depth. Symlinks are not
/// followed.
fn holds_git(dir: &Path) -> bool {
    let Ok(rd) = std::fs::read_dir(dir) else { return false };
    rd.flatten().any(|e| {
        e.file_name().as_encoded_bytes().eq_ignore_ascii_case(b".git")
            || e.file_type().is_ok_and(|t| t.is_dir()) && holds_git(&e.path())
    })
}

/// Untracked files a rollback keeps where they are (captured all the same): the registry and
/// the configuration file it was given.
pub(crate) fn kept_untracked(workdir: &Path, config: &Config) -> Vec<RepoPath> {
    [config.registry_path(workdir)]
        .into_iter()
        .chain(config.source.clone())
        .filter_map(|p| RepoPath::from_fs(workdir, &if p.is_absolute() { p } else { workdir.join(p) }).ok())
        .collect()
}

/// Captures sorted by what the reset does to them.
pub(super) struct Split<'a> {
    /// Untracked or ignored entries standing where the target has files: removed before the
    /// reset.
    pub(super) clear_way: Vec<RepoPath>,
    /// Tracked files whose local changes the reset overwrites.
    pub(super) discards: Vec<RepoPath>,
    /// Untracked or ignored entries out of the target's way: removal candidates.
    pub(super) rest: Vec<&'a Capture>,
}

pub(super) fn split<'a>(capture: &'a [Capture], changes: &[Change], status: &[StatusEntry]) -> Split<'a> {
    let added: BTreeSet<&RepoPath> = changes.iter().filter(|c| c.kind == ChangeKind::Added).map(|c| &c.path).collect();
    // A clean tracked file captured for its mode only has no local changes to discard.
    let listed: BTreeSet<&RepoPath> = status.iter().map(|e| &e.path).collect();
    let mut out = Split { clear_way: Vec::new(), discards: Vec::new(), rest: Vec::new() };
    for c in capture {
        if c.origin == Origin::Tracked {
            if listed.contains(&c.path) {
                out.discards.push(c.path.clone());
            }
        } else if in_the_way(&c.path, &added) {
            out.clear_way.push(c.path.clone());
        } else if c.origin != Origin::Env {
            out.rest.push(c);
        }
    }
    out
}

/// Adds the configured env files to a capture list as [`Origin::Env`] (absent ones too, so an
/// undo deletes what a restore created), keeping any that are already captured as they are.
pub fn with_env_files(mut capture: Vec<Capture>, files: &[RepoPath]) -> Vec<Capture> {
    for f in files {
        match capture.iter_mut().find(|c| &c.path == f) {
            Some(c) if c.origin != Origin::Tracked => c.origin = Origin::Env,
            Some(_) => {}
            None => capture.push(Capture { path: f.clone(), origin: Origin::Env }),
        }
    }
    capture.sort_by(|a, b| a.path.cmp(&b.path));
    capture
}

/// The restart, deploy and verify steps the configuration asks for, in that order. `keep`:
/// the paths a `revert-commit` deploy takes from the commit production runs
/// ([`Step::Deploy`]'s `kept`).
pub fn service_steps(config: &Config, checks: &[String], keep: Vec<RepoPath>) -> Vec<Step> {
    let mut steps = Vec::new();
    if !config.restart.is_empty() {
        steps.push(Step::Restart {
            steps: config.restart.iter().map(|r| r.name.clone()).collect(),
            commands: config.restart.iter().map(|r| r.argv.join(" ")).collect(),
        });
    }
    if let Some(d) = &config.deploy
        && let Some(step) = deploy_step(d, keep)
    {
        steps.push(step);
    }
    if !checks.is_empty() {
        steps.push(Step::Verify { checks: checks.to_vec() });
    }
    steps
}

fn deploy_step(d: &crate::deploy::DeployConfig, keep: Vec<RepoPath>) -> Option<Step> {
    let pushes = d.strategy.pushes();
    let revert = d.strategy == crate::deploy::DeployStrategy::RevertCommit;
    d.is_active().then(|| Step::Deploy {
        strategy: d.strategy.as_str().to_owned(),
        remote: pushes.then(|| d.remote.clone()),
        branch: if pushes { d.branch.clone() } else { None },
        hook: d.hook_url.is_some() || d.hook_url_env.is_some(),
        kept: if revert { keep } else { Vec::new() },
    })
}

/// The tool's own files inside the work tree: the registry and the configuration file. A
/// rollback leaves them as they were before it, locally (`keep_tool_files`) and in the commit
/// a `revert-commit` deploy pushes: the target's older copies must not forget the commits
/// marked since (a bad release would become eligible again, and pass a server's `gate`).
pub(crate) fn tool_files(workdir: &Path, config: &Config) -> Vec<RepoPath> {
    let mut out = Vec::new();
    for path in std::iter::once(config.registry_path(workdir)).chain(config.source.clone()) {
        let path = super::support::normalize(&if path.is_absolute() { path } else { workdir.join(path) });
        if path.starts_with(workdir)
            && let Ok(rel) = RepoPath::from_fs(workdir, &path)
            && !out.contains(&rel)
        {
            out.push(rel);
        }
    }
    out
}

/// The rollback plan for an assessment at `level`. Full and manual plans add, when the
/// database must move, a database snapshot and the downgrade before the reset, and the env
/// restore after it; every level ends with the configured restart, deploy and verify steps.
pub fn rollback_plan(vcs: &dyn VcsBackend, config: &Config, checks: &[String], a: &Assessment, level: Level) -> Plan {
    let workdir = vcs.workdir();
    let changes: Vec<Change> = a.changes.iter().map(ChangedFile::change).collect();
    let full = level != Level::Fast;
    let mut capture = captures(workdir, config, &a.status, &changes);
    if full && let Some(env) = &a.env {
        capture = with_env_files(capture, &env.files);
    }
    let Split { clear_way, mut discards, rest } = split(&capture, &changes, &a.status);
    // Flagged files git's status hides (assume-unchanged, skip-worktree) keep their local
    // version when the target does not change them (the reset step puts it back): captured,
    // not discarded.
    let changed: BTreeSet<&RepoPath> = changes.iter().map(|c| &c.path).collect();
    let hidden: BTreeSet<&RepoPath> = a.status.iter().filter(|e| e.hidden_by.is_some()).map(|e| &e.path).collect();
    discards.retain(|p| changed.contains(p) || !hidden.contains(p));
    let keep = kept_untracked(workdir, config);
    let remove: Vec<RepoPath> = rest.into_iter().map(|c| c.path.clone()).filter(|p| !keep.contains(p)).collect();
    let found = find_caches(config, &a.status, &changes, &CacheGuard::new(config, workdir));
    let mut steps = vec![Step::Snapshot { capture }];
    if full
        && let Some(db) = &a.database
        && db.needs_downgrade
    {
        steps.push(Step::DbSnapshot { database: db.database.clone(), revisions: db.current.clone() });
        steps.push(Step::Downgrade {
            database: db.database.clone(),
            migrator: db.kind.clone(),
            from: db.current.clone(),
            to: db.target_heads.clone(),
            path: db.path.clone(),
            sql: None,
        });
    }
    // What the reset puts back as it was (`keep_tool_files`): a tool file HEAD or the work tree
    // has; one only the target has is added like any other.
    let mut kept: Vec<RepoPath> = changes
        .iter()
        .filter(|c| keep.contains(&c.path))
        .filter(|c| c.kind != ChangeKind::Added || std::fs::symlink_metadata(c.path.to_fs(workdir)).is_ok())
        .map(|c| c.path.clone())
        .collect();
    // A tool file with uncommitted edits (a fresh `known-good bad` mark) is put back with
    // them too: kept, not discarded. One deleted locally is not put back (there is nothing
    // to put back): the reset does bring the file back, and that discards the deletion.
    discards.retain(|p| {
        let tool_file_kept = keep.contains(p) && std::fs::symlink_metadata(p.to_fs(workdir)).is_ok();
        if tool_file_kept && !kept.contains(p) {
            kept.push(p.clone());
        }
        !tool_file_kept
    });
    steps.push(Step::Reset {
        target: a.target.commit.id.clone(),
        branch: a.head.branch.clone(),
        changes,
        clear_way,
        discards,
        kept,
    });
    steps.push(Step::RemoveUntracked { paths: remove, recompute: false });
    if full && let Some(env) = &a.env {
        steps.push(Step::RestoreEnv {
            commit: a.target.commit.id.clone(),
            record: env.target_record.as_ref().map(|r| r.snapshot.clone()),
            diffs: env.diffs.clone(),
        });
    }
    steps.push(Step::ClearCaches { found });
    steps.extend(service_steps(config, checks, tool_files(workdir, config)));
    steps.push(Step::Record);
    Plan {
        kind: RunKind::Rollback,
        level: Some(level),
        workdir: workdir.to_path_buf(),
        backend: vcs.name().into(),
        from: a.head.clone(),
        to: a.target.commit.id.clone(),
        to_summary: a.target.commit.summary.clone(),
        undo_of: None,
        steps,
        data_loss: Vec::new(),
        // What the plan's own steps do that the operator must weigh: said with the plan.
        risks: a
            .risks
            .iter()
            .filter(|r| {
                use crate::model::RiskCode;
                matches!(
                    r.code,
                    RiskCode::UntrackedDependencies
                        | RiskCode::BlobsNotFetched
                        | RiskCode::LfsObjectsNotFetched
                        | RiskCode::CaseOnlyNames
                        | RiskCode::FilesNotChangeable
                        | RiskCode::BranchInOtherWorktree
                        | RiskCode::PushResetsToolFiles
                )
            })
            .cloned()
            .collect(),
    }
}

/// Only the database part of a full rollback `plan`: the file snapshot (unchanged: it pins
/// HEAD and keeps the local changes and the index, so `undo` puts back exactly the tree it
/// found, uncommitted edits included), the database snapshot, the downgrade and the record. The
/// code, the env files and the services are left as they are.
pub fn database_only(mut plan: Plan) -> Plan {
    plan.steps.retain(|s| {
        matches!(s, Step::Snapshot { .. } | Step::DbSnapshot { .. } | Step::Downgrade { .. } | Step::Record)
    });
    plan
}

/// Captured paths that the reset must clear first, per the manifest actually taken: what is
/// in the way of a path the target adds and is not a file HEAD tracks (git removes those, and
/// HEAD's commit holds them). A captured tracked entry HEAD does not have is cleared too: a
/// staged new file (`git add x` where the target has `x/y`), or a file below a tracked file
/// that is a folder now.
pub fn clear_way_from(manifest: &Manifest, changes: &[Change]) -> Vec<RepoPath> {
    let added: BTreeSet<&RepoPath> = changes.iter().filter(|c| c.kind == ChangeKind::Added).map(|c| &c.path).collect();
    // In the way of an added path and tracked by HEAD: the move deletes it, so it is a change.
    let at_head: BTreeSet<&RepoPath> =
        changes.iter().filter(|c| c.kind != ChangeKind::Added).map(|c| &c.path).collect();
    manifest
        .entries
        .iter()
        .filter(|e| e.origin != Origin::Tracked || !at_head.contains(&e.path))
        .filter(|e| e.kind != EntryKind::Absent && in_the_way(&e.path, &added))
        .map(|e| e.path.clone())
        .collect()
}

/// The refusal when a reset to `commit` would have to write one of `paths` (those that are
/// regular files of `commit`) through a filter program the back-end cannot run
/// ([`VcsBackend::filter_not_run`]: the git2 back-end and git LFS, git-crypt); `None` when it
/// can write them all.
pub fn refuse_filters(vcs: &dyn VcsBackend, commit: &CommitId, paths: &[&RepoPath]) -> Option<crate::Error> {
    vcs.filter_not_run(commit, paths).map_or_else(|e| Some(e.into()), |found| found.map(Into::into))
}

/// Captured untracked (and cleaned ignored) files a rollback removes after the reset. Env files
/// captured by a full rollback are not removed: `restore_env` writes them.
pub fn removals_from(manifest: &Manifest, changes: &[Change]) -> Vec<RepoPath> {
    let added: BTreeSet<&RepoPath> = changes.iter().filter(|c| c.kind == ChangeKind::Added).map(|c| &c.path).collect();
    manifest
        .entries
        .iter()
        .filter(|e| matches!(e.origin, Origin::Untracked | Origin::Ignored))
        .filter(|e| e.kind != EntryKind::Absent && !in_the_way(&e.path, &added))
        .map(|e| e.path.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkout_writes_only_the_mode_every_backend_writes_under_the_umask() {
        for (mode, umask, writes) in [
            (0o100_644, 0o022, true),
            (0o100_755, 0o022, true),
            (0o100_600, 0o022, false),
            (0o100_640, 0o022, false),
            (0o100_750, 0o022, false),
            (0o104_755, 0o022, false),
            (0o100_600, 0o077, true),
            (0o100_700, 0o077, true),
            // `git` writes 0664, libgit2 0644: neither is taken as what a checkout writes.
            (0o100_664, 0o002, false),
            (0o100_644, 0o002, false),
        ] {
            assert_eq!(checkout_writes(mode, umask), writes, "{mode:o} under {umask:03o}");
        }
    }

    #[test]
    fn caches_never_include_what_the_guard_protects() {
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path();
        let cfg_path = w.join("forge-rollback.toml");
        std::fs::write(&cfg_path, "").unwrap();
        std::fs::create_dir_all(w.join("vendor/lib/.git")).unwrap();
        std::fs::create_dir_all(w.join("build")).unwrap();
        let text = r#"
[caches]
globs = ["**/*.pyc", ".env", "config", "data/*", "forge-rollback.toml", "vendor", "build", "*.tmp", "state/**", "known.json"]
[env]
files = [".env", "config/prod.env"]
[database]
kind = "sql"
url = "sqlite:///data/app.db"
[registry]
path = "known.json"
[state]
dir = "state"
"#;
        let config = Config::parse(text, Some(&cfg_path)).unwrap();
        let p = |s: &str| RepoPath::new(s).unwrap();
        let status: Vec<StatusEntry> = [
            ".env",
            "config",
            "data/app.db",
            "data/app.db-wal",
            "data/app.db-shm",
            "data/app.db-journal",
            "data/other.txt",
            "forge-rollback.toml",
            "vendor",
            "build",
            "junk.tmp",
            "app/x.pyc",
            "state/runs/x",
            "known.json",
        ]
        .into_iter()
        .map(|s| StatusEntry::new(p(s), StatusKind::Ignored))
        .collect();
        let guard = CacheGuard::new(&config, w);
        let found = find_caches(&config, &status, &[], &guard);
        assert_eq!(found, [p("data/other.txt"), p("build"), p("junk.tmp"), p("app/x.pyc")]);
        // Without the guard every one of them matches a glob.
        let unguarded = CacheGuard { workdir: w.join("nowhere"), paths: Vec::new() };
        assert_eq!(find_caches(&config, &status, &[], &unguarded).len(), status.len());
    }
}
