//! What the checkout does as libgit2 announces each file it will write, before it writes any
//! ([`Guard`]): it stops at a file that needs a filter program libgit2 cannot run
//! ([`super::filters`]), and gives a file with other hard links an inode of its own.
//!
//! libgit2 writes a file it updates in place (it opens it with `O_TRUNC`), through every other
//! name of the file: a hard link outside the work tree (a configuration shared with another
//! service) would get the target's content, and an untracked name in the tree would lose the
//! content the snapshot captured. `git` writes a new file (it unlinks the old one first), and
//! so does this back-end: each file it is about to update is first replaced by a copy of its
//! own ([`crate::fsutil::unshare`]), which the checkout then writes. Every file the checkout
//! writes is covered: those the target changes, and those whose local edit it reverts.

use std::collections::BTreeSet;
use std::path::Path;

use git2::{CheckoutNotificationType, Repository, build::CheckoutBuilder};

use super::{filters, git2_err};
use crate::vcs::{Error, Result};

/// What the checkout's notifications found: the refusal or the failure that stopped it, or a
/// notification that did not finish (a panic inside it, which libgit2 would take for "stop"
/// and git2 for success).
#[derive(Default)]
pub(super) struct Guard {
    stopped_by: Option<Error>,
    unfinished: bool,
}

impl Guard {
    /// Makes `checkout` announce every file it will write, before it writes any: a file with
    /// other hard links gets an inode of its own, and the checkout stops at the first that needs
    /// one of `drivers`.
    pub(super) fn watch<'a>(
        &'a mut self,
        checkout: &mut CheckoutBuilder<'a>,
        repo: &'a Repository,
        workdir: &'a Path,
        drivers: &'a BTreeSet<String>,
    ) {
        // Every write is an update (a forced checkout announces a local edit it reverts as
        // dirty, then as updated); a file only removed is never updated.
        checkout.notify_on(CheckoutNotificationType::UPDATED);
        checkout.notify(move |_, path, baseline, target, _| {
            let (Some(path), Some(target)) = (path, target) else { return true };
            if !super::is_regular(u32::from(target.mode())) {
                return true;
            }
            self.unfinished = true;
            let verdict = if drivers.is_empty() {
                Ok(None)
            } else {
                let blob = |id| repo.find_blob(id).ok().map(|b| b.content().to_vec());
                filters::refusal(repo, path, || blob(target.id()), || baseline.and_then(|b| blob(b.id())), drivers)
            };
            let verdict = match verdict {
                Ok(None) => crate::fsutil::unshare(&workdir.join(path)).map(|_| None).map_err(Error::from),
                other => other,
            };
            self.unfinished = false;
            match verdict {
                Ok(None) => true,
                Ok(Some(e)) | Err(e) => {
                    self.stopped_by = Some(e);
                    false
                }
            }
        });
    }

    /// The checkout's result, with what stopped it first.
    pub(super) fn result(self, checked_out: std::result::Result<(), git2::Error>, what: &str) -> Result<()> {
        if let Some(e) = self.stopped_by {
            return Err(e);
        }
        if self.unfinished {
            return Err(Error::Git2 {
                context: what.to_owned(),
                source: git2::Error::from_str("a check of the files to write stopped half-way"),
            });
        }
        checked_out.map_err(git2_err(what.to_owned()))
    }
}
