//! How Alembic is started: `python -c DRIVER -c alembic.ini <command>`, the project's own
//! Alembic (`alembic.config.main`, as `python -m alembic` runs it) with one addition.
//!
//! The stock `env.py` of `alembic init` connects with `sqlalchemy.url` from `alembic.ini`, not
//! with the URL forge-rollback hands in `$DATABASE_URL`. When that `sqlalchemy.url` names the
//! configured database (the same SQLite file, resolved from the folder of the real
//! `alembic.ini`; the same PostgreSQL host, port, database and user), the driver sets it, for
//! this one process, to the handed URL — keeping the ini's driver name and query options — so
//! the same `env.py` also migrates the throwaway copies the forecast and the undo's rehearsal
//! work on, and the undo can keep the rows written since a run. An ini naming another
//! database is left alone: the environment check then refuses it, as before, and a copy is
//! never migrated unless `env.py` is proven to connect to it (`probe_scratch`).

/// Python run before Alembic's `main` (and before the environment probe's).
pub(super) const PATCH: &str = r#"
import os as _fr_os
from alembic.config import Config as _FrConfig

def _fr_same(ini, live, live_dir):
    from sqlalchemy.engine import make_url
    try:
        a, b = make_url(ini), make_url(live)
    except Exception:
        return False
    if a.get_backend_name() != b.get_backend_name():
        return False
    if a.get_backend_name() == "sqlite":
        if not a.database or not b.database or a.database == ":memory:":
            return False
        path = a.database if _fr_os.path.isabs(a.database) else _fr_os.path.join(live_dir, a.database)
        return _fr_os.path.realpath(path) == _fr_os.path.realpath(b.database)
    key = lambda u: (u.host or "localhost", u.port or 5432, u.database or u.username, u.username)
    return key(a) == key(b)

_fr_init = _FrConfig.__init__

def _fr_config_init(self, *args, **kwargs):
    _fr_init(self, *args, **kwargs)
    handed = _fr_os.environ.get("DATABASE_URL")
    live = _fr_os.environ.get("FORGE_ROLLBACK_LIVE_URL")
    live_dir = _fr_os.environ.get("FORGE_ROLLBACK_LIVE_DIR", ".")
    try:
        ini = self.get_main_option("sqlalchemy.url")
    except Exception:
        ini = None
    if not (handed and live and ini and _fr_same(ini, live, live_dir)):
        return
    from sqlalchemy.engine import make_url
    h = make_url(handed)
    url = make_url(ini).set(username=h.username, password=h.password, host=h.host, port=h.port, database=h.database)
    render = getattr(url, "render_as_string", None)
    text = render(hide_password=False) if render else str(url)
    self.set_main_option("sqlalchemy.url", text.replace("%", "%%"))

_FrConfig.__init__ = _fr_config_init
"#;

/// `python -c DRIVER -c alembic.ini <command>`: Alembic's command line after [`PATCH`].
pub(super) fn driver() -> String {
    format!("{PATCH}\nimport sys\nfrom alembic.config import main\nmain(argv=sys.argv[1:], prog=\"alembic\")\n")
}
