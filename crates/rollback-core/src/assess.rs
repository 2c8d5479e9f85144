//! Pre-rollback assessment: where HEAD is, where a rollback would go, what would change, what
//! is at risk, and which level to use. Reads only; changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Category, Config};
use crate::model::Level;
use crate::paths::RepoPath;
use crate::registry::{Entry, Registry};
use crate::vcs::{Change, ChangeKind, CommitId, CommitInfo, Head, StatusEntry, StatusKind, VcsBackend};

/// Commits listed at most in an assessment (the total is still counted up to [`COUNT_LIMIT`]).
pub const COMMITS_SHOWN: usize = 50;
/// Commits counted at most between HEAD and the target.
pub const COUNT_LIMIT: usize = 100_000;

/// How the target was chosen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetSource {
    /// Given by the operator (`--target`).
    Explicit,
    /// The newest verified known-good commit of the registry.
    Registry,
}

/// The rollback target.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// The commit.
    pub commit: CommitInfo,
    /// What the operator typed, if anything.
    pub rev: Option<String>,
    /// How it was chosen.
    pub source: TargetSource,
    /// Its registry entry, if listed.
    pub registry_entry: Option<Entry>,
}

/// A path that differs between HEAD and the target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangedFile {
    /// The path.
    pub path: RepoPath,
    /// What the rollback does to it (`added`: the target has it and HEAD does not).
    pub kind: ChangeKind,
    /// Code, migrations, dependencies or env.
    pub category: Category,
    /// A submodule on either side: the rollback moves the commit recorded for it, not its
    /// work tree.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub submodule: bool,
}

impl ChangedFile {
    /// The change as the reset step plans it.
    pub fn change(&self) -> Change {
        Change { path: self.path.clone(), kind: self.kind, submodule: self.submodule }
    }
}

/// Uncommitted state of the work tree.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dirty {
    /// Tracked files changed in the work tree and not staged.
    pub modified: Vec<RepoPath>,
    /// Paths with staged changes.
    pub staged: Vec<RepoPath>,
    /// Untracked files.
    pub untracked: Vec<RepoPath>,
    /// Ignored paths (folders wholly ignored are listed once).
    pub ignored: Vec<RepoPath>,
    /// Untracked or ignored paths where the target has a tracked file: a reset replaces them.
    pub at_target_paths: Vec<RepoPath>,
}

impl Dirty {
    /// No tracked changes and no untracked files (ignored files do not count).
    pub fn is_clean(&self) -> bool {
        self.modified.is_empty() && self.staged.is_empty() && self.untracked.is_empty()
    }
}

pub use crate::model::{Risk, RiskCode, RiskSeverity as Severity};

/// The result of `assess`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assessment {
    /// The work tree.
    #[serde(with = "crate::paths::os_path")]
    pub workdir: PathBuf,
    /// The git backend.
    pub backend: String,
    /// Where HEAD is.
    pub head: Head,
    /// HEAD's summary.
    pub head_summary: String,
    /// Where a rollback would go.
    pub target: Target,
    /// Whether the target is an ancestor of HEAD (a real step back).
    pub target_is_ancestor: bool,
    /// Commits a rollback takes away (in HEAD, not in the target), newest first, at most
    /// [`COMMITS_SHOWN`].
    pub commits_rolled_back: Vec<CommitInfo>,
    /// How many there are in all (up to [`COUNT_LIMIT`]).
    pub commits_rolled_back_total: usize,
    /// Tracked paths that differ, HEAD → target.
    pub changes: Vec<ChangedFile>,
    /// Count of changed paths per category.
    pub changes_by_category: BTreeMap<Category, usize>,
    /// Uncommitted state.
    pub dirty: Dirty,
    /// Risks, most serious first.
    pub risks: Vec<Risk>,
    /// The level that puts everything that changed back.
    pub recommended_level: Level,
    /// Why that level.
    pub recommendation: String,
    /// The registry file consulted.
    #[serde(with = "crate::paths::os_path")]
    pub registry: PathBuf,
    /// The database: where it is, where the target expects it, the downgrade path and its
    /// risks (`None` without a `[database]` section).
    pub database: Option<crate::db::DbAssessment>,
    /// The env files: what a full rollback would change in them, key names only (`None`
    /// without `[env] files`).
    pub env: Option<crate::env::EnvAssessment>,
    /// What a full rollback's downgrade would destroy in the live database (the data-loss
    /// forecast; empty when the schema does not move or nothing is lost).
    #[serde(default)]
    pub data_loss: Vec<crate::model::DataLoss>,
    /// The production target, when one is configured: what is live, the target's release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production: Option<ProductionAssessment>,
    /// Raw status, for the planner.
    #[serde(skip)]
    pub status: Vec<StatusEntry>,
}

/// What a production target ([`crate::production::Deployer`]) said during an assessment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ProductionAssessment {
    /// The target in one line.
    pub target: String,
    /// The release live now (absent if the platform could not be asked).
    pub live: Option<crate::production::Release>,
    /// The release built from the target commit (absent if none, or if not asked).
    pub release: Option<crate::production::Release>,
    /// Why the platform could not be asked, or that it never built the target.
    pub problem: Option<String>,
}

impl ProductionAssessment {
    /// One line: `production: <target>, <live> -> <release>`, or what is wrong.
    pub fn line(&self) -> String {
        match (&self.live, &self.release, &self.problem) {
            (Some(live), Some(to), _) => format!("production: {}, {live} -> {to}", self.target),
            (_, _, Some(p)) => format!("production: {}: {p}", self.target),
            _ => format!("production: {}", self.target),
        }
    }
}

impl Assessment {
    /// Whether a risk with this code is present.
    pub fn has_risk(&self, code: RiskCode) -> bool {
        self.risks.iter().any(|r| r.code == code)
    }
}

/// Whether the repository is a shallow clone (`git clone --depth`): its history stops at the
/// commits `.git/shallow` lists, so "not an ancestor" may only mean "beyond that depth".
pub(crate) fn is_shallow(vcs: &dyn VcsBackend) -> bool {
    std::fs::symlink_metadata(vcs.git_dir().join("shallow")).is_ok_and(|m| m.len() > 0)
}

/// What to do about most operations in progress.
pub(crate) const FINISH_OR_ABORT: &str = "finish or abort it (`git merge --abort`, `git rebase --abort`, ...) first";

/// Git operations that a reset would silently abort (their state lives in the git dir): what
/// is in progress, and how to finish or leave it.
pub(crate) fn operation_in_progress(vcs: &dyn VcsBackend) -> Option<(&'static str, &'static str)> {
    let index = vcs.index_path();
    let dir = index.parent()?;
    [
        ("MERGE_HEAD", "a merge", FINISH_OR_ABORT),
        ("CHERRY_PICK_HEAD", "a cherry-pick", FINISH_OR_ABORT),
        ("REVERT_HEAD", "a revert", FINISH_OR_ABORT),
        ("rebase-merge", "a rebase", FINISH_OR_ABORT),
        ("rebase-apply", "a rebase or `git am`", FINISH_OR_ABORT),
        ("BISECT_LOG", "a bisect", FINISH_OR_ABORT),
        // A sequence of picks (`git cherry-pick A B`) paused between two of them, with no
        // `CHERRY_PICK_HEAD`: `--continue` would apply the rest onto whatever HEAD is then.
        (
            "sequencer",
            "a cherry-pick or revert sequence",
            "finish it (`git cherry-pick --continue`) or leave it (`git cherry-pick --quit`; `git revert` likewise for a revert) first",
        ),
    ]
    .into_iter()
    .find(|(f, _, _)| dir.join(f).exists())
    .map(|(_, what, hint)| (what, hint))
}

/// Refuses `doing` (an undo, a resume) before anything changes when a git operation is in
/// progress that its reset would silently abort, like a run is refused.
pub(crate) fn refuse_operation_in_progress(vcs: &dyn VcsBackend, doing: &str) -> Option<crate::Error> {
    let (what, hint) = operation_in_progress(vcs)?;
    Some(crate::Error::refused(
        format!("{what} is in progress: {doing} would abort it; nothing was changed"),
        Some(hint.into()),
    ))
}

/// The command that checks out the commits recorded for the submodules at `paths` (a reset
/// moves the record only; git updates a submodule's files on `git submodule update`).
pub fn submodule_update(paths: &[&RepoPath]) -> String {
    let args = paths.iter().map(|p| crate::hint::shell_word(&p.to_string())).collect::<Vec<_>>().join(" ");
    format!("git submodule update --recursive -- {args}")
}

/// Folders package managers install dependencies into inside a project.
const DEPENDENCY_FOLDERS: &[&[u8]] = &[b".venv", b"venv", b"node_modules", b"__pypackages__", b".tox"];

/// The dependency folders (`node_modules`, `.venv`, ...) among `untracked` files, each with
/// how many files it holds, by path (the outermost such folder of each file).
fn dependency_folders(untracked: &[RepoPath]) -> std::collections::BTreeMap<String, usize> {
    let mut found = std::collections::BTreeMap::new();
    for path in untracked {
        let parts: Vec<&[u8]> = path.as_bytes().split(|b| *b == b'/').collect();
        // Not the file's own name: a file called `venv` is no folder of dependencies.
        if let Some(i) = parts[..parts.len().saturating_sub(1)].iter().position(|p| DEPENDENCY_FOLDERS.contains(p)) {
            let dir = String::from_utf8_lossy(&parts[..=i].join(&b'/')).into_owned();
            *found.entry(dir).or_insert(0) += 1;
        }
    }
    found
}

/// `paths` for people: `a`, `b`.
pub(crate) fn show_paths<'a>(paths: impl IntoIterator<Item = &'a RepoPath>) -> String {
    paths.into_iter().map(|p| format!("`{p}`")).collect::<Vec<_>>().join(", ")
}

/// A risk.
pub fn risk(code: RiskCode, severity: Severity, message: String) -> Risk {
    Risk::new(code, severity, message)
}

/// Resolves the target: `rev` if given, else the registry's newest verified known-good commit.
pub fn resolve_target(
    vcs: &dyn VcsBackend,
    registry: &Registry,
    registry_path: &std::path::Path,
    head: &CommitId,
    rev: Option<&str>,
) -> crate::Result<Target> {
    if let Some(rev) = rev {
        let id = vcs.resolve(rev)?;
        let commit = vcs.commit_info(&id)?;
        return Ok(Target {
            registry_entry: registry.deciding(&id).cloned(),
            commit,
            rev: Some(rev.to_owned()),
            source: TargetSource::Explicit,
        });
    }
    match registry.pick_target(vcs, head)? {
        Some((id, entry)) => Ok(Target {
            commit: vcs.commit_info(&id)?,
            rev: None,
            source: TargetSource::Registry,
            registry_entry: Some(entry),
        }),
        None => Err(crate::Error::NoTarget { registry: registry_path.to_owned(), head: head.clone() }),
    }
}

/// What the history says about a rollback: the part of [`assess`] that does not look at the
/// work tree.
struct History {
    head: Head,
    head_summary: String,
    target: Target,
    target_is_ancestor: bool,
    rolled: Vec<CommitInfo>,
    commits_rolled_back_total: usize,
    changes: Vec<ChangedFile>,
}

fn history(
    vcs: &dyn VcsBackend,
    config: &Config,
    registry: &Registry,
    registry_path: &Path,
    rev: Option<&str>,
) -> crate::Result<History> {
    let head = vcs.head()?;
    let head_summary = vcs.commit_info(&head.commit)?.summary;
    let target = resolve_target(vcs, registry, registry_path, &head.commit, rev)?;
    let to = &target.commit.id;
    let target_is_ancestor = vcs.is_ancestor(to, &head.commit)?;
    let mut rolled = vcs.commits_between(to, &head.commit, COUNT_LIMIT)?;
    let commits_rolled_back_total = rolled.len();
    rolled.truncate(COMMITS_SHOWN);
    let changes: Vec<ChangedFile> = vcs
        .diff(&head.commit, to)?
        .into_iter()
        .map(|c| ChangedFile {
            category: config.categorize(&c.path),
            path: c.path,
            kind: c.kind,
            submodule: c.submodule,
        })
        .collect();
    Ok(History { head, head_summary, target, target_is_ancestor, rolled, commits_rolled_back_total, changes })
}

/// Assesses a rollback of the repository to `rev` (or the registry's choice).
pub fn assess(
    vcs: &dyn VcsBackend,
    config: &Config,
    registry: &Registry,
    rev: Option<&str>,
) -> crate::Result<Assessment> {
    let workdir = vcs.workdir().to_path_buf();
    let registry_path = config.registry_path(&workdir);
    // The status scan (a stat of every tracked file, a walk for untracked ones) runs on its
    // own thread while the history questions are answered: with the `git-cli` back-end it is
    // a `git` process, so the two use both cores. A history error is reported first, as if
    // the scan had not started.
    let (history, status) = std::thread::scope(|s| {
        let status = s.spawn(|| vcs.status(true));
        let history = history(vcs, config, registry, &registry_path, rev);
        let status = status.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (history, status)
    });
    let History { head, head_summary, target, target_is_ancestor, rolled, commits_rolled_back_total, changes } =
        history?;
    let to = target.commit.id.clone();
    let mut changes_by_category = BTreeMap::new();
    for c in &changes {
        *changes_by_category.entry(c.category).or_insert(0) += 1;
    }

    let status = status?;
    let mut dirty = Dirty::default();
    for e in &status {
        match &e.kind {
            StatusKind::Tracked { staged, unstaged } => {
                if staged.is_some() {
                    dirty.staged.push(e.path.clone());
                }
                if unstaged.is_some() {
                    dirty.modified.push(e.path.clone());
                }
            }
            StatusKind::Untracked => dirty.untracked.push(e.path.clone()),
            StatusKind::Ignored => dirty.ignored.push(e.path.clone()),
        }
    }
    let added: BTreeSet<&RepoPath> = changes.iter().filter(|c| c.kind == ChangeKind::Added).map(|c| &c.path).collect();
    dirty.at_target_paths = status
        .iter()
        .filter(|e| matches!(e.kind, StatusKind::Untracked | StatusKind::Ignored))
        .filter(|e| added.iter().any(|a| a.starts_with(&e.path) || e.path.starts_with(a)))
        .map(|e| e.path.clone())
        .collect();

    let mut risks = Vec::new();
    if head.branch.is_none() {
        risks.push(risk(
            RiskCode::DetachedHead,
            Severity::High,
            "HEAD is detached: a rollback needs a branch to move".into(),
        ));
    }
    if let Some((op, _)) = operation_in_progress(vcs) {
        risks.push(risk(
            RiskCode::OperationInProgress,
            Severity::High,
            format!("{op} is in progress: a reset would abort it"),
        ));
    }
    if to == head.commit {
        risks.push(risk(
            RiskCode::TargetIsHead,
            Severity::Info,
            format!("the target {} is HEAD: only uncommitted changes would be rolled back", to.short()),
        ));
    } else if !target_is_ancestor {
        risks.push(risk(
            RiskCode::NotAncestor,
            Severity::High,
            if is_shallow(vcs) {
                format!(
                    "the target {} is not found in HEAD's history, which this shallow clone cuts short: it may be an ancestor beyond the clone's depth",
                    to.short()
                )
            } else {
                format!(
                    "the target {} is not an ancestor of HEAD: the rollback would also move to commits HEAD never had",
                    to.short()
                )
            },
        ));
    }
    if target.registry_entry.as_ref().is_some_and(|e| e.known_bad) {
        risks.push(risk(
            RiskCode::TargetKnownBad,
            Severity::High,
            format!("the target {} is marked bad in the registry", to.short()),
        ));
    } else if !target.registry_entry.as_ref().is_some_and(|e| e.verified) {
        risks.push(risk(
            RiskCode::TargetUnverified,
            Severity::Medium,
            format!("the target {} is not a verified known-good commit", to.short()),
        ));
    }
    let count = |c: Category| changes_by_category.get(&c).copied().unwrap_or(0);
    if count(Category::Migrations) > 0 {
        risks.push(risk(
            RiskCode::MigrationsChanged,
            Severity::High,
            format!(
                "{} migration file(s) differ: a fast rollback would run the old code on the newer schema",
                count(Category::Migrations)
            ),
        ));
    }
    if count(Category::Dependencies) > 0 {
        risks.push(risk(
            RiskCode::DependenciesChanged,
            Severity::Medium,
            format!(
                "{} dependency file(s) differ: reinstall dependencies after the rollback",
                count(Category::Dependencies)
            ),
        ));
    }
    if count(Category::Env) > 0 {
        risks.push(risk(
            RiskCode::EnvChanged,
            Severity::Medium,
            format!("{} env/config file(s) differ", count(Category::Env)),
        ));
    }
    let submodules: Vec<&RepoPath> = changes.iter().filter(|c| c.submodule).map(|c| &c.path).collect();
    if !submodules.is_empty() {
        risks.push(risk(
            RiskCode::SubmoduleChanged,
            Severity::Medium,
            format!(
                "{} submodule(s) record another commit at the target ({}): the reset moves the record, not the submodule's files; run `{}` after the rollback, and again after its undo",
                submodules.len(),
                show_paths(submodules.iter().copied()),
                submodule_update(&submodules)
            ),
        ));
    }
    if !dirty.at_target_paths.is_empty() {
        risks.push(risk(
            RiskCode::UntrackedAtTargetPaths,
            Severity::Medium,
            format!(
                "{} untracked or ignored path(s) sit where the target has files: they are snapshotted, then replaced",
                dirty.at_target_paths.len()
            ),
        ));
    }
    let deps = dependency_folders(&dirty.untracked);
    if !deps.is_empty() {
        let list: Vec<String> = deps.iter().map(|(dir, n)| format!("`{dir}/` ({n} file(s))")).collect();
        risks.push(risk(
            RiskCode::UntrackedDependencies,
            Severity::Medium,
            format!(
                "installed dependencies are untracked and not ignored: {}; the run removes them with the other untracked files (kept in the snapshot, back on `undo`), and the app may not start until they are reinstalled; list them in `.gitignore` to keep them",
                list.join(", ")
            ),
        ));
    }
    if !dirty.is_clean() {
        risks.push(risk(
            RiskCode::DirtyTree,
            Severity::Info,
            format!(
                "uncommitted work: {} modified, {} staged, {} untracked; all of it is snapshotted and `undo` restores it",
                dirty.modified.len(),
                dirty.staged.len(),
                dirty.untracked.len()
            ),
        ));
    }
    risks.sort_by_key(|r| std::cmp::Reverse(r.severity));

    let (recommended_level, recommendation) = if count(Category::Migrations) > 0 {
        (Level::Full, "migration files changed: the schema must go back with the code".to_owned())
    } else {
        (Level::Fast, "no migration changes: rolling back the code is enough".to_owned())
    };

    Ok(Assessment {
        production: None,
        workdir,
        backend: vcs.name().into(),
        head,
        head_summary,
        target,
        target_is_ancestor,
        commits_rolled_back: rolled,
        commits_rolled_back_total,
        changes,
        changes_by_category,
        dirty,
        risks,
        recommended_level,
        recommendation,
        registry: registry_path,
        database: None,
        env: None,
        data_loss: Vec::new(),
        status,
    })
}
