//! The on-disk backup store (in progress).
