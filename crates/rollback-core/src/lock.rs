//! The run lock (stub, replaced below).
/// Lock errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Held by another process.
    #[error("another rollback is running (pid {pid})")]
    Held {
        /// Holder pid.
        pid: u32,
    },
}
impl Error {
    /// Hint.
    pub fn hint(&self) -> Option<String> {
        None
    }
}
