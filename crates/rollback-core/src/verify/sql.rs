//! `kind = "sql"` and `kind = "db-revision"`, through the [`DbProbe`] the engine hands in.

use super::config::SqlCheck;
use super::http::quote;
use super::{DbProbe, Outcome};

/// A database error on one line, whole: the cause is at its end (`quote` would cut it off).
fn one_line(error: &str) -> String {
    error.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn no_database(kind: &str) -> Outcome {
    Outcome::Error(format!("a `{kind}` check needs a database, and none is configured (add a `[database]` section)"))
}

/// Runs a `sql` check once.
pub(super) async fn run_sql(check: &SqlCheck, db: Option<&dyn DbProbe>) -> Outcome {
    let Some(db) = db else { return no_database("sql") };
    let value = match db.query_scalar(&check.query).await {
        Ok(v) => v,
        Err(e) => return Outcome::Error(format!("the query failed: {}", one_line(&e))),
    };
    let shown = |v: &Option<String>| match v {
        Some(v) => format!("`{}`", quote(v)),
        None => "no value (no row, or NULL)".to_owned(),
    };
    match &check.expect {
        Some(expected) if value.as_deref() != Some(expected.as_str()) => {
            Outcome::Failed(format!("the query returned {}, expected `{}`", shown(&value), quote(expected)))
        }
        _ => Outcome::Passed(format!("the query returned {}", shown(&value))),
    }
}

fn revisions(list: &[String]) -> String {
    if list.is_empty() { "no revision".to_owned() } else { list.join(", ") }
}

/// Runs a `db-revision` check once.
pub(super) async fn run_revision(db: Option<&dyn DbProbe>) -> Outcome {
    let Some(db) = db else { return no_database("db-revision") };
    let (mut at, mut expected) = match db.revisions().await {
        Ok(r) => r,
        Err(e) => return Outcome::Error(format!("cannot read the database's revision: {}", one_line(&e))),
    };
    at.sort();
    at.dedup();
    expected.sort();
    expected.dedup();
    if at == expected {
        Outcome::Passed(format!("the database is at {}, as the code expects", revisions(&at)))
    } else {
        Outcome::Failed(format!(
            "the database is at {}, the code expects {}: run the migrations, or roll the database back",
            revisions(&at),
            revisions(&expected)
        ))
    }
}
