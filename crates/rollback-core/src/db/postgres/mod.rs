//! PostgreSQL: connections (TLS per `sslmode`), `pg_dump -Fc` snapshots, exact restores, and
//! the canonical and digest dumps (`canonical`).
//!
//! A restore is exact and atomic: in ONE transaction on our own connection it drops every
//! user schema (so objects created after the snapshot go too) and the publications, recreates
//! `public` as it was, and replays the snapshot, which `pg_restore -f -` turns into SQL (its `COPY` blocks are
//! streamed through `COPY FROM STDIN`). If anything fails, nothing changed.

mod canonical;

use std::fmt::Write as _;
use std::future::Future;
use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use futures_util::SinkExt;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_postgres::{Client, NoTls, SimpleQueryMessage};

use super::process;
use super::url::{DbUrl, PgParams};
use super::{Error, Result};

pub(crate) use canonical::{canonical_dump, digest_dump};

/// The application name our sessions show in `pg_stat_activity`.
const APP_NAME: &str = "forge-rollback";

/// Schemas that belong to the server, never to the application.
pub(crate) const USER_SCHEMA: &str =
    "nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_(toast|temp_|toast_temp_)'";

/// `database`, as errors show it, and how to scrub secrets.
pub(crate) struct Ctx<'a> {
    pub url: &'a DbUrl,
    pub timeout: Duration,
}

impl Ctx<'_> {
    pub fn database(&self) -> String {
        self.url.redacted()
    }

    pub fn params(&self) -> Result<PgParams> {
        self.url.pg_params().ok_or_else(|| Error::Config("not a PostgreSQL URL".into()))
    }

    fn unreachable(&self, detail: &str) -> Error {
        Error::Unreachable { database: self.database(), detail: self.url.redact_in(detail) }
    }

    pub fn query_err(&self, e: &tokio_postgres::Error) -> Error {
        Error::Query { database: self.database(), detail: self.url.redact_in(&error_detail(e)) }
    }

    /// Runs `fut` within the timeout; `what` names it in the error.
    pub async fn within<T>(&self, what: &str, fut: impl Future<Output = Result<T>>) -> Result<T> {
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(r) => r,
            Err(_) => Err(Error::Query {
                database: self.database(),
                detail: format!("{what} timed out after {}s (database.timeout_secs)", self.timeout.as_secs()),
            }),
        }
    }

    /// Connects (TLS per `sslmode`); the connection task runs on the current runtime.
    /// Statements and lock waits are bounded by the timeout on the server side too.
    pub async fn connect(&self) -> Result<Client> {
        let params = self.params()?;
        let tls = super::tls::connector(&params).map_err(|e| self.unreachable(&e))?;
        let config = pg_config(&params, self.timeout);
        let connecting = async {
            match tls {
                None => config.connect(NoTls).await.map(|(client, conn)| {
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    client
                }),
                Some(tls) => config.connect(tls).await.map(|(client, conn)| {
                    tokio::spawn(async move {
                        let _ = conn.await;
                    });
                    client
                }),
            }
        };
        let client = match tokio::time::timeout(self.timeout, connecting).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(self.unreachable(&error_detail(&e))),
            Err(_) => {
                return Err(
                    self.unreachable(&format!("no answer within {}s (database.timeout_secs)", self.timeout.as_secs()))
                );
            }
        };
        let ms = self.timeout.as_millis();
        self.within("setting timeouts", async {
            client
                .batch_execute(&format!("SET statement_timeout = {ms}; SET lock_timeout = {ms}"))
                .await
                .map_err(|e| self.query_err(&e))
        })
        .await?;
        Ok(client)
    }

    /// `(server_version_num, server_version)`, e.g. `(150018, "15.18")`.
    pub async fn server_version(&self, client: &Client) -> Result<(u32, String)> {
        let num = scalar(client, "SHOW server_version_num").await.map_err(|e| self.query_err(&e))?.unwrap_or_default();
        let text = scalar(client, "SHOW server_version").await.map_err(|e| self.query_err(&e))?.unwrap_or_default();
        let num = num.trim().parse().map_err(|_| Error::Query {
            database: self.database(),
            detail: format!("unexpected server_version_num `{num}`"),
        })?;
        Ok((num, text.split_whitespace().next().unwrap_or_default().to_owned()))
    }

    /// Fails with [`Error::ClientTooOld`] when `program --version` is of an older major
    /// version than the server (`pg_dump` refuses such servers, `pg_restore` cannot read their
    /// archives).
    pub async fn check_client(&self, tool: &str, program: &str, server_num: u32, server: &str) -> Result<()> {
        let cmd = process::command(program, ["--version"], None, &[]);
        let out = process::output(program, cmd, self.timeout).await?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            return Err(Error::Program {
                program: program.to_owned(),
                detail: format!(
                    "`--version` failed ({}): {}",
                    process::describe_status(out.status),
                    process::tail(&out.stderr, &|s| self.url.redact_in(s))
                ),
            });
        }
        let Some(client) = parse_client_version(&text) else {
            return Err(Error::Program {
                program: program.to_owned(),
                detail: format!("cannot read a version in `{}`", text.trim()),
            });
        };
        if major_of_version(&client) < major_of_num(server_num) {
            return Err(Error::ClientTooOld {
                tool: tool.to_owned(),
                client,
                server: server.to_owned(),
                database: self.database(),
            });
        }
        Ok(())
    }
}

/// The `tokio_postgres` configuration for `params`.
fn pg_config(params: &PgParams, timeout: Duration) -> tokio_postgres::Config {
    let mut c = tokio_postgres::Config::new();
    c.host(&params.host).port(params.port);
    c.user(params.user.clone().unwrap_or_else(default_user));
    if let Some(p) = &params.password {
        c.password(p.expose());
    }
    if let Some(db) = &params.dbname {
        c.dbname(db);
    }
    c.application_name(params.application_name.as_deref().unwrap_or(APP_NAME));
    if let Some(o) = &params.options {
        c.options(o);
    }
    c.connect_timeout(params.connect_timeout.map_or(timeout, |s| Duration::from_secs(s.max(1)).min(timeout)));
    c.ssl_mode(match params.sslmode {
        super::url::SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        super::url::SslMode::Allow | super::url::SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    c
}

/// libpq's default user: the OS user.
fn default_user() -> String {
    std::env::var("USER").or_else(|_| std::env::var("LOGNAME")).unwrap_or_else(|_| "postgres".into())
}

/// The `PG*` variables that make libpq programs connect where we do. The password travels
/// here, never in argv.
pub(crate) fn child_env(params: &PgParams, timeout: Duration) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("PGHOST", params.host.clone()),
        ("PGPORT", params.port.to_string()),
        ("PGUSER", params.user.clone().unwrap_or_else(default_user)),
        ("PGSSLMODE", params.sslmode.as_str().to_owned()),
        ("PGCONNECT_TIMEOUT", params.connect_timeout.unwrap_or(timeout.as_secs()).max(2).to_string()),
        ("PGAPPNAME", params.application_name.clone().unwrap_or_else(|| APP_NAME.into())),
    ];
    if let Some(p) = &params.password {
        env.push(("PGPASSWORD", p.expose().to_owned()));
    }
    if let Some(db) = &params.dbname {
        env.push(("PGDATABASE", db.clone()));
    }
    if let Some(r) = &params.sslrootcert {
        env.push(("PGSSLROOTCERT", r.clone()));
    }
    if let Some(o) = &params.options {
        env.push(("PGOPTIONS", o.clone()));
    }
    env
}

/// A driver error as text: the server's message, or the chain of causes.
/// Whether `e` is a lock wait that ran past `lock_timeout` (SQLSTATE 55P03).
pub(crate) fn is_lock_timeout(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE)
}

pub(crate) fn error_detail(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut s = format!("{}: {}", db.severity(), db.message());
        if let Some(d) = db.detail() {
            let _ = write!(s, " ({d})");
        }
        return s;
    }
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        let c = cause.to_string();
        if !s.contains(&c) {
            let _ = write!(s, ": {c}");
        }
        source = cause.source();
    }
    s
}

/// The first column of the first row, as text.
pub(crate) async fn scalar(client: &Client, sql: &str) -> Result<Option<String>, tokio_postgres::Error> {
    for msg in client.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(row) = msg {
            return Ok(row.get(0).map(str::to_owned));
        }
    }
    Ok(None)
}

/// Every row of a simple query, each as its columns' text (`NULL` for null).
pub(crate) async fn rows(client: &Client, sql: &str) -> Result<Vec<Vec<String>>, tokio_postgres::Error> {
    let mut out = Vec::new();
    for msg in client.simple_query(sql).await? {
        if let SimpleQueryMessage::Row(row) = msg {
            out.push((0..row.len()).map(|i| row.get(i).unwrap_or("NULL").to_owned()).collect());
        }
    }
    Ok(out)
}

/// `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` → `15.18`.
fn parse_client_version(text: &str) -> Option<String> {
    let line = text.lines().next()?;
    let after = line.split_once(')').map_or(line, |(_, rest)| rest);
    after.split_whitespace().find(|t| t.starts_with(|c: char| c.is_ascii_digit())).map(str::to_owned)
}

/// The major version of `15.18`, `16beta1`, `9.6.24`: `(15, 0)`, `(16, 0)`, `(9, 6)`.
fn major_of_version(v: &str) -> (u32, u32) {
    let mut nums = v.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap_or(0));
    let first = nums.next().unwrap_or(0);
    if first >= 10 { (first, 0) } else { (first, nums.next().unwrap_or(0)) }
}

/// The major version of a `server_version_num`: 150018 → (15, 0), 90624 → (9, 6).
fn major_of_num(num: u32) -> (u32, u32) {
    if num >= 100_000 { (num / 10_000, 0) } else { (num / 10_000, (num / 100) % 100) }
}

/// `pg_dump -Fc` of the database into `dest` (a new file), then `pg_restore -l` to check that
/// the archive reads back. Returns the server version and the bytes written.
pub(crate) async fn snapshot(ctx: &Ctx<'_>, pg_dump: &str, pg_restore: &str, dest: &Path) -> Result<(String, u64)> {
    let snap_err = |detail: String| Error::Snapshot { database: ctx.database(), detail };
    if dest.exists() {
        return Err(snap_err(format!("`{}` already exists", dest.display())));
    }
    let client = ctx.connect().await?;
    let (num, server) = ctx.server_version(&client).await?;
    drop(client);
    ctx.check_client("pg_dump", pg_dump, num, &server).await?;

    let params = ctx.params()?;
    let env = child_env(&params, ctx.timeout);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut partial = dest.as_os_str().to_os_string();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial);
    let result = async {
        // `0600` before `pg_dump` writes into it (it keeps the mode of a file it overwrites):
        // the dump holds every row, as private as the state folder wherever it is made.
        super::sqlite::private_file(&partial)
            .map_err(|e| snap_err(format!("cannot create `{}`: {e}", partial.display())))?;
        let args =
            [std::ffi::OsStr::new("--format=custom"), "--no-password".as_ref(), "--file".as_ref(), partial.as_os_str()];
        let out = process::output(pg_dump, process::command(pg_dump, args, None, &env), ctx.timeout).await?;
        if !out.status.success() {
            return Err(snap_err(format!(
                "`{pg_dump}` failed ({}): {}",
                process::describe_status(out.status),
                process::tail(&out.stderr, &|s| ctx.url.redact_in(s))
            )));
        }
        let args = [std::ffi::OsStr::new("--list"), partial.as_os_str()];
        let out = process::output(pg_restore, process::command(pg_restore, args, None, &[]), ctx.timeout).await?;
        if !out.status.success() {
            return Err(snap_err(format!(
                "the dump does not read back with `{pg_restore} --list` ({}): {}",
                process::describe_status(out.status),
                process::tail(&out.stderr, &|s| ctx.url.redact_in(s))
            )));
        }
        std::fs::File::open(&partial).and_then(|f| f.sync_all()).map_err(|e| snap_err(format!("fsync: {e}")))?;
        std::fs::rename(&partial, dest).map_err(|e| snap_err(format!("rename into `{}`: {e}", dest.display())))?;
        if let Some(dir) = dest.parent() {
            crate::fsutil::sync_dir(dir).map_err(|e| snap_err(e.to_string()))?;
        }
        std::fs::metadata(dest).map(|m| m.len()).map_err(|e| snap_err(e.to_string()))
    }
    .await;
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    Ok((server, result?))
}

/// Drops every user schema and large object, and recreates `public` as `initdb` makes it
/// (the state `pg_dump` compares against: it only records how `public` differs from it).
/// Also drops what a dump of one database re-creates outside its schemas and what dropping
/// them leaves: publications (the dump re-creates each with its tables), and foreign-data
/// wrappers, foreign servers, casts and access methods that no extension brought. (Event
/// triggers go with their function's schema; subscriptions are refused before, see
/// [`subscriptions`].) Runs inside the restore's transaction. The fingerprint reads the same
/// objects ([`user_made`]), so that one made since the run is kept by its undo.
fn clear_database() -> String {
    format!(
        r"
DO $forge_rollback$
DECLARE
    s record;
BEGIN
    IF current_setting('server_version_num')::int >= 100000 THEN
        FOR s IN SELECT pubname FROM pg_publication LOOP
            EXECUTE format('DROP PUBLICATION %I', s.pubname);
        END LOOP;
    END IF;
    FOR s IN SELECT nspname FROM pg_namespace
              WHERE nspname NOT IN ('pg_catalog', 'information_schema') AND nspname !~ '^pg_(toast|temp_|toast_temp_)'
    LOOP
        EXECUTE format('DROP SCHEMA %I CASCADE', s.nspname);
    END LOOP;
    FOR s IN SELECT v.srvname FROM pg_foreign_server v WHERE {server}
    LOOP
        EXECUTE format('DROP SERVER %I CASCADE', s.srvname);
    END LOOP;
    FOR s IN SELECT w.fdwname FROM pg_foreign_data_wrapper w WHERE {wrapper}
    LOOP
        EXECUTE format('DROP FOREIGN DATA WRAPPER %I CASCADE', s.fdwname);
    END LOOP;
    FOR s IN SELECT c.castsource::regtype::text AS source, c.casttarget::regtype::text AS target FROM pg_cast c
              WHERE {cast}
    LOOP
        EXECUTE format('DROP CAST (%s AS %s)', s.source, s.target);
    END LOOP;
    FOR s IN SELECT a.amname FROM pg_am a WHERE {method}
    LOOP
        EXECUTE format('DROP ACCESS METHOD %I CASCADE', s.amname);
    END LOOP;
    PERFORM lo_unlink(oid) FROM pg_largeobject_metadata;
    IF current_setting('server_version_num')::int >= 150000 THEN
        EXECUTE 'CREATE SCHEMA public AUTHORIZATION pg_database_owner';
        GRANT USAGE ON SCHEMA public TO PUBLIC;
    ELSE
        EXECUTE format('CREATE SCHEMA public AUTHORIZATION %I', (SELECT rolname FROM pg_roles WHERE oid = 10));
        GRANT ALL ON SCHEMA public TO PUBLIC;
    END IF;
    COMMENT ON SCHEMA public IS 'standard public schema';
END
$forge_rollback$;
",
        server = user_made("pg_foreign_server", "v"),
        wrapper = user_made("pg_foreign_data_wrapper", "w"),
        cast = user_made("pg_cast", "c"),
        method = user_made("pg_am", "a"),
    )
}

/// Whether row `alias` of system catalog `catalog` was made in this database by a user: not
/// built in (an oid from `FirstNormalObjectId` on) and not brought by an extension (which
/// its `CREATE EXTENSION` in the dump re-creates). Of the objects outside the schemas, these
/// are what the restore drops and the dump re-creates.
pub(crate) fn user_made(catalog: &str, alias: &str) -> String {
    format!(
        "{alias}.oid >= 16384 AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = '{catalog}'::regclass \
                                                           AND d.objid = {alias}.oid AND d.deptype = 'e')"
    )
}

/// Takes `EXCLUSIVE` locks on every table of the user schemas ([`USER_SCHEMA`]), in the
/// caller's transaction: readers go on, writers wait until it ends. What a guarded restore
/// holds while it checks the database's fingerprint and replaces the database.
fn lock_user_tables() -> String {
    format!(
        r"DO $forge_rollback$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p') AND {} ORDER BY 1, 2
    LOOP
        EXECUTE format('LOCK TABLE %I.%I IN EXCLUSIVE MODE', r.nspname, r.relname);
    END LOOP;
END
$forge_rollback$;",
        USER_SCHEMA.replace("nspname", "n.nspname")
    )
}

/// The logical-replication subscriptions of the database `client` is connected to, by name
/// (readable by any role: `pg_subscription` hides only the connection strings).
async fn subscriptions(client: &Client, server_num: u32) -> Result<Vec<String>, tokio_postgres::Error> {
    if server_num < 100_000 {
        return Ok(Vec::new());
    }
    let sql = "SELECT subname FROM pg_subscription
                WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY 1";
    Ok(rows(client, sql).await?.into_iter().filter_map(|r| r.into_iter().next()).collect())
}

/// What a [`restore`] replaces.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum RestoreInto {
    /// The live database. One with subscriptions is refused ([`Error::Subscribed`]): dropping
    /// one that owns a replication slot cannot happen inside a transaction, and dropping it
    /// without its slot would leave the slot on the publisher holding WAL.
    Live,
    /// A scratch copy just created empty: the archive's subscriptions are left out (a copy
    /// must not replicate, and one with a subscription cannot be dropped).
    Scratch,
}

/// Puts the database back exactly as the archive `src` recorded, in one transaction. With a
/// `guard`, the transaction first locks every user table against writers
/// ([`lock_user_tables`]) and compares the database's fingerprint with `guard.expect`: written
/// since, [`Error::ChangedSince`] and nothing changes; else the restore runs under those locks.
pub(crate) async fn restore(
    ctx: &Ctx<'_>,
    pg_restore: &str,
    src: &Path,
    into: RestoreInto,
    guard: Option<&super::Unchanged>,
) -> Result<()> {
    let snap_err = |detail: String| Error::Snapshot { database: ctx.database(), detail: ctx.url.redact_in(&detail) };
    if !src.is_file() {
        return Err(snap_err(format!("the snapshot `{}` does not exist", src.display())));
    }
    let client = ctx.connect().await?;
    let (num, server) = ctx.server_version(&client).await?;
    ctx.check_client("pg_restore", pg_restore, num, &server).await?;
    if into == RestoreInto::Live {
        let names = subscriptions(&client, num).await.map_err(|e| ctx.query_err(&e))?;
        if !names.is_empty() {
            return Err(Error::Subscribed { database: ctx.database(), names });
        }
    }

    // `--file=-`: the archive as a SQL script on stdout; pg_restore itself connects nowhere.
    let mut args = vec![std::ffi::OsStr::new("--file=-")];
    if into == RestoreInto::Scratch {
        args.push("--no-subscriptions".as_ref());
    }
    args.push(src.as_os_str());
    let mut cmd = process::command(pg_restore, args, None, &[]);
    let mut child = process::spawn(pg_restore, &mut cmd)?;
    let stdout = child.stdout.take().ok_or_else(|| snap_err("no stdout".into()))?;
    let mut stderr = child.stderr.take().ok_or_else(|| snap_err("no stderr".into()))?;
    let stderr_task = tokio::spawn(async move {
        let mut buf = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut stderr, &mut buf).await;
        buf
    });

    let work = async {
        client.batch_execute("BEGIN").await.map_err(|e| snap_err(format!("BEGIN: {}", error_detail(&e))))?;
        if let Some(g) = guard {
            client.batch_execute(&lock_user_tables()).await.map_err(|e| {
                snap_err(format!("locking the tables against writers before the restore failed: {}", error_detail(&e)))
            })?;
            if super::fingerprint_of(&digest_dump(ctx, &client).await?) != g.expect {
                return Err(Error::ChangedSince { database: ctx.database(), since: g.since.clone() });
            }
            crate::failpoint::hit("inside:restore_database").map_err(|e| snap_err(e.to_string()))?;
        }
        client
            .batch_execute(&clear_database())
            .await
            .map_err(|e| snap_err(format!("clearing the database before the restore failed: {}", error_detail(&e))))?;
        replay(&client, stdout).await.map_err(snap_err)?;
        let status = child.wait().await.map_err(|e| snap_err(format!("waiting for `{pg_restore}`: {e}")))?;
        if !status.success() {
            let err = stderr_task.await.unwrap_or_default();
            return Err(snap_err(format!(
                "`{pg_restore}` failed ({}): {}",
                process::describe_status(status),
                process::tail(&err, &|s| ctx.url.redact_in(s))
            )));
        }
        client.batch_execute("COMMIT").await.map_err(|e| snap_err(format!("COMMIT: {}", error_detail(&e))))
    };
    match tokio::time::timeout(ctx.timeout, work).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
        // Dropping the client closes the connection: the server rolls the transaction back.
        Err(_) => Err(snap_err(format!(
            "the restore did not finish within {}s (database.timeout_secs); nothing was changed",
            ctx.timeout.as_secs()
        ))),
    }
}

/// Executes the SQL script `pg_restore -f -` prints, streaming `COPY ... FROM stdin` data.
async fn replay(client: &Client, stdout: tokio::process::ChildStdout) -> Result<(), String> {
    const CHUNK: usize = 256 * 1024;
    let mut reader = BufReader::new(stdout);
    let mut sql = String::new();
    let mut line = Vec::new();
    let mut line_no = 0usize;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).await.map_err(|e| format!("reading pg_restore's output: {e}"))? == 0 {
            break;
        }
        line_no += 1;
        if line.starts_with(b"\\") {
            // pg_dump 17.6/16.10/15.14 and later wrap scripts in psql's `\restrict` guard.
            if line.starts_with(b"\\restrict ") || line.starts_with(b"\\unrestrict ") {
                continue;
            }
            return Err(format!("unexpected psql meta-command on line {line_no} of the restore script"));
        }
        let text =
            std::str::from_utf8(&line).map_err(|_| format!("line {line_no} of the restore script is not UTF-8"))?;
        let trimmed = text.trim_end();
        if trimmed.starts_with("COPY ") && trimmed.ends_with("FROM stdin;") {
            if !sql.trim().is_empty() {
                client.batch_execute(&sql).await.map_err(|e| format!("restore script: {}", error_detail(&e)))?;
            }
            sql.clear();
            let stmt = trimmed.trim_end_matches(';').to_owned();
            let sink = client
                .copy_in::<_, Cursor<Vec<u8>>>(&stmt)
                .await
                .map_err(|e| format!("{stmt}: {}", error_detail(&e)))?;
            futures_util::pin_mut!(sink);
            let mut buf = Vec::with_capacity(CHUNK);
            loop {
                line.clear();
                if reader.read_until(b'\n', &mut line).await.map_err(|e| format!("reading pg_restore's output: {e}"))?
                    == 0
                {
                    return Err(format!("the data of `{stmt}` ends without `\\.`"));
                }
                line_no += 1;
                if line == b"\\.\n" || line == b"\\." {
                    break;
                }
                buf.extend_from_slice(&line);
                if buf.len() >= CHUNK {
                    let chunk = std::mem::replace(&mut buf, Vec::with_capacity(CHUNK));
                    sink.send(Cursor::new(chunk)).await.map_err(|e| format!("{stmt}: {}", error_detail(&e)))?;
                }
            }
            if !buf.is_empty() {
                sink.send(Cursor::new(buf)).await.map_err(|e| format!("{stmt}: {}", error_detail(&e)))?;
            }
            sink.as_mut().finish().await.map_err(|e| format!("{stmt}: {}", error_detail(&e)))?;
            continue;
        }
        sql.push_str(text);
    }
    if !sql.trim().is_empty() {
        client.batch_execute(&sql).await.map_err(|e| format!("restore script: {}", error_detail(&e)))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(
            parse_client_version("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n").as_deref(),
            Some("15.18")
        );
        assert_eq!(parse_client_version("pg_restore (PostgreSQL) 16beta1").as_deref(), Some("16beta1"));
        assert_eq!(parse_client_version("nonsense"), None);
        assert_eq!(major_of_version("15.18"), (15, 0));
        assert_eq!(major_of_version("16beta1"), (16, 0));
        assert_eq!(major_of_version("9.6.24"), (9, 6));
        assert_eq!(major_of_num(150_018), (15, 0));
        assert_eq!(major_of_num(90_624), (9, 6));
        assert!(major_of_version("9.6.0") < major_of_num(150_018));
        assert!(major_of_version("15.2") >= major_of_num(150_018));
        assert!(major_of_version("17.1") >= major_of_num(150_018));
    }
}
