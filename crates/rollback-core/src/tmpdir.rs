//! Private temp folders for what holds the database's data outside the state folder: the
//! data-loss forecast's copy, the undo's row checks (copies and dumps), a rehearsal's copy of the
//! tree, state folder and database.
//!
//! They hold the same secrets as the state folder, so they get its permissions: the folder
//! `0700`, whatever the umask (a SQLite copy in it is `0600` too, see `db::sqlite`). Each is
//! removed when its owner drops it; one whose process was killed (`kill -9`, the OOM killer,
//! power loss) is removed by the next command that makes one: its name carries the process id
//! (`forge-rollback-forecast-<pid>-<random>`), and a folder of this user whose process is gone is
//! stale.
//!
//! A process id only means something in its own PID namespace: two containers that share `/tmp`
//! (a pod's volume, a host folder mounted into both) each see the other's ids as unused. So the
//! owner also holds an `flock` on its folder for as long as it lives, which the kernel drops when
//! the process dies, whatever its namespace; a folder is stale only when its process is gone from
//! here and its lock can be taken. The folder is made under a hidden name, locked, then renamed,
//! so it is never seen under its name unlocked. A process killed between making the hidden
//! folder and renaming it leaves it empty: it goes too, once it is a minute old (its owner, if
//! alive in another namespace, renamed it within microseconds).

use std::fs::File;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::fsutil::{self, IoError};

/// What a private temp folder is for; its name starts with the kind's prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The data-loss forecast's copy of the database.
    Forecast,
    /// The undo's row checks: copies of the database and the snapshot's.
    Rows,
    /// A rehearsal's copy of the tree, the state folder and the database.
    Rehearse,
}

impl Kind {
    const ALL: [Kind; 3] = [Kind::Forecast, Kind::Rows, Kind::Rehearse];

    fn prefix(self) -> &'static str {
        match self {
            Kind::Forecast => "forge-rollback-forecast-",
            Kind::Rows => "forge-rollback-rows-",
            Kind::Rehearse => "forge-rollback-rehearse-",
        }
    }
}

/// A private scratch folder: removed when dropped, locked (`flock`) while it lives.
pub(crate) struct Scratch {
    path: PathBuf,
    // Closed after the folder is removed (fields drop after `drop`).
    _lock: File,
}

impl Scratch {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// A new private (`0700`) folder of `kind` in the system's temp folder, removed when dropped;
/// the stale folders killed processes left there are removed first ([`remove_stale`]).
pub(crate) fn create(kind: Kind) -> Result<Scratch, IoError> {
    create_in(kind, &std::env::temp_dir())
}

fn create_in(kind: Kind, parent: &Path) -> Result<Scratch, IoError> {
    remove_stale(parent);
    // Hidden (`.` first) until it is locked: `remove_stale` leaves that name alone while it is
    // young. A process killed in between leaves an empty folder, removed once a minute old.
    let staged = tempfile::Builder::new()
        .prefix(&format!("{STAGED}{}{}-", kind.prefix(), std::process::id()))
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(parent)
        .map_err(|e| IoError::new("create a scratch folder in", parent, e))?;
    let lock = open_dir(staged.path()).map_err(|e| IoError::new("open the scratch folder", staged.path(), e))?;
    if !crate::lock::try_flock(&lock, staged.path())? {
        let busy = std::io::Error::new(std::io::ErrorKind::WouldBlock, "locked by another process");
        return Err(IoError::new("lock the scratch folder", staged.path(), busy));
    }
    let name = staged.path().file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix(STAGED));
    let Some(name) = name else {
        let bad = std::io::Error::new(std::io::ErrorKind::InvalidData, "unexpected name");
        return Err(IoError::new("name the scratch folder", staged.path(), bad));
    };
    let path = parent.join(name);
    std::fs::rename(staged.path(), &path).map_err(|e| IoError::new("rename the scratch folder", staged.path(), e))?;
    let _moved = staged.keep();
    Ok(Scratch { path, _lock: lock })
}

/// What a scratch folder's name starts with until it is locked.
const STAGED: &str = ".";

/// How old a hidden (staged) folder must be before it is taken for a killed process's: its
/// owner renames it microseconds after making it.
const STAGED_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(60);

/// The folder itself, opened to lock it (not followed if a symlink).
fn open_dir(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECTORY | libc::O_NOFOLLOW).open(path)
}

/// Removes, from `parent`, the folders of every [`Kind`] this user made whose process is gone
/// and whose lock is free, and returns them; and the empty hidden folders such a process left
/// while making one, once a minute old. Anything else stays: another user's folder, a symlink, a
/// name without a process id (a folder of an older forge-rollback cannot be told from one in
/// use), the folders of a live process, a locked one (its owner lives in another PID namespace),
/// and a hidden one that is young or not empty. What cannot be removed is left for the next time.
pub(crate) fn remove_stale(parent: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let (staged, name) = match name.strip_prefix(STAGED) {
            Some(rest) => (true, rest),
            None => (false, name),
        };
        let Some(pid) = pid_of(name) else { continue };
        if pid == std::process::id() || alive(pid) {
            continue;
        }
        let path = entry.path();
        // Not followed: a symlink here is nobody's scratch folder.
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if !meta.is_dir() || meta.uid() != fsutil::euid() {
            continue;
        }
        if staged && !meta.modified().is_ok_and(|m| m.elapsed().is_ok_and(|age| age >= STAGED_STALE_AFTER)) {
            continue;
        }
        // Held while it is removed; its owner, if any, holds it until it is done.
        let Ok(lock) = open_dir(&path) else { continue };
        if !matches!(crate::lock::try_flock(&lock, &path), Ok(true)) {
            continue;
        }
        // A staged folder is empty: anything in one is not ours to remove.
        let gone = if staged { std::fs::remove_dir(&path) } else { std::fs::remove_dir_all(&path) };
        if gone.is_ok() {
            removed.push(path);
        }
    }
    removed
}

/// The process id in a scratch folder's name: `<prefix><pid>-<random>`.
fn pid_of(name: &str) -> Option<u32> {
    let rest = Kind::ALL.iter().find_map(|k| name.strip_prefix(k.prefix()))?;
    let (pid, random) = rest.split_once('-')?;
    if random.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

/// Whether a process `pid` exists (one of another user's counts too).
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    if pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 sends nothing; it only asks whether the process exists.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The id of a process that has exited (and been reaped): nothing has it, unless the
    /// system hands it out again, which the assertion would tell.
    fn dead_pid() -> u32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(!alive(pid), "pid {pid} was reused at once");
        pid
    }

    #[test]
    fn scratch_names_carry_the_pid() {
        assert_eq!(pid_of("forge-rollback-forecast-123-abc"), Some(123));
        assert_eq!(pid_of("forge-rollback-rows-9-x"), Some(9));
        assert_eq!(pid_of("forge-rollback-rehearse-77-Zq1"), Some(77));
        assert_eq!(pid_of("forge-rollback-forecast-abcdef"), None, "an older name without a pid");
        assert_eq!(pid_of("forge-rollback-forecast-123-"), None);
        assert_eq!(pid_of("forge-rollback-other-123-abc"), None);
        assert_eq!(pid_of("forge-rollback-forecast--abc"), None);
    }

    #[test]
    fn scratch_folder_is_private_whatever_the_umask() {
        let parent = tempfile::tempdir().unwrap();
        for kind in Kind::ALL {
            let dir = create_in(kind, parent.path()).unwrap();
            let name = dir.path().file_name().unwrap().to_str().unwrap().to_owned();
            assert!(name.starts_with(&format!("{}{}-", kind.prefix(), std::process::id())), "{name}");
            let mode = std::fs::metadata(dir.path()).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o700, "{name}");
        }
    }

    /// Whether another open file description could lock `path` now.
    fn lock_free(path: &Path) -> bool {
        crate::lock::try_flock(&open_dir(path).unwrap(), path).unwrap()
    }

    #[test]
    fn scratch_folder_is_locked_while_it_lives_and_never_left_hidden() {
        let parent = tempfile::tempdir().unwrap();
        let dir = create_in(Kind::Rows, parent.path()).unwrap();
        let path = dir.path().to_path_buf();
        assert!(!lock_free(&path), "the owner holds the lock");
        let names: Vec<_> = std::fs::read_dir(parent.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, [path.file_name().unwrap()], "only the folder, under its name");
        drop(dir);
        assert!(!path.exists(), "removed when dropped");
    }

    /// A process in another PID namespace sharing this temp folder: its pid is unused here, but
    /// it holds its folder's lock. Its folder stays until the lock is free.
    #[test]
    fn scratch_folder_of_a_process_in_another_pid_namespace_is_kept_while_locked() {
        let parent = tempfile::tempdir().unwrap();
        let dead = dead_pid();
        let theirs = parent.path().join(format!("forge-rollback-forecast-{dead}-gggg"));
        std::fs::create_dir(&theirs).unwrap();
        std::fs::write(theirs.join("forge_rollback_scratch_0.db"), "rows being copied").unwrap();
        let held = open_dir(&theirs).unwrap();
        assert!(crate::lock::try_flock(&held, &theirs).unwrap());

        let ours = create_in(Kind::Forecast, parent.path()).unwrap();
        assert!(theirs.join("forge_rollback_scratch_0.db").exists(), "a locked folder is in use: kept");
        assert!(remove_stale(parent.path()).is_empty());

        drop(held);
        assert_eq!(remove_stale(parent.path()), [theirs], "its owner is gone: stale");
        assert!(ours.path().exists(), "our own stays");
    }

    /// Its modification time set `ago` in the past.
    fn age(path: &Path, ago: std::time::Duration) {
        let then = std::time::SystemTime::now() - ago;
        open_dir(path).unwrap().set_modified(then).unwrap();
    }

    /// A process killed between making its hidden folder and renaming it left it empty: it goes
    /// once it is old enough that no live owner can still be about to rename it.
    #[test]
    fn scratch_hidden_folder_a_killed_process_left_is_removed_once_old() {
        let parent = tempfile::tempdir().unwrap();
        let p = parent.path();
        let dead = dead_pid();
        let left = p.join(format!(".forge-rollback-rows-{dead}-hhhh"));
        // Kept: a young one (its owner may be renaming it), one with something in it, a locked
        // one, a live process's, a hidden folder of another name.
        let young = p.join(format!(".forge-rollback-forecast-{dead}-iiii"));
        let full = p.join(format!(".forge-rollback-rehearse-{dead}-jjjj"));
        let locked = p.join(format!(".forge-rollback-rows-{dead}-kkkk"));
        let live = p.join(".forge-rollback-rows-1-llll");
        let other = p.join(format!(".forge-rollback-cache-{dead}-mmmm"));
        for d in [&left, &young, &full, &locked, &live, &other] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(full.join("tree"), "x").unwrap();
        for d in [&left, &full, &locked, &live, &other] {
            age(d, STAGED_STALE_AFTER + std::time::Duration::from_secs(5));
        }
        age(&young, STAGED_STALE_AFTER / 2);
        let held = open_dir(&locked).unwrap();
        assert!(crate::lock::try_flock(&held, &locked).unwrap());

        assert_eq!(remove_stale(p), [left], "only the old, empty, free one of a dead process");
        for kept in [&young, &full, &locked, &live, &other] {
            assert!(kept.exists(), "{} kept", kept.display());
        }
        assert!(full.join("tree").exists());
    }

    #[test]
    fn scratch_stale_folders_of_dead_processes_are_removed() {
        let parent = tempfile::tempdir().unwrap();
        let dead = dead_pid();
        let p = parent.path();
        let stale_forecast = p.join(format!("forge-rollback-forecast-{dead}-aaaa"));
        let stale_rows = p.join(format!("forge-rollback-rows-{dead}-bbbb"));
        std::fs::create_dir(&stale_forecast).unwrap();
        std::fs::write(stale_forecast.join("forge_rollback_scratch_0.db"), "rows").unwrap();
        std::fs::create_dir_all(stale_rows.join("inner")).unwrap();
        // Kept: a live process's (pid 1 always exists), one of ours, an older name, another
        // prefix, a file, a symlink to a folder.
        let live = p.join("forge-rollback-forecast-1-cccc");
        let ours = p.join(format!("forge-rollback-rows-{}-dddd", std::process::id()));
        let old = p.join("forge-rollback-forecast-eeee");
        let other = p.join(format!("forge-rollback-cache-{dead}-ffff"));
        let file = p.join(format!("forge-rollback-rows-{dead}-file"));
        let target = tempfile::tempdir().unwrap();
        let link = p.join(format!("forge-rollback-rows-{dead}-link"));
        for d in [&live, &ours, &old, &other] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(&file, "x").unwrap();
        std::os::unix::fs::symlink(target.path(), &link).unwrap();

        let new = create_in(Kind::Forecast, p).unwrap();

        assert!(!stale_forecast.exists() && !stale_rows.exists(), "stale folders removed");
        for kept in [&live, &ours, &old, &other, &file] {
            assert!(kept.exists(), "{} kept", kept.display());
        }
        assert!(std::fs::symlink_metadata(&link).is_ok() && target.path().exists(), "symlink and its target kept");
        assert!(new.path().exists());
    }
}
