//! SQLite: connections with a deadline, snapshots through the online backup API, atomic
//! restores, and a canonical dump. Everything here is blocking; [`super::UrlDatabase`] runs it on
//! tokio's blocking pool.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::{Error, Result};
use crate::fsutil;

/// An open connection whose statements are interrupted when the deadline passes.
pub(crate) struct Handle {
    pub conn: Connection,
    /// The whole wait for a lock, and who hears of a long one.
    timeout: Duration,
    notices: Option<super::NoticeSink>,
    timer: Option<std::thread::JoinHandle<()>>,
    done: std::sync::Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>,
    /// Counts this connection as the engine's own; last, so it is dropped after `conn` is
    /// closed.
    _claim: super::foreign_sqlite::Claim,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let (lock, cvar) = &*self.done;
        if let Ok(mut done) = lock.lock() {
            *done = true;
            cvar.notify_all();
        }
        if let Some(t) = self.timer.take() {
            let _ = t.join();
        }
    }
}

/// How to open.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Read only; the file must exist.
    ReadOnly,
    /// Read and write; the file must exist.
    ReadWrite,
    /// Read and write, creating the file.
    Create,
}

/// How long a lock held by another connection is waited for before the operator is told.
pub(crate) const LOCK_NOTICE_AFTER: Duration = Duration::from_secs(2);

/// Whether SQLite said another connection holds a lock.
fn is_locked(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked))
}

/// The wait for a lock another connection holds, as every SQLite operation here waits:
/// `attempt(wait)` (which gives `None` when it met the lock after waiting `wait`) runs for up
/// to [`LOCK_NOTICE_AFTER`], then `notices` hears of the lock and it runs again for the rest of
/// `timeout`; still locked then, [`Error::Locked`].
fn within_lock_wait<T>(
    timeout: Duration,
    database: &str,
    notices: Option<&super::NoticeSink>,
    mut attempt: impl FnMut(Duration) -> Result<Option<T>>,
) -> Result<T> {
    let first = timeout.min(LOCK_NOTICE_AFTER);
    if let Some(done) = attempt(first)? {
        return Ok(done);
    }
    let locked = || Error::Locked { database: database.to_owned(), waited_secs: timeout.as_secs() };
    let rest = timeout.saturating_sub(first);
    if rest.is_zero() {
        return Err(locked());
    }
    if let Some(sink) = notices {
        sink(&super::DbNotice::Locked { database: database.to_owned(), waiting_secs: rest.as_secs() });
    }
    attempt(rest)?.ok_or_else(locked)
}

/// Opens `path`; `database` names it in errors. Busy waits and statements are bounded by
/// `timeout` (statements running past it are interrupted). A lock another connection holds
/// (`BEGIN EXCLUSIVE`, a migration) is waited for [`LOCK_NOTICE_AFTER`], then `notices` hears
/// of it and the wait goes on for the rest of `timeout`; still locked then, the error is
/// [`Error::Locked`].
///
/// A hot journal (the `-journal` of a process killed inside a write transaction) stops a
/// read-only connection at its first read: SQLite must roll it back first, which only a
/// connection that can write does. A read-only open that meets one opens the file read-write
/// once, as the app's first connection would (SQLite rolls the journal back under its
/// exclusive lock; the database then holds its last committed state), then opens read-only
/// again. When that fails too, the error is [`Error::HotJournal`].
pub(crate) fn open(
    path: &Path,
    mode: Mode,
    timeout: Duration,
    database: &str,
    notices: Option<&super::NoticeSink>,
) -> Result<Handle> {
    match open_once(path, mode, timeout, database, notices) {
        Err(Error::HotJournal { journal, .. }) if mode == Mode::ReadOnly => {
            match open_once(path, Mode::ReadWrite, timeout, database, notices) {
                Ok(rolled_back) => drop(rolled_back),
                Err(e @ (Error::HotJournal { .. } | Error::Locked { .. })) => return Err(e),
                // The file or its folder not writable: still the journal's doing.
                Err(e) => {
                    return Err(Error::HotJournal { database: database.to_owned(), journal, detail: e.to_string() });
                }
            }
            open_once(path, mode, timeout, database, notices)
        }
        opened => opened,
    }
}

/// Whether SQLite refused to read because a hot journal (or a WAL that needs recovery) must be
/// rolled back first and this connection cannot write.
fn is_hot_journal(e: &rusqlite::Error) -> bool {
    use rusqlite::ffi;
    matches!(
        e,
        rusqlite::Error::SqliteFailure(ffi::Error { extended_code, .. }, _)
            if [ffi::SQLITE_READONLY_ROLLBACK, ffi::SQLITE_READONLY_RECOVERY].contains(extended_code)
    )
}

/// [`Error::HotJournal`] for the database at `path`: its `-wal` when that needs recovery, else
/// its `-journal`.
fn hot_journal(path: &Path, database: &str, e: &rusqlite::Error) -> Error {
    let wal =
        matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.extended_code == rusqlite::ffi::SQLITE_READONLY_RECOVERY);
    let mut journal = path.as_os_str().to_os_string();
    journal.push(if wal { "-wal" } else { "-journal" });
    Error::HotJournal {
        database: database.to_owned(),
        journal: PathBuf::from(journal).display().to_string(),
        detail: e.to_string(),
    }
}

/// [`open`] without the roll-back of a hot journal.
fn open_once(
    path: &Path,
    mode: Mode,
    timeout: Duration,
    database: &str,
    notices: Option<&super::NoticeSink>,
) -> Result<Handle> {
    let flags = match mode {
        Mode::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
        Mode::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE,
        Mode::Create => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let unreachable = |detail: String| Error::Unreachable { database: database.to_owned(), detail };
    if mode != Mode::Create && !path.exists() {
        return Err(unreachable("the database file does not exist".into()));
    }
    // Before SQLite opens the file: opening it, or closing it again, while another SQLite of
    // this process holds locks on it is what breaks them.
    let claim = super::foreign_sqlite::claim(path, database)?;
    // No SQLITE_OPEN_URI: a plain path, never interpreted as a `file:` URI.
    let conn = Connection::open_with_flags(path, flags).map_err(|e| unreachable(e.to_string()))?;
    // A database this connection created: nobody had it open before.
    let claim = if claim.counted() { claim } else { super::foreign_sqlite::claim_created(path) };
    // Reading the schema fails on a file that is not a database, and waits for a lock.
    let probe = |wait: Duration| {
        let read =
            conn.busy_timeout(wait).and_then(|()| conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())));
        match read {
            Ok(()) => Ok(Some(())),
            Err(e) if is_locked(&e) => Ok(None),
            Err(e) if is_hot_journal(&e) => Err(hot_journal(path, database, &e)),
            Err(e) => Err(unreachable(e.to_string())),
        }
    };
    within_lock_wait(timeout, database, notices, probe)?;
    conn.busy_timeout(timeout).map_err(|e| unreachable(e.to_string()))?;
    // Foreign keys off, SQLite's documented default, whatever this build's is (the bundled
    // SQLite enforces them unless told otherwise): as the app's own tools open the database.
    // Whoever needs them says so on its connection: the native migrator as
    // `database.sqlite_foreign_keys` says, the put-back, which checks them itself.
    conn.execute_batch("PRAGMA foreign_keys = OFF").map_err(|e| unreachable(e.to_string()))?;
    let done = std::sync::Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new()));
    let handle = conn.get_interrupt_handle();
    let d = done.clone();
    let timer = std::thread::Builder::new()
        .name("forge-rollback-sqlite-deadline".into())
        .spawn(move || {
            let (lock, cvar) = &*d;
            let Ok(guard) = lock.lock() else { return };
            if let Ok((done, _)) = cvar.wait_timeout_while(guard, timeout, |done| !*done)
                && !*done
            {
                handle.interrupt();
            }
        })
        .ok();
    Ok(Handle { conn, timeout, notices: notices.cloned(), timer, done, _claim: claim })
}

impl Handle {
    /// `BEGIN IMMEDIATE` (the write lock) by hand: a lock another connection holds is waited
    /// for [`LOCK_NOTICE_AFTER`], announced, then waited for the rest of the timeout, as
    /// [`open`] does; still held then, [`Error::Locked`]. The caller ends the transaction with
    /// `COMMIT` or `ROLLBACK`.
    pub(crate) fn begin_immediate(&mut self, database: &str) -> Result<()> {
        let q = query_err(database);
        let conn = &self.conn;
        let begin = |wait: Duration| match conn.busy_timeout(wait).and_then(|()| conn.execute_batch("BEGIN IMMEDIATE"))
        {
            Ok(()) => Ok(Some(())),
            Err(e) if is_locked(&e) => Ok(None),
            Err(e) => Err(q(e)),
        };
        let result = within_lock_wait(self.timeout, database, self.notices.as_ref(), begin);
        self.conn.busy_timeout(self.timeout).map_err(&q)?;
        result
    }
}

/// A query error naming the database.
pub(crate) fn query_err(database: &str) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::Query { database: database.to_owned(), detail: e.to_string() }
}

/// `SELECT sqlite_version()`.
pub(crate) fn version(conn: &Connection) -> rusqlite::Result<String> {
    conn.query_row("SELECT sqlite_version()", [], |r| r.get(0))
}

/// The first column of the first row, as text.
pub(crate) fn query_scalar(conn: &Connection, sql: &str) -> rusqlite::Result<Option<String>> {
    let mut stmt = conn.prepare(sql)?;
    let mut rows = stmt.query([])?;
    match rows.next()? {
        None => Ok(None),
        Some(row) => Ok(match row.get_ref(0)? {
            ValueRef::Null => None,
            ValueRef::Integer(i) => Some(i.to_string()),
            ValueRef::Real(f) => Some(f.to_string()),
            ValueRef::Text(t) => Some(String::from_utf8_lossy(t).into_owned()),
            ValueRef::Blob(b) => Some(hex(b)),
        }),
    }
}

/// Whether a table exists.
pub(crate) fn table_exists(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1", [table], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n > 0)
}

/// `PRAGMA integrity_check` on `path`: `Err(problems)` when it is not `ok`.
fn integrity_check(path: &Path, timeout: Duration, database: &str) -> Result<()> {
    let snap_err = |detail: String| Error::Snapshot { database: database.to_owned(), detail };
    let conn = open(path, Mode::ReadOnly, timeout, database, None)
        .map_err(|e| snap_err(format!("the copy cannot be opened: {e}")))?;
    let problems: Vec<String> = (|| {
        let mut stmt = conn.conn.prepare("PRAGMA integrity_check")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect::<rusqlite::Result<Vec<String>>>()
    })()
    .map_err(|e| snap_err(format!("integrity check of `{}` failed to run: {e}", path.display())))?;
    if problems == ["ok"] {
        Ok(())
    } else {
        let shown: Vec<_> = problems.iter().take(5).map(String::as_str).collect();
        Err(snap_err(format!("integrity check of `{}` failed: {}", path.display(), shown.join("; "))))
    }
}

/// Creates the empty file `path` with mode `0600` for a copy to be written into: SQLite would
/// make it `0644` (what the umask leaves of it), readable by every local user, and a copy holds
/// the same data as the database, kept private as the state folder is. An empty file is an
/// empty database to SQLite; the journal it makes next to it takes the file's mode.
pub(crate) fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map(drop)
}

/// A temp file next to `path`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}-{}", std::process::id()));
    path.with_file_name(name)
}

fn sidecars(path: &Path) -> [PathBuf; 3] {
    ["-wal", "-shm", "-journal"].map(|s| {
        let mut p = path.as_os_str().to_os_string();
        p.push(s);
        PathBuf::from(p)
    })
}

/// Online backup of `path` into `dest` (a new file), checked with `PRAGMA integrity_check`
/// before it is put in place. Returns the bytes written and the SQLite version.
pub(crate) fn snapshot(
    path: &Path,
    dest: &Path,
    timeout: Duration,
    database: &str,
    notices: Option<&super::NoticeSink>,
) -> Result<(u64, String)> {
    let snap_err = |detail: String| Error::Snapshot { database: database.to_owned(), detail };
    if dest.exists() {
        return Err(snap_err(format!("`{}` already exists", dest.display())));
    }
    let src = open(path, Mode::ReadOnly, timeout, database, notices)?;
    let tmp = sibling(dest, "partial");
    let _ = std::fs::remove_file(&tmp);
    let result = (|| {
        private_file(&tmp).map_err(|e| snap_err(format!("cannot create `{}`: {e}", tmp.display())))?;
        src.conn
            .backup(rusqlite::MAIN_DB, &tmp, None::<fn(rusqlite::backup::Progress)>)
            .map_err(|e| snap_err(format!("online backup into `{}` failed: {e}", tmp.display())))?;
        integrity_check(&tmp, timeout, database)?;
        std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| snap_err(format!("fsync: {e}")))?;
        std::fs::rename(&tmp, dest).map_err(|e| snap_err(format!("rename into `{}`: {e}", dest.display())))?;
        if let Some(dir) = dest.parent() {
            fsutil::sync_dir(dir).map_err(|e| snap_err(e.to_string()))?;
        }
        let size = std::fs::metadata(dest).map_err(|e| snap_err(e.to_string()))?.len();
        let version = version(&src.conn).map_err(|e| snap_err(e.to_string()))?;
        Ok((size, version))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Puts the snapshot at `src` back into the database at `path`, exactly (schema, rows, header
/// pragmas such as `user_version`). The snapshot is first copied next to the database and the
/// copy checked with `PRAGMA integrity_check`; nothing is written when the check fails.
///
/// A live database is written through SQLite itself, with the online backup API: it takes the
/// write lock like any writer (a lock another connection holds is waited for as [`open`]
/// waits, then [`Error::Locked`], the database unchanged), writes through the database's own
/// rollback journal or WAL with `synchronous = FULL`, and keeps its inode, so its mode and
/// owner stay, and connections the app opened before see the restored content and go on
/// writing. A database in WAL mode stays in WAL mode.
///
/// Only when there is no database to lock (the file does not exist, or is not a SQLite
/// database at all) is the checked copy renamed into place instead, after removing stale
/// `-wal`, `-shm` and `-journal` files that SQLite would replay onto it.
///
/// `guard`: restore only a database whose fingerprint is still `guard.expect`; see
/// [`restore_live`] for how the check and the restore share one lock. A database written since
/// is [`Error::ChangedSince`], nothing restored.
pub(crate) fn restore(
    src: &Path,
    path: &Path,
    timeout: Duration,
    database: &str,
    notices: Option<&super::NoticeSink>,
    guard: Option<&super::Unchanged>,
) -> Result<()> {
    let snap_err = |detail: String| Error::Snapshot { database: database.to_owned(), detail };
    // Before the header is read below: closing that read's descriptor would drop the locks
    // another SQLite of this process holds.
    super::foreign_sqlite::refuse_if_open_elsewhere(path, database)?;
    let tmp = sibling(path, "restore");
    let result = (|| {
        std::fs::copy(src, &tmp).map_err(|e| snap_err(format!("cannot copy the snapshot `{}`: {e}", src.display())))?;
        integrity_check(&tmp, timeout, database)?;
        let at = live(path).map_err(|e| snap_err(format!("cannot read `{}`: {e}", path.display())))?;
        if let Live::Database { wal } = at {
            return restore_live(&tmp, path, wal, timeout, database, notices, guard);
        }
        // Nothing to lock: a missing file fingerprints as the empty text (as
        // `Database::fingerprint` says), anything else that is not a database as changed.
        if let Some(g) = guard
            && (path.exists() || g.expect != super::fingerprint_of(""))
        {
            return Err(Error::ChangedSince { database: database.to_owned(), since: g.since.clone() });
        }
        keep_mode_and_owner(path, &tmp)
            .map_err(|e| snap_err(format!("cannot give the restored file the database's mode and owner: {e}")))?;
        std::fs::File::open(&tmp).and_then(|f| f.sync_all()).map_err(|e| snap_err(format!("fsync: {e}")))?;
        for side in sidecars(path) {
            fsutil::remove_file_if_exists(&side).map_err(|e| snap_err(e.to_string()))?;
        }
        std::fs::rename(&tmp, path).map_err(|e| snap_err(format!("rename over `{}`: {e}", path.display())))?;
        if let Some(dir) = path.parent() {
            fsutil::sync_dir(dir).map_err(|e| snap_err(e.to_string()))?;
        }
        Ok(())
    })();
    // The copy is gone after a rename; after a restore through SQLite (or a failure) it and
    // whatever SQLite made next to it while reading it are removed.
    let _ = std::fs::remove_file(&tmp);
    for side in sidecars(&tmp) {
        let _ = std::fs::remove_file(side);
    }
    result
}

/// What is at the database's path, from the first bytes of the file.
enum Live {
    /// Nothing to lock: no file, or one without the `SQLite format 3` header.
    Absent,
    /// A database (an empty file is an empty one); `wal`: its header says WAL mode.
    Database { wal: bool },
}

fn live(path: &Path) -> std::io::Result<Live> {
    use std::io::Read as _;
    const MAGIC: &[u8; 16] = b"SQLite format 3\0";
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Live::Absent),
        Err(e) => return Err(e),
    };
    let mut head = Vec::with_capacity(20);
    f.by_ref().take(20).read_to_end(&mut head)?;
    Ok(match head.get(..MAGIC.len()) {
        _ if head.is_empty() => Live::Database { wal: false },
        Some(m) if m == MAGIC => Live::Database { wal: head.get(18) == Some(&2) },
        _ => Live::Absent,
    })
}

/// Copies the checked snapshot at `checked` into the live database at `path` with the online
/// backup API, in one step: one write transaction, committed through the database's journal
/// or WAL. The write lock (and, in rollback-journal mode, the exclusive lock to commit) is
/// waited for [`LOCK_NOTICE_AFTER`], announced, then waited for the rest of `timeout`; still
/// held then, the transaction is rolled back and the error is [`Error::Locked`].
///
/// With a `guard`, the database's fingerprint is compared with `guard.expect` under the write
/// lock the restore then writes under, so that no writer commits between the check and the
/// restore; other connections read on, and their writes wait (their busy timeout) until the
/// restore is committed:
/// - rollback-journal mode: `BEGIN IMMEDIATE`, then `locking_mode = EXCLUSIVE`, so the
///   connection keeps the lock after the check's transaction ends and the backup writes under
///   it ([`hold_write_lock_if_unchanged`]);
/// - WAL mode (where exclusive locking needs every other connection closed): the backup's
///   first step, of no pages, opens its write transaction, and a second connection makes the
///   check before the pages are copied.
fn restore_live(
    checked: &Path,
    path: &Path,
    wal: bool,
    timeout: Duration,
    database: &str,
    notices: Option<&super::NoticeSink>,
    guard: Option<&super::Unchanged>,
) -> Result<()> {
    let snap_err = |detail: String| Error::Snapshot { database: database.to_owned(), detail };
    let failed = |e: rusqlite::Error| snap_err(format!("online restore into `{}` failed: {e}", path.display()));
    let from = open(checked, Mode::ReadOnly, timeout, database, None)
        .map_err(|e| snap_err(format!("the copy cannot be opened: {e}")))?;
    let mut to = open(path, Mode::ReadWrite, timeout, database, notices)?;
    if !wal {
        // A `-wal` file left next to a rollback-journal database puts the connection in WAL
        // mode, and a backup in WAL mode marks the file WAL for good: leave WAL first, as
        // SQLite would on the last close (its frames are checkpointed, then it is removed).
        // Other connections using it in WAL mode keep it; the restore is the same either way.
        let mode = query_scalar(&to.conn, "PRAGMA journal_mode").map_err(failed)?;
        if mode.as_deref() == Some("wal") {
            to.conn.busy_timeout(Duration::ZERO).map_err(failed)?;
            let _ = query_scalar(&to.conn, "PRAGMA journal_mode = DELETE");
        }
    }
    // The mode the restore writes in, once a stale `-wal` is left.
    let in_wal = query_scalar(&to.conn, "PRAGMA journal_mode").map_err(failed)?.as_deref() == Some("wal");
    let page_size = |c: &Connection| c.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0));
    let (theirs, ours) = (page_size(&from.conn).map_err(failed)?, page_size(&to.conn).map_err(failed)?);
    if theirs != ours && in_wal {
        return Err(snap_err(format!(
            "the snapshot has {theirs}-byte pages, the database {ours}-byte pages: SQLite cannot restore \
             it in WAL mode; with the app stopped, run `PRAGMA journal_mode = DELETE` on it and restore again"
        )));
    }
    // The commit is durable whatever the build's or the file's default.
    to.conn.pragma_update(None, "synchronous", "FULL").map_err(failed)?;
    if let Some(g) = guard.filter(|_| !in_wal) {
        hold_write_lock_if_unchanged(&mut to, database, g)?;
    }
    let wal_guard = guard.filter(|_| in_wal);
    // Each attempt is its own backup: dropping one that met a lock rolls its transaction back.
    let attempt = |wait: Duration| -> Result<Option<()>> {
        to.conn.busy_timeout(wait).map_err(failed)?;
        let backup = rusqlite::backup::Backup::new(&from.conn, &mut to.conn).map_err(failed)?;
        if let Some(g) = wal_guard {
            // A first step of no pages opens the backup's write transaction on the database
            // and keeps it until the backup ends: no other connection commits from here on.
            // (The copy of a WAL database is never empty, so this step cannot finish it.)
            match backup.step(0).map_err(failed)? {
                rusqlite::backup::StepResult::More => {}
                rusqlite::backup::StepResult::Done => {
                    return Err(snap_err("the snapshot holds no page to restore".into()));
                }
                _ => return Ok(None),
            }
            // WAL readers read on beside a writer: a second connection sees every commit made
            // before the lock was taken, which is what the backup would overwrite.
            let check = open(path, Mode::ReadWrite, timeout, database, None)?;
            unchanged(&check, database, g)?;
        }
        loop {
            match backup.step(-1).map_err(failed)? {
                rusqlite::backup::StepResult::Done => return Ok(Some(())),
                rusqlite::backup::StepResult::More => {}
                // Busy, Locked, and (`StepResult` is non-exhaustive) any other answer.
                _ => return Ok(None),
            }
        }
    };
    within_lock_wait(timeout, database, notices, attempt)
}

/// [`restore_live`]'s check in rollback-journal mode: takes the write lock (`BEGIN
/// IMMEDIATE`), then checks the database is [`unchanged`], and keeps the lock for the backup
/// that follows (`locking_mode = EXCLUSIVE`, which goes with the connection); readers go on
/// reading, writers wait until the restore is committed.
fn hold_write_lock_if_unchanged(to: &mut Handle, database: &str, guard: &super::Unchanged) -> Result<()> {
    let q = query_err(database);
    to.begin_immediate(database)?;
    // Only once the write lock is held: a connection in exclusive locking mode keeps the
    // shared lock of a failed attempt, which would stop the writer it waits for from
    // committing.
    to.conn.pragma_update(None, "locking_mode", "EXCLUSIVE").map_err(&q)?;
    let checked = unchanged(to, database, guard);
    // The transaction only read: ended by a rollback, which (unlike a commit) does not wait
    // for the app's readers, and in exclusive locking mode keeps the write lock.
    let ended = to.conn.execute_batch("ROLLBACK").map_err(&q);
    checked.and(ended)
}

/// Whether the database `c` reads still has the fingerprint `guard.expect` (else
/// [`Error::ChangedSince`]); the caller holds the write lock. Tests stop here with the
/// failpoint `inside:restore_database`, the lock held, once the check has passed.
fn unchanged(c: &Handle, database: &str, guard: &super::Unchanged) -> Result<()> {
    let now = digest_dump(&c.conn).map_err(query_err(database))?;
    if super::fingerprint_of(&now) != guard.expect {
        return Err(Error::ChangedSince { database: database.to_owned(), since: guard.since.clone() });
    }
    crate::failpoint::hit("inside:restore_database")
        .map_err(|e| Error::Snapshot { database: database.to_owned(), detail: e.to_string() })
}

/// Gives `new` the permission bits and owner of the database file at `path` (an app running
/// as another user must still open it after a restore); `0644` when there is none yet.
fn keep_mode_and_owner(path: &Path, new: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    match std::fs::metadata(path) {
        Ok(m) => {
            std::fs::set_permissions(new, std::fs::Permissions::from_mode(m.mode() & 0o7777))?;
            let mine = std::fs::metadata(new)?;
            if (mine.uid(), mine.gid()) != (m.uid(), m.gid()) {
                std::os::unix::fs::chown(new, Some(m.uid()), Some(m.gid()))?;
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::set_permissions(new, std::fs::Permissions::from_mode(0o644))
        }
        Err(e) => Err(e),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::with_capacity(b.len() * 2), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn render(v: ValueRef<'_>) -> String {
    match v {
        ValueRef::Null => "NULL".into(),
        ValueRef::Integer(i) => i.to_string(),
        ValueRef::Real(f) => format!("{f:?}"),
        ValueRef::Text(t) => format!("'{}'", String::from_utf8_lossy(t).replace('\'', "''")),
        ValueRef::Blob(b) => format!("X'{}'", hex(b)),
    }
}

/// [`canonical_dump`]'s schema with each table's rows as their count and an order-independent
/// digest (the wrapping sum of a 128-bit BLAKE3 prefix of every rendered row), read in one pass
/// without holding the rows: the same on equal states, different once a row changes.
pub(crate) fn digest_dump(conn: &Connection) -> rusqlite::Result<String> {
    let mut out = canonical_dump_with(conn, true)?;
    out.push_str("digest\n");
    Ok(out)
}

/// Schema and rows, sorted. Tables are described from `PRAGMA table_xinfo` rather than their
/// `CREATE` text (SQLite edits that text in place on `ALTER TABLE`, so equal schemas can have
/// different texts); indexes, views and triggers by their SQL.
pub(crate) fn canonical_dump(conn: &Connection) -> rusqlite::Result<String> {
    canonical_dump_with(conn, false)
}

fn canonical_dump_with(conn: &Connection, digest: bool) -> rusqlite::Result<String> {
    let mut out = String::new();
    let uv: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let _ = writeln!(out, "user_version {uv}");
    let objects: Vec<(String, String, String, Option<String>)> = {
        let mut stmt = conn.prepare("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?.collect::<rusqlite::Result<_>>()?
    };
    for (kind, name, table, sql) in &objects {
        if kind != "table" {
            if let Some(sql) = sql {
                let _ =
                    writeln!(out, "{kind} {name} on {table}: {}", sql.split_whitespace().collect::<Vec<_>>().join(" "));
            }
            continue;
        }
        let _ = writeln!(out, "table {name}");
        let q = quote_ident(name);
        let mut stmt = conn.prepare(&format!("PRAGMA table_xinfo({q})"))?;
        let cols = stmt.query_map([], |r| {
            Ok(format!(
                "  column {} {} type={} notnull={} default={} pk={} hidden={}",
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, Option<String>>(4)?.unwrap_or_else(|| "NULL".into()),
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })?;
        for c in cols {
            let _ = writeln!(out, "{}", c?);
        }
        let mut stmt = conn.prepare(&format!("PRAGMA foreign_key_list({q})"))?;
        let mut fks: Vec<String> = stmt
            .query_map([], |r| {
                Ok(format!(
                    "  foreign_key {} {} -> {}.{:?} on_update={} on_delete={}",
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<String>>(4)?,
                    r.get::<_, String>(5)?,
                    r.get::<_, String>(6)?,
                ))
            })?
            .collect::<rusqlite::Result<_>>()?;
        fks.sort();
        for f in fks {
            let _ = writeln!(out, "{f}");
        }
        let mut stmt = conn.prepare(&format!("PRAGMA index_list({q})"))?;
        let mut idx: Vec<(String, i64, String, i64)> = stmt
            .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))?
            .collect::<rusqlite::Result<_>>()?;
        idx.sort();
        for (iname, unique, origin, partial) in idx {
            let mut stmt = conn.prepare(&format!("PRAGMA index_info({})", quote_ident(&iname)))?;
            let cols: Vec<String> = stmt
                .query_map([], |r| r.get::<_, Option<String>>(2).map(Option::unwrap_or_default))?
                .collect::<rusqlite::Result<_>>()?;
            let _ = writeln!(
                out,
                "  index {iname} unique={unique} origin={origin} partial={partial} ({})",
                cols.join(", ")
            );
        }
        let mut stmt = conn.prepare(&format!("SELECT * FROM {q}"))?;
        let ncols = stmt.column_count();
        if digest {
            let (mut count, mut sum) = (0u64, 0u128);
            let mut rows = stmt.query([])?;
            while let Some(r) = rows.next()? {
                let mut h = blake3::Hasher::new();
                for i in 0..ncols {
                    h.update(render(r.get_ref(i)?).as_bytes());
                    h.update(b"\x1f");
                }
                let mut b = [0u8; 16];
                b.copy_from_slice(&h.finalize().as_bytes()[..16]);
                sum = sum.wrapping_add(u128::from_le_bytes(b));
                count += 1;
            }
            let _ = writeln!(out, "  rows {count} digest {sum:032x}");
            continue;
        }
        let mut rows: Vec<String> = stmt
            .query_map([], |r| {
                let mut vals = Vec::with_capacity(ncols);
                for i in 0..ncols {
                    vals.push(render(r.get_ref(i)?));
                }
                Ok(format!("({})", vals.join(", ")))
            })?
            .collect::<rusqlite::Result<_>>()?;
        rows.sort();
        let _ = writeln!(out, "  rows {}", rows.len());
        for r in rows {
            let _ = writeln!(out, "    {r}");
        }
    }
    Ok(out)
}
