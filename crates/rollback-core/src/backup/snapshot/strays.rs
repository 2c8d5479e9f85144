//! Temp files a restore killed half-way left behind ([`remove_stray_temps`]).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read as _;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::backup::beneath::Dir;
use crate::backup::{BlobId, EntryKind, ManifestEntry, Result};
use crate::fsutil::IoContext;

/// Removes the temp files an earlier restore of `entries` left when its process was killed
/// between making one and renaming it over its path (`.NAME.restore-PID-N`, next to `NAME`),
/// and returns how many. Only those of a process that is gone, and only when one holds nothing
/// or exactly what the entry holds (its content, or its symlink's target): the backup keeps
/// that. Anything else under such a name is left (a file of the user's). Looked at and removed
/// through its folder, never through a symlink.
pub fn remove_stray_temps(workdir: &Path, entries: &[ManifestEntry]) -> Result<usize> {
    let mut by_folder: BTreeMap<&Path, Vec<&ManifestEntry>> = BTreeMap::new();
    for e in entries.iter().filter(|e| !matches!(e.kind, EntryKind::Absent)) {
        by_folder.entry(e.path.as_path().parent().unwrap_or(Path::new(""))).or_default().push(e);
    }
    let mut removed = 0;
    for (folder, here) in by_folder {
        let full = workdir.join(folder);
        let Some(dir) = Dir::open(workdir, folder).at("open folder", &full)? else { continue };
        let Ok(names) = dir.list() else { continue };
        for (name, is_dir) in names {
            let Some((stem, pid)) = temp_of(name.as_bytes()).filter(|_| !is_dir) else { continue };
            if pid == std::process::id() || alive(pid) {
                continue;
            }
            // A long name is cut to fit the temp name in 255 bytes: the stem is then its start.
            let named = |e: &&&ManifestEntry| {
                let own = e.path.as_path().file_name().unwrap_or_default().as_bytes();
                own == stem || (name.len() >= 250 && own.starts_with(stem))
            };
            let Some(e) = here.iter().find(named) else { continue };
            let Some((_, meta)) = dir.entry(&name).at("read metadata of", &full.join(&name))? else { continue };
            let ours = match &e.kind {
                EntryKind::File { blob, size, .. } if meta.is_file() => {
                    meta.len() == 0 || (meta.len() == *size && hash_of(&dir, &name).is_some_and(|h| h == *blob))
                }
                EntryKind::Symlink { target } if meta.file_type().is_symlink() => {
                    dir.read_link(&name).is_ok_and(|t| t.as_bytes() == target.0.as_slice())
                }
                _ => false,
            };
            if ours {
                dir.remove(&name, false).at("remove", &full.join(&name))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// The name's stem and process id, when it is a restore's temp name: `.STEM.restore-PID-N`.
fn temp_of(name: &[u8]) -> Option<(&[u8], u32)> {
    const MARK: &[u8] = b".restore-";
    let rest = name.strip_prefix(b".")?;
    let at = rest.windows(MARK.len()).rposition(|w| w == MARK)?;
    let (pid, n) = std::str::from_utf8(&rest[at + MARK.len()..]).ok()?.split_once('-')?;
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((&rest[..at], pid.parse().ok()?))
}

/// Whether a process `pid` exists (one of another user's counts too).
fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return false };
    // SAFETY: signal 0 sends nothing; it only asks whether the process exists.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// The blob id of the regular file `name` in `dir`, read without following a symlink.
fn hash_of(dir: &Dir, name: &OsStr) -> Option<BlobId> {
    let mut file = dir.open_file(name).ok()?;
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf).ok()?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Some(BlobId::from_hash(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_are_told_apart() {
        assert_eq!(temp_of(b".main.py.restore-123-4"), Some((&b"main.py"[..], 123)));
        assert_eq!(temp_of(b".a.restore-b.restore-9-0"), Some((&b"a.restore-b"[..], 9)));
        assert_eq!(temp_of(b"main.py.restore-123-4"), None, "no leading dot");
        assert_eq!(temp_of(b".main.py.restore-123-"), None);
        assert_eq!(temp_of(b".main.py.restore-x-1"), None);
        assert!(alive(std::process::id()));
    }
}
