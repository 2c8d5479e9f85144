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

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
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

/// A new private (`0700`) folder of `kind` in the system's temp folder, removed when dropped;
/// the stale folders killed processes left there are removed first ([`remove_stale`]).
pub(crate) fn create(kind: Kind) -> Result<tempfile::TempDir, IoError> {
    create_in(kind, &std::env::temp_dir())
}

fn create_in(kind: Kind, parent: &Path) -> Result<tempfile::TempDir, IoError> {
    remove_stale(parent);
    tempfile::Builder::new()
        .prefix(&format!("{}{}-", kind.prefix(), std::process::id()))
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(parent)
        .map_err(|e| IoError::new("create a scratch folder in", parent, e))
}

/// Removes, from `parent`, the folders of every [`Kind`] this user made whose process is gone,
/// and returns them. Anything else stays: another user's folder, a symlink, a name without a
/// process id (a folder of an older forge-rollback cannot be told from one in use), and the
/// folders of a live process. What cannot be removed is left for the next time.
pub(crate) fn remove_stale(parent: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(parent) else { return Vec::new() };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(pid_of) else { continue };
        if pid == std::process::id() || alive(pid) {
            continue;
        }
        let path = entry.path();
        // Not followed: a symlink here is nobody's scratch folder.
        let Ok(meta) = std::fs::symlink_metadata(&path) else { continue };
        if !meta.is_dir() || meta.uid() != fsutil::euid() {
            continue;
        }
        if std::fs::remove_dir_all(&path).is_ok() {
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
