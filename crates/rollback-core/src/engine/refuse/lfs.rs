//! Files the reset writes that are stored in git LFS, whose objects are not on this machine:
//! a clone made after that release, or `lfs.fetchexclude`. git's LFS filter downloads them
//! while `git reset --hard` writes the work tree, so when the LFS server is down (an outage is
//! when rollbacks happen) the reset stopped half-way, the live release's files the target lacks
//! already deleted. Found before anything changes: the `git-cli` back-end fetches them first
//! (`git lfs fetch REMOTE TARGET`), and the run is refused, nothing changed, if that fails.
//! The `git2` back-end refuses LFS files anyway (it runs no filter).

use std::path::PathBuf;

use crate::error::Error;
use crate::model::{Risk, RiskCode, RiskSeverity};
use crate::paths::RepoPath;
use crate::vcs::{CommitId, VcsBackend};

/// git-lfs reads a pointer file only up to this size.
const POINTER_MAX: u64 = 1024;

/// Whether a checkout runs git LFS's download filter: `filter.lfs.process` or
/// `filter.lfs.smudge` configured (`git lfs install`), not as `--skip` (`git lfs install
/// --skip-smudge`, which writes the pointers), and `GIT_LFS_SKIP_SMUDGE` not set.
fn downloads(vcs: &dyn VcsBackend) -> bool {
    if std::env::var_os("GIT_LFS_SKIP_SMUDGE").is_some_and(|v| !v.is_empty() && v != "0") {
        return false;
    }
    ["filter.lfs.process", "filter.lfs.smudge"].iter().any(|key| {
        vcs.config_value(key).ok().flatten().is_some_and(|cmd| !cmd.trim().is_empty() && !cmd.contains("--skip"))
    })
}

/// The object id (`sha256` hex) of an LFS pointer file's `content`, `None` for other content.
fn pointer_oid(content: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(content).ok()?;
    let mut lines = text.lines();
    let version = lines.next()?.strip_prefix("version ")?;
    if !matches!(version, "https://git-lfs.github.com/spec/v1" | "https://hawser.github.com/spec/v1") {
        return None;
    }
    let oid = lines.find_map(|l| l.strip_prefix("oid sha256:"))?;
    (oid.len() == 64 && oid.bytes().all(|b| b.is_ascii_hexdigit())).then_some(oid)
}

/// Where git-lfs keeps the object `oid`: `<lfs.storage or .git/lfs>/objects/aa/bb/<oid>`.
fn object_path(vcs: &dyn VcsBackend, oid: &str) -> PathBuf {
    let storage = match vcs.config_value("lfs.storage").ok().flatten() {
        Some(s) => vcs.git_dir().join(s),
        None => vcs.git_dir().join("lfs"),
    };
    storage.join("objects").join(&oid[..2]).join(&oid[2..4]).join(oid)
}

/// The remote git-lfs fetches from: `remote.lfsdefault`, else `origin`.
fn remote(vcs: &dyn VcsBackend) -> String {
    vcs.config_value("remote.lfsdefault").ok().flatten().unwrap_or_else(|| "origin".to_owned())
}

/// The files among `paths` that `commit` stores in LFS and whose objects are not stored here
/// (none when no LFS filter downloads on checkout), each with its pointer. Reads only blobs
/// small enough to be pointers.
fn missing(vcs: &dyn VcsBackend, commit: &CommitId, paths: &[&RepoPath]) -> Result<Vec<(RepoPath, Vec<u8>)>, Error> {
    if paths.is_empty() || !downloads(vcs) {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for path in paths {
        if vcs.blob_size_at(commit, path)?.is_none_or(|size| size > POINTER_MAX) {
            continue;
        }
        let Some(content) = vcs.read_file_at(commit, path)? else { continue };
        if let Some(oid) = pointer_oid(&content)
            && !object_path(vcs, oid).is_file()
        {
            out.push(((*path).clone(), content));
        }
    }
    Ok(out)
}

/// Whether git-lfs's fetch settings leave some paths out (`lfs.fetchinclude`,
/// `lfs.fetchexclude`): its filter then writes those files as their pointers, fetching nothing.
fn fetch_filtered(vcs: &dyn VcsBackend) -> bool {
    ["lfs.fetchinclude", "lfs.fetchexclude"]
        .iter()
        .any(|key| vcs.config_value(key).ok().flatten().is_some_and(|v| !v.trim().is_empty()))
}

/// Why git-lfs's own filter cannot write one of the `missing` files, run on each as the
/// checkout would run it; `None` when it writes them all. A path its fetch settings leave out
/// comes out as its pointer, as `git reset --hard` would write it, and is no obstacle.
fn smudge_failure(vcs: &dyn VcsBackend, missing: &[(RepoPath, Vec<u8>)], otherwise: &str) -> Option<String> {
    missing.iter().find_map(|(path, pointer)| match vcs.lfs_smudges(path, pointer) {
        Ok(true) => None,
        Ok(false) => Some(otherwise.to_owned()),
        Err(e) => Some(e.to_string()),
    })
}

fn lacks(missing: &[RepoPath]) -> String {
    format!(
        "{} file(s) the reset writes are stored in git LFS and their objects are not on this machine (`{}` first)",
        missing.len(),
        missing.first().map(ToString::to_string).unwrap_or_default()
    )
}

/// The risk of a reset to `commit` writing `paths` whose LFS objects are not here: said by
/// `assess` and `plan`, and what [`refusal`] is asked again for.
pub(crate) fn risk(vcs: &dyn VcsBackend, commit: &CommitId, paths: &[&RepoPath]) -> Option<Risk> {
    let missing: Vec<RepoPath> = missing(vcs, commit, paths).ok()?.into_iter().map(|(p, _)| p).collect();
    // Said without running the filter: `plan` neither downloads nor waits on the LFS server.
    let unless = if fetch_filtered(vcs) {
        " (those `lfs.fetchinclude` or `lfs.fetchexclude` leave out are written as their pointers, as git does, and are no obstacle)"
    } else {
        ""
    };
    (!missing.is_empty()).then(|| {
        Risk::new(
            RiskCode::LfsObjectsNotFetched,
            RiskSeverity::Medium,
            format!(
                "{}: the run fetches them from `{}` before it changes anything, and refuses if it cannot (the LFS server down){unless}",
                lacks(&missing),
                remote(vcs)
            ),
        )
    })
}

/// The refusal of a reset to `commit` writing `paths` whose LFS objects are not here. With
/// `fetch` (a run, not a dry run) they are fetched first, and the run is refused only if that
/// fails or leaves some out; a back-end that cannot fetch them refuses LFS files itself.
pub(crate) fn refusal(vcs: &dyn VcsBackend, commit: &CommitId, paths: &[&RepoPath], fetch: bool) -> Option<Error> {
    let missing = match missing(vcs, commit, paths) {
        Ok(m) if m.is_empty() => return None,
        Ok(m) => m,
        Err(e) => return Some(e),
    };
    if !fetch {
        return None;
    }
    let named: Vec<RepoPath> = missing.iter().map(|(p, _)| p.clone()).collect();
    let remote = remote(vcs);
    let why = match vcs.fetch_lfs(&remote, commit) {
        Ok(false) => return None,
        // The fetch may have failed on files the fetch settings leave out of the checkout too.
        Err(e) if fetch_filtered(vcs) => smudge_failure(vcs, &missing, &e.to_string())?,
        Err(e) => e.to_string(),
        Ok(true) => match self::missing(vcs, commit, paths) {
            Ok(still) if still.is_empty() => return None,
            // Left out by the fetch settings, or not on the server: the filter tells which.
            Ok(still) => smudge_failure(vcs, &still, &format!("`{remote}` did not send them"))?,
            Err(e) => return Some(e),
        },
    };
    Some(Error::refused(
        format!("{}, and fetching them failed: {why}", lacks(&named)),
        Some(
            format!(
                "nothing was changed; the reset would stop half-way without them. Make the LFS server of `{remote}` reachable from this host and run again, or fetch them yourself first: `git lfs fetch {remote} {}`",
                commit.short()
            )
            .into(),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::pointer_oid;

    #[test]
    fn a_pointer_names_its_object_and_other_content_names_none() {
        let oid = "4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393";
        let pointer = format!("version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize 12345\n");
        assert_eq!(pointer_oid(pointer.as_bytes()), Some(oid));
        assert_eq!(pointer_oid(b"version 2\noid sha256:abc\n"), None);
        assert_eq!(pointer_oid(b"hello\n"), None);
        let short = "version https://git-lfs.github.com/spec/v1\noid sha256:4d7a\nsize 1\n";
        assert_eq!(pointer_oid(short.as_bytes()), None);
    }
}
