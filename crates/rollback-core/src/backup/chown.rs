//! Giving a path of the work tree to its owner, as root, without being led out of the tree.
//!
//! The work tree's folders may belong to the app's user, who can swap one for a symlink to
//! anywhere, or put a hard link to another file in place of one git wrote, while a rollback
//! runs as root. A `chown` by path would follow such a folder symlink, and `lchown` changes
//! every name of a hard-linked file: root would give away a file outside the tree. So the
//! folder is reached through real folders only ([`beneath::Dir`]), the path itself is opened
//! with `O_PATH | O_NOFOLLOW` (a symlink is opened as itself), its metadata are read through
//! that handle and the owner is set through it (`fchownat` with `AT_EMPTY_PATH`): what is
//! checked is what is changed.

use std::fs::Metadata;
use std::io;
use std::path::{Path, PathBuf};

use super::Owner;
use super::beneath::{self, Dir};

/// Whether `e` says that this process may not give files away here, rather than that something
/// is wrong with the path: root without `CAP_CHOWN`, or in a user namespace where the owner has
/// no id (`EINVAL`), a file system that squashes root (NFS) or keeps no owners, a read-only one.
pub(crate) fn refused(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EPERM | libc::EINVAL | libc::EOPNOTSUPP | libc::EROFS))
}

/// The warning when `n` paths kept root as their owner because the system refused to let
/// root give them away ([`refused`]).
pub(crate) fn refused_warning(n: usize) -> String {
    format!(
        "{n} path(s) written as root are left root's: this system does not let root give files away (a user namespace without their owner, NFS with root_squash, no CAP_CHOWN); give them back with chown"
    )
}

/// Gives `rel` (a path below the folder `root`) the owner `to`, when `expect` says yes to its
/// metadata. Returns whether it changed it: `false` when `expect` said no, or when the path
/// is not there, or not below real folders (a symlink or a file on the way). An error that
/// [`refused`] knows means the owner cannot be given here at all.
pub(crate) fn chown_beneath(
    root: &Path,
    rel: &Path,
    to: Owner,
    expect: impl Fn(&Metadata) -> bool,
) -> io::Result<bool> {
    let names = beneath::names(rel)?;
    let Some((leaf, folders)) = names.split_last() else { return Ok(false) };
    let Some(dir) = Dir::open(root, &folders.iter().collect::<PathBuf>())? else { return Ok(false) };
    match dir.chown_if(leaf, to, expect) {
        Err(e) if beneath::gone(&e) => Ok(false),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn root_only() -> bool {
        crate::fsutil::euid() == 0
    }

    /// A symlinked folder on the way, or a symlink at the path, never leads the change out of
    /// the tree; a hard-linked file is left when `expect` asks for one link.
    #[test]
    fn never_through_a_symlink_and_only_what_expect_allows() {
        assert!(root_only(), "this test gives files away with chown and needs root (CI runs it as root)");
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, "s").unwrap();
        let tree = tempfile::tempdir().unwrap();
        std::fs::create_dir(tree.path().join("real")).unwrap();
        std::fs::write(tree.path().join("real/file"), "f").unwrap();
        std::os::unix::fs::symlink(outside.path(), tree.path().join("link")).unwrap();
        std::os::unix::fs::symlink(&secret, tree.path().join("real/to-secret")).unwrap();
        std::fs::hard_link(&secret, tree.path().join("real/hard")).unwrap();
        let app = Owner { uid: 4242, gid: 4343 };
        let any = |_: &Metadata| true;
        let one_link = |m: &Metadata| m.nlink() == 1;

        assert!(chown_beneath(tree.path(), Path::new("real/file"), app, any).unwrap());
        assert_eq!(std::fs::metadata(tree.path().join("real/file")).unwrap().uid(), 4242);
        assert!(!chown_beneath(tree.path(), Path::new("link/secret"), app, any).unwrap());
        assert!(chown_beneath(tree.path(), Path::new("real/to-secret"), app, any).unwrap());
        assert_eq!(std::fs::symlink_metadata(tree.path().join("real/to-secret")).unwrap().uid(), 4242);
        assert!(!chown_beneath(tree.path(), Path::new("real/hard"), app, one_link).unwrap());
        assert!(!chown_beneath(tree.path(), Path::new("real/none"), app, any).unwrap());
        assert_eq!(std::fs::metadata(&secret).unwrap().uid(), 0, "nothing outside the tree changed");
    }
}
