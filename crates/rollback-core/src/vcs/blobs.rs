//! Blobs a partial clone (`git clone --filter=blob:none`) does not hold: the back-ends find
//! them before a checkout writes them, and name them when a read meets one.

use super::CommitId;
use crate::paths::RepoPath;

/// A file whose blob the object database lacks: a partial clone (`git clone --filter=blob:none`)
/// fetches a blob from its promisor remote only when something reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingBlob {
    /// The file, relative to the work tree.
    pub path: RepoPath,
    /// The blob's id.
    pub oid: CommitId,
}

/// A blob a partial clone does not hold ([`super::Error::BlobNotLocal`]).
#[derive(Debug)]
#[non_exhaustive]
pub struct NotLocalBlob {
    /// The file, relative to the repository's root.
    pub path: String,
    /// The commit read.
    pub commit: CommitId,
    /// The blob's id.
    pub oid: CommitId,
    /// The promisor remote it would come from.
    pub remote: String,
}

/// What kind of object a revision names: a commit, or a tree or a blob (a tag of one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    /// A commit.
    Commit,
    /// A tree.
    Tree,
    /// A blob.
    Blob,
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Commit => "commit",
            Self::Tree => "tree",
            Self::Blob => "blob",
        })
    }
}
