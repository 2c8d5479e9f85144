//! Partial clones through `git`: the promisor remote, the blobs a checkout would have to
//! fetch, and fetching them before anything changes.
//!
//! `git reset --hard` fetches a missing blob when it comes to write the file, after it has
//! removed the files the target does not have: with the remote unreachable it stops there,
//! half-way. So the engine asks which blobs are missing first, and has them fetched in one
//! batch, the way git's own lazy fetch does (`promisor-remote.c`), while nothing has changed.

use std::collections::{BTreeMap, BTreeSet};

use super::{GitCliBackend, parse_id, records, reject_option, split_entry};
use crate::paths::RepoPath;
use crate::vcs::{CommitId, MissingBlob, Result, VcsBackend};

/// Object ids, one a line: what `cat-file --batch-check` and `fetch --stdin` read.
fn one_per_line<'a>(ids: impl Iterator<Item = &'a CommitId>) -> String {
    let mut out = String::new();
    for id in ids {
        out.push_str(id.as_str());
        out.push('\n');
    }
    out
}

impl GitCliBackend {
    pub(super) fn promisor_remote_by_git(&self) -> Result<Option<String>> {
        if let Some(r) = &self.reader {
            return r.promisor_remote();
        }
        if let Some(name) = self.config_value("extensions.partialClone")?.filter(|n| !n.is_empty()) {
            return Ok(Some(name));
        }
        let set = self
            .git()
            .args(["config", "-z", "--type=bool", "--get-regexp", r"^remote\..+\.promisor$"])
            .run_maybe()?
            .unwrap_or_default();
        Ok(records(&set).find_map(|rec| {
            let text = String::from_utf8_lossy(rec);
            let (key, value) = text.split_once('\n')?;
            let remote = key.strip_prefix("remote.")?.strip_suffix(".promisor")?;
            (value == "true").then(|| remote.to_owned())
        }))
    }

    pub(super) fn missing_blobs_by_git(&self, commit: &CommitId, paths: &[&RepoPath]) -> Result<Vec<MissingBlob>> {
        if let Some(r) = &self.reader {
            return r.missing_blobs(commit, paths);
        }
        if paths.is_empty() || self.promisor_remote_by_git()?.is_none() {
            return Ok(Vec::new());
        }
        // Listing trees reads no blob; the object check below must not fetch one either.
        let wanted: BTreeSet<&[u8]> = paths.iter().map(|p| p.as_bytes()).collect();
        let tree =
            self.git().args(["ls-tree", "-r", "-z", "--full-tree", "--end-of-options", commit.as_str()]).run()?;
        let mut blobs = BTreeMap::new();
        for rec in records(&tree) {
            let (_, kind, oid, path) = split_entry("ls-tree", rec)?;
            if kind == b"blob" && wanted.contains(path) {
                blobs.insert(super::parse_path("ls-tree", path)?, parse_id("ls-tree", oid)?);
            }
        }
        if blobs.is_empty() {
            return Ok(Vec::new());
        }
        let input = one_per_line(blobs.values());
        let out = self
            .git()
            .env("GIT_NO_LAZY_FETCH", "1")
            .args(["cat-file", "--batch-check=%(objectname)"])
            .stdin(input.as_bytes())
            .run()?;
        let missing: BTreeSet<&[u8]> = out.split(|b| *b == b'\n').filter_map(|l| l.strip_suffix(b" missing")).collect();
        Ok(blobs
            .into_iter()
            .filter(|(_, oid)| missing.contains(oid.as_str().as_bytes()))
            .map(|(path, oid)| MissingBlob { path, oid })
            .collect())
    }

    /// One blob a partial clone lacks (libgit2 found it missing), read through `git`, which
    /// fetches it from the promisor remote on demand: the registry `gate --registry-at` reads
    /// in a CI checkout made with `filter: blob:none`. Stopped after `[vcs]
    /// fetch_timeout_secs`, as the batch fetch is; a failure names the blob.
    pub(super) fn fetch_blob(&self, blob: Box<crate::vcs::NotLocalBlob>) -> Result<Vec<u8>> {
        let read = self
            .git()
            .args(["cat-file", "blob", "--end-of-options", blob.oid.as_str()])
            .limit(self.fetch_limit())
            .run();
        read.map_err(|e| crate::vcs::Error::BlobNotLocal { blob, fetch: Some(Box::new(e)) })
    }

    /// The batch fetch git's lazy fetch runs: only the named objects, no tags, no refs
    /// written, no negotiation. `GIT_TERMINAL_PROMPT=0` (always set) keeps it from waiting on
    /// a password prompt, and the limit (`[vcs] fetch_timeout_secs`) on a remote that never
    /// answers.
    pub(super) fn fetch_blobs_by_git(&self, blobs: &[MissingBlob]) -> Result<bool> {
        let Some(remote) = self.promisor_remote_by_git()? else { return Ok(false) };
        reject_option(&remote)?;
        let input = one_per_line(blobs.iter().map(|b| &b.oid));
        self.git()
            .args(["-c", "fetch.negotiationAlgorithm=noop", "fetch", "--no-tags", "--no-write-fetch-head"])
            .args(["--recurse-submodules=no", "--filter=blob:none", "--stdin", &remote])
            .stdin(input.as_bytes())
            .limit(self.fetch_limit())
            .run()?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::process::Command;

    use super::*;
    use crate::vcs::git2::Git2Backend;

    fn git(dir: &Path, args: &[&str]) -> String {
        let mut cmd = Command::new("git");
        rollback_testkit::clean_git_env(&mut cmd);
        let out = cmd.arg("-C").arg(dir).args(args).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Without a libgit2 reader (a repository libgit2 cannot open), `git` answers: the same
    /// missing blobs as libgit2 finds, found without fetching them, then fetched in one batch.
    #[test]
    fn git_finds_the_missing_blobs_as_libgit2_does_and_fetches_them() {
        let top = tempfile::tempdir().unwrap();
        let (src, remote, clone) = (top.path().join("src"), top.path().join("remote"), top.path().join("clone"));
        std::fs::create_dir(&src).unwrap();
        git(&src, &["init", "-q", "-b", "main"]);
        std::fs::write(src.join("a.txt"), "one\n").unwrap();
        std::fs::write(src.join("b.txt"), "same\n").unwrap();
        git(&src, &["add", "-A"]);
        git(&src, &["commit", "-qm", "v1"]);
        let v1 = CommitId::new(git(&src, &["rev-parse", "HEAD"])).unwrap();
        std::fs::write(src.join("a.txt"), "two\n").unwrap();
        git(&src, &["commit", "-qam", "v2"]);
        git(top.path(), &["clone", "-q", "--bare", src.to_str().unwrap(), remote.to_str().unwrap()]);
        git(&remote, &["config", "uploadpack.allowFilter", "true"]);
        let url = format!("file://{}", remote.display());
        git(top.path(), &["clone", "-q", "--filter=blob:none", &url, clone.to_str().unwrap()]);

        let by_git = GitCliBackend::open(&clone).unwrap();
        let by_libgit2 = Git2Backend::open(&clone).unwrap();
        assert_eq!(by_git.promisor_remote().unwrap().as_deref(), Some("origin"));
        let (a, b) = (RepoPath::new("a.txt").unwrap(), RepoPath::new("b.txt").unwrap());
        let paths = [&a, &b];
        let missing = by_git.missing_blobs(&v1, &paths).unwrap();
        assert_eq!(
            missing.iter().map(|m| m.path.to_str().unwrap()).collect::<Vec<_>>(),
            ["a.txt"],
            "b.txt is HEAD's blob"
        );
        assert_eq!(by_libgit2.missing_blobs(&v1, &paths).unwrap(), missing);
        assert!(by_git.fetch_blobs(&missing).unwrap());
        assert_eq!(by_git.missing_blobs(&v1, &paths).unwrap(), []);
    }
}
