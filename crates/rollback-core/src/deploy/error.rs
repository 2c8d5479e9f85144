//! What can go wrong in `[deploy]`, and what the operator can do about it.

use std::time::Duration;

use super::short;
use crate::verify::timed_out;

/// Deploy failures.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Nothing names the branch to push.
    #[error("no branch to deploy: HEAD was detached and `[deploy] branch` is not set")]
    NoBranch,
    /// A commit id or name that cannot be handed to git safely.
    #[error("`{value}` is not a valid {what}")]
    Invalid {
        /// What it should be (`commit id`, `branch name`).
        what: &'static str,
        /// The value.
        value: String,
    },
    /// git could not be started.
    #[error("cannot run `git`")]
    GitNotFound(#[source] std::io::Error),
    /// A git command failed.
    #[error("`git {args}` failed ({exit}): {stderr}")]
    Git {
        /// Its arguments.
        args: String,
        /// How it exited.
        exit: String,
        /// Its error output.
        stderr: String,
    },
    /// The temporary index the rollback commit's tree is built in could not be made.
    #[error("cannot create a temporary folder for the rollback commit's index")]
    TempIndex(#[source] std::io::Error),
    /// A git command ran past its timeout and was killed.
    #[error("`git {args}` {}", timed_out(*limit))]
    GitTimeout {
        /// Its arguments.
        args: String,
        /// The timeout.
        limit: Duration,
    },
    /// `push`: the remote branch is not where production was: someone pushed since (or the
    /// branch does not exist on the remote).
    #[error(
        "the remote branch `{remote}/{branch}` is not at {expected}, where production was (someone pushed to it since, or it does not exist): the push was refused"
    )]
    RemoteMoved {
        /// The remote.
        remote: String,
        /// The branch.
        branch: String,
        /// The commit it was expected at.
        expected: String,
    },
    /// `revert-commit`: the remote branch has commits the rollback commit does not contain.
    #[error(
        "the remote `{remote}` refused the push to `{branch}` as a non-fast-forward: it has commits the rollback commit {commit} does not contain"
    )]
    NonFastForward {
        /// The remote.
        remote: String,
        /// The branch.
        branch: String,
        /// The commit that was pushed.
        commit: String,
    },
    /// The remote refused the push itself (a pre-receive hook, a protected branch, a
    /// repository refusing force pushes), or git did for another reason.
    #[error("the remote `{remote}` refused the push to `{branch}`: {reason}{}", if said.is_empty() { String::new() } else { format!("; it said: {said}") })]
    Rejected {
        /// The remote.
        remote: String,
        /// The branch.
        branch: String,
        /// git's reason (`[remote rejected] (pre-receive hook declined)`).
        reason: String,
        /// What the remote said (its `remote:` lines), credentials removed.
        said: String,
        /// The remote refuses force pushes to the branch (`push`'s `--force-with-lease`).
        refuses_force: bool,
    },
    /// `[deploy] remote` names no remote of the repository.
    #[error("there is no remote `{remote}` in this repository")]
    NoRemote {
        /// The remote.
        remote: String,
    },
    /// The push lock could not be taken: a push of another run still runs, or the lock file
    /// could not be opened.
    #[error(transparent)]
    PushLock(crate::lock::Error),
    /// The deploy hook's URL is missing or invalid (never shown).
    #[error("deploy hook: {0}")]
    HookUrl(String),
    /// The deploy hook failed; the push (if any) had succeeded.
    #[error("the deploy hook failed: {reason}{}", pushed_commit.as_deref().map(|c| format!(" (the push of {} succeeded)", short(c))).unwrap_or_default())]
    Hook {
        /// What went wrong (no URL).
        reason: String,
        /// What was pushed before the hook was called.
        pushed_commit: Option<String>,
    },
}

impl Error {
    /// The `[deploy]` key whose value is the cause (`deploy.remote`), for an error of
    /// [`super::check_ready`] that fixing the configuration or the environment cures.
    pub fn config_key(&self, config: &super::DeployConfig) -> Option<&'static str> {
        match self {
            Error::HookUrl(_) if config.hook_url_env.is_some() => Some("deploy.hook_url_env"),
            Error::HookUrl(_) => Some("deploy.hook_url"),
            Error::NoRemote { .. } => Some("deploy.remote"),
            Error::Invalid { what: "remote name", .. } => Some("deploy.remote"),
            Error::Invalid { what: "branch name", .. } => Some("deploy.branch"),
            _ => None,
        }
    }

    /// What the operator can do after a rollback's deploy failed.
    pub fn hint(&self) -> Option<String> {
        self.hint_for(false)
    }

    /// What the operator can do; `undo`: the deploy step of an undo failed (its local part,
    /// the work tree back where the run undone started, is done).
    pub fn hint_for(&self, undo: bool) -> Option<String> {
        Some(match self {
            Error::RemoteMoved { remote, branch, .. } | Error::NonFastForward { remote, branch, .. } if undo => {
                format!(
                    "someone deployed after the run being undone: `git fetch {remote}` and look at `{remote}/{branch}` before deciding; the work tree is back where that run started, and `{remote}/{branch}` was left as it is"
                )
            }
            Error::NoBranch => "set `branch` in `[deploy]`, or roll back with a branch checked out".into(),
            Error::Invalid { .. } => return None,
            Error::GitNotFound(_) => "install git, or set `strategy = \"none\"` in `[deploy]`".into(),
            Error::Git { .. } => {
                "check the remote's name, URL and credentials (`git remote -v`, `git push --dry-run`)".into()
            }
            Error::TempIndex(_) => {
                "check that the temporary folder (`$TMPDIR`, else /tmp) exists and is writable, then resume the run"
                    .into()
            }
            Error::GitTimeout { .. } => {
                "check the network and the remote, or raise `[deploy] push_timeout_secs`".into()
            }
            Error::RemoteMoved { remote, branch, .. } => format!(
                "someone deployed after the broken release: `git fetch {remote}` and look at `{remote}/{branch}` before deciding; the local rollback stands"
            ),
            Error::NonFastForward { remote, branch, .. } => format!(
                "`git fetch {remote}` and look at `{remote}/{branch}`: a newer release may already be live; the local rollback stands"
            ),
            Error::Rejected { branch, refuses_force: true, .. } => format!(
                "the remote refuses force pushes to `{branch}` (a protected branch, `receive.denyNonFastForwards`): set `strategy = \"revert-commit\"` in `[deploy]`, which pushes a new commit on top instead, then resume the run"
            ),
            Error::Rejected { .. } => {
                "read the remote's reason: a protected branch or a pre-receive hook may refuse pushes".into()
            }
            Error::NoRemote { remote } => format!(
                "add it (`git remote add {remote} URL`), or set `[deploy] remote` to one that `git remote -v` lists"
            ),
            Error::PushLock(e) => return e.hint(),
            Error::HookUrl(_) => {
                "set `hook_url` or the environment variable named by `hook_url_env` in `[deploy]`".into()
            }
            Error::Hook { pushed_commit: Some(_), .. } => {
                "the push succeeded; trigger the deploy from the platform's dashboard, or retry the hook".into()
            }
            Error::Hook { pushed_commit: None, .. } => {
                "trigger the deploy from the platform's dashboard, or retry".into()
            }
        })
    }
}
