//! `record`: the completion marker; marks the run undone by an undo.

use crate::detail::StepDetail;
use crate::engine::{Ctx, Exec, Rollback};
use crate::error::Result;
use crate::event::LogLevel;
use crate::journal::{Journal, Record};
use crate::time::Timestamp;

impl Rollback {
    pub(crate) fn step_record(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>) -> Result<StepDetail> {
        if let Some(orig) = &ex.plan.undo_of {
            let path = self.state.run_dir(orig).join("journal.jsonl");
            let mut j = Journal::open(&path)?;
            j.append(&Record::Undone { at: Timestamp::now(), by: ex.run_id.clone() })?;
        }
        let head = self.vcs.head()?;
        ctx.log(
            LogLevel::Info,
            format!(
                "Recorded: HEAD is {} on {}",
                head.commit.short(),
                head.branch.as_deref().unwrap_or("detached HEAD")
            ),
        );
        Ok(StepDetail::Record { head: head.commit, branch: head.branch })
    }
}
