//! Reading a repository by name: the commit a revision names, a file of a commit's tree, and
//! why a repository could not be opened. Shared by the back-end and [`super::BareRepo`].

use std::path::Path;

use git2::{ErrorCode, Repository};

use super::refs::names_commits_apart;
use super::{blob_at, git2_err, to_id};
use crate::paths::RepoPath;
use crate::vcs::{CommitId, Error, Result};

/// Why the repository around `dir` could not be opened: another user's, a format libgit2
/// cannot read, or no repository at all.
pub(super) fn open_error(dir: &Path, e: git2::Error) -> Error {
    match e.code() {
        ErrorCode::Owner => crate::vcs::not_owned(dir),
        _ => match crate::vcs::format::unsupported_format(e.message()) {
            Some(format) => Error::UnsupportedFormat { path: dir.to_path_buf(), format, source: Box::new(e) },
            None => Error::NotARepository { path: dir.to_path_buf(), source: Some(Box::new(e)) },
        },
    }
}

/// The commit `rev` names in `repo`, as git's `rev-parse REV^{commit}` finds it; a revision
/// that names nothing, or a short hash shared by commits, is an error naming it.
pub(super) fn resolve_in(repo: &Repository, rev: &str) -> Result<CommitId> {
    let unknown = || Error::UnknownRevision { rev: rev.to_owned() };
    if rev.is_empty() || rev.starts_with('-') {
        return Err(unknown());
    }
    let object = repo.revparse_single(rev).map_err(|e| match e.code() {
        // Under 4 hex digits git knows no short hash (libgit2: "prefix length too short").
        ErrorCode::Ambiguous if rev.len() < 4 && rev.bytes().all(|b| b.is_ascii_hexdigit()) => unknown(),
        ErrorCode::Ambiguous => Error::AmbiguousRevision { rev: rev.to_owned() },
        ErrorCode::NotFound
        | ErrorCode::InvalidSpec
        | ErrorCode::Invalid
        | ErrorCode::Peel
        | ErrorCode::UnbornBranch => unknown(),
        _ => git2_err(format!("resolve `{rev}`"))(e),
    })?;
    let commit = object.peel_to_commit().map_err(|_| unknown())?;
    if names_commits_apart(repo, rev) {
        return Err(Error::AmbiguousRevision { rev: rev.to_owned() });
    }
    Ok(to_id(commit.id()))
}

/// The content of the file at `path` in `commit` (`None`: no file there).
pub(super) fn read_file_in(repo: &Repository, commit: &CommitId, path: &RepoPath) -> Result<Option<Vec<u8>>> {
    let Some(id) = blob_at(repo, commit, path)? else { return Ok(None) };
    let blob = repo.find_blob(id).map_err(|e| match e.code() {
        // A partial clone's blob that was never fetched: said as such (a raw "object not
        // found" reads as a broken repository), with the remote it would come from.
        ErrorCode::NotFound => match super::partial::promisor_remote(repo) {
            Ok(Some(remote)) => Error::BlobNotLocal {
                blob: Box::new(crate::vcs::NotLocalBlob {
                    path: path.to_string(),
                    commit: commit.clone(),
                    oid: to_id(id),
                    remote,
                }),
                fetch: None,
            },
            _ => git2_err(format!("read blob {id}"))(e),
        },
        _ => git2_err(format!("read blob {id}"))(e),
    })?;
    Ok(Some(blob.content().to_vec()))
}

/// The object `rev` names when it exists but is not a commit (a tag of a tree or a blob):
/// its id and kind. `None` when it names nothing, or a commit.
pub(super) fn non_commit_in(repo: &Repository, rev: &str) -> Option<(CommitId, crate::vcs::ObjectKind)> {
    if rev.is_empty() || rev.starts_with('-') {
        return None;
    }
    let mut object = repo.revparse_single(rev).ok()?;
    // Peeling "to any" peels a tag one step (and fails on a blob): a tag of a tag is peeled
    // until it is not one.
    while object.kind() == Some(git2::ObjectType::Tag) {
        object = object.peel(git2::ObjectType::Any).ok()?;
    }
    let kind = match object.kind()? {
        git2::ObjectType::Tree => crate::vcs::ObjectKind::Tree,
        git2::ObjectType::Blob => crate::vcs::ObjectKind::Blob,
        _ => return None,
    };
    Some((to_id(object.id()), kind))
}
