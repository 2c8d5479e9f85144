//! The report's "Data Loss" section: what the run can have lost, and, when its downgrade
//! dropped tables or columns holding rows, each of them with its count, the database backup
//! that keeps them and the command that brings them back.

use super::DataLoss;
use crate::journal::RunState;
use crate::model::RunStatus;
use crate::plan::Step;

/// The section for `state`: `backup_id` is its verified work-tree snapshot, if taken.
pub(super) fn of(state: &RunState, backup_id: Option<&str>, anything_else_began: bool) -> DataLoss {
    let db_backup = state.snapshot_of("db_snapshot").map(|s| s.to_string());
    let downgrade = state.plan.steps.iter().position(|s| matches!(s, Step::Downgrade { .. }));
    let done = downgrade.is_some_and(|i| state.done.get(i).is_some_and(Option::is_some));
    // A downgrade that began and did not end (killed, or failed having changed the database)
    // may have dropped what its forecast named: said, though the database backup keeps it.
    let cut_short = downgrade.is_some_and(|i| !done && state.step_changed(i));
    let forecast = || state.data_loss_forecast().iter().filter(|l| l.rows > 0).cloned().collect::<Vec<_>>();
    let dropped = if done { forecast() } else { Vec::new() };
    let may_have_dropped = if cut_short { forecast() } else { Vec::new() };
    // Rows an undo already put back are not offered again.
    let put_back_by = state.undone_by.as_deref().filter(|_| state.status == RunStatus::Undone);
    // Why what the downgrade that ran (or began) dropped was not measured, if it was not.
    let unmeasured = state.data_loss_unknown().filter(|_| done || cut_short);
    match (backup_id, anything_else_began, unmeasured) {
        // The downgrade ran (or began) with no forecast to say what it drops: not "no".
        (Some(id), _, Some(why)) => {
            let why = why.to_owned();
            let db = db_backup.unwrap_or_else(|| "?".into());
            let ran = if done { "ran" } else { "began and did not finish" };
            let head = format!(
                "Unknown — the downgrade {ran}, and what it dropped from the live database was not measured, as {why}; every changed or removed file was captured in verified backup {id}, and the database as it was before the run in verified backup {db}"
            );
            let mut loss = DataLoss { lost: None, not_measured: Some(why), ..DataLoss::default() };
            loss.explanation = undo_or_offer(
                &mut loss,
                db,
                put_back_by,
                &state.run_id,
                |undo| format!("{head}: undo {undo} put the database back from that backup"),
                |command| format!("{head}: {command} brings it back, keeping the rows written since"),
            );
            loss
        }
        (Some(id), _, _) if !dropped.is_empty() => {
            let db = db_backup.unwrap_or_else(|| "?".into());
            let what = crate::db::rows::describe(&dropped);
            let mut loss = DataLoss { lost: Some(true), dropped, ..DataLoss::default() };
            let yes = format!("Yes, from the live database — the downgrade dropped {what}");
            loss.explanation = undo_or_offer(
                &mut loss,
                db.clone(),
                put_back_by,
                &state.run_id,
                |undo| {
                    format!(
                        "{yes}; undo {undo} put them back from verified database backup {db} (files from verified backup {id})"
                    )
                },
                |command| {
                    format!(
                        "{yes}; they are kept in verified database backup {db} (files in verified backup {id}), and {command} brings them back, keeping the rows written since"
                    )
                },
            );
            loss
        }
        (Some(id), _, _) => {
            let captured = format!("No — every changed or removed file was captured in verified backup {id}");
            let mut loss = DataLoss { lost: Some(false), dropped, ..DataLoss::default() };
            loss.explanation = match db_backup {
                Some(db) if !may_have_dropped.is_empty() => {
                    let what = crate::db::rows::describe(&may_have_dropped);
                    let head = format!(
                        "{captured}, and the database in verified backup {db}, before any change; the downgrade did not finish and may have dropped {what} from the live database"
                    );
                    loss.may_have_dropped = may_have_dropped;
                    undo_or_offer(
                        &mut loss,
                        db,
                        put_back_by,
                        &state.run_id,
                        |undo| format!("{head}: undo {undo} put the database back from that backup"),
                        |command| format!("{head}: they are in that backup, and {command} brings them back"),
                    )
                }
                Some(db) => format!("{captured}, and the database in verified backup {db}, before any change"),
                None => format!("{captured} before any change"),
            };
            loss
        }
        (None, false, _) => DataLoss {
            lost: Some(false),
            explanation: "No — the run stopped before changing anything".into(),
            dropped,
            ..DataLoss::default()
        },
        (None, true, _) => DataLoss {
            lost: None,
            explanation: "Unknown — steps after the snapshot began without a completed snapshot; compare the work \
                          tree with the previous commit"
                .into(),
            dropped,
            ..DataLoss::default()
        },
    }
}

/// How a loss the database backup `db` keeps ends: `undone` words the undo `undone_by` that
/// already put it back; else `offer` words the command that brings it back, which `loss` keeps
/// (with `db`) for as long as the backup is there.
fn undo_or_offer(
    loss: &mut DataLoss,
    db: String,
    undone_by: Option<&str>,
    run_id: &str,
    undone: impl FnOnce(&str) -> String,
    offer: impl FnOnce(&str) -> String,
) -> String {
    if let Some(undo) = undone_by {
        return undone(undo);
    }
    // The report is read by operators: the CLI's words.
    let command = crate::hint::Action::undo(run_id).render(crate::hint::Frontend::Cli);
    let text = offer(&command);
    loss.kept_in = Some(db);
    loss.restore_command = Some(command);
    text
}

/// `table `payments`: 12 rows` / `column `users.nickname`: 3 values`.
pub(super) fn line(l: &crate::model::DataLoss) -> String {
    match (&l.column, l.kind) {
        (None, crate::model::LossKind::Removed) => {
            format!("table `{}`: {} row(s) deleted (the table stays)", l.table, l.rows)
        }
        (Some(c), crate::model::LossKind::Changed) => {
            format!("column `{}.{c}`: {} value(s) changed (the column stays)", l.table, l.rows)
        }
        (None, _) => format!("table `{}`: {} row(s) dropped", l.table, l.rows),
        (Some(c), _) => format!("column `{}.{c}`: {} value(s) dropped", l.table, l.rows),
    }
}

/// `loss` as it reads once the backups `gone` are no longer in the store (`why` says so): rows
/// kept only in one of them cannot be brought back by the tool any more.
pub(super) fn backups_gone(loss: &mut DataLoss, gone: &[String], why: &str) {
    let kept_in_gone = loss.kept_in.as_ref().is_some_and(|k| gone.contains(k));
    if !kept_in_gone {
        loss.explanation = format!("{}; since then, {why}", loss.explanation);
        return;
    }
    let db = loss.kept_in.take().unwrap_or_default();
    loss.restore_command = None;
    loss.explanation = if let Some(unmeasured) = &loss.not_measured {
        // A downgrade with no forecast: what went is not known, and nothing keeps it.
        format!(
            "Unknown — what the downgrade dropped from the live database was not measured, as {unmeasured}; the database as it was before the run was kept in database backup {db}, but {why}: forge-rollback can no longer bring it back"
        )
    } else if loss.dropped.is_empty() {
        // Cut short in its downgrade: whether rows went is not known, and nothing keeps them.
        loss.lost = None;
        format!(
            "Unknown — the downgrade did not finish and may have dropped {} from the live database; they were kept in database backup {db}, but {why}: forge-rollback can no longer bring them back",
            crate::db::rows::describe(&loss.may_have_dropped),
        )
    } else {
        format!(
            "Yes, from the live database — the downgrade dropped {}; they were kept in database backup {db}, but {why}: forge-rollback can no longer bring them back",
            crate::db::rows::describe(&loss.dropped),
        )
    };
}
