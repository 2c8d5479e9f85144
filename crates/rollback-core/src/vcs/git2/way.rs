//! What git's checkout clears out of the way of the target's files before it writes them,
//! which libgit2's does not, or does by following symlinks (libgit2 1.9):
//! - a symlink or a file where the target has a folder, in the parent path of one of its
//!   files: git unlinks it and makes the folder (it never follows a symlink in a parent path,
//!   `has_symlink_leading_path`); libgit2 writes through the link, outside the work tree when it
//!   leads there (`media -> /srv/shared/media`), or fails on a dangling or looping one;
//! - a symlink where the target has a regular file: git unlinks it; libgit2 opens the file
//!   through the link (and writes what it leads to, or fails: "Is a directory");
//! - a folder where the target has a file or a symlink: git removes it with what it holds (a
//!   reset overwrites untracked files in the way); libgit2 fails on some ("null OID cannot
//!   exist");
//! - a submodule's folder: git writes nothing into it, and removes the folder of a submodule
//!   the target drops only when it is empty; libgit2 removes it whole, `.git` and all
//!   (`submodule_checkouts`, left out of its checkout).
//!
//! [`plan`] looks at the work tree without changing it; [`Way::clear`] then removes what is in
//! the way, just before the checkout. A folder in the way that holds a nested repository (an
//! entry `.git`) is refused by [`plan`]: removing it would delete the repository's history.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use git2::{Delta, DiffOptions, Oid, Repository, Tree};

use super::{MODE_GITLINK, MODE_SYMLINK, git2_err, is_regular};
use crate::fsutil::{IoContext, IoError};
use crate::vcs::{Error, Result};

/// What [`plan`] found in the way, in the order it is removed, and what the checkout must
/// leave alone.
#[derive(Debug, Default)]
pub(super) struct Way {
    /// Symlinks and files to unlink.
    entries: Vec<PathBuf>,
    /// Folders to remove with what they hold.
    folders: Vec<PathBuf>,
    /// Paths (`/`-separated) libgit2's checkout must not touch, nor anything below them.
    excluded: BTreeSet<Vec<u8>>,
    /// HEAD's files and symlinks to write back where the target has a folder, with their blob
    /// and mode.
    restore: Vec<(PathBuf, Oid, u32)>,
}

/// What a folder of the work tree is, seen without following symlinks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Seen {
    /// A real folder.
    Dir,
    /// Nothing: what is below it is missing too (the checkout makes the folders).
    Missing,
    /// A symlink or a file.
    NotDir,
}

fn lstat(path: &Path) -> Result<Option<std::fs::Metadata>> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(IoError::new("read type of", path.to_path_buf(), e).into()),
    }
}

/// The parent folders of the work tree, each looked at once.
struct Parents<'w> {
    workdir: &'w Path,
    seen: HashMap<Vec<u8>, Seen>,
}

impl Parents<'_> {
    /// The first folder of `path`'s parent path, from the top, that is not a real folder, with
    /// what it is.
    fn blocked<'p>(&mut self, path: &'p [u8]) -> Result<Option<(&'p [u8], Seen)>> {
        for (i, _) in path.iter().enumerate().filter(|(_, b)| **b == b'/') {
            let dir = &path[..i];
            let seen = if let Some(seen) = self.seen.get(dir) {
                *seen
            } else {
                let seen = match lstat(&self.workdir.join(OsStr::from_bytes(dir)))? {
                    Some(m) if m.is_dir() => Seen::Dir,
                    None => Seen::Missing,
                    Some(_) => Seen::NotDir,
                };
                self.seen.insert(dir.to_vec(), seen);
                seen
            };
            if seen != Seen::Dir {
                return Ok(Some((dir, seen)));
            }
        }
        Ok(None)
    }
}

/// What is in the way of a checkout of the `target` tree's `(path, blob, mode)` entries into
/// the work tree at `workdir`, as git's checkout clears it; `head` holds HEAD's entries
/// (libgit2's baseline) and `index` the paths of the index. Changes nothing.
///
/// Two kinds of paths are left out of libgit2's checkout: one of HEAD or the index below a
/// symlink or a file that stays (git does not delete through it; libgit2 does, or fails), and
/// a folder of the target where HEAD has a file that is gone from the work tree (libgit2
/// fails: "null OID cannot exist"); [`write_missing_added`] writes the target's files there.
pub(super) fn plan(
    workdir: &Path,
    target: &[(Vec<u8>, Oid, u32)],
    head: &[(Vec<u8>, Oid, u32)],
    index: &[Vec<u8>],
) -> Result<Way> {
    let mut way = Way::default();
    let mut parents = Parents { workdir, seen: HashMap::new() };
    let mut unlinked: BTreeSet<&[u8]> = BTreeSet::new();
    for (path, _, mode) in target {
        match parents.blocked(path)? {
            Some((dir, Seen::NotDir)) => {
                if unlinked.insert(dir) {
                    way.entries.push(workdir.join(OsStr::from_bytes(dir)));
                }
                continue;
            }
            Some(_) => continue,
            None => {}
        }
        let full = workdir.join(OsStr::from_bytes(path));
        let Some(meta) = lstat(&full)? else { continue };
        let ft = meta.file_type();
        if ft.is_dir() && *mode != MODE_GITLINK {
            if let Some(repo) = nested_repository(&full)? {
                return Err(Error::Git2 {
                    context: format!(
                        "`{}` is a folder holding a nested git repository (`{}`) where the target has a file; the reset would delete it with its history",
                        String::from_utf8_lossy(path),
                        repo.strip_prefix(workdir).unwrap_or(&repo).display()
                    ),
                    source: git2::Error::from_str("refused before changing anything"),
                });
            }
            way.folders.push(full);
        } else if ft.is_symlink() && (is_regular(*mode) || *mode == MODE_GITLINK)
            || !ft.is_dir() && *mode == MODE_GITLINK
        {
            // A symlink where the target has a symlink: libgit2 replaces it itself.
            way.entries.push(full);
        }
    }
    // A file or symlink of HEAD where the target has a folder, gone from the work tree (or
    // unlinked above): libgit2 fails on it ("null OID cannot exist"), and replaces it when it
    // is there. So HEAD's entry is written back first.
    let head_files: HashMap<&[u8], (Oid, u32)> =
        head.iter().map(|(p, id, mode)| (p.as_slice(), (*id, *mode))).collect();
    let mut restored: BTreeSet<&[u8]> = BTreeSet::new();
    for (path, _, _) in target {
        let Some((gone, _)) = parents.blocked(path)? else { continue };
        let dirs = path.iter().enumerate().filter(|(_, b)| **b == b'/').map(|(i, _)| &path[..i]);
        if let Some(dir) = dirs.filter(|dir| dir.starts_with(gone)).find(|dir| head_files.contains_key(dir))
            && let Some((id, mode)) = head_files.get(dir)
            && *mode != MODE_GITLINK
            && restored.insert(dir)
        {
            way.restore.push((PathBuf::from(OsStr::from_bytes(dir)), *id, *mode));
        }
    }
    // What HEAD or the index has below a symlink or a file that stays (the target has nothing
    // there): git does not delete through it, and neither may libgit2.
    let tracked: HashSet<&[u8]> =
        head.iter().chain(target).map(|(p, _, _)| p.as_slice()).chain(index.iter().map(Vec::as_slice)).collect();
    for path in head.iter().map(|(p, _, _)| p).chain(index) {
        if let Some((dir, Seen::NotDir)) = parents.blocked(path)?
            && !unlinked.contains(dir)
            && !tracked.contains(dir)
        {
            way.excluded.insert(dir.to_vec());
        }
    }
    way.excluded.extend(submodule_checkouts(&mut parents, target, head)?);
    if let Some(odd) = way.excluded.iter().find(|p| p.iter().any(|b| b"*?[\\".contains(b))) {
        return Err(Error::Git2 {
            context: format!(
                "`{}` is a symlink or a file where a tracked folder was, or a submodule's checkout, with a name the git2 back-end cannot leave out of its checkout (it has `*`, `?`, `[` or `\\`); set `backend = \"git-cli\"` in `[vcs]` of forge-rollback.toml for this rollback",
                String::from_utf8_lossy(odd)
            ),
            source: git2::Error::from_str("refused before changing anything"),
        });
    }
    Ok(way)
}

/// The folders of submodules that the checkout must leave as they are: a gitlink of HEAD or
/// of the target (on each side that has the path, and with nothing of either tree below it)
/// whose folder holds anything. `git reset --hard` writes nothing into a submodule's folder:
/// it makes the folder of a submodule the target adds only when it is missing, and removes the
/// folder of one the target drops only when it is empty (it warns "unable to rmdir" and leaves
/// it otherwise). libgit2's checkout removes the folder of a dropped submodule whole, the
/// submodule's checkout and its `.git` with it: a `.git` folder holds the submodule's own
/// history (unpushed commits, branches, stash), which no backup holds, and a `gitdir:` file is
/// what makes the folder a repository again.
fn submodule_checkouts(
    parents: &mut Parents<'_>,
    target: &[(Vec<u8>, Oid, u32)],
    head: &[(Vec<u8>, Oid, u32)],
) -> Result<Vec<Vec<u8>>> {
    let below = |path: &[u8], p: &[u8]| p.len() > path.len() && p.starts_with(path) && p[path.len()] == b'/';
    let mut out = Vec::new();
    for (path, _, _) in target.iter().chain(head).filter(|(_, _, mode)| *mode == MODE_GITLINK) {
        let gitlink_or_absent = |tree: &[(Vec<u8>, Oid, u32)]| {
            tree.iter().all(|(p, _, mode)| !below(path, p) && (p != path || *mode == MODE_GITLINK))
        };
        if out.contains(path) || !gitlink_or_absent(target) || !gitlink_or_absent(head) {
            continue;
        }
        // Below a symlink or a file, or missing: nothing of a checkout is there.
        if parents.blocked(path)?.is_some() {
            continue;
        }
        let full = parents.workdir.join(OsStr::from_bytes(path));
        if lstat(&full)?.is_some_and(|m| m.is_dir()) && std::fs::read_dir(&full).at("list", &full)?.next().is_some() {
            out.push(path.clone());
        }
    }
    Ok(out)
}

/// The first entry named `.git` (in any letter case) at or below the folder `dir`, without
/// following symlinks.
fn nested_repository(dir: &Path) -> Result<Option<PathBuf>> {
    for entry in std::fs::read_dir(dir).at("list", dir)? {
        let entry = entry.at("list", dir)?;
        if entry.file_name().as_bytes().eq_ignore_ascii_case(b".git") {
            return Ok(Some(entry.path()));
        }
        if entry.file_type().at("read type of", &entry.path())?.is_dir()
            && let Some(found) = nested_repository(&entry.path())?
        {
            return Ok(Some(found));
        }
    }
    Ok(None)
}

impl Way {
    /// The pathspecs of a checkout that leaves the excluded paths alone; none when it need not.
    pub(super) fn pathspecs(&self) -> Vec<Vec<u8>> {
        if self.excluded.is_empty() {
            return Vec::new();
        }
        let mut out: Vec<Vec<u8>> = self.excluded.iter().map(|p| [&b"!"[..], p].concat()).collect();
        out.push(b"*".to_vec());
        out
    }

    /// Whether `path` (`/`-separated) is one [`Way::pathspecs`] leaves out, or below one.
    pub(super) fn leaves_alone(&self, path: &[u8]) -> bool {
        self.excluded
            .iter()
            .any(|x| path.strip_prefix(x.as_slice()).is_some_and(|rest| rest.is_empty() || rest[0] == b'/'))
    }

    /// Removes what [`plan`] found in the way, and writes back HEAD's entries it must.
    pub(super) fn clear(&self, repo: &Repository, workdir: &Path) -> Result<()> {
        for path in &self.entries {
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(IoError::new("remove", path.clone(), e).into());
                }
                _ => {}
            }
        }
        for path in &self.folders {
            match std::fs::remove_dir_all(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(IoError::new("remove folder", path.clone(), e).into());
                }
                _ => {}
            }
        }
        write_entries(repo, workdir, &self.restore)?;
        Ok(())
    }
}

/// Makes the folders of `rel`'s parent path below `workdir`, like `create_dir_all` but never
/// through a symlink: a parent that is a symlink or a file is an error, not a way out of the
/// work tree.
fn make_parents(workdir: &Path, rel: &Path) -> Result<()> {
    let mut dir = workdir.to_path_buf();
    let Some(parent) = rel.parent() else { return Ok(()) };
    for part in parent.components() {
        dir.push(part);
        match lstat(&dir)? {
            Some(m) if m.is_dir() => {}
            None => std::fs::create_dir(&dir).at("create folder", &dir)?,
            Some(_) => {
                return Err(IoError::new(
                    "create folder",
                    dir,
                    std::io::Error::new(std::io::ErrorKind::NotADirectory, "a symlink or a file is in the way"),
                )
                .into());
            }
        }
    }
    Ok(())
}

/// Writes the files and symlinks of `added` ([`added_entries`]) that the checkout left
/// missing. libgit2 (1.9) does not write a file that replaces a folder when the folder is
/// already gone from the work tree (a reset clears what is in its way first): `git reset
/// --hard` does. Written as stored, as such a file is rare enough not to warrant eol
/// conversion (one that needs a filter program was refused before the checkout).
pub(super) fn write_missing_added(repo: &Repository, workdir: &Path, added: &[(PathBuf, Oid, u32)]) -> Result<()> {
    let missing: Vec<(PathBuf, Oid, u32)> =
        added.iter().filter(|(rel, _, _)| std::fs::symlink_metadata(workdir.join(rel)).is_err()).cloned().collect();
    write_entries(repo, workdir, &missing)
}

/// Writes `entries` (files and symlinks, relative paths, blob and mode) as stored, making
/// their folders, never through a symlink.
fn write_entries(repo: &Repository, workdir: &Path, entries: &[(PathBuf, Oid, u32)]) -> Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    for (rel, id, mode) in entries {
        let full = workdir.join(rel);
        let blob = repo.find_blob(*id).map_err(git2_err(format!("read {}", rel.display())))?;
        make_parents(workdir, rel)?;
        if *mode == MODE_SYMLINK {
            std::os::unix::fs::symlink(OsStr::from_bytes(blob.content()), &full).at("create symlink", &full)?;
        } else {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(if *mode == 0o100_755 { 0o777 } else { 0o666 })
                .open(&full)
                .at("write", &full)?;
            std::io::Write::write_all(&mut f, blob.content()).at("write", &full)?;
        }
    }
    Ok(())
}

/// The files and symlinks `after` adds to `before` or turns a folder (or another kind of
/// entry) into, with their blob and mode: what [`write_missing_added`] may have to write.
pub(super) fn added_entries(
    repo: &Repository,
    before: &Tree<'_>,
    after: &Tree<'_>,
) -> Result<Vec<(PathBuf, Oid, u32)>> {
    let diff = repo
        .diff_tree_to_tree(Some(before), Some(after), Some(DiffOptions::new().include_typechange(true)))
        .map_err(git2_err("compare the trees of the reset"))?;
    Ok(diff
        .deltas()
        .filter(|d| matches!(d.status(), Delta::Added | Delta::Typechange))
        .map(|d| d.new_file())
        .filter(|f| is_regular(u32::from(f.mode())) || u32::from(f.mode()) == MODE_SYMLINK)
        .filter_map(|f| Some((f.path()?.to_path_buf(), f.id(), u32::from(f.mode()))))
        .collect())
}
