//! Version control: the [`VcsBackend`] trait and its two implementations.
//!
//! - [`git2::Git2Backend`]: libgit2 in process, no `git` binary needed;
//! - [`cli::GitCliBackend`]: the `git` command line, run with a clean `GIT_*` environment.
//!
//! Both pass one conformance suite (`tests/it/vcs.rs`), so the engine does not care which it
//! gets. The trait is synchronous: every operation is local disk work that blocks anyway; async
//! callers run the engine on a blocking thread.

mod blobs;
pub mod cli;
mod command;
mod error;
pub(crate) mod format;
pub mod git2;
pub(crate) mod index_scan;
mod worktrees;

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::paths::RepoPath;

pub use blobs::{MissingBlob, NotLocalBlob, ObjectKind};
pub(crate) use error::not_owned;
pub use error::{Error, Ownership};

/// Result of a backend call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A full, lowercase hexadecimal commit (or object) id.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CommitId(String);

impl CommitId {
    /// Validates a full object id: 40 (SHA-1) or 64 (SHA-256) hex digits.
    pub fn new(hex: impl Into<String>) -> Option<Self> {
        let hex = hex.into().to_ascii_lowercase();
        ((hex.len() == 40 || hex.len() == 64) && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(Self(hex))
    }

    /// The full id.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 7 digits, for people.
    pub fn short(&self) -> &str {
        &self.0[..7]
    }
}

impl TryFrom<String> for CommitId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        CommitId::new(s.clone()).ok_or_else(|| format!("`{s}` is not a full commit id"))
    }
}

impl From<CommitId> for String {
    fn from(c: CommitId) -> String {
        c.0
    }
}

impl fmt::Display for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CommitId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CommitId({})", self.short())
    }
}

/// Where HEAD is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The commit HEAD resolves to.
    pub commit: CommitId,
    /// The branch's short name (`main`), or `None` when HEAD is detached.
    pub branch: Option<String>,
}

/// One commit, summarized.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    /// Full id.
    pub id: CommitId,
    /// First line of the message.
    pub summary: String,
    /// Author name.
    pub author: String,
    /// Committer time, seconds since the epoch.
    pub time: i64,
}

/// How a path differs between two trees, or between a tree and the index or work tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Present only on the newer side.
    Added,
    /// Present on both sides with different content or mode.
    Modified,
    /// Present only on the older side.
    Deleted,
    /// A file became a symlink or the reverse (or a submodule).
    TypeChanged,
}

/// A path that differs between two commits. Renames appear as a deletion plus an addition.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The path.
    pub path: RepoPath,
    /// How it differs, from the `from` commit's point of view to `to`.
    pub kind: ChangeKind,
    /// A submodule (gitlink) on either side: a reset moves the commit recorded for it, not
    /// the submodule's own work tree (`git submodule update` does that).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub submodule: bool,
}

/// The state of one path in the work tree, as `git status` sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum StatusKind {
    /// Tracked (in HEAD or the index) and different somewhere.
    Tracked {
        /// HEAD → index difference, if any (`git add`ed changes).
        staged: Option<ChangeKind>,
        /// Index → work tree difference, if any.
        unstaged: Option<ChangeKind>,
    },
    /// Not tracked and not ignored. Listed file by file, never as a collapsed folder.
    Untracked,
    /// Ignored. Folders whose whole content is ignored may be listed once, as the folder.
    Ignored,
}

/// One non-clean path in the work tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusEntry {
    /// The path. For an ignored folder listed whole, the folder's path.
    pub path: RepoPath,
    /// Its state.
    #[serde(flatten)]
    pub kind: StatusKind,
    /// For a tracked file whose index entry is flagged so that `git status` does not look at
    /// the work tree: the flag. `git status` hides such a change; a rollback still has to keep
    /// it (see [`VcsBackend::flagged`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hidden_by: Option<IndexFlag>,
}

impl StatusEntry {
    /// An entry that `git status` itself shows.
    pub fn new(path: RepoPath, kind: StatusKind) -> Self {
        Self { path, kind, hidden_by: None }
    }
}

/// A flag of an index entry that makes git skip comparing the entry with its work-tree file,
/// so that `git status`, `git diff` and `git add -u` never show local changes to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexFlag {
    /// `git update-index --assume-unchanged`: often used to keep a local edit of a tracked
    /// config file out of sight.
    AssumeUnchanged,
    /// `git update-index --skip-worktree`, also set by sparse checkout on the files it leaves
    /// out of the work tree (for those, an absent file is the normal state, not a change).
    SkipWorktree,
}

impl IndexFlag {
    /// The `git update-index` option that sets it, without the dashes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AssumeUnchanged => "assume-unchanged",
            Self::SkipWorktree => "skip-worktree",
        }
    }
}

/// An index entry flagged [`IndexFlag::AssumeUnchanged`] or [`IndexFlag::SkipWorktree`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlaggedEntry {
    /// The path.
    pub path: RepoPath,
    /// The flag; [`IndexFlag::SkipWorktree`] when both are set.
    pub flag: IndexFlag,
    /// How the work-tree file differs from the index entry, as git sees it once the flag is
    /// cleared (content after clean filters, executable bit, file type); `None` when it does
    /// not differ, and for an absent skip-worktree file.
    pub changed: Option<ChangeKind>,
}

/// An entry of the index that differs from HEAD, with the object it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StagedBlob {
    /// The path.
    pub path: RepoPath,
    /// The object id the index records for it.
    pub oid: CommitId,
    /// The object's bytes.
    pub content: Vec<u8>,
}

/// A git backend. Paths are relative to [`VcsBackend::workdir`].
pub trait VcsBackend: Send + Sync {
    /// `"git2"` or `"git-cli"`.
    fn name(&self) -> &'static str;

    /// The root of the work tree.
    fn workdir(&self) -> &Path;

    /// The repository's common git folder (`.git`, shared by linked worktrees): state lives here.
    fn git_dir(&self) -> &Path;

    /// The index file of this work tree.
    fn index_path(&self) -> PathBuf;

    /// Where HEAD is. Errors with [`Error::UnbornBranch`] on a branch with no commits.
    fn head(&self) -> Result<Head>;

    /// Resolves a revision (full or short hash, branch, tag, `HEAD~2`, ...) to a commit.
    fn resolve(&self, rev: &str) -> Result<CommitId>;

    /// Summary of one commit.
    fn commit_info(&self, id: &CommitId) -> Result<CommitInfo>;

    /// Whether `ancestor` is `descendant` or one of its ancestors.
    fn is_ancestor(&self, ancestor: &CommitId, descendant: &CommitId) -> Result<bool>;

    /// Commits reachable from `to` but not from `from` (`git log from..to`), newest first,
    /// at most `limit`.
    fn commits_between(&self, from: &CommitId, to: &CommitId, limit: usize) -> Result<Vec<CommitInfo>>;

    /// Paths that differ between the trees of `from` and `to`, sorted by path, no rename
    /// detection.
    fn diff(&self, from: &CommitId, to: &CommitId) -> Result<Vec<Change>>;

    /// Every non-clean path of the work tree, sorted by path: tracked changes (staged and
    /// unstaged), untracked files one by one, and ignored paths when `include_ignored`.
    ///
    /// Unlike `git status`, it also lists the local changes of flagged entries (the `changed`
    /// of [`VcsBackend::flagged`]) as unstaged changes, with [`StatusEntry::hidden_by`] set.
    fn status(&self, include_ignored: bool) -> Result<Vec<StatusEntry>>;

    /// Every index entry flagged assume-unchanged or skip-worktree (stage 0, no submodules),
    /// sorted by path, each compared with its work-tree file. Empty, and cheap, when nothing is
    /// flagged.
    fn flagged(&self) -> Result<Vec<FlaggedEntry>>;

    /// Every path tracked in `commit`'s tree (files, symlinks, submodules), sorted.
    fn tracked_paths(&self, commit: &CommitId) -> Result<Vec<RepoPath>>;

    /// The bytes of `path` in `commit`, `None` if the commit has no such file.
    fn read_file_at(&self, commit: &CommitId, path: &RepoPath) -> Result<Option<Vec<u8>>>;

    /// The size of the blob of `path` in `commit` (before any checkout filter), `None` if the
    /// commit has no such file. The default reads the blob.
    fn blob_size_at(&self, commit: &CommitId, path: &RepoPath) -> Result<Option<u64>> {
        Ok(self.read_file_at(commit, path)?.map(|b| b.len() as u64))
    }

    /// The value of a git configuration key as git reads it (repository, global and system
    /// files), `None` when unset. The default knows none (in-memory fakes).
    fn config_value(&self, _key: &str) -> Result<Option<String>> {
        Ok(None)
    }

    /// Whether a checkout may write the bytes of one of `paths` differently from its blob:
    /// end-of-line conversion or filters configured through `core.autocrlf` (`true` or
    /// `input`), `core.eol`, `core.attributesFile`, `info/attributes`, or a `.gitattributes`
    /// file tracked at `commit` in the root folder or a folder holding one of `paths` (an
    /// attributes file applies to paths at or below its folder only). Then the bytes on disk of
    /// a clean file depend on the settings at the time it was checked out, which git does not
    /// record.
    fn checkout_converts(&self, commit: &CommitId, paths: &[&RepoPath]) -> Result<bool> {
        let autocrlf = self
            .config_value("core.autocrlf")?
            .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "input" | "yes" | "on" | "1"));
        if autocrlf
            || self.config_value("core.eol")?.is_some()
            || self.config_value("core.attributesFile")?.is_some()
            || self.git_dir().join("info/attributes").exists()
        {
            return Ok(true);
        }
        self.any_file_at(commit, &attribute_files_for(paths))
    }

    /// The first of `paths` that a checkout of `commit` writes through a filter program this
    /// back-end cannot run ([`Error::FilterNotRun`]: `filter=NAME` in the attributes, with
    /// `filter.NAME.smudge` or `.process` configured, as git LFS and git-crypt set up), or an
    /// attribute file of `commit` among `paths` that assigns one. The default: none, for a
    /// back-end that runs git's filters.
    fn filter_not_run(&self, commit: &CommitId, paths: &[&RepoPath]) -> Result<Option<Error>> {
        let _ = (commit, paths);
        Ok(None)
    }

    /// The work trees of this repository other than this one that have `branch` checked out
    /// (`git worktree add --force`): a reset of this one moves their HEAD too. The default
    /// reads git's files (`vcs::worktrees`); the main work tree is the parent of a common folder
    /// named `.git`, or `core.worktree`.
    fn worktrees_on_branch(&self, branch: &str) -> Vec<PathBuf> {
        let common = self.git_dir();
        let main = if common.file_name().is_some_and(|n| n == ".git") {
            common.parent().map(Path::to_path_buf)
        } else {
            self.config_value("core.worktree").ok().flatten().map(|w| common.join(w))
        };
        worktrees::checked_out_elsewhere(common, main.as_deref(), self.workdir(), branch)
    }

    /// The promisor remote of a partial clone (`extensions.partialClone`, or a remote with
    /// `remote.<name>.promisor` set): the remote git fetches missing objects from. `None` for a
    /// full clone, whose object database holds every object its commits name. The default
    /// knows none (in-memory fakes).
    fn promisor_remote(&self) -> Result<Option<String>> {
        Ok(None)
    }

    /// The files among `paths` whose blob at `commit` (a regular file or a symlink there) is
    /// not in the object database: what a checkout of `commit` cannot write without fetching.
    /// Looks at no object unless the repository is a partial clone
    /// ([`VcsBackend::promisor_remote`]), and never fetches. The default finds none.
    fn missing_blobs(&self, commit: &CommitId, paths: &[&RepoPath]) -> Result<Vec<MissingBlob>> {
        let _ = (commit, paths);
        Ok(Vec::new())
    }

    /// Whether [`VcsBackend::fetch_blobs`] can fetch (the default: no, as libgit2).
    fn fetches_blobs(&self) -> bool {
        false
    }

    /// Fetches `blobs` from the promisor remote, as git's own lazy fetch does; `Ok(false)` when
    /// this back-end cannot (the default: libgit2 never fetches a missing object).
    fn fetch_blobs(&self, blobs: &[MissingBlob]) -> Result<bool> {
        let _ = blobs;
        Ok(false)
    }

    /// Fetches the git LFS objects of `commit`'s files from `remote` (`git lfs fetch REMOTE
    /// COMMIT`: only those not stored locally), so that a checkout's LFS filter finds them;
    /// `Ok(false)` when this back-end cannot (the default: libgit2 runs no filter, and the git2
    /// back-end refuses LFS files before it writes anything).
    fn fetch_lfs(&self, remote: &str, commit: &CommitId) -> Result<bool> {
        let _ = (remote, commit);
        Ok(false)
    }

    /// Runs git LFS's smudge filter on the pointer of `path` as a checkout would (`git lfs
    /// smudge -- PATH`), its output discarded: `Ok(true)` when it writes the file, either from
    /// an object it has or downloads, or as the pointer itself for a path that
    /// `lfs.fetchexclude` or `lfs.fetchinclude` leaves out; an error when it fails (the LFS
    /// server down), as the checkout would. `Ok(false)` when this back-end cannot run it (the
    /// default).
    fn lfs_smudges(&self, path: &RepoPath, pointer: &[u8]) -> Result<bool> {
        let _ = (path, pointer);
        Ok(false)
    }

    /// What the repository's `reference-transaction` hook said when it refused to let HEAD's
    /// branch move to `to`, asked in a transaction that is prepared and then aborted (nothing
    /// moves); `None` when it accepts or there is none. The default: none, for a back-end that
    /// runs no hooks (libgit2 runs none).
    fn hook_refuses_move(&self, to: &CommitId) -> Result<Option<String>> {
        let _ = to;
        Ok(None)
    }

    /// Two tracked paths of one of `commits` whose names differ only in letter case (`lib.py`,
    /// `Lib.py`), when this back-end's checkout cannot keep them apart: the git2 back-end with
    /// `core.ignorecase` set takes them for one file and leaves one of them out of the work
    /// tree. The default: none, for a back-end whose checkout writes both.
    fn case_twins(&self, commits: &[&CommitId]) -> Result<Option<(RepoPath, RepoPath)>> {
        let _ = commits;
        Ok(None)
    }

    /// Whether any of `files` is a file (a blob) in `commit`'s tree. The default reads each
    /// with [`VcsBackend::read_file_at`]; a back-end can look them up without reading them.
    fn any_file_at(&self, commit: &CommitId, files: &std::collections::BTreeSet<RepoPath>) -> Result<bool> {
        for file in files {
            if self.read_file_at(commit, file)?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Index entries that differ from HEAD, with their objects' content (the staged state a
    /// snapshot must keep so that `undo` can restore the index).
    fn staged_blobs(&self) -> Result<Vec<StagedBlob>>;

    /// Whether the object database has this object.
    fn has_object(&self, oid: &CommitId) -> Result<bool>;

    /// Writes `content` as a blob into the object database; returns its id.
    fn write_blob(&self, content: &[u8]) -> Result<CommitId>;

    /// `git reset --hard <commit>`: moves the current branch (or a detached HEAD), the index
    /// and the work tree to `commit`. Untracked files at paths `commit` tracks are overwritten;
    /// other untracked and ignored files are left alone. `message` goes to the reflog.
    ///
    /// Flagged entries ([`VcsBackend::flagged`]) are handled as git does, except that a
    /// changed one never makes the reset fail:
    /// - where `commit` has the same blob and mode, the flag is kept; an assume-unchanged file
    ///   gets the index's content back, a skip-worktree file is left as it is;
    /// - where `commit` differs, a changed file gets `commit`'s content and loses its flag (git
    ///   refuses: "Entry '...' not uptodate").
    ///
    /// An unchanged flagged entry that `commit` changes goes as git takes it (an assume-unchanged
    /// flag is dropped, a skip-worktree flag kept).
    fn reset_hard(&self, commit: &CommitId, message: &str) -> Result<()>;

    /// Records the stat data of the tracked files whose content matches the index (as `git
    /// update-index --refresh` does), and returns the tracked paths whose work-tree entry does
    /// not (changed, deleted, replaced, unmerged), sorted: what a hard reset writes over
    /// besides what its target changes. The default lists the unstaged changes of
    /// [`VcsBackend::status`] and records nothing.
    fn refresh(&self) -> Result<Vec<RepoPath>> {
        Ok(self
            .status(false)?
            .into_iter()
            .filter(|e| matches!(e.kind, StatusKind::Tracked { unstaged: Some(_), .. }))
            .map(|e| e.path)
            .collect())
    }

    /// [`VcsBackend::reset_hard`] right after [`VcsBackend::refresh`]: a back-end whose reset
    /// refreshes the index first may skip that. The default is `reset_hard`.
    fn reset_hard_refreshed(&self, commit: &CommitId, message: &str) -> Result<()> {
        self.reset_hard(commit, message)
    }

    /// Makes `branch` point at `commit` (creating it if needed), makes HEAD a symbolic ref to
    /// it, and resets index and work tree hard to `commit`. Used by undo when the branch
    /// changed since the snapshot. Flagged entries as in [`VcsBackend::reset_hard`].
    fn checkout_branch_at(&self, branch: &str, commit: &CommitId, message: &str) -> Result<()>;

    /// Creates or moves the reference `name` (full, e.g. `refs/forge-rollback/runs/ID/from`).
    /// Keeps commits reachable so `git gc` cannot prune what an undo needs.
    fn set_ref(&self, name: &str, commit: &CommitId, message: &str) -> Result<()>;

    /// Deletes the reference `name`; no error if it does not exist.
    fn delete_ref(&self, name: &str) -> Result<()>;

    /// The commit a reference points to, `None` if it does not exist.
    fn read_ref(&self, name: &str) -> Result<Option<CommitId>>;

    /// When HEAD arrived at the commit it is at (seconds since the epoch), from HEAD's reflog
    /// (`logs/HEAD` in the work tree's git directory): the time of the last deploy on a machine that
    /// deploys by moving its checkout. `None` without a reflog entry for it.
    fn head_arrived_at(&self) -> Result<Option<i64>> {
        let head = self.head()?.commit;
        // HEAD's reflog is the work tree's own (a linked worktree has its own), beside its index.
        let log_path = self.index_path().with_file_name("logs").join("HEAD");
        let Ok(log) = std::fs::read_to_string(log_path) else {
            return Ok(None);
        };
        Ok(arrival(&log, head.as_str()))
    }
}

/// In a reflog (`<old> <new> <name> <<email>> <seconds> <zone>\t<message>` lines, oldest
/// first), when HEAD last arrived at `head`: the newest entry that moved it onto `head`, before
/// any entry that left it (a checkout of the same commit is not an arrival).
fn arrival(log: &str, head: &str) -> Option<i64> {
    for line in log.lines().rev() {
        let entry = line.split('\t').next().unwrap_or_default();
        let mut ids = entry.splitn(3, ' ');
        let (old, new, who) = (ids.next()?, ids.next()?, ids.next()?);
        if new != head {
            return None;
        }
        if old != head {
            let mut tail = who.rsplitn(3, ' ');
            let (_zone, secs) = (tail.next()?, tail.next()?);
            return secs.parse().ok();
        }
    }
    None
}

/// Which implementation to use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BackendKind {
    /// libgit2 in process.
    Git2,
    /// The `git` command line (the default: git's status scan and checkout are multi-threaded,
    /// 17% faster on a 20k-file rollback, docs/PERFORMANCE.md).
    #[default]
    GitCli,
}

/// Opens the repository containing `dir` with the chosen backend.
pub fn open(kind: BackendKind, dir: &Path) -> Result<Box<dyn VcsBackend>> {
    Ok(match kind {
        BackendKind::Git2 => Box::new(git2::Git2Backend::open(dir)?),
        BackendKind::GitCli => Box::new(cli::GitCliBackend::open_with_reader(dir)?),
    })
}

/// The `.gitattributes` files that could apply to `paths`: one in the root folder and one in
/// each folder that holds one of them, each once.
pub(crate) fn attribute_files_for(paths: &[&RepoPath]) -> std::collections::BTreeSet<RepoPath> {
    let mut out = std::collections::BTreeSet::new();
    if paths.is_empty() {
        return out;
    }
    out.insert(RepoPath::new(".gitattributes").expect("a valid path"));
    for p in paths {
        for dir in p.ancestors() {
            let mut file = dir.as_bytes().to_vec();
            file.extend_from_slice(b"/.gitattributes");
            if let Ok(f) = RepoPath::new(file)
                && !out.insert(f)
            {
                // Its parents are in already.
                break;
            }
        }
    }
    out
}

/// What a revision's leading name (up to `~`, `^`, `:` or `@`) may name, by git's rules: the
/// full ref names git tries for it, in its order of preference (`refs/NAME`, `refs/tags/NAME`,
/// `refs/heads/NAME`, `refs/remotes/NAME`, `refs/remotes/NAME/HEAD`; git's first rule, the bare
/// name, is for pseudo-refs such as `HEAD`), and whether it could be a short hash too. Git
/// warns when more than one of these exists and takes the first; a rollback refuses instead
/// when they lead to different commits ([`Error::AmbiguousRevision`]).
pub(crate) struct RefCandidates {
    /// The full ref names to look up.
    pub refs: [String; 5],
    /// The name is 4 to 39 hex digits: also a possible short hash.
    pub short_hash: Option<String>,
}

impl RefCandidates {
    pub(crate) fn of(rev: &str) -> Option<Self> {
        let name = rev.split(['~', '^', ':', '@']).next().unwrap_or_default();
        if name.is_empty() {
            return None;
        }
        let hex = (4..40).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_hexdigit());
        Some(Self {
            refs: [
                format!("refs/{name}"),
                format!("refs/tags/{name}"),
                format!("refs/heads/{name}"),
                format!("refs/remotes/{name}"),
                format!("refs/remotes/{name}/HEAD"),
            ],
            short_hash: hex.then(|| name.to_owned()),
        })
    }
}

/// Whether an untracked or ignored path has a component that spells `.git` in any letter case
/// (`.GIT`, `sub/.Git/x`). Git never tracks such a path, so a rollback neither captures nor
/// removes it: status leaves it out, and it stays exactly as it is. (On a case-insensitive
/// file system it *is* the git directory; on Linux it is an ordinary file someone made.)
pub(crate) fn names_git_dir(path: &[u8]) -> bool {
    path.split(|b| *b == b'/').any(|c| c.eq_ignore_ascii_case(b".git"))
}

/// Makes the tracked entries of flagged paths say what [`VcsBackend::flagged`] says: the
/// local change, which git's status leaves out, as an unstaged change marked
/// [`StatusEntry::hidden_by`]; and no change for an absent skip-worktree file (libgit2 lists
/// those of a sparse checkout as deleted). Keeps `entries` sorted.
pub(crate) fn add_hidden_changes(entries: &mut Vec<StatusEntry>, flagged: &[FlaggedEntry]) {
    if flagged.is_empty() {
        return;
    }
    let tracked: HashMap<RepoPath, usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.kind, StatusKind::Tracked { .. }))
        .map(|(i, e)| (e.path.clone(), i))
        .collect();
    for f in flagged {
        if let Some(&i) = tracked.get(&f.path) {
            let entry = &mut entries[i];
            if let StatusKind::Tracked { unstaged, .. } = &mut entry.kind {
                *unstaged = f.changed;
            }
            entry.hidden_by = f.changed.map(|_| f.flag);
        } else if let Some(kind) = f.changed {
            entries.push(StatusEntry {
                path: f.path.clone(),
                kind: StatusKind::Tracked { staged: None, unstaged: Some(kind) },
                hidden_by: Some(f.flag),
            });
        }
    }
    entries.retain(|e| !matches!(e.kind, StatusKind::Tracked { staged: None, unstaged: None }));
    git2::sort_status(entries);
}
