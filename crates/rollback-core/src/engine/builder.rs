//! [`RollbackBuilder`]: a [`Rollback`] over backends the caller brings.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Rollback;
use crate::backup::BackupStore;
use crate::config::Config;
use crate::db::DbMigrator;
use crate::error::Result;
use crate::production::Deployer;
use crate::vcs::{self, BackendKind, VcsBackend};
use crate::verify::ServiceVerifier;

/// Builds a [`Rollback`]. Every backend not given comes from the configuration, as
/// [`Rollback::open`] does it: git through `[vcs] backend`, the database through
/// `[database]`, the backup store under the state folder, the verifier from `[[checks]]`.
///
/// ```no_run
/// # fn main() -> rollback_core::Result<()> {
/// use std::sync::Arc;
/// # let my_verifier: Arc<dyn rollback_core::verify::ServiceVerifier> = todo!();
/// let rb = rollback_core::Rollback::builder("/srv/app").verifier(my_verifier).build()?;
/// # Ok(()) }
/// ```
#[must_use]
pub struct RollbackBuilder {
    dir: PathBuf,
    config_file: Option<PathBuf>,
    config: Option<Config>,
    vcs: Option<Arc<dyn VcsBackend>>,
    db: Option<Arc<dyn DbMigrator>>,
    store: Option<Arc<dyn BackupStore>>,
    verifier: Option<Arc<dyn ServiceVerifier>>,
    deployer: Option<Arc<dyn Deployer>>,
}

impl std::fmt::Debug for RollbackBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RollbackBuilder").field("dir", &self.dir).finish_non_exhaustive()
    }
}

impl Rollback {
    /// A builder for the repository containing `dir` (the work tree, or any folder in it).
    pub fn builder(dir: impl AsRef<Path>) -> RollbackBuilder {
        RollbackBuilder {
            dir: dir.as_ref().to_path_buf(),
            config_file: None,
            config: None,
            vcs: None,
            db: None,
            store: None,
            verifier: None,
            deployer: None,
        }
    }
}

impl RollbackBuilder {
    /// Reads the configuration from this file (relative paths are taken from the builder's
    /// folder) instead of discovering `forge-rollback.toml`.
    pub fn config_file(mut self, path: impl AsRef<Path>) -> Self {
        self.config_file = Some(path.as_ref().to_path_buf());
        self
    }

    /// Uses this configuration, already loaded (nothing is read from disk for it).
    pub fn config(mut self, config: Config) -> Self {
        self.config = Some(config);
        self
    }

    /// The version-control backend. Its work tree is the one rolled back.
    pub fn vcs(mut self, vcs: Arc<dyn VcsBackend>) -> Self {
        self.vcs = Some(vcs);
        self
    }

    /// The database migrator of full rollbacks.
    pub fn db(mut self, db: Arc<dyn DbMigrator>) -> Self {
        self.db = Some(db);
        self
    }

    /// Where snapshots go.
    pub fn store(mut self, store: Arc<dyn BackupStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Who verifies the services after a run (and for [`Rollback::verify`]).
    pub fn verifier(mut self, verifier: Arc<dyn ServiceVerifier>) -> Self {
        self.verifier = Some(verifier);
        self
    }

    /// The production target runs promote an earlier release on (a PaaS, a cluster).
    pub fn deployer(mut self, deployer: Arc<dyn Deployer>) -> Self {
        self.deployer = Some(deployer);
        self
    }

    /// Opens the repository and checks the configuration; changes nothing on disk.
    pub fn build(self) -> Result<Rollback> {
        let given = self.vcs.is_some();
        let vcs = match self.vcs {
            Some(v) => v,
            None => Arc::from(vcs::open(BackendKind::Git2, &self.dir)?),
        };
        let config = if let Some(c) = self.config {
            c
        } else {
            let file = self.config_file.map(|c| if c.is_absolute() { c } else { self.dir.join(c) });
            Config::discover(vcs.workdir(), file.as_deref())?
        };
        // `[vcs] backend = "git-cli"` applies when no backend was given.
        let vcs = if !given && config.vcs.backend == BackendKind::GitCli {
            Arc::from(vcs::open(BackendKind::GitCli, vcs.workdir())?)
        } else {
            vcs
        };
        let mut rb = Rollback::from_parts(vcs, config)?;
        if let Some(db) = self.db {
            rb = rb.with_db(db);
        }
        if let Some(store) = self.store {
            rb = rb.with_store(store);
        }
        if let Some(v) = self.verifier {
            rb = rb.with_verifier(v);
        }
        // A deployer given wins over the one `[deploy] strategy` names.
        if let Some(d) = self.deployer {
            rb = rb.with_deployer(d);
        }
        Ok(rb)
    }
}
