//! assess (in progress).
