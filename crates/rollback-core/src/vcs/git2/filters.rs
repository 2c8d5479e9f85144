//! Filter drivers: programs git runs on a file it writes to the work tree (`filter=NAME` in the
//! attributes, with `filter.NAME.smudge` or `filter.NAME.process` in the configuration). Git
//! LFS (the repository stores a pointer, the smudge filter writes the large file) and
//! git-crypt (it stores ciphertext, the filter writes the plain file) are the common ones.
//!
//! libgit2 runs none of them: it writes the stored blob as it is, and says nothing. A rollback
//! through this back-end would report success with LFS pointers or ciphertext where the
//! release's files belong, so the back-end finds such files before it writes anything and
//! refuses ([`Error::FilterNotRun`]); the `git-cli` back-end runs the filters.
//!
//! Which files: a regular file the checkout writes whose attributes, read as they are before
//! the checkout (the index's `.gitattributes` first, then the work tree's), give it a configured
//! driver; and an attribute file the checkout writes that assigns a configured driver to a
//! pattern its current version does not. Git itself reads the attributes of the tree it checks
//! out, so a target that drops a filter (a release from before LFS) is refused too, though git
//! would write those files unfiltered: the refusal errs on the side of writing nothing wrong.

use std::collections::BTreeSet;
use std::path::Path;

use git2::{AttrCheckFlags, AttrValue, Repository};

use super::git2_err;
use crate::vcs::{Error, Result};

/// The names of the filter drivers the configuration defines with a smudge command or a
/// long-running process (a driver with only a clean command changes nothing on checkout).
pub(super) fn configured_drivers(repo: &Repository) -> Result<BTreeSet<String>> {
    let config = repo.config().map_err(git2_err("read the git configuration"))?;
    let mut out = BTreeSet::new();
    config
        .entries(Some(r"^filter\..+\.(smudge|process)$"))
        .and_then(|entries| {
            entries.for_each(|e| {
                // A bare `smudge` line has no value (and git ignores it).
                if !e.has_value() || e.value_bytes().trim_ascii().is_empty() {
                    return;
                }
                // `filter.<driver>.smudge`: the driver's name may itself hold dots.
                let name = String::from_utf8_lossy(e.name_bytes());
                if let Some((driver, _)) = name.strip_prefix("filter.").and_then(|rest| rest.rsplit_once('.')) {
                    out.insert(driver.to_owned());
                }
            })
        })
        .map_err(git2_err("read the git configuration"))?;
    Ok(out)
}

/// The driver among `drivers` that the attributes give `path` (relative to the work tree),
/// read as a checkout reads them (the index's `.gitattributes` first, then the work tree's).
fn driver_for(repo: &Repository, path: &Path, drivers: &BTreeSet<String>) -> Result<Option<String>> {
    let value = repo
        .get_attr_bytes(path, "filter", AttrCheckFlags::INDEX_THEN_FILE)
        .map_err(git2_err(format!("read the attributes of {}", path.display())))?;
    let name = match AttrValue::from_bytes(value) {
        AttrValue::String(s) => s.as_bytes(),
        AttrValue::Bytes(b) => b,
        _ => return Ok(None),
    };
    Ok(drivers.iter().find(|d| d.as_bytes() == name).cloned())
}

/// The `(pattern, driver)` pairs of the attribute file `content` whose driver is one of
/// `drivers` (`*.bin filter=lfs`).
fn assigned(content: &[u8], drivers: &BTreeSet<String>) -> BTreeSet<(Vec<u8>, String)> {
    let mut out = BTreeSet::new();
    for line in content.split(|b| *b == b'\n') {
        let mut words = line.split(u8::is_ascii_whitespace).filter(|t| !t.is_empty());
        let Some(pattern) = words.next().filter(|p| !p.starts_with(b"#")) else { continue };
        for name in words.filter_map(|w| w.strip_prefix(b"filter=")) {
            if let Some(d) = drivers.iter().find(|d| d.as_bytes() == name) {
                out.insert((pattern.to_vec(), d.clone()));
            }
        }
    }
    out
}

/// The first driver among `drivers` that the attribute file's `new` content assigns to a
/// pattern its `old` content (`None`: no such file) does not.
fn newly_assigned(new: &[u8], old: Option<&[u8]>, drivers: &BTreeSet<String>) -> Option<String> {
    let before = old.map(|o| assigned(o, drivers)).unwrap_or_default();
    assigned(new, drivers).into_iter().find(|pair| !before.contains(pair)).map(|(_, d)| d)
}

/// The refusal for writing the regular file `path` when it needs one of `drivers`: through its
/// attributes, or, for an attribute file, through a driver its `new` content assigns that its
/// `old` content did not.
pub(super) fn refusal(
    repo: &Repository,
    path: &Path,
    new: impl FnOnce() -> Option<Vec<u8>>,
    old: impl FnOnce() -> Option<Vec<u8>>,
    drivers: &BTreeSet<String>,
) -> Result<Option<Error>> {
    if let Some(driver) = driver_for(repo, path, drivers)? {
        return Ok(Some(Error::FilterNotRun { path: path.display().to_string(), driver, by_attributes: false }));
    }
    if path.file_name().is_none_or(|n| n != ".gitattributes") {
        return Ok(None);
    }
    let Some(new) = new() else { return Ok(None) };
    Ok(newly_assigned(&new, old().as_deref(), drivers).map(|driver| Error::FilterNotRun {
        path: path.display().to_string(),
        driver,
        by_attributes: true,
    }))
}

/// Whether `encoding` (a `working-tree-encoding` value) is UTF-8, the repository's own: git
/// converts nothing then.
fn is_utf8(encoding: &[u8]) -> bool {
    encoding.eq_ignore_ascii_case(b"utf-8") || encoding.eq_ignore_ascii_case(b"utf8")
}

/// The `(pattern, encoding)` pairs of the attribute file `content` that give files an encoding
/// other than UTF-8 (`*.ps1 working-tree-encoding=UTF-16LE`).
fn encodings(content: &[u8]) -> BTreeSet<(Vec<u8>, String)> {
    let mut out = BTreeSet::new();
    for line in content.split(|b| *b == b'\n') {
        let mut words = line.split(u8::is_ascii_whitespace).filter(|t| !t.is_empty());
        let Some(pattern) = words.next().filter(|p| !p.starts_with(b"#")) else { continue };
        for enc in words.filter_map(|w| w.strip_prefix(b"working-tree-encoding=")).filter(|e| !is_utf8(e)) {
            out.insert((pattern.to_vec(), String::from_utf8_lossy(enc).into_owned()));
        }
    }
    out
}

/// The refusal for writing the regular file `path` when git would convert it to another
/// encoding (`working-tree-encoding`, which libgit2 ignores): through its attributes, read as
/// [`refusal`] reads them, or, for an attribute file, through an encoding its `new` content
/// gives a pattern its `old` content did not.
pub(super) fn encoding_refusal(
    repo: &Repository,
    path: &Path,
    new: impl FnOnce() -> Option<Vec<u8>>,
    old: impl FnOnce() -> Option<Vec<u8>>,
) -> Result<Option<Error>> {
    let value = repo
        .get_attr_bytes(path, "working-tree-encoding", AttrCheckFlags::INDEX_THEN_FILE)
        .map_err(git2_err(format!("read the attributes of {}", path.display())))?;
    let encoding = match AttrValue::from_bytes(value) {
        AttrValue::String(s) => Some(s.as_bytes()),
        AttrValue::Bytes(b) => Some(b),
        _ => None,
    };
    if let Some(e) = encoding.filter(|e| !is_utf8(e)) {
        let encoding = String::from_utf8_lossy(e).into_owned();
        return Ok(Some(Error::EncodingNotRun { path: path.display().to_string(), encoding, by_attributes: false }));
    }
    if path.file_name().is_none_or(|n| n != ".gitattributes") {
        return Ok(None);
    }
    let Some(new) = new() else { return Ok(None) };
    let before = old().map(|o| encodings(&o)).unwrap_or_default();
    Ok(encodings(&new).into_iter().find(|pair| !before.contains(pair)).map(|(_, encoding)| Error::EncodingNotRun {
        path: path.display().to_string(),
        encoding,
        by_attributes: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_files_assign_drivers_to_patterns() {
        let drivers: BTreeSet<String> = ["lfs".to_owned(), "git-crypt".to_owned()].into();
        let new = |s: &[u8]| newly_assigned(s, None, &drivers);
        assert_eq!(new(b"*.bin filter=lfs diff=lfs merge=lfs -text\n").as_deref(), Some("lfs"));
        assert_eq!(new(b"secrets/** filter=git-crypt diff=git-crypt").as_deref(), Some("git-crypt"));
        assert_eq!(new(b"# *.bin filter=lfs\n*.txt text\n"), None);
        assert_eq!(new(b"*.x filter=other\n"), None);
        assert_eq!(new(b"  *.bin\t  filter=lfs\r\n").as_deref(), Some("lfs"));
        // A pattern is never an attribute.
        assert_eq!(new(b"filter=lfs text\n"), None);
        // Only what the old content did not assign: an edit elsewhere in the file is no refusal.
        let old: &[u8] = b"*.bin filter=lfs\n";
        assert_eq!(newly_assigned(b"*.bin filter=lfs\n*.sh eol=lf\n", Some(old), &drivers), None);
        assert_eq!(
            newly_assigned(b"*.bin filter=lfs\n*.psd filter=lfs\n", Some(old), &drivers).as_deref(),
            Some("lfs")
        );
    }
}
