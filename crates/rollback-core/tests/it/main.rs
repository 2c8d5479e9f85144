//! Integration tests of rollback-core against real git repositories and real files.

mod alembic_env_url;
mod alembic_layout;
mod backup;
mod db;
mod db_lock;
mod deploy;
mod engine;
mod full;
mod journal_compat;
mod kept;
mod notify;
mod parsers;
mod platform_heroku;
mod platform_railway;
mod platform_render;
mod production;
mod rehearse;
mod report;
mod restart;
mod state_security;
mod vcs;
mod verify;
mod verify_http;
mod verify_kinds;
