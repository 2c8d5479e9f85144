//! Manual runs: the operator approves, skips or aborts each step (the runbook's third
//! procedure, "type no to skip").

use std::cell::Cell;
use std::fmt::Write as _;

use super::{Ctx, Exec, Rollback};
use crate::backup::Manifest;
use crate::error::Result;
use crate::event::LogLevel;
use crate::journal::Record;
use crate::plan::Step;
use crate::prompt::{StepApproval, StepDecision, StepInspector};
use crate::time::Timestamp;

/// Most lines of files shown in a step's preview (inspect shows all).
const PREVIEW_FILES: usize = 20;

/// What `inspect` shows, computed only when asked.
struct Inspector<'a> {
    rb: &'a Rollback,
    step: &'a Step,
    manifest: Option<&'a Manifest>,
    asked: Cell<u32>,
    /// The run's stop check ([`crate::event::Observer::cancelled`]). What inspect waits on is
    /// the project's code: the SQL preview runs Alembic's `env.py`, which may hang on a
    /// database that never answers (up to `database.timeout_secs`), and the operator's Ctrl-C
    /// must not wait for it.
    stop: &'a (dyn Fn() -> Option<String> + Sync),
}

impl Inspector<'_> {
    /// `future`'s output, or why the run's stop check gave it up (not started once stopped:
    /// the preview would start Alembic only to kill it).
    fn wait<F>(&self, future: F) -> std::result::Result<F::Output, String>
    where
        F: std::future::Future + Send,
        F::Output: Send,
    {
        if let Some(why) = (self.stop)() {
            return Err(why);
        }
        crate::rt::block_on_unless(future, self.stop)
    }
}

impl StepInspector for Inspector<'_> {
    fn inspect(&self) -> String {
        self.asked.set(self.asked.get() + 1);
        let mut o = String::new();
        let files = self.step.files();
        if !files.is_empty() {
            let _ = writeln!(o, "Files ({}):", files.len());
            for (action, path) in &files {
                let _ = writeln!(o, "  {action:<22} {path}");
            }
        }
        if let Step::Reset { changes, .. } = self.step {
            let _ = writeln!(o, "Diff HEAD -> target: {} path(s)", changes.len());
        }
        if let Ok(Some(db)) = self.rb.db() {
            let name = db.database().describe();
            match self.wait(db.current()) {
                Ok(Ok(revs)) => {
                    let _ = writeln!(o, "Database {name}: now at {}", super::show_revisions(&revs));
                }
                Ok(Err(e)) => {
                    let _ = writeln!(o, "Database {name}: cannot read its revision: {e}");
                }
                Err(why) => {
                    let _ = writeln!(o, "Database {name}: revision not read: {why}");
                }
            }
        }
        // Not filled when the run was planned: the preview failed then (or timed out), and is
        // tried again here. Its failure is said, not left out: no SQL shown is no SQL known.
        if let Step::Downgrade { from, to, sql: None, .. } = self.step
            && let Ok(Some(db)) = self.rb.db()
        {
            match self.wait(db.downgrade_sql(from, to)) {
                Ok(Ok(Some(sql))) => {
                    let _ = writeln!(o, "SQL:\n{sql}");
                }
                Ok(Ok(None)) => {
                    let _ = writeln!(o, "SQL: none to show ({} cannot write this downgrade as SQL)", db.kind());
                }
                Ok(Err(e)) => {
                    let _ = writeln!(o, "SQL: cannot be previewed: {e}");
                }
                Err(why) => {
                    let _ = writeln!(o, "SQL: preview stopped: {why}");
                }
            }
        }
        match self.manifest {
            Some(m) => {
                let _ = writeln!(o, "Backup {} ({} path(s), {} byte(s)):", m.id, m.entries.len(), m.content_bytes());
                for e in m.entries.iter().take(200) {
                    let _ = writeln!(o, "  {:?} {}", e.origin, e.path);
                }
                if m.entries.len() > 200 {
                    let _ = writeln!(o, "  … and {} more", m.entries.len() - 200);
                }
            }
            None => {
                let _ = writeln!(o, "No backup taken yet in this run.");
            }
        }
        o
    }
}

impl Rollback {
    /// Asks the operator about step `index` and journals the answer.
    pub(super) fn approve(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>, index: usize) -> Result<StepDecision> {
        let Some(prompter) = ex.manual else { return Ok(StepDecision::Run) };
        let step = &ex.plan.steps[index];
        let mut preview = step.details();
        let files = step.files();
        preview.extend(files.iter().take(PREVIEW_FILES).map(|(a, p)| format!("{a:<22} {p}")));
        if files.len() > PREVIEW_FILES {
            preview.push(format!("… and {} more (inspect lists all)", files.len() - PREVIEW_FILES));
        }
        let request = StepApproval {
            run_id: ex.run_id.clone(),
            index: index + 1,
            total: ex.plan.steps.len(),
            name: step.name().into(),
            title: step.title(),
            preview,
            skippable: step.skippable(),
            step: step.clone(),
        };
        if ex.manifest.is_none() && ex.plan.steps[..index].iter().any(|s| matches!(s, Step::Snapshot { .. })) {
            let _ = self.own_manifest(ex);
        }
        let mut decision = StepDecision::Abort { undo: false };
        let observer = ctx.observer;
        let stop = || observer.cancelled();
        for _ in 0..3 {
            let inspector =
                Inspector { rb: self, step, manifest: ex.manifest.as_ref(), asked: Cell::new(0), stop: &stop };
            let answer = prompter.approve_step(&request, &inspector);
            for _ in 0..inspector.asked.get() {
                ex.journal.append(&Record::Decision {
                    at: Timestamp::now(),
                    index,
                    step: step.name().into(),
                    answer: "inspect".into(),
                })?;
            }
            decision = match answer {
                Ok(d) => d,
                Err(e) => {
                    ctx.log(
                        LogLevel::Error,
                        format!(
                            "no answer for step `{}`: {}; stopping the run",
                            step.name(),
                            crate::engine::support::chain(&e)
                        ),
                    );
                    StepDecision::Abort { undo: false }
                }
            };
            if decision == StepDecision::Skip && !step.skippable() {
                ctx.log(
                    LogLevel::Warn,
                    format!("step `{}` cannot be skipped: every later step relies on it", step.name()),
                );
                decision = StepDecision::Abort { undo: false };
                continue;
            }
            break;
        }
        // A stop that came while the step was asked about (Ctrl-C at the question, a cancelled
        // asyncio task, a signal handler's exception raised inside a Python callback) ends the
        // run here, before this step, as one at a step boundary does: it is no answer of the
        // operator's, so none is journaled, and the run is cancelled for that reason, not
        // "aborted by the operator". An `abort-undo` given all the same is still carried out.
        if decision != (StepDecision::Abort { undo: true })
            && let Some(why) = ctx.observer.cancelled()
        {
            ctx.log(LogLevel::Warn, format!("run {} cancelled before step `{}`: {why}", ex.run_id, step.name()));
            ex.abort_reason = Some(why);
            return Ok(StepDecision::Abort { undo: false });
        }
        let answer = match decision {
            StepDecision::Run => "yes",
            StepDecision::Skip => "no",
            StepDecision::Abort { undo: false } => "abort",
            StepDecision::Abort { undo: true } => "abort-undo",
        };
        ex.journal.append(&Record::Decision {
            at: Timestamp::now(),
            index,
            step: step.name().into(),
            answer: answer.into(),
        })?;
        match decision {
            StepDecision::Run => {}
            StepDecision::Skip => {
                ex.journal.append(&Record::StepSkipped { at: Timestamp::now(), index, step: step.name().into() })?;
                ex.skipped.insert(index);
                ctx.log(LogLevel::Warn, format!("Skipped step `{}` (operator)", step.name()));
            }
            StepDecision::Abort { undo } => {
                ctx.log(
                    LogLevel::Warn,
                    format!(
                        "Operator aborted before step `{}`{}",
                        step.name(),
                        if undo { "; undoing what ran" } else { "" }
                    ),
                );
            }
        }
        Ok(decision)
    }
}
