//! Another SQLite in this process: the Python module runs the engine inside the app's own
//! process, next to Python's `sqlite3` (or SQLAlchemy on top of it), and the engine's SQLite is
//! its own bundled copy. SQLite locks a database with POSIX advisory locks, which never conflict
//! inside one process, and each copy keeps its own table of the locks it holds: the two copies
//! cannot see each other's transactions, and a `close()` by either drops the other's locks
//! (sqlite.org/howtocorrupt.html §2.2, "multiple copies of SQLite linked into the same
//! application"). A rollback run then loses the app's commits or corrupts the file.
//!
//! So before the engine opens a database file, when another SQLite library is loaded into
//! this process, it looks for descriptors of this process on that file (or its
//! `-wal`/`-journal`) that are not the engine's own connections, and refuses when there are
//! some ([`Error::OpenInProcess`]). The engine's own connections are counted per file in a
//! process-wide registry ([`Claim`]): while one is open, the check its opening made covers the
//! next ones, whose descriptors could not be told apart from another library's.
//!
//! Without another SQLite loaded there is nothing to refuse: connections of a Rust program that
//! uses the same bundled SQLite as the engine (rusqlite) share its lock table and are safe, and
//! their descriptors look the same as another library's.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use super::{Error, Result};

/// A file by device and inode: what every descriptor on it shares, whatever the path it was
/// opened by.
type FileId = (u64, u64);

/// How many connections the engine has open, per database file.
static OPEN: Mutex<Option<HashMap<FileId, usize>>> = Mutex::new(None);

fn registry() -> MutexGuard<'static, Option<HashMap<FileId, usize>>> {
    // The map stays consistent whatever panicked while it was held: one counter changes at a
    // time.
    OPEN.lock().unwrap_or_else(PoisonError::into_inner)
}

fn file_id(path: &Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// One engine connection to a database file, counted while it lives; it must be dropped after
/// the connection is closed (the last field of the struct holding both).
pub(crate) struct Claim(Option<FileId>);

impl Claim {
    /// Whether a file was there to count.
    pub(crate) fn counted(&self) -> bool {
        self.0.is_some()
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let Some(id) = self.0 else { return };
        let mut reg = registry();
        if let Some(map) = reg.as_mut()
            && let Some(n) = map.get_mut(&id)
        {
            *n -= 1;
            if *n == 0 {
                map.remove(&id);
            }
        }
    }
}

/// Before the engine opens a connection to the database at `path` (`database` names it in
/// the error): refuses when this process has the file open other than through the engine's
/// own connections; else counts the connection about to be opened. A file that does not
/// exist yet is not counted: [`claim_created`] counts it once the connection made it.
pub(crate) fn claim(path: &Path, database: &str) -> Result<Claim> {
    claim_with(path, database, refuse_foreign)
}

/// [`claim`], with the check that refuses.
fn claim_with(path: &Path, database: &str, refuse: fn(&Path, FileId, &str) -> Result<()>) -> Result<Claim> {
    let Some(id) = file_id(path) else { return Ok(Claim(None)) };
    let mut reg = registry();
    let map = reg.get_or_insert_with(HashMap::new);
    if !map.contains_key(&id) {
        refuse(path, id, database)?;
    }
    *map.entry(id).or_insert(0) += 1;
    Ok(Claim(Some(id)))
}

/// Counts a connection that created the database at `path` (nobody else could have it open
/// before it existed).
pub(crate) fn claim_created(path: &Path) -> Claim {
    let Some(id) = file_id(path) else { return Claim(None) };
    *registry().get_or_insert_with(HashMap::new).entry(id).or_insert(0) += 1;
    Claim(Some(id))
}

/// Refuses, as [`claim`] does, without counting anything: for reading the database file
/// other than through a connection (its header), which must not happen while another SQLite
/// of this process holds locks on it either (closing the descriptor drops them).
pub(crate) fn refuse_if_open_elsewhere(path: &Path, database: &str) -> Result<()> {
    let Some(id) = file_id(path) else { return Ok(()) };
    if registry().as_ref().is_some_and(|m| m.contains_key(&id)) {
        return Ok(());
    }
    refuse_foreign(path, id, database)
}

/// [`Error::OpenInProcess`] when another SQLite is loaded and a descriptor of this process is
/// on the database file, its `-wal` or its `-journal` (the engine has none open: the caller
/// checked).
fn refuse_foreign(path: &Path, id: FileId, database: &str) -> Result<()> {
    if another_sqlite_loaded() { refuse_descriptors(path, id, database) } else { Ok(()) }
}

/// [`refuse_foreign`] whatever is loaded.
#[cfg(target_os = "linux")]
fn refuse_descriptors(path: &Path, id: FileId, database: &str) -> Result<()> {
    let mut ids = vec![id];
    for suffix in ["-wal", "-journal"] {
        let mut side = path.as_os_str().to_os_string();
        side.push(suffix);
        ids.extend(file_id(Path::new(&side)));
    }
    // Each entry is a link to what the descriptor is open on; `metadata` follows it to that
    // file (sockets and pipes have inodes of their own file systems, which never match).
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else { return Ok(()) };
    let held = fds.flatten().any(|fd| file_id(&fd.path()).is_some_and(|f| ids.contains(&f)));
    if held {
        return Err(Error::OpenInProcess {
            database: database.to_owned(),
            path: std::path::absolute(path).unwrap_or_else(|_| path.to_owned()).display().to_string(),
        });
    }
    Ok(())
}

/// Whether a shared object of another SQLite is mapped into this process: the system's
/// `libsqlite3`, Python's `_sqlite3` extension (which carries SQLite itself in some builds),
/// `pysqlite3`, SQLCipher, APSW. The engine's own SQLite is linked into the program or the
/// `forge_rollback` extension, whose names say nothing of SQLite.
#[cfg(target_os = "linux")]
fn another_sqlite_loaded() -> bool {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else { return false };
    maps.lines().filter_map(|l| l.split_whitespace().nth(5)).any(|path| {
        let name = path.rsplit('/').next().unwrap_or(path).to_ascii_lowercase();
        ["sqlite", "sqlcipher", "apsw"].iter().any(|s| name.contains(s))
    })
}

/// Without `/proc/self/fd` there is no telling which files this process holds open.
#[cfg(not(target_os = "linux"))]
fn refuse_descriptors(_path: &Path, _id: FileId, _database: &str) -> Result<()> {
    Ok(())
}

#[cfg(not(target_os = "linux"))]
fn another_sqlite_loaded() -> bool {
    false
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// [`claim`] as if another SQLite were loaded (the tests do not load one: in a test
    /// program that runs tests side by side it would change the others' behaviour).
    fn claim_as_if_loaded(path: &Path) -> Result<Claim> {
        claim_with(path, "app.db", refuse_descriptors)
    }

    fn database(dir: &tempfile::TempDir) -> std::path::PathBuf {
        let db = dir.path().join("app.db");
        std::fs::write(&db, b"").unwrap();
        db
    }

    #[test]
    fn a_descriptor_outside_the_engine_is_refused_and_the_engines_own_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(&dir);

        let other = std::fs::File::open(&db).unwrap();
        let err = claim_as_if_loaded(&db).err().expect("a descriptor outside the engine is refused");
        assert!(matches!(err, Error::OpenInProcess { .. }), "{err}");
        drop(other);

        // The engine's own: once it holds a connection, its descriptor is not another's.
        let first = claim_as_if_loaded(&db).unwrap();
        let own = std::fs::File::open(&db).unwrap();
        let second = claim_as_if_loaded(&db).unwrap();
        refuse_if_open_elsewhere(&db, "app.db").unwrap();
        drop((second, first));
        // Counted down to none: the descriptor still open is no longer covered.
        assert!(claim_as_if_loaded(&db).is_err());
        drop(own);
        claim_as_if_loaded(&db).unwrap();
    }

    #[test]
    fn a_descriptor_on_the_journal_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let db = database(&dir);
        let journal = dir.path().join("app.db-journal");
        std::fs::write(&journal, b"").unwrap();
        let held = std::fs::File::open(&journal).unwrap();
        assert!(claim_as_if_loaded(&db).is_err());
        drop(held);
        claim_as_if_loaded(&db).unwrap();
    }

    #[test]
    fn without_another_sqlite_loaded_a_descriptor_is_not_refused() {
        // The test program's only SQLite is the engine's (rusqlite's bundled copy).
        assert!(!another_sqlite_loaded());
        let dir = tempfile::tempdir().unwrap();
        let db = database(&dir);
        let _same_copy = std::fs::File::open(&db).unwrap();
        claim(&db, "app.db").unwrap();
        refuse_if_open_elsewhere(&db, "app.db").unwrap();
    }
}
