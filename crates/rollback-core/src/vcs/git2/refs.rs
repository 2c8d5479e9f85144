//! Names that several refs share.

use git2::{Oid, Repository};

/// Whether `rev`'s leading name is ambiguous in a way git would resolve by its own preference
/// (see [`crate::vcs::RefCandidates`]): refs of that name, or a ref and a short hash, that lead to
/// different commits. A tag and a branch both called `release`, on different commits: git
/// and libgit2 take the tag; a rollback must not guess.
pub(super) fn names_commits_apart(repo: &Repository, rev: &str) -> bool {
    let Some(c) = crate::vcs::RefCandidates::of(rev) else { return false };
    let by_ref = |full: &String| repo.find_reference(full).ok()?.peel_to_commit().ok().map(|c| c.id());
    let mut commits: Vec<Oid> = c.refs.iter().filter_map(by_ref).collect();
    if let Some(hex) = c.short_hash.filter(|_| !commits.is_empty()) {
        let by_hash = || -> Option<Oid> {
            let full = repo.odb().ok()?.exists_prefix(Oid::from_str(&hex).ok()?, hex.len()).ok()?;
            repo.find_object(full, None).ok()?.peel_to_commit().ok().map(|c| c.id())
        };
        commits.extend(by_hash());
    }
    commits.windows(2).any(|w| w[0] != w[1])
}
