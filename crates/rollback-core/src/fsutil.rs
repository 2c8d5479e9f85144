//! File-system helpers: atomic writes and private folders.
//!
//! Every file forge-rollback writes for itself (manifests, journals, reports, the registry)
//! goes through [`atomic_write`]: a temp file in the same folder, `sync_all`, rename, then an
//! fsync of the folder, so a crash leaves either the old or the new content, never half of it.
//! State folders are `0700` and files `0600`: backups hold `.env` files and other secrets.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
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

/// Creates `dir` and its missing parents with mode `0700`.
pub fn create_private_dir(dir: &Path) -> Result<(), IoError> {
    fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir).at("create folder", dir)?;
    // `mode` is masked by the umask and does not apply to folders that already existed.
    let meta = fs::metadata(dir).at("read metadata of", dir)?;
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
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
}

/// Writes `bytes` to `path` atomically with mode `mode`: temp file in the same folder,
/// `sync_all`, rename over `path`, fsync the folder.
pub fn atomic_write_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<(), IoError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_name(path);
    let result = (|| {
        // Errors name `path`, the file the caller asked for, not the temp file.
        let mut f = OpenOptions::new().write(true).create_new(true).mode(mode).open(&tmp).at("write", path)?;
        f.write_all(bytes).at("write", path)?;
        // The umask may have narrowed `mode`; restored files need their exact bits.
        f.set_permissions(fs::Permissions::from_mode(mode)).at("set permissions of", path)?;
        f.sync_all().at("sync", path)?;
        drop(f);
        fs::rename(&tmp, path).at("rename into place", path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// [`atomic_write_mode`] with the private file mode `0600`.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), IoError> {
    atomic_write_mode(path, bytes, FILE_MODE)
}

/// Reads a file, with the path in the error.
pub fn read(path: &Path) -> Result<Vec<u8>, IoError> {
    fs::read(path).at("read", path)
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
    fn write_error_names_the_path() {
        let err = atomic_write(Path::new("/nonexistent-dir/x"), b"").unwrap_err();
        assert!(err.to_string().contains("/nonexistent-dir/x"), "{err}");
    }
}
