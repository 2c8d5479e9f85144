//! Owners of what the reset writes, when the run is root's (`sudo forge-rollback run` on a
//! server where the app's files belong to `www-data`): git writes every file it checks out as
//! root's, and the app's user could no longer write its own files. Each file and symlink the
//! reset wrote gets the owner its path had, as the snapshot recorded it; where nothing stays,
//! the owner [`Manifest::landing`] took before anything changed (of the file it replaces, or of
//! the folder it lands in), and so do the folders git made for it. A path whose
//! owner would be root stays as git wrote it. Run as any other user, git writes that user's
//! files, and nothing here changes them. The owner is set through a handle opened without
//! following symlinks ([`backup::chown`]): a folder the app's user swapped for a symlink
//! during the run does not lead root out of the tree.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::backup::{Manifest, Owner, chown};
use crate::engine::Rollback;
use crate::error::Result;
use crate::fsutil::IoError;
use crate::paths::RepoPath;
use crate::vcs::{Change, ChangeKind};

impl Rollback {
    /// [`Manifest::landing`] for the move to make `changes`, taken by the snapshot before
    /// anything changed, when this runs as root (empty otherwise: nothing to give away). Each
    /// path the target adds, and each folder on the way to it that is not one now, gets the
    /// owner of what is there now (it will be removed: a file the move deletes, or one in the
    /// way that the snapshot holds), else that of the nearest folder above it.
    pub(crate) fn landing_owners(&self, changes: &[Change]) -> BTreeMap<RepoPath, Owner> {
        let mut out = BTreeMap::new();
        if crate::fsutil::euid() != 0 {
            return out;
        }
        let workdir = self.workdir();
        let Some(root_owner) = std::fs::symlink_metadata(workdir).ok().map(|m| Owner::of(&m)) else { return out };
        for c in changes.iter().filter(|c| c.kind == ChangeKind::Added && !c.submodule) {
            // Outermost first: below a path that is not a folder now, git makes what it needs.
            let mut down: Vec<RepoPath> = c.path.ancestors().collect();
            down.reverse();
            down.push(c.path.clone());
            // One `lstat` per level: below the first that is not a folder, nothing is.
            let mut owner = root_owner;
            let mut in_tree = true;
            for p in down {
                let found = if in_tree { std::fs::symlink_metadata(p.to_fs(workdir)).ok() } else { None };
                match found {
                    Some(m) if m.is_dir() => owner = Owner::of(&m),
                    found => {
                        // What is there now goes; what git writes in its place is its owner's.
                        in_tree = false;
                        owner = found.map_or(owner, |m| Owner::of(&m));
                        out.insert(p, owner);
                    }
                }
            }
        }
        out.retain(|_, o| (o.uid, o.gid) != (0, 0));
        out
    }

    /// After the reset: gives each path in `changes` that the reset wrote the owner it had
    /// (`manifest`, the snapshot, recorded it) and each path it made the one
    /// [`Manifest::landing`] names; only to a folder, a symlink, or a file with one link, as
    /// git writes it (a hard link put in its place may be any file). Returns how many it gave
    /// away, and how many the system would not let root give (a user namespace, NFS's
    /// `root_squash`: left root's).
    pub(crate) fn give_owners_back(&self, manifest: &Manifest, changes: &[Change]) -> Result<(usize, usize)> {
        let workdir = self.workdir();
        let recorded =
            |p: &RepoPath| manifest.entry(p)?.owner.as_ref().map(|o| o.owner).filter(|o| (o.uid, o.gid) != (0, 0));
        let wanted = changes
            .iter()
            .filter(|c| matches!(c.kind, ChangeKind::Modified | ChangeKind::TypeChanged) && !c.submodule)
            .filter_map(|c| Some((c.path.clone(), recorded(&c.path)?)))
            .chain(manifest.landing.iter().map(|(p, o)| (p.clone(), *o)));
        let (mut given, mut refused) = (0, 0);
        for (path, owner) in wanted {
            let as_git_wrote = |m: &std::fs::Metadata| {
                (m.uid(), m.gid()) != (owner.uid, owner.gid) && (m.is_dir() || m.is_symlink() || m.nlink() == 1)
            };
            match chown::chown_beneath(workdir, Path::new(OsStr::from_bytes(path.as_bytes())), owner, as_git_wrote) {
                Ok(changed) => given += usize::from(changed),
                Err(e) if chown::refused(&e) => refused += 1,
                Err(e) => return Err(IoError::new("set the owner of", path.to_fs(workdir), e).into()),
            }
        }
        Ok((given, refused))
    }
}
