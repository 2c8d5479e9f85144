//! The exact restore of a PostgreSQL database with what a dump re-creates outside its schemas,
//! through the binary with real Alembic: publications (a CDC feed's `FOR TABLE` and
//! `FOR ALL TABLES`) and a foreign server come back as they were, tables and all; a database
//! with a subscription is refused before anything changes, naming it and the way out, and
//! `resume` restores once it is dropped. The run's forecast on a copy made with the dump does
//! not take the subscription along (a copy with one could not be dropped).

use rollback_testkit::db::Engine;

use crate::common::fr;
use crate::rows_sqlite_exact::Deployed;

/// v4 over the Alembic fixture: a column the rollback drops.
const NICKNAME: &str = r#"from alembic import op
import sqlalchemy as sa

revision = "e4e4e4e4e404"
down_revision = "b84e1d2c3f03"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("users", sa.Column("nickname", sa.String(40), nullable=True))


def downgrade():
    op.drop_column("users", "nickname")
"#;

/// Every publication of the database with its tables, one line each.
const PUBLICATIONS: &str = "SELECT string_agg(p.pubname || ' all=' || p.puballtables || ' ' || \
     coalesce((SELECT string_agg(t.schemaname || '.' || t.tablename, ',' ORDER BY t.schemaname, t.tablename) \
               FROM pg_publication_tables t WHERE t.pubname = p.pubname), '-'), E'\\n' ORDER BY p.pubname) \
     FROM pg_publication p";

/// Whether `users.nickname` is there: `1` or `0`.
const HAS_NICKNAME: &str =
    "SELECT count(*) FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'nickname'";

/// Scratch databases copied from this test's database that are still there.
const SCRATCH_LEFT: &str = "SELECT count(*) FROM pg_database \
     WHERE datname LIKE 'forge\\_rollback\\_scratch\\_%' AND datname LIKE '%\\_' || current_database()";

/// The rolled-back database: the deployed v4 with a row and `setup` done, then `run --full
/// --target v3` (which drops `users.nickname`). Returns it with the run's id and, from before the
/// run, the canonical dump and the [`PUBLICATIONS`].
fn rolled_back(setup: &[&str]) -> (Deployed, String, String, Option<String>) {
    let d = Deployed::new(Engine::Postgres, NICKNAME);
    d.sql("INSERT INTO users (id, name, nickname) VALUES (1, 'ada', 'ace')");
    for statement in setup {
        d.sql(statement);
    }
    let (dump, publications) = (d.dump(), d.sql(PUBLICATIONS));
    let run = fr(&d.repo, &["run", "--full", "--yes", "--target", "v3", "--json"]);
    run.ok();
    assert_eq!(run.json()["status"], "succeeded", "{}", run.stderr);
    assert_eq!(d.sql(SCRATCH_LEFT).as_deref(), Some("0"), "the forecast's copy is gone:\n{}", run.stderr);
    assert_eq!(d.sql(HAS_NICKNAME).as_deref(), Some("0"), "the rollback dropped the column");
    let id = run.json()["run_id"].as_str().unwrap().to_owned();
    (d, id, dump, publications)
}

#[test]
fn postgres_exact_undo_restores_publications_and_foreign_servers() {
    let (d, id, dump, publications) = rolled_back(&[
        "CREATE TABLE audit (id int PRIMARY KEY)",
        "CREATE PUBLICATION cdc FOR TABLE users, audit",
        "CREATE PUBLICATION everything FOR ALL TABLES",
        "CREATE PUBLICATION empty",
        "CREATE FOREIGN DATA WRAPPER feed_fdw",
        "CREATE SERVER feed FOREIGN DATA WRAPPER feed_fdw",
    ]);
    assert_eq!(
        publications.as_deref(),
        Some(
            "cdc all=false public.audit,public.users\nempty all=false -\neverything all=true public.alembic_version,public.audit,public.payments,public.users"
        ),
    );
    // A publication made while rolled back changes the fingerprint: a plain undo would keep it
    // and bring the schema forward (rollback-core's `pg_outside_tables.rs`). It is not in the
    // snapshot, so `--restore-snapshot`, the exact restore, drops it.
    d.sql("CREATE PUBLICATION later FOR TABLE audit");

    let undo = fr(&d.repo, &["undo", &id, "--yes", "--restore-snapshot"]);
    undo.ok();

    assert!(undo.stderr.contains("Restoring database"), "the exact restore:\n{}", undo.stderr);
    assert_eq!(d.sql("SELECT nickname FROM users WHERE id = 1").as_deref(), Some("ace"));
    assert_eq!(d.dump(), dump, "the database is as before the rollback");
    assert_eq!(d.sql(PUBLICATIONS), publications, "each publication with its tables, and no other");
    assert_eq!(
        d.sql("SELECT s.srvname || ' ' || w.fdwname FROM pg_foreign_server s JOIN pg_foreign_data_wrapper w ON w.oid = s.srvfdw")
            .as_deref(),
        Some("feed feed_fdw")
    );
}

#[test]
fn postgres_exact_undo_with_a_subscription_is_refused_until_it_is_dropped() {
    let (d, id, _, _) = rolled_back(&[
        "CREATE SUBSCRIPTION feed CONNECTION 'host=127.0.0.1 port=1 dbname=nowhere' PUBLICATION cdc WITH (connect = false)",
    ]);

    let undo = fr(&d.repo, &["undo", &id, "--yes", "--json"]);
    undo.code(1);
    for words in ["logical replication subscription(s) `feed`", "this undo changed nothing", "SET (slot_name = NONE)"] {
        assert!(undo.stderr.contains(words), "`{words}` in:\n{}", undo.stderr);
    }
    let undo_id = undo.json()["run_id"].as_str().unwrap().to_owned();
    assert!(undo.stderr.contains(&format!("forge-rollback resume {undo_id}")), "{}", undo.stderr);
    assert_eq!(d.sql(HAS_NICKNAME).as_deref(), Some("0"), "nothing restored");
    assert_eq!(d.sql("SELECT count(*) FROM pg_subscription WHERE subname = 'feed'").as_deref(), Some("1"));

    // The way out the hint gives.
    d.sql("ALTER SUBSCRIPTION feed DISABLE");
    d.sql("ALTER SUBSCRIPTION feed SET (slot_name = NONE)");
    d.sql("DROP SUBSCRIPTION feed");
    let resume = fr(&d.repo, &["resume", &undo_id, "--yes"]);
    resume.ok();

    assert_eq!(d.sql("SELECT nickname FROM users WHERE id = 1").as_deref(), Some("ace"));
    assert_eq!(
        d.sql("SELECT subenabled::text || ' ' || subslotname FROM pg_subscription WHERE subname = 'feed'").as_deref(),
        Some("false feed"),
        "the snapshot's subscription is back, disabled"
    );
    d.sql("ALTER SUBSCRIPTION feed SET (slot_name = NONE)");
    d.sql("DROP SUBSCRIPTION feed");
}
