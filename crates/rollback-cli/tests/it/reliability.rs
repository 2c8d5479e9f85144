//! Reliability matrix: generated dirty states, concurrency.
