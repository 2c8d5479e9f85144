//! Integration tests of the `forge-rollback` binary against real git repositories in temp dirs.

mod bad_input;
mod big_files;
mod commands;
mod common;
mod completions;
mod crash;
mod crash_full;
mod db_lock;
mod edits_since;
mod full;
mod lock;
mod manual;
mod old_journal;
mod progress;
mod registry;
mod rehearse;
mod reliability;
mod roundtrip;
mod secrets;
mod services;
mod shapes;
mod snapshots;
mod watch;
