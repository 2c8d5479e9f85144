//! The run lock: one rollback, undo or resume at a time per repository.
//!
//! The lock is an `flock(2)` on `<state>/lock`, and the file holds who took it (pid, host, start
//! time, command). The kernel releases an `flock` when its holder dies, even by `kill -9`, so
//! a crashed run never blocks the next one: the next run finds the old holder's details in the
//! file, says it is taking the lock over, and goes on. A live holder makes every other taker
//! fail at once (no waiting) with [`Error::Held`], naming the holder.
//!
//! The lock file and its folder must belong to the user running forge-rollback, and the file is
//! opened with `O_NOFOLLOW` and must have a single name: a `lock` symlink or hard link to
//! another file (a root-owned one, say) is refused instead of truncated and written.
//!
//! Releasing unlinks the file while still holding the lock. A taker that opened the old file
//! just before checks, once it holds the lock, that its descriptor still is the file at the
//! path, and starts over if not, so two takers can never both believe they hold it.
//!
//! A fork without exec shares the locked file with the child, and with it the lock: the
//! process that embeds the engine (the Python module) calls [`close_inherited`] in the child, so
//! a worker forked during a run does not hold the lock after its parent died.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI32, Ordering};

use serde::{Deserialize, Serialize};

use crate::fsutil::{self, IoContext, IoError};
use crate::time::Timestamp;

mod push;

pub(crate) use push::PushLock;
pub use push::{PushHolder, refuse_push_running};

/// Who holds (or held) the lock.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockHolder {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// When it took the lock.
    pub started_at: Timestamp,
    /// What it is doing (`run`, `undo RUN`, ...).
    pub command: String,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on {}, `{}` since {}", self.pid, self.host, self.command, self.started_at.log_format())
    }
}

/// Lock errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another live process holds the lock.
    #[error("another rollback is running: {}", holder.as_ref().map_or_else(|| "holder unknown (it is just starting)".to_owned(), ToString::to_string))]
    Held {
        /// The lock file.
        path: PathBuf,
        /// Its holder, if it had written its details yet.
        holder: Option<LockHolder>,
    },
    /// A git process is writing the repository: its index lock file (or the lock file of a
    /// ref the reset moves: `HEAD.lock`, the branch's) stayed in place for as long as a run
    /// waits for it (a `git` the previous holder started and that outlived it, or one the
    /// operator runs).
    #[error("a git process is writing the repository: `{}` exists (waited {waited_secs} s)", index_lock.display())]
    GitBusy {
        /// The lock file (`.git/index.lock`, `.git/HEAD.lock`, `.git/refs/heads/main.lock`).
        index_lock: PathBuf,
        /// How long the run waited for it to go.
        waited_secs: u64,
    },
    /// A `git push` that a run started is still running (it outlived that run's
    /// forge-rollback): the remote may still change (`PushLock`).
    #[error("{} is still running (it outlived the forge-rollback that started it): the remote may still change", holder.as_ref().map_or_else(|| "a `git push` of `[deploy]`".to_owned(), ToString::to_string))]
    PushRunning {
        /// The push lock file.
        path: PathBuf,
        /// The push, if its details were written yet.
        holder: Option<PushHolder>,
    },
    /// The lock file could not be opened or locked.
    #[error(transparent)]
    Io(#[from] IoError),
}

impl Error {
    /// What the operator can do.
    pub fn hint(&self) -> Option<String> {
        match self {
            // This very process (another thread or task of a service that embeds the
            // module): waiting for its own exit would be no advice.
            Error::Held { holder: Some(h), .. } if h.pid == std::process::id() && h.host == host_name() => {
                Some("another thread or task of this process holds it: wait for that run to end and try again".into())
            }
            Error::Held { holder: Some(h), .. } => Some(format!(
                "wait for it to finish; the lock is released when pid {} exits, even if it is killed",
                h.pid
            )),
            Error::Held { holder: None, .. } => Some("wait for it to finish and try again".into()),
            Error::GitBusy { index_lock, .. } => Some(format!(
                "wait for that git to finish and try again; if no git process is running, a crash left the file: remove `{}`",
                index_lock.display()
            )),
            Error::PushRunning { holder, .. } => Some(format!(
                "wait for it to end, then try again: the remote is read after it, to see whether the push went through{}",
                holder.as_ref().and_then(|h| h.pgid).map_or_else(String::new, |g| format!(
                    "; if it hangs, stop it with `kill -- -{g}` (the remote then keeps whatever it had accepted)"
                ))
            )),
            Error::Io(e) => e.unsafe_state().map(fsutil::UnsafeState::hint),
        }
    }
}

/// The descriptors of the run locks this process holds (`-1`: a free slot), for
/// [`close_inherited`]. Atomics, not a mutex: a fork can come while another thread holds a
/// mutex, which the child could then never take.
static HELD_FDS: [AtomicI32; 64] = [const { AtomicI32::new(-1) }; 64];

fn remember_held(fd: RawFd) {
    // More locks at once than slots (a service with as many repositories): the extra ones are
    // not closed in a forked child, as before.
    let _ = HELD_FDS.iter().find(|slot| slot.compare_exchange(-1, fd, Ordering::SeqCst, Ordering::SeqCst).is_ok());
}

fn forget_held(fd: RawFd) {
    if let Some(slot) = HELD_FDS.iter().find(|slot| slot.load(Ordering::SeqCst) == fd) {
        slot.store(-1, Ordering::SeqCst);
    }
}

/// Closes, in a child forked without exec, its copies of the descriptors of the run locks its
/// parent holds. An `flock` belongs to the open file, which a fork shares: a child that kept
/// it (a pre-fork server's worker, `multiprocessing`'s) would keep the lock after its parent
/// died, for as long as it lives, and `resume` and `unlock` would name the dead parent. The
/// runs are the parent's: the child never releases them itself (the threads that would are
/// not in it). The Python module calls this from `os.register_at_fork`.
pub fn close_inherited() {
    for slot in &HELD_FDS {
        let fd = slot.swap(-1, Ordering::SeqCst);
        if fd >= 0 {
            // SAFETY: `fd` is the child's copy of a lock descriptor no code of the child uses
            // (its `RunLock` lives on a thread of the parent); closing it leaves the parent's.
            #[allow(unsafe_code)]
            unsafe {
                libc::close(fd);
            }
        }
    }
}

/// A held lock. Dropping it releases the lock and removes the file.
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
    /// The previous holder, when it died without releasing (the lock was taken over).
    pub taken_over: Option<LockHolder>,
}

fn host_name() -> String {
    let mut buf = [0_u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most that many bytes.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// `flock(LOCK_EX)` on `file`, waiting for the holder (retried when a signal interrupts it):
/// for short critical sections (a registry edit), where waiting is the right answer.
pub(crate) fn flock_wait(file: &File) -> std::io::Result<()> {
    loop {
        // SAFETY: the descriptor is open for the duration of the call.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        if rc == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// `flock(fd, LOCK_EX | LOCK_NB)`: `Ok(true)` when taken, `Ok(false)` when held elsewhere.
pub(crate) fn try_flock(file: &File, path: &Path) -> Result<bool, IoError> {
    // SAFETY: the descriptor is open for the duration of the call.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    if err.kind() == std::io::ErrorKind::WouldBlock { Ok(false) } else { Err(IoError::new("lock", path, err)) }
}

fn read_holder(file: &mut File) -> Option<LockHolder> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// Checks the lock's folder (ours, not a symlink); `Ok(false)` when it does not exist.
fn check_folder(path: &Path) -> Result<bool, IoError> {
    path.parent().map_or(Ok(true), fsutil::check_dir)
}

/// What [`take`] found.
enum Taken {
    /// The lock is ours, on the file at the path.
    Ours(File),
    /// A live process holds it (the file, to read who).
    Held(File),
}

/// Opens (creating, `0600`) the lock file at `path` and takes its `flock`, again when the
/// holder we raced with unlinked the file between our open and our lock.
fn take(path: &Path) -> Result<Taken, Error> {
    loop {
        let file =
            open_lock_file(path, OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600))?;
        if !try_flock(&file, path)? {
            return Ok(Taken::Held(file));
        }
        let ours = file.metadata().at("read metadata of", path)?;
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.ino() == ours.ino() && m.dev() == ours.dev() => return Ok(Taken::Ours(file)),
            _ => {}
        }
    }
}

/// Opens the lock file with `opts` (see [`fsutil::open_private`]) and refuses one with other
/// names: it is truncated and written.
fn open_lock_file(path: &Path, opts: &mut OpenOptions) -> Result<File, IoError> {
    let (file, meta) = fsutil::open_private(path, opts, "open lock file")?;
    fsutil::check_links(path, &meta)?;
    Ok(file)
}

impl RunLock {
    /// Takes the lock at `path` for `command`, failing at once if a live process holds it.
    pub fn acquire(path: &Path, command: &str) -> Result<Self, Error> {
        check_folder(path)?;
        let mut file = match take(path)? {
            Taken::Ours(file) => file,
            Taken::Held(mut file) => {
                return Err(Error::Held { path: path.to_owned(), holder: read_holder(&mut file) });
            }
        };
        // Remembered as soon as it is held, before its holder is written (what others read
        // to know the lock is taken): a fork from then on closes the child's copy. From here
        // on, a failure releases it as a drop does.
        remember_held(file.as_raw_fd());
        let taken_over = read_holder(&mut file);
        let mut lock = Self { file, path: path.to_owned(), taken_over };
        match lock.write_holder(command) {
            // A full file system (a new lock file has no block yet): the `flock` is held all
            // the same, and another process is refused with its holder unknown. `backups
            // prune`, the way to free a full state folder, goes on; a run fails at its first
            // write there, before it changes anything.
            Err(Error::Io(e)) if matches!(e.source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) => Ok(lock),
            Err(e) => Err(e),
            Ok(()) => Ok(lock),
        }
    }

    /// Writes this process's details into the lock file.
    fn write_holder(&mut self, command: &str) -> Result<(), Error> {
        let me = LockHolder {
            pid: std::process::id(),
            host: host_name(),
            started_at: Timestamp::now(),
            command: command.to_owned(),
        };
        let mut json = serde_json::to_vec(&me).unwrap_or_default();
        let (file, path) = (&mut self.file, &self.path);
        // Written over the last holder's record, padded with spaces (JSON allows them) to its
        // length, never truncated first: emptying the file and writing it again needs a free
        // block, which a full file system (tmpfs, copy-on-write) does not have, and `backups
        // prune`, the way out of a full state folder, takes this lock too.
        let before = file.metadata().map_or(0, |m| m.len());
        json.resize(json.len().max(usize::try_from(before).unwrap_or(0)), b' ');
        file.seek(SeekFrom::Start(0)).at("seek", path)?;
        file.write_all(&json).at("write", path)?;
        file.sync_all().at("sync", path)?;
        Ok(())
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Forgotten before it is closed: a fork now must not close another file that reuses
        // the number.
        forget_held(self.file.as_raw_fd());
        // Unlink while still locked; closing `file` then releases the flock.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.sync_all();
    }
}

/// The lock file at `path`, open, when a live process holds its `flock` now (to read who);
/// `None` when it is free, not there, or its folder is not.
fn held(path: &Path) -> Result<Option<File>, Error> {
    if !check_folder(path)? {
        return Ok(None);
    }
    let file = match open_lock_file(path, OpenOptions::new().read(true)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    // Free: nobody alive holds it (the file is a leftover of a dead holder).
    Ok((!try_flock(&file, path)?).then_some(file))
}

/// Who holds the lock now, if anyone alive does.
pub fn holder(path: &Path) -> Result<Option<LockHolder>, Error> {
    Ok(held(path)?.and_then(|mut file| read_holder(&mut file)))
}

/// [`Error::Held`] when a live process holds the lock now, naming it; `Ok` when the lock is
/// free (or nobody has taken it yet). Takes nothing: a run that must refuse for another
/// reason asks this first, so a live run is always reported as the holder it is.
pub fn refuse_held(path: &Path) -> Result<(), Error> {
    match held(path)? {
        Some(mut file) => Err(Error::Held { path: path.to_owned(), holder: read_holder(&mut file) }),
        None => Ok(()),
    }
}

/// What [`unlock`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unlocked {
    /// There was no lock file.
    NoFile,
    /// A dead holder's lock file, removed.
    Removed(LockHolder),
    /// A lock file that names no holder (its holder died before writing its details, or the
    /// file is damaged), removed.
    RemovedUnreadable,
}

/// Removes a leftover lock file of a dead holder (`forge-rollback unlock`). Refuses with
/// [`Error::Held`] while a live process holds it: removing that file would let a second run in.
pub fn unlock(path: &Path) -> Result<Unlocked, Error> {
    if !check_folder(path)? {
        return Ok(Unlocked::NoFile);
    }
    let mut file = match open_lock_file(path, OpenOptions::new().read(true).write(true)) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Unlocked::NoFile),
        Err(e) => return Err(e.into()),
    };
    if !try_flock(&file, path)? {
        return Err(Error::Held { path: path.to_owned(), holder: read_holder(&mut file) });
    }
    let previous = read_holder(&mut file);
    std::fs::remove_file(path).at("remove", path)?;
    Ok(previous.map_or(Unlocked::RemovedUnreadable, Unlocked::Removed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_taker_fails_and_names_the_holder() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let first = RunLock::acquire(&p, "run").unwrap();
        assert!(first.taken_over.is_none());
        let err = RunLock::acquire(&p, "run").unwrap_err();
        let Error::Held { holder: Some(h), .. } = &err else { panic!("{err:?}") };
        assert_eq!(h.pid, std::process::id());
        assert_eq!(h.command, "run");
        assert!(err.to_string().contains(&format!("pid {}", std::process::id())), "{err}");
        // The holder is this very process (another thread of a service): no advice to wait
        // for its own exit.
        let hint = err.hint().unwrap();
        assert!(hint.contains("another thread or task of this process"), "{hint}");
        assert!(!hint.contains("exits"), "{hint}");
        let other =
            Error::Held { path: p.clone(), holder: Some(LockHolder { pid: std::process::id() + 1, ..h.clone() }) };
        assert!(other.hint().unwrap().contains(&format!("pid {} exits", std::process::id() + 1)));
        assert_eq!(holder(&p).unwrap().map(|h| h.pid), Some(std::process::id()));
        assert!(matches!(unlock(&p), Err(Error::Held { .. })));
        drop(first);
        assert!(!p.exists());
        assert_eq!(holder(&p).unwrap(), None);
        RunLock::acquire(&p, "run").unwrap();
    }

    #[test]
    fn leftover_of_a_dead_holder_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let dead =
            LockHolder { pid: 999_999, host: "h".into(), started_at: Timestamp::from_unix(0), command: "run".into() };
        std::fs::write(&p, serde_json::to_vec(&dead).unwrap()).unwrap();
        assert_eq!(holder(&p).unwrap(), None);
        let lock = RunLock::acquire(&p, "undo").unwrap();
        assert_eq!(lock.taken_over, Some(dead.clone()));
        drop(lock);
        std::fs::write(&p, serde_json::to_vec(&dead).unwrap()).unwrap();
        assert_eq!(unlock(&p).unwrap(), Unlocked::Removed(dead));
        assert!(!p.exists());
        // A holder killed before it wrote its details left an empty file.
        std::fs::write(&p, b"").unwrap();
        assert_eq!(unlock(&p).unwrap(), Unlocked::RemovedUnreadable);
        assert!(!p.exists());
        assert_eq!(unlock(&p).unwrap(), Unlocked::NoFile);
    }
}
