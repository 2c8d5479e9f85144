//! File-system helpers: atomic writes, private folders, and files only the user running
//! forge-rollback owns.
//!
//! Every file forge-rollback writes for itself (manifests, journals, reports, the registry)
//! goes through [`atomic_write`]: a temp file in the same folder, `sync_all`, rename, then an
//! fsync of the folder, so a crash leaves either the old or the new content, never half of it.
//! State folders are `0700` and files `0600`: backups hold `.env` files and other secrets.
//!
//! # Whose state
//!
//! Everything forge-rollback opens in its state folder must belong to the user running it
//! (the effective uid), and no symlink there is followed. A folder is checked with `lstat`
//! when it is opened or created ([`create_private_dir`], [`check_dir`]); a file is opened with
//! `O_NOFOLLOW` and its owner read from the open descriptor ([`open_private`]), so the check
//! and the use are the same file. Anything else is refused with an [`UnsafeState`] (carried
//! in an [`IoError`] of kind `PermissionDenied`), and nothing is changed. A folder that is
//! ours and `0700` admits no one else's entries, so nothing below it needs a walk.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Permission bits of every folder forge-rollback creates for its state.
pub const DIR_MODE: u32 = 0o700;
/// Permission bits of every file forge-rollback writes for its state.
pub const FILE_MODE: u32 = 0o600;

/// An I/O error with the path it happened on.
#[derive(Debug, thiserror::Error)]
#[error("{action} `{}`", path.display())]
pub struct IoError {
    /// What was being done ("write", "read", ...).
    pub action: &'static str,
    /// The path involved.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: io::Error,
}

impl IoError {
    /// Wraps an `io::Error` with the action and path.
    pub fn new(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self { action, path: path.into(), source }
    }

    /// The underlying error kind.
    pub fn kind(&self) -> io::ErrorKind {
        self.source.kind()
    }

    /// The refusal inside, when this is forge-rollback refusing a path of its state.
    pub(crate) fn unsafe_state(&self) -> Option<&UnsafeState> {
        self.source.get_ref()?.downcast_ref()
    }
}

/// The user id forge-rollback runs as (effective): the one its state must belong to. Asked
/// once (it is a system call, and forge-rollback never changes it).
pub(crate) fn euid() -> u32 {
    static EUID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    // SAFETY: `geteuid` takes no arguments, touches no memory of ours and cannot fail.
    #[allow(unsafe_code)]
    *EUID.get_or_init(|| unsafe { libc::geteuid() })
}

/// A user's name from `/etc/passwd`, for messages; `uid N` when it has none there.
pub(crate) fn user_name(uid: u32) -> String {
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)?.parse() == Ok(uid)).then(|| name.to_owned())
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// What is wrong with a path of the state folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// A symlink: forge-rollback follows none in its state.
    Symlink {
        /// Where it points.
        target: PathBuf,
    },
    /// Not the kind of entry expected.
    Kind {
        /// "folder" or "regular file".
        expected: &'static str,
        /// What is there instead.
        found: &'static str,
    },
    /// Owned by another user.
    Owner {
        /// Its owner.
        uid: u32,
    },
    /// A file with other names (hard links): writing it would change them too.
    Links {
        /// How many names it has.
        links: u64,
    },
}

/// A path of the state folder forge-rollback refuses to use, and why.
#[derive(Debug, thiserror::Error)]
#[error("`{}` {}", path.display(), self.why())]
pub struct UnsafeState {
    /// The path.
    pub path: PathBuf,
    /// What is wrong with it.
    pub problem: Problem,
}

impl UnsafeState {
    fn why(&self) -> String {
        let me = euid();
        match &self.problem {
            Problem::Symlink { target } => format!(
                "is a symlink (to `{}`): forge-rollback follows no symlink in its state folder, \
                 since one could point its writes at any file and its reads at anyone's content",
                target.display()
            ),
            Problem::Kind { expected, found } => format!("is a {found}, not a {expected}"),
            Problem::Owner { uid } => format!(
                "belongs to {} (uid {uid}), not to {} (uid {me}) who runs forge-rollback: its owner \
                 could change the backups an undo writes into the work tree, or point forge-rollback's \
                 writes at other files",
                user_name(*uid),
                user_name(me)
            ),
            Problem::Links { links } => {
                format!("has {links} hard links: writing it would change the file behind its other names")
            }
        }
    }

    /// What the operator can do.
    pub fn hint(&self) -> String {
        let path = self.path.display();
        match &self.problem {
            Problem::Owner { uid } => format!(
                "run forge-rollback as its owner ({}); or check what is in it, then remove it or fix \
                 its owner with `chown -R {} {path}`",
                user_name(*uid),
                user_name(euid())
            ),
            Problem::Symlink { .. } | Problem::Links { .. } => {
                format!("check it, then remove it (`rm {path}`): forge-rollback makes a new one of its own")
            }
            Problem::Kind { .. } => {
                format!("check it, then move it out of the way: forge-rollback makes a new `{path}` of its own")
            }
        }
    }
}

impl From<UnsafeState> for IoError {
    fn from(e: UnsafeState) -> Self {
        IoError::new("refuse to use", e.path.clone(), io::Error::new(io::ErrorKind::PermissionDenied, e))
    }
}

fn kind_name(t: fs::FileType) -> &'static str {
    if t.is_symlink() {
        "symlink"
    } else if t.is_dir() {
        "folder"
    } else if t.is_file() {
        "regular file"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else {
        "device"
    }
}

/// Checks what `lstat` (or `fstat`) found at `path`: a folder (`dir`) or a regular file, not a
/// symlink, owned by the user running forge-rollback.
fn check_meta(path: &Path, meta: &fs::Metadata, dir: bool) -> Result<(), UnsafeState> {
    let refuse = |problem| UnsafeState { path: path.to_owned(), problem };
    let t = meta.file_type();
    if t.is_symlink() {
        return Err(refuse(Problem::Symlink { target: fs::read_link(path).unwrap_or_default() }));
    }
    let expected = if dir { "folder" } else { "regular file" };
    if kind_name(t) != expected {
        return Err(refuse(Problem::Kind { expected, found: kind_name(t) }));
    }
    if meta.uid() != euid() {
        return Err(refuse(Problem::Owner { uid: meta.uid() }));
    }
    Ok(())
}

/// Checks that `dir`, if it exists, is a real folder (not a symlink) owned by the user running
/// forge-rollback. `Ok(false)` when there is nothing there.
pub fn check_dir(dir: &Path) -> Result<bool, IoError> {
    match fs::symlink_metadata(dir) {
        Ok(meta) => Ok(check_meta(dir, &meta, true).map(|()| true)?),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(IoError::new("read metadata of", dir, e)),
    }
}

/// Checks that `file`, if it exists, is a regular file owned by the user running
/// forge-rollback, with no other name (hard link). `Ok(false)` when there is nothing there.
pub fn check_file(file: &Path) -> Result<bool, IoError> {
    match fs::symlink_metadata(file) {
        Ok(meta) => {
            check_meta(file, &meta, false)?;
            check_links(file, &meta)?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(IoError::new("read metadata of", file, e)),
    }
}

/// Refuses a file with more than one name: writing it would change the others too.
pub fn check_links(file: &Path, meta: &fs::Metadata) -> Result<(), UnsafeState> {
    if meta.nlink() > 1 {
        return Err(UnsafeState { path: file.to_owned(), problem: Problem::Links { links: meta.nlink() } });
    }
    Ok(())
}

/// Opens a file of the state folder with `opts`: never through a symlink (`O_NOFOLLOW`), and
/// only if it is a regular file owned by the user running forge-rollback, checked on the open
/// descriptor, whose metadata comes back with it. `O_NONBLOCK` keeps a FIFO put in its place
/// from blocking the open; it changes nothing for a regular file. A missing file is an error of
/// kind `NotFound`.
pub fn open_private(
    path: &Path,
    opts: &mut OpenOptions,
    action: &'static str,
) -> Result<(File, fs::Metadata), IoError> {
    let file = match opts.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path) {
        Ok(f) => f,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            let target = fs::read_link(path).map_err(|_| IoError::new(action, path, e))?;
            return Err(UnsafeState { path: path.to_owned(), problem: Problem::Symlink { target } }.into());
        }
        Err(e) => return Err(IoError::new(action, path, e)),
    };
    let meta = file.metadata().at("read metadata of", path)?;
    check_meta(path, &meta, false)?;
    Ok((file, meta))
}

/// Shorthand: attach an action and a path to an `io::Result`.
pub trait IoContext<T> {
    /// Wraps the error with the action and path.
    fn at(self, action: &'static str, path: &Path) -> Result<T, IoError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, action: &'static str, path: &Path) -> Result<T, IoError> {
        self.map_err(|e| IoError::new(action, path, e))
    }
}

/// Creates `dir` and its missing parents with mode `0700`, or checks the folder that is there:
/// it must be a real folder (not a symlink) owned by the user running forge-rollback; its mode
/// is then set to `0700`. Existing parents are not checked: callers create from the state
/// folder's root down, checking each level.
pub fn create_private_dir(dir: &Path) -> Result<(), IoError> {
    let meta = match fs::symlink_metadata(dir) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir).at("create folder", dir)?;
            fs::symlink_metadata(dir).at("read metadata of", dir)?
        }
        Err(e) => return Err(IoError::new("read metadata of", dir, e)),
    };
    check_meta(dir, &meta, true)?;
    // `mode` is masked by the umask and does not apply to folders that already existed.
    if meta.permissions().mode() & 0o777 != DIR_MODE {
        fs::set_permissions(dir, fs::Permissions::from_mode(DIR_MODE)).at("set permissions of", dir)?;
    }
    Ok(())
}

/// Where `path` really is: each existing prefix resolved with `realpath` (symlinks, `..`),
/// the part that does not exist yet appended as written (`.` dropped, `..` taking the last
/// part off). Relative paths are taken from the current folder.
pub fn resolve(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                // `out` holds no symlink (or does not exist): its parent is lexical.
                out.pop();
            }
            other => {
                out.push(other);
                if let Ok(real) = out.canonicalize() {
                    out = real;
                }
            }
        }
    }
    out
}

/// Fsyncs a folder so that a rename or a new entry in it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<(), IoError> {
    File::open(dir).and_then(|f| f.sync_all()).at("sync folder", dir)
}

fn temp_name(path: &Path) -> PathBuf {
    temp_sibling(path, "tmp")
}

/// The longest file name (one path component, in bytes) Linux file systems take: `NAME_MAX`.
pub const NAME_MAX: usize = 255;

/// A unique hidden temp name in the folder of `path`, for a file about to be renamed over it
/// (same folder: the rename is atomic): `.` + the start of `path`'s file name + `.{tag}-PID-N`,
/// never longer than [`NAME_MAX`] bytes whatever the name's length. The name is cut as raw
/// bytes (names need not be UTF-8), never inside a UTF-8 character.
pub fn temp_sibling(path: &Path, tag: &str) -> PathBuf {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let suffix = format!(".{tag}-{}-{n}", std::process::id());
    let name = path.file_name().map_or(&b""[..], OsStr::as_bytes);
    let room = NAME_MAX.saturating_sub(1 + suffix.len());
    let mut cut = name.len().min(room);
    // A UTF-8 character is at most 4 bytes: step back over at most 3 continuation bytes.
    for _ in 0..3 {
        if cut > 0 && cut < name.len() && name[cut] & 0xC0 == 0x80 {
            cut -= 1;
        } else {
            break;
        }
    }
    let mut temp = Vec::with_capacity(1 + cut + suffix.len());
    temp.push(b'.');
    temp.extend_from_slice(&name[..cut]);
    temp.extend_from_slice(suffix.as_bytes());
    path.with_file_name(OsStr::from_bytes(&temp))
}

/// Writes `bytes` with mode `mode` to a new temp file next to `path`, synced; hands it to
/// `place` (which puts it at `path`), then fsyncs the folder. The temp file is gone afterwards,
/// whatever happened. Errors name `path`, the file the caller asked for.
fn write_then_place(
    path: &Path,
    bytes: &[u8],
    mode: u32,
    place: impl FnOnce(&Path) -> Result<(), IoError>,
) -> Result<(), IoError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_name(path);
    let result = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).at("write", path)?;
        f.write_all(bytes).at("write", path)?;
        // The umask may have narrowed `mode`; restored files need their exact bits.
        f.set_permissions(fs::Permissions::from_mode(mode)).at("set permissions of", path)?;
        f.sync_all().at("sync", path)?;
        drop(f);
        place(&tmp)?;
        sync_dir(dir)
    })();
    let _ = fs::remove_file(&tmp);
    result
}

/// Writes `bytes` to `path` atomically with mode `mode`: temp file in the same folder,
/// `sync_all`, rename over `path`, fsync the folder.
pub fn atomic_write_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), IoError> {
    write_then_place(path, bytes, mode, |tmp| fs::rename(tmp, path).at("rename into place", path))
}

/// Creates `path` with `bytes` and mode `mode`, atomically and only if nothing is there: the
/// file appears whole or not at all (a temp file, synced, then linked into place; a link
/// fails if `path` exists). A file system without hard links gets a rename after the same
/// check, which is atomic only against writers that do not race for the same new name.
pub fn atomic_create(path: &Path, bytes: &[u8], mode: u32) -> Result<(), IoError> {
    write_then_place(path, bytes, mode, |tmp| match fs::hard_link(tmp, path) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists && fs::symlink_metadata(path).is_err() => {
            fs::rename(tmp, path).at("create", path)
        }
        other => other.at("create", path),
    })
}

/// [`atomic_write_mode`] with the private file mode `0600`.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    atomic_write_mode(path, bytes, FILE_MODE)
}

/// Reads a file of the state folder (see [`open_private`]), with the path in the error.
pub fn read(path: &Path) -> Result<Vec<u8>, IoError> {
    let (file, meta) = open_private(path, OpenOptions::new().read(true), "read")?;
    // Sized from the metadata we have: `File::read_to_end` would ask again (fstat, lseek).
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0).saturating_add(1));
    file.take(u64::MAX).read_to_end(&mut bytes).at("read", path)?;
    Ok(bytes)
}

/// Replaces the file at `full`, if it is a regular file with other hard links, by a copy of
/// its own (same bytes, mode and, run as root, owner; a new inode), through a temp file renamed
/// over it; `Ok(true)` when it did. A checkout that writes a file in place (libgit2 opens it
/// with `O_TRUNC`) would otherwise write through every other name of the file too, one outside
/// the work tree included; git itself writes a new file.
pub fn unshare(full: &Path) -> Result<bool, IoError> {
    let Ok(meta) = fs::symlink_metadata(full) else { return Ok(false) };
    if !meta.is_file() || meta.nlink() < 2 {
        return Ok(false);
    }
    let tmp = temp_sibling(full, "unlink");
    let result = fs::copy(full, &tmp)
        .and_then(|_| fs::set_permissions(&tmp, fs::Permissions::from_mode(meta.mode() & 0o7777)))
        .and_then(|()| {
            if euid() == 0 {
                std::os::unix::fs::lchown(&tmp, Some(meta.uid()), Some(meta.gid()))?;
                // `chown` clears the setuid and setgid bits.
                fs::set_permissions(&tmp, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
            }
            fs::rename(&tmp, full)
        });
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(IoError::new("copy to break the hard link of", full, e));
    }
    Ok(true)
}

/// Removes a file or symlink if it exists; `Ok(false)` when there was nothing.
pub fn remove_file_if_exists(path: &Path) -> Result<bool, IoError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(IoError::new("remove", path, e)),
    }
}

/// Removes the empty folders from `start` up to (not including) `stop`.
pub fn remove_empty_parents(start: &Path, stop: &Path) {
    let mut dir = start.to_path_buf();
    while dir != stop && dir.starts_with(stop) {
        if fs::remove_dir(&dir).is_err() {
            break;
        }
        match dir.parent() {
            Some(p) => dir = p.to_path_buf(),
            None => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
        atomic_write_mode(&p, b"x", 0o755).unwrap();
        assert_eq!(fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o755);
        // No temp files left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn private_dir_is_0700_even_if_it_existed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        fs::create_dir_all(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&d).unwrap();
        assert_eq!(fs::metadata(&d).unwrap().permissions().mode() & 0o777, 0o700);
    }

    #[test]
    fn resolve_follows_the_symlinks_of_the_part_that_exists() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        fs::create_dir_all(root.join("deep/a")).unwrap();
        std::os::unix::fs::symlink(root.join("deep/a"), root.join("link")).unwrap();
        // `..` after a symlink is the parent of where it points, as the kernel has it.
        assert_eq!(resolve(&root.join("link/../b")), root.join("deep/b"));
        assert_eq!(resolve(&root.join("link/./new/../x/y")), root.join("deep/a/x/y"));
        assert_eq!(resolve(&root.join("plain/x")), root.join("plain/x"));
    }

    #[test]
    fn folders_and_files_that_are_symlinks_or_not_what_they_seem_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        fs::create_dir(&real).unwrap();
        fs::write(real.join("f"), b"x").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let problem = |e: IoError| e.unsafe_state().map(|u| u.problem.clone());
        assert!(
            matches!(problem(create_private_dir(&link).unwrap_err()), Some(Problem::Symlink { target }) if target == real)
        );
        assert!(matches!(
            problem(check_dir(&real.join("f")).unwrap_err()),
            Some(Problem::Kind { found: "regular file", .. })
        ));
        assert!(check_dir(&real).unwrap() && !check_dir(&dir.path().join("none")).unwrap());
        let flink = dir.path().join("flink");
        std::os::unix::fs::symlink(real.join("f"), &flink).unwrap();
        let err = read(&flink).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(err.unsafe_state().unwrap().to_string().contains("is a symlink"), "{err}");
        // A FIFO does not block the open and is refused.
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        assert!(matches!(problem(read(&fifo).unwrap_err()), Some(Problem::Kind { found: "FIFO", .. })));
        // Two names for one file.
        fs::hard_link(real.join("f"), dir.path().join("g")).unwrap();
        assert!(matches!(problem(check_file(&real.join("f")).unwrap_err()), Some(Problem::Links { links: 2 })));
        assert_eq!(read(&real.join("f")).unwrap(), b"x", "reading is fine");
    }

    #[test]
    fn temp_names_fit_in_name_max_and_never_split_a_character() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let cjk = "報告書".repeat(28) + "例"; // 255 bytes
        let raw: Vec<u8> = std::iter::repeat_n(&b"\xff-"[..], 127).flatten().copied().chain([b'x']).collect();
        for name in [cjk.as_bytes(), &raw[..], b"short"] {
            assert_eq!(name.len() == 255, name != b"short");
            let path = dir.path().join(OsStr::from_bytes(name));
            let tmp = temp_sibling(&path, "restore");
            let tmp_name = tmp.file_name().unwrap().as_bytes();
            assert!(tmp_name.len() <= NAME_MAX, "{}", tmp_name.len());
            assert_eq!(tmp.parent(), path.parent());
            assert!(tmp_name.starts_with(b".") && tmp_name.windows(9).any(|w| w == b".restore-"));
            if name == cjk.as_bytes() {
                let kept = std::str::from_utf8(tmp_name).expect("cut on a character boundary");
                assert!(kept.starts_with(".報告書"), "{kept}");
            }
            // The file system takes it, and the rename over the long name works.
            fs::write(&tmp, b"x").unwrap();
            fs::rename(&tmp, &path).unwrap();
        }
        assert_eq!(temp_sibling(Path::new("/a/short"), "tmp").parent(), Some(Path::new("/a")));
        assert!(temp_sibling(Path::new("/a/short"), "tmp").file_name().unwrap().as_bytes().starts_with(b".short.tmp-"));
        atomic_write(&dir.path().join(cjk.as_str()), b"atomic").unwrap();
        assert_eq!(fs::read(dir.path().join(cjk.as_str())).unwrap(), b"atomic");
    }

    #[test]
    fn write_error_names_the_path() {
        let err = atomic_write(Path::new("/nonexistent-dir/x"), b"").unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir/x"), "{err}");
    }
}
