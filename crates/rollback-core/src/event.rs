//! event (in progress).
