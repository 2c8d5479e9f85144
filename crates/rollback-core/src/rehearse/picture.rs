//! A picture of a work tree, its HEAD, branch and index, and its database: taken of the copy
//! before the rehearsed rollback and after its undo, to say whether the undo brought everything
//! back.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::backup::xattr::{On, Xattr};
use crate::fsutil::IoError;

/// One entry of the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    /// A file: its bytes' hash, permission bits and extended attributes.
    File { hash: blake3::Hash, mode: u32, xattrs: Vec<Xattr> },
    /// A symlink and its target.
    Link(PathBuf),
    /// A folder and its extended attributes (a default ACL).
    Dir(Vec<Xattr>),
    /// A FIFO, socket or device node: its type and permission bits (never opened: reading a
    /// FIFO would wait for a writer).
    Special { kind: u32, mode: u32 },
}

/// Everything an undo must give back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Picture {
    files: BTreeMap<PathBuf, Node>,
    head: String,
    branch: Option<String>,
    /// Index entries: path, mode, blob, stage.
    index: Vec<(Vec<u8>, u32, String, u16)>,
    /// The database's canonical dump, if there is one.
    database: Option<String>,
}

impl Picture {
    /// Takes the picture of the work tree at `workdir` (without `.git` and the entries `skip`
    /// leaves out), its repository's HEAD, branch and index, and `database`'s canonical dump.
    pub(crate) fn take(
        workdir: &Path,
        skip: &dyn Fn(&Path) -> bool,
        database: Option<String>,
    ) -> Result<Self, crate::Error> {
        let mut files = BTreeMap::new();
        walk(workdir, Path::new(""), skip, &mut files)?;
        let repo = git2::Repository::open(workdir).map_err(|e| git_err(workdir, &e))?;
        let head = repo.head().ok();
        let commit =
            head.as_ref().and_then(|h| h.peel_to_commit().ok()).map(|c| c.id().to_string()).unwrap_or_default();
        let branch = head.as_ref().filter(|h| h.is_branch()).and_then(|h| h.shorthand().ok().map(str::to_owned));
        let index = repo.index().map_err(|e| git_err(workdir, &e))?;
        let index = index
            .iter()
            .map(|e| {
                let stage = (e.flags >> 12) & 0x3;
                (e.path.clone(), e.mode, e.id.to_string(), stage)
            })
            .collect();
        Ok(Self { files, head: commit, branch, index, database })
    }

    /// Files and links compared.
    pub(crate) fn file_count(&self) -> usize {
        self.files.values().filter(|n| !matches!(n, Node::Dir(_))).count()
    }

    /// What differs between `self` (before) and `after`: paths, `HEAD`, `branch`, `index`,
    /// `database`.
    pub(crate) fn differences(&self, after: &Picture) -> Vec<String> {
        let mut out = Vec::new();
        for (path, node) in &self.files {
            match after.files.get(path) {
                None => out.push(format!("{} is missing", path.display())),
                Some(n) if n != node => out.push(format!("{} changed", path.display())),
                Some(_) => {}
            }
        }
        for path in after.files.keys().filter(|p| !self.files.contains_key(*p)) {
            out.push(format!("{} appeared", path.display()));
        }
        if self.head != after.head {
            out.push(format!("HEAD is {} instead of {}", short(&after.head), short(&self.head)));
        }
        if self.branch != after.branch {
            out.push(format!(
                "the branch is {} instead of {}",
                after.branch.as_deref().unwrap_or("detached"),
                self.branch.as_deref().unwrap_or("detached")
            ));
        }
        if self.index != after.index {
            out.push("the index (staged changes) differs".to_owned());
        }
        if self.database != after.database {
            out.push("the database (schema or rows) differs".to_owned());
        }
        out
    }
}

fn short(id: &str) -> &str {
    &id[..id.len().min(7)]
}

fn git_err(dir: &Path, e: &git2::Error) -> crate::Error {
    crate::vcs::Error::NotARepository { path: dir.to_path_buf(), source: Some(e.message().to_owned().into()) }.into()
}

/// The extended attributes of `path` (not followed).
fn xattrs_of(path: &Path) -> Result<Vec<Xattr>, IoError> {
    On::Path(path).read().map_err(|e| IoError::new("read extended attributes of", path, e))
}

fn walk(
    root: &Path,
    rel: &Path,
    skip: &dyn Fn(&Path) -> bool,
    out: &mut BTreeMap<PathBuf, Node>,
) -> Result<(), IoError> {
    let dir = root.join(rel);
    for entry in fs::read_dir(&dir).map_err(|e| IoError::new("read folder", &dir, e))? {
        let entry = entry.map_err(|e| IoError::new("read folder", &dir, e))?;
        let rel = rel.join(entry.file_name());
        if rel.as_os_str().as_bytes() == b".git" || skip(&rel) {
            continue;
        }
        let path = root.join(&rel);
        let meta = fs::symlink_metadata(&path).map_err(|e| IoError::new("stat", &path, e))?;
        let node = if meta.file_type().is_symlink() {
            Node::Link(fs::read_link(&path).map_err(|e| IoError::new("read link", &path, e))?)
        } else if meta.is_dir() {
            walk(root, &rel, skip, out)?;
            Node::Dir(xattrs_of(&path)?)
        } else if !meta.is_file() {
            Node::Special {
                kind: std::os::unix::fs::MetadataExt::mode(&meta) & libc::S_IFMT,
                mode: meta.permissions().mode() & 0o7777,
            }
        } else {
            let bytes = fs::read(&path).map_err(|e| IoError::new("read", &path, e))?;
            let mode = meta.permissions().mode() & 0o7777;
            Node::File { hash: blake3::hash(&bytes), mode, xattrs: xattrs_of(&path)? }
        };
        out.insert(rel, node);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> (tempfile::TempDir, git2::Repository) {
        let dir = tempfile::tempdir().unwrap();
        let repo = git2::Repository::init(dir.path()).unwrap();
        fs::write(dir.path().join("a.txt"), "a\n").unwrap();
        let mut index = repo.index().unwrap();
        index.add_path(Path::new("a.txt")).unwrap();
        index.write().unwrap();
        let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
        let sig = git2::Signature::now("t", "t@invalid").unwrap();
        repo.commit(Some("HEAD"), &sig, &sig, "one", &tree, &[]).unwrap();
        drop(tree);
        (dir, repo)
    }

    #[test]
    fn the_same_state_has_no_differences_and_every_kind_of_change_is_named() {
        let (dir, repo) = repo();
        let root = dir.path();
        let none = |_: &Path| false;
        let before = Picture::take(root, &none, Some("rows 1".into())).unwrap();
        assert_eq!(
            before.differences(&Picture::take(root, &none, Some("rows 1".into())).unwrap()),
            Vec::<String>::new()
        );
        assert_eq!(before.file_count(), 1);

        fs::write(root.join("a.txt"), "b\n").unwrap();
        fs::write(root.join("new.txt"), "n\n").unwrap();
        let mut index = repo.index().unwrap();
        index.add_path(Path::new("new.txt")).unwrap();
        index.write().unwrap();
        let after = Picture::take(root, &none, Some("rows 2".into())).unwrap();
        assert_eq!(
            before.differences(&after),
            [
                "a.txt changed",
                "new.txt appeared",
                "the index (staged changes) differs",
                "the database (schema or rows) differs"
            ]
        );

        // A mode alone is a change; what `skip` leaves out is not compared.
        fs::write(root.join("a.txt"), "a\n").unwrap();
        fs::set_permissions(root.join("a.txt"), fs::Permissions::from_mode(0o755)).unwrap();
        let skip_new = |p: &Path| p == Path::new("new.txt");
        let before = Picture::take(root, &skip_new, None).unwrap();
        fs::set_permissions(root.join("a.txt"), fs::Permissions::from_mode(0o644)).unwrap();
        fs::write(root.join("new.txt"), "other\n").unwrap();
        assert_eq!(before.differences(&Picture::take(root, &skip_new, None).unwrap()), ["a.txt changed"]);
    }
}
