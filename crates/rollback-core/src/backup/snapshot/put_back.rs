//! Restoring captured entries into the work tree ([`restore`], [`relink`]), and the free-space
//! check before it; see the [parent module](super) for what is followed.

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::lstat;
use crate::backup::beneath::Dir;
use crate::backup::xattr::{self, NotGivenBack, On, Xattr};
use crate::backup::{BackupStore, BlobId, EntryKind, Error, Folder, ManifestEntry, Owner, Ownership, Result, chown};
use crate::fsutil::{IoContext, IoError};
use crate::paths::RepoPath;

/// Counters of one [`restore`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreStats {
    /// Regular files written.
    pub files: usize,
    /// Symlinks created.
    pub symlinks: usize,
    /// Files and symlinks removed (paths that were absent at snapshot time).
    pub removed: usize,
    /// Folders removed (absent at snapshot time, empty now).
    pub removed_dirs: usize,
    /// Folders that were absent at snapshot time but are not empty now, left in place.
    pub kept_dirs: usize,
    /// Absent entries skipped because a parent on disk is not a folder (so nothing can exist
    /// at that path in the work tree).
    pub skipped: usize,
    /// Files, symlinks and folders written as root whose recorded owner this system would not
    /// let root give (a user namespace, NFS's `root_squash`): left root's.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub owners_refused: usize,
    /// Folders made again by [`restore_folders`] (empty ones the rollback removed).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub folders_made: usize,
    /// Folders given back their recorded mode by [`restore_folders`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub folder_modes: usize,
    /// Extended attributes recorded with a file, symlink or folder that this process may not
    /// set (`security.capability` when not root, a file system without them): the path is
    /// restored without them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs_refused: Vec<NotGivenBack>,
}

/// Counters of one [`restore_folders`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderStats {
    /// Folders made again: missing, though the snapshot saw them (an empty folder the
    /// rollback removed, or one git removed when the reset emptied it).
    pub made: usize,
    /// Folders whose mode differed from the recorded one and was given back.
    pub modes: usize,
    /// Folders whose mode this user may not set (another user's): left as they are.
    pub modes_refused: usize,
    /// Folders made as root whose recorded owner this system would not let root give.
    pub owners_refused: usize,
    /// Recorded extended attributes of folders that this process may not set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs_refused: Vec<NotGivenBack>,
}

/// Gives back the folders a snapshot saw ([`Folder`]), after [`restore`] and [`relink`]
/// wrote the files: each one missing is made again where its parent is a real folder (with
/// its recorded owner, when this process runs as root), outermost first; then each gets its
/// recorded mode where it has another, deepest first, so that a read-only folder is filled
/// before it becomes read-only and a folder without search permission is set after what is
/// below it. Each gets its recorded extended attributes that it does not hold (git makes a
/// folder again without them): the ACLs after the mode, which would change their mask, the
/// others before it; those this process may not set are listed in
/// [`FolderStats::xattrs_refused`]. A path where something else than a folder is now is left as it is. As
/// [`restore`], every change goes through folders opened through real folders only
/// (`beneath::Dir`), never through a symlink.
pub fn restore_folders(workdir: &Path, folders: &[Folder]) -> Result<FolderStats> {
    let mut stats = FolderStats::default();
    let mut sorted: Vec<&Folder> = folders.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));
    for f in &sorted {
        let full = f.path.to_fs(workdir);
        let Some((dir, name)) = Dir::holding(workdir, f.path.as_path()).at("open folder", &full)? else { continue };
        if dir.entry(name).at("read metadata of", &full)?.is_some()
            || !dir.make_folder(name).at("create folder", &full)?
        {
            continue;
        }
        stats.made += 1;
        if crate::fsutil::euid() == 0
            && let Some(made) = dir.child(name).at("open folder", &full)?
        {
            match made.chown(f.owner) {
                Err(e) if chown::refused(&e) => stats.owners_refused += 1,
                other => other.at("set the owner of", &full)?,
            }
        }
    }
    for f in sorted.iter().rev() {
        let full = f.path.to_fs(workdir);
        let Some(dir) = Dir::open(workdir, f.path.as_path()).at("open folder", &full)? else { continue };
        let at = dir.proc_path(OsStr::new("."));
        let give = |before: bool, lost: &mut Vec<NotGivenBack>| {
            On::Path(&at).give(&xattr::phase(&f.xattrs, before), &f.path, lost).at("set extended attributes of", &full)
        };
        give(true, &mut stats.xattrs_refused)?;
        if dir.mode().at("read metadata of", &full)? != f.mode {
            match dir.set_mode(f.mode) {
                Ok(()) => stats.modes += 1,
                Err(e) if e.raw_os_error() == Some(libc::EPERM) => stats.modes_refused += 1,
                Err(e) => return Err(IoError::new("set permissions of", full, e).into()),
            }
        }
        give(false, &mut stats.xattrs_refused)?;
    }
    Ok(stats)
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde passes a reference
fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Makes each group of `groups` one file again after a restore of `entries`: every other
/// member becomes a hard link to the first, when all of them were restored from the same
/// blob (a member left out of the restore, or changed, keeps its group apart). Returns how
/// many links were made. A file system without hard links is an error naming the path.
pub fn relink(workdir: &Path, entries: &[ManifestEntry], groups: &[Vec<RepoPath>]) -> Result<usize> {
    let mut made = 0;
    for g in groups {
        let blobs: Vec<Option<&BlobId>> = g
            .iter()
            .map(|p| {
                entries.iter().find(|e| &e.path == p).and_then(|e| match &e.kind {
                    EntryKind::File { blob, .. } => Some(blob),
                    _ => None,
                })
            })
            .collect();
        let Some(Some(first_blob)) = blobs.first() else { continue };
        if blobs.iter().any(|b| *b != Some(*first_blob)) {
            continue;
        }
        let (first_dir, first) = parent_dir(workdir, &g[0])?;
        for p in &g[1..] {
            let full = p.to_fs(workdir);
            let (dir, name) = parent_dir(workdir, p)?;
            let tmp_full = temp_path(&full);
            let tmp = file_name(&tmp_full);
            dir.link(&first_dir, first, tmp).at("link", &tmp_full)?;
            if let Err(e) = dir.rename(tmp, name) {
                let _ = dir.remove(tmp, false);
                return Err(IoError::new("rename into place", full, e).into());
            }
            made += 1;
        }
    }
    Ok(made)
}

/// A unique hidden temp name next to `path` (`.<name>.restore-PID-N`, the name cut so that it
/// fits in `NAME_MAX` however long `path`'s is).
fn temp_path(path: &Path) -> PathBuf {
    crate::fsutil::temp_sibling(path, "restore")
}

/// The last name of `path` (a temp path or a path of the work tree: never empty).
fn file_name(path: &Path) -> &OsStr {
    path.file_name().unwrap_or_default()
}

/// The real folder holding `path`, reached through real folders only ([`Dir`]), and the
/// path's name in it; refused when a folder on the way is not a real folder (any more).
fn parent_dir<'p>(workdir: &Path, path: &'p RepoPath) -> Result<(Dir, &'p OsStr)> {
    Dir::holding(workdir, path.as_path())
        .at("open folder", &path.to_fs(workdir))?
        .ok_or_else(|| unsafe_restore(path, "a parent folder is not a real folder (changed while restoring)"))
}

fn unsafe_restore(path: &RepoPath, reason: impl Into<String>) -> Error {
    Error::UnsafeRestore { path: path.to_string(), reason: reason.into() }
}

/// Restores `entries` into the work tree at `workdir`: each path gets back exactly what it
/// held (bytes and mode, symlink target, or nothing), its extended attributes, and, when this
/// process runs as root, the owner recorded with it ([`owner_to_give`]). Attributes this
/// process may not set are listed in [`RestoreStats::xattrs_refused`].
///
/// Nothing is changed unless all of this holds first:
/// - every parent folder of every entry that exists on disk is a real folder (not a symlink,
///   not a file), or is itself an absent entry (removed before anything is written), and no
///   file or symlink entry lies below another file or symlink entry; otherwise
///   [`Error::UnsafeRestore`]. Absent entries below a parent that is not a folder
///   are skipped: nothing can exist at such a path, and removing it would follow the link.
///   Parents are looked at outermost first, and a path only when all of them are real
///   folders: nothing is ever looked at through a symlink;
/// - every blob needed is in the store and hashes to its name ([`Error::CorruptBlob`],
///   [`Error::BlobNotFound`]).
///
/// Then absent entries are removed, deepest first (a file or symlink at the path is deleted,
/// a folder only if it is empty), and files and symlinks are written: a file through a temp
/// file in its folder with its exact mode (the umask does not narrow it), renamed over the
/// path; a symlink created under a temp name and renamed over the path (temp names fit in
/// `NAME_MAX` whatever the name's length). The owner is set on the temp file or symlink before
/// the rename, on a file before its mode (`chown` clears the setuid and setgid bits), and on
/// each folder made once it is made. A file's extended attributes are set on the temp file
/// after its owner (`chown` clears `security.capability`): the ACLs after its mode (an ACL
/// sets the group bits to its mask; a `chmod` after it would change the mask), the others
/// before it (a read-only mode would keep a non-root owner from setting `user.*`). Missing parent folders are created one by one, and
/// a parent that is not a real folder then is refused; a folder in the way is removed only if
/// it holds nothing but (empty) folders, deepest first (what the checks allow once the absent
/// entries are gone), else [`Error::UnsafeRestore`]. Removals come first so that a path that
/// was a file or symlink is free again when a folder the rollback created there held only
/// paths that were absent. Finally one `syncfs` makes the restored tree durable.
///
/// Every change (a file or symlink written, renamed or removed, a folder made or removed, an
/// owner given) is made relative to its folder opened through real folders only
/// ([`beneath::Dir`]), never by path: a folder swapped for a symlink after the checks (the
/// app's user can, while root restores) does not lead a write or a removal out of the tree.
/// A file or symlink whose folder is no longer reached that way is refused
/// ([`Error::UnsafeRestore`]), half-way; an absent entry below one is left (nothing of the
/// tree can be there).
pub fn restore(store: &dyn BackupStore, workdir: &Path, entries: &[ManifestEntry]) -> Result<RestoreStats> {
    restore_checked(store, workdir, entries, &mut || {})
}

/// [`restore`], calling `after_checks` once everything is checked and before anything changes
/// (tests change the tree there).
fn restore_checked(
    store: &dyn BackupStore,
    workdir: &Path,
    entries: &[ManifestEntry],
    after_checks: &mut dyn FnMut(),
) -> Result<RestoreStats> {
    let mut stats = RestoreStats::default();
    let written: BTreeSet<&RepoPath> =
        entries.iter().filter(|e| !matches!(e.kind, EntryKind::Absent)).map(|e| &e.path).collect();

    // 1. Validate every entry against the tree as it is now.
    let absent_paths: BTreeSet<&RepoPath> =
        entries.iter().filter(|e| matches!(e.kind, EntryKind::Absent)).map(|e| &e.path).collect();
    let mut skip: BTreeSet<&RepoPath> = BTreeSet::new();
    for e in entries {
        let is_absent = matches!(e.kind, EntryKind::Absent);
        // Parents, outermost first, so that none is looked at through a symlink.
        let ancestors: Vec<RepoPath> = e.path.ancestors().collect();
        // Whether every parent is a real folder now, so that the path itself can be looked at.
        let mut in_tree = true;
        for anc in ancestors.iter().rev() {
            if !is_absent && written.contains(anc) {
                return Err(unsafe_restore(&e.path, format!("its parent `{anc}` is restored as a file or symlink")));
            }
            if !in_tree {
                continue;
            }
            let full = anc.to_fs(workdir);
            match lstat(&full)? {
                Some(m) if m.is_dir() => {}
                Some(m) => {
                    in_tree = false;
                    if is_absent {
                        skip.insert(&e.path);
                        break;
                    }
                    if absent_paths.contains(anc) {
                        // Nothing was there when the snapshot was taken (a symlink the run's
                        // reset put back where a folder was): step 3 removes this file or
                        // symlink, and the folder is made in its place.
                        continue;
                    }
                    let what = if m.file_type().is_symlink() { "a symlink" } else { "not a folder" };
                    return Err(unsafe_restore(&e.path, format!("its parent folder `{anc}` is {what}")));
                }
                None => in_tree = false,
            }
        }
        // A folder where a file or symlink goes must be gone by then: empty, or holding only
        // paths this restore removes. Found now, before anything changes, not half-way. Below a
        // parent that is not a folder nothing is at the path (never looked at through a link).
        if !is_absent && in_tree {
            let full = e.path.to_fs(workdir);
            if lstat(&full)?.is_some_and(|m| m.is_dir()) && !emptied_by_restore(workdir, &full, &absent_paths)? {
                return Err(unsafe_restore(&e.path, "a folder that is not empty is in the way"));
            }
        }
    }

    // 2. Hash-check every blob before touching the tree (streamed: nothing is held in
    //    memory), and check that the work tree's file system has room for every file written.
    let mut checked: HashSet<&BlobId> = HashSet::new();
    for e in entries {
        if let EntryKind::File { blob, .. } = &e.kind
            && checked.insert(blob)
        {
            store.check_blob(blob)?;
        }
    }
    check_space(workdir, space_needed(workdir, entries))?;
    after_checks();

    // 3. Paths that were absent, deepest first.
    let mut absent: Vec<&RepoPath> =
        entries.iter().filter(|e| matches!(e.kind, EntryKind::Absent)).map(|e| &e.path).collect();
    absent.sort_unstable_by(|a, b| b.cmp(a));
    for path in absent {
        if skip.contains(path) {
            stats.skipped += 1;
            continue;
        }
        let full = path.to_fs(workdir);
        // Not reached through real folders (one was swapped since the checks): nothing of the
        // tree can be there.
        let Some((dir, name)) = Dir::holding(workdir, path.as_path()).at("open folder", &full)? else { continue };
        match dir.entry(name).at("read metadata of", &full)? {
            None => {}
            Some((_, m)) if m.is_dir() => match dir.remove(name, true) {
                Ok(()) => stats.removed_dirs += 1,
                Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => stats.kept_dirs += 1,
                Err(e) => return Err(IoError::new("remove folder", full, e).into()),
            },
            Some(_) => {
                dir.remove(name, false).at("remove", &full)?;
                stats.removed += 1;
            }
        }
    }

    // 4. Files and symlinks.
    for e in entries {
        let full = e.path.to_fs(workdir);
        let refused = &mut stats.owners_refused;
        let to = Target { path: &e.path, full: &full, owner: owner_to_give(e).map(|o| o.owner), xattrs: &e.xattrs };
        match &e.kind {
            EntryKind::Absent => {}
            EntryKind::File { blob, mode, .. } => {
                let dir = prepare_target(workdir, &e.path, &full, owner_to_give(e), refused)?;
                write_file(store, &dir, &to, blob, *mode, refused, &mut stats.xattrs_refused)?;
                stats.files += 1;
            }
            EntryKind::Symlink { target } => {
                let dir = prepare_target(workdir, &e.path, &full, owner_to_give(e), refused)?;
                write_symlink(&dir, &to, &target.0, refused, &mut stats.xattrs_refused)?;
                stats.symlinks += 1;
            }
        }
    }

    crate::backup::store::syncfs(workdir)?;
    Ok(stats)
}

/// Whether the folder `dir` holds nothing but paths the restore removes (`absent`), so that it
/// is empty once they are gone.
fn emptied_by_restore(workdir: &Path, dir: &Path, absent: &BTreeSet<&RepoPath>) -> Result<bool> {
    let rd = fs::read_dir(dir).at("read folder", dir)?;
    for entry in rd {
        let entry = entry.at("read folder", dir)?;
        let full = entry.path();
        let is_dir = entry.file_type().at("read metadata of", &full)?.is_dir();
        if is_dir {
            if !emptied_by_restore(workdir, &full, absent)? {
                return Ok(false);
            }
        } else if !RepoPath::from_fs(workdir, &full).is_ok_and(|p| absent.contains(&p)) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Makes the path ready to be renamed over, and opens its folder: parent folders exist, each
/// a real folder reached through real folders only ([`Dir`], outermost first, made one by one:
/// nothing is created or written through a symlink); a folder at the path is removed if it
/// holds nothing but (empty) folders, deepest first and never through a link, refused
/// otherwise before any of it is removed. Files and symlinks at the path stay (the rename
/// replaces them atomically). A folder made gets its recorded owner from `owner`, if given
/// (counted in `refused` when the system would not let root give it).
fn prepare_target(
    workdir: &Path,
    path: &RepoPath,
    full: &Path,
    owner: Option<&Ownership>,
    refused: &mut usize,
) -> Result<Dir> {
    let not_real = |anc: &RepoPath, m: Option<fs::Metadata>| {
        let what = if m.is_some_and(|m| m.file_type().is_symlink()) { "a symlink" } else { "not a folder" };
        unsafe_restore(path, format!("its parent folder `{anc}` is {what}"))
    };
    let mut dir = Dir::open(workdir, Path::new(""))
        .at("open folder", workdir)?
        .ok_or_else(|| unsafe_restore(path, "the work tree is not a folder"))?;
    let ancestors: Vec<RepoPath> = path.ancestors().collect();
    for (depth, anc) in ancestors.iter().rev().enumerate() {
        let name = file_name(anc.as_path());
        let at = anc.to_fs(workdir);
        if let Some(next) = dir.child(name).at("open folder", &at)? {
            dir = next;
            continue;
        }
        let made = dir.make_folder(name).at("create folder", &at)?;
        let Some(next) = dir.child(name).at("open folder", &at)? else {
            return Err(not_real(anc, dir.entry(name).at("read metadata of", &at)?.map(|(_, m)| m)));
        };
        // The owner through the handle the restore goes on with: the folder made, or one put
        // there since, which it writes into all the same.
        if made && let Some(o) = owner.and_then(|o| o.folder(depth)) {
            match next.chown(o) {
                Err(e) if chown::refused(&e) => *refused += 1,
                other => other.at("set the owner of", &at)?,
            }
        }
        dir = next;
    }
    let name = file_name(path.as_path());
    if dir.entry(name).at("read metadata of", full)?.is_some_and(|(_, m)| m.is_dir()) {
        // What the checks allowed: a folder that holds nothing but folders (the absent
        // entries below it were removed already). Anything else in it is found before any of
        // it is removed.
        let in_the_way = || unsafe_restore(path, "a folder that is not empty is in the way");
        let folder = dir.child(name).at("open folder", full)?.ok_or_else(in_the_way)?;
        if !only_folders(&folder).at("read folder", full)? {
            return Err(in_the_way());
        }
        match remove_folders(&dir, name) {
            Ok(()) => {}
            // Something put in it, or in its place, since it was looked at.
            Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTEMPTY | libc::ENOTDIR)) => return Err(in_the_way()),
            Err(e) => return Err(IoError::new("remove folder", full, e).into()),
        }
    }
    Ok(dir)
}

/// Whether the folder `dir` holds nothing but folders, at any depth. Symlinks are not
/// followed (one is "something else", whatever it leads to).
fn only_folders(dir: &Dir) -> io::Result<bool> {
    for (name, is_dir) in dir.list()? {
        match dir.child(&name)? {
            Some(child) if is_dir => {
                if !only_folders(&child)? {
                    return Ok(false);
                }
            }
            _ => return Ok(false),
        }
    }
    Ok(true)
}

/// Removes the folder `name` of `dir` and the folders in it, deepest first (each must be
/// empty by then: `DirectoryNotEmpty` otherwise).
fn remove_folders(dir: &Dir, name: &OsStr) -> io::Result<()> {
    if let Some(folder) = dir.child(name)? {
        for (below, _) in folder.list()? {
            remove_folders(&folder, &below)?;
        }
    }
    dir.remove(name, true)
}

/// Bytes free for an unprivileged user on the file system holding `path`.
pub fn free_space(path: &Path) -> Result<u64> {
    let st = statvfs(path)?;
    #[allow(clippy::useless_conversion)] // the field types differ between platforms
    Ok(u64::from(st.f_bavail).saturating_mul(u64::from(st.f_frsize)))
}

/// Inodes free for an unprivileged user on the file system holding `path` (how many files can
/// still be made); `None` when it does not count them (btrfs, some network file systems say 0
/// of 0).
pub fn free_inodes(path: &Path) -> Result<Option<u64>> {
    let st = statvfs(path)?;
    #[allow(clippy::useless_conversion)] // the field types differ between platforms
    Ok((u64::from(st.f_files) > 0).then(|| u64::from(st.f_favail)))
}

fn statvfs(path: &Path) -> Result<libc::statvfs> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| IoError::new("check free space of", path, io::Error::new(io::ErrorKind::InvalidInput, e)))?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a properly sized, writable struct
    // for the duration of the call.
    #[allow(unsafe_code)]
    let (rc, st) = unsafe {
        let mut st: libc::statvfs = std::mem::zeroed();
        (libc::statvfs(c.as_ptr(), &raw mut st), st)
    };
    if rc != 0 {
        return Err(IoError::new("check free space of", path, io::Error::last_os_error()).into());
    }
    Ok(st)
}

/// Bytes a restore of `entries` needs free in the work tree at `workdir` as it is now: what
/// the files written add over the files they replace, plus room for the largest temp file
/// that exists next to the file it replaces until the rename.
pub fn space_needed(workdir: &Path, entries: &[ManifestEntry]) -> u64 {
    let mut grow = 0u64;
    let mut transient = 0u64;
    for e in entries {
        if let EntryKind::File { size, .. } = &e.kind {
            // What is in the tree at the path: nothing below a parent that is a symlink.
            let now = super::lstat_in_tree(workdir, &e.path).map_or(0, |m| if m.is_file() { m.len() } else { 0 });
            grow += size.saturating_sub(now);
            transient = transient.max((*size).min(now));
        }
    }
    grow + transient
}

/// Inodes a restore of `entries` takes: a file or symlink made where nothing is now, each
/// folder made for one, and one more for the temp file of the one being written.
pub fn inodes_needed(workdir: &Path, entries: &[ManifestEntry]) -> u64 {
    let mut folders: HashSet<RepoPath> = HashSet::new();
    let mut made = 1;
    for e in entries.iter().filter(|e| !matches!(e.kind, EntryKind::Absent)) {
        if super::lstat_in_tree(workdir, &e.path).is_some() {
            continue;
        }
        made += 1;
        add_missing_folders(workdir, &e.path, &mut folders);
    }
    made + folders.len() as u64
}

/// Adds to `folders` each folder above `path` that is not in the work tree now (a write
/// makes it), nearest first, up to the first one there or already in `folders`.
pub(crate) fn add_missing_folders(workdir: &Path, path: &RepoPath, folders: &mut HashSet<RepoPath>) {
    for anc in path.ancestors() {
        if folders.contains(&anc) || super::lstat_in_tree(workdir, &anc).is_some() {
            break;
        }
        folders.insert(anc);
    }
}

/// Refuses ([`Error::NoSpace`]) when the file system of `workdir` has less than `needed`
/// bytes free: found before a restore changes anything, not half-way.
pub fn check_space(workdir: &Path, needed: u64) -> Result<()> {
    let available = free_space(workdir)?;
    if needed > available {
        return Err(Error::NoSpace { path: workdir.to_path_buf(), needed, available });
    }
    Ok(())
}

/// The owners a restore gives what it writes for `e` (and the folders it makes for it): the
/// recorded ones when this process runs as root. `None` for any other user (only root can give
/// a file away; what an ordinary user writes is its own, as before owners were recorded) and
/// for entries recorded without them.
fn owner_to_give(e: &ManifestEntry) -> Option<&Ownership> {
    e.owner.as_ref().filter(|_| crate::fsutil::euid() == 0)
}

/// Gives `name` in `dir` (the path `full`) the owner `to` when `expect` holds for it, never
/// through a symlink ([`Dir::chown_if`]); a system that will not let root give it counts in
/// `refused`.
fn give(
    dir: &Dir,
    name: &OsStr,
    full: &Path,
    to: Owner,
    expect: impl Fn(&fs::Metadata) -> bool,
    refused: &mut usize,
) -> Result<()> {
    match dir.chown_if(name, to, expect) {
        Ok(_) => Ok(()),
        Err(e) if chown::refused(&e) => {
            *refused += 1;
            Ok(())
        }
        Err(e) => Err(IoError::new("set the owner of", full, e).into()),
    }
}

/// What a restore writes a file or symlink for: the path, the owner to give it (if any) and
/// the extended attributes recorded with it.
struct Target<'a> {
    path: &'a RepoPath,
    full: &'a Path,
    owner: Option<Owner>,
    xattrs: &'a [Xattr],
}

/// Creates a symlink to the raw `target` under a temp name in `dir`, gives it its owner and
/// extended attributes (the link itself, never what it leads to; attributes it may not set are
/// added to `lost`) and renames it over its name.
fn write_symlink(
    dir: &Dir,
    to: &Target<'_>,
    target: &[u8],
    refused: &mut usize,
    lost: &mut Vec<NotGivenBack>,
) -> Result<()> {
    let (name, full) = (file_name(to.path.as_path()), to.full);
    let tmp_full = temp_path(full);
    let tmp = file_name(&tmp_full);
    // Made here or not at all: what is already under that name is not ours to remove.
    dir.symlink(OsStr::from_bytes(target), tmp).at("create symlink", &tmp_full)?;
    let result = match to.owner {
        Some(o) => give(dir, tmp, &tmp_full, o, |m| m.file_type().is_symlink(), refused),
        None => Ok(()),
    }
    .and_then(|()| {
        // A symlink has no mode of its own: every attribute after the owner. By the folder's
        // descriptor, never by a path a swapped folder could lead elsewhere.
        let xattrs: Vec<&Xattr> = to.xattrs.iter().collect();
        Ok(On::Path(&dir.proc_path(tmp)).give(&xattrs, to.path, lost).at("set extended attributes of", &tmp_full)?)
    })
    .and_then(|()| dir.rename(tmp, name).at("rename into place", full).map_err(Into::into));
    if result.is_err() {
        let _ = dir.remove(tmp, false);
    }
    result
}

/// Writes blob `blob` with exactly `mode` (and its owner, if given, and its extended
/// attributes: those it may not set are added to `lost`) through a temp file in `dir` renamed
/// over its name, streamed from the store.
fn write_file(
    store: &dyn BackupStore,
    dir: &Dir,
    to: &Target<'_>,
    blob: &BlobId,
    mode: u32,
    refused: &mut usize,
    lost: &mut Vec<NotGivenBack>,
) -> Result<()> {
    let (name, full) = (file_name(to.path.as_path()), to.full);
    let tmp_full = temp_path(full);
    let tmp = file_name(&tmp_full);
    // Made here or not at all: a file already under that name is not ours to remove.
    let mut f = dir.create_new(tmp, 0o600).at("create", &tmp_full)?;
    let result: Result<()> = (|| {
        store.copy_blob_to(blob, &mut f, &tmp_full)?;
        // The owner before the mode: `chown` clears the setuid and setgid bits, even as root.
        // Through the handle: the file just made, whatever its name leads to by now.
        if let Some(o) = to.owner {
            match std::os::unix::fs::fchown(&f, Some(o.uid), Some(o.gid)) {
                Err(e) if chown::refused(&e) => *refused += 1,
                other => other.at("set the owner of", &tmp_full)?,
            }
        }
        // After the owner, which clears `security.capability`; before the mode, which could
        // take away the write permission a non-root owner needs to set `user.*`.
        let give = |before: bool, lost: &mut Vec<NotGivenBack>| {
            On::Fd(&f).give(&xattr::phase(to.xattrs, before), to.path, lost).at("set extended attributes of", &tmp_full)
        };
        give(true, lost)?;
        // Set after the write (a read-only mode must not block it) and explicitly, so the
        // umask does not narrow it.
        f.set_permissions(fs::Permissions::from_mode(mode)).at("set permissions of", &tmp_full)?;
        // The ACLs last: one sets the group bits to its mask, which a `chmod` after it would
        // change.
        give(false, lost)?;
        drop(f);
        Ok(dir.rename(tmp, name).at("rename into place", full)?)
    })();
    if result.is_err() {
        let _ = dir.remove(tmp, false);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::Origin;
    use crate::backup::store::FsBackupStore;

    /// A folder swapped for a symlink to a folder outside the tree after the restore's checks
    /// (what the app's user can do while root restores): nothing is written or removed
    /// outside, and the file is refused.
    #[test]
    fn a_folder_swapped_for_a_symlink_after_the_checks_leads_nothing_out() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = FsBackupStore::open(store_dir.path()).unwrap();
        let tree = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::create_dir_all(tree.path().join("app/conf")).unwrap();
        fs::write(tree.path().join("app/old.txt"), "old").unwrap();
        fs::create_dir(outside.path().join("conf")).unwrap();
        fs::write(outside.path().join("old.txt"), "keep me").unwrap();
        let (blob, _) = store.put_blob(b"evil").unwrap();
        let entry = |path: &str, kind: EntryKind| ManifestEntry {
            path: RepoPath::new(path).unwrap(),
            origin: Origin::Untracked,
            kind,
            owner: None,
            xattrs: vec![],
        };
        let entries = [
            entry("app/conf/x.conf", EntryKind::File { blob, size: 4, mode: 0o644 }),
            entry("app/old.txt", EntryKind::Absent),
        ];
        let swap = &mut || {
            fs::rename(tree.path().join("app"), tree.path().join("app.moved")).unwrap();
            std::os::unix::fs::symlink(outside.path(), tree.path().join("app")).unwrap();
        };
        let err = restore_checked(&store, tree.path(), &entries, swap).unwrap_err();
        assert!(matches!(&err, Error::UnsafeRestore { path, .. } if path == "app/conf/x.conf"), "{err}");
        assert_eq!(fs::read_to_string(outside.path().join("old.txt")).unwrap(), "keep me", "not removed");
        assert_eq!(fs::read_dir(outside.path().join("conf")).unwrap().count(), 0, "nothing written outside");
        assert_eq!(fs::read_to_string(tree.path().join("app.moved/old.txt")).unwrap(), "old");
    }
}
