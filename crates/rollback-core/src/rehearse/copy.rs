//! The throwaway copy a rehearsal runs on: folders copied file by file (bytes, permission
//! bits, symlink targets, extended attributes), never hard-linked, so nothing of the original is
//! written, not even its link counts.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::backup::xattr::{self, On};
use crate::backup::{EntryKind, Manifest, SnapshotId};
use crate::fsutil::IoError;
use crate::paths::RepoPath;

/// Gives `to` the extended attributes of `from` (neither followed), with the mode `mode` set
/// between the others and the ACLs, as a restore sets them. One this user may not set
/// (a capability when not root) is left out of the copy: its picture before the rehearsed
/// rollback then lacks it too, and the comparison stays fair.
fn copy_xattrs(from: &Path, to: &Path, mode: Option<u32>) -> Result<(), IoError> {
    let xattrs = On::Path(from).read().map_err(|e| IoError::new("read extended attributes of", from, e))?;
    let set = |before: bool| {
        let mut refused = Vec::new();
        let rel = RepoPath::new(b"copy".to_vec()).expect("a plain name");
        On::Path(to)
            .give(&xattr::phase(&xattrs, before), &rel, &mut refused)
            .map_err(|e| IoError::new("set extended attributes of", to, e))
    };
    set(true)?;
    if let Some(mode) = mode {
        fs::set_permissions(to, fs::Permissions::from_mode(mode)).map_err(|e| IoError::new("set mode", to, e))?;
    }
    set(false)
}

/// Copies the folder `src` into `dst` (created): regular files with their bytes and permission
/// bits, symlinks with their target (never followed), folders with their mode, FIFOs and
/// sockets as new ones of the same mode (a real run meets them where the copy does: a FIFO
/// where the target has a file fails its snapshot), device nodes too where this user may make
/// them. `skip(rel)` leaves an entry (and everything below it) out. Returns the number of
/// files and links copied.
pub(crate) fn copy_tree(src: &Path, dst: &Path, skip: &dyn Fn(&Path) -> bool) -> Result<usize, IoError> {
    let mut n = 0;
    copy_dir(src, dst, Path::new(""), skip, &mut n)?;
    Ok(n)
}

fn copy_dir(src: &Path, dst: &Path, rel: &Path, skip: &dyn Fn(&Path) -> bool, n: &mut usize) -> Result<(), IoError> {
    let from = src.join(rel);
    let to = dst.join(rel);
    fs::create_dir_all(&to).map_err(|e| IoError::new("create folder", &to, e))?;
    let entries = fs::read_dir(&from).map_err(|e| IoError::new("read folder", &from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| IoError::new("read folder", &from, e))?;
        let rel = rel.join(entry.file_name());
        if skip(&rel) {
            continue;
        }
        let path = src.join(&rel);
        let target = dst.join(&rel);
        let meta = fs::symlink_metadata(&path).map_err(|e| IoError::new("stat", &path, e))?;
        let kind = meta.file_type();
        if kind.is_symlink() {
            let link = fs::read_link(&path).map_err(|e| IoError::new("read link", &path, e))?;
            std::os::unix::fs::symlink(&link, &target).map_err(|e| IoError::new("create link", &target, e))?;
            copy_xattrs(&path, &target, None)?;
            *n += 1;
        } else if kind.is_dir() {
            copy_dir(src, dst, &rel, skip, n)?;
            let mode = meta.permissions().mode() & 0o7777;
            copy_xattrs(&path, &target, Some(mode))?;
        } else if kind.is_file() {
            // `fs::copy` copies the bytes and the permission bits; no hard link, no reflink
            // that would share blocks with the original.
            fs::copy(&path, &target).map_err(|e| copy_error(&path, &target, e))?;
            copy_xattrs(&path, &target, Some(meta.permissions().mode() & 0o7777))?;
            *n += 1;
        } else {
            make_special(&target, &meta)?;
            *n += 1;
        }
    }
    Ok(())
}

/// A new FIFO, socket or device node at `target` like the one `meta` describes (never a copy
/// of what it carries: nothing of the original is opened).
fn make_special(target: &Path, meta: &fs::Metadata) -> Result<(), IoError> {
    use std::os::unix::ffi::OsStrExt as _;
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let kind = meta.file_type();
    if kind.is_socket() {
        // Binding makes the socket file; it stays when the listener is dropped.
        std::os::unix::net::UnixListener::bind(target).map_err(|e| IoError::new("make socket", target, e))?;
    } else {
        let c = std::ffi::CString::new(target.as_os_str().as_bytes())
            .map_err(|e| IoError::new("make special file", target, std::io::Error::other(e)))?;
        // SAFETY: `c` is a NUL-terminated path that lives for the call; nothing else is passed.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::mknod(c.as_ptr(), meta.mode() as libc::mode_t, meta.rdev() as libc::dev_t) };
        if rc != 0 {
            let e = std::io::Error::last_os_error();
            // A device node needs privileges the user may not have: the copy goes without it.
            if (kind.is_block_device() || kind.is_char_device()) && e.raw_os_error() == Some(libc::EPERM) {
                return Ok(());
            }
            return Err(IoError::new("make special file", target, e));
        }
    }
    // Both apply the umask.
    fs::set_permissions(target, fs::Permissions::from_mode(meta.permissions().mode() & 0o7777))
        .map_err(|e| IoError::new("set mode", target, e))
}

/// Copies the state folder `src` into `dst` for a rehearsal: the runs (journals and logs, so
/// an unfinished run is refused on the copy too) and, from the backup store, only the env
/// records of `known-good mark` with their blobs, which a full rollback restores from. The
/// snapshots and database dumps of earlier runs are left out: a rehearsal never reads them and
/// they can be large. No lock file, no temp files. Returns the files copied.
pub(crate) fn copy_state(src: &Path, dst: &Path) -> Result<usize, crate::Error> {
    let mut n =
        copy_tree(src, dst, &|rel| rel == Path::new("backups") || rel == Path::new("lock") || rel == Path::new("tmp"))?;
    let (from, to) = (src.join("backups"), dst.join("backups"));
    let snapshots = from.join("snapshots");
    if !snapshots.is_dir() {
        return Ok(n);
    }
    for dir in ["", "snapshots", "blobs"] {
        let (s, d) = (from.join(dir), to.join(dir));
        fs::create_dir_all(&d).map_err(|e| IoError::new("create folder", &d, e))?;
        if let Ok(meta) = fs::metadata(&s) {
            fs::set_permissions(&d, meta.permissions()).map_err(|e| IoError::new("set mode", &d, e))?;
        }
    }
    for entry in fs::read_dir(&snapshots).map_err(|e| IoError::new("list", &snapshots, e))? {
        let entry = entry.map_err(|e| IoError::new("list", &snapshots, e))?;
        let name = entry.file_name();
        let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")).and_then(SnapshotId::parse) else {
            continue;
        };
        if !id.has_label(crate::env::LABEL) {
            continue;
        }
        let path = entry.path();
        let bytes = fs::read(&path).map_err(|e| IoError::new("read", &path, e))?;
        let manifest: Manifest = serde_json::from_slice(&bytes)
            .map_err(|e| crate::Error::usage(format!("backup manifest `{}` is invalid: {e}", path.display()), None))?;
        let blobs = manifest.entries.iter().filter_map(|e| match &e.kind {
            EntryKind::File { blob, .. } => Some(blob),
            _ => None,
        });
        for blob in blobs {
            let hex = blob.as_str();
            let rel = Path::new(&hex[..2]).join(&hex[2..]);
            let (s, d) = (from.join("blobs").join(&rel), to.join("blobs").join(&rel));
            if d.exists() {
                continue;
            }
            let parent = d.parent().unwrap_or(&to);
            fs::create_dir_all(parent).map_err(|e| IoError::new("create folder", parent, e))?;
            fs::copy(&s, &d).map_err(|e| copy_error(&s, &d, e))?;
            n += 1;
        }
        let d = to.join("snapshots").join(&name);
        fs::copy(&path, &d).map_err(|e| copy_error(&path, &d, e))?;
        n += 1;
    }
    Ok(n)
}

/// The error of copying `src` to `dst`: named by the copy's side when its file system is full
/// (the rehearsal's copy in `$TMPDIR`, not the real work tree, needs the room), else by the
/// file read.
fn copy_error(src: &Path, dst: &Path, e: std::io::Error) -> IoError {
    if matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)) {
        IoError::new("copy into", dst, e)
    } else {
        IoError::new("copy", src, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn copies_bytes_modes_and_links_and_leaves_out_what_is_skipped() {
        let src = tempfile::tempdir().unwrap();
        let dst = tempfile::tempdir().unwrap();
        let s = src.path();
        fs::create_dir_all(s.join("a/b")).unwrap();
        fs::write(s.join("a/b/run.sh"), "#!/bin/sh\n").unwrap();
        fs::set_permissions(s.join("a/b/run.sh"), fs::Permissions::from_mode(0o750)).unwrap();
        fs::write(s.join("name with space\n.txt"), "x").unwrap();
        std::os::unix::fs::symlink("a/b/run.sh", s.join("link")).unwrap();
        fs::create_dir_all(s.join("skipme")).unwrap();
        fs::write(s.join("skipme/x"), "x").unwrap();
        let out = dst.path().join("copy");
        let n = copy_tree(s, &out, &|rel| rel == Path::new("skipme")).unwrap();
        assert_eq!(n, 3);
        assert_eq!(fs::read(out.join("a/b/run.sh")).unwrap(), b"#!/bin/sh\n");
        assert_eq!(fs::metadata(out.join("a/b/run.sh")).unwrap().mode() & 0o7777, 0o750);
        assert_eq!(fs::read_link(out.join("link")).unwrap(), Path::new("a/b/run.sh"));
        assert_eq!(fs::read(out.join("name with space\n.txt")).unwrap(), b"x");
        assert!(!out.join("skipme").exists());
        // Copies, not links: the original keeps one link.
        assert_eq!(fs::metadata(s.join("a/b/run.sh")).unwrap().nlink(), 1);
    }
}

#[cfg(test)]
mod state_tests {
    use super::*;
    use crate::backup::store::FsBackupStore;
    use crate::backup::{BackupStore, ManifestEntry, Origin};
    use crate::paths::RepoPath;
    use crate::vcs::CommitId;

    fn manifest(store: &FsBackupStore, label: Option<&str>, content: &[u8]) -> (Manifest, String) {
        let (blob, _) = store.put_blob(content).unwrap();
        let hex = blob.as_str().to_owned();
        let m = Manifest {
            format: 1,
            id: label.map_or_else(SnapshotId::generate, SnapshotId::generate_labelled),
            created_at: crate::time::Timestamp::now(),
            run_id: None,
            workdir: "/srv/app".into(),
            head: CommitId::new("a".repeat(40)).unwrap(),
            branch: Some("main".into()),
            entries: vec![ManifestEntry {
                path: RepoPath::new(b".env".to_vec()).unwrap(),
                origin: Origin::Env,
                kind: EntryKind::File { blob, size: content.len() as u64, mode: 0o600 },
                owner: None,
                xattrs: vec![],
            }],
            index: None,
            label: label.map(str::to_owned),
            database: None,
            hard_links: Vec::new(),
            landing: std::collections::BTreeMap::new(),
            folders: Vec::new(),
        };
        store.put_manifest(&m).unwrap();
        (m, hex)
    }

    #[test]
    fn runs_and_env_records_are_copied_other_snapshots_lock_and_temp_files_are_not() {
        let src = tempfile::tempdir().unwrap();
        let s = src.path();
        let store = FsBackupStore::open(&s.join("backups")).unwrap();
        let (env, env_blob) = manifest(&store, Some(crate::env::LABEL), b"SECRET=1\n");
        let (other, other_blob) = manifest(&store, None, b"a big database dump\n");
        fs::create_dir_all(s.join("runs/r1")).unwrap();
        fs::write(s.join("runs/r1/journal.jsonl"), "{}\n").unwrap();
        fs::write(s.join("lock"), "pid 1").unwrap();
        fs::create_dir_all(s.join("tmp")).unwrap();
        fs::write(s.join("tmp/db-1.dump"), "partial").unwrap();

        let dst = tempfile::tempdir().unwrap();
        let d = dst.path().join("state");
        assert_eq!(copy_state(s, &d).unwrap(), 3);
        assert_eq!(fs::read(d.join("runs/r1/journal.jsonl")).unwrap(), b"{}\n");
        assert!(!d.join("lock").exists() && !d.join("tmp").exists());
        let copied = FsBackupStore::open(&d.join("backups")).unwrap();
        assert_eq!(copied.manifest(&env.id).unwrap(), env);
        let EntryKind::File { blob, .. } = &env.entries[0].kind else { unreachable!("a file entry") };
        assert_eq!(copied.get_blob(blob).unwrap(), b"SECRET=1\n");
        assert!(copied.manifest(&other.id).is_err());
        assert!(!d.join("backups/blobs").join(&other_blob[..2]).join(&other_blob[2..]).exists());
        assert!(d.join("backups/blobs").join(&env_blob[..2]).join(&env_blob[2..]).exists());
    }
}
