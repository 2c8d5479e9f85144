//! Row-keeping undo with real Alembic, for values a downgrade changes in columns that stay: a
//! value whose type's `=` calls it equal to what the downgrade left (letter case of `citext`, of
//! a nondeterministic collation, of a SQLite `NOCASE` column, the scale of a `numeric`, the way
//! an `interval` is written) is a changed value all the same, and comes back; a column whose type
//! the upgrade changed (`text` to `text[]`) does not stop the forecast; and a run whose forecast
//! could not be made has what its downgrade deleted and changed measured by its undo.

use rollback_testkit::db::Engine;

use crate::common::fr;
use crate::rows_sqlite_exact::Deployed;

/// The v4 migration over the Alembic fixture (after `b84e1d2c3f03`), with the bodies of its
/// `upgrade` and `downgrade` (indented Python).
fn v4(upgrade: &str, downgrade: &str) -> String {
    format!(
        "from alembic import op\nimport sqlalchemy as sa\n\nrevision = \"e4e4e4e4e404\"\ndown_revision = \"b84e1d2c3f03\"\nbranch_labels = None\ndepends_on = None\n\n\ndef upgrade():\n{upgrade}\n\n\ndef downgrade():\n{downgrade}\n"
    )
}

/// v4 over the Alembic fixture: adds `users.display`; its downgrade drops it, and normalises
/// the columns the test gives `users` (lower case, one decimal, days for hours).
fn normalises() -> String {
    v4(
        r#"    op.add_column("users", sa.Column("display", sa.Text()))"#,
        r#"    op.execute("UPDATE users SET mail = lower(mail), nick = lower(nick), amount = round(amount, 1), span = justify_hours(span)")
    op.drop_column("users", "display")"#,
    )
}

/// `citext`, an ICU collation that ignores case, and the columns [`normalises`] changes.
fn with_loose_columns(d: &Deployed) {
    d.sql("CREATE EXTENSION IF NOT EXISTS citext");
    d.sql("CREATE COLLATION ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false)");
    d.sql("ALTER TABLE users ADD COLUMN mail citext, ADD COLUMN nick text COLLATE ci, ADD COLUMN amount numeric, ADD COLUMN span interval");
}

const LOOSE: &str = "SELECT concat_ws('|', mail::text, nick, amount::text, span::text) FROM users WHERE id = 1";

#[test]
fn values_equal_to_what_the_downgrade_left_are_changed_values_and_come_back() {
    let d = Deployed::new(Engine::Postgres, &normalises());
    with_loose_columns(&d);
    d.sql("INSERT INTO users (id, name, mail, nick, amount, span, display) VALUES (1, 'grace', 'Grace.Hopper@Navy.MIL', 'GraceH', 1.50, '36:00:00', 'Grace')");
    let before = d.sql(LOOSE);
    assert_eq!(before.as_deref(), Some("Grace.Hopper@Navy.MIL|GraceH|1.50|36:00:00"));

    let plan = fr(&d.repo, &["plan", "--full", "--target", "v3", "--json"]);
    plan.ok();
    let changed: Vec<String> = plan.json()["data_loss"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["kind"] == "changed")
        .map(|l| format!("{}={}", l["column"].as_str().unwrap(), l["rows"]))
        .collect();
    assert_eq!(changed, ["amount=1", "mail=1", "nick=1", "span=1"], "{}", plan.stdout);

    let stderr = d.round_trip("INSERT INTO users (id, name) VALUES (10, 'linus')");
    // The four the downgrade changed, and `display`, which it dropped.
    assert!(stderr.contains("5 column value(s) written back"), "{stderr}");
    assert_eq!(d.sql(LOOSE), before, "each value as it was stored, not one its type calls equal");
    assert_eq!(d.sql("SELECT display FROM users WHERE id = 1").as_deref(), Some("Grace"));
    assert_eq!(d.sql("SELECT name FROM users WHERE id = 10").as_deref(), Some("linus"), "written since: kept");
}

/// v4 over the Alembic fixture, for SQLite: adds `users.display`; its downgrade drops it and
/// lower-cases the `NOCASE` column the test gives `users`.
fn lowers() -> String {
    v4(
        r#"    op.add_column("users", sa.Column("display", sa.Text()))"#,
        r#"    op.execute("UPDATE users SET mail = lower(mail)")
    op.execute("ALTER TABLE users DROP COLUMN display")"#,
    )
}

#[test]
fn sqlite_letter_case_of_a_nocase_column_is_a_changed_value_and_comes_back() {
    let d = Deployed::new(Engine::Sqlite, &lowers());
    d.sql("ALTER TABLE users ADD COLUMN mail TEXT COLLATE NOCASE");
    d.sql("INSERT INTO users (id, name, mail, display) VALUES (1, 'grace', 'Grace.Hopper@Navy.MIL', 'Grace')");

    let plan = fr(&d.repo, &["plan", "--full", "--target", "v3", "--json"]);
    plan.ok();
    let changed =
        plan.json()["data_loss"].as_array().unwrap().iter().any(|l| l["kind"] == "changed" && l["column"] == "mail");
    assert!(changed, "{}", plan.stdout);

    let stderr = d.round_trip("INSERT INTO users (id, name) VALUES (10, 'linus')");
    assert!(stderr.contains("2 column value(s) written back"), "{stderr}");
    assert_eq!(d.sql("SELECT mail FROM users WHERE id = 1").as_deref(), Some("Grace.Hopper@Navy.MIL"));
}

/// v4 over the Alembic fixture: `users.name` becomes a `text[]` (split at commas); its
/// downgrade deletes the rows of `@new.example` and joins the names again.
fn to_array() -> String {
    v4(
        r#"    op.execute("ALTER TABLE users ALTER COLUMN name TYPE text[] USING string_to_array(name, ',')")"#,
        r#"    op.execute("DELETE FROM users WHERE email LIKE '%@new.example'")
    op.execute("ALTER TABLE users ALTER COLUMN name TYPE varchar(50) USING array_to_string(name, ',')")"#,
    )
}

#[test]
fn a_column_whose_type_the_upgrade_changed_is_compared_and_its_values_come_back() {
    let d = Deployed::new(Engine::Postgres, &to_array());
    d.sql("INSERT INTO users (id, name, email) VALUES (1, '{a,b}', 'a@old.example'), (2, '{x,\"y,z\"}', 'x@old.example'), (3, '{n}', 'n@new.example')");

    let plan = fr(&d.repo, &["plan", "--full", "--target", "v3", "--json"]);
    plan.ok();
    let plan = plan.json();
    assert!(
        !plan["risks"].as_array().into_iter().flatten().any(|r| r["code"] == "data_loss_unknown"),
        "the forecast was made: {plan}"
    );
    let losses: Vec<String> = plan["data_loss"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| format!("{} {} {}", l["kind"].as_str().unwrap(), l["column"].as_str().unwrap_or("-"), l["rows"]))
        .collect();
    assert_eq!(losses, ["removed - 1", "changed name 2"], "{plan}");

    let stderr = d.round_trip("INSERT INTO users (id, name, email) VALUES (10, 'linus', 'l@old.example')");
    assert!(stderr.contains("1 row(s) put back"), "{stderr}");
    assert_eq!(d.sql("SELECT name::text FROM users WHERE id = 2").as_deref(), Some("{x,\"y,z\"}"));
    assert_eq!(d.sql("SELECT name::text FROM users WHERE id = 3").as_deref(), Some("{n}"), "deleted: back");
    assert_eq!(d.sql("SELECT name::text FROM users WHERE id = 10").as_deref(), Some("{linus}"), "kept");
}

/// v4 over the Alembic fixture: adds `users.display`; its downgrade deletes the rows of
/// `@new.example`, lower-cases `name`, and drops `display`. On a scratch copy, while the file
/// `marker` exists, it fails: the data-loss forecast cannot be made.
fn unforecast(marker: &std::path::Path) -> String {
    let marker = marker.display();
    v4(
        r#"    op.add_column("users", sa.Column("display", sa.Text()))"#,
        &format!(
            r#"    import os
    if "forge_rollback_scratch" in str(op.get_bind().engine.url) and os.path.exists("{marker}"):
        raise RuntimeError("this copy cannot be taken down")
    op.execute("DELETE FROM users WHERE email LIKE '%@new.example'")
    op.execute("UPDATE users SET name = lower(name)")
    op.drop_column("users", "display")"#
        ),
    )
}

#[test]
fn the_undo_of_a_run_without_a_forecast_measures_what_its_downgrade_deleted_and_changed() {
    let marker_dir = tempfile::tempdir().unwrap();
    let marker = marker_dir.path().join("no-copies");
    std::fs::write(&marker, "").unwrap();
    let d = Deployed::new(Engine::Postgres, &unforecast(&marker));
    d.sql("INSERT INTO users (id, name, email, display) VALUES (1, 'Ada', 'a@old.example', 'A'), (2, 'Bo', 'b@new.example', 'B')");
    let rows = "SELECT string_agg(concat_ws('|', id, name, email, display), ',' ORDER BY id) FROM users";
    let before = d.sql(rows);

    let run = fr(&d.repo, &["run", "--full", "--yes", "--target", "v3", "--json"]);
    run.ok();
    let id = run.json()["run_id"].as_str().unwrap().to_owned();
    let plan = fr(&d.repo, &["runs", "show", &id, "--json"]);
    assert!(plan.stdout.contains("data_loss_unknown"), "the forecast failed: {}", plan.stdout);
    assert_eq!(d.sql("SELECT count(*) FROM users").as_deref(), Some("1"), "the downgrade deleted Bo");
    d.sql("INSERT INTO users (id, name, email) VALUES (10, 'linus', 'l@old.example')");
    let rolled_back = d.sql("SELECT string_agg(concat_ws('|', id, name, email), ',' ORDER BY id) FROM users");

    // Its downgrade cannot be measured either: refused, nothing changed.
    let refused = fr(&d.repo, &["undo", &id, "--yes"]);
    refused.code(4);
    assert!(refused.stderr.contains("its data-loss forecast could not be made"), "{}", refused.stderr);
    assert!(refused.stderr.contains("--restore-snapshot"), "{}", refused.stderr);
    assert_eq!(
        d.sql("SELECT string_agg(concat_ws('|', id, name, email), ',' ORDER BY id) FROM users"),
        rolled_back,
        "nothing changed"
    );

    std::fs::remove_file(&marker).unwrap();
    let undo = fr(&d.repo, &["undo", &id, "--yes"]);
    undo.ok();
    assert!(undo.stderr.contains("1 row(s) put back"), "{}", undo.stderr);
    d.sql("DELETE FROM users WHERE id = 10");
    assert_eq!(d.sql(rows), before, "the deleted row and the changed name are back:\n{}", undo.stderr);
}
