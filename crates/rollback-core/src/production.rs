//! Production targets: where the release runs when it is not (only) this checkout — a PaaS or
//! a cluster that keeps its earlier builds. [`Deployer`] is the seam: a platform adapter
//! implements it, and the engine plans, journals, promotes, verifies and undoes through it.
//!
//! A run with a deployer has a `promote` step. Its plan records the release live when the run
//! was planned and the release built from the target commit, so a resumed run knows both ids
//! after a crash, and `undo` puts the first one back. A target commit the platform never
//! built is refused when planning: rebuilding in an outage is the `push` or `revert-commit`
//! strategy's job, not a promotion's.

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::vcs::CommitId;

/// One release the platform keeps (Railway deployment, Render deploy, Heroku release,
/// Kubernetes revision, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// The platform's id for it.
    pub id: String,
    /// The commit it was built from, when the platform says.
    pub commit: Option<CommitId>,
    /// For people: "deployment 7 (built 3 days ago)".
    pub summary: String,
}

impl std::fmt::Display for Release {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.commit {
            Some(c) => write!(f, "{} (commit {})", self.summary, c.short()),
            None => f.write_str(&self.summary),
        }
    }
}

/// What a production target can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The platform refused or failed a call.
    #[error("{target}: {message}")]
    Platform {
        /// [`Deployer::describe`].
        target: String,
        /// What it said, secrets removed.
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// The target is in a state a rollback must not touch (a paused Kubernetes Deployment):
    /// refused before anything changes.
    #[error("{target}: {message}")]
    Refused {
        /// [`Deployer::describe`].
        target: String,
        /// Why.
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// The platform could not be reached, or answered `5xx`: a call that may work when
    /// repeated (the wait for a release to serve repeats it until its deadline).
    #[error("{target}: {message}")]
    Unavailable {
        /// [`Deployer::describe`].
        target: String,
        /// What went wrong, secrets removed.
        message: String,
    },
    /// The platform kept answering `429 Too Many Requests` past the retries a call allows, or
    /// without saying how long to wait: a call that may work later, like
    /// [`Error::Unavailable`] (the wait for a release to serve looks past it).
    #[error("{target}: {message}")]
    RateLimited {
        /// [`Deployer::describe`].
        target: String,
        /// What it said, secrets removed.
        message: String,
        /// The wait its last `Retry-After` asked for, when it said and could be read.
        retry_after: Option<std::time::Duration>,
        /// What to do about it.
        hint: Option<String>,
    },
    /// The configuration names something that is not there (an unset token variable):
    /// nothing was asked of the platform.
    #[error("{target}: {message}")]
    Usage {
        /// [`Deployer::describe`].
        target: String,
        /// What is missing.
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// Something the target runs for the rollback (a `--full` downgrade's Kubernetes Job) was
    /// given up on and could not be seen to end: it may still be changing what it works on
    /// (the database), so nothing may be decided from how that looks now.
    #[error("{target}: {message}")]
    Unsettled {
        /// [`Deployer::describe`].
        target: String,
        /// What is not known, and why.
        message: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// A promoted release did not start serving in time.
    #[error("{target}: release {release} did not go live within {seconds} s{}", last_look(.last_error.as_deref()))]
    NotLive {
        /// [`Deployer::describe`].
        target: String,
        /// The release's id.
        release: String,
        /// The wait.
        seconds: u64,
        /// The last look failed (the platform unreachable or answering `5xx`): with what.
        last_error: Option<String>,
    },
}

impl Error {
    /// What to do next.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Platform { hint, .. }
            | Error::Refused { hint, .. }
            | Error::Usage { hint, .. }
            | Error::Unsettled { hint, .. }
            | Error::RateLimited { hint, .. } => hint.clone(),
            Error::Unavailable { .. } => Some("the platform may be having trouble: try again in a moment".into()),
            Error::NotLive { .. } => {
                Some("look at the platform's logs; resume the run once the release serves, or undo it".into())
            }
        }
    }

    /// A failed call that may work when repeated ([`Error::Unavailable`],
    /// [`Error::RateLimited`]): a wait for a release looks past it until its deadline.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::RateLimited { .. })
    }

    /// How long the platform asked to be left alone, when it said ([`Error::RateLimited`]).
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

fn last_look(error: Option<&str>) -> String {
    error.map(|e| format!(" (the last look failed: {e})")).unwrap_or_default()
}

/// The module's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A production target that keeps its releases and can make an earlier one live again.
///
/// Calls run on the engine's tokio runtime and must not block its threads. Each must be safe
/// to repeat: a resumed run may call `rollback` again for a release that is already live.
#[async_trait]
pub trait Deployer: Send + Sync {
    /// The target in one line, for plans, logs and the report ("railway service api").
    fn describe(&self) -> String;

    /// The release live now.
    async fn current(&self) -> Result<Release>;

    /// The release built from `commit`, newest first if several; `None` when the platform has
    /// none.
    async fn find(&self, commit: &CommitId) -> Result<Option<Release>>;

    /// Makes `to` the live release (a rollback, or an undo's re-promotion).
    async fn rollback(&self, to: &Release) -> Result<()>;

    /// Waits until `release` serves, at most `timeout`.
    async fn wait_live(&self, release: &Release, timeout: Duration) -> Result<()>;

    /// A deploy newer than the live release that has not ended yet (building, deploying, its
    /// release phase running): it will replace the live release when it ends, so nothing is
    /// decided from [`Deployer::current`] while one is in flight. `None` when none is, and on
    /// targets where the live release already is the one being rolled out (Kubernetes).
    async fn in_flight(&self) -> Result<Option<Release>> {
        Ok(None)
    }

    /// Waits until no deploy is in flight ([`Deployer::in_flight`]), at most `timeout`
    /// ([`Error::NotLive`] naming `pending` when one still is).
    async fn wait_settled(&self, pending: &Release, timeout: Duration) -> Result<()> {
        let _ = (pending, timeout);
        Ok(())
    }

    /// Whether `live` (from [`Deployer::current`]) serves `release`: the same release, or, on
    /// platforms whose rollback makes a new release from an earlier one's image (Railway), one
    /// built from the same commit, or (Kubernetes) a revision a `kubectl rollout restart` made
    /// of it.
    fn serves(&self, live: &Release, release: &Release) -> bool {
        live.id == release.id
    }

    /// Whether [`Deployer::current`] names the release the target is rolling out rather than
    /// one that serves (Kubernetes: the workload's pod template, whatever its pods run). A
    /// release found "live" there is still waited for, as a promotion is: a resumed run whose
    /// rollout had not finished must not take it for done.
    fn current_is_desired(&self) -> bool {
        false
    }

    /// Refuses ([`Error::Refused`]) a promotion of `release` that cannot happen (a paused
    /// Kubernetes Deployment, a revision pruned since): an undo checks it when planned, before
    /// anything changes, as a run's planning does through [`Deployer::find`].
    async fn check_promotable(&self, release: &Release) -> Result<()> {
        let _ = release;
        Ok(())
    }

    /// Whether [`Deployer::set_autodeploy`] works on this target (the freeze after a
    /// rollback: a push to the branch must not deploy the bad release straight back).
    fn switches_autodeploy(&self) -> bool {
        false
    }

    /// For a target without the switch ([`Deployer::switches_autodeploy`] false): why, and what
    /// the operator does instead to keep the bad release from coming back. A plan with
    /// `freeze` on carries it as the risk `no_autodeploy_switch`.
    fn no_autodeploy_switch(&self) -> Option<String> {
        None
    }

    /// Who else deploys to this target and would bring the rolled-back release straight back
    /// (a GitOps controller such as Argo CD or Flux), each with how to stop it: `Some(empty)`
    /// when the target was asked and nothing else deploys it, `None` when the target cannot
    /// tell. Assess and plan show each as the risk `production_auto_sync`; the promote step
    /// warns of each.
    async fn auto_deployers(&self) -> Result<Option<Vec<String>>> {
        Ok(None)
    }

    /// Whether the database downgrade of a `--full` rollback runs on the target (a Kubernetes
    /// Job with the live release's image, where the newer migration files are) instead of
    /// here.
    fn runs_downgrades(&self) -> bool {
        false
    }

    /// Runs the downgrade to `revisions` (empty: `base`) on the target and waits until it
    /// ends; what ran, for the log ("job forge-rollback-downgrade-... with image ..."). A
    /// repeat for the same `run_id` waits for a job of it still running rather than start
    /// another.
    async fn run_downgrade(&self, run_id: &str, revisions: &[String]) -> Result<String> {
        let _ = (run_id, revisions);
        Err(Error::Platform {
            target: self.describe(),
            message: "this target does not run downgrades".to_owned(),
            hint: None,
        })
    }

    /// A downgrade of run `run_id` ([`Deployer::run_downgrade`]) still running on the target:
    /// a Job a run left behind when it was killed or gave up on it. What it is called, for
    /// the log; `None` when none runs.
    async fn running_downgrade(&self, run_id: &str) -> Result<Option<String>> {
        let _ = run_id;
        Ok(None)
    }

    /// Waits until no downgrade of run `run_id` runs on the target ([`Deployer::running_downgrade`]),
    /// at most as long as one may run; [`Error::Refused`] when one still does then (the
    /// database may still be changing: nothing may be decided from it).
    async fn wait_downgrade_ended(&self, run_id: &str) -> Result<()> {
        let _ = run_id;
        Ok(())
    }

    /// Whether the platform's automatic deploys are on (read only: the promote step journals
    /// it before it switches them, so an undo knows what the operator had). A target whose
    /// [`Deployer::switches_autodeploy`] is true implements it with
    /// [`Deployer::set_autodeploy`].
    async fn autodeploy(&self) -> Result<bool> {
        let message = if self.switches_autodeploy() {
            "this target's adapter switches automatic deploys but cannot read them (`Deployer::autodeploy` is not implemented)"
        } else {
            "this target has no automatic-deploy switch"
        };
        Err(Error::Platform { target: self.describe(), message: message.to_owned(), hint: None })
    }

    /// Turns the platform's automatic deploys on or off; returns whether they were on. Safe
    /// to repeat.
    async fn set_autodeploy(&self, on: bool) -> Result<bool> {
        let _ = on;
        Err(Error::Platform {
            target: self.describe(),
            message: "this target has no automatic-deploy switch".to_owned(),
            hint: None,
        })
    }
}

/// How long a promoted release may take to go live.
pub const LIVE_TIMEOUT: Duration = Duration::from_secs(600);
