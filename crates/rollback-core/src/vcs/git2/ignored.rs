//! The ignored files `git status --ignored=matching` lists and libgit2's status leaves out.

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use git2::Repository;

use super::{fresh_index, git2_err, repo_path};
use crate::fsutil::IoContext;
use crate::vcs::{Result, StatusEntry, StatusKind};

/// The ignored content of ignored folders that hold tracked files, which libgit2 leaves out
/// of its status (`logs/` ignored, `logs/kept.txt` tracked, `logs/new.txt` not reported).
/// `git status --ignored=matching` lists it: files one by one, and a folder without tracked
/// files once (even an empty one). Appends those entries to `out`.
pub(super) fn ignored_below_tracked(repo: &Repository, workdir: &Path, out: &mut Vec<StatusEntry>) -> Result<()> {
    let index = fresh_index(repo)?;
    let mut tracked = HashSet::new();
    let mut dirs = BTreeSet::new();
    for entry in index.iter() {
        for (i, b) in entry.path.iter().enumerate() {
            if *b == b'/' {
                dirs.insert(entry.path[..i].to_vec());
            }
        }
        tracked.insert(entry.path);
    }
    let mut roots: Vec<Vec<u8>> = Vec::new();
    for dir in &dirs {
        let below_root = roots.iter().any(|r| dir.len() > r.len() && dir.starts_with(r) && dir[r.len()] == b'/');
        if below_root {
            continue;
        }
        let ignored = repo
            .is_path_ignored(Path::new(OsStr::from_bytes(dir)))
            .map_err(git2_err(format!("check whether `{}` is ignored", String::from_utf8_lossy(dir))))?;
        if ignored {
            roots.push(dir.clone());
        }
    }
    for root in roots {
        walk_ignored(workdir, &root, &tracked, &dirs, out)?;
    }
    Ok(())
}

fn walk_ignored(
    workdir: &Path,
    dir: &[u8],
    tracked: &HashSet<Vec<u8>>,
    dirs: &BTreeSet<Vec<u8>>,
    out: &mut Vec<StatusEntry>,
) -> Result<()> {
    let fs_dir = workdir.join(OsStr::from_bytes(dir));
    let entries = match std::fs::read_dir(&fs_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(crate::fsutil::IoError::new("list", fs_dir, e).into()),
    };
    for entry in entries {
        let entry = entry.at("list", &fs_dir)?;
        let name = entry.file_name();
        if name.as_bytes() == b".git" {
            continue;
        }
        let mut rel = dir.to_vec();
        rel.push(b'/');
        rel.extend_from_slice(name.as_bytes());
        if tracked.contains(&rel) {
            continue;
        }
        let is_dir = entry.file_type().at("read type of", &entry.path())?.is_dir();
        if !is_dir {
            out.push(StatusEntry::new(repo_path(&rel)?, StatusKind::Ignored));
        } else if dirs.contains(&rel) {
            walk_ignored(workdir, &rel, tracked, dirs, out)?;
        } else {
            // Even when empty, as git does.
            out.push(StatusEntry::new(repo_path(&rel)?, StatusKind::Ignored));
        }
    }
    Ok(())
}
