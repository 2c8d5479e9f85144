//! libgit2 backend: [`Git2Backend`].
//!
//! Everything runs in process through the `git2` crate; no `git` program is needed. The
//! semantics follow `git` itself (the conformance suite in `tests/it/vcs.rs` runs the same
//! tests against this backend and the command-line one). Where libgit2 differs from git, this
//! backend corrects it:
//! - status: libgit2 reports nothing below an ignored folder that holds tracked files; we walk
//!   those folders ourselves (`ignored_below_tracked`). A `git add -N` entry is reported
//!   as git does (not staged, added in the work tree), not as a staged addition;
//! - `reset_hard` is libgit2's `git_reset` done step by step, so that the reflog gets our
//!   message. The reflog entry is exactly `message`, where the command line's `git reset`
//!   writes `message: updating HEAD`. libgit2's checkout knows nothing of assume-unchanged and
//!   skip-worktree flags: we put back the flags git keeps and the changed skip-worktree files
//!   git leaves alone. It has no sparse checkout either: the reset works out which of the
//!   target's files the patterns leave out (`sparse.rs`), does not name them to the checkout,
//!   and flags them skip-worktree, as git does;
//! - open: libgit2's `discover` forgets where the `.git` file was, and takes the git folder's
//!   parent for the work tree (wrong for `git init --separate-git-dir`); `open_ext` keeps it.

use std::collections::{BTreeSet, HashMap};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use git2::{
    Delta, DiffOptions, ErrorCode, ObjectType, Oid, Repository, RepositoryOpenFlags, Sort, Status, StatusOptions, Tree,
    build::CheckoutBuilder,
};

use super::{
    Change, ChangeKind, CommitId, CommitInfo, Error, FlaggedEntry, Head, MissingBlob, Result, StagedBlob, StatusEntry,
    StatusKind, VcsBackend,
};
use crate::fsutil::IoContext;
use crate::paths::RepoPath;

mod bare;
mod filters;
mod flags;
mod ignored;
mod lookup;
mod partial;
mod refs;
mod sparse;
mod way;
mod writes;

pub use bare::BareRepo;
use ignored::ignored_below_tracked;
use lookup::{open_error, read_file_in, resolve_in};

/// Mode of a gitlink (submodule) entry.
const MODE_GITLINK: u32 = 0o160_000;

/// Mode of a symlink entry.
const MODE_SYMLINK: u32 = 0o120_000;

/// Whether a tree or index entry's `mode` is a regular file (executable or not): what git's
/// filters apply to.
fn is_regular(mode: u32) -> bool {
    matches!(mode, 0o100_644 | 0o100_755)
}

/// `GIT_INDEX_ENTRY_INTENT_TO_ADD`: a `git add -N` entry, not staged content.
const INTENT_TO_ADD: u16 = 1 << 13;

/// `set_ref` and `delete_ref` take full names under `refs/` only: never `HEAD` or a short
/// branch name by mistake.
pub(super) fn check_full_ref(name: &str) -> Result<()> {
    if name.starts_with("refs/") && name.len() > "refs/".len() {
        Ok(())
    } else {
        Err(Error::UnknownRevision { rev: name.to_owned() })
    }
}

/// Sorts status entries by path bytes; for one path, the tracked entry comes before the
/// untracked one (`git rm --cached` leaves both), as `git status` prints them.
pub(super) fn sort_status(entries: &mut [StatusEntry]) {
    fn rank(kind: &StatusKind) -> u8 {
        match kind {
            StatusKind::Tracked { .. } => 0,
            StatusKind::Untracked => 1,
            StatusKind::Ignored => 2,
        }
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path).then_with(|| rank(&a.kind).cmp(&rank(&b.kind))));
}

/// libgit2 backend.
pub struct Git2Backend {
    repo: Mutex<Repository>,
    workdir: PathBuf,
    git_dir: PathBuf,
    worktree_git_dir: PathBuf,
    /// The repository names objects with SHA-1 (no `extensions.objectFormat`, or `sha1`): the
    /// only format [`super::index_scan`] reads.
    sha1: bool,
}

fn git2_err(context: impl Into<String>) -> impl FnOnce(git2::Error) -> Error {
    let context = context.into();
    // A split index (its `link` extension) or a sparse one (`sdir`), met by whichever call
    // reads the index first, is refused as such, naming the way out, not as a raw libgit2
    // error.
    move |source| {
        if source.message().contains("mandatory extension: 'link'") {
            Error::SplitIndex
        } else if source.message().contains("mandatory extension: 'sdir'") {
            Error::SparseIndex
        } else {
            Error::Git2 { context, source }
        }
    }
}

fn to_id(oid: Oid) -> CommitId {
    CommitId::new(oid.to_string()).expect("libgit2 prints full hex ids")
}

fn to_oid(id: &CommitId) -> Result<Oid> {
    Oid::from_str(id.as_str()).map_err(git2_err(format!("parse object id {id}")))
}

fn repo_path(bytes: &[u8]) -> Result<RepoPath> {
    RepoPath::new(bytes.to_vec())
        .map_err(|e| Error::Parse { command: "libgit2".to_owned(), detail: format!("invalid path from libgit2: {e}") })
}

/// Every non-tree entry below `tree`, as `(path, oid, mode)`, in tree order.
fn walk_tree(repo: &Repository, tree: &Tree<'_>, prefix: &[u8], out: &mut Vec<(Vec<u8>, Oid, u32)>) -> Result<()> {
    for entry in tree {
        let mut path = prefix.to_vec();
        if !path.is_empty() {
            path.push(b'/');
        }
        path.extend_from_slice(entry.name_bytes());
        if entry.kind() == Some(ObjectType::Tree) {
            let sub = repo.find_tree(entry.id()).map_err(git2_err(format!("read tree {}", entry.id())))?;
            walk_tree(repo, &sub, &path, out)?;
        } else {
            let mode = u32::try_from(entry.filemode()).unwrap_or_default();
            out.push((path, entry.id(), mode));
        }
    }
    Ok(())
}

/// The id of the blob at `path` in `commit`'s tree; `None` when there is none (or a folder or
/// submodule is there).
fn blob_at(repo: &Repository, commit: &CommitId, path: &RepoPath) -> Result<Option<Oid>> {
    let tree = tree_of(repo, commit)?;
    let entry = match tree.get_path(Path::new(OsStr::from_bytes(path.as_bytes()))) {
        Ok(e) => e,
        Err(e) if e.code() == ErrorCode::NotFound => return Ok(None),
        Err(e) => return Err(git2_err(format!("look up {path} in {commit}"))(e)),
    };
    Ok((entry.kind() == Some(ObjectType::Blob)).then(|| entry.id()))
}

/// Lets libgit2 keep parsed trees of up to 16 MiB in its object cache (256 MiB in all, its
/// default), once per process. Its default keeps none over 4 KiB: a folder of more than about
/// a hundred entries was inflated again, through its delta chain, each time a later step
/// looked a path up in a tree the assessment's diff had already read (4 of a no-change
/// snapshot's 14 ms on the medium bench repository, docs/PERFORMANCE.md). Without it
/// everything works, only slower. The binary and the Python module call it as they start.
///
/// # Safety
///
/// It sets a global of libgit2 that libgit2 reads without synchronization: call it before
/// any thread of the process uses libgit2 (first thing in `main`, or while a module is being
/// imported), never while one may.
#[allow(unsafe_code)]
pub unsafe fn cache_trees() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: the caller's promise: no other thread uses libgit2 now. A failure leaves
        // the default.
        let _ = unsafe { git2::opts::set_cache_object_limit(ObjectType::Tree, 16 << 20) };
    });
}

impl Git2Backend {
    /// Opens the repository containing `dir`. The work tree is the folder holding the `.git`
    /// folder or file (`git init --separate-git-dir`, submodules and linked worktrees have a
    /// `.git` file), or `core.worktree`.
    pub fn open(dir: &Path) -> Result<Self> {
        let repo = Repository::open_ext(dir, RepositoryOpenFlags::CROSS_FS, std::iter::empty::<&OsStr>())
            .map_err(|e| open_error(dir, e))?;
        if repo.is_bare() {
            return Err(Error::BareRepository { path: repo.path().to_path_buf() });
        }
        let Some(workdir) = repo.workdir() else {
            return Err(Error::BareRepository { path: repo.path().to_path_buf() });
        };
        let workdir = workdir.canonicalize().at("resolve work tree", workdir)?;
        let git_dir = repo.commondir().canonicalize().at("resolve git folder", repo.commondir())?;
        let worktree_git_dir = repo.path().canonicalize().at("resolve git folder", repo.path())?;
        let sha1 = repo
            .config()
            .and_then(|c| c.get_string("extensions.objectformat"))
            .map_or(true, |f| f.eq_ignore_ascii_case("sha1"));
        Ok(Self { repo: Mutex::new(repo), workdir, git_dir, worktree_git_dir, sha1 })
    }

    /// Whether any stage-0 entry of the index (gitlinks aside) is flagged assume-unchanged or
    /// skip-worktree: the common answer, no, needs no `git ls-files` (see [`super::cli`]).
    pub(crate) fn any_flagged(&self) -> Result<bool> {
        // The common case read straight from the file; libgit2 when the walk cannot tell.
        if let Some(answer) = self.sha1.then(|| super::index_scan::any_flagged(&self.index_path())).flatten() {
            return Ok(answer);
        }
        let repo = self.repo();
        let index = fresh_index(&repo)?;
        Ok(index.iter().any(|e| flags::index_flag(&e).is_some()))
    }

    fn repo(&self) -> MutexGuard<'_, Repository> {
        self.repo.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Forced checkout of `commit`'s tree, then HEAD (or the branch it points to) moved with
    /// `message`, then the index set to the tree: libgit2's own `git_reset` order, with our
    /// reflog message.
    fn reset_locked(
        &self,
        repo: &Repository,
        commit: &CommitId,
        message: &str,
        branch_ref: Option<&str>,
    ) -> Result<()> {
        let oid = to_oid(commit)?;
        let target = repo.find_commit(oid).map_err(git2_err(format!("find commit {commit}")))?;
        let tree = target.tree().map_err(git2_err(format!("read tree of {commit}")))?;
        // Checkout compares with the index: make sure it is the one on disk.
        fresh_index(repo)?;
        let before = repo.head().and_then(|h| h.peel_to_tree()).ok();
        let plan = flags::plan(repo, &self.workdir, &tree)?;
        // libgit2 announces every file it will write before it writes any: one that needs a
        // filter program it cannot run stops the checkout with nothing changed. The files it
        // leaves to `write_missing_added` are checked first.
        let added = match &before {
            Some(before) => way::added_entries(repo, before, &tree)?,
            None => Vec::new(),
        };
        let drivers = filters::configured_drivers(repo)?;
        if !drivers.is_empty() {
            for (path, id, _) in added.iter().filter(|(_, _, mode)| *mode != MODE_SYMLINK) {
                let blob = || repo.find_blob(*id).ok().map(|b| b.content().to_vec());
                if let Some(e) = filters::refusal(repo, path, blob, || None, &drivers)? {
                    return Err(e);
                }
            }
        }
        // What git's checkout clears first, libgit2's does not, or through symlinks.
        let (mut target_entries, mut head_entries) = (Vec::new(), Vec::new());
        walk_tree(repo, &tree, b"", &mut target_entries)?;
        if let Some(before) = &before {
            walk_tree(repo, before, b"", &mut head_entries)?;
        }
        let indexed: Vec<Vec<u8>> = fresh_index(repo)?.iter().map(|e| e.path).collect();
        let way = way::plan(&self.workdir, &target_entries, &head_entries, &indexed)?;
        let left_out = sparse::left_out(repo, &self.workdir, &target_entries);
        way.clear(repo, &self.workdir)?;
        let mut guard = writes::Guard::default();
        let mut checkout = CheckoutBuilder::new();
        checkout.force();
        let mut nothing_to_write = false;
        // Files of HEAD or the index where the target has a folder with files left out:
        // removed before the checkout, and not named to it (their name would stand for the
        // folder's files).
        let mut replaced: Vec<PathBuf> = Vec::new();
        if left_out.is_empty() {
            for spec in way.pathspecs() {
                checkout.path(spec);
            }
        } else {
            let all = target_entries.iter().chain(&head_entries).map(|(p, _, _)| p.as_slice());
            let (paths, folders) =
                sparse::named_paths(&left_out, all.chain(indexed.iter().map(Vec::as_slice)), |p| way.leaves_alone(p));
            replaced.extend(folders.iter().map(|p| self.workdir.join(OsStr::from_bytes(p))));
            nothing_to_write = paths.is_empty();
            checkout.disable_pathspec_match(true);
            for path in paths {
                checkout.path(OsStr::from_bytes(path));
            }
        }
        for path in &replaced {
            if std::fs::symlink_metadata(path).is_ok_and(|m| !m.is_dir()) {
                std::fs::remove_file(path).at("remove", path)?;
            }
        }
        guard.watch(&mut checkout, repo, &self.workdir, &drivers);
        // An empty path list would mean every path.
        let checked_out =
            if nothing_to_write { Ok(()) } else { repo.checkout_tree(tree.as_object(), Some(&mut checkout)) };
        drop(checkout);
        guard.result(checked_out, &format!("check out {commit}"))?;
        if let Some(name) = branch_ref {
            repo.reference(name, oid, true, message).map_err(git2_err(format!("move {name}")))?;
            repo.reference_symbolic("HEAD", name, true, message).map_err(git2_err(format!("point HEAD at {name}")))?;
        } else {
            // HEAD's branch (its reflog and HEAD's get `message`), or HEAD itself when detached.
            let head = repo.find_reference("HEAD").map_err(git2_err("read HEAD"))?;
            let name = head.symbolic_target().map_err(git2_err("read HEAD's target"))?.unwrap_or("HEAD").to_owned();
            repo.reference(&name, oid, true, message).map_err(git2_err(format!("move {name}")))?;
        }
        let mut index = fresh_index(repo)?;
        index.read_tree(&tree).map_err(git2_err("read tree into index"))?;
        plan.keep_flags_in(&mut index)?;
        flags::skip_worktree_in(&mut index, &left_out)?;
        index.write().map_err(git2_err("write index"))?;
        let added: Vec<_> =
            added.into_iter().filter(|(p, _, _)| !left_out.contains(p.as_os_str().as_bytes())).collect();
        way::write_missing_added(repo, &self.workdir, &added)?;
        plan.put_back_files()?;
        repo.cleanup_state().map_err(git2_err("clean up merge state"))?;
        Ok(())
    }
}

/// The tree of `commit`.
fn tree_of<'r>(repo: &'r Repository, commit: &CommitId) -> Result<Tree<'r>> {
    repo.find_commit(to_oid(commit)?).and_then(|c| c.tree()).map_err(git2_err(format!("read tree of {commit}")))
}

/// The blob of the regular file at `path` in `tree`, if it is one.
fn regular_blob(tree: &Tree<'_>, path: &Path) -> Option<Oid> {
    let entry = tree.get_path(path).ok()?;
    u32::try_from(entry.filemode()).is_ok_and(is_regular).then(|| entry.id())
}

/// `a/b/c` → (`a/b`, `c`); `c` → (empty, `c`).
fn split_last(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// The tree of folder `dir` (`/`-separated, empty for the root, which `trees` must hold),
/// from `trees` or read and kept there; `None` when the folder is not in the tree.
fn subtree<'r>(
    repo: &'r Repository,
    trees: &mut HashMap<Vec<u8>, Option<Tree<'r>>>,
    dir: &[u8],
) -> std::result::Result<Option<Tree<'r>>, git2::Error> {
    if let Some(t) = trees.get(dir) {
        return Ok(t.clone());
    }
    let (parent, name) = split_last(dir);
    let found = match subtree(repo, trees, parent)? {
        Some(p) => match p.get_name_bytes(name) {
            Some(e) if e.kind() == Some(ObjectType::Tree) => Some(repo.find_tree(e.id())?),
            _ => None,
        },
        None => None,
    };
    trees.insert(dir.to_vec(), found.clone());
    Ok(found)
}

/// The repository's index, re-read if the file changed on disk (another process, `git add`).
fn fresh_index(repo: &Repository) -> Result<git2::Index> {
    let mut index = repo.index().map_err(git2_err("open index"))?;
    index.read(false).map_err(git2_err("read index"))?;
    Ok(index)
}

fn is_intent_to_add(index: &git2::Index, path: &[u8]) -> bool {
    index.get_path(Path::new(OsStr::from_bytes(path)), 0).is_some_and(|e| e.flags_extended & INTENT_TO_ADD != 0)
}

fn delta_kind(delta: Delta) -> Option<ChangeKind> {
    match delta {
        Delta::Added | Delta::Copied => Some(ChangeKind::Added),
        Delta::Deleted => Some(ChangeKind::Deleted),
        Delta::Modified | Delta::Renamed | Delta::Conflicted => Some(ChangeKind::Modified),
        Delta::Typechange => Some(ChangeKind::TypeChanged),
        Delta::Unmodified | Delta::Ignored | Delta::Untracked | Delta::Unreadable => None,
    }
}

fn staged_kind(s: Status) -> Option<ChangeKind> {
    if s.contains(Status::INDEX_NEW) {
        Some(ChangeKind::Added)
    } else if s.contains(Status::INDEX_DELETED) {
        Some(ChangeKind::Deleted)
    } else if s.contains(Status::INDEX_TYPECHANGE) {
        Some(ChangeKind::TypeChanged)
    } else if s.intersects(Status::INDEX_MODIFIED | Status::INDEX_RENAMED) {
        Some(ChangeKind::Modified)
    } else {
        None
    }
}

fn unstaged_kind(s: Status) -> Option<ChangeKind> {
    if s.contains(Status::WT_DELETED) {
        Some(ChangeKind::Deleted)
    } else if s.contains(Status::WT_TYPECHANGE) {
        Some(ChangeKind::TypeChanged)
    } else if s.intersects(Status::WT_MODIFIED | Status::WT_RENAMED) {
        Some(ChangeKind::Modified)
    } else {
        None
    }
}

impl VcsBackend for Git2Backend {
    fn name(&self) -> &'static str {
        "git2"
    }

    fn workdir(&self) -> &Path {
        &self.workdir
    }

    fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    fn index_path(&self) -> PathBuf {
        self.worktree_git_dir.join("index")
    }

    fn head(&self) -> Result<Head> {
        let repo = self.repo();
        let head_ref = repo.find_reference("HEAD").map_err(git2_err("read HEAD"))?;
        let branch = head_ref.symbolic_target_bytes().map(|t| {
            let short = t.strip_prefix(b"refs/heads/").unwrap_or(t);
            String::from_utf8_lossy(short).into_owned()
        });
        let commit = match head_ref.resolve() {
            Ok(r) => r.peel_to_commit().map_err(git2_err("peel HEAD to a commit"))?,
            Err(e) if e.code() == ErrorCode::NotFound || e.code() == ErrorCode::UnbornBranch => {
                return Err(Error::UnbornBranch { branch: branch.unwrap_or_else(|| "HEAD".to_owned()) });
            }
            Err(e) => return Err(git2_err("resolve HEAD")(e)),
        };
        Ok(Head { commit: to_id(commit.id()), branch })
    }

    fn resolve(&self, rev: &str) -> Result<CommitId> {
        resolve_in(&self.repo(), rev)
    }

    fn commit_info(&self, id: &CommitId) -> Result<CommitInfo> {
        let repo = self.repo();
        let commit = repo.find_commit(to_oid(id)?).map_err(git2_err(format!("find commit {id}")))?;
        Ok(CommitInfo {
            id: to_id(commit.id()),
            summary: String::from_utf8_lossy(commit.summary_bytes().unwrap_or_default()).into_owned(),
            author: String::from_utf8_lossy(commit.author().name_bytes()).into_owned(),
            time: commit.committer().when().seconds(),
        })
    }

    fn is_ancestor(&self, ancestor: &CommitId, descendant: &CommitId) -> Result<bool> {
        let repo = self.repo();
        let (a, d) = (to_oid(ancestor)?, to_oid(descendant)?);
        for oid in [a, d] {
            repo.find_commit(oid).map_err(git2_err(format!("find commit {oid}")))?;
        }
        if a == d {
            return Ok(true);
        }
        repo.graph_descendant_of(d, a)
            .map_err(git2_err(format!("check whether {ancestor} is an ancestor of {descendant}")))
    }

    fn commits_between(&self, from: &CommitId, to: &CommitId, limit: usize) -> Result<Vec<CommitInfo>> {
        let ids = {
            let repo = self.repo();
            let mut walk = repo.revwalk().map_err(git2_err("start a revision walk"))?;
            walk.set_sorting(Sort::TIME | Sort::TOPOLOGICAL).map_err(git2_err("sort the revision walk"))?;
            walk.push(to_oid(to)?).map_err(git2_err(format!("walk from {to}")))?;
            walk.hide(to_oid(from)?).map_err(git2_err(format!("hide {from}")))?;
            walk.take(limit).map(|oid| oid.map(to_id).map_err(git2_err("walk commits"))).collect::<Result<Vec<_>>>()?
        };
        ids.iter().map(|id| self.commit_info(id)).collect()
    }

    fn diff(&self, from: &CommitId, to: &CommitId) -> Result<Vec<Change>> {
        let repo = self.repo();
        let tree_of = |id: &CommitId| -> Result<Tree<'_>> {
            repo.find_commit(to_oid(id)?).and_then(|c| c.tree()).map_err(git2_err(format!("read tree of {id}")))
        };
        let (old, new) = (tree_of(from)?, tree_of(to)?);
        let mut opts = DiffOptions::new();
        opts.include_typechange(true).ignore_submodules(false);
        let diff = repo
            .diff_tree_to_tree(Some(&old), Some(&new), Some(&mut opts))
            .map_err(git2_err(format!("diff {from} {to}")))?;
        let mut out = Vec::new();
        for delta in diff.deltas() {
            let Some(kind) = delta_kind(delta.status()) else {
                continue;
            };
            let file = if kind == ChangeKind::Deleted { delta.old_file() } else { delta.new_file() };
            let path = file.path_bytes().ok_or_else(|| Error::Parse {
                command: "libgit2 diff".to_owned(),
                detail: "a change without a path".to_owned(),
            })?;
            let submodule = [delta.old_file(), delta.new_file()].iter().any(|f| f.mode() == git2::FileMode::Commit);
            out.push(Change { path: repo_path(path)?, kind, submodule });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn status(&self, include_ignored: bool) -> Result<Vec<StatusEntry>> {
        let repo = self.repo();
        let mut opts = StatusOptions::new();
        opts.include_untracked(true)
            .recurse_untracked_dirs(true)
            .include_ignored(include_ignored)
            .recurse_ignored_dirs(false)
            .include_unmodified(false)
            .exclude_submodules(false)
            .renames_head_to_index(false)
            .renames_index_to_workdir(false)
            .renames_from_rewrites(false);
        let statuses = repo.statuses(Some(&mut opts)).map_err(git2_err("read status"))?;
        let index = fresh_index(&repo)?;
        let mut out = Vec::new();
        for entry in statuses.iter() {
            let s = entry.status();
            let raw = entry.path_bytes();
            let raw = raw.strip_suffix(b"/").unwrap_or(raw);
            if s.intersects(Status::WT_NEW | Status::IGNORED) && super::names_git_dir(raw) {
                continue;
            }
            let path = repo_path(raw)?;
            if s.contains(Status::CONFLICTED) {
                out.push(StatusEntry::new(
                    path,
                    StatusKind::Tracked { staged: None, unstaged: Some(ChangeKind::Modified) },
                ));
                continue;
            }
            let (mut staged, mut unstaged) = (staged_kind(s), unstaged_kind(s));
            if staged == Some(ChangeKind::Added) && is_intent_to_add(&index, raw) {
                // `git add -N`: git reports "not staged, added in the work tree".
                (staged, unstaged) = (None, Some(ChangeKind::Added));
            }
            if staged.is_some() || unstaged.is_some() {
                out.push(StatusEntry::new(path.clone(), StatusKind::Tracked { staged, unstaged }));
            }
            if s.contains(Status::WT_NEW) {
                out.push(StatusEntry::new(path, StatusKind::Untracked));
            } else if s.contains(Status::IGNORED) {
                out.push(StatusEntry::new(path, StatusKind::Ignored));
            }
        }
        if include_ignored {
            ignored_below_tracked(&repo, &self.workdir, &mut out)?;
        }
        sort_status(&mut out);
        out.dedup();
        let flagged: Vec<FlaggedEntry> = flags::flagged(&repo, &self.workdir)?.into_iter().map(|(f, ..)| f).collect();
        super::add_hidden_changes(&mut out, &flagged);
        Ok(out)
    }

    /// The tracked paths whose work-tree entry differs from the index (libgit2 compares the
    /// stat data, then the content), without the untracked walk of [`VcsBackend::status`].
    /// Nothing is written: libgit2's checkout compares for itself.
    fn refresh(&self) -> Result<Vec<RepoPath>> {
        let repo = self.repo();
        let mut opts = StatusOptions::new();
        opts.show(git2::StatusShow::Workdir)
            .include_untracked(false)
            .include_ignored(false)
            .exclude_submodules(true)
            .renames_index_to_workdir(false);
        let statuses = repo.statuses(Some(&mut opts)).map_err(git2_err("read status"))?;
        let differ = Status::WT_MODIFIED | Status::WT_DELETED | Status::WT_TYPECHANGE | Status::CONFLICTED;
        let mut out: Vec<RepoPath> = statuses
            .iter()
            .filter(|e| e.status().intersects(differ))
            .map(|e| repo_path(e.path_bytes()))
            .collect::<Result<_>>()?;
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn flagged(&self) -> Result<Vec<FlaggedEntry>> {
        if !self.any_flagged()? {
            return Ok(Vec::new());
        }
        let repo = self.repo();
        Ok(flags::flagged(&repo, &self.workdir)?.into_iter().map(|(f, ..)| f).collect())
    }

    fn tracked_paths(&self, commit: &CommitId) -> Result<Vec<RepoPath>> {
        let repo = self.repo();
        let tree = repo
            .find_commit(to_oid(commit)?)
            .and_then(|c| c.tree())
            .map_err(git2_err(format!("read tree of {commit}")))?;
        let mut entries = Vec::new();
        walk_tree(&repo, &tree, b"", &mut entries)?;
        let mut out = entries.into_iter().map(|(p, _, _)| repo_path(&p)).collect::<Result<Vec<_>>>()?;
        out.sort();
        Ok(out)
    }

    fn config_value(&self, key: &str) -> Result<Option<String>> {
        let repo = self.repo();
        let config = repo.config().map_err(git2_err("read the git configuration".to_owned()))?;
        match config.get_string(key) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(git2_err(format!("read `{key}` from the git configuration"))(e)),
        }
    }

    fn filter_not_run(&self, commit: &CommitId, paths: &[&RepoPath]) -> Result<Option<Error>> {
        // An encoding comes from attributes only: looked up where some may apply (asked before
        // the repository is taken: the question takes it too).
        let encodes = self.checkout_converts(commit, paths)?;
        let repo = self.repo();
        let drivers = filters::configured_drivers(&repo)?;
        if drivers.is_empty() && !encodes {
            return Ok(None);
        }
        let target = tree_of(&repo, commit)?;
        let head = repo.head().and_then(|h| h.peel_to_tree()).ok();
        for path in paths {
            // Only a regular file of `commit` is written through a filter; a path it does not
            // have is removed, a symlink or a submodule is never filtered.
            let Some(id) = regular_blob(&target, path.as_path()) else { continue };
            let blob = |id| repo.find_blob(id).ok().map(|b| b.content().to_vec());
            let old = || head.as_ref().and_then(|h| regular_blob(h, path.as_path())).and_then(blob);
            if encodes && let Some(e) = filters::encoding_refusal(&repo, path.as_path(), || blob(id), old)? {
                return Ok(Some(e));
            }
            if !drivers.is_empty()
                && let Some(e) = filters::refusal(&repo, path.as_path(), || blob(id), old, &drivers)?
            {
                return Ok(Some(e));
            }
        }
        Ok(None)
    }

    fn promisor_remote(&self) -> Result<Option<String>> {
        partial::promisor_remote(&self.repo())
    }

    fn missing_blobs(&self, commit: &CommitId, paths: &[&RepoPath]) -> Result<Vec<MissingBlob>> {
        partial::missing_blobs(&self.repo(), commit, paths)
    }

    fn case_twins(&self, commits: &[&CommitId]) -> Result<Option<(RepoPath, RepoPath)>> {
        partial::case_twins(&self.repo(), commits)
    }

    /// Looks the files up folder by folder, each folder's tree read once (the candidates
    /// share their parents; a lookup by path reads every tree from the root again), and reads
    /// no blob.
    fn any_file_at(&self, commit: &CommitId, files: &BTreeSet<RepoPath>) -> Result<bool> {
        if files.is_empty() {
            return Ok(false);
        }
        let repo = self.repo();
        let root = repo
            .find_commit(to_oid(commit)?)
            .and_then(|c| c.tree())
            .map_err(git2_err(format!("read tree of {commit}")))?;
        let mut trees: HashMap<Vec<u8>, Option<Tree<'_>>> = HashMap::from([(Vec::new(), Some(root))]);
        for file in files {
            let (dir, name) = split_last(file.as_bytes());
            let tree = subtree(&repo, &mut trees, dir).map_err(git2_err(format!("look up {file} in {commit}")))?;
            if tree.is_some_and(|t| t.get_name_bytes(name).is_some_and(|e| e.kind() == Some(ObjectType::Blob))) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    fn blob_size_at(&self, commit: &CommitId, path: &RepoPath) -> Result<Option<u64>> {
        let repo = self.repo();
        let Some(id) = blob_at(&repo, commit, path)? else { return Ok(None) };
        let odb = repo.odb().map_err(git2_err("open object database".to_owned()))?;
        let (size, _) = odb.read_header(id).map_err(git2_err(format!("read the size of {path} in {commit}")))?;
        Ok(Some(size as u64))
    }

    fn read_file_at(&self, commit: &CommitId, path: &RepoPath) -> Result<Option<Vec<u8>>> {
        read_file_in(&self.repo(), commit, path)
    }

    fn staged_blobs(&self) -> Result<Vec<StagedBlob>> {
        let repo = self.repo();
        let mut head_entries = HashMap::new();
        match repo.head().and_then(|h| h.peel_to_tree()) {
            Ok(tree) => {
                let mut entries = Vec::new();
                walk_tree(&repo, &tree, b"", &mut entries)?;
                head_entries.extend(entries.into_iter().map(|(p, oid, mode)| (p, (oid, mode))));
            }
            Err(e) if e.code() == ErrorCode::UnbornBranch || e.code() == ErrorCode::NotFound => {}
            Err(e) => return Err(git2_err("read HEAD's tree")(e)),
        }
        let index = fresh_index(&repo)?;
        let mut out = Vec::new();
        for entry in index.iter() {
            let stage = (entry.flags >> 12) & 0x3;
            if stage != 0 || entry.mode == MODE_GITLINK || entry.flags_extended & INTENT_TO_ADD != 0 {
                continue;
            }
            if head_entries.get(&entry.path) == Some(&(entry.id, entry.mode)) {
                continue;
            }
            let blob = repo.find_blob(entry.id).map_err(git2_err(format!("read blob {}", entry.id)))?;
            out.push(StagedBlob {
                path: repo_path(&entry.path)?,
                oid: to_id(entry.id),
                content: blob.content().to_vec(),
            });
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    fn has_object(&self, oid: &CommitId) -> Result<bool> {
        let repo = self.repo();
        let odb = repo.odb().map_err(git2_err("open object database"))?;
        Ok(odb.exists(to_oid(oid)?))
    }

    fn write_blob(&self, content: &[u8]) -> Result<CommitId> {
        let repo = self.repo();
        repo.blob(content).map(to_id).map_err(git2_err("write blob"))
    }

    fn reset_hard(&self, commit: &CommitId, message: &str) -> Result<()> {
        let repo = self.repo();
        self.reset_locked(&repo, commit, message, None)
    }

    fn checkout_branch_at(&self, branch: &str, commit: &CommitId, message: &str) -> Result<()> {
        if branch.starts_with('-') || !git2::Branch::name_is_valid(branch).unwrap_or(false) {
            return Err(Error::Git2 {
                context: format!("check out branch `{branch}`"),
                source: git2::Error::from_str("invalid branch name"),
            });
        }
        let repo = self.repo();
        self.reset_locked(&repo, commit, message, Some(&format!("refs/heads/{branch}")))
    }

    fn set_ref(&self, name: &str, commit: &CommitId, message: &str) -> Result<()> {
        check_full_ref(name)?;
        let repo = self.repo();
        repo.reference(name, to_oid(commit)?, true, message).map(drop).map_err(git2_err(format!("set {name}")))
    }

    fn delete_ref(&self, name: &str) -> Result<()> {
        check_full_ref(name)?;
        let repo = self.repo();
        match repo.find_reference(name) {
            Ok(mut r) => r.delete().map_err(git2_err(format!("delete {name}"))),
            Err(e) if e.code() == ErrorCode::NotFound => Ok(()),
            Err(e) => Err(git2_err(format!("find {name}"))(e)),
        }
    }

    fn read_ref(&self, name: &str) -> Result<Option<CommitId>> {
        let repo = self.repo();
        match repo.find_reference(name) {
            Ok(r) => {
                let commit = r.peel_to_commit().map_err(git2_err(format!("peel {name} to a commit")))?;
                Ok(Some(to_id(commit.id())))
            }
            Err(e) if e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(git2_err(format!("find {name}"))(e)),
        }
    }
}
