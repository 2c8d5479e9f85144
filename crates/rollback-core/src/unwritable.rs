//! Folders this process may not change. A file is made, replaced or removed through the folder
//! that holds it, so `git reset`, `remove_untracked` and the undo's restore must be allowed to
//! write the folder of every path they change. An ordinary user's read-only folder (`chmod
//! 555`), a folder of another user, a read-only mount: each stops them at its first path, with
//! HEAD moved and the tree between two states. A rollback and an undo look for them first, and
//! refuse. Root may write any folder, except on a read-only mount.

use std::path::Path;

use crate::paths::RepoPath;

/// Why this process may not make, replace or remove names in the folder `path`: `None` when
/// it may (write and search permission, asked for the effective user as the kernel checks it)
/// or when it cannot tell (gone since).
fn refused(path: &Path) -> Option<String> {
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::fs::MetadataExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: `c` is NUL-terminated and lives for the call.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::W_OK | libc::X_OK, libc::AT_EACCESS) };
    if rc == 0 {
        return None;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EROFS) => Some("on a read-only file system".into()),
        Some(libc::EACCES | libc::EPERM) => {
            let m = std::fs::symlink_metadata(path).ok()?;
            Some(format!("mode {:04o}, owner uid {}", m.mode() & 0o7777, m.uid()))
        }
        _ => None,
    }
}

/// Among the folders `paths` (relative to `root`: files a step rewrites, creates or removes)
/// are changed in (each one's nearest folder that exists: a new file in a new folder is made
/// through the folder that holds that one), those this process may not write, each once:
/// `` `rodir` (mode 0555, owner uid 1000) ``.
pub(crate) fn unwritable<'a>(root: &Path, paths: impl IntoIterator<Item = &'a RepoPath>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for p in paths {
        let folder = crate::immutable::folder_of(root, p.as_path());
        if !seen.insert(folder.to_path_buf()) {
            continue;
        }
        if let Some(why) = refused(&root.join(folder)) {
            let shown = if folder.as_os_str().is_empty() { ".".into() } else { folder.display().to_string() };
            out.push(format!("`{shown}` ({why})"));
        }
    }
    out.sort();
    out
}

/// The refusal for `unwritable` folders (none: `None`), for `what` ("the rollback", "the
/// undo of run X").
pub(crate) fn refusal(what: &str, unwritable: &[String]) -> Option<crate::Error> {
    const SHOWN: usize = 10;
    if unwritable.is_empty() {
        return None;
    }
    let more = if unwritable.len() > SHOWN { format!(" and {} more", unwritable.len() - SHOWN) } else { String::new() };
    Some(crate::Error::refused(
        format!(
            "{what} would have to change files in {} folder(s) this user (uid {}) may not write: {}{more}",
            unwritable.len(),
            crate::fsutil::euid(),
            unwritable.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ")
        ),
        Some(
            "nothing was changed; let this user write the folder(s) (`chmod u+w FOLDER` as its owner), or run as a user who may, then run again"
                .into(),
        ),
    ))
}
