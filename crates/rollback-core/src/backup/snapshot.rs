//! Capturing and restoring work-tree paths (in progress).
