//! Paths inside a repository, kept as raw bytes.
//!
//! Git stores paths as bytes; file names with spaces, newlines, quotes or bytes that are not
//! UTF-8 must survive a rollback and its undo. [`RepoPath`] never goes through a lossy
//! conversion: it serializes as a JSON string when it is valid UTF-8 and as an array of bytes
//! otherwise.

use std::fmt;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A relative, `/`-separated path inside a work tree, as raw bytes.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RepoPath(Vec<u8>);

/// Why a byte string is not a safe repository path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    /// Empty path.
    #[error("empty path")]
    Empty,
    /// Absolute path.
    #[error("absolute path `{0}`")]
    Absolute(String),
    /// A `..`, `.` or empty component.
    #[error("path `{0}` has a `.`, `..` or empty component")]
    BadComponent(String),
    /// A NUL byte.
    #[error("path `{0}` contains a NUL byte")]
    Nul(String),
    /// A component named `.git`.
    #[error("path `{0}` points into the `.git` directory")]
    GitDir(String),
}

impl RepoPath {
    /// Validates and wraps raw bytes: relative, no `.`/`..`/empty components, no NUL, not
    /// inside `.git`. Manifests and journals read from disk go through here, so a tampered
    /// manifest cannot make a restore write outside the work tree.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, PathError> {
        let bytes = bytes.into();
        let shown = || String::from_utf8_lossy(&bytes).into_owned();
        if bytes.is_empty() {
            return Err(PathError::Empty);
        }
        if bytes[0] == b'/' {
            return Err(PathError::Absolute(shown()));
        }
        if bytes.contains(&0) {
            return Err(PathError::Nul(shown()));
        }
        for component in bytes.split(|b| *b == b'/') {
            if component.is_empty() || component == b"." || component == b".." {
                return Err(PathError::BadComponent(shown()));
            }
            if component.eq_ignore_ascii_case(b".git") {
                return Err(PathError::GitDir(shown()));
            }
        }
        Ok(Self(bytes))
    }

    /// The path relative to `root`, if `path` lies inside it.
    pub fn from_fs(root: &Path, path: &Path) -> Result<Self, PathError> {
        let rel = path.strip_prefix(root).unwrap_or(path);
        let mut out = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(s) => {
                    if !out.is_empty() {
                        out.push(b'/');
                    }
                    out.extend_from_slice(s.as_bytes());
                }
                Component::CurDir => {}
                _ => return Err(PathError::BadComponent(rel.display().to_string())),
            }
        }
        Self::new(out)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The path as an OS path, relative.
    pub fn as_path(&self) -> &Path {
        Path::new(std::ffi::OsStr::from_bytes(&self.0))
    }

    /// `root` joined with this path.
    pub fn to_fs(&self, root: &Path) -> PathBuf {
        root.join(self.as_path())
    }

    /// The path as UTF-8 if it is, else `None`.
    pub fn to_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Parent paths, nearest first (`a/b/c` → `a/b`, `a`).
    pub fn ancestors(&self) -> impl Iterator<Item = RepoPath> + '_ {
        let bytes = &self.0;
        bytes.iter().enumerate().rev().filter(|(_, b)| **b == b'/').map(|(i, _)| RepoPath(bytes[..i].to_vec()))
    }

    /// Whether `self` is `other` or lies below it.
    pub fn starts_with(&self, other: &RepoPath) -> bool {
        self.0 == other.0
            || (self.0.len() > other.0.len() && self.0.starts_with(&other.0) && self.0[other.0.len()] == b'/')
    }
}

impl fmt::Display for RepoPath {
    /// Shown for people: invalid UTF-8 is escaped, control characters (a newline in a file
    /// name) are escaped so that one path is one line of output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c.is_control() {
                    write!(f, "{}", c.escape_default())?;
                } else {
                    write!(f, "{c}")?;
                }
            }
            for b in chunk.invalid() {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// Writes path bytes as a JSON string when they are valid UTF-8, as the array of the bytes
/// otherwise.
pub(crate) fn serialize_bytes<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    match std::str::from_utf8(bytes) {
        Ok(text) => s.serialize_str(text),
        Err(_) => s.collect_seq(bytes.iter()),
    }
}

/// Reads either form [`serialize_bytes`] writes.
pub(crate) fn deserialize_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Bytes(Vec<u8>),
    }
    Ok(match Raw::deserialize(d)? {
        Raw::Text(t) => t.into_bytes(),
        Raw::Bytes(b) => b,
    })
}

impl Serialize for RepoPath {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        serialize_bytes(&self.0, s)
    }
}

impl<'de> Deserialize<'de> for RepoPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RepoPath::new(deserialize_bytes(d)?).map_err(serde::de::Error::custom)
    }
}

/// Serde for a file-system path (`#[serde(with = "crate::paths::os_path")]`), in
/// [`RepoPath`]'s form: a JSON string when it is valid UTF-8, an array of its bytes otherwise.
/// serde's own form refuses a path that is not UTF-8, which would make a work tree in such a
/// folder impossible to journal, report or print as JSON.
pub mod os_path {
    use std::ffi::OsString;
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    use std::path::{Path, PathBuf};

    use serde::{Deserializer, Serializer};

    /// Writes `path` as a string, or as its bytes when it is not UTF-8.
    pub fn serialize<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
        super::serialize_bytes(path.as_os_str().as_bytes(), s)
    }

    /// Reads either form back.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<PathBuf, D::Error> {
        Ok(PathBuf::from(OsString::from_vec(super::deserialize_bytes(d)?)))
    }
}

/// [`os_path`] for an optional path: `None` is `null` (or the key left out, with
/// `#[serde(default)]`).
pub mod os_path_opt {
    use std::path::{Path, PathBuf};

    use serde::{Deserialize, Deserializer, Serializer};

    /// Writes the path as [`super::os_path`] does, or `null`.
    pub fn serialize<S: Serializer>(path: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
        match path {
            Some(p) => super::os_path::serialize(Path::new(p), s),
            None => s.serialize_none(),
        }
    }

    /// Reads either form back, or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<PathBuf>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::os_path")] PathBuf);
        Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_escaping_paths() {
        for bad in
            [&b"/etc/passwd"[..], b"../x", b"a/../../x", b"a//b", b"./a", b"", b"a\0b", b".git/config", b"a/.GIT/x"]
        {
            assert!(RepoPath::new(bad.to_vec()).is_err(), "{bad:?} accepted");
        }
        assert!(RepoPath::new(b"a b/\xff\nc".to_vec()).is_ok());
    }

    #[test]
    fn json_round_trip_keeps_bytes() {
        for raw in [&b"plain.txt"[..], b"sp ace/\"q\"\n", b"caf\xc3\xa9", b"bad\xff"] {
            let p = RepoPath::new(raw.to_vec()).unwrap();
            let json = serde_json::to_string(&p).unwrap();
            let back: RepoPath = serde_json::from_str(&json).unwrap();
            assert_eq!(back.as_bytes(), raw);
        }
        assert_eq!(serde_json::to_string(&RepoPath::new(b"\xff".to_vec()).unwrap()).unwrap(), "[255]");
        assert!(serde_json::from_str::<RepoPath>("\"../x\"").is_err());
    }

    #[test]
    fn display_escapes_controls_and_invalid_bytes() {
        let p = RepoPath::new(b"a\nb\xffc".to_vec()).unwrap();
        assert_eq!(p.to_string(), "a\\nb\\xffc");
    }

    #[test]
    fn ancestors_and_prefix() {
        let p = RepoPath::new("a/b/c").unwrap();
        let anc: Vec<String> = p.ancestors().map(|a| a.to_string()).collect();
        assert_eq!(anc, ["a/b", "a"]);
        assert!(p.starts_with(&RepoPath::new("a/b").unwrap()));
        assert!(!p.starts_with(&RepoPath::new("a/bc").unwrap()));
    }
}
