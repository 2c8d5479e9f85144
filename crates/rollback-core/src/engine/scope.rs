//! The scope of a rollback: the whole level, or only its database part (`run
//! --database-only`, which a fleet runs once, on one host, before any code moves).

use super::{Rollback, RunOptions, planner};
use crate::assess::Assessment;
use crate::error::{Error, Result};
use crate::hint::{Action, hint};
use crate::plan::{Level, Plan};

impl Rollback {
    /// Refuses options that contradict the scope, before anything is read.
    pub(crate) fn check_scope(opts: &RunOptions) -> Result<()> {
        if opts.database_only && matches!(opts.level, Some(Level::Fast | Level::Manual)) {
            return Err(Error::usage(
                format!(
                    "a database-only rollback is the database part of a full rollback: it cannot be {}",
                    opts.level.map(|l| l.to_string()).unwrap_or_default()
                ),
                Some(hint!["drop the level (or pass ", Action::Full, ") to downgrade the database only"]),
            ));
        }
        Ok(())
    }

    /// The level a run of `opts` has: a database-only run is always `full`.
    pub(crate) fn level_for(a: &Assessment, opts: &RunOptions) -> Level {
        if opts.database_only { Level::Full } else { Self::resolve_level(a, opts.level) }
    }

    /// Why a database-only run cannot go on: no `[database]`, or the database already at the
    /// target's revision (nothing to roll back).
    pub(crate) fn database_only_refusal(&self, a: &Assessment) -> Option<Error> {
        if self.config.database.is_none() {
            return Some(Error::usage(
                "a database-only rollback needs a `[database]` section in the configuration",
                Some("configure the database (see configuration.md), or roll back the code without it".into()),
            ));
        }
        match &a.database {
            Some(d) if d.reachable && !d.needs_downgrade => Some(Error::refused(
                format!(
                    "nothing to roll back: the database is already at the revision of {} ({})",
                    a.target.commit.id.short(),
                    crate::db::show_revisions(&d.current)
                ),
                None,
            )),
            _ => None,
        }
    }

    /// The plan of `opts` at `level`: the whole rollback (with its promotion on a production
    /// target), or only its database steps.
    pub(crate) fn scoped_plan(&self, a: &Assessment, level: Level, opts: &RunOptions) -> Result<Plan> {
        let mut plan = planner::rollback_plan(self.vcs.as_ref(), &self.config, &self.check_names(), a, level);
        if opts.database_only {
            plan = planner::database_only(plan);
        } else {
            self.plan_promotion(&mut plan)?;
        }
        self.refuse_deploy_unready(&plan)?;
        Ok(plan)
    }
}
