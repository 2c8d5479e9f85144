//! Registry (stub).
/// Registry errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Parse.
    #[error("bad registry")]
    Parse,
}
