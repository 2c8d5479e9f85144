//! The reset of the command-line backend: index entries flagged assume-unchanged or
//! skip-worktree, the index refresh before the reset, and `git reset --hard` itself.

use std::collections::{HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::{GitCliBackend, parse_err, parse_path, parse_status, records, split_entry};
use crate::fsutil::IoContext;
use crate::paths::RepoPath;
use crate::vcs::{ChangeKind, CommitId, FlaggedEntry, IndexFlag, Result, StatusKind, VcsBackend};

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
    pub(super) fn reset(&self, commit: &CommitId, message: &str) -> Result<()> {
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
        // during the snapshot, was measured 6% faster and left that window open). Exit 1: some
        // files have changes (left to the reset). Not `-q`: it would hide git's words on a held
        // `index.lock`, which the hint names.
        self.git().args(["update-index", "--refresh"]).run_maybe()?;
        self.git()
            .args(["reset", "-q", "--hard", "--end-of-options", commit.as_str()])
            .env("GIT_REFLOG_ACTION", message)
            .run()
            .map(drop)
    }
}
