//! Integration tests of rollback-core against real git repositories and real files.

mod backup;
mod db;
mod engine;
mod parsers;
mod report;
mod vcs;
