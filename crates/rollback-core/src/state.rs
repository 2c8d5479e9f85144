//! Where forge-rollback keeps its own state, outside the tracked tree.
//!
//! By default `<git common dir>/forge-rollback/`: no `git reset`, `git clean -ffdx` or checkout
//! can reach it and nothing commits it (the old scripts kept backups in the work tree, where the
//! next `git clean` deleted them). Layout:
//!
//! ```text
//! forge-rollback/            0700
//!   lock                     holder of the run lock (pid, host, start time)
//!   runs/<run-id>/journal.jsonl
//!   runs/<run-id>/run.json   the run's outcome, written last
//!   runs/<run-id>/run.log    log lines in the seed's format
//!   backups/blobs/ab/cdef…   content-addressed blobs
//!   backups/snapshots/<id>.json
//! ```
//!
//! All of it must belong to the user running forge-rollback, with no symlinks: [`StateDir::ensure`]
//! checks the folders above (and the lock file, when there is one) before any command writes,
//! and refuses with [`Error::Refused`] otherwise. The lock and the backup store check again what
//! they open, file by file (see [`fsutil`](crate::fsutil)).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fsutil::{self, IoError};

/// The state folder and the paths inside it.
#[derive(Clone, Debug)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    /// Uses `root` (created with mode `0700` by [`StateDir::ensure`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The default location for a repository whose common git folder is `git_dir`.
    pub fn default_for(git_dir: &Path) -> Self {
        Self::new(git_dir.join("forge-rollback"))
    }

    /// Creates the folder (and `runs/`, `backups/`, its `blobs/` and `snapshots/`) with mode
    /// `0700` if missing, and checks that it, those folders and the lock file belong to the user
    /// running forge-rollback and are no symlinks. Refuses ([`Error::Refused`]) before
    /// changing anything otherwise: the state's owner decides what an undo writes. A file where
    /// one of those folders belongs is an I/O error, as a damaged state folder always was.
    pub fn ensure(&self) -> Result<()> {
        self.checked(true)
    }

    /// [`StateDir::ensure`]; `true` when the folder did not exist before this call made it.
    pub fn ensure_new(&self) -> Result<bool> {
        let existed = std::fs::symlink_metadata(&self.root).is_ok();
        self.ensure()?;
        Ok(!existed)
    }

    /// Takes back what a command that changed nothing made of a state folder that did not
    /// exist before it ([`StateDir::ensure_new`]): the folders of the layout that are empty,
    /// innermost first, then the root if it is empty. Anything with content stays (a run, a
    /// backup, another process's lock).
    pub fn remove_if_empty(&self) {
        let backups = self.backups_dir();
        for dir in [
            backups.join("blobs"),
            backups.join("snapshots"),
            backups,
            self.runs_dir(),
            self.root.join("tmp"),
            self.root.join("dumps"),
        ] {
            let _ = std::fs::remove_dir(dir);
        }
        let _ = std::fs::remove_dir(&self.root);
    }

    /// The checks of [`StateDir::ensure`], for commands that only read: whatever of the state
    /// folder exists belongs to the user and has no symlinks. Creates nothing and changes no
    /// mode: a command that reads leaves the machine as it found it.
    pub fn check(&self) -> Result<()> {
        self.checked(false)
    }

    fn checked(&self, create: bool) -> Result<()> {
        let backups = self.backups_dir();
        let checked = (|| -> Result<(), IoError> {
            // Everything first, so that a refusal changes nothing (not even a mode).
            for dir in [&self.root, &self.runs_dir(), &backups, &backups.join("blobs"), &backups.join("snapshots")] {
                fsutil::check_dir(dir)?;
            }
            fsutil::check_file(&self.lock_path())?;
            if !create {
                return Ok(());
            }
            fsutil::create_private_dir(&self.root)?;
            fsutil::create_private_dir(&self.runs_dir())?;
            fsutil::create_private_dir(&backups)?;
            // The store's own folders too: a `Rollback` keeps its store open, and a refused run
            // takes back the folders it made (`remove_if_empty`) under it.
            fsutil::create_private_dir(&backups.join("blobs"))?;
            fsutil::create_private_dir(&backups.join("snapshots"))
        })();
        checked.map_err(|e| match e.unsafe_state() {
            // A file where a folder belongs is damage, not someone else's hand: an I/O failure.
            Some(refusal) if !matches!(refusal.problem, fsutil::Problem::Kind { .. }) => Error::refused(
                format!("refusing to use the state folder `{}`: {refusal}", self.root.display()),
                Some(refusal.hint().into()),
            ),
            _ => e.into(),
        })
    }

    /// The root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The lock file.
    pub fn lock_path(&self) -> PathBuf {
        self.root.join("lock")
    }

    /// The push lock file: held while a `git push` of `[deploy]` runs (`lock::PushLock`).
    pub fn push_lock_path(&self) -> PathBuf {
        self.root.join("push.lock")
    }

    /// Folder of all runs.
    pub fn runs_dir(&self) -> PathBuf {
        self.root.join("runs")
    }

    /// Folder of one run.
    pub fn run_dir(&self, run_id: &str) -> PathBuf {
        self.runs_dir().join(run_id)
    }

    /// The backup store's root.
    pub fn backups_dir(&self) -> PathBuf {
        self.root.join("backups")
    }
}

/// `n` random lowercase hex digits from the OS's random source (falls back to time and pid).
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0_u8; n.div_ceil(2)];
    let ok = File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)).is_ok();
    if !ok {
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        let len = bytes.len();
        bytes.copy_from_slice(&blake3::hash(seed.as_bytes()).as_bytes()[..len]);
    }
    let mut hex = String::with_capacity(n + 1);
    for b in &bytes {
        use std::fmt::Write as _;
        let _ = write!(hex, "{b:02x}");
    }
    hex.truncate(n);
    hex
}
