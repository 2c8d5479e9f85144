//! The crate's error type and the families front-ends map to exit codes and exceptions.

use std::path::PathBuf;

use crate::hint::{Action, Frontend, Hint, hint};
use crate::{backup, config, db, journal, lock, production, registry, vcs};

/// Every error `rollback-core` returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Configuration file problems.
    #[error(transparent)]
    Config(#[from] config::Error),
    /// Known-good registry problems.
    #[error(transparent)]
    Registry(#[from] registry::Error),
    /// Git problems.
    #[error(transparent)]
    Vcs(#[from] vcs::Error),
    /// Backup store problems.
    #[error(transparent)]
    Backup(#[from] backup::Error),
    /// Another run holds the lock.
    #[error(transparent)]
    Lock(#[from] lock::Error),
    /// Journal problems.
    #[error(transparent)]
    Journal(#[from] journal::Error),
    /// I/O on the state folder or the work tree.
    #[error(transparent)]
    Io(#[from] crate::fsutil::IoError),
    /// Database problems (never with a password in the message).
    #[error(transparent)]
    Db(#[from] db::Error),
    /// A production target ([`production::Deployer`]) failed.
    #[error(transparent)]
    Production(#[from] production::Error),
    /// Restart, deploy or notification problems.
    #[error("{message}")]
    Service {
        /// What failed (no secrets).
        message: String,
        /// What the operator can do.
        hint: Option<Hint>,
    },
    /// A safety check refused the operation; nothing was changed.
    #[error("{message}")]
    Refused {
        /// What was refused and why.
        message: String,
        /// What the operator can do.
        hint: Option<Hint>,
    },
    /// The operator (or the confirm callback) said no; nothing was changed.
    #[error("cancelled: {0}")]
    Cancelled(String),
    /// Bad arguments from the caller (unknown run id, conflicting options, ...).
    #[error("{message}")]
    Usage {
        /// What is wrong.
        message: String,
        /// What to do instead.
        hint: Option<Hint>,
    },
    /// The async runtime (database, HTTP, signals) could not be started; nothing was changed.
    #[error("could not start the runtime that database, HTTP and signal work runs on")]
    Runtime(#[source] std::io::Error),
    /// A step of a run failed. The run is recorded as failed and can be resumed or undone.
    #[error("step `{step}` of run {run_id} failed")]
    StepFailed {
        /// The run.
        run_id: String,
        /// The step's name.
        step: String,
        /// What went wrong.
        #[source]
        source: Box<Error>,
    },
    /// The journal of a run under way could not be written (a full disk, an I/O error): the
    /// run stopped between two of its records, and is finished with `resume` or put back with
    /// `undo`, like a failed step's.
    #[error("run {run_id} stopped half-way: its journal failed")]
    RunStopped {
        /// The run.
        run_id: String,
        /// The journal's error.
        #[source]
        source: Box<Error>,
    },
    /// No known-good commit to roll back to, and none given.
    #[error(
        "no rollback target: the registry `{}` has no verified known-good commit other than HEAD ({}) that is not marked bad",
        registry.display(),
        head.short()
    )]
    NoTarget {
        /// The registry that was searched.
        registry: PathBuf,
        /// HEAD, which is never its own target.
        head: crate::vcs::CommitId,
    },
    /// A callback supplied by a front-end (Python) raised; the run was stopped cleanly.
    #[error("callback failed: {0}")]
    Callback(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Error families: each maps to one documented CLI exit code and one Python exception class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Bad usage, config, registry, revision or repository: fix the input. Nothing changed.
    Usage,
    /// Another run holds the lock. Nothing changed.
    Locked,
    /// A safety check refused. Nothing changed.
    Refused,
    /// The operator said no. Nothing changed.
    Cancelled,
    /// A step failed; the run can be resumed or undone.
    Failed,
}

impl Error {
    /// The error and its causes on one line, each cause once (as the engine journals it and
    /// front-ends print it).
    pub fn chain(&self) -> String {
        let mut s = self.to_string();
        let mut src = std::error::Error::source(self);
        while let Some(c) = src {
            let part = c.to_string();
            if !s.contains(&part) {
                s.push_str(": ");
                s.push_str(&part);
            }
            src = c.source();
        }
        s
    }

    /// Shorthand for [`Error::Refused`].
    pub fn refused(message: impl Into<String>, hint: Option<Hint>) -> Self {
        Self::Refused { message: message.into(), hint }
    }

    /// Shorthand for [`Error::Usage`].
    pub fn usage(message: impl Into<String>, hint: Option<Hint>) -> Self {
        Self::Usage { message: message.into(), hint }
    }

    /// The hint in `frontend`'s words ([`Error::hint`] rendered).
    pub fn hint_for(&self, frontend: Frontend) -> Option<String> {
        self.hint().map(|h| h.render(frontend))
    }

    /// The file-system error underneath, from whichever part met it (the engine, the backup
    /// store or the journal).
    fn io_error(&self) -> Option<&crate::fsutil::IoError> {
        match self {
            Error::Io(e) | Error::Backup(backup::Error::Io(e)) | Error::Journal(journal::Error::Io(e)) => Some(e),
            _ => None,
        }
    }

    /// The family this error belongs to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            // Reading or writing the registry failed (a read-only or immutable file): an I/O
            // error, not bad input.
            Error::Registry(registry::Error::Io(_)) => ErrorKind::Failed,
            Error::Config(_) | Error::Registry(_) | Error::Usage { .. } | Error::NoTarget { .. } => ErrorKind::Usage,
            Error::Vcs(e) => match e {
                vcs::Error::NotARepository { .. }
                | vcs::Error::NotOwned(_)
                | vcs::Error::BareRepository { .. }
                | vcs::Error::UnknownRevision { .. }
                | vcs::Error::AmbiguousRevision { .. } => ErrorKind::Usage,
                vcs::Error::UnbornBranch { .. }
                | vcs::Error::FilterNotRun { .. }
                | vcs::Error::EncodingNotRun { .. }
                | vcs::Error::SplitIndex
                | vcs::Error::SparseIndex
                | vcs::Error::UnsupportedFormat { .. } => ErrorKind::Refused,
                _ => ErrorKind::Failed,
            },
            Error::Backup(backup::Error::UnknownSnapshot { .. }) => ErrorKind::Usage,
            Error::Backup(backup::Error::UnsafeRestore { .. }) => ErrorKind::Refused,
            Error::Db(db::Error::Config(_) | db::Error::UrlEnv(_)) => ErrorKind::Usage,
            // Nothing was read or changed: the database is left to the other SQLite.
            Error::Db(db::Error::OpenInProcess { .. }) => ErrorKind::Refused,
            Error::Lock(lock::Error::Held { .. } | lock::Error::GitBusy { .. } | lock::Error::PushRunning { .. }) => {
                ErrorKind::Locked
            }
            Error::Refused { .. } | Error::Production(production::Error::Refused { .. }) => ErrorKind::Refused,
            Error::Production(production::Error::Usage { .. }) => ErrorKind::Usage,
            Error::Cancelled(_) => ErrorKind::Cancelled,
            Error::Journal(journal::Error::UnknownRun { .. }) => ErrorKind::Usage,
            // A journal that cannot be read is not acted on: nothing changed, and the operator
            // must look (like the other refusals, not a failed step to resume).
            Error::Journal(journal::Error::Corrupt { .. }) => ErrorKind::Refused,
            Error::StepFailed { source, .. } if source.kind() == ErrorKind::Cancelled => ErrorKind::Cancelled,
            // forge-rollback refusing a path of its state folder: another owner, a symlink, more
            // names (a file where a folder belongs is damage, an I/O failure).
            _ if self
                .io_error()
                .and_then(crate::fsutil::IoError::unsafe_state)
                .is_some_and(|u| !matches!(u.problem, crate::fsutil::Problem::Kind { .. })) =>
            {
                ErrorKind::Refused
            }
            _ => ErrorKind::Failed,
        }
    }

    /// What to do next, when there is something: data each front-end renders
    /// ([`Hint::render`]).
    pub fn hint(&self) -> Option<Hint> {
        // The run exists, and a new one is refused until it is finished or put back: "try
        // again" (what the journal's own error would say) is not what to do.
        if let Error::RunStopped { run_id, source } = self {
            let first = if source.io_error().is_some_and(|e| e.kind() == std::io::ErrorKind::StorageFull) {
                "the disk is full (of bytes or of inodes: `df -h`, `df -i`): free some, then "
            } else if source.caused_by_os_error(&[libc::EROFS]) {
                "make that file system writable, then "
            } else {
                "fix the cause, then "
            };
            return Some(hint![
                first,
                Action::resume(run_id),
                " finishes the run, or ",
                Action::undo(run_id),
                " puts back what it changed"
            ]);
        }
        self.text_hint().map(Hint::from).or_else(|| match self {
            Error::Refused { hint, .. } | Error::Usage { hint, .. } | Error::Service { hint, .. } => hint.clone(),
            Error::Config(config::Error::Read { path, source }) if source.kind() == std::io::ErrorKind::NotFound => {
                let path = std::path::absolute(path).unwrap_or_else(|_| path.clone()).display().to_string();
                Some(hint![
                    format!("there is no file at `{path}`: write the commented default there with "),
                    Action::InitConfig { path },
                    ", or give the path of an existing one: ",
                    Action::ConfigFile,
                    " (without it, `rollback/config/rollback.toml` or `forge-rollback.toml` of the work tree is used, else the defaults)"
                ])
            }
            Error::Config(e) => e.hint(),
            Error::Journal(journal::Error::UnknownRun { .. }) => {
                Some(hint![Action::ListRuns, " lists the runs and their ids"])
            }
            Error::NoTarget { .. } => Some(hint![
                "pass ",
                Action::Target { rev: "REV".into() },
                ", or mark a verified release with ",
                Action::MarkGood { rev: "REV".into() }
            ]),
            Error::Vcs(vcs::Error::NotARepository { .. }) => {
                Some(hint!["run inside a git work tree, or point at one with ", Action::OpenWorkTree])
            }
            Error::Vcs(vcs::Error::UnsupportedFormat { .. }) => Some(
                "nothing was changed; forge-rollback needs a repository with the files ref format and SHA-1 object ids: roll back by hand with git in this one, or deploy from a clone made with git's defaults"
                    .into(),
            ),
            Error::Vcs(vcs::Error::BareRepository { .. }) => Some(hint![
                "roll back the clone the app runs from, not the repository it pulls from: run there, or point at it with ",
                Action::OpenWorkTree
            ]),
            Error::StepFailed { run_id, .. } => Some(hint![
                "fix the cause, then ",
                Action::resume(run_id),
                "; or put everything back with ",
                Action::undo(run_id)
            ]),
            _ => None,
        })
    }

    /// git found `index.lock` in the git folder: another git command is running, or one that
    /// was killed (`kill -9`, a power loss) left it behind, and git will not remove it itself.
    fn index_locked(&self) -> bool {
        match self {
            Error::Vcs(vcs::Error::Command { stderr: text, .. }) => {
                text.contains("index.lock") && text.contains("File exists")
            }
            Error::Vcs(vcs::Error::Git2 { source, .. }) => {
                source.code() == git2::ErrorCode::Locked && source.class() == git2::ErrorClass::Index
            }
            _ => false,
        }
    }

    /// One of the system's `codes` (`EMFILE`, `EROFS`, ...) somewhere in the causes.
    fn caused_by_os_error(&self, codes: &[i32]) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cause {
            if e.downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::raw_os_error)
                .is_some_and(|c| codes.contains(&c))
            {
                return true;
            }
            // libgit2 reports the system's error as text only.
            if let Some(g) = e.downcast_ref::<git2::Error>()
                && codes.iter().any(|c| {
                    let text = std::io::Error::from_raw_os_error(*c).to_string();
                    g.message().contains(text.split(" (os error").next().unwrap_or(&text))
                })
            {
                return true;
            }
            cause = e.source();
        }
        false
    }

    /// Hints that name no action: the same words for every front-end.
    fn text_hint(&self) -> Option<String> {
        let unsafe_state = self.io_error().and_then(crate::fsutil::IoError::unsafe_state);
        match self {
            // The system's own limits first: what a variant would say does not help there.
            _ if self.caused_by_os_error(&[libc::EROFS]) => Some(
                "that file system is mounted read-only: make it writable, or (for the state folder) set `state.dir` in the configuration to a folder on a writable one, then try again (`resume` a run that failed on it)".into(),
            ),
            _ if self.caused_by_os_error(&[libc::EMFILE, libc::ENFILE]) => Some(format!(
                "the process may have only {} files open at once (`ulimit -n`): raise the limit (`ulimit -n 4096` in the shell; `LimitNOFILE=` for a systemd service), then try again (`resume` a run that failed on it)",
                open_file_limit().map_or_else(|| "a few".to_owned(), |n| n.to_string())
            )),
            Error::Db(e) => e.hint(),
            Error::Production(e) => e.hint(),
            Error::Registry(e) => e.hint(),
            Error::Lock(e) => e.hint(),
            Error::Vcs(vcs::Error::UnbornBranch { .. }) => {
                Some("commit something first: there is nothing to roll back to".into())
            }
            // A full hash needs no more digits: the object is not in this repository.
            Error::Vcs(vcs::Error::UnknownRevision { rev }) if vcs::CommitId::new(rev.as_str()).is_some() => Some(
                "no object has that id in this repository: fetch it first (`git fetch`), or check the hash; `git log --oneline` lists commits".into(),
            ),
            Error::Vcs(vcs::Error::UnknownRevision { .. }) => {
                Some("give a longer hash, a branch or a tag; `git log --oneline` lists commits".into())
            }
            Error::Vcs(vcs::Error::BlobNotLocal { blob, .. }) => Some(format!(
                "`git cat-file blob {} >/dev/null` fetches it from `{}` (git fetches a partial clone's missing objects on demand); then run the command again",
                blob.oid, blob.remote
            )),
            Error::Vcs(vcs::Error::AmbiguousRevision { rev }) => Some(format!(
                "give a longer hash, or the ref in full (`refs/tags/{rev}`, `refs/heads/{rev}`); `git show-ref {rev}` lists the refs of that name"
            )),
            _ if self.index_locked() => Some(
                "another git command is running here, or a killed one left `index.lock` in the git folder: once none runs, remove that file, then try again (`resume` a run that failed on it)".into(),
            ),
            Error::Vcs(vcs::Error::NotOwned(o)) => {
                // `sudo -u` takes a name, or `#UID` for a user with none.
                let user = if o.owner.starts_with("uid ") { format!("'#{}'", o.owner_uid) } else { o.owner.clone() };
                Some(format!(
                    "run as {} (`sudo -u {user} …`), so that backups and the journal belong to the repository's owner too; or, if you trust the repository, let git use it: `git config --global --add safe.directory {}`",
                    o.owner,
                    crate::hint::shell_word(&o.worktree.display().to_string())
                ))
            }
            Error::Vcs(vcs::Error::FilterNotRun { driver, .. }) => Some(format!(
                "set `backend = \"git-cli\"` under `[vcs]` in the configuration, so that the `git` program writes the files and runs the `{driver}` filter; nothing was written (a run that stopped on this: `resume` it after the change)"
            )),
            Error::Vcs(vcs::Error::EncodingNotRun { encoding, .. }) => Some(format!(
                "set `backend = \"git-cli\"` under `[vcs]` in the configuration, so that the `git` program writes the files in {encoding}; nothing was written (a run that stopped on this: `resume` it after the change)"
            )),
            Error::Vcs(vcs::Error::SplitIndex) => Some(
                "nothing was changed: join the index again with `git update-index --no-split-index`, and keep git from splitting it again with `git config core.splitIndex false` (a `true` may come from ~/.gitconfig); or set `backend = \"git-cli\"` under `[vcs]` (the default), which reads a split index through `git`".into(),
            ),
            Error::Vcs(vcs::Error::SparseIndex) => Some(
                "nothing was changed: set `backend = \"git-cli\"` under `[vcs]` (the default), which reads a sparse index through `git`; or make the index full again with `git sparse-checkout set --no-sparse-index`".into(),
            ),
            Error::Vcs(vcs::Error::GitNotFound(_)) => Some(
                "install git, or set `backend = \"git2\"` under `[vcs]` in the configuration: the built-in libgit2 backend needs no `git` program".into(),
            ),
            _ if unsafe_state.is_some() => unsafe_state.map(crate::fsutil::UnsafeState::hint),
            Error::Backup(backup::Error::NoSpace { needed, available, .. }) => {
                Some(format!("free at least {} byte(s) there, then try again", needed.saturating_sub(*available)))
            }
            _ if self.io_error().is_some_and(|e| e.kind() == std::io::ErrorKind::StorageFull) => {
                Some("the disk is full (of bytes or of inodes: `df -h`, `df -i`): free some, then try again".into())
            }
            Error::Journal(journal::Error::Corrupt { path, .. }) => Some(format!(
                "the run's records stop being readable at that line (a torn last line is not damage; this is): look at `{}`, mend the line or, once you know the state the run left, move its folder out of the state folder's `runs/` (keep it); `runs list` lists it as damaged",
                path.display()
            )),
            _ => None,
        }
    }
}

/// The soft limit on open files (`RLIMIT_NOFILE`), when there is one.
fn open_file_limit() -> Option<u64> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: `getrlimit` writes the struct it is given, which lives for the call.
    #[allow(unsafe_code)]
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } == 0;
    (ok && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}
