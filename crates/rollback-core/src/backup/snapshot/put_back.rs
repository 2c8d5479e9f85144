//! Restoring captured entries into the work tree ([`restore`], [`relink`]), and the free-space
//! check before it; see the [parent module](super) for what is followed.

use std::collections::{BTreeSet, HashSet};
use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::lstat;
use crate::backup::{BackupStore, BlobId, EntryKind, Error, ManifestEntry, Owner, Ownership, Result, chown};
use crate::fsutil::{IoContext, IoError};
use crate::paths::RepoPath;

/// Counters of one [`restore`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
        let first = g[0].to_fs(workdir);
        for p in &g[1..] {
            let full = p.to_fs(workdir);
            let tmp = temp_path(&full);
            fs::hard_link(&first, &tmp).at("link", &tmp)?;
            if let Err(e) = fs::rename(&tmp, &full) {
                let _ = fs::remove_file(&tmp);
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

fn unsafe_restore(path: &RepoPath, reason: impl Into<String>) -> Error {
    Error::UnsafeRestore { path: path.to_string(), reason: reason.into() }
}

/// Restores `entries` into the work tree at `workdir`: each path gets back exactly what it
/// held (bytes and mode, symlink target, or nothing), and, when this process runs as root, the
/// owner recorded with it ([`owner_to_give`]).
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
/// each folder made once it is made. Missing parent folders are created one by one, and
/// a parent that is not a real folder then is refused; a folder in the way is removed only if
/// it holds nothing but (empty) folders, deepest first (what the checks allow once the absent
/// entries are gone), else [`Error::UnsafeRestore`]. Removals come first so that a path that
/// was a file or symlink is free again when a folder the rollback created there held only
/// paths that were absent. Finally one `syncfs` makes the restored tree durable.
pub fn restore(store: &dyn BackupStore, workdir: &Path, entries: &[ManifestEntry]) -> Result<RestoreStats> {
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
        match lstat(&full)? {
            None => {}
            Some(m) if m.is_dir() => match fs::remove_dir(&full) {
                Ok(()) => stats.removed_dirs += 1,
                Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => stats.kept_dirs += 1,
                Err(e) => return Err(IoError::new("remove folder", full, e).into()),
            },
            Some(_) => {
                fs::remove_file(&full).at("remove", &full)?;
                stats.removed += 1;
            }
        }
    }

    // 4. Files and symlinks.
    let mut folders: HashSet<RepoPath> = HashSet::new();
    for e in entries {
        let full = e.path.to_fs(workdir);
        match &e.kind {
            EntryKind::Absent => {}
            EntryKind::File { blob, mode, .. } => {
                let refused = &mut stats.owners_refused;
                prepare_target(workdir, &e.path, &full, &mut folders, owner_to_give(e), refused)?;
                write_file(store, &full, blob, *mode, owner_to_give(e).map(|o| o.owner), refused)?;
                stats.files += 1;
            }
            EntryKind::Symlink { target } => {
                let refused = &mut stats.owners_refused;
                prepare_target(workdir, &e.path, &full, &mut folders, owner_to_give(e), refused)?;
                write_symlink(workdir, &e.path, &target.0, owner_to_give(e).map(|o| o.owner), refused)?;
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

/// Makes `full` ready to be renamed over: parent folders exist, each a real folder (looked at
/// with `lstat`, outermost first, and made one by one: nothing is created or written through a
/// symlink; `folders` holds those known to be real folders already); a folder at the path is
/// removed if it holds nothing but (empty) folders, deepest first and never through a link,
/// refused otherwise before any of it is removed. Files and symlinks at the path stay (the
/// rename replaces them atomically). A folder made gets its recorded owner from `owner`, if
/// given (counted in `refused` when the system would not let root give it).
fn prepare_target(
    workdir: &Path,
    path: &RepoPath,
    full: &Path,
    folders: &mut HashSet<RepoPath>,
    owner: Option<&Ownership>,
    refused: &mut usize,
) -> Result<()> {
    let ancestors: Vec<RepoPath> = path.ancestors().collect();
    for (depth, anc) in ancestors.iter().rev().enumerate() {
        if folders.contains(anc) {
            continue;
        }
        let dir = anc.to_fs(workdir);
        let found = match lstat(&dir)? {
            None => match fs::create_dir(&dir) {
                Ok(()) => {
                    if let Some(o) = owner.and_then(|o| o.folder(depth)) {
                        give(workdir, &fs_rel(anc.as_bytes()), o, fs::Metadata::is_dir, refused)?;
                    }
                    None
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => lstat(&dir)?,
                Err(e) => return Err(IoError::new("create folder", dir, e).into()),
            },
            found => found,
        };
        if let Some(m) = found
            && !m.is_dir()
        {
            let what = if m.file_type().is_symlink() { "a symlink" } else { "not a folder" };
            return Err(unsafe_restore(path, format!("its parent folder `{anc}` is {what}")));
        }
        folders.insert(anc.clone());
    }
    folders.remove(path);
    if lstat(full)?.is_some_and(|m| m.is_dir()) {
        // What the checks allowed: a folder that holds nothing but folders (the absent
        // entries below it were removed already). Anything else in it is found before any of
        // it is removed.
        let mut below = Vec::new();
        if !only_folders(full, &mut below)? {
            return Err(unsafe_restore(path, "a folder that is not empty is in the way"));
        }
        if !below.is_empty() {
            folders.retain(|f| !f.starts_with(path));
        }
        // Deepest first: every folder is listed after the one holding it.
        for dir in below.iter().rev().map(PathBuf::as_path).chain(std::iter::once(full)) {
            match fs::remove_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {
                    return Err(unsafe_restore(path, "a folder that is not empty is in the way"));
                }
                Err(e) => return Err(IoError::new("remove folder", dir, e).into()),
            }
        }
    }
    Ok(())
}

/// Whether the folder `dir` holds nothing but folders, at any depth; those are pushed onto
/// `below`, each after the folder holding it. Symlinks are not followed (one is "something
/// else", whatever it leads to).
fn only_folders(dir: &Path, below: &mut Vec<PathBuf>) -> Result<bool> {
    for entry in fs::read_dir(dir).at("read folder", dir)? {
        let entry = entry.at("read folder", dir)?;
        let full = entry.path();
        if !entry.file_type().at("read metadata of", &full)?.is_dir() {
            return Ok(false);
        }
        below.push(full.clone());
        if !only_folders(&full, below)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Bytes free for an unprivileged user on the file system holding `path`.
pub fn free_space(path: &Path) -> Result<u64> {
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
    #[allow(clippy::useless_conversion)] // the field types differ between platforms
    Ok(u64::from(st.f_bavail).saturating_mul(u64::from(st.f_frsize)))
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

/// `rel` (the bytes of a path of the work tree) as a relative path.
fn fs_rel(rel: &[u8]) -> PathBuf {
    PathBuf::from(OsStr::from_bytes(rel))
}

/// Gives `rel` (below `workdir`) the owner `to` when `expect` holds for it, never through a
/// symlink ([`chown::chown_beneath`]); a system that will not let root give it counts in
/// `refused`.
fn give(
    workdir: &Path,
    rel: &Path,
    to: Owner,
    expect: impl Fn(&fs::Metadata) -> bool,
    refused: &mut usize,
) -> Result<()> {
    match chown::chown_beneath(workdir, rel, to, expect) {
        Ok(_) => Ok(()),
        Err(e) if chown::refused(&e) => {
            *refused += 1;
            Ok(())
        }
        Err(e) => Err(IoError::new("set the owner of", workdir.join(rel), e).into()),
    }
}

/// Creates a symlink to the raw `target` under a temp name next to `path`, gives it `owner`
/// (the link itself, never what it leads to) and renames it over the path.
fn write_symlink(
    workdir: &Path,
    path: &RepoPath,
    target: &[u8],
    owner: Option<Owner>,
    refused: &mut usize,
) -> Result<()> {
    let full = path.to_fs(workdir);
    let tmp = temp_path(&full);
    std::os::unix::fs::symlink(OsStr::from_bytes(target), &tmp).at("create symlink", &tmp)?;
    let result = match (owner, tmp.file_name()) {
        (Some(o), Some(name)) => {
            let rel = fs_rel(path.as_bytes()).with_file_name(name);
            give(workdir, &rel, o, |m| m.file_type().is_symlink(), refused)
        }
        _ => Ok(()),
    }
    .and_then(|()| fs::rename(&tmp, &full).at("rename into place", &full).map_err(Into::into));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Writes blob `blob` with exactly `mode` (and `owner`, if given) through a temp file renamed
/// over `full`, streamed from the store.
fn write_file(
    store: &dyn BackupStore,
    full: &Path,
    blob: &BlobId,
    mode: u32,
    owner: Option<Owner>,
    refused: &mut usize,
) -> Result<()> {
    let tmp = temp_path(full);
    let result: Result<()> = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp).at("create", &tmp)?;
        store.copy_blob_to(blob, &mut f, &tmp)?;
        // The owner before the mode: `chown` clears the setuid and setgid bits, even as root.
        // Through the handle: the file just made, whatever its name leads to by now.
        if let Some(o) = owner {
            match std::os::unix::fs::fchown(&f, Some(o.uid), Some(o.gid)) {
                Err(e) if chown::refused(&e) => *refused += 1,
                other => other.at("set the owner of", &tmp)?,
            }
        }
        // Set after the write (a read-only mode must not block it) and explicitly, so the
        // umask does not narrow it.
        f.set_permissions(fs::Permissions::from_mode(mode)).at("set permissions of", &tmp)?;
        drop(f);
        Ok(fs::rename(&tmp, full).at("rename into place", full)?)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}
