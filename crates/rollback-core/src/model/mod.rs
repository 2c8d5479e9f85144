//! The shared vocabulary of the crate: the words every stage uses (levels, run kinds and
//! statuses, risk codes) and nothing else. This module imports nothing of the crate, so any
//! module can use it without creating an import cycle.

mod loss;
mod risk;
mod run;

pub use loss::{DataLoss, DbFingerprint, LossKind};
pub use risk::{Risk, RiskCode, RiskSeverity};
pub use run::{Level, RunKind, RunStatus, Severity};
