//! Filter drivers: programs git runs on a file it writes to the work tree (`filter=NAME` in the
//! attributes, with `filter.NAME.smudge` or `filter.NAME.process` in the configuration). Git
//! LFS (the repository stores a pointer, the smudge filter writes the large file) and
//! git-crypt (it stores ciphertext, the filter writes the plain file) are the common ones.
//!
//! libgit2 runs none of them: it writes the stored blob as it is, and says nothing. A rollback
//! through this back-end would report success with LFS pointers or ciphertext where the
//! release's files belong, so the back-end finds such files before it writes anything and
//! refuses ([`Error::FilterNotRun`]); the `git-cli` back-end runs the filters.

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
    let entries =
        config.entries(Some(r"^filter\..+\.(smudge|process)$")).map_err(git2_err("read the git configuration"))?;
    entries
        .for_each(|e| {
            let (Ok(name), Ok(value)) = (e.name(), e.value()) else { return };
            if value.trim().is_empty() {
                return;
            }
            // `filter.<driver>.smudge`: the driver's name may itself hold dots.
            if let Some(driver) = name.strip_prefix("filter.").and_then(|rest| rest.rsplit_once('.')).map(|(d, _)| d) {
                out.insert(driver.to_owned());
            }
        })
        .map_err(git2_err("read the git configuration"))?;
    Ok(out)
}

/// The driver among `drivers` that the attributes give `path` (relative to the work tree),
/// as a checkout reads them (the index's `.gitattributes` first, then the work tree's).
pub(super) fn driver_for(repo: &Repository, path: &Path, drivers: &BTreeSet<String>) -> Result<Option<String>> {
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

/// The first driver among `drivers` that the attribute file `content` assigns to any pattern
/// (`*.bin filter=lfs`): a checkout that writes this file starts applying it.
pub(super) fn named_in_attributes(content: &[u8], drivers: &BTreeSet<String>) -> Option<String> {
    content
        .split(|b| *b == b'\n')
        .filter(|line| !line.trim_ascii_start().starts_with(b"#"))
        .flat_map(|line| line.split(u8::is_ascii_whitespace).filter(|t| !t.is_empty()).skip(1))
        .filter_map(|attr| attr.strip_prefix(b"filter="))
        .find_map(|name| drivers.iter().find(|d| d.as_bytes() == name).cloned())
}

/// Whether writing `path` (with `content` when it is an attribute file) needs one of
/// `drivers`: the refusal naming it, or `None`.
pub(super) fn refusal(
    repo: &Repository,
    path: &Path,
    new_content: impl FnOnce() -> Option<Vec<u8>>,
    drivers: &BTreeSet<String>,
) -> Result<Option<Error>> {
    let driver = match driver_for(repo, path, drivers)? {
        Some(d) => Some(d),
        None if path.file_name().is_some_and(|n| n == ".gitattributes") => {
            new_content().and_then(|c| named_in_attributes(&c, drivers))
        }
        None => None,
    };
    Ok(driver.map(|driver| Error::FilterNotRun { path: path.display().to_string(), driver }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attribute_files_name_drivers_in_patterns_only() {
        let drivers: BTreeSet<String> = ["lfs".to_owned(), "git-crypt".to_owned()].into();
        assert_eq!(
            named_in_attributes(b"*.bin filter=lfs diff=lfs merge=lfs -text\n", &drivers).as_deref(),
            Some("lfs")
        );
        assert_eq!(
            named_in_attributes(b"secrets/** filter=git-crypt diff=git-crypt", &drivers).as_deref(),
            Some("git-crypt")
        );
        assert_eq!(named_in_attributes(b"# *.bin filter=lfs\n*.txt text\n", &drivers), None);
        assert_eq!(named_in_attributes(b"*.x filter=other\n", &drivers), None);
        // A pattern is never an attribute.
        assert_eq!(named_in_attributes(b"filter=lfs text\n", &drivers), None);
        assert_eq!(named_in_attributes(b"  *.bin\t  filter=lfs\n", &drivers).as_deref(), Some("lfs"));
    }
}
