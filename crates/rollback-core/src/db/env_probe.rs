//! Which database Alembic's `env.py` would really connect to.
//!
//! forge-rollback hands the configured URL to Alembic in `DATABASE_URL`, but an `env.py` is the
//! project's code: the stock one from `alembic init` reads `sqlalchemy.url` from `alembic.ini`
//! instead, so a downgrade would run on another database (or create a stray SQLite file) while
//! ours stays where it was. The probe runs `alembic current` exactly as a downgrade would run
//! Alembic (same interpreter, folder and environment) with SQLAlchemy's `create_engine` and
//! `create_async_engine` replaced by a function that records the URL and stops the command
//! before any connection is made: nothing is connected to, no file is created. The URL it
//! records is compared with the configured one (SQLite by resolved path, PostgreSQL by host,
//! port, database and user).

use std::path::Path;

use super::alembic::AlembicMigrator;
use super::url::DbUrl;
use super::{Error, Result};
use crate::secret::Secret;

/// The probe: `python -c PROBE -c alembic.ini current`.
const PROBE: &str = r#"
import sys
import sqlalchemy
import sqlalchemy.engine
import sqlalchemy.engine.create as _create

class _ForgeRollbackProbe(BaseException):
    pass

def _stop(url, *args, **kwargs):
    raise _ForgeRollbackProbe(url)

for _m in (sqlalchemy, sqlalchemy.engine, _create):
    _m.create_engine = _stop
try:
    import sqlalchemy.ext.asyncio as _aio
    import sqlalchemy.ext.asyncio.engine as _aio_engine
    for _m in (_aio, _aio_engine):
        _m.create_async_engine = _stop
except ImportError:
    pass

from alembic.config import main
try:
    main(argv=sys.argv[1:], prog="alembic")
except _ForgeRollbackProbe as probe:
    url = sqlalchemy.engine.make_url(probe.args[0])
    render = getattr(url, "render_as_string", None)
    text = render(hide_password=False) if render else str(url)
    sys.stdout.write("\nFORGE-ROLLBACK-ENV-URL " + text + "\n")
    sys.exit(0)
sys.stdout.write("\nFORGE-ROLLBACK-ENV-URL-NONE\n")
"#;

const MARK: &str = "FORGE-ROLLBACK-ENV-URL ";

/// Fails with [`Error::EnvElsewhere`] when `env.py` would connect elsewhere. An `env.py` that
/// creates no engine (it is handed a connection some other way) cannot be asked, and passes.
pub(super) async fn check(m: &AlembicMigrator) -> Result<()> {
    let db = m.url_database();
    let script = format!("{}{PROBE}", super::alembic_driver::PATCH);
    let out = m.python_alembic(&["-c", &script], &["current"], std::time::Duration::ZERO).await.map_err(|detail| {
        Error::Program { program: "alembic current (forge-rollback's check of env.py)".to_owned(), detail }
    })?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let Some(line) = stdout.lines().rev().find_map(|l| l.strip_prefix(MARK)) else {
        return Ok(());
    };
    let raw = Secret::new(line.trim());
    let run_in = m.run_in();
    let configured = db.url();
    let env = DbUrl::parse(&raw, &run_in);
    if let Ok(env) = &env
        && same_database(configured, env)
    {
        return Ok(());
    }
    let shown = match &env {
        Ok(u) => u.redacted(),
        Err(_) => crate::secret::redact_url_credentials(raw.expose()),
    };
    Err(Error::EnvElsewhere {
        configured: configured.redacted(),
        env: shown,
        what: format!("`env.py` of `{}`", Path::new(&run_in).join("alembic.ini").display()),
    })
}

/// The same SQLite file (resolved), or the same PostgreSQL database, user, host and port.
fn same_database(a: &DbUrl, b: &DbUrl) -> bool {
    match (a, b) {
        (DbUrl::Sqlite { path: x }, DbUrl::Sqlite { path: y }) => {
            crate::fsutil::resolve(x) == crate::fsutil::resolve(y)
        }
        (DbUrl::Postgres { .. }, DbUrl::Postgres { .. }) => match (a.pg_params(), b.pg_params()) {
            (Some(p), Some(q)) => {
                let db = |p: &super::url::PgParams| p.dbname.clone().or_else(|| p.user.clone());
                (p.host.as_str(), p.port, db(&p), p.user.as_deref())
                    == (q.host.as_str(), q.port, db(&q), q.user.as_deref())
            }
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> DbUrl {
        DbUrl::parse(&Secret::new(s), Path::new("/srv/app")).unwrap()
    }

    #[test]
    fn same_database_compares_what_names_a_database() {
        assert!(same_database(&url("sqlite:///app.db"), &url("sqlite:////srv/app/app.db")));
        assert!(!same_database(&url("sqlite:///app.db"), &url("sqlite:///backend/app.db")));
        assert!(same_database(
            &url("postgresql://u:one@h:5432/app"),
            &url("postgresql+psycopg2://u:two@h/app?sslmode=require")
        ));
        assert!(!same_database(&url("postgresql://u@h/app"), &url("postgresql://u@h/other")));
        assert!(!same_database(&url("postgresql://u@h/app"), &url("postgresql://v@h/app")));
        assert!(!same_database(&url("postgresql://u@h/app"), &url("sqlite:///app.db")));
    }
}
