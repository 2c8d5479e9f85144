//! Integration tests of the `forge-rollback` binary against real git repositories in temp dirs.

mod bad_input;
mod big_files;
mod commands;
mod common;
mod crash;
mod crash_full;
mod crash_rows;
mod db_lock;
mod edits_since;
mod full;
mod lock;
mod manual;
mod old_journal;
mod platforms;
mod registry;
mod rehearse;
mod reliability;
mod roundtrip;
mod rows;
mod secrets;
mod services;
mod shapes;
mod snapshots;
mod watch;
mod watch_prometheus;
