//! The native SQL migrator: `NNNN_name.up.sql` / `NNNN_name.down.sql` files, a tracking table
//! with checksums, each migration in its own transaction, a PostgreSQL advisory lock.
