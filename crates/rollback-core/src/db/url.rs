//! Database URLs: `sqlite:///relative.db`, `sqlite:////absolute.db`,
//! `postgresql://user:password@host:port/db?...` (also `postgres://`, and SQLAlchemy's
//! `postgresql+psycopg2://`). [`DbUrl::redacted`] is the only form ever shown.
//!
//! Error messages never quote the URL itself (it holds the password): they name the part that
//! is wrong.

use std::path::{Path, PathBuf};

use crate::secret::{REDACTED, Secret};

/// A parsed database URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DbUrl {
    /// A SQLite file.
    Sqlite {
        /// The file (made absolute against the work tree).
        path: PathBuf,
    },
    /// A PostgreSQL database.
    Postgres {
        /// The whole URL as given (with the password): for connections only.
        url: Secret,
        /// The URL with the password replaced by `***`.
        redacted: String,
    },
}

/// libpq's `sslmode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS if the server insists (treated as `prefer`).
    Allow,
    /// TLS when the server offers it, certificate not verified (libpq's default).
    #[default]
    Prefer,
    /// TLS required, certificate not verified (unless `sslrootcert` is given: then as
    /// `verify-ca`, like libpq).
    Require,
    /// TLS required, certificate chain verified, host name not checked.
    VerifyCa,
    /// TLS required, certificate chain and host name verified.
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<Self, String> {
        Ok(match s {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(format!(
                    "unknown sslmode `{other}` (expected disable, allow, prefer, require, verify-ca or verify-full)"
                ));
            }
        })
    }

    /// The libpq spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// The parts of a PostgreSQL URL, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgParams {
    /// The user (`None`: the server's default, the OS user).
    pub user: Option<String>,
    /// The password, percent-decoded.
    pub password: Option<Secret>,
    /// A host name, an IP address, or a Unix socket folder (starts with `/`). Without one in
    /// the URL: `/var/run/postgresql` when it exists, else `/tmp` (libpq's defaults).
    pub host: String,
    /// The port (default 5432).
    pub port: u16,
    /// The database (`None`: the server's default, the user name).
    pub dbname: Option<String>,
    /// `sslmode` (default `prefer`, as libpq).
    pub sslmode: SslMode,
    /// `sslrootcert`: a PEM file of trusted roots, or `system` for the system store.
    pub sslrootcert: Option<String>,
    /// `connect_timeout`, seconds.
    pub connect_timeout: Option<u64>,
    /// `application_name`.
    pub application_name: Option<String>,
    /// `options` (`-c key=value` settings sent at connection).
    pub options: Option<String>,
}

/// The query parameters a PostgreSQL URL may carry.
const PG_PARAMS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "connect_timeout",
    "application_name",
    "options",
    "host",
    "port",
    "user",
    "password",
    "dbname",
];

impl DbUrl {
    /// Parses `url`; relative SQLite paths are taken against `workdir`.
    pub fn parse(url: &Secret, workdir: &Path) -> Result<Self, String> {
        let raw = url.expose().trim();
        let Some((scheme, rest)) = raw.split_once("://") else {
            return Err(
                "not a database URL (expected `sqlite:///file.db` or `postgresql://user:password@host:5432/db`)".into(),
            );
        };
        let scheme_lc = scheme.to_ascii_lowercase();
        if scheme_lc == "sqlite" || scheme_lc == "sqlite+pysqlite" {
            return parse_sqlite(rest, workdir);
        }
        if is_pg_scheme(&scheme_lc) {
            let (_, redacted) = parse_pg(scheme, rest)?;
            return Ok(DbUrl::Postgres { url: url.clone(), redacted });
        }
        Err(format!(
            "unsupported database URL scheme `{}` (expected sqlite, postgresql, postgres or postgresql+<driver>)",
            scheme.chars().take(40).collect::<String>()
        ))
    }

    /// The URL without its password: the only form that may appear in any output.
    pub fn redacted(&self) -> String {
        match self {
            DbUrl::Sqlite { path } => format!("sqlite:///{}", path.display()),
            DbUrl::Postgres { redacted, .. } => redacted.clone(),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn engine(&self) -> &'static str {
        match self {
            DbUrl::Sqlite { .. } => "sqlite",
            DbUrl::Postgres { .. } => "postgres",
        }
    }

    /// The decoded parts of a PostgreSQL URL (`None` for SQLite).
    pub fn pg_params(&self) -> Option<PgParams> {
        match self {
            DbUrl::Sqlite { .. } => None,
            DbUrl::Postgres { url, .. } => {
                let raw = url.expose().trim();
                let (scheme, rest) = raw.split_once("://")?;
                parse_pg(scheme, rest).ok().map(|(p, _)| p)
            }
        }
    }

    /// The values that must be scrubbed from any text shown (child output, driver errors):
    /// the password and the whole URL.
    pub fn secrets(&self) -> Vec<String> {
        match self {
            DbUrl::Sqlite { .. } => Vec::new(),
            DbUrl::Postgres { url, .. } => {
                let mut out = vec![url.expose().to_owned()];
                if let Some(p) = self.pg_params().and_then(|p| p.password) {
                    out.push(p.expose().to_owned());
                    // The password as it is spelled in the URL (percent-encoded) too.
                    if let Some(raw) = raw_password(url.expose()) {
                        out.push(raw.to_owned());
                    }
                }
                out.sort_by_key(|s| std::cmp::Reverse(s.len()));
                out
            }
        }
    }

    /// `text` with the URL and its password removed.
    pub fn redact_in(&self, text: &str) -> String {
        let secrets = self.secrets();
        crate::secret::redact_in(text, secrets.iter().map(String::as_str))
    }

    /// The same server and credentials, another database: `name` for PostgreSQL (the URL's
    /// path replaced, a `dbname` parameter dropped), the file `name` for SQLite. For the
    /// throwaway copies of the data-loss forecast and the row-preserving undo.
    pub fn with_database(&self, name: &str) -> Result<DbUrl, String> {
        match self {
            DbUrl::Sqlite { .. } => Ok(DbUrl::Sqlite { path: PathBuf::from(name) }),
            DbUrl::Postgres { url, .. } => {
                let raw = url.expose().trim();
                let (scheme, rest) = raw.split_once("://").ok_or("not a database URL")?;
                let rest = rest.split('#').next().unwrap_or_default();
                let netloc_end = rest.find(['/', '?']).unwrap_or(rest.len());
                let (netloc, tail) = rest.split_at(netloc_end);
                let query = tail.split_once('?').map(|(_, q)| q).unwrap_or_default();
                let kept: Vec<&str> =
                    query.split('&').filter(|kv| !kv.is_empty() && !kv.starts_with("dbname=")).collect();
                let mut new = format!("{scheme}://{netloc}/{name}");
                if !kept.is_empty() {
                    new.push('?');
                    new.push_str(&kept.join("&"));
                }
                let (_, redacted) = parse_pg(scheme, &new[scheme.len() + 3..])?;
                Ok(DbUrl::Postgres { url: Secret::new(new), redacted })
            }
        }
    }

    /// The URL to hand to a child process (Alembic's `env.py`): PostgreSQL as given, SQLite
    /// with its absolute path (`sqlite:////abs/app.db`), so the child's working directory
    /// does not matter.
    pub fn for_child(&self) -> Secret {
        match self {
            DbUrl::Sqlite { path } => Secret::new(format!("sqlite:///{}", path.display())),
            DbUrl::Postgres { url, .. } => url.clone(),
        }
    }
}

fn is_pg_scheme(s: &str) -> bool {
    s == "postgresql"
        || s == "postgres"
        || s.strip_prefix("postgresql+")
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
}

fn parse_sqlite(rest: &str, workdir: &Path) -> Result<DbUrl, String> {
    if rest.contains('?') {
        return Err("SQLite URLs take no query parameters".into());
    }
    if rest.is_empty() {
        return Err("an in-memory SQLite database cannot be rolled back; give a file (`sqlite:///app.db`)".into());
    }
    let Some(file) = rest.strip_prefix('/') else {
        return Err(
            "a SQLite URL is `sqlite:///relative/file.db` or `sqlite:////absolute/file.db` (three or four slashes)"
                .into(),
        );
    };
    if file.is_empty() || file == ":memory:" {
        return Err("an in-memory SQLite database cannot be rolled back; give a file (`sqlite:///app.db`)".into());
    }
    let path = Path::new(file);
    let path = if path.is_absolute() { path.to_path_buf() } else { workdir.join(path) };
    Ok(DbUrl::Sqlite { path })
}

/// The password exactly as written in the URL's user info, if any.
fn raw_password(raw: &str) -> Option<&str> {
    let (_, rest) = raw.split_once("://")?;
    let netloc_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (userinfo, _) = rest[..netloc_end].rsplit_once('@')?;
    userinfo.split_once(':').map(|(_, p)| p)
}

fn parse_pg(scheme: &str, rest: &str) -> Result<(PgParams, String), String> {
    let rest = rest.split('#').next().unwrap_or_default();
    let netloc_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (netloc, tail) = rest.split_at(netloc_end);
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };

    let (userinfo, hostport) = match netloc.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, netloc),
    };
    let mut user = None;
    let mut password = None;
    let mut redacted_userinfo = String::new();
    if let Some(u) = userinfo {
        let (raw_user, raw_pass) = match u.split_once(':') {
            Some((a, b)) => (a, Some(b)),
            None => (u, None),
        };
        if !raw_user.is_empty() {
            user = Some(decode(raw_user, "user name")?);
        }
        redacted_userinfo.push_str(raw_user);
        if let Some(p) = raw_pass {
            password = Some(Secret::new(decode(p, "password")?));
            redacted_userinfo.push(':');
            redacted_userinfo.push_str(REDACTED);
        }
        redacted_userinfo.push('@');
    }

    if hostport.contains(',') {
        return Err("several hosts in one database URL are not supported".into());
    }
    let (raw_host, raw_port) = if let Some(v6) = hostport.strip_prefix('[') {
        let Some((h, after)) = v6.split_once(']') else {
            return Err("unclosed `[` in the database URL's host".into());
        };
        (h, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let mut host = if raw_host.is_empty() { None } else { Some(decode(raw_host, "host")?) };
    let mut port = match raw_port {
        None | Some("") => None,
        Some(p) => Some(parse_port(p)?),
    };
    let raw_db = path.strip_prefix('/').unwrap_or(path);
    let mut dbname = if raw_db.is_empty() { None } else { Some(decode(raw_db, "database name")?) };

    let mut params = PgParams {
        user,
        password,
        host: String::new(),
        port: 5432,
        dbname: None,
        sslmode: SslMode::default(),
        sslrootcert: None,
        connect_timeout: None,
        application_name: None,
        options: None,
    };
    let mut redacted_query = Vec::new();
    for pair in query.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let key = decode(k, "query parameter name")?;
        if key == "password" {
            params.password = Some(Secret::new(decode(v, "password")?));
            redacted_query.push(format!("{k}={REDACTED}"));
            continue;
        }
        redacted_query.push(pair.to_owned());
        let value = decode(v, "query parameter")?;
        match key.as_str() {
            "sslmode" => params.sslmode = SslMode::parse(&value)?,
            "sslrootcert" => params.sslrootcert = Some(value),
            "connect_timeout" => {
                params.connect_timeout =
                    Some(value.parse().map_err(|_| format!("connect_timeout `{value}` is not a number of seconds"))?);
            }
            "application_name" => params.application_name = Some(value),
            "options" => params.options = Some(value),
            "host" => host = Some(value),
            "port" => port = Some(parse_port(&value)?),
            "user" => params.user = Some(value),
            "dbname" => dbname = Some(value),
            other => {
                return Err(format!(
                    "unsupported query parameter `{other}` in the database URL (supported: {})",
                    PG_PARAMS.join(", ")
                ));
            }
        }
    }
    params.host = host.unwrap_or_else(default_socket_dir);
    params.port = port.unwrap_or(5432);
    params.dbname = dbname;

    let mut redacted = format!("{scheme}://{redacted_userinfo}{hostport}{path}");
    if !redacted_query.is_empty() {
        redacted.push('?');
        redacted.push_str(&redacted_query.join("&"));
    }
    Ok((params, redacted))
}

fn default_socket_dir() -> String {
    if Path::new("/var/run/postgresql").is_dir() { "/var/run/postgresql".into() } else { "/tmp".into() }
}

fn parse_port(p: &str) -> Result<u16, String> {
    p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| format!("port `{p}` is not a number from 1 to 65535"))
}

/// Percent-decodes one URL component; `what` names it in errors (the value itself is never
/// quoted: it may be the password).
fn decode(s: &str, what: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => out.push(b),
                None => return Err(format!("bad percent-encoding in the database URL's {what}")),
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("the database URL's {what} is not valid UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<DbUrl, String> {
        DbUrl::parse(&Secret::new(s), Path::new("/work/tree"))
    }

    #[test]
    fn sqlite_relative_and_absolute() {
        assert_eq!(parse("sqlite:///app.db").unwrap(), DbUrl::Sqlite { path: "/work/tree/app.db".into() });
        assert_eq!(parse("sqlite:///data/app.db").unwrap(), DbUrl::Sqlite { path: "/work/tree/data/app.db".into() });
        let abs = parse("sqlite:////var/lib/app.db").unwrap();
        assert_eq!(abs, DbUrl::Sqlite { path: "/var/lib/app.db".into() });
        assert_eq!(abs.redacted(), "sqlite:////var/lib/app.db");
        assert_eq!(abs.for_child().expose(), "sqlite:////var/lib/app.db");
        assert!(parse("sqlite://").unwrap_err().contains("in-memory"));
        assert!(parse("sqlite:///:memory:").unwrap_err().contains("in-memory"));
        assert!(parse("sqlite:///a.db?mode=ro").unwrap_err().contains("query"));
        assert!(parse("sqlite://host/a.db").unwrap_err().contains("slashes"));
    }

    #[test]
    fn postgres_forms() {
        for scheme in ["postgresql", "postgres", "postgresql+psycopg2", "postgresql+psycopg", "POSTGRESQL"] {
            let url = format!("{scheme}://app:s%40cr%2Ft@db.example.com:6543/shop?sslmode=require&application_name=x");
            let u = parse(&url).unwrap();
            assert_eq!(
                u.redacted(),
                format!("{scheme}://app:***@db.example.com:6543/shop?sslmode=require&application_name=x")
            );
            let p = u.pg_params().unwrap();
            assert_eq!(p.user.as_deref(), Some("app"));
            assert_eq!(p.password.as_ref().unwrap().expose(), "s@cr/t");
            assert_eq!((p.host.as_str(), p.port, p.dbname.as_deref()), ("db.example.com", 6543, Some("shop")));
            assert_eq!(p.sslmode, SslMode::Require);
            assert_eq!(p.application_name.as_deref(), Some("x"));
            assert_eq!(u.for_child().expose(), url);
            assert!(u.secrets().iter().any(|s| s == "s@cr/t"));
            assert!(u.secrets().iter().any(|s| s == "s%40cr%2Ft"));
            assert_eq!(u.redact_in("failed for s%40cr%2Ft and s@cr/t"), "failed for *** and ***");
        }
    }

    #[test]
    fn postgres_defaults_ipv6_and_password_param() {
        let u = parse("postgresql://[::1]/db?password=hunter2x&user=bob").unwrap();
        assert_eq!(u.redacted(), "postgresql://[::1]/db?password=***&user=bob");
        let p = u.pg_params().unwrap();
        assert_eq!((p.host.as_str(), p.port), ("::1", 5432));
        assert_eq!(p.user.as_deref(), Some("bob"));
        assert_eq!(p.password.unwrap().expose(), "hunter2x");
        assert_eq!(p.sslmode, SslMode::Prefer);
        // An `@` in a password that was not encoded still parses (the last `@` ends it).
        let u = parse("postgresql://u:p@ss@h/d").unwrap();
        assert_eq!(u.redacted(), "postgresql://u:***@h/d");
        assert_eq!(u.pg_params().unwrap().password.unwrap().expose(), "p@ss");
        let p = parse("postgres://h").unwrap().pg_params().unwrap();
        assert_eq!((p.user, p.password, p.dbname), (None, None, None));
        let p = parse("postgresql:///db?host=%2Frun%2Fpg").unwrap().pg_params().unwrap();
        assert_eq!(p.host, "/run/pg");
    }

    #[test]
    fn bad_urls_never_echo_the_password() {
        for (url, needle) in [
            ("mysql://u:topsecret@h/d", "unsupported database URL scheme `mysql`"),
            ("topsecret", "not a database URL"),
            ("postgresql://u:topsecret@h:99999/d", "port"),
            ("postgresql://u:topsecret@h/d?sslmode=bogus", "sslmode"),
            ("postgresql://u:topsecret@h/d?foo=1", "unsupported query parameter `foo`"),
            ("postgresql://u:top%zzsecret@h/d", "percent-encoding in the database URL's password"),
            ("postgresql://u:topsecret@h1,h2/d", "several hosts"),
        ] {
            let err = parse(url).unwrap_err();
            assert!(err.contains(needle), "{url}: {err}");
            assert!(!err.contains("topsecret"), "{err}");
        }
    }
}
