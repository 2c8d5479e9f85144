//! `rollback-core`: the engine, domain model and backends of forge-rollback.
//!
//! Every decision lives here so that the `forge-rollback` CLI and the `forge_rollback` Python
//! module behave identically: they parse input, call [`Rollback`], and print what comes back.
//!
//! The pieces, in the order a rollback uses them:
//! - [`config`]: one TOML file, loaded and validated before anything changes;
//! - [`registry`]: the known-good commit registry (the seed's `known-good-commits.json`);
//! - [`assess`] → [`assess::Assessment`], [`plan`] → [`plan::Plan`]: pure, serializable;
//! - the engine behind [`Rollback`]: one pipeline (prepare → lock → settle → execute →
//!   record) for runs, resumes and undos, writing a [`journal`] of typed [`StepDetail`]s so a
//!   crash can be resumed or undone, snapshotting everything it changes into a [`backup`]
//!   store first;
//! - the seams, each a trait object chosen at run time: [`VcsBackend`], [`DbMigrator`],
//!   [`BackupStore`], [`ServiceVerifier`], plus the [`Observer`] and [`Prompter`] callbacks.
//!
//! # Embedding
//!
//! A rollback to a known-good tag with a verifier of your own, then its undo (the same flow
//! as `examples/embed.rs`):
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use rollback_core::{AutoConfirm, Level, Rollback, RunOptions, RunStatus, ServiceVerifier};
//! use rollback_core::event::{Event, Observer};
//! use rollback_core::verify::{CheckResult, VerificationReport};
//!
//! /// Healthy when the app's code says so; a real one would call the service.
//! struct Healthy(std::path::PathBuf);
//!
//! #[async_trait::async_trait]
//! impl ServiceVerifier for Healthy {
//!     async fn verify(&self, _only: Option<&[String]>) -> VerificationReport {
//!         let passed = std::fs::read_to_string(&self.0).is_ok_and(|s| s.contains("healthy"));
//!         let check = CheckResult {
//!             name: "app".into(), kind: "custom".into(), passed, attempts: 1, latency_ms: 0,
//!             status: if passed { "passed" } else { "failed" }.into(), reason: String::new(), metric: None,
//!         };
//!         VerificationReport {
//!             passed, started_at: rollback_core::time::Timestamp::now(), duration_ms: 0, checks: vec![check],
//!         }
//!     }
//!     fn check_names(&self) -> Vec<String> {
//!         vec!["app".into()]
//!     }
//! }
//!
//! /// Prints each step as it ends.
//! struct Print;
//! impl Observer for Print {
//!     fn event(&self, event: &Event) {
//!         if let Event::StepFinished { step, ok, .. } = event {
//!             eprintln!("{step}: {}", if *ok { "ok" } else { "FAILED" });
//!         }
//!     }
//! }
//!
//! // A throwaway repository: v1 is healthy, the commit on top is not.
//! let dir = tempfile::tempdir()?;
//! let repo = git2::Repository::init(dir.path())?;
//! let sig = git2::Signature::now("Doc", "doc@invalid")?;
//! let mut parent = None;
//! for (text, msg) in [("print('healthy')", "v1"), ("raise SystemExit(1)", "v2")] {
//!     std::fs::write(dir.path().join("app.py"), text)?;
//!     let mut index = repo.index()?;
//!     index.add_path(std::path::Path::new("app.py"))?;
//!     let tree = repo.find_tree(index.write_tree()?)?;
//!     index.write()?;
//!     let parents: Vec<git2::Commit<'_>> = parent.iter().map(|p| repo.find_commit(*p)).collect::<Result<_, _>>()?;
//!     let id = repo.commit(Some("HEAD"), &sig, &sig, msg, &tree, &parents.iter().collect::<Vec<_>>())?;
//!     if msg == "v1" {
//!         repo.tag_lightweight("v1", &repo.find_object(id, None)?, false)?;
//!     }
//!     parent = Some(id);
//! }
//!
//! let rb = Rollback::builder(dir.path()).verifier(Arc::new(Healthy(dir.path().join("app.py")))).build()?;
//! let opts = RunOptions { level: Some(Level::Fast), target: Some("v1".into()), ..RunOptions::default() };
//! let run = rb.run(&opts, &AutoConfirm, &Print)?;
//! assert_eq!(run.status, RunStatus::Succeeded);
//! assert_eq!(std::fs::read_to_string(dir.path().join("app.py"))?, "print('healthy')");
//!
//! // Every rollback can be undone: the broken release is back, and verification says so.
//! let undo = rb.undo(run.run_id.as_deref().unwrap(), &AutoConfirm, &Print)?;
//! assert_eq!(undo.status, RunStatus::VerificationFailed);
//! assert_eq!(std::fs::read_to_string(dir.path().join("app.py"))?, "raise SystemExit(1)");
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod assess;
pub mod backup;
pub mod config;
pub mod db;
pub mod deploy;
pub mod detail;
mod dotenv;
mod engine;
pub mod env;
pub mod error;
pub mod event;
mod failpoint;
mod fsutil;
pub mod gate;
pub mod hint;
mod http;
mod immutable;
pub mod journal;
pub mod lock;
pub mod model;
pub mod notify;
mod outcome;
pub mod paths;
pub mod plan;
pub mod platform;
pub mod production;
pub mod prompt;
pub mod registry;
pub mod rehearse;
pub mod report;
pub mod restart;
pub mod rt;
pub mod secret;
pub mod signals;
pub(crate) mod state;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
mod tmpdir;
mod unwritable;
pub mod vcs;
pub mod verify;
pub mod watch;

pub use backup::BackupStore;
pub use db::DbMigrator;
pub use detail::{FailureDetail, ProgressDetail, StepDetail};
pub use engine::{DatabaseUpgrade, Rollback, RollbackBuilder, RunOptions, UndoOptions};
pub use error::{Error, ErrorKind, Result};
pub use event::{Event, Observer};
pub use fsutil::IoError;
pub use gate::Gate;
pub use model::{DataLoss, DbFingerprint, Level, LossKind, Risk, RiskCode, RiskSeverity, RunKind, RunStatus, Severity};
pub use outcome::{RunOutcome, RunSummary, StepReport};
pub use production::Deployer;
pub use prompt::{AutoConfirm, Prompter};
pub use rehearse::{Rehearsal, RehearseOptions};
pub use vcs::VcsBackend;
pub use verify::{ServiceVerifier, VerificationReport};
