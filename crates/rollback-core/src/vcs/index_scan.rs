//! A read-only walk over the entries of git's index file, to answer one question cheaply:
//! does any stage-0 entry (gitlinks aside) carry the assume-unchanged or skip-worktree flag?
//!
//! libgit2 answers it too, but parses every entry into a map and hashes the whole file first
//! (about 9 ms for the 20,000 entries of the medium benchmark, 40 ms for 100,000), and a run
//! asks before and after the reset. This walk reads the flag words only. It understands index
//! versions 2, 3 and 4 with SHA-1 object ids (the back-end does not call it for a repository
//! whose `extensions.objectFormat` is another), and gives up ([`None`]) on anything else: another
//! version, a split index (`link` extension), a file that does not add up (a SHA-256 index read
//! as SHA-1 does not). The caller then asks libgit2, so a surprise costs time, never a wrong
//! answer. Like git itself
//! (`verify_index_checksum` is off outside `fsck`), the trailing checksum is not verified.

use std::path::Path;

/// `CE_VALID`: assume-unchanged.
const ASSUME_UNCHANGED: u16 = 0x8000;
/// `CE_EXTENDED`: a second flag word follows (versions 3 and 4).
const EXTENDED: u16 = 0x4000;
/// `CE_SKIP_WORKTREE`, in the second flag word.
const SKIP_WORKTREE: u16 = 0x4000;
const MODE_GITLINK: u32 = 0o160_000;
/// ctime, mtime (8 bytes each), dev, ino, mode, uid, gid, size (4 each): 40 bytes, then the
/// object id.
const STAT_BYTES: usize = 40;
const OID_BYTES: usize = 20;

/// Whether the index at `path` has a flagged stage-0 entry, or `None` when this walk cannot
/// tell (see the module docs). A missing index has none.
pub(crate) fn any_flagged(path: &Path) -> Option<bool> {
    match std::fs::read(path) {
        Ok(data) => scan(&data),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(false),
        Err(_) => None,
    }
}

fn be16(data: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// Reads a version-4 path-prefix varint at `at`: (value, bytes read).
fn varint(data: &[u8], mut at: usize) -> Option<(usize, usize)> {
    let start = at;
    let mut byte = *data.get(at)?;
    let mut value = usize::from(byte & 0x7f);
    while byte & 0x80 != 0 {
        at += 1;
        byte = *data.get(at)?;
        value = value.checked_add(1)?.checked_mul(128)?.checked_add(usize::from(byte & 0x7f))?;
    }
    Some((value, at + 1 - start))
}

/// The walk itself, over the bytes of an index file.
pub(crate) fn scan(data: &[u8]) -> Option<bool> {
    let (found, extensions) = walk_entries(data)?;
    // A split index keeps entries in another file: this walk does not see them.
    let mut flagged = Some(found);
    each_extension(data, extensions, |signature, _| {
        if signature == b"link" {
            flagged = None;
        }
    })?;
    flagged
}

/// The name of the shared index file (`sharedindex.<hex>`, next to the index) that a split
/// index's `link` extension names, or `None` when the index is not split (or this walk cannot
/// read it). Git cannot read a split index without that file.
pub(crate) fn shared_index_name(data: &[u8]) -> Option<String> {
    use std::fmt::Write as _;
    let (_, extensions) = walk_entries(data)?;
    let mut name = None;
    each_extension(data, extensions, |signature, body| {
        // The shared index's id comes first, then the bitmaps of replaced and deleted entries.
        // An all-zero id is a link to nothing (git ignores it).
        if signature == b"link"
            && let Some(id) = body.get(..OID_BYTES)
            && id.iter().any(|&b| b != 0)
        {
            name = Some(id.iter().fold(String::from("sharedindex."), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            }));
        }
    })?;
    name
}

/// Calls `each` with the signature and body of every extension from `at` on; `None` when what
/// follows the entries does not add up to extensions and the checksum exactly.
fn each_extension(data: &[u8], mut at: usize, mut each: impl FnMut(&[u8], &[u8])) -> Option<()> {
    while data.len().checked_sub(at)? > OID_BYTES {
        let signature = data.get(at..at + 4)?;
        let size = usize::try_from(be32(data, at + 4)?).ok()?;
        let end = at.checked_add(8)?.checked_add(size)?;
        each(signature, data.get(at + 8..end)?);
        at = end;
    }
    (data.len().checked_sub(at)? == OID_BYTES).then_some(())
}

/// Walks the entries: whether a stage-0 entry is flagged, and where the extensions begin.
fn walk_entries(data: &[u8]) -> Option<(bool, usize)> {
    if data.get(0..4)? != b"DIRC" {
        return None;
    }
    let version = be32(data, 4)?;
    if !(2..=4).contains(&version) {
        return None;
    }
    let count = be32(data, 8)?;
    let mut at = 12;
    let mut found = false;
    let mut previous_len = 0usize;
    for _ in 0..count {
        let start = at;
        let mode = be32(data, at + 24)?;
        let flags = be16(data, at + STAT_BYTES + OID_BYTES)?;
        at += STAT_BYTES + OID_BYTES + 2;
        let mut extended = 0u16;
        if flags & EXTENDED != 0 {
            if version < 3 {
                return None;
            }
            extended = be16(data, at)?;
            at += 2;
        }
        // The path: NUL-terminated in every version (a length of 0xfff means "look for the NUL").
        if version == 4 {
            let (strip, used) = varint(data, at)?;
            at += used;
            let suffix = data.get(at..)?.iter().position(|&b| b == 0)?;
            previous_len = previous_len.checked_sub(strip)? + suffix;
            at += suffix + 1;
        } else {
            let name = data.get(at..)?.iter().position(|&b| b == 0)?;
            let stated = usize::from(flags & 0x0fff);
            if stated < 0x0fff && stated != name {
                return None;
            }
            // Padded with 1 to 8 NULs to a multiple of 8 bytes from the entry's start.
            at = start + (at - start + name + 8) / 8 * 8;
            if data.get(at - 1).copied() != Some(0) {
                return None;
            }
        }
        let stage = (flags >> 12) & 0x3;
        if stage == 0 && mode != MODE_GITLINK && (flags & ASSUME_UNCHANGED != 0 || extended & SKIP_WORKTREE != 0) {
            found = true;
        }
    }
    Some((found, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn git(dir: &Path, args: &[&str]) {
        let out = Command::new("git")
            .current_dir(dir)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .args(["-c", "user.name=t", "-c", "user.email=t@t"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A repository with files of every name length class (short, padded to exactly 8, and
    /// over 0xfff bytes) in the index, written by git at `version`.
    fn repo(version: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        git(d, &["init", "-q"]);
        git(d, &["config", "index.version", version]);
        std::fs::create_dir_all(d.join("sub/deeper")).unwrap();
        for name in ["a", "abcdefgh", "sub/b.txt", "sub/deeper/c", "zz"] {
            std::fs::write(d.join(name), name).unwrap();
        }
        let long = "l".repeat(200);
        std::fs::create_dir_all(d.join(&long).join(&long)).unwrap();
        std::fs::write(d.join(&long).join(&long).join("x".repeat(200)), "long").unwrap();
        git(d, &["add", "-A"]);
        git(d, &["commit", "-q", "-m", "one"]);
        dir
    }

    fn index(dir: &tempfile::TempDir) -> Vec<u8> {
        std::fs::read(dir.path().join(".git/index")).unwrap()
    }

    #[test]
    fn every_version_reads_as_unflagged_then_flagged() {
        for version in ["2", "3", "4"] {
            let dir = repo(version);
            assert_eq!(scan(&index(&dir)), Some(false), "index v{version}, nothing flagged");
            git(dir.path(), &["update-index", "--assume-unchanged", "sub/b.txt"]);
            assert_eq!(scan(&index(&dir)), Some(true), "index v{version}, assume-unchanged");
            git(dir.path(), &["update-index", "--no-assume-unchanged", "sub/b.txt"]);
            assert_eq!(scan(&index(&dir)), Some(false), "index v{version}, flag cleared");
            git(dir.path(), &["update-index", "--skip-worktree", "zz"]);
            assert_eq!(scan(&index(&dir)), Some(true), "index v{version}, skip-worktree");
        }
    }

    #[test]
    fn intent_to_add_and_conflicts_are_not_flags() {
        let dir = repo("3");
        std::fs::write(dir.path().join("new"), "n").unwrap();
        git(dir.path(), &["add", "-N", "new"]);
        assert_eq!(scan(&index(&dir)), Some(false));
    }

    #[test]
    fn a_split_index_or_damaged_file_is_left_to_libgit2() {
        let dir = repo("2");
        let good = index(&dir);
        assert_eq!(scan(&good[..good.len() - 1]), None, "truncated");
        assert_eq!(scan(&good[..40]), None, "cut inside an entry");
        let mut other = good.clone();
        other[7] = 5;
        assert_eq!(scan(&other), None, "unknown version");
        assert_eq!(scan(b"not an index"), None);
        git(dir.path(), &["update-index", "--split-index"]);
        assert_eq!(scan(&index(&dir)), None, "split index");
    }

    #[test]
    fn a_split_index_names_its_shared_index_file() {
        let dir = repo("2");
        assert_eq!(shared_index_name(&index(&dir)), None, "not split");
        git(dir.path(), &["update-index", "--split-index"]);
        let name = shared_index_name(&index(&dir)).expect("split");
        let shared: Vec<String> = std::fs::read_dir(dir.path().join(".git"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("sharedindex."))
            .collect();
        assert_eq!(shared, [name], "the one shared index git wrote");
        git(dir.path(), &["update-index", "--no-split-index"]);
        assert_eq!(shared_index_name(&index(&dir)), None, "unsplit again");
    }

    #[test]
    fn an_index_of_a_sha256_repository_is_left_to_libgit2() {
        for version in ["2", "3", "4"] {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path();
            git(d, &["init", "-q", "--object-format=sha256"]);
            git(d, &["config", "index.version", version]);
            for name in ["a", "abcdefgh", "sub/b.txt", "zz"] {
                std::fs::create_dir_all(d.join(name).parent().unwrap()).unwrap();
                std::fs::write(d.join(name), name).unwrap();
            }
            git(d, &["add", "-A"]);
            assert_eq!(scan(&std::fs::read(d.join(".git/index")).unwrap()), None, "index v{version}");
        }
    }

    #[test]
    fn a_missing_index_has_no_flags() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(any_flagged(&dir.path().join("index")), Some(false));
    }
}
