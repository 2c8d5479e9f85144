//! Files and folders the kernel keeps from changing whatever the permissions, root's included:
//! immutable (`chattr +i`) or append-only (`chattr +a`). `git reset` stops at the first one it
//! must rewrite or remove, and `remove_untracked` and the undo's restore at theirs: the tree
//! is then between two states. A rollback and an undo look for them first, and refuse.

use std::path::Path;

use crate::paths::RepoPath;

/// What keeps `path` (not followed if a symlink) from changing, if anything. Asked with
/// `statx` (no file is opened, nothing is read); `None` where the file system does not say.
#[cfg(target_os = "linux")]
fn lock_of(path: &Path) -> Option<&'static str> {
    use std::os::unix::ffi::OsStrExt as _;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: an all-zero `statx` is a valid value of a plain C struct.
    #[allow(unsafe_code)]
    let mut buf: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is NUL-terminated and `buf` is writable; both live for the call.
    #[allow(unsafe_code)]
    let rc = unsafe {
        libc::statx(libc::AT_FDCWD, c.as_ptr(), libc::AT_SYMLINK_NOFOLLOW | libc::AT_STATX_DONT_SYNC, 0, &raw mut buf)
    };
    if rc != 0 {
        return None;
    }
    let known = buf.stx_attributes_mask & buf.stx_attributes;
    if known & libc::STATX_ATTR_IMMUTABLE as u64 != 0 {
        Some("immutable (`chattr +i`)")
    } else if known & libc::STATX_ATTR_APPEND as u64 != 0 {
        Some("append-only (`chattr +a`)")
    } else {
        None
    }
}

#[cfg(not(target_os = "linux"))]
fn lock_of(_path: &Path) -> Option<&'static str> {
    None
}

/// Among `paths` (relative to `root`: files a step rewrites, creates or removes) and the
/// folder each is made or removed in (its nearest folder that exists: a new file in a new
/// folder is made through the folder that holds that one), those that cannot change:
/// `` `app/x.py`: immutable (`chattr +i`) ``. Folders further up are not changed, and not
/// looked at.
pub(crate) fn locked<'a>(root: &Path, paths: impl IntoIterator<Item = &'a RepoPath>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for p in paths {
        let rel = p.as_path();
        let folder = folder_of(root, rel);
        for candidate in [rel, folder] {
            if !seen.insert(candidate.to_path_buf()) {
                continue;
            }
            if let Some(why) = lock_of(&root.join(candidate)) {
                let shown = if candidate.as_os_str().is_empty() { ".".into() } else { candidate.display().to_string() };
                out.push(format!("`{shown}`: {why}"));
            }
        }
    }
    out.sort();
    out
}

/// The folder `rel` (a path below `root`) is made, replaced or removed in: its nearest
/// ancestor that is a real folder now (`""`: `root` itself).
pub(crate) fn folder_of<'p>(root: &Path, rel: &'p Path) -> &'p Path {
    rel.ancestors()
        .skip(1)
        .find(|a| a.as_os_str().is_empty() || std::fs::symlink_metadata(root.join(a)).is_ok_and(|m| m.is_dir()))
        .unwrap_or(Path::new(""))
}

/// The refusal for `locked` paths (none: `None`), for `what` ("the rollback", "the undo").
pub(crate) fn refusal(what: &str, locked: &[String]) -> Option<crate::Error> {
    const SHOWN: usize = 10;
    if locked.is_empty() {
        return None;
    }
    let more = if locked.len() > SHOWN { format!(" and {} more", locked.len() - SHOWN) } else { String::new() };
    Some(crate::Error::refused(
        format!(
            "{what} would have to change {} path(s) that cannot be changed: {}{more}",
            locked.len(),
            locked.iter().take(SHOWN).cloned().collect::<Vec<_>>().join(", ")
        ),
        Some(
            "nothing was changed; lift the attribute (as root: `chattr -i PATH`, `chattr -a PATH`) if the change is wanted, then run again"
                .into(),
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chattr(flag: &str, path: &Path) -> bool {
        std::process::Command::new("chattr").arg(flag).arg(path).status().is_ok_and(|s| s.success())
    }

    #[test]
    #[allow(clippy::print_stderr)] // says why it is skipped
    fn immutable_and_append_only_files_and_their_folders_are_named_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::create_dir_all(root.join("c/d")).unwrap();
        std::fs::write(root.join("a/b/x"), "x").unwrap();
        std::fs::write(root.join("a/b/y"), "y").unwrap();
        std::fs::write(root.join("a/log"), "l").unwrap();
        if !chattr("+i", &root.join("a/b")) {
            eprintln!("skipped: `chattr` needs root and a file system with attributes");
            return;
        }
        chattr("+a", &root.join("a/log"));
        // `c` holds `c/d`, where `c/d/new` is made: not changed, not named.
        chattr("+i", &root.join("c"));
        let paths: Vec<RepoPath> =
            ["a/b/x", "a/b/y", "a/log", "a/missing", "c/d/new"].iter().map(|p| RepoPath::new(*p).unwrap()).collect();
        let got = locked(root, &paths);
        chattr("-i", &root.join("a/b"));
        chattr("-a", &root.join("a/log"));
        chattr("-i", &root.join("c"));
        assert_eq!(
            got,
            vec!["`a/b`: immutable (`chattr +i`)".to_owned(), "`a/log`: append-only (`chattr +a`)".to_owned()]
        );
        assert!(locked(root, &paths).is_empty());
        let e = refusal("the rollback", &got).unwrap();
        assert_eq!(e.kind(), crate::ErrorKind::Refused);
        assert!(e.to_string().contains("2 path(s) that cannot be changed"), "{e}");
    }
}
