//! Changing the work tree without being led out of it by a symlink.
//!
//! The work tree's folders may belong to the app's user, who can swap one for a symlink to
//! anywhere while a restore runs (as root, under `sudo`). A change made by path would follow
//! that link: root would write, rename or remove a file outside the tree. Checking each parent
//! with `lstat` first leaves a window between the check and the change. So a [`Dir`] is a
//! folder opened below the one before it with `O_NOFOLLOW`, from the root of the tree down,
//! and every change is made relative to its descriptor (`openat`, `mkdirat`, `symlinkat`,
//! `renameat`, `unlinkat`, `linkat`, `fchownat`), to a single name in it: what was checked is
//! what is changed. A folder swapped after it was opened is still the folder that was opened;
//! one swapped before is not reached at all.

use std::ffi::{CString, OsStr, OsString};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path};

use super::Owner;

/// Whether `e` says that a path is not there, or not reached through real folders only (a
/// symlink or a file on the way).
pub(crate) fn gone(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP))
}

/// A real folder of the work tree, opened without following a symlink on the way to it.
#[derive(Debug)]
pub(crate) struct Dir(OwnedFd);

impl Dir {
    /// The folder `rel` below the folder `root` (`root` itself when `rel` is empty); `None`
    /// when it is not there or not a real folder, or a folder on the way is not (a symlink, a
    /// file). `root` itself is opened as given.
    pub(crate) fn open(root: &Path, rel: &Path) -> io::Result<Option<Dir>> {
        let mut dir = Dir(open_at(None, root.as_os_str(), libc::O_PATH | libc::O_DIRECTORY)?);
        for name in names(rel)? {
            match dir.child(name)? {
                Some(next) => dir = next,
                None => return Ok(None),
            }
        }
        Ok(Some(dir))
    }

    /// The real folder holding `rel` (a plain relative path below `root`), as [`Dir::open`]
    /// opens it, and `rel`'s name in it.
    pub(crate) fn holding<'p>(root: &Path, rel: &'p Path) -> io::Result<Option<(Dir, &'p OsStr)>> {
        let name = rel.file_name().unwrap_or_default();
        Ok(Dir::open(root, rel.parent().unwrap_or(Path::new("")))?.map(|dir| (dir, name)))
    }

    /// The real folder `name` in this one; `None` when it is not there or not a real folder.
    pub(crate) fn child(&self, name: &OsStr) -> io::Result<Option<Dir>> {
        match open_at(Some(&self.0), name, libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW) {
            Ok(fd) => Ok(Some(Dir(fd))),
            Err(e) if gone(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// What `name` in this folder is, never followed (a symlink is itself); `None` when
    /// nothing is there. The handle it was read through comes with it.
    pub(crate) fn entry(&self, name: &OsStr) -> io::Result<Option<(File, Metadata)>> {
        match open_at(Some(&self.0), name, libc::O_PATH | libc::O_NOFOLLOW) {
            Ok(fd) => {
                let file = File::from(fd);
                let meta = file.metadata()?;
                Ok(Some((file, meta)))
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Makes the folder `name`, mode `0755` less the umask; `false` when something is there
    /// already. Never writable by group or others, whatever the umask (a service's `UMask=0000`):
    /// a folder made for a file the restore writes may hold secrets (an env file), and anyone
    /// who may write it may swap that file by a rename. A folder the snapshot recorded gets
    /// its own mode afterwards.
    pub(crate) fn make_folder(&self, name: &OsStr) -> io::Result<bool> {
        let c = c_name(name)?;
        // SAFETY: a valid descriptor and a NUL-terminated name.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::mkdirat(self.0.as_raw_fd(), c.as_ptr(), 0o755) };
        match check(rc) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Creates the new file `name` for writing, with `mode` (refused when anything is there,
    /// a symlink included).
    pub(crate) fn create_new(&self, name: &OsStr, mode: u32) -> io::Result<File> {
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW;
        let c = c_name(name)?;
        // SAFETY: a valid descriptor and a NUL-terminated name; the mode is passed as the
        // variadic argument `O_CREAT` reads.
        #[allow(unsafe_code)]
        let fd = unsafe { libc::openat(self.0.as_raw_fd(), c.as_ptr(), flags | libc::O_CLOEXEC, mode) };
        Ok(File::from(owned(fd)?))
    }

    /// Creates the symlink `name` to the raw `target`.
    pub(crate) fn symlink(&self, target: &OsStr, name: &OsStr) -> io::Result<()> {
        let (t, c) = (c_name(target)?, c_name(name)?);
        // SAFETY: a valid descriptor and two NUL-terminated strings.
        #[allow(unsafe_code)]
        check(unsafe { libc::symlinkat(t.as_ptr(), self.0.as_raw_fd(), c.as_ptr()) })
    }

    /// Renames `from` over `to`, both in this folder.
    pub(crate) fn rename(&self, from: &OsStr, to: &OsStr) -> io::Result<()> {
        let (f, t) = (c_name(from)?, c_name(to)?);
        let fd = self.0.as_raw_fd();
        // SAFETY: a valid descriptor (twice) and two NUL-terminated names.
        #[allow(unsafe_code)]
        check(unsafe { libc::renameat(fd, f.as_ptr(), fd, t.as_ptr()) })
    }

    /// Makes `name` in this folder a hard link to `from` in `from_dir` (a symlink there is
    /// linked as itself, never followed).
    pub(crate) fn link(&self, from_dir: &Dir, from: &OsStr, name: &OsStr) -> io::Result<()> {
        let (f, c) = (c_name(from)?, c_name(name)?);
        // SAFETY: valid descriptors and NUL-terminated names; flags 0: no symlink followed.
        #[allow(unsafe_code)]
        check(unsafe { libc::linkat(from_dir.0.as_raw_fd(), f.as_ptr(), self.0.as_raw_fd(), c.as_ptr(), 0) })
    }

    /// Removes `name`: a folder (it must be empty) when `folder`, else a file or symlink.
    pub(crate) fn remove(&self, name: &OsStr, folder: bool) -> io::Result<()> {
        let c = c_name(name)?;
        let flags = if folder { libc::AT_REMOVEDIR } else { 0 };
        // SAFETY: a valid descriptor and a NUL-terminated name.
        #[allow(unsafe_code)]
        check(unsafe { libc::unlinkat(self.0.as_raw_fd(), c.as_ptr(), flags) })
    }

    /// The names in this folder (the folder opened, whatever its path has become since), each
    /// with whether it is a real folder (not followed).
    pub(crate) fn list(&self) -> io::Result<Vec<(OsString, bool)>> {
        let fd = open_at(Some(&self.0), OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY)?;
        // SAFETY: `fdopendir` takes over the descriptor (released here), and the stream is
        // closed below on every path; each entry is read before the next `readdir`.
        #[allow(unsafe_code)]
        let names = unsafe {
            let stream = libc::fdopendir(std::os::fd::IntoRawFd::into_raw_fd(fd));
            if stream.is_null() {
                return Err(io::Error::last_os_error());
            }
            let mut names = Vec::new();
            let result = loop {
                *libc::__errno_location() = 0;
                let entry = libc::readdir(stream);
                if entry.is_null() {
                    let e = io::Error::last_os_error();
                    break if e.raw_os_error() == Some(0) { Ok(()) } else { Err(e) };
                }
                let name = std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()).to_bytes();
                if name != b"." && name != b".." {
                    names.push(OsStr::from_bytes(name).to_owned());
                }
            };
            libc::closedir(stream);
            result.map(|()| names)?
        };
        names.into_iter().map(|n| Ok((n.clone(), self.child(&n)?.is_some()))).collect()
    }

    /// Opens the file `name` for reading, never through a symlink and without waiting on a
    /// FIFO (a device or FIFO opens, and its metadata say what it is).
    pub(crate) fn open_file(&self, name: &OsStr) -> io::Result<File> {
        open_at(Some(&self.0), name, libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK).map(File::from)
    }

    /// The raw target of the symlink `name`.
    pub(crate) fn read_link(&self, name: &OsStr) -> io::Result<OsString> {
        let c = c_name(name)?;
        let mut buf = vec![0u8; libc::PATH_MAX as usize + 1];
        // SAFETY: a valid descriptor, a NUL-terminated name and a writable buffer of the length
        // given.
        #[allow(unsafe_code)]
        let n = unsafe { libc::readlinkat(self.0.as_raw_fd(), c.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        let n = usize::try_from(n).map_err(|_| io::Error::last_os_error())?;
        buf.truncate(n);
        Ok(OsString::from_vec(buf))
    }

    /// Gives this folder itself the owner `to`, through its handle.
    pub(crate) fn chown(&self, to: Owner) -> io::Result<()> {
        // SAFETY: a valid descriptor and a NUL-terminated empty name; `AT_EMPTY_PATH` makes the
        // call act on the descriptor itself.
        #[allow(unsafe_code)]
        check(unsafe { libc::fchownat(self.0.as_raw_fd(), c"".as_ptr(), to.uid, to.gid, libc::AT_EMPTY_PATH) })
    }

    /// This folder's permission bits (`mode & 0o7777`), read through its handle.
    pub(crate) fn mode(&self) -> io::Result<u32> {
        use std::os::unix::fs::PermissionsExt as _;
        let file = File::from(self.0.try_clone()?);
        Ok(file.metadata()?.permissions().mode() & 0o7777)
    }

    /// Gives this folder itself the permission bits `mode`, through its handle: the folder
    /// opened, whatever its path leads to by now. A handle opened for reading is needed for
    /// `fchmod`; a folder this user may not read is changed through `/proc/self/fd`, which
    /// names the same folder.
    pub(crate) fn set_mode(&self, mode: u32) -> io::Result<()> {
        match open_at(Some(&self.0), OsStr::new("."), libc::O_RDONLY | libc::O_DIRECTORY) {
            Ok(fd) => {
                // SAFETY: a valid descriptor, just opened.
                #[allow(unsafe_code)]
                check(unsafe { libc::fchmod(fd.as_raw_fd(), mode as libc::mode_t) })
            }
            Err(e) if e.raw_os_error() == Some(libc::EACCES) => {
                let c = c_name(OsStr::new(&format!("/proc/self/fd/{}", self.0.as_raw_fd())))?;
                // SAFETY: a NUL-terminated path naming this process's own descriptor.
                #[allow(unsafe_code)]
                check(unsafe { libc::chmod(c.as_ptr(), mode as libc::mode_t) })
            }
            Err(e) => Err(e),
        }
    }

    /// A path that names `name` in this folder (`.`: the folder itself) through this
    /// process's descriptor of it (`/proc/self/fd/N/name`): the folder opened, whatever its
    /// path leads to by now. For the calls that have no `*at` form taking a descriptor
    /// (`lsetxattr`, `llistxattr`), which then do not follow `name` if it is a symlink.
    pub(crate) fn proc_path(&self, name: &OsStr) -> std::path::PathBuf {
        Path::new(&format!("/proc/self/fd/{}", self.0.as_raw_fd())).join(name)
    }

    /// Gives `name` the owner `to` when `expect` says yes to its metadata, read through the
    /// handle the owner is then set through (a symlink is changed as itself). Returns whether
    /// it changed it (`false`: not there, or `expect` said no).
    pub(crate) fn chown_if(&self, name: &OsStr, to: Owner, expect: impl Fn(&Metadata) -> bool) -> io::Result<bool> {
        let Some((handle, meta)) = self.entry(name)? else { return Ok(false) };
        if !expect(&meta) {
            return Ok(false);
        }
        // SAFETY: a valid descriptor and a NUL-terminated empty name; `AT_EMPTY_PATH` makes the
        // call act on the descriptor itself (an `O_PATH` one is allowed).
        #[allow(unsafe_code)]
        check(unsafe { libc::fchownat(handle.as_raw_fd(), c"".as_ptr(), to.uid, to.gid, libc::AT_EMPTY_PATH) })?;
        Ok(true)
    }
}

/// The names of the plain relative path `rel`.
pub(crate) fn names(rel: &Path) -> io::Result<Vec<&OsStr>> {
    rel.components()
        .map(|c| match c {
            Component::Normal(n) => Ok(n),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("not a plain relative path: {}", rel.display()),
            )),
        })
        .collect()
}

fn c_name(name: &OsStr) -> io::Result<CString> {
    CString::new(name.as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the call returned a new descriptor that nothing else owns.
    #[allow(unsafe_code)]
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `openat(dir, name, flags | O_CLOEXEC)`; the current folder when `dir` is `None`.
fn open_at(dir: Option<&OwnedFd>, name: &OsStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let c = c_name(name)?;
    let at = dir.map_or(libc::AT_FDCWD, AsRawFd::as_raw_fd);
    // SAFETY: `at` is a valid descriptor (or `AT_FDCWD`) and `c` is NUL-terminated.
    #[allow(unsafe_code)]
    owned(unsafe { libc::openat(at, c.as_ptr(), flags | libc::O_CLOEXEC) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder swapped for a symlink is never gone through: not when opening below it, and
    /// not for a change through a folder opened before the swap (it changes the real folder,
    /// wherever it went).
    #[test]
    fn a_swapped_folder_never_leads_out() {
        let outside = tempfile::tempdir().unwrap();
        let tree = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tree.path().join("a/b")).unwrap();
        let b = Dir::open(tree.path(), Path::new("a/b")).unwrap().unwrap();
        std::fs::rename(tree.path().join("a"), tree.path().join("a.moved")).unwrap();
        std::os::unix::fs::symlink(outside.path(), tree.path().join("a")).unwrap();
        std::fs::create_dir(outside.path().join("b")).unwrap();
        assert!(Dir::open(tree.path(), Path::new("a/b")).unwrap().is_none(), "not opened through the link");
        b.create_new(OsStr::new("f"), 0o600).unwrap();
        b.symlink(OsStr::new("/etc/passwd"), OsStr::new("l")).unwrap();
        b.rename(OsStr::new("f"), OsStr::new("g")).unwrap();
        assert!(tree.path().join("a.moved/b/g").is_file());
        assert!(tree.path().join("a.moved/b/l").is_symlink());
        assert_eq!(std::fs::read_dir(outside.path().join("b")).unwrap().count(), 0, "nothing outside");
        let top = Dir::open(tree.path(), Path::new("")).unwrap().unwrap();
        assert!(top.child(OsStr::new("a")).unwrap().is_none(), "a symlink is not a folder");
        assert!(top.entry(OsStr::new("a")).unwrap().unwrap().1.file_type().is_symlink());
        assert!(top.create_new(OsStr::new("a"), 0o600).is_err(), "no file created through a symlink");
        let mut names: Vec<(OsString, bool)> = b.list().unwrap();
        names.sort();
        assert_eq!(names, [(OsString::from("g"), false), (OsString::from("l"), false)]);
    }
}
