//! What a rollback would do to the database: where it is, where the target commit expects it,
//! the downgrade path, and its risks. Reads only.

use serde::{Deserialize, Serialize};

use super::{DbMigrator, DowngradeStep, Revision};
use crate::model::{Risk, RiskCode, RiskSeverity as Severity};
use crate::vcs::{CommitId, VcsBackend};

/// The database part of an assessment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DbAssessment {
    /// `alembic` or `sql`.
    pub kind: String,
    /// The database, password removed.
    pub database: String,
    /// Whether it could be reached (when not, the rest is what the files say).
    pub reachable: bool,
    /// The revision(s) the database is at.
    pub current: Vec<Revision>,
    /// The head revision(s) of the migration files in the work tree.
    pub code_heads: Vec<Revision>,
    /// The head revision(s) of the target commit's migration files.
    pub target_heads: Vec<Revision>,
    /// The migrations a full rollback undoes, in order.
    pub path: Vec<DowngradeStep>,
    /// Whether the schema must move (current differs from the target's heads).
    pub needs_downgrade: bool,
    /// Risks, with stable codes: `db_unreachable`, `irreversible_downgrade`,
    /// `destructive_upgrade`, `multiple_heads`, `db_ahead_of_code`, `unknown_db_revision`,
    /// `no_downgrade_path`, `edited_migration`.
    pub risks: Vec<Risk>,
}

/// What the `db_unreachable` risk of a database that answered with an error adds to the error.
pub(crate) const PATH_ASSUMED: &str = "; the downgrade path below assumes the database is at the code's heads";

/// Assesses the database for a rollback to `target`. A database that cannot be reached is a
/// risk, not an error (the assessment is still useful); files that do not parse are errors.
///
/// Risks, by code:
/// - `db_unreachable` (high): the database did not answer; the path shown assumes it is at the
///   work tree's heads;
/// - `unknown_db_revision` (high): the database is at a revision no migration file of the work
///   tree defines, so the downgrade code is not here;
/// - `db_ahead_of_code` (high): the same, for a numbered (native) revision above every file's:
///   a newer release migrated the database;
/// - `no_downgrade_path` (high): the target's heads are not below the database's revisions
///   (they would need an upgrade, or the target has migrations the work tree lacks);
/// - `irreversible_downgrade` (high): a migration on the path cannot be undone;
/// - `destructive_upgrade` (medium): a migration on the path dropped tables or columns; its
///   downgrade brings the schema back, not the data;
/// - `edited_migration` (medium): an applied migration's file changed since;
/// - `multiple_heads` (medium): the work tree's or the target's files have several heads.
pub async fn assess(migrator: &dyn DbMigrator, vcs: &dyn VcsBackend, target: &CommitId) -> super::Result<DbAssessment> {
    let database = migrator.database().describe();
    let code = migrator.graph_worktree().await?;
    let target_graph = migrator.graph_at(vcs, target).await?;
    let code_heads = code.heads();
    let target_heads = target_graph.heads();
    let mut risks = Vec::new();

    let (reachable, current) = match migrator.database().ping().await {
        Ok(_) => (true, migrator.current().await?),
        // A SQLite file that does not exist is a wrong path far more often than a database
        // never created: a rollback must not plan "base" from it.
        Err(_) if !migrator.database().exists() => {
            risks.push(risk(
                RiskCode::DbUnreachable,
                Severity::High,
                format!(
                    "the SQLite database {database} does not exist: the configured path is wrong, or the database was never created"
                ),
            ));
            (false, Vec::new())
        }
        Err(e) => {
            risks.push(risk(RiskCode::DbUnreachable, Severity::High, format!("{e}{PATH_ASSUMED}")));
            (false, Vec::new())
        }
    };
    let from = if reachable { current.clone() } else { code_heads.clone() };

    for (which, heads) in [("the work tree's", &code_heads), ("the target's", &target_heads)] {
        if heads.len() > 1 {
            risks.push(risk(
                RiskCode::MultipleHeads,
                Severity::Medium,
                format!("{which} migrations have {} heads ({}); merge them", heads.len(), join(heads)),
            ));
        }
    }

    let unknown: Vec<&Revision> = from.iter().filter(|r| code.get(r).is_none()).collect();
    for rev in &unknown {
        let ahead =
            rev.as_str().parse::<u64>().ok().is_some_and(|n| {
                code.migrations.iter().all(|m| m.revision.as_str().parse::<u64>().is_ok_and(|k| k < n))
            });
        if ahead {
            risks.push(risk(
                RiskCode::DbAheadOfCode,
                Severity::High,
                format!("`{database}` is at migration {rev}, newer than every migration file in the work tree: a newer release migrated it, and the code to undo that is not here"),
            ));
        } else {
            risks.push(risk(
                RiskCode::UnknownDbRevision,
                Severity::High,
                format!("`{database}` is at revision `{rev}`, which no migration file in the work tree defines; it cannot be downgraded with these files"),
            ));
        }
    }

    let mut path = Vec::new();
    if unknown.is_empty() {
        match code.downgrade_path_on(&database, &from, &target_heads) {
            Ok(steps) => path = steps,
            Err(e) => risks.push(risk(RiskCode::NoDowngradePath, Severity::High, e.to_string())),
        }
    }
    for step in &path {
        if let Some(reason) = &step.irreversible {
            risks.push(risk(
                RiskCode::IrreversibleDowngrade,
                Severity::High,
                format!("migration `{}` ({}) cannot be undone: {reason}", step.revision, step.description),
            ));
        }
        if let Some(m) = code.get(&step.revision)
            && !m.destructive_upgrade.is_empty()
        {
            risks.push(risk(
                RiskCode::DestructiveUpgrade,
                Severity::Medium,
                format!(
                    "migration `{}` ({}) removed data ({}); undoing it restores the schema, not the data (the snapshot has it)",
                    step.revision,
                    step.description,
                    m.destructive_upgrade.join(", ")
                ),
            ));
        }
    }
    if reachable {
        for rev in migrator.edited_migrations().await? {
            risks.push(risk(
                RiskCode::EditedMigration,
                Severity::Medium,
                format!("migration `{rev}` was applied to `{database}` with other content than its file has now"),
            ));
        }
    }
    risks.sort_by_key(|r| std::cmp::Reverse(r.severity));

    let needs_downgrade = sorted(&from) != sorted(&target_heads);
    Ok(DbAssessment {
        kind: migrator.kind().to_owned(),
        database,
        reachable,
        current,
        code_heads,
        target_heads,
        path,
        needs_downgrade,
        risks,
    })
}

fn risk(code: RiskCode, severity: Severity, message: String) -> Risk {
    Risk::new(code, severity, message)
}

fn join(revs: &[Revision]) -> String {
    revs.iter().map(Revision::as_str).collect::<Vec<_>>().join(", ")
}

fn sorted(revs: &[Revision]) -> Vec<Revision> {
    let mut v = revs.to_vec();
    v.sort();
    v
}
