//! Alembic as its users lay it out: `alembic.ini` in a sub-folder, made by `alembic init`, with
//! the stock `env.py` that reads `sqlalchemy.url` from the ini, relative to where Alembic runs.

use std::path::Path;
use std::process::Command;

use rollback_core::config::Config;
use rollback_core::event::Recorder;
use rollback_core::plan::Level;
use rollback_core::prompt::AutoConfirm;
use rollback_core::rt::block_on;
use rollback_core::vcs::{self, BackendKind};
use rollback_core::{Rollback, RunOptions, RunStatus};
use rollback_testkit::TestRepo;
use rollback_testkit::db::python;

/// Two Alembic revisions, a1 (users) and b2 (orders), shared with `alembic_env_url`.
pub(crate) const MIGRATION_1: &str = r#"revision = "a1"
down_revision = None
branch_labels = None
depends_on = None
from alembic import op
import sqlalchemy as sa

def upgrade():
    op.create_table("users", sa.Column("id", sa.Integer(), primary_key=True))

def downgrade():
    op.drop_table("users")
"#;

pub(crate) const MIGRATION_2: &str = r#"revision = "b2"
down_revision = "a1"
branch_labels = None
depends_on = None
from alembic import op
import sqlalchemy as sa

def upgrade():
    op.create_table("orders", sa.Column("id", sa.Integer(), primary_key=True))

def downgrade():
    op.drop_table("orders")
"#;

#[test]
fn alembic_runs_in_the_folder_of_its_ini_with_the_stock_env_py() {
    let r = TestRepo::new();
    let backend = r.path().join("backend");
    std::fs::create_dir_all(&backend).unwrap();
    let init =
        Command::new(python()).args(["-m", "alembic", "init", "migrations"]).current_dir(&backend).output().unwrap();
    assert!(init.status.success(), "alembic init: {}", String::from_utf8_lossy(&init.stderr));
    // The stock ini, pointed at the app's database relative to the ini's folder.
    let ini = std::fs::read_to_string(backend.join("alembic.ini")).unwrap();
    let ini = ini.replace("driver://user:pass@localhost/dbname", "sqlite:///app.db");
    assert!(ini.contains("sqlite:///app.db"), "the stock ini names its URL as expected");
    r.write("backend/alembic.ini", &ini);
    r.write("backend/migrations/versions/a1_users.py", MIGRATION_1);
    r.git(&["add", "-A"]);
    r.git(&["commit", "-q", "-m", "v1"]);
    r.git(&["tag", "v1"]);
    r.write("backend/migrations/versions/b2_orders.py", MIGRATION_2);
    r.git(&["add", "-A"]);
    r.git(&["commit", "-q", "-m", "v2"]);

    let text = format!(
        "[database]\nkind = \"alembic\"\nurl = \"sqlite:///backend/app.db\"\nalembic_ini = \"backend/alembic.ini\"\npython = \"{}\"\n",
        python()
    );
    let config = Config::parse(&text, Some(Path::new("/outside/forge-rollback.toml"))).unwrap();
    let rb = Rollback::with_backend(vcs::open(BackendKind::GitCli, r.path()).unwrap(), config).unwrap();
    let db = rb.db().unwrap().unwrap();
    block_on(db.upgrade(&[])).unwrap();
    let revs = |rb: &Rollback| -> Vec<String> {
        block_on(rb.db().unwrap().unwrap().current()).unwrap().into_iter().map(|r| r.0).collect()
    };
    assert_eq!(revs(&rb), ["b2"], "the upgrade reached the configured database");
    assert!(!r.exists("app.db"), "no stray database at the work-tree root");

    let full = RunOptions { level: Some(Level::Full), target: Some("v1".into()), ..RunOptions::default() };
    let out = rb.run(&full, &AutoConfirm, &Recorder::default()).unwrap();
    assert_eq!(out.status, RunStatus::Succeeded, "{:?}", out.error);
    assert_eq!(revs(&rb), ["a1"]);
    assert!(!r.exists("app.db"), "no stray database at the work-tree root");
}
