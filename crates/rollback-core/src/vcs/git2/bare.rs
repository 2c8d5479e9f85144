//! A bare repository, as a git server holds it: what `gate` reads there (commits, and files of
//! their trees). Nothing is written; there is no work tree to roll back.

use std::ffi::OsStr;
use std::path::Path;

use git2::{ErrorCode, Repository, RepositoryOpenFlags};

use super::lookup::{non_commit_in, open_error, read_file_in, resolve_in};
use super::{git2_err, to_id};
use crate::paths::RepoPath;
use crate::vcs::{CommitId, Result};

/// A repository opened to read its history only, bare or not.
pub struct BareRepo {
    repo: Repository,
}

impl std::fmt::Debug for BareRepo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BareRepo").field("path", &self.repo.path()).finish()
    }
}

impl BareRepo {
    /// Opens the repository containing `dir` the way git's own commands do inside a hook:
    /// `GIT_DIR` when it is set, and the objects of a push being received. A server-side
    /// `pre-receive` or `update` hook runs while the pushed commits are still in git's
    /// quarantine folder (`GIT_OBJECT_DIRECTORY`, with the repository's own objects in
    /// `GIT_ALTERNATE_OBJECT_DIRECTORIES`): without those, the commit the hook asks about is
    /// unknown.
    ///
    /// When `GIT_DIR` names another repository (`gate -C /srv/repo.git` run from that other
    /// repository's hook), git's variables describe that other push: `dir`'s repository is
    /// opened as it is, its own objects only.
    pub fn open(dir: &Path) -> Result<Self> {
        let plain = RepositoryOpenFlags::CROSS_FS;
        let open =
            |flags| Repository::open_ext(dir, flags, std::iter::empty::<&OsStr>()).map_err(|e| open_error(dir, e));
        let repo = open(plain)?;
        let ours = std::env::var_os("GIT_DIR").is_none_or(|git_dir| {
            // Relative to the current folder, as git reads it.
            match (std::fs::canonicalize(git_dir), std::fs::canonicalize(repo.path())) {
                (Ok(theirs), Ok(ours)) => theirs == ours,
                // A `GIT_DIR` that names no folder is not this repository.
                _ => false,
            }
        });
        let repo = if ours { open(plain | RepositoryOpenFlags::FROM_ENV)? } else { repo };
        Ok(Self { repo })
    }

    /// Whether the repository has no work tree (a server's).
    pub fn is_bare(&self) -> bool {
        self.repo.is_bare()
    }

    /// The git folder.
    pub fn path(&self) -> &Path {
        self.repo.path()
    }

    /// The commit `rev` names.
    pub fn resolve(&self, rev: &str) -> Result<CommitId> {
        resolve_in(&self.repo, rev)
    }

    /// The object `rev` names when it is not a commit (a tag of a tree or a blob): its id and
    /// kind.
    pub fn non_commit(&self, rev: &str) -> Option<(CommitId, crate::vcs::ObjectKind)> {
        non_commit_in(&self.repo, rev)
    }

    /// The branch HEAD names (`refs/heads/main`), born or not; `None` when HEAD is detached.
    pub fn head_branch(&self) -> Option<String> {
        let head = self.repo.find_reference("HEAD").ok()?;
        head.symbolic_target().ok().flatten().map(str::to_owned)
    }

    /// The commit HEAD names and the branch it is on; `None` before the first commit (an empty
    /// repository that is receiving its first push).
    pub fn head(&self) -> Result<Option<(CommitId, Option<String>)>> {
        match self.repo.head() {
            Ok(r) => {
                let branch = r.shorthand().ok().map(str::to_owned);
                let commit = r.peel_to_commit().map_err(git2_err("read HEAD"))?;
                Ok(Some((to_id(commit.id()), branch)))
            }
            Err(e) if e.code() == ErrorCode::UnbornBranch || e.code() == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(git2_err("read HEAD")(e)),
        }
    }

    /// Whether any ref names a commit: a repository whose HEAD is unborn may still hold
    /// branches (HEAD naming `master` where every push goes to `main`).
    pub fn has_refs(&self) -> Result<bool> {
        let mut refs = self.repo.references().map_err(git2_err("list refs"))?;
        Ok(refs.next().is_some())
    }

    /// The content of the file at `path` in `commit` (`None`: no file there).
    pub fn read_file_at(&self, commit: &CommitId, path: &RepoPath) -> Result<Option<Vec<u8>>> {
        read_file_in(&self.repo, commit, path)
    }
}
