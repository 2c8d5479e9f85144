//! The back-ends' errors, and what some of them say.

use std::path::{Path, PathBuf};

use super::NotLocalBlob;

/// Errors from a version-control backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The folder is not inside a git work tree.
    #[error("`{}` is not a git repository", path.display())]
    NotARepository {
        /// The folder that was opened.
        path: PathBuf,
        /// Why the backend said so.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The repository uses a format libgit2 cannot read: the reftable ref storage
    /// (`extensions.refStorage`), SHA-256 object ids (`extensions.objectFormat`), or another
    /// repository extension.
    #[error("`{}` uses {format}, a repository format forge-rollback (libgit2) cannot read", path.display())]
    UnsupportedFormat {
        /// The folder that was opened.
        path: PathBuf,
        /// The format, for people.
        format: String,
        /// What libgit2 said.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The repository belongs to another user, and git does not use a repository another
    /// user owns unless `safe.directory` names it.
    #[error(
        "`{}` belongs to {}, not to {} who runs forge-rollback, and git refuses a repository another user owns",
        .0.path.display(), .0.owner, .0.me
    )]
    NotOwned(Box<Ownership>),
    /// A bare repository has no work tree to roll back.
    #[error("`{}` is a bare repository; there is no work tree to roll back", path.display())]
    BareRepository {
        /// The repository.
        path: PathBuf,
    },
    /// HEAD points at a branch with no commits yet.
    #[error("the current branch `{branch}` has no commits yet")]
    UnbornBranch {
        /// The unborn branch's short name.
        branch: String,
    },
    /// A revision that names no commit.
    #[error("unknown revision `{rev}`")]
    UnknownRevision {
        /// What the user typed.
        rev: String,
    },
    /// A short hash that matches more than one object, or a name that several refs have
    /// (a tag and a branch called the same, on different commits).
    #[error(
        "ambiguous revision `{rev}`: it names more than one commit (a short hash several objects share, or a name several refs have, such as a tag and a branch)"
    )]
    AmbiguousRevision {
        /// What the user typed.
        rev: String,
    },
    /// The `git` program could not be started.
    #[error("could not run `git`")]
    GitNotFound(#[source] std::io::Error),
    /// Writing a file needs a filter program (git LFS, git-crypt) that this back-end cannot
    /// run: it would write what the repository stores instead of the file.
    #[error("{}", filter_not_run(path, driver, *by_attributes))]
    FilterNotRun {
        /// The file, relative to the work tree.
        path: String,
        /// The filter driver's name (`lfs`).
        driver: String,
        /// `path` is an attribute file that starts applying the driver to a pattern.
        by_attributes: bool,
    },
    /// Writing a file needs git's `working-tree-encoding` conversion (the work tree keeps it in
    /// UTF-16, say, the repository in UTF-8), which this back-end does not make: it would write
    /// the repository's bytes instead of the file.
    #[error("{}", encoding_not_run(path, encoding, *by_attributes))]
    EncodingNotRun {
        /// The file, relative to the work tree.
        path: String,
        /// The encoding the attributes name (`UTF-16LE`).
        encoding: String,
        /// `path` is an attribute file that starts giving files that encoding.
        by_attributes: bool,
    },
    /// The index is split (`core.splitIndex`, `git update-index --split-index`): its `link`
    /// extension is one libgit2 cannot read, so the `git2` back-end cannot use the repository.
    #[error(
        "the repository's index is a split index (`core.splitIndex`, or `git update-index --split-index`), which the `git2` back-end (libgit2) cannot read"
    )]
    SplitIndex,
    /// The index is sparse (`git sparse-checkout set --sparse-index`, `index.sparse`): its
    /// folder entries (`sdir` extension) are ones libgit2 cannot read, so the `git2` back-end
    /// cannot use the repository.
    #[error(
        "the repository's index is a sparse index (`git sparse-checkout set --sparse-index`, or `index.sparse`), which the `git2` back-end (libgit2) cannot read"
    )]
    SparseIndex,
    /// A `git` command that waits on a remote did not end within its limit, and was killed.
    #[error("`git {args}` did not end within {} s, and was stopped", limit.as_secs_f64())]
    Timeout {
        /// The arguments, space-joined.
        args: String,
        /// How long it was given.
        limit: std::time::Duration,
    },
    /// A file's blob is not in this partial clone (`git clone --filter=blob:none`): libgit2
    /// never fetches it, and fetching it through `git` failed or was not tried.
    #[error(
        "the blob {} of `{}` in commit {} is not in this partial clone{}",
        blob.oid,
        blob.path,
        blob.commit.short(),
        if fetch.is_some() { format!(", and fetching it from `{}` failed", blob.remote) } else { String::new() }
    )]
    BlobNotLocal {
        /// Which blob, of which file.
        blob: Box<NotLocalBlob>,
        /// Why the fetch failed, when one was tried (the `git-cli` back-end).
        #[source]
        fetch: Option<Box<Error>>,
    },
    /// A `git` command failed.
    #[error("`git {args}` failed (exit {code}): {stderr}")]
    Command {
        /// The arguments, space-joined.
        args: String,
        /// The exit code, or -1 when killed by a signal.
        code: i32,
        /// What git printed on stderr, trimmed.
        stderr: String,
    },
    /// `git reset --hard` finished, but could not remove files the target does not have (a
    /// folder the user may not write, an immutable file, a file mounted over): the work tree
    /// is not the target's.
    #[error("`git reset --hard` could not remove {} file(s) the target does not have: {}", left.len(), left.join("; "))]
    NotRemoved {
        /// `'PATH': REASON`, as git said.
        left: Vec<String>,
    },
    /// A libgit2 call failed.
    #[error("libgit2: {context}")]
    Git2 {
        /// What was being done.
        context: String,
        /// The libgit2 error.
        #[source]
        source: ::git2::Error,
    },
    /// Output of git that could not be parsed.
    #[error("could not parse the output of `git {command}`: {detail}")]
    Parse {
        /// The git subcommand.
        command: String,
        /// What was wrong.
        detail: String,
    },
    /// An I/O error on the work tree.
    #[error(transparent)]
    Io(#[from] crate::fsutil::IoError),
}

/// Who owns what, for [`Error::NotOwned`].
#[derive(Debug)]
pub struct Ownership {
    /// What belongs to another user: the work tree, its `.git`, or the git folder.
    pub path: PathBuf,
    /// The work tree (the folder holding `.git`), or the folder opened.
    pub worktree: PathBuf,
    /// The owner's name (`uid N` when it has none).
    pub owner: String,
    /// The owner's user id.
    pub owner_uid: u32,
    /// The user running forge-rollback.
    pub me: String,
}

/// [`Error::EncodingNotRun`]'s message.
fn encoding_not_run(path: &str, encoding: &str, by_attributes: bool) -> String {
    let what = if by_attributes {
        format!("`{path}` of the target makes git write files in {encoding} (`working-tree-encoding`)")
    } else {
        format!("`{path}` is kept in the work tree in {encoding} (`working-tree-encoding` in its attributes)")
    };
    format!(
        "{what}, a conversion the git2 back-end (libgit2) does not make: it would write the repository's UTF-8 bytes instead of the file"
    )
}

/// [`Error::FilterNotRun`]'s message.
fn filter_not_run(path: &str, driver: &str, by_attributes: bool) -> String {
    let what = if by_attributes {
        format!("`{path}` of the target applies git's `{driver}` filter to files the checkout writes")
    } else {
        format!("`{path}` needs git's `{driver}` filter")
    };
    format!(
        "{what} (`filter.{driver}` in the git configuration), which the git2 back-end cannot run: it would write what the repository stores (for LFS a pointer, for git-crypt ciphertext) instead of the file"
    )
}

/// [`Error::NotOwned`] for the repository around `dir`: its work tree is the nearest folder
/// from `dir` up that holds a `.git` (else `dir`); what belongs to another user is the first of
/// the work tree, its `.git` and the git folder a `.git` file points to that is not ours (git
/// checks them all), else the work tree.
pub(crate) fn not_owned(dir: &Path) -> Error {
    use std::os::unix::fs::MetadataExt as _;
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let worktree = dir.ancestors().find(|d| d.join(".git").symlink_metadata().is_ok()).unwrap_or(&dir).to_path_buf();
    let dot_git = worktree.join(".git");
    let pointed = std::fs::read_to_string(&dot_git).ok().and_then(|text| {
        let to = text.lines().next()?.strip_prefix("gitdir: ")?.trim().to_owned();
        Some(worktree.join(to))
    });
    let me = crate::fsutil::euid();
    let owned = |p: &Path| std::fs::symlink_metadata(p).ok().map(|m| (p.to_path_buf(), m.uid()));
    let (path, uid) = [Some(worktree.as_path()), Some(dot_git.as_path()), pointed.as_deref()]
        .into_iter()
        .flatten()
        .filter_map(owned)
        .find(|(_, uid)| *uid != me)
        .or_else(|| owned(&worktree))
        .unwrap_or_else(|| (worktree.clone(), me));
    Error::NotOwned(Box::new(Ownership {
        path,
        worktree,
        owner: crate::fsutil::user_name(uid),
        owner_uid: uid,
        me: crate::fsutil::user_name(me),
    }))
}
