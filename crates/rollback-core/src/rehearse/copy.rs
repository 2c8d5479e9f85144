//! The throwaway copy a rehearsal runs on: folders copied file by file (bytes, permission
//! bits, symlink targets), never hard-linked, so nothing of the original is written, not even
//! its link counts.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::fsutil::IoError;

/// Copies the folder `src` into `dst` (created): regular files with their bytes and permission
/// bits, symlinks with their target (never followed), folders with their mode. `skip(rel)`
/// leaves an entry (and everything below it) out; sockets and pipes are left out. Returns the
/// number of files and links copied.
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
            *n += 1;
        } else if kind.is_dir() {
            copy_dir(src, dst, &rel, skip, n)?;
            let mode = meta.permissions().mode() & 0o7777;
            fs::set_permissions(&target, fs::Permissions::from_mode(mode))
                .map_err(|e| IoError::new("set mode", &target, e))?;
        } else if kind.is_file() {
            // `fs::copy` copies the bytes and the permission bits; no hard link, no reflink
            // that would share blocks with the original.
            fs::copy(&path, &target).map_err(|e| IoError::new("copy", &path, e))?;
            *n += 1;
        }
    }
    Ok(())
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
