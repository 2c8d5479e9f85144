//! Backup store and snapshot tests.
