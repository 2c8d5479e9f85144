//! The incident report as Markdown: the runbook's template, filled in.

use std::fmt::Write as _;

use super::{ACTION_ITEMS, CommitRef, IncidentReport, NO_SERVICE_CHECKS, SKIPPED_SERVICE_CHECKS, data_loss};
use crate::plan::RunKind;
use crate::time::Timestamp;

/// `17:39:02`.
fn clock(t: Timestamp) -> String {
    t.log_format().get(11..).unwrap_or_default().to_owned()
}

/// `850 ms`, `4.2 s`, `3 min 5 s`.
fn human_duration(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 60_000 {
        format!("{}.{} s", ms / 1000, ms % 1000 / 100)
    } else {
        let s = ms / 1000;
        format!("{} min {} s", s / 60, s % 60)
    }
}

fn prompt(text: &str) -> String {
    format!("> _To fill in: {text}_\n")
}

/// Table cells: no pipes or line breaks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

impl IncidentReport {
    /// The status as `runs list` words it: a run journaled `running` that nothing runs is
    /// `interrupted`.
    fn status_word(&self) -> &'static str {
        if self.interrupted { "interrupted" } else { self.status.as_str() }
    }

    /// The runbook's template, filled in.
    pub fn to_markdown(&self) -> String {
        let mut o = String::new();
        let id = &self.run_id;
        let _ = writeln!(o, "# Rollback Incident Report\n");
        let _ = writeln!(o, "**Date**: {}  ", self.started_at.date());
        let _ = writeln!(o, "**Time**: {} UTC  ", clock(self.started_at));
        match self.severity {
            Some(s) => {
                let _ = writeln!(o, "**Severity**: {}  ", capitalized(s.as_str()));
            }
            None => {
                let _ = writeln!(
                    o,
                    "**Severity**: _(not given: pass --severity critical|high|medium|low; to fill in: Critical / \
                     High / Medium / Low)_  "
                );
            }
        }
        if let Some(actor) = &self.actor {
            // One line, whatever the caller passed (a chat user name, a JSON field): a line
            // break would start a header field of its own (a false `**Status**`), an escape
            // sequence would act on the terminal of whoever reads the report.
            let actor = crate::verify::redact::escape_controls(actor);
            let _ = writeln!(o, "**Triggered by**: {actor}  ");
        }
        let _ = writeln!(o, "**Rollback Type**: {}  ", self.rollback_type);
        // In words for the header (`Verification failed`); the body keeps the identifier that
        // `runs list` and the JSON show.
        let _ = writeln!(o, "**Status**: {}\n", capitalized(&self.status_word().replace('_', " ")));

        let _ = match self.kind {
            RunKind::Rollback => writeln!(
                o,
                "Run `{id}` rolled back `{}` from {} to {}: **{}**{}.\n",
                self.workdir.display(),
                self.previous.hash.short(),
                self.target.hash.short(),
                self.status_word(),
                if self.skipped.iter().any(|s| s == "reset") {
                    format!(
                        ", with step `reset` skipped by the operator: the code stayed at {}",
                        self.previous.hash.short()
                    )
                } else {
                    String::new()
                }
            ),
            RunKind::Undo => writeln!(
                o,
                "Run `{id}` undid run `{}` in `{}`, moving from {} back to {}: **{}**.\n",
                self.undo_of.as_deref().unwrap_or("?"),
                self.workdir.display(),
                self.previous.hash.short(),
                self.target.hash.short(),
                self.status_word()
            ),
        };

        let _ = writeln!(o, "## Issue Description\n");
        match &self.reason {
            Some(r) => {
                let _ = writeln!(o, "{r}\n");
            }
            None => {
                let _ = writeln!(o, "{}", prompt("what went wrong (not given: pass --reason TEXT)."));
            }
        }

        let _ = writeln!(o, "## Symptoms\n");
        let _ = writeln!(o, "{}", prompt("what people saw; the tool does not know."));
        for s in ["Error messages observed", "Services affected", "User impact", "Time of first detection"] {
            let _ = writeln!(o, "- {s}: _to fill in_");
        }
        o.push('\n');

        let _ = writeln!(o, "## Root Cause\n");
        let _ = writeln!(o, "{}", prompt("what caused the issue."));

        let _ = writeln!(o, "## Rollback Details\n");
        let commit = |c: &CommitRef| {
            if c.summary.is_empty() { format!("`{}`", c.hash) } else { format!("`{}` — {}", c.hash, c.summary) }
        };
        let _ = writeln!(o, "- **Target Commit**: {}", commit(&self.target));
        let _ = writeln!(o, "- **Previous Commit**: {}", commit(&self.previous));
        let _ = writeln!(
            o,
            "- **Branch**: {}",
            self.branch.as_deref().map_or_else(|| "detached HEAD".to_owned(), |b| format!("`{b}`"))
        );
        match (self.duration_ms, self.finished_at) {
            (Some(ms), Some(f)) => {
                let _ = writeln!(
                    o,
                    "- **Duration**: {} ({} → {} UTC)",
                    human_duration(ms),
                    clock(self.started_at),
                    clock(f)
                );
            }
            _ => {
                let _ = writeln!(
                    o,
                    "- **Duration**: unknown: the run has not finished (started {} UTC)",
                    clock(self.started_at)
                );
            }
        }
        let _ = writeln!(o, "- **Data Loss**: {}", self.data_loss.explanation);
        for l in &self.data_loss.dropped {
            let _ = writeln!(o, "  - {}", data_loss::line(l));
        }
        let _ = writeln!(
            o,
            "- **User Impact Duration**: _to fill in: from first detection to recovery (the tool does not know)_"
        );
        let _ = writeln!(
            o,
            "- **Run**: `{id}` ({} of `{}`, git backend `{}`)",
            self.kind.as_str(),
            self.workdir.display(),
            self.backend
        );
        let _ = writeln!(o, "- **Status**: {}", self.status_word());
        if let Some(b) = &self.backup_id {
            let _ = writeln!(o, "- **Backup**: `{b}`");
        }
        if let Some(u) = &self.undo_of {
            let _ = writeln!(o, "- **Undo Of**: run `{u}` (this run put back the state from before it)");
        }
        if let Some(by) = &self.undone_by {
            if by == crate::journal::NOTHING_CHANGED {
                let _ = writeln!(o, "- **Undone**: marked as undone; it had changed nothing");
            } else {
                let _ = writeln!(o, "- **Undone By**: run `{by}`");
            }
        }
        if let Some(f) = &self.failure {
            let _ = writeln!(o, "- **Failed Step**: {}. `{}`: {}", f.number, f.step, f.error);
        }
        if !self.skipped.is_empty() {
            let list: Vec<String> = self.skipped.iter().map(|s| format!("`{s}`")).collect();
            let _ = writeln!(o, "- **Skipped Steps**: {} (by the operator)", list.join(", "));
        }
        if let Some(c) = &self.commands.resume {
            let _ = writeln!(o, "- **Resume**: `{c}` finishes the run from the first step that did not complete");
        }
        if let Some(c) = &self.commands.undo {
            let _ = writeln!(o, "- **Undo**: `{c}` puts back the state from before this run");
        } else {
            let why = match &self.commands.undo_unavailable {
                Some(why) => why.clone(),
                None => format!("the run is {}", self.status_word()),
            };
            let _ = writeln!(o, "- **Undo**: not available: {why}");
        }
        for w in &self.warnings {
            let _ = writeln!(o, "- **Warning**: {w}");
        }
        o.push('\n');
        let _ = writeln!(o, "### Steps\n");
        let _ = writeln!(o, "| # | Step | Status | Duration | Result |");
        let _ = writeln!(o, "|---|------|--------|----------|--------|");
        for s in &self.steps {
            let result = match (&s.result, &s.error) {
                (Some(r), _) => cell(r),
                (None, Some(e)) => cell(e),
                (None, None) => String::new(),
            };
            let _ = writeln!(
                o,
                "| {} | `{}` | {} | {} | {} |",
                s.number,
                s.step,
                s.status,
                s.duration_ms.map(human_duration).unwrap_or_default(),
                result
            );
        }
        o.push('\n');

        let _ = writeln!(o, "## Verification Results\n");
        for c in &self.verification.checks {
            let mark = if c.passed { "x" } else { " " };
            let _ = writeln!(o, "- [{mark}] {} (checked by the tool: {})", capitalized(&c.name), c.detail);
        }
        if !self.verification.checks.is_empty() {
            o.push('\n');
        }
        if self.verification.service_checks.is_empty() && self.skipped.iter().any(|s| s == "verify") {
            let _ = writeln!(o, "Service checks: {SKIPPED_SERVICE_CHECKS}.\n");
        } else if self.verification.service_checks.is_empty() {
            let _ = writeln!(o, "Service checks: {NO_SERVICE_CHECKS}.\n");
        } else {
            let _ = writeln!(o, "Service checks ({}):\n", self.verification.note);
            for c in &self.verification.service_checks {
                let mark = if c.passed { "x" } else { " " };
                let _ = writeln!(o, "- [{mark}] {}: {}", c.name, cell(&c.detail));
            }
            o.push('\n');
        }
        let _ = writeln!(o, "{}", prompt("check the services by hand and tick what holds:"));
        for c in &self.verification.manual_checklist {
            let _ = writeln!(o, "- [ ] {c}");
        }
        o.push('\n');

        let _ = writeln!(o, "## Preventive Measures\n");
        let _ = writeln!(o, "{}", prompt("how to prevent this in the future."));

        let _ = writeln!(o, "## Action Items\n");
        if let (Some(r), Some(u)) = (&self.commands.resume, &self.commands.undo) {
            let _ = writeln!(o, "- [ ] Settle the failed run: `{r}` or `{u}`");
        }
        for a in ACTION_ITEMS {
            let _ = writeln!(o, "- [ ] {a}");
        }
        o.push('\n');

        let _ = writeln!(o, "## Timeline\n");
        let _ = writeln!(
            o,
            "{}",
            prompt(
                "when the deployment was initiated, the issue detected, the rollback decided, and all systems normal."
            )
        );
        for e in &self.timeline {
            let _ = writeln!(o, "- **{}** - {}", clock(e.at), e.event);
        }
        o.push('\n');

        let _ = writeln!(o, "## Lessons Learned\n");
        let _ = writeln!(o, "{}", prompt("key takeaways from this incident."));
        let _ = writeln!(
            o,
            "---\n\n_Generated by forge-rollback from the journal of run `{id}`; all times UTC. Lines marked \"to fill \
             in\" are for people._"
        );
        o
    }

    /// The same facts as JSON (pretty, with a trailing newline).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_owned());
        s.push('\n');
        s
    }
}
