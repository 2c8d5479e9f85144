//! What a checkout needs that libgit2 may not have or keep apart: the blobs of a partial clone
//! (`git clone --filter=blob:none`), which libgit2 never fetches, and names that differ only in
//! letter case, which its checkout takes for one file under `core.ignorecase`.
//!
//! Both are looked up before anything changes: found by the checkout, they stop it half-way,
//! after it removed the files the target does not have (a missing blob), or let it report
//! success with a tracked file left out of the work tree (two names in one).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use git2::{ObjectType, Repository};

use super::{git2_err, repo_path, to_id, tree_of, walk_tree};
use crate::paths::RepoPath;
use crate::vcs::{CommitId, MissingBlob, Result};

/// The promisor remote: `extensions.partialClone` (what `git clone --filter` sets), else the
/// first remote with `remote.<name>.promisor` true.
pub(super) fn promisor_remote(repo: &Repository) -> Result<Option<String>> {
    let config = repo.config().map_err(git2_err("read the git configuration"))?;
    if let Ok(name) = config.get_string("extensions.partialclone")
        && !name.trim().is_empty()
    {
        return Ok(Some(name.trim().to_owned()));
    }
    let mut names = Vec::new();
    config
        .entries(Some(r"^remote\..+\.promisor$"))
        .and_then(|entries| entries.for_each(|e| names.extend(e.name().map(str::to_owned))))
        .map_err(git2_err("read the git configuration"))?;
    Ok(names.into_iter().find_map(|key| {
        let on = config.get_bool(&key).unwrap_or(false);
        let remote = key.strip_prefix("remote.")?.strip_suffix(".promisor")?;
        on.then(|| remote.to_owned())
    }))
}

/// The files among `paths` whose blob at `commit` the object database lacks. A lookup in the
/// object database per path: no blob is read.
pub(super) fn missing_blobs(repo: &Repository, commit: &CommitId, paths: &[&RepoPath]) -> Result<Vec<MissingBlob>> {
    if promisor_remote(repo)?.is_none() {
        return Ok(Vec::new());
    }
    let tree = tree_of(repo, commit)?;
    let odb = repo.odb().map_err(git2_err("open the object database"))?;
    let mut out = Vec::new();
    for path in paths {
        // A path the target has no file at is removed, not written.
        let Ok(entry) = tree.get_path(Path::new(OsStr::from_bytes(path.as_bytes()))) else { continue };
        if entry.kind() == Some(ObjectType::Blob) && !odb.exists(entry.id()) {
            out.push(MissingBlob { path: (*path).clone(), oid: to_id(entry.id()) });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup();
    Ok(out)
}

/// Two tracked paths of one of `commits` that differ only in letter case, when
/// `core.ignorecase` is set (libgit2's checkout then matches paths without regard to case).
pub(super) fn case_twins(repo: &Repository, commits: &[&CommitId]) -> Result<Option<(RepoPath, RepoPath)>> {
    let config = repo.config().map_err(git2_err("read the git configuration"))?;
    if !config.get_bool("core.ignorecase").unwrap_or(false) {
        return Ok(None);
    }
    for commit in commits {
        let mut entries = Vec::new();
        walk_tree(repo, &tree_of(repo, commit)?, b"", &mut entries)?;
        let mut seen: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        for (path, ..) in entries {
            // A folder's name counts too: `Lib/a.py` and `lib/b.py` share one folder for it.
            let folders = path.iter().enumerate().filter(|(_, b)| **b == b'/').map(|(i, _)| i);
            for end in folders.chain([path.len()]) {
                let name = &path[..end];
                let folded = String::from_utf8_lossy(name).to_lowercase().into_bytes();
                match seen.get(&folded) {
                    Some(other) if other.as_slice() != name => {
                        return Ok(Some((repo_path(other)?, repo_path(name)?)));
                    }
                    Some(_) => {}
                    None => {
                        seen.insert(folded, name.to_vec());
                    }
                }
            }
        }
    }
    Ok(None)
}
