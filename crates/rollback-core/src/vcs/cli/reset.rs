//! The reset of the command-line backend: index entries flagged assume-unchanged or
//! skip-worktree, the index refresh before the reset, and `git reset --hard` itself.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{GitCliBackend, parse_err, parse_path, parse_status, records, split_entry};
use crate::fsutil::IoContext;
use crate::paths::RepoPath;
use crate::vcs::{ChangeKind, CommitId, Error, FlaggedEntry, IndexFlag, Result, StatusKind, VcsBackend};

/// A flagged index entry with the mode and object id the index records.
pub(super) struct Flagged {
    pub(super) entry: FlaggedEntry,
    mode: u32,
    oid: Vec<u8>,
}

/// A copy of the index under the git folder, removed when dropped (with git's lock file).
struct TempIndex(PathBuf);

impl TempIndex {
    /// Copies `index` into `dir` under a name no other call uses.
    fn copy(index: &Path, dir: &Path) -> Result<Self> {
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let temp = Self(dir.join(format!("forge-rollback-flags-{}-{n}.index", std::process::id())));
        std::fs::copy(index, &temp.0).at("copy", index)?;
        Ok(temp)
    }
}

impl Drop for TempIndex {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        let mut lock = self.0.clone().into_os_string();
        lock.push(".lock");
        let _ = std::fs::remove_file(lock);
    }
}

impl GitCliBackend {
    /// The flagged index entries, each compared with its work-tree file as git would without
    /// the flag: in a copy of the index with the flags cleared, `git status` (which refreshes
    /// stat data and applies the clean filters). Absent skip-worktree files (sparse checkout)
    /// are not compared.
    pub(super) fn flagged_entries(&self) -> Result<Vec<Flagged>> {
        // libgit2 cannot read every index git writes (a split index, `core.splitIndex`: its
        // `link` extension): then `git` answers, below.
        if let Some(r) = &self.reader
            && !r.any_flagged().unwrap_or(true)
        {
            return Ok(Vec::new());
        }
        let out = self.git().args(["ls-files", "-z", "-v", "-s"]).run()?;
        let mut found = Vec::new();
        for rec in records(&out) {
            let bad = || parse_err("ls-files", format!("bad record `{}`", String::from_utf8_lossy(rec)));
            let (tag, rest) = (rec.first().copied().ok_or_else(bad)?, rec.get(2..).ok_or_else(bad)?);
            let flag = match tag {
                b'S' | b's' => IndexFlag::SkipWorktree,
                b'a'..=b'z' => IndexFlag::AssumeUnchanged,
                _ => continue,
            };
            let (mode, oid, stage, path) = split_entry("ls-files", rest)?;
            if stage != b"0" || mode == 0o160_000 {
                continue;
            }
            let entry = FlaggedEntry { path: parse_path("ls-files", path)?, flag, changed: None };
            found.push(Flagged { entry, mode, oid: oid.to_vec() });
        }
        // An absent skip-worktree file is the normal state of a sparse checkout.
        let compare: HashSet<RepoPath> = found
            .iter()
            .filter(|f| {
                f.entry.flag == IndexFlag::AssumeUnchanged
                    || std::fs::symlink_metadata(f.entry.path.to_fs(&self.workdir)).is_ok()
            })
            .map(|f| f.entry.path.clone())
            .collect();
        if compare.is_empty() {
            return Ok(found);
        }
        let temp = TempIndex::copy(&self.index_path(), &self.worktree_git_dir)?;
        let compared: Vec<&Flagged> = found.iter().filter(|f| compare.contains(&f.entry.path)).collect();
        self.clear_flags(&compared, Some(&temp.0))?;
        let out = self
            .git()
            .args(["--no-optional-locks", "status", "--porcelain=v2", "-z", "--untracked-files=no", "--ignored=no"])
            .args(["--no-renames", "--ignore-submodules=all"])
            .env("GIT_INDEX_FILE", &temp.0)
            .run()?;
        drop(temp);
        let unstaged: HashMap<RepoPath, ChangeKind> = parse_status(&out)?
            .into_iter()
            .filter_map(|e| match e.kind {
                StatusKind::Tracked { unstaged: Some(kind), .. } if compare.contains(&e.path) => Some((e.path, kind)),
                _ => None,
            })
            .collect();
        for f in &mut found {
            f.entry.changed = unstaged.get(&f.entry.path).copied();
        }
        Ok(found)
    }

    /// Clears the flags of `entries` in the index, or in the index file `index`.
    fn clear_flags(&self, entries: &[&Flagged], index: Option<&Path>) -> Result<()> {
        for (flag, option) in
            [(IndexFlag::AssumeUnchanged, "--no-assume-unchanged"), (IndexFlag::SkipWorktree, "--no-skip-worktree")]
        {
            let paths: Vec<u8> = entries
                .iter()
                .filter(|f| f.entry.flag == flag)
                .flat_map(|f| f.entry.path.as_bytes().iter().copied().chain([0]))
                .collect();
            if paths.is_empty() {
                continue;
            }
            let mut git = self.git().args(["update-index", "-z", option, "--stdin"]).stdin(&paths);
            if let Some(index) = index {
                git = git.env("GIT_INDEX_FILE", index);
            }
            git.run()?;
        }
        Ok(())
    }

    /// `git reset --hard`, after clearing the flags of changed flagged entries that `commit`
    /// changes (git would refuse: "Entry '...' not uptodate"; a rollback has their content in
    /// its snapshot). Entries `commit` has unchanged keep their flag, as git does.
    ///
    /// With `refresh`, the index is refreshed first ([`GitCliBackend::refresh_index`]);
    /// without, the caller has just done it.
    pub(super) fn reset(&self, commit: &CommitId, message: &str, refresh: bool) -> Result<()> {
        // The flags to clear where the target differs: those of changed files (the target's
        // version wins), and every assume-unchanged one. Git checks an assume-unchanged entry
        // it must rewrite or delete against its stat data, which a copied or restored tree (or
        // `core.ignoreStat`, which flags every entry) leaves stale: "not uptodate", and the
        // reset stops half-way. Absent skip-worktree entries (a sparse checkout) keep theirs.
        let changed: Vec<Flagged> = self
            .flagged_entries()?
            .into_iter()
            .filter(|f| f.entry.changed.is_some() || f.entry.flag == IndexFlag::AssumeUnchanged)
            .collect();
        if !changed.is_empty() {
            let mut ls_tree = self.git().args(["ls-tree", "-z", "--full-tree"]);
            // Past a few thousand paths (`core.ignoreStat`), the whole tree: no argument list
            // too long for the system.
            ls_tree = if changed.len() > 1000 {
                ls_tree.args(["-r", "--end-of-options", commit.as_str()])
            } else {
                ls_tree
                    .args(["--end-of-options", commit.as_str()])
                    .args(changed.iter().map(|f| OsStr::from_bytes(f.entry.path.as_bytes())))
            };
            let out = ls_tree.run()?;
            let mut at_target = HashMap::new();
            for rec in records(&out) {
                let (mode, _, oid, path) = split_entry("ls-tree", rec)?;
                at_target.insert(path, (mode, oid));
            }
            let differ: Vec<&Flagged> = changed
                .iter()
                .filter(|f| at_target.get(f.entry.path.as_bytes()) != Some(&(f.mode, &f.oid[..])))
                .collect();
            self.clear_flags(&differ, None)?;
        }
        // `reset --hard` rewrites every file whose stat data differs from the index's, content
        // unchanged or not (a copied tree; a `chmod` under `core.fileMode=false`, which git
        // then calls clean and the snapshot does not hold: the rewrite would lose its mode).
        // A refresh first records the stat data of the files that match, so that the reset
        // writes only what the target changes, as the git2 back-end does. Right before the
        // reset, so that no file's stat data can go stale in between (a refresh run earlier,
        // during the snapshot, was measured 6% faster and left that window open); the engine
        // calls [`GitCliBackend::refresh_index`] itself just before a reset that skips it.
        if refresh {
            self.refresh_index()?;
        }
        let (_, warnings) = self
            .git()
            .args(["reset", "-q", "--hard", "--end-of-options", commit.as_str()])
            .env("GIT_REFLOG_ACTION", message)
            .run_with_warnings()?;
        // Git exits 0 when it could not remove a file the target lacks (a folder the user may
        // not write, an immutable file, a mount point): the tree is then not the target's.
        let left: Vec<String> = not_removed(&warnings)
            .into_iter()
            .filter(|(path, _)| {
                std::fs::symlink_metadata(self.workdir.join(OsStr::from_bytes(path))).is_ok_and(|m| !m.is_dir())
            })
            .map(|(path, reason)| format!("'{}': {reason}", String::from_utf8_lossy(&path)))
            .collect();
        if left.is_empty() { Ok(()) } else { Err(Error::NotRemoved { left }) }
    }

    /// `git update-index --refresh`: records the stat data of the tracked files that match
    /// the index, and returns the paths of those that do not (changed, deleted, replaced,
    /// unmerged), sorted. Exit 1 means some were found. Not `-q`: it would hide them, and
    /// git's words on a held `index.lock`, which the hint names.
    pub(super) fn refresh_index(&self) -> Result<Vec<RepoPath>> {
        parse_refresh(&self.git().args(["update-index", "--refresh"]).run_listing()?)
    }
}

/// What `git reset --hard`'s warnings say it could not remove: the path and the reason of each
/// `warning: unable to unlink 'PATH': REASON` (the path raw, as git prints it). The caller
/// keeps those still there as a file or symlink: git also warns about a tracked file that is a
/// folder now, which it then replaces as it should. (A folder it could not remove, `unable to
/// rmdir`, is one that still holds untracked files: left as git leaves it.)
fn not_removed(warnings: &[u8]) -> Vec<(Vec<u8>, String)> {
    const LEAD: &[u8] = b"warning: unable to unlink '";
    let mut out = Vec::new();
    let mut rest = warnings;
    while let Some(at) = rest.windows(LEAD.len()).position(|w| w == LEAD) {
        rest = &rest[at + LEAD.len()..];
        let line = rest.split(|b| *b == b'\n').next().unwrap_or_default();
        // The path may hold `': `: the reason is after the last one on the line.
        if let Some(end) = line.windows(3).rposition(|w| w == b"': ") {
            out.push((line[..end].to_vec(), String::from_utf8_lossy(&line[end + 3..]).into_owned()));
        }
    }
    out
}

/// The paths of `git update-index --refresh`'s report: `PATH: needs update` or `PATH: needs
/// merge`, one per line. Git prints a path raw (`core.quotepath` does not apply), so one may
/// hold a newline: a record ends only at one of those endings.
fn parse_refresh(out: &[u8]) -> Result<Vec<RepoPath>> {
    const ENDS: [&[u8]; 2] = [b": needs update\n", b": needs merge\n"];
    let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
    let mut paths = Vec::new();
    let mut rest = out;
    while !rest.is_empty() {
        let Some((at, len)) = ENDS.iter().filter_map(|e| find(rest, e).map(|at| (at, e.len()))).min() else {
            return Err(parse_err("update-index", format!("bad record `{}`", String::from_utf8_lossy(rest))));
        };
        paths.push(parse_path("update-index", &rest[..at])?);
        rest = &rest[at + len..];
    }
    paths.sort();
    paths.dedup();
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_reports_parse_with_newlines_and_colons_in_names() {
        let out = b"a: b.txt: needs update\nnl\nx: needs update\nu: needs merge\nu: needs merge\n";
        let got: Vec<Vec<u8>> = parse_refresh(out).unwrap().iter().map(|p| p.as_bytes().to_vec()).collect();
        assert_eq!(got, [&b"a: b.txt"[..], b"nl\nx", b"u"]);
        assert!(parse_refresh(b"").unwrap().is_empty());
        assert!(parse_refresh(b"warning: something else\n").is_err());
    }

    #[test]
    fn files_git_could_not_remove_are_named_and_folders_left_full_are_not() {
        let warnings = b"warning: unable to unlink 'new/n.py': Permission denied\nwarning: unable to rmdir 'sub': Directory not empty\nwarning: unable to unlink 'c': Is a directory\n";
        let got = not_removed(warnings);
        assert_eq!(got[0], (b"new/n.py".to_vec(), "Permission denied".to_owned()));
        assert_eq!(got[1], (b"c".to_vec(), "Is a directory".to_owned()));
        assert_eq!(got.len(), 2);
        assert!(not_removed(b"").is_empty());
    }
}
