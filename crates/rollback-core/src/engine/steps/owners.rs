//! Owners of what the reset writes, when the run is root's (`sudo forge-rollback run` on a
//! server where the app's files belong to `www-data`): git writes every file it checks out as
//! root's, and the app's user could no longer write its own files. Each file and symlink the
//! reset wrote gets the owner its path had, as the snapshot recorded it; where nothing was, the
//! owner of the folder it was written in, and so do the folders git made for it. A path whose
//! owner would be root stays as git wrote it. Run as any other user, git writes that user's
//! files, and nothing here changes them. The owner is set through a handle opened without
//! following symlinks ([`backup::chown`]): a folder the app's user swapped for a symlink
//! during the run does not lead root out of the tree.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::backup::{self, Manifest, Owner, chown};
use crate::engine::Rollback;
use crate::error::Result;
use crate::fsutil::IoError;
use crate::paths::RepoPath;
use crate::vcs::{Change, ChangeKind};

/// What the reset will write where nothing is now, and whose it is to be: the paths the target
/// adds and the folders git makes for them, each with the owner the snapshot recorded for a
/// file that was there (one the move or the way's clearing removes), else that of the nearest
/// folder above it that exists before the reset. Taken before the reset, when that folder can
/// still be told.
pub(crate) struct NewPaths(BTreeMap<RepoPath, Owner>);

impl Rollback {
    /// [`NewPaths`] of the reset to make `changes`, when this runs as root; `None` otherwise
    /// (nothing to give away).
    pub(crate) fn new_paths_owners(&self, manifest: &Manifest, changes: &[Change]) -> Option<NewPaths> {
        if crate::fsutil::euid() != 0 {
            return None;
        }
        let workdir = self.workdir();
        let root_owner = std::fs::symlink_metadata(workdir).ok().map(|m| Owner::of(&m))?;
        // A file the move deletes where the target has a folder: git makes the folder there.
        let deleted: BTreeSet<&RepoPath> =
            changes.iter().filter(|c| c.kind == ChangeKind::Deleted).map(|c| &c.path).collect();
        let mut out = BTreeMap::new();
        for c in changes.iter().filter(|c| c.kind == ChangeKind::Added && !c.submodule) {
            // Outermost first: the owner of the last folder that exists holds for everything
            // below it that does not.
            let mut down: Vec<RepoPath> = c.path.ancestors().collect();
            down.reverse();
            down.push(c.path.clone());
            let mut owner = root_owner;
            for p in down {
                match backup::snapshot::lstat_in_tree(workdir, &p) {
                    Some(m) if m.is_dir() => owner = Owner::of(&m),
                    Some(_) if !deleted.contains(&p) => break,
                    _ => {
                        // Below it, what git makes takes the same owner.
                        owner = recorded_owner(manifest, &p).unwrap_or(owner);
                        out.insert(p, owner);
                    }
                }
            }
        }
        out.retain(|_, o| (o.uid, o.gid) != (0, 0));
        Some(NewPaths(out))
    }

    /// After the reset: gives each path in `changes` that the reset wrote the owner it had
    /// (`manifest`, the snapshot, recorded it) and each path it made (`new`) the one its
    /// folder has: only a folder, a symlink, or a file with one link, as git writes it (a hard
    /// link put in its place may be any file). Returns how many it gave away, and how many the
    /// system would not let root give (a user namespace, NFS's `root_squash`: left root's).
    pub(crate) fn give_owners_back(
        &self,
        manifest: &Manifest,
        changes: &[Change],
        new: &NewPaths,
    ) -> Result<(usize, usize)> {
        let workdir = self.workdir();
        let recorded = |p: &RepoPath| recorded_owner(manifest, p).filter(|o| (o.uid, o.gid) != (0, 0));
        let wanted = changes
            .iter()
            .filter(|c| matches!(c.kind, ChangeKind::Modified | ChangeKind::TypeChanged) && !c.submodule)
            .filter_map(|c| Some((c.path.clone(), recorded(&c.path)?)))
            .chain(new.0.iter().map(|(p, o)| (p.clone(), *o)));
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

/// The owner `manifest` recorded for `path`, if it captured something there.
fn recorded_owner(manifest: &Manifest, path: &RepoPath) -> Option<Owner> {
    let i = manifest.entries.binary_search_by(|e| e.path.cmp(path)).ok()?;
    manifest.entries[i].owner.as_ref().map(|o| o.owner)
}
