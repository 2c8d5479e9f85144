//! Incident reports rendered from real runs.
