//! Risks an assessment finds: a stable code, a severity and a message for people.

use serde::{Deserialize, Serialize};

/// How serious a risk is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RiskSeverity {
    /// For information.
    Info,
    /// Needs attention after the rollback.
    Medium,
    /// A run refuses it, or it leaves the service broken.
    High,
}

macro_rules! risk_codes {
    ($($(#[doc = $doc:literal])* $variant:ident = $code:literal,)*) => {
        /// A risk's stable identifier; serialized as its `snake_case` code (`not_ancestor`, ...).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        #[non_exhaustive]
        pub enum RiskCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl RiskCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [RiskCode] = &[$(RiskCode::$variant,)*];

            /// The code as written in JSON (`not_ancestor`, ...).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(RiskCode::$variant => $code,)*
                }
            }
        }
    };
}

risk_codes! {
    /// HEAD is detached: there is no branch to move.
    DetachedHead = "detached_head",
    /// A merge, rebase, cherry-pick, revert or bisect is in progress.
    OperationInProgress = "operation_in_progress",
    /// The target is HEAD: only uncommitted changes would be rolled back.
    TargetIsHead = "target_is_head",
    /// The target is not an ancestor of HEAD.
    NotAncestor = "not_ancestor",
    /// The target is marked bad in the known-good registry.
    TargetKnownBad = "target_known_bad",
    /// The target is not a verified known-good commit.
    TargetUnverified = "target_unverified",
    /// Migration files differ between HEAD and the target.
    MigrationsChanged = "migrations_changed",
    /// Dependency files differ between HEAD and the target.
    DependenciesChanged = "dependencies_changed",
    /// Env or config files differ between HEAD and the target.
    EnvChanged = "env_changed",
    /// A submodule's recorded commit differs between HEAD and the target: the reset moves the
    /// record, not the submodule's work tree.
    SubmoduleChanged = "submodule_changed",
    /// Untracked or ignored paths sit where the target has files.
    UntrackedAtTargetPaths = "untracked_at_target_paths",
    /// The tree has uncommitted work (it is snapshotted).
    DirtyTree = "dirty_tree",
    /// Installed dependencies (`node_modules/`, `.venv/`) sit untracked and not ignored in the
    /// work tree: the run removes them with the other untracked files, and the app may not
    /// start without them until they are reinstalled or the run is undone.
    UntrackedDependencies = "untracked_dependencies",
    /// The repository is a partial clone (`git clone --filter=blob:none`) that lacks blobs of
    /// files the reset writes: the `git-cli` back-end fetches them before it changes anything
    /// (and refuses if it cannot); the `git2` back-end refuses.
    BlobsNotFetched = "blobs_not_fetched",
    /// Files the reset writes are stored in git LFS and their objects are not on this machine:
    /// the `git-cli` back-end fetches them before it changes anything (and refuses if it
    /// cannot, as when the LFS server is down); the `git2` back-end refuses LFS files anyway.
    LfsObjectsNotFetched = "lfs_objects_not_fetched",
    /// Two tracked names differ only in letter case (`lib.py`, `Lib.py`) while
    /// `core.ignorecase` is set: the `git2` back-end refuses (its checkout takes them for one
    /// file).
    CaseOnlyNames = "case_only_names",
    /// Files the rollback changes are immutable or append-only (`chattr +i`, `+a`), or sit in
    /// folders this user may not write (`chmod 555`, another user's folder, a read-only
    /// mount): a run that moves the code refuses, nothing changed.
    FilesNotChangeable = "files_not_changeable",
    /// An earlier run or undo stopped half-way (interrupted, or failed after changing
    /// something): a new run is refused until it is finished with `resume` or taken back
    /// with `undo`. Said by `assess` and `plan`.
    UnfinishedRun = "unfinished_run",
    /// The branch the rollback moves is also checked out in another worktree of the
    /// repository (`git worktree add --force`): its HEAD moves with the branch while its files
    /// and index stay where they are, so that worktree shows the rolled-back-from release as
    /// staged changes.
    BranchInOtherWorktree = "branch_in_other_worktree",
    /// The database cannot be reached.
    DbUnreachable = "db_unreachable",
    /// The migration graph has several heads.
    MultipleHeads = "multiple_heads",
    /// The database is at a revision newer than HEAD's migration files.
    DbAheadOfCode = "db_ahead_of_code",
    /// The database is at a revision no migration file knows.
    UnknownDbRevision = "unknown_db_revision",
    /// No downgrade path leads from the database's revision to the target's.
    NoDowngradePath = "no_downgrade_path",
    /// A downgrade on the path cannot restore the data it removes.
    IrreversibleDowngrade = "irreversible_downgrade",
    /// A migration on the path dropped tables or columns: its downgrade brings the schema back,
    /// not the data.
    DestructiveUpgrade = "destructive_upgrade",
    /// A migration file was edited after it was applied.
    EditedMigration = "edited_migration",
    /// The database could not be assessed at all.
    DbNotAssessed = "db_not_assessed",
    /// No env was recorded with the target.
    EnvNotRecorded = "env_not_recorded",
    /// The env files differ from those recorded with the target.
    EnvDiffers = "env_differs",
    /// A full rollback cannot restore the env: the target's record is damaged (or an
    /// unreadable record may be its newest), or a folder is where an env file goes.
    EnvNotRestorable = "env_not_restorable",
    /// The downgrade drops tables or columns that hold rows (the data-loss forecast).
    DowngradeDropsData = "downgrade_drops_data",
    /// The data-loss forecast could not be made: the database could not be copied, or the
    /// downgrade failed on the copy.
    DataLossUnknown = "data_loss_unknown",
    /// A migration of the downgrade, run on a copy by the data-loss forecast, left something
    /// for the operator to know, as the run's downgrade will: with the native migrator on
    /// SQLite, rows referencing rows that are not there (it runs migrations with foreign keys
    /// off, as SQLite's own tools do).
    DowngradeWarning = "downgrade_warning",
    /// The production target has no automatic-deploy switch to turn off after the rollback
    /// (Fly.io, Heroku): a push or CI deploy can bring the bad release back.
    NoAutodeploySwitch = "no_autodeploy_switch",
    /// Something else deploys the production target (Argo CD or Flux auto-sync) and would
    /// re-apply the rolled-back release.
    ProductionAutoSync = "production_auto_sync",
    /// `[deploy] strategy = "push"` puts the target commit itself on the remote branch, with
    /// its older registry or configuration file: the bad marks made since are gone from the
    /// branch (a server's `gate` lets those releases through again). `revert-commit` keeps
    /// them.
    PushResetsToolFiles = "push_resets_tool_files",
}

impl std::fmt::Display for RiskCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for RiskCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Something that can go wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Risk {
    /// Stable identifier.
    pub code: RiskCode,
    /// How serious.
    pub severity: RiskSeverity,
    /// For people.
    pub message: String,
}

/// How a `data_loss_unknown` risk's message ends, after why the forecast could not be made.
const LOSS_UNKNOWN: &str = ": what the downgrade destroys is unknown";

impl Risk {
    /// A risk.
    pub fn new(code: RiskCode, severity: RiskSeverity, message: impl Into<String>) -> Self {
        Self { code, severity, message: message.into() }
    }

    /// A `data_loss_unknown` risk: the data-loss forecast could not be made, for the reason
    /// `why` (a whole clause: "the data-loss forecast could not be made (…)").
    pub(crate) fn data_loss_unknown(why: impl std::fmt::Display) -> Self {
        Self::new(RiskCode::DataLossUnknown, RiskSeverity::Medium, format!("{why}{LOSS_UNKNOWN}"))
    }

    /// Why the data-loss forecast could not be made, for a `data_loss_unknown` risk: its
    /// message without the words that say what follows.
    pub(crate) fn why(&self) -> &str {
        self.message.strip_suffix(LOSS_UNKNOWN).unwrap_or(&self.message)
    }
}
