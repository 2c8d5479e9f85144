//! Engine (in progress).
/// Handle.
pub struct Rollback;
/// Options.
pub struct RunOptions;
/// Outcome.
pub struct RunOutcome;
/// Status.
pub enum RunStatus {}
