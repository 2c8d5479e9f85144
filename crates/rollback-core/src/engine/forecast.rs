//! The data-loss forecast in plans, assessments and confirmations: the planned downgrade run
//! on a throwaway copy of the database (see [`crate::db::forecast`]).

use super::Rollback;
use crate::assess::Assessment;
use crate::db::Revision;
use crate::db::forecast::Forecast;
use crate::error::{Error, Result};
use crate::model::{Risk, RiskCode, RiskSeverity};
use crate::plan::{Plan, Step};

impl Rollback {
    /// What downgrading the database to `to` would destroy (and what its migrations leave to
    /// know), measured on a copy made in a private temp folder (removed afterwards) or a
    /// temporary PostgreSQL database.
    pub(crate) fn forecast_downgrade(&self, to: &[Revision]) -> Result<Forecast> {
        self.forecast_downgrade_unless(to, &|| None)
    }

    /// [`Rollback::forecast_downgrade`] for a run before its first step: `stop` (the run's
    /// [`crate::event::Observer::stop_waiting`]) is asked while the live database is dumped for
    /// the copy, and `Some(why)` ends the wait at once with [`Error::Cancelled`]. Only then:
    /// abandoning the dump leaves nothing behind (its `pg_dump` is killed, its file is in the
    /// scratch folder), while the copy is a database on the server, which only the forecast's
    /// own end drops; from there on the forecast runs to its end.
    fn forecast_downgrade_unless(
        &self,
        to: &[Revision],
        stop: &(dyn Fn() -> Option<String> + Sync),
    ) -> Result<Forecast> {
        let db = self.migrator()?;
        crate::failpoint::hit("inside:forecast")?;
        let dir = crate::tmpdir::create(crate::tmpdir::Kind::Forecast)?;
        let dumped = crate::rt::block_on_unless(crate::db::forecast::dump_live(db.as_ref(), dir.path()), stop)
            .map_err(|why| {
                Error::Cancelled(format!(
                    "{why} while the database was being copied for the data-loss forecast; nothing was changed"
                ))
            })??;
        Ok(crate::rt::block_on(crate::db::forecast::forecast_from(db.as_ref(), to, dir.path(), dumped))?)
    }

    /// Fills the plan's `data_loss` from its downgrade step, with a `downgrade_warning` risk
    /// per warning its migrations left on the copy, or says why it could not as a
    /// `data_loss_unknown` risk. Nothing to do (no copy at all) when the plan has no downgrade.
    pub(crate) fn forecast_plan(&self, plan: &mut Plan) {
        // Never stopped, so never `Err`.
        let _ = self.forecast_plan_unless(plan, &|| None);
    }

    /// [`Rollback::forecast_plan`] for a run before its first step: its `Cancelled` (see
    /// [`Rollback::forecast_downgrade_unless`]) is the one error returned.
    pub(crate) fn forecast_plan_unless(
        &self,
        plan: &mut Plan,
        stop: &(dyn Fn() -> Option<String> + Sync),
    ) -> Result<()> {
        let Some((to, path)) = plan.steps.iter().find_map(|s| match s {
            Step::Downgrade { to, path, .. } => Some((to.clone(), path.clone())),
            _ => None,
        }) else {
            return Ok(());
        };
        let irreversible: Vec<&str> =
            path.iter().filter(|p| p.irreversible.is_some()).map(|p| p.revision.as_str()).collect();
        if !irreversible.is_empty() {
            plan.risks.push(Risk::data_loss_unknown(format_args!(
                "the data-loss forecast cannot run a downgrade through irreversible migration(s) {}",
                irreversible.join(", ")
            )));
            return Ok(());
        }
        match self.forecast_downgrade_unless(&to, stop) {
            Ok(f) => {
                plan.risks.extend(warned(&f));
                plan.data_loss = f.losses;
            }
            Err(e @ Error::Cancelled(_)) => return Err(e),
            Err(e) => plan.risks.push(unknown(&e)),
        }
        Ok(())
    }

    /// Adds the forecast to an assessment whose database must go down (and can: reachable,
    /// with a path), with a `downgrade_drops_data` risk when rows would go.
    pub(crate) fn forecast_assessment(&self, a: &mut Assessment) {
        let Some(d) = &a.database else { return };
        let blocked = [RiskCode::NoDowngradePath, RiskCode::UnknownDbRevision, RiskCode::DbAheadOfCode];
        // An irreversible migration on the path cannot run on the copy either; its own risk
        // says so.
        if !d.needs_downgrade
            || !d.reachable
            || d.risks.iter().any(|r| blocked.contains(&r.code))
            || d.path.iter().any(|p| p.irreversible.is_some())
        {
            return;
        }
        match self.forecast_downgrade(&d.target_heads.clone()) {
            Ok(f) => {
                a.risks.extend(warned(&f));
                let losses = f.losses;
                if losses.iter().any(|l| l.rows > 0) {
                    a.risks.push(Risk::new(
                        RiskCode::DowngradeDropsData,
                        RiskSeverity::Medium,
                        format!(
                            "a full rollback's downgrade destroys {} in the live database (kept in its database snapshot; `undo` puts them back)",
                            crate::db::rows::describe(&losses)
                        ),
                    ));
                }
                a.data_loss = losses;
            }
            Err(e) => a.risks.push(unknown(&e)),
        }
        a.risks.sort_by_key(|r| std::cmp::Reverse(r.severity));
    }
}

/// The warnings the forecast's downgrade left on the copy, as risks: the run's downgrade
/// leaves the same on the live database, where they would be said only once it ran.
fn warned(f: &Forecast) -> impl Iterator<Item = Risk> + '_ {
    f.warnings.iter().map(|w| {
        Risk::new(
            RiskCode::DowngradeWarning,
            RiskSeverity::Medium,
            format!("run on a copy of the database by the data-loss forecast, {w}; the run's downgrade does the same"),
        )
    })
}

fn unknown(e: &crate::Error) -> Risk {
    Risk::data_loss_unknown(format_args!("the data-loss forecast could not be made ({})", super::support::chain(e)))
}
