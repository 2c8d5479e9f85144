//! The `reference-transaction` hook, asked before anything changes.
//!
//! `git reset --hard` writes the work tree and the index first and moves the branch last: a
//! hook that rejects the move (a "release freeze" guard) made it fail with the files and the
//! index already the target's and HEAD still on the old commit. So the move is put to the hook
//! first in a transaction that is prepared (the hook runs, in its `prepared` state, and may
//! refuse) and then aborted: nothing is written either way.

use std::path::PathBuf;

use super::GitCliBackend;
use crate::vcs::{CommitId, Error, Result, VcsBackend};

impl GitCliBackend {
    /// The `reference-transaction` hook git would run, if one is there and executable:
    /// under `core.hooksPath` (relative to the top of the work tree, where git runs hooks), or
    /// in the repository's `hooks` folder.
    fn reference_transaction_hook(&self) -> Result<Option<PathBuf>> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = match self.config_value("core.hooksPath")?.filter(|p| !p.is_empty()) {
            Some(p) if p.starts_with("~/") => {
                let Some(home) = std::env::var_os("HOME") else { return Ok(None) };
                PathBuf::from(home).join(&p[2..])
            }
            Some(p) => self.workdir.join(p),
            None => self.git_dir.join("hooks"),
        };
        let hook = dir.join("reference-transaction");
        let runs = std::fs::metadata(&hook).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        Ok(runs.then_some(hook))
    }

    /// What the `reference-transaction` hook said when it refused to let HEAD (its branch)
    /// move to `to`; `None` when there is no hook, or it accepts.
    pub(super) fn hook_refuses_move(&self, to: &CommitId) -> Result<Option<String>> {
        if self.reference_transaction_hook()?.is_none() {
            return Ok(None);
        }
        let input = format!("start\nupdate HEAD {}\nprepare\nabort\n", to.as_str());
        match self.git().args(["update-ref", "--stdin"]).stdin(input.as_bytes()).run() {
            Ok(_) => Ok(None),
            Err(Error::Command { stderr, .. }) if stderr.contains("aborted by hook") => {
                let said: Vec<&str> = stderr.lines().filter(|l| !l.contains("aborted by hook")).collect();
                Ok(Some(if said.is_empty() { stderr.clone() } else { said.join("; ") }))
            }
            // A git before 2.27 has no transaction verbs, and one before 2.28 runs no
            // `reference-transaction` hook at all: nothing to ask.
            Err(Error::Command { stderr, .. }) if stderr.contains("unknown command") => Ok(None),
            Err(e) => Err(e),
        }
    }
}
