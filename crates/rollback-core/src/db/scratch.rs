//! A throwaway copy of a database, for rehearsals: a SQLite file written with the online
//! backup API, or a temporary PostgreSQL database on the same server filled by dump and
//! restore (`CREATE DATABASE … TEMPLATE` fails while the application is connected). The
//! original is only read.

use std::path::Path;

use super::url::DbUrl;
use super::{Error, Result, UrlDatabase, sqlite};
use crate::secret::Secret;

/// A copy of a database that is removed again: the PostgreSQL database is dropped by
/// [`ScratchCopy::remove`], or when the value is dropped (errors and panics included).
pub struct ScratchCopy {
    copy: UrlDatabase,
    /// The original, to connect to when dropping the PostgreSQL copy.
    origin: UrlDatabase,
    /// The temporary PostgreSQL database still to drop.
    pg_name: Option<String>,
    method: &'static str,
}

impl std::fmt::Debug for ScratchCopy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScratchCopy")
            .field("copy", &self.copy.describe())
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// [`ScratchCopy::method`] of a SQLite copy.
pub const METHOD_SQLITE: &str = "sqlite-backup";
/// [`ScratchCopy::method`] of a PostgreSQL copy.
pub const METHOD_PG: &str = "pg-temporary-database";

impl ScratchCopy {
    /// The copy, with the original's settings.
    pub fn database(&self) -> &UrlDatabase {
        &self.copy
    }

    /// `sqlite-backup` or `pg-temporary-database`.
    pub fn method(&self) -> &'static str {
        self.method
    }

    /// Drops the temporary PostgreSQL database now (a SQLite copy is a file in the caller's
    /// folder: nothing to do).
    pub async fn remove(mut self) -> Result<()> {
        match self.pg_name.take() {
            Some(name) => drop_pg(&self.origin, &name).await,
            None => Ok(()),
        }
    }
}

impl Drop for ScratchCopy {
    fn drop(&mut self) {
        if let Some(name) = self.pg_name.take() {
            let origin = self.origin.clone();
            let _ = crate::rt::block_on(async move { drop_pg(&origin, &name).await });
        }
    }
}

async fn drop_pg(origin: &UrlDatabase, name: &str) -> Result<()> {
    let pg = origin.pg();
    let client = pg.connect().await?;
    pg.within("dropping the rehearsal's temporary database", async {
        let forced = client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
        match forced {
            Ok(()) => Ok(()),
            // Before PostgreSQL 13 there is no `WITH (FORCE)`; nobody else knows the name.
            Err(_) => {
                client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\"")).await.map_err(|e| pg.query_err(&e))
            }
        }
    })
    .await
}

impl UrlDatabase {
    /// Copies this database: SQLite into the new file `sqlite_dest` through the online backup
    /// API (a consistent copy while the app writes, integrity-checked); PostgreSQL into a new
    /// database `fr_rehearse_<random>` on the same server, restored from a `pg_dump -Fc`
    /// archive written into the folder `work`. Needs the right to create databases.
    pub async fn scratch_copy(&self, sqlite_dest: &Path, work: &Path) -> Result<ScratchCopy> {
        match self.url() {
            DbUrl::Sqlite { path } => {
                let (path, dest, timeout, database) =
                    (path.clone(), sqlite_dest.to_owned(), self.timeout(), self.describe());
                let notices = self.notice_sink();
                tokio::task::spawn_blocking(move || {
                    sqlite::snapshot(&path, &dest, timeout, &database, notices.as_ref())
                })
                .await
                .map_err(|e| Error::Snapshot { database: self.describe(), detail: e.to_string() })??;
                Ok(ScratchCopy {
                    copy: self.with_url(DbUrl::Sqlite { path: sqlite_dest.to_owned() }),
                    origin: self.clone(),
                    pg_name: None,
                    method: METHOD_SQLITE,
                })
            }
            DbUrl::Postgres { url, .. } => {
                let archive = work.join("database.dump");
                let dump = self.snapshot(&archive).await?;
                let name = format!("fr_rehearse_{}", crate::state::random_hex(10));
                let pg = self.pg();
                let client = pg.connect().await?;
                pg.within("creating the rehearsal's temporary database", async {
                    client.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.map_err(|e| pg.query_err(&e))
                })
                .await?;
                drop(client);
                let new_url = with_dbname(url, &name)
                    .and_then(|u| DbUrl::parse(&u, Path::new("/")).ok())
                    .ok_or_else(|| Error::Config("the PostgreSQL URL cannot name another database".into()))?;
                let scratch = ScratchCopy {
                    copy: self.with_url(new_url),
                    origin: self.clone(),
                    pg_name: Some(name),
                    method: METHOD_PG,
                };
                scratch.copy.restore(&archive, &dump).await?;
                let _ = std::fs::remove_file(&archive);
                Ok(scratch)
            }
        }
    }
}

/// `url` with its database replaced by `name` (a `dbname=` query parameter is dropped).
fn with_dbname(url: &Secret, name: &str) -> Option<Secret> {
    let raw = url.expose().trim();
    let (scheme, rest) = raw.split_once("://")?;
    let (main, query) = match rest.split_once('?') {
        Some((m, q)) => (m, Some(q)),
        None => (rest, None),
    };
    let host_start = main.rfind('@').map_or(0, |i| i + 1);
    let netloc = match main[host_start..].find('/') {
        Some(i) => &main[..host_start + i],
        None => main,
    };
    let query: Vec<&str> =
        query.map(|q| q.split('&').filter(|kv| !kv.starts_with("dbname=")).collect()).unwrap_or_default();
    let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
    Some(Secret::new(format!("{scheme}://{netloc}/{name}{query}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_database_on_the_same_server() {
        let w = |u: &str| with_dbname(&Secret::new(u), "fr_x").map(|s| s.expose().to_owned());
        assert_eq!(w("postgresql://u:p@h:5432/app").as_deref(), Some("postgresql://u:p@h:5432/fr_x"));
        assert_eq!(
            w("postgres://u:p%2Fq@h/app?sslmode=require&dbname=app").as_deref(),
            Some("postgres://u:p%2Fq@h/fr_x?sslmode=require")
        );
        assert_eq!(w("postgresql://h").as_deref(), Some("postgresql://h/fr_x"));
        assert_eq!(w("postgresql+psycopg2://u@h:1/a/b").as_deref(), Some("postgresql+psycopg2://u@h:1/fr_x"));
    }
}
