//! How the native migrator runs a migration on SQLite: with foreign keys as the project's own
//! tools run it, and what it leaves of them said.
//!
//! SQLite leaves foreign keys off unless a connection turns them on, and so do its `sqlite3`
//! shell, Python's `sqlite3` and Alembic; its documented way to change a table (create the new
//! one, copy the rows, drop the old one, rename) needs them off. The SQLite built into
//! forge-rollback turns them on by default: a down migration that rebuilt a parent table then
//! cascade-deleted the rows of the tables referencing it (`ON DELETE CASCADE`), or failed
//! (`FOREIGN KEY constraint failed`), where the same file run by those tools changes no row of
//! them. So a migration runs with foreign keys off, unless `database.sqlite_foreign_keys` asks
//! for them, and the references it leaves broken are counted (`PRAGMA foreign_key_check`,
//! before it and after it, inside its transaction) and said in a warning, not refused: its own
//! tooling would not refuse it either.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use rusqlite::Connection;

/// Turns foreign key enforcement on or off for `conn`'s next transactions (the setting cannot
/// change inside one).
pub(super) fn enforce_foreign_keys(conn: &Connection, on: bool) -> rusqlite::Result<()> {
    conn.execute_batch(if on { "PRAGMA foreign_keys = ON" } else { "PRAGMA foreign_keys = OFF" })
}

/// Rows whose reference finds no parent row, per (table, parent table).
pub(super) type Broken = BTreeMap<(String, String), u64>;

/// The references broken in the database now, counted per table and parent; `Err` when SQLite
/// cannot check them (a foreign key whose parent columns are no key: "foreign key mismatch").
pub(super) fn broken_references(conn: &Connection) -> Result<Broken, String> {
    let read = || -> rusqlite::Result<Broken> {
        let mut stmt =
            conn.prepare("SELECT \"table\", parent, count(*) FROM pragma_foreign_key_check GROUP BY 1, 2")?;
        let rows = stmt.query_map([], |r| {
            Ok(((r.get::<_, String>(0)?, r.get::<_, String>(1)?), u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0)))
        })?;
        rows.collect()
    };
    read().map_err(|e| e.to_string())
}

/// What a migration (`what`: `migration 0002's downgrade (…down.sql)`) left broken that was not
/// broken before it, as a warning; `None` when nothing. `before` could not be read: nothing to
/// compare with, nothing said.
pub(super) fn warning(what: &str, before: &Result<Broken, String>, after: &Result<Broken, String>) -> Option<String> {
    let Ok(before) = before else { return None };
    let after = match after {
        Ok(after) => after,
        Err(e) => {
            return Some(format!(
                "{what} left foreign keys SQLite cannot check any more ({e}): `PRAGMA foreign_key_check` fails on the database"
            ));
        }
    };
    let mut new = String::new();
    for ((table, parent), n) in after {
        let more = n.saturating_sub(before.get(&(table.clone(), parent.clone())).copied().unwrap_or(0));
        if more > 0 {
            if !new.is_empty() {
                new.push_str(", ");
            }
            let _ = write!(new, "{more} row(s) of `{table}` referencing rows of `{parent}`");
        }
    }
    (!new.is_empty()).then(|| {
        format!(
            "{what} left {new} that are not there: it ran with foreign keys off, as SQLite and its own tools run migrations (`PRAGMA foreign_key_check` lists the rows; `database.sqlite_foreign_keys = true` runs migrations with them enforced)"
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(sql: &str) -> Connection {
        let c = Connection::open_in_memory().unwrap();
        enforce_foreign_keys(&c, false).unwrap();
        c.execute_batch(sql).unwrap();
        c
    }

    #[test]
    fn names_only_the_references_a_migration_broke() {
        let c = db("CREATE TABLE users (id INTEGER PRIMARY KEY);
             CREATE TABLE posts (id INTEGER PRIMARY KEY, user_id REFERENCES users (id));
             INSERT INTO users VALUES (1), (2);
             INSERT INTO posts VALUES (1, 1), (2, 2), (3, 99), (4, NULL);");
        let before = broken_references(&c);
        assert_eq!(before, Ok([(("posts".to_owned(), "users".to_owned()), 1)].into()), "post 3 was an orphan already");
        assert_eq!(warning("m", &before, &before), None);
        c.execute_batch("DELETE FROM users WHERE id = 2").unwrap();
        let after = broken_references(&c);
        let w = warning("migration 0002's downgrade", &before, &after).unwrap();
        assert!(
            w.starts_with(
                "migration 0002's downgrade left 1 row(s) of `posts` referencing rows of `users` that are not there"
            ),
            "{w}"
        );
    }

    #[test]
    fn a_check_sqlite_cannot_make_is_said_after_not_before() {
        let c = db("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE);
             CREATE TABLE posts (id INTEGER PRIMARY KEY, email REFERENCES users (email));");
        let before = broken_references(&c);
        c.execute_batch(
            "CREATE TABLE u2 (id INTEGER PRIMARY KEY, email TEXT); DROP TABLE users; ALTER TABLE u2 RENAME TO users;",
        )
        .unwrap();
        let after = broken_references(&c);
        assert!(after.as_ref().is_err_and(|e| e.contains("foreign key mismatch")), "{after:?}");
        assert!(warning("m", &before, &after).unwrap().contains("cannot check"));
        assert_eq!(warning("m", &after, &after), None, "broken before: nothing to compare with");
    }
}
