//! `rollback-core`: the engine, domain model and backends of forge-rollback.
//!
//! Every decision lives here so that the `forge-rollback` CLI and the `forge_rollback` Python
//! module behave identically: they parse input, call [`Rollback`], and print what comes back.
//!
//! The pieces, in the order a rollback uses them:
//! - [`config`]: one TOML file, loaded and validated before anything changes;
//! - [`registry`]: the known-good commit registry (the seed's `known-good-commits.json`);
//! - [`assess`] → [`assess::Assessment`], [`plan`] → [`plan::Plan`]: pure, serializable;
//! - [`engine`]: executes a plan under a [`lock`], writing a [`journal`] so a crash can be resumed
//!   or undone, snapshotting everything it changes into a [`backup`] store first;
//! - [`vcs`], [`db`], [`verify`]: the pluggable backends.
#![deny(missing_docs)]

pub mod assess;
pub mod backup;
pub mod config;
pub mod db;
pub mod deploy;
pub mod engine;
pub mod env;
pub mod error;
pub mod event;
pub mod fsutil;
pub mod http;
pub mod journal;
pub mod lock;
pub mod notify;
pub mod paths;
pub mod plan;
pub mod prompt;
pub mod registry;
pub mod report;
pub mod restart;
pub mod rt;
pub mod secret;
pub mod state;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod vcs;
pub mod verify;
pub mod watch;

pub use engine::{Rollback, RunOptions, RunOutcome, RunStatus};
pub use error::{Error, ErrorKind, Result};
