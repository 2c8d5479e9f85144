//! Extended attributes of captured files, symlinks and folders: POSIX ACLs
//! (`system.posix_acl_access`, `system.posix_acl_default`), file capabilities
//! (`security.capability`), security labels (`security.selinux`), `trusted.*` (root) and `user.*`
//! attributes.
//!
//! `chmod` bits alone do not describe a file with an ACL (its group bits are the ACL's mask),
//! and a server binary that binds :80 without root does so by its capability: a restore that
//! gives back bytes, mode and owner only leaves the app's user without access to a shared
//! secret, or the service without its port. So a capture records every attribute the capturing
//! process can read (a non-root user is not even shown `trusted.*`), and a restore sets them
//! again, in an order that keeps each one: after the owner (`chown` clears
//! `security.capability`), the ACLs after the mode (an ACL sets the group bits to its mask; a
//! `chmod` after it would change the mask), the others before the mode (`user.*` needs write
//! permission, which a read-only mode would take away from a non-root owner).
//!
//! An attribute this process may not set (`security.capability` or `trusted.*` when not
//! root, a file system that keeps no such attribute) does not fail the restore: the caller is
//! told which ones did not come back ([`NotGivenBack`]) and says so in the log and the report.
//! Whether one can be set is only known by trying (it depends on the file system, the
//! security module and the capabilities held), and the undo is the way back from an outage:
//! refusing all of it for one attribute would leave the service down.

use std::ffi::CString;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::paths::RepoPath;

/// One extended attribute: its full name (`user.origin`, `system.posix_acl_access`) and its
/// value, raw bytes.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Xattr {
    /// The name with its namespace; a string when it is UTF-8 (always, in practice), else raw
    /// bytes.
    #[serde(with = "text_or_bytes")]
    pub name: Vec<u8>,
    /// The value, as lowercase hex in a manifest (values are binary: an ACL, a capability set).
    #[serde(with = "hex")]
    pub value: Vec<u8>,
}

impl Xattr {
    /// The name, for messages.
    pub fn name_lossy(&self) -> String {
        String::from_utf8_lossy(&self.name).into_owned()
    }

    /// Whether it is a POSIX ACL: set after the mode, which would change its mask.
    pub fn is_acl(&self) -> bool {
        self.name.starts_with(b"system.posix_acl_")
    }
}

impl std::fmt::Debug for Xattr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Xattr({}, {} byte(s))", self.name_lossy(), self.value.len())
    }
}

/// An attribute a restore could not give back, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotGivenBack {
    /// The file, symlink or folder.
    pub path: RepoPath,
    /// The attribute's name.
    pub name: String,
    /// Why (`needs root`, `not supported by this file system`, ...).
    pub reason: String,
}

impl std::fmt::Display for NotGivenBack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {} ({})", self.path, self.name, self.reason)
    }
}

/// The warning for attributes a restore from backup `snapshot` did not give back (the first
/// few named, then how many more).
pub(crate) fn not_given_back_warning(snapshot: &str, lost: &[NotGivenBack]) -> String {
    const SHOWN: usize = 10;
    let mut names: Vec<String> = lost.iter().take(SHOWN).map(ToString::to_string).collect();
    if lost.len() > SHOWN {
        names.push(format!("and {} more", lost.len() - SHOWN));
    }
    format!(
        "{} extended attribute(s) recorded in backup {snapshot} were not given back, the files are restored without them: {}; set them again (setfacl, setcap, setfattr), as root where they need it",
        lost.len(),
        names.join(", ")
    )
}

/// Whether `e`, from setting an attribute, says that it cannot be set here rather than that
/// something is wrong with the path: not permitted for this process, a file system that keeps
/// no such attribute or no value that large, a value it does not accept.
fn refused(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EPERM | libc::EACCES | libc::EOPNOTSUPP | libc::E2BIG | libc::ERANGE | libc::ENOSPC | libc::EINVAL)
    )
}

/// The reason given for a refused attribute.
fn reason(name: &[u8], e: &io::Error) -> String {
    let root = crate::fsutil::euid() == 0;
    match e.raw_os_error() {
        Some(libc::EPERM | libc::EACCES)
            if !root && (name.starts_with(b"security.") || name.starts_with(b"trusted.")) =>
        {
            "needs root".into()
        }
        Some(libc::EPERM | libc::EACCES) => "not permitted".into(),
        Some(libc::EOPNOTSUPP) => "not supported by this file system".into(),
        Some(libc::E2BIG | libc::ERANGE | libc::ENOSPC) => "too large for this file system".into(),
        _ => format!("refused: {e}"),
    }
}

/// Where the attributes of a file are read and set: through a descriptor of the file itself
/// (not `O_PATH`), or by a path whose last name is not followed (a symlink is itself).
#[derive(Clone, Copy)]
pub(crate) enum On<'a> {
    /// An open file.
    Fd(&'a std::fs::File),
    /// A path, never followed at its last name.
    Path(&'a Path),
}

impl On<'_> {
    fn list_raw(self, buf: &mut [u8]) -> io::Result<usize> {
        let (ptr, len) = (buf.as_mut_ptr().cast::<libc::c_char>(), buf.len());
        // SAFETY: a valid descriptor or NUL-terminated path, and a writable buffer of `len`
        // bytes (none with `len` 0: the call then only says the size).
        #[allow(unsafe_code)]
        let n = match self {
            On::Fd(f) => unsafe { libc::flistxattr(f.as_raw_fd(), ptr, len) },
            On::Path(p) => {
                let c = c_path(p)?;
                unsafe { libc::llistxattr(c.as_ptr(), ptr, len) }
            }
        };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    fn get_raw(self, name: &CString, buf: &mut [u8]) -> io::Result<usize> {
        let (ptr, len) = (buf.as_mut_ptr().cast::<libc::c_void>(), buf.len());
        // SAFETY: as in `list_raw`, and a NUL-terminated name.
        #[allow(unsafe_code)]
        let n = match self {
            On::Fd(f) => unsafe { libc::fgetxattr(f.as_raw_fd(), name.as_ptr(), ptr, len) },
            On::Path(p) => {
                let c = c_path(p)?;
                unsafe { libc::lgetxattr(c.as_ptr(), name.as_ptr(), ptr, len) }
            }
        };
        usize::try_from(n).map_err(|_| io::Error::last_os_error())
    }

    fn set(self, x: &Xattr) -> io::Result<()> {
        let name = CString::new(x.name.clone()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let (ptr, len) = (x.value.as_ptr().cast::<libc::c_void>(), x.value.len());
        // SAFETY: a valid descriptor or NUL-terminated path, a NUL-terminated name and a
        // readable value of `len` bytes.
        #[allow(unsafe_code)]
        let rc = match self {
            On::Fd(f) => unsafe { libc::fsetxattr(f.as_raw_fd(), name.as_ptr(), ptr, len, 0) },
            On::Path(p) => {
                let c = c_path(p)?;
                unsafe { libc::lsetxattr(c.as_ptr(), name.as_ptr(), ptr, len, 0) }
            }
        };
        if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
    }

    /// Every attribute this process can read, sorted by name. A file system without extended
    /// attributes has none; an attribute removed while it is read, or that this process may
    /// list but not read, is left out.
    pub(crate) fn read(self) -> io::Result<Vec<Xattr>> {
        // Sizes change between the calls when an attribute is added meanwhile: asked again.
        let names = loop {
            let size = match self.list_raw(&mut []) {
                Ok(0) => return Ok(Vec::new()),
                Ok(n) => n,
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => return Ok(Vec::new()),
                Err(e) => return Err(e),
            };
            let mut buf = vec![0u8; size];
            match self.list_raw(&mut buf) {
                Ok(n) => {
                    buf.truncate(n);
                    break buf;
                }
                Err(e) if e.raw_os_error() == Some(libc::ERANGE) => {}
                Err(e) => return Err(e),
            }
        };
        let mut out = Vec::new();
        for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
            let c = CString::new(name).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            let value = loop {
                let size = match self.get_raw(&c, &mut []) {
                    Ok(n) => n,
                    Err(e) if matches!(e.raw_os_error(), Some(libc::ENODATA | libc::EACCES | libc::EPERM)) => {
                        break None;
                    }
                    Err(e) => return Err(e),
                };
                let mut buf = vec![0u8; size];
                match self.get_raw(&c, &mut buf) {
                    Ok(n) => {
                        buf.truncate(n);
                        break Some(buf);
                    }
                    Err(e) if e.raw_os_error() == Some(libc::ERANGE) => {}
                    Err(e) if e.raw_os_error() == Some(libc::ENODATA) => break None,
                    Err(e) => return Err(e),
                }
            };
            if let Some(value) = value {
                out.push(Xattr { name: name.to_vec(), value });
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Sets each of `xattrs` that this file does not hold with that value already (a label
    /// the system gave the new file, an ACL inherited from its folder: not set again, so not
    /// refused either). One this process may not set is added to `lost` for `path`.
    pub(crate) fn give(self, xattrs: &[&Xattr], path: &RepoPath, lost: &mut Vec<NotGivenBack>) -> io::Result<()> {
        if xattrs.is_empty() {
            return Ok(());
        }
        let now = self.read()?;
        for x in xattrs {
            if now.iter().any(|n| n == *x) {
                continue;
            }
            match self.set(x) {
                Ok(()) => {}
                Err(e) if refused(&e) => {
                    lost.push(NotGivenBack { path: path.clone(), name: x.name_lossy(), reason: reason(&x.name, &e) });
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The attributes of `xattrs` set before the mode (`before`) or after it: the ACLs after.
pub(crate) fn phase(xattrs: &[Xattr], before: bool) -> Vec<&Xattr> {
    xattrs.iter().filter(|x| x.is_acl() != before).collect()
}

fn c_path(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes()).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
}

/// Serde of a name: a string when UTF-8, else an array of bytes, as a path is written.
mod text_or_bytes {
    pub(super) use crate::paths::{deserialize_bytes as deserialize, serialize_bytes as serialize};
}

/// Serde of a value: lowercase hex.
mod hex {
    use std::fmt::Write as _;

    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(super) fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(v.len() * 2);
        for b in v {
            let _ = write!(out, "{b:02x}");
        }
        s.serialize_str(&out)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() % 2 != 0 {
            return Err(D::Error::custom("an extended attribute's value is not hex: odd length"));
        }
        (0..s.len())
            .step_by(2)
            .map(|i| {
                s.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| D::Error::custom("an extended attribute's value is not hex"))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `user.*` attribute is read back as set, and a manifest keeps its bytes (hex) and name.
    #[test]
    #[allow(clippy::print_stderr)] // says why it is skipped
    fn read_and_serde_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, "x").unwrap();
        let x = Xattr { name: b"user.origin".to_vec(), value: vec![0, 1, 0xfe, b'o'] };
        match On::Path(&path).set(&x) {
            Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                eprintln!("skipped: the temp folder's file system keeps no user attributes");
                return;
            }
            other => other.unwrap(),
        }
        assert_eq!(On::Path(&path).read().unwrap(), vec![x.clone()]);
        let json = serde_json::to_string(&x).unwrap();
        assert_eq!(json, r#"{"name":"user.origin","value":"0001fe6f"}"#);
        assert_eq!(serde_json::from_str::<Xattr>(&json).unwrap(), x);
    }
}
