//! The Alembic migrator: the project's real Alembic (`python -m alembic -c alembic.ini`),
//! revisions read from the database's `alembic_version` table, the revision graph parsed from
//! the migration files (at HEAD from the tree, at other commits through the VCS backend).
