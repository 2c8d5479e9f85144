//! Journal (stub).
/// Journal errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Unknown run.
    #[error("no run `{run_id}`")]
    UnknownRun {
        /// Run id.
        run_id: String,
    },
}
