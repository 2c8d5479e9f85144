//! Incident reports (in progress).
