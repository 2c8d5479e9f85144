//! Throwaway copies of a database, for the data-loss forecast, the row-preserving undo and
//! rehearsals: a
//! SQLite file in a private temp folder, or a temporary PostgreSQL database on the same server
//! (`forge_rollback_scratch_<random>`). A copy is made from the live database (SQLite online
//! backup; `pg_dump -Fc` restored into the temporary database, which works while the app is
//! connected, unlike `CREATE DATABASE … TEMPLATE`) or from a snapshot's dump, and always
//! discarded by its maker, on success and on error alike.

use std::path::{Path, PathBuf};

use super::database::{DbDump, FORMAT_PG, FORMAT_SQLITE};
use super::url::DbUrl;
use super::{Error, Result, UrlDatabase, postgres, sqlite};

/// A throwaway copy; [`ScratchCopy::discard`] removes it.
pub struct ScratchCopy {
    /// The copy, with the live database's settings (timeout, `pg_dump`, `pg_restore`).
    pub db: UrlDatabase,
    place: Place,
}

enum Place {
    /// The copy's file (and its `-wal`/`-shm`/`-journal` companions).
    File(PathBuf),
    /// A database on the server of `admin` (the live database's URL, to connect from).
    Pg { admin: DbUrl, name: String },
}

fn random_name() -> String {
    format!("forge_rollback_scratch_{}", crate::state::random_hex(12))
}

/// `forge_rollback_scratch_<random>_<source>`: the source database's name (letters, digits and
/// `_` of it) tells an operator whose copy it is; at most 63 bytes, PostgreSQL's limit.
fn pg_scratch_name(source: Option<&str>) -> String {
    let mut name = format!("forge_rollback_scratch_{}", crate::state::random_hex(8));
    if let Some(src) = source {
        name.push('_');
        name.extend(src.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').map(|c| c.to_ascii_lowercase()));
    }
    name.truncate(63);
    name
}

impl UrlDatabase {
    /// A copy of the database as it is now, made in `dir` (SQLite) or on the same server
    /// (PostgreSQL). Nothing of the live database changes.
    pub(crate) async fn scratch_copy(&self, dir: &Path) -> Result<ScratchCopy> {
        self.scratch_copy_to(&dir.join(format!("{}.db", random_name())), dir).await
    }

    /// Like `UrlDatabase::scratch_copy`, with a SQLite copy written to exactly `sqlite_dest`
    /// (a rehearsal puts it where the copied tree expects it); `work` holds a PostgreSQL dump
    /// while it is restored.
    pub async fn scratch_copy_to(&self, sqlite_dest: &Path, work: &Path) -> Result<ScratchCopy> {
        match self.url() {
            DbUrl::Sqlite { path } => {
                let (src, d, timeout, database) =
                    (path.clone(), sqlite_dest.to_owned(), self.timeout(), self.describe());
                let notices = self.notice_sink();
                tokio::task::spawn_blocking(move || sqlite::snapshot(&src, &d, timeout, &database, notices.as_ref()))
                    .await
                    .map_err(|e| Error::Snapshot { database: self.describe(), detail: e.to_string() })??;
                Ok(self.file_copy(sqlite_dest.to_owned()))
            }
            DbUrl::Postgres { .. } => {
                let dump = work.join(format!("{}.dump", random_name()));
                let result = async {
                    postgres::snapshot(&self.pg(), self.pg_dump(), self.pg_restore(), &dump).await?;
                    self.pg_copy_from(&dump).await
                }
                .await;
                let _ = std::fs::remove_file(&dump);
                result
            }
        }
    }

    /// The first half of a PostgreSQL copy, which leaves nothing on the server: the live
    /// database dumped into `work` (its `pg_dump` is killed if this is dropped, and what it wrote
    /// is in `work`). `None` for SQLite, copied in one go by
    /// [`UrlDatabase::scratch_copy_from`].
    pub(crate) async fn dump_for_copy(&self, work: &Path) -> Result<Option<PathBuf>> {
        if !matches!(self.url(), DbUrl::Postgres { .. }) {
            return Ok(None);
        }
        let dump = work.join(format!("{}.dump", random_name()));
        postgres::snapshot(&self.pg(), self.pg_dump(), self.pg_restore(), &dump).await?;
        Ok(Some(dump))
    }

    /// [`UrlDatabase::scratch_copy`], from the dump [`UrlDatabase::dump_for_copy`] made (removed
    /// afterwards), or in one go when there is none (SQLite).
    pub(crate) async fn scratch_copy_from(&self, dir: &Path, dumped: Option<PathBuf>) -> Result<ScratchCopy> {
        let Some(dump) = dumped else { return self.scratch_copy(dir).await };
        let copy = self.pg_copy_from(&dump).await;
        let _ = std::fs::remove_file(&dump);
        copy
    }

    /// A copy of the database as it is now and one of the dump in `file`, in `dir`; the first
    /// is discarded again when the second cannot be made.
    pub(crate) async fn scratch_now_and_dump(
        &self,
        file: &Path,
        dump: &DbDump,
        dir: &Path,
    ) -> Result<(ScratchCopy, ScratchCopy)> {
        let now = self.scratch_copy(dir).await?;
        match self.scratch_from_dump(file, dump, dir).await {
            Ok(snap) => Ok((now, snap)),
            Err(e) => {
                let _ = now.discard().await;
                Err(e)
            }
        }
    }

    /// A copy of what the snapshot `file` (described by `dump`) holds.
    pub(crate) async fn scratch_from_dump(&self, file: &Path, dump: &DbDump, dir: &Path) -> Result<ScratchCopy> {
        match (self.url(), dump.format.as_str()) {
            (DbUrl::Sqlite { .. }, FORMAT_SQLITE) => {
                use std::os::unix::fs::PermissionsExt as _;
                let dest = dir.join(format!("{}.db", random_name()));
                // `0600` whatever the snapshot file's mode: the copy is as private as the
                // state folder (see `sqlite::private_file`).
                sqlite::private_file(&dest)
                    .and_then(|()| std::fs::copy(file, &dest))
                    .and_then(|_| std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600)))
                    .map_err(|e| Error::Snapshot {
                        database: self.describe(),
                        detail: format!("cannot copy the snapshot `{}`: {e}", file.display()),
                    })?;
                Ok(self.file_copy(dest))
            }
            (DbUrl::Postgres { .. }, FORMAT_PG) => self.pg_copy_from(file).await,
            _ => Err(Error::Snapshot {
                database: self.describe(),
                detail: format!("the snapshot is a {} `{}` dump, not one of this database", dump.engine, dump.format),
            }),
        }
    }

    fn file_copy(&self, dest: PathBuf) -> ScratchCopy {
        let url = DbUrl::Sqlite { path: dest.clone() };
        ScratchCopy { db: self.with_url(url), place: Place::File(dest) }
    }

    /// Creates a temporary database and restores the archive `file` into it.
    async fn pg_copy_from(&self, file: &Path) -> Result<ScratchCopy> {
        let name = pg_scratch_name(self.url().pg_params().and_then(|p| p.dbname).as_deref());
        let url = self.url().with_database(&name).map_err(Error::Config)?;
        let pg = self.pg();
        let client = pg.connect().await?;
        pg.within("creating a scratch database", async {
            client.batch_execute(&format!("CREATE DATABASE {name}")).await.map_err(|e| Error::Snapshot {
                database: self.describe(),
                detail: format!(
                    "cannot create a scratch database (the role needs CREATEDB): {}",
                    postgres::error_detail(&e)
                ),
            })
        })
        .await?;
        let settings = pg
            .within("copying the database's settings", async {
                copy_database_settings(&client, &name).await.map_err(|e| pg.query_err(&e))
            })
            .await;
        drop(client);
        let copy = ScratchCopy { db: self.with_url(url), place: Place::Pg { admin: self.url().clone(), name } };
        let filled = match settings {
            Ok(()) => {
                postgres::restore(&copy.db.pg(), self.pg_restore(), file, postgres::RestoreInto::Scratch, None).await
            }
            Err(e) => Err(e),
        };
        match filled {
            Ok(()) => Ok(copy),
            Err(e) => {
                let _ = copy.discard().await;
                Err(e)
            }
        }
    }
}

/// Gives the scratch database `name` the settings of the database `client` is connected to
/// (`ALTER DATABASE … SET`, such as a `search_path` naming the app's schema), and those of the
/// role connected in it (`ALTER ROLE … IN DATABASE … SET`, which take precedence): a dump
/// carries neither, and without them the migrations find other tables on the copy than on the
/// live database, or run with other limits. The copy is used by the role connected here (its
/// URL is the live one's, but for the database), so that role's are the ones that apply there;
/// other roles' settings never apply to it. (Before, the role's were left out: a
/// `search_path` set only for the app's role in its database was missing on the copy.) Each
/// value is taken over as the server reads it (`set_config` in this session, then `SET … FROM
/// CURRENT`), so a list like `app, public` stays a list. A setting this role may not set (one a
/// superuser set) is left out: it cannot be set on the copy either.
async fn copy_database_settings(client: &tokio_postgres::Client, name: &str) -> Result<(), tokio_postgres::Error> {
    let settings = client
        .query(
            "SELECT split_part(s, '=', 1), substr(s, strpos(s, '=') + 1), r.setrole <> 0
               FROM pg_db_role_setting r, unnest(r.setconfig) s
              WHERE r.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())
                AND r.setrole IN (0, (SELECT oid FROM pg_roles WHERE rolname = session_user))
              ORDER BY r.setrole <> 0",
            &[],
        )
        .await?;
    for row in settings {
        let (key, value, of_role): (String, String, bool) = (row.get(0), row.get(1), row.get(2));
        if client.execute("SELECT set_config($1, $2, false)", &[&key, &value]).await.is_ok() {
            let ident = format!("\"{}\"", key.replace('"', "\"\""));
            let whose = if of_role { "ROLE SESSION_USER IN DATABASE" } else { "DATABASE" };
            let _ = client.batch_execute(&format!("ALTER {whose} {name} SET {ident} FROM CURRENT")).await;
        }
    }
    Ok(())
}

/// [`ScratchCopy::method`] of a SQLite copy.
pub const METHOD_SQLITE: &str = "sqlite-backup";
/// [`ScratchCopy::method`] of a PostgreSQL copy.
pub const METHOD_PG: &str = "pg-temporary-database";

impl ScratchCopy {
    /// The copy, with the live database's settings.
    pub fn database(&self) -> &UrlDatabase {
        &self.db
    }

    /// How it was made: `sqlite-backup` or `pg-temporary-database`.
    pub fn method(&self) -> &'static str {
        match self.place {
            Place::File(_) => METHOD_SQLITE,
            Place::Pg { .. } => METHOD_PG,
        }
    }

    /// Removes the copy: its file, or its database (connections to it closed by force).
    pub async fn discard(self) -> Result<()> {
        match self.place {
            Place::File(path) => {
                for suffix in ["", "-wal", "-shm", "-journal"] {
                    let mut p = path.as_os_str().to_os_string();
                    p.push(suffix);
                    let _ = std::fs::remove_file(PathBuf::from(p));
                }
                Ok(())
            }
            Place::Pg { admin, name } => {
                let ctx = postgres::Ctx { url: &admin, timeout: self.db.timeout() };
                let client = ctx.connect().await?;
                ctx.within("dropping the scratch database", async {
                    let (num, _) = ctx.server_version(&client).await?;
                    let force = if num >= 130_000 { " WITH (FORCE)" } else { "" };
                    client
                        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}{force}"))
                        .await
                        .map_err(|e| ctx.query_err(&e))
                })
                .await
            }
        }
    }
}
