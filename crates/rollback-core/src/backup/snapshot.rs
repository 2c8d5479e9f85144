//! Capturing paths of a work tree into manifest entries, and restoring them.
//!
//! # What is followed
//!
//! Nothing, ever, on the captured paths themselves:
//! - [`capture`] looks at each path with `lstat`: a symlink is recorded as a symlink with its
//!   raw target bytes (absolute and dangling targets included), never read through; a regular
//!   file is opened with `O_NOFOLLOW`. A folder is walked (again without following symlinks
//!   inside it) and every file and symlink below it is recorded; the folder itself is not.
//!   A path below a parent that is a symlink or a file does not exist in the work tree and is
//!   recorded as absent: capture never reads through a symlinked parent folder.
//! - [`restore`] writes only below parent folders that are real folders. Before it changes
//!   anything it checks every parent folder of every entry that exists on disk, and refuses
//!   ([`Error::UnsafeRestore`]) when one is a symlink (it could lead outside the work tree) or a
//!   file. Files are written through a temp file renamed over the path, and symlinks are
//!   created with their exact raw target, so an existing symlink at the path is replaced, not
//!   followed.
//!
//! # Folders
//!
//! A folder is not an entry, but [`capture_all`] records every folder it sees ([`Folder`]):
//! those above each path, and those below a captured folder, empty ones included, each with
//! its permission bits (setgid and sticky bits included) and owner. [`restore_folders`] makes
//! the missing ones again after a restore, and gives each its mode once the files are in (a
//! read-only folder is filled first).
//!
//! # Extended attributes
//!
//! Every extended attribute the capturing process can read ([`xattr`](super::xattr): POSIX
//! ACLs, file capabilities, security labels, `user.*`, `trusted.*` as root) is recorded with
//! each file, symlink and folder: a file's from the descriptor its bytes are read through (or
//! from the [stat cache](super::statcache), whose entries change when an attribute does), a
//! symlink's and a folder's by path, never followed. [`restore`] and [`restore_folders`] set
//! them again, and say which ones this process may not set.
//!
//! # What is not captured
//!
//! Times. Entries named `.git` below a captured folder (a nested repository)
//! are skipped: they cannot be represented as a [`RepoPath`]. FIFOs, sockets and devices are an
//! error ([`Error::UnsupportedFileType`]).
//!
//! The owner (user and group ids) of every file and symlink is recorded, and those of the
//! folders above it when one differs: [`restore`] gives them back when it runs as root (to the
//! folders it has to make again), and leaves what it writes to its own user otherwise.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;
use std::sync::atomic::Ordering;

use super::statcache::{FileStat, StatCache};
use super::xattr::{On, Xattr};
use super::{
    BackupStore, BlobId, EntryKind, Error, Folder, ManifestEntry, Origin, Owner, Ownership, PutStats, Result,
    SymlinkTarget,
};
use crate::fsutil::{IoContext, IoError};
use crate::paths::RepoPath;

mod put_back;
mod strays;

pub(crate) use put_back::add_missing_folders;
pub use put_back::{
    FolderStats, RestoreStats, check_space, free_inodes, free_space, inodes_needed, relink, restore, restore_folders,
    space_needed,
};
pub use strays::remove_stray_temps;

/// The file-type name of `ft` for messages, when it cannot be captured.
fn unsupported_kind(ft: fs::FileType) -> &'static str {
    if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

/// `lstat`, with `None` for a path that does not exist (or whose parent is not a folder).
fn lstat(path: &Path) -> Result<Option<fs::Metadata>, IoError> {
    match fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(m)),
        Err(e) if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory) => Ok(None),
        Err(e) => Err(IoError::new("read metadata of", path, e)),
    }
}

/// Captures `paths` of the work tree at `workdir`: file content goes into `store` as blobs.
///
/// Per path (see the [module docs](self) for what is followed):
/// - a regular file → [`EntryKind::File`] with its blob, size and permission bits
///   (`mode & 0o7777`), its owner and its extended attributes;
/// - a symlink → [`EntryKind::Symlink`] with its raw target, its owner and its extended
///   attributes;
/// - nothing → [`EntryKind::Absent`], plus an `Absent` entry for every missing parent folder,
///   so that a restore removes folders that did not exist;
/// - a folder → every file and symlink below it, with the same origin.
///
/// The result is sorted by path bytes, one entry per path (the first origin given wins).
/// The [`PutStats`] count blobs offered to the store and the new ones it wrote.
pub fn capture(
    store: &dyn BackupStore,
    workdir: &Path,
    paths: &[(RepoPath, Origin)],
) -> Result<(Vec<ManifestEntry>, PutStats)> {
    capture_with_progress(store, workdir, paths, &mut |_| {})
}

/// [`capture`], calling `progress(done)` with the number of `paths` captured so far: rising,
/// from 0, at most 101 times, and `paths.len()` last.
pub fn capture_with_progress(
    store: &dyn BackupStore,
    workdir: &Path,
    paths: &[(RepoPath, Origin)],
    progress: &mut dyn FnMut(u64),
) -> Result<(Vec<ManifestEntry>, PutStats)> {
    capture_cached(store, workdir, paths, None, progress)
}

/// [`capture_with_progress`] with a [stat cache](super::statcache): a regular file whose
/// stat matches a reusable entry (and whose blob is in the store with the file's size) is
/// not read; every file captured is recorded in `cache`.
pub fn capture_cached(
    store: &dyn BackupStore,
    workdir: &Path,
    paths: &[(RepoPath, Origin)],
    cache: Option<&mut StatCache>,
    progress: &mut dyn FnMut(u64),
) -> Result<(Vec<ManifestEntry>, PutStats)> {
    capture_all(store, workdir, paths, cache, progress).map(|c| (c.entries, c.stats))
}

/// What [`capture_all`] took.
#[derive(Debug)]
pub struct Captured {
    /// The entries, as [`capture`] gives them.
    pub entries: Vec<ManifestEntry>,
    /// Every real folder the capture saw, sorted by path: above each path, and below each
    /// captured folder (empty ones included).
    pub folders: Vec<Folder>,
    /// Blobs offered to the store and the new ones it wrote.
    pub stats: PutStats,
}

/// [`capture_cached`], with the folders it saw ([`Captured::folders`]).
pub fn capture_all(
    store: &dyn BackupStore,
    workdir: &Path,
    paths: &[(RepoPath, Origin)],
    mut cache: Option<&mut StatCache>,
    progress: &mut dyn FnMut(u64),
) -> Result<Captured> {
    let mut out: BTreeMap<RepoPath, ManifestEntry> = BTreeMap::new();
    let mut stats = PutStats::default();
    // Real folders seen, with their owners and modes.
    let mut folders: HashMap<RepoPath, Seen> = HashMap::new();
    let mut pending: Vec<Pending> = Vec::new();
    let mut queued: HashSet<RepoPath> = HashSet::new();
    // A path listed on its own is captured with its own origin, not as part of a folder above
    // it (a tracked file with local edits inside a folder the target turns into a file).
    let listed: HashSet<&RepoPath> = paths.iter().map(|(p, _)| p).collect();
    // Progress counts paths: the walk's share first, then the stored files' share of the rest.
    let total = paths.len() as u64;
    let mut progress = Throttle::new(total, progress);
    for (done, (path, origin)) in paths.iter().enumerate() {
        progress.at(done as u64 / 2);
        let origin = *origin;
        let absent =
            |p: RepoPath| ManifestEntry { path: p, origin, kind: EntryKind::Absent, owner: None, xattrs: vec![] };
        // Parents, outermost first: a missing one makes it and everything below it absent; a
        // symlink or file in the way means the path cannot exist in the work tree.
        let ancestors: Vec<RepoPath> = path.ancestors().collect();
        let mut blocked = false;
        for (i, anc) in ancestors.iter().enumerate().rev() {
            // A folder seen as a real folder earlier in this capture is not looked at again.
            if folders.contains_key(anc) {
                continue;
            }
            match lstat(&anc.to_fs(workdir))? {
                Some(m) if m.is_dir() => {
                    folders.insert(anc.clone(), Seen::of(&m, &anc.to_fs(workdir))?);
                }
                Some(_) => {
                    blocked = true;
                    break;
                }
                None => {
                    for missing in &ancestors[..=i] {
                        out.entry(missing.clone()).or_insert_with(|| absent(missing.clone()));
                    }
                    blocked = true;
                    break;
                }
            }
        }
        if blocked {
            out.entry(path.clone()).or_insert_with(|| absent(path.clone()));
            continue;
        }
        let folder = capture_one(
            store,
            workdir,
            path,
            origin,
            &listed,
            &mut out,
            &mut pending,
            &mut queued,
            &mut folders,
            &mut stats,
            cache.as_deref_mut(),
        )?;
        // A tracked file that is a folder now: nothing is at the path itself (what the folder
        // holds is captured below it), so a restore removes what is there before it writes
        // the folder's files back.
        if folder && origin == Origin::Tracked {
            out.entry(path.clone()).or_insert_with(|| absent(path.clone()));
        }
    }
    let walked = total / 2;
    let queue = (pending.len() as u64).max(1);
    let stored = store_pending(store, workdir, &pending, &mut |n| progress.at(walked + n * (total - walked) / queue))?;
    let mut new_seen: HashSet<BlobId> = HashSet::new();
    for (Pending { path, origin }, Stored { blob, size, new, stat, owner, xattrs, blob_file: stored }) in
        pending.into_iter().zip(stored)
    {
        // Two files with the same content race to store one blob: it is new once.
        if new && new_seen.insert(blob.clone()) {
            stats.new_blobs += 1;
            stats.new_bytes += size;
        }
        stats.blobs += 1;
        stats.bytes += size;
        if let Some(c) = cache.as_deref_mut() {
            c.record_file(&path, stat, &blob, &xattrs);
            if let Some(stored) = stored {
                c.record_written_blob(&blob, stored);
            }
        }
        let kind = EntryKind::File { blob, size, mode: stat.mode & 0o7777 };
        out.insert(
            path.clone(),
            ManifestEntry { path, origin, kind, owner: Some(Ownership { owner, folders: vec![] }), xattrs },
        );
    }
    progress.end();
    let mut entries: Vec<ManifestEntry> = out.into_values().collect();
    for e in &mut entries {
        if let Some(own) = &mut e.owner {
            own.folders = folder_owners(workdir, &e.path, own.owner, &mut folders)?;
        }
    }
    let mut folders: Vec<Folder> =
        folders.into_iter().map(|(path, Seen { owner, mode, xattrs })| Folder { path, mode, owner, xattrs }).collect();
    folders.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Captured { entries, folders, stats })
}

/// A real folder the capture saw: its owner, permission bits and extended attributes.
#[derive(Clone, Debug)]
struct Seen {
    owner: Owner,
    mode: u32,
    xattrs: Vec<Xattr>,
}

impl Seen {
    /// The folder at `full`, whose `lstat` is `meta` (its attributes read by path, not
    /// followed).
    fn of(meta: &fs::Metadata, full: &Path) -> Result<Self, IoError> {
        use std::os::unix::fs::PermissionsExt as _;
        let xattrs = On::Path(full).read().at("read extended attributes of", full)?;
        Ok(Self { owner: Owner::of(meta), mode: meta.permissions().mode() & 0o7777, xattrs })
    }
}

/// Adds to `folders` (sorted by path, as [`Captured::folders`]) each real folder above each of
/// `paths` it does not hold yet: the folders a reset that rewrites or deletes those paths may
/// empty, remove and make again with the default mode. Parents are looked at outermost
/// first, and none through a symlink or below a file.
pub fn add_folders_above(workdir: &Path, paths: &[&RepoPath], folders: &mut Vec<Folder>) -> Result<(), IoError> {
    let mut known: HashSet<RepoPath> = folders.iter().map(|f| f.path.clone()).collect();
    for path in paths {
        let ancestors: Vec<RepoPath> = path.ancestors().collect();
        for anc in ancestors.into_iter().rev() {
            if known.contains(&anc) {
                continue;
            }
            match lstat(&anc.to_fs(workdir))? {
                Some(m) if m.is_dir() => {
                    let Seen { owner, mode, xattrs } = Seen::of(&m, &anc.to_fs(workdir))?;
                    known.insert(anc.clone());
                    folders.push(Folder { path: anc, mode, owner, xattrs });
                }
                _ => break,
            }
        }
    }
    folders.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(())
}

/// Passes on a rising count out of `total` at most about 100 times: the first value, then
/// values at least 1% past the last one passed, and `total` once at the end (101 calls at most).
struct Throttle<'a> {
    total: u64,
    step: u64,
    last: Option<u64>,
    report: &'a mut dyn FnMut(u64),
}

impl<'a> Throttle<'a> {
    fn new(total: u64, report: &'a mut dyn FnMut(u64)) -> Self {
        Throttle { total, step: total.div_ceil(100).max(1), last: None, report }
    }

    fn at(&mut self, done: u64) {
        let due = match self.last {
            None => true,
            Some(last) => done >= last + self.step && done < self.total,
        };
        if due {
            (self.report)(done);
            self.last = Some(done);
        }
    }

    fn end(&mut self) {
        if self.last != Some(self.total) {
            (self.report)(self.total);
        }
    }
}

/// A regular file the walk found and the cache could not vouch for: read and stored after the
/// walk, on several threads.
struct Pending {
    path: RepoPath,
    origin: Origin,
}

/// What storing one [`Pending`] file gave.
struct Stored {
    /// Its blob and size, and whether the blob was new.
    blob: BlobId,
    size: u64,
    new: bool,
    /// The stat, owner and extended attributes of the open file.
    stat: FileStat,
    owner: Owner,
    xattrs: Vec<Xattr>,
    /// The stat of the new blob's store file.
    blob_file: Option<FileStat>,
}

/// The fewest files a thread is started for: below this, threads cost more than they give.
const PARALLEL_FROM: usize = 32;

/// Files a thread takes from the queue at a time.
const CHUNK: usize = 8;

/// The walk: what [`capture_cached`] records per path, except that regular files the cache
/// does not vouch for are queued in `pending` (their entries come later). `true` when `path`
/// is a folder (its content was walked).
#[allow(clippy::too_many_arguments)]
fn capture_one(
    store: &dyn BackupStore,
    workdir: &Path,
    path: &RepoPath,
    origin: Origin,
    listed: &HashSet<&RepoPath>,
    out: &mut BTreeMap<RepoPath, ManifestEntry>,
    pending: &mut Vec<Pending>,
    queued: &mut HashSet<RepoPath>,
    folders: &mut HashMap<RepoPath, Seen>,
    stats: &mut PutStats,
    mut cache: Option<&mut StatCache>,
) -> Result<bool> {
    if out.contains_key(path) || queued.contains(path) {
        return Ok(false);
    }
    let full = path.to_fs(workdir);
    let Some(meta) = lstat(&full)? else {
        out.insert(
            path.clone(),
            ManifestEntry { path: path.clone(), origin, kind: EntryKind::Absent, owner: None, xattrs: vec![] },
        );
        return Ok(false);
    };
    let ft = meta.file_type();
    let (kind, xattrs) = if ft.is_symlink() {
        let target = fs::read_link(&full).at("read symlink", &full)?;
        let xattrs = On::Path(&full).read().at("read extended attributes of", &full)?;
        (EntryKind::Symlink { target: SymlinkTarget(target.into_os_string().into_vec()) }, xattrs)
    } else if ft.is_file() {
        // The `lstat` above says all the cache compares: a reusable entry whose blob is stored
        // with the file's size means the file is not even opened (nor its attributes read:
        // changing one changes the ctime the entry is kept under).
        let seen = FileStat::of(&meta);
        let known = match cache.as_deref() {
            Some(c) => match c.file(path, &seen) {
                Some((blob, xattrs)) if store.blob_stat(blob)?.is_some_and(|b| b.size == seen.size) => {
                    let xattrs = match xattrs {
                        Some(x) => x.to_vec(),
                        None => On::Path(&full).read().at("read extended attributes of", &full)?,
                    };
                    Some((blob.clone(), xattrs))
                }
                _ => None,
            },
            None => None,
        };
        let Some((blob, xattrs)) = known else {
            queued.insert(path.clone());
            pending.push(Pending { path: path.clone(), origin });
            return Ok(false);
        };
        stats.blobs += 1;
        stats.bytes += seen.size;
        if let Some(c) = cache.as_deref_mut() {
            c.record_file(path, seen, &blob, &xattrs);
        }
        (EntryKind::File { blob, size: seen.size, mode: seen.mode & 0o7777 }, xattrs)
    } else if ft.is_dir() {
        folders.insert(path.clone(), Seen::of(&meta, &full)?);
        let mut children: Vec<_> = fs::read_dir(&full)
            .at("list", &full)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()
            .at("list", &full)?;
        children.sort();
        for name in children {
            if name.as_bytes().eq_ignore_ascii_case(b".git") {
                continue;
            }
            let mut child = path.as_bytes().to_vec();
            child.push(b'/');
            child.extend_from_slice(name.as_bytes());
            let child = RepoPath::new(child).map_err(|e| {
                Error::from(IoError::new("capture", full.join(&name), io::Error::new(io::ErrorKind::InvalidData, e)))
            })?;
            if listed.contains(&child) {
                continue;
            }
            capture_one(
                store,
                workdir,
                &child,
                origin,
                listed,
                out,
                pending,
                queued,
                folders,
                stats,
                cache.as_deref_mut(),
            )?;
        }
        return Ok(true);
    } else {
        return Err(Error::UnsupportedFileType { path: path.clone(), kind: unsupported_kind(ft) });
    };
    let owner = Ownership { owner: Owner::of(&meta), folders: vec![] };
    out.insert(path.clone(), ManifestEntry { path: path.clone(), origin, kind, owner: Some(owner), xattrs });
    Ok(false)
}

/// The owners of the folders above `path`, outermost first (from `seen`, the folders the
/// capture looked at, else by `lstat`), for [`Ownership::folders`]: empty when every one is
/// owned by `owner`, the path's own.
fn folder_owners(
    workdir: &Path,
    path: &RepoPath,
    owner: Owner,
    seen: &mut HashMap<RepoPath, Seen>,
) -> Result<Vec<Owner>, IoError> {
    let ancestors: Vec<RepoPath> = path.ancestors().collect();
    let mut out = Vec::with_capacity(ancestors.len());
    for anc in ancestors.iter().rev() {
        let o = if let Some(s) = seen.get(anc) {
            s.owner
        } else {
            let full = anc.to_fs(workdir);
            let s = Seen::of(&fs::symlink_metadata(&full).at("read metadata of", &full)?, &full)?;
            let owner = s.owner;
            seen.insert(anc.clone(), s);
            owner
        };
        out.push(o);
    }
    if out.iter().all(|o| *o == owner) {
        out.clear();
    }
    Ok(out)
}

/// How many times a file is read into the store before a capture gives up on it because it
/// changed while it was being read each time.
const CAPTURE_TRIES: u32 = 4;

/// Reads one regular file into the store, whole: when its stat after the read differs from
/// the stat before (something wrote it meanwhile, so the bytes stored may be half old and
/// half new), it is read again, up to [`CAPTURE_TRIES`] times, then refused
/// ([`Error::ChangedWhileCaptured`]): a backup must never call torn bytes "the content".
fn store_file(store: &dyn BackupStore, workdir: &Path, path: &RepoPath) -> Result<Stored> {
    for _ in 1..CAPTURE_TRIES {
        if let Some(stored) = store_file_once(store, workdir, path)? {
            return Ok(stored);
        }
    }
    store_file_once(store, workdir, path)?
        .ok_or_else(|| Error::ChangedWhileCaptured { path: path.clone(), tries: CAPTURE_TRIES })
}

/// One read of a regular file into the store; `None` when the file changed while it was read.
fn store_file_once(store: &dyn BackupStore, workdir: &Path, path: &RepoPath) -> Result<Option<Stored>> {
    let full = path.to_fs(workdir);
    // `O_NOFOLLOW`: if the file was swapped for a symlink since the walk's `lstat`, fail
    // rather than read through it. The stat recorded comes from the open file itself.
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&full)
        .at("open", &full)?;
    let meta = f.metadata().at("read metadata of", &full)?;
    if !meta.is_file() {
        return Err(Error::UnsupportedFileType { path: path.clone(), kind: unsupported_kind(meta.file_type()) });
    }
    // Read through the descriptor the bytes are: the attributes of the file captured, after
    // the stat recorded (a change since changes the ctime, and the cache entry with it).
    let xattrs = On::Fd(&f).read().at("read extended attributes of", &full)?;
    // Streamed into the store: a file bigger than memory is captured all the same.
    let (blob, size, new) = store.put_blob_from(&f, &full)?;
    let stat = FileStat::of(&meta);
    // Stat'ed again through the same descriptor once its bytes are read: any write since the
    // first stat changes the ctime (and a chmod, chown or attribute too).
    if FileStat::of(&f.metadata().at("read metadata of", &full)?) != stat || size != meta.len() {
        return Ok(None);
    }
    // Hashed while it was written: the verification after the capture need not read it back.
    let stored = if new { store.blob_stat(&blob)? } else { None };
    Ok(Some(Stored { blob, size, new, stat, owner: Owner::of(&meta), xattrs, blob_file: stored }))
}

/// Stores the `pending` files, on up to as many threads as there are cores (at least
/// [`PARALLEL_FROM`] files each; this thread is one of them), calling `progress` with the
/// number stored so far. The first error in path order wins; files are read no matter what
/// the others give.
fn store_pending(
    store: &dyn BackupStore,
    workdir: &Path,
    pending: &[Pending],
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<Stored>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(pending.len() / PARALLEL_FROM)
        .max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::atomic::AtomicUsize::new(0);
    // Takes chunks of the queue until it is empty, calling `report` with the files stored by
    // every thread so far after each chunk; gives each file's place in the queue with its result.
    let work = |report: &mut dyn FnMut(usize)| {
        let mut got = Vec::new();
        loop {
            let from = next.fetch_add(CHUNK, Ordering::Relaxed);
            if from >= pending.len() {
                break got;
            }
            for (i, p) in pending.iter().enumerate().skip(from).take(CHUNK) {
                got.push((i, store_file(store, workdir, &p.path)));
            }
            let taken = CHUNK.min(pending.len() - from);
            report(done.fetch_add(taken, Ordering::Relaxed) + taken);
        }
    };
    let mut results: Vec<Option<Result<Stored>>> = (0..pending.len()).map(|_| None).collect();
    std::thread::scope(|s| {
        let helpers: Vec<_> = (1..threads).map(|_| s.spawn(|| work(&mut |_| {}))).collect();
        let mine = work(&mut |now| progress(now as u64));
        let theirs =
            helpers.into_iter().flat_map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)));
        for (i, r) in mine.into_iter().chain(theirs) {
            results[i] = Some(r);
        }
    });
    results.into_iter().map(|r| r.expect("every queued file was taken by a thread")).collect()
}

/// Groups of captured files that are hard links to one another now (same device and inode),
/// each sorted, for [`Manifest::hard_links`](super::Manifest::hard_links).
pub fn hard_link_groups(workdir: &Path, entries: &[ManifestEntry]) -> Vec<Vec<RepoPath>> {
    use std::os::unix::fs::MetadataExt;
    let mut by_inode: BTreeMap<(u64, u64), Vec<RepoPath>> = BTreeMap::new();
    for e in entries {
        if let EntryKind::File { .. } = &e.kind
            && let Ok(m) = fs::symlink_metadata(e.path.to_fs(workdir))
            && m.is_file()
            && m.nlink() > 1
        {
            by_inode.entry((m.dev(), m.ino())).or_default().push(e.path.clone());
        }
    }
    let mut groups: Vec<Vec<RepoPath>> = by_inode.into_values().filter(|g| g.len() > 1).collect();
    for g in &mut groups {
        g.sort();
    }
    groups.sort();
    groups
}

/// Whether the entry at `full` is still exactly what a snapshot captured as `captured`: a
/// regular file of the same size and content, or a symlink with the same target. Anything
/// else (changed, replaced by a folder, gone, or captured as absent) is `false`: a caller
/// about to delete or overwrite the path must capture it again or leave it.
pub fn still_as_captured(full: &Path, captured: &EntryKind) -> bool {
    match captured {
        EntryKind::File { blob, size, .. } => {
            let Ok(meta) = fs::symlink_metadata(full) else { return false };
            if !meta.is_file() || meta.len() != *size {
                return false;
            }
            let Ok(mut file) =
                OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(full)
            else {
                return false;
            };
            let mut hasher = blake3::Hasher::new();
            io::copy(&mut file, &mut hasher).is_ok() && BlobId::from_hash(hasher.finalize()) == *blob
        }
        EntryKind::Symlink { target } => {
            fs::read_link(full).is_ok_and(|t| t.as_os_str().as_bytes() == target.0.as_slice())
        }
        EntryKind::Absent => false,
    }
}

/// `lstat` of `path` in the work tree at `workdir`, as [`capture`] sees it: `None` when
/// nothing is there, and also when a parent is a symlink or a file (the path does not exist in
/// the work tree, whatever such a link leads to; capture records it as absent). Parents are
/// looked at outermost first, so nothing is ever looked at through a symlink.
pub fn lstat_in_tree(workdir: &Path, path: &RepoPath) -> Option<fs::Metadata> {
    let ancestors: Vec<RepoPath> = path.ancestors().collect();
    for anc in ancestors.iter().rev() {
        if !fs::symlink_metadata(anc.to_fs(workdir)).is_ok_and(|m| m.is_dir()) {
            return None;
        }
    }
    fs::symlink_metadata(path.to_fs(workdir)).ok()
}

/// [`still_as_captured`] for `path` of the work tree at `workdir`, where a path below a parent
/// that is a symlink or a file does not exist ([`lstat_in_tree`]): one captured as a file or
/// symlink whose parent turned into a symlink since is not as captured, whatever the link leads
/// to.
pub fn still_in_tree_as_captured(workdir: &Path, path: &RepoPath, captured: &EntryKind) -> bool {
    lstat_in_tree(workdir, path).is_some() && still_as_captured(&path.to_fs(workdir), captured)
}

/// [`still_as_captured`], by the stat `cache` recorded when it captured `path` (full path
/// `full`) as a file, if it did and the stat qualifies ([`StatCache::still_recorded`]);
/// otherwise, or without a cache, by reading the entry.
pub fn still_as_recorded(cache: Option<&StatCache>, path: &RepoPath, full: &Path, captured: &EntryKind) -> bool {
    if let (Some(cache), EntryKind::File { blob, .. }) = (cache, captured)
        && let Ok(meta) = fs::symlink_metadata(full)
        && meta.is_file()
        && cache.still_recorded(path, &FileStat::of(&meta), blob)
    {
        return true;
    }
    still_as_captured(full, captured)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::store::FsBackupStore;

    fn rp(s: &str) -> RepoPath {
        RepoPath::new(s).unwrap()
    }

    #[test]
    fn missing_path_records_missing_parents_as_absent() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = FsBackupStore::open(store_dir.path()).unwrap();
        let wd = tempfile::tempdir().unwrap();
        fs::create_dir(wd.path().join("a")).unwrap();
        let (entries, stats) = capture(&store, wd.path(), &[(rp("a/b/c/d.txt"), Origin::Tracked)]).unwrap();
        let paths: Vec<String> = entries.iter().map(|e| e.path.to_string()).collect();
        assert_eq!(paths, ["a/b", "a/b/c", "a/b/c/d.txt"]);
        assert!(entries.iter().all(|e| e.kind == EntryKind::Absent));
        assert_eq!(stats, PutStats::default());
    }

    #[test]
    fn fifo_is_a_clear_error() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = FsBackupStore::open(store_dir.path()).unwrap();
        let wd = tempfile::tempdir().unwrap();
        let fifo = wd.path().join("pipe");
        let c = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert_eq!(rc, 0);
        let err = capture(&store, wd.path(), &[(rp("pipe"), Origin::Untracked)]).unwrap_err();
        assert!(
            matches!(&err, Error::UnsupportedFileType { path, kind: "FIFO" } if path.as_bytes() == b"pipe"),
            "{err}"
        );
        assert!(err.to_string().contains("`pipe`"), "{err}");
    }

    #[test]
    fn path_below_a_symlinked_folder_is_absent_not_read_through() {
        let store_dir = tempfile::tempdir().unwrap();
        let store = FsBackupStore::open(store_dir.path()).unwrap();
        let wd = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        fs::write(outside.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(outside.path(), wd.path().join("link")).unwrap();
        let (entries, stats) = capture(&store, wd.path(), &[(rp("link/secret"), Origin::Tracked)]).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].kind, EntryKind::Absent);
        assert_eq!(stats.blobs, 0);
    }
}
