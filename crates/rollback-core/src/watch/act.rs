//! What a watch does when it decides: promote the commit at HEAD, or roll back from it.

use std::time::Duration;

use super::{Log, WatchOptions, WatchRecord, WatchReport, human};
use crate::engine::{Rollback, RunOptions};
use crate::error::Result;
use crate::event::LogLevel;
use crate::journal::RunStatus;
use crate::prompt::AutoConfirm;
use crate::time::Timestamp;
use crate::vcs::CommitId;

/// Commits a watch will not roll back from (again).
#[derive(Default)]
pub(super) struct Settled {
    /// The releases it rolled back to: failures that outlive a rollback to a verified release
    /// are not in the code, and walking down the registry marking releases bad would only make
    /// things worse.
    pub(super) rolled_to: Vec<CommitId>,
    /// The ones it left while the release it rolled back to failed the checks too (an outage):
    /// until a round passes again, rolling back from them would only flap. A passing round
    /// clears them: a release that fails after the outage is rolled back again.
    pub(super) outage: Vec<CommitId>,
}

/// Up to five of `names`, then how many more.
fn list_some(names: &[String]) -> String {
    let more = if names.len() > 5 { format!(" and {} more", names.len() - 5) } else { String::new() };
    format!("{}{more}", names.iter().take(5).cloned().collect::<Vec<_>>().join(", "))
}

impl Rollback {
    /// The tracked files with local changes (hidden ones included), but for those a rollback
    /// keeps (the registry the watch itself writes, the configuration, env files, the
    /// database): what a round checks beyond the commit.
    fn local_edits(&self) -> Result<Vec<String>> {
        let guard = crate::engine::planner::CacheGuard::new(self.config(), self.workdir());
        Ok(self
            .vcs()
            .status(false)?
            .into_iter()
            .filter(|e| matches!(e.kind, crate::vcs::StatusKind::Tracked { .. }) || e.hidden_by.is_some())
            .filter(|e| !guard.protects(&e.path))
            .map(|e| e.path.to_string())
            .collect())
    }

    /// Marks `head` known-good once it passed for the window. `Ok(true)` when that is settled
    /// for this commit (marked, already good, marked bad, a dry run); `Ok(false)` when the
    /// next passing round should try again (the registry could not be read or written, the
    /// checks passed on local edits).
    pub(super) fn promote(
        &self,
        log: &mut Log<'_>,
        head: &CommitId,
        passed_for: Duration,
        dry_run: bool,
        report: &mut WatchReport,
    ) -> Result<bool> {
        let registry = match self.registry() {
            Ok(r) => r,
            Err(e) => {
                log.say(
                    LogLevel::Error,
                    format!(
                        "could not read the registry to mark {0} known-good (tried again next round; by hand: `forge-rollback known-good mark {0}`): {1}",
                        head.short(),
                        e.chain()
                    ),
                );
                return Ok(false);
            }
        };
        let (good, bad) = registry.deciding(head).map_or((false, false), |e| (e.verified && !e.known_bad, e.known_bad));
        if good {
            return Ok(true);
        }
        let passed = human(passed_for);
        if !bad {
            // What passed is the work tree: with local changes to tracked files, not the
            // commit. The files a rollback keeps (the registry the watch itself writes, the
            // configuration, env files, the database) are no part of the release.
            let edited = match self.local_edits() {
                Ok(edited) => edited,
                Err(e) => {
                    log.say(LogLevel::Error, format!("could not read the status of the work tree: {}", e.chain()));
                    return Ok(false);
                }
            };
            if !edited.is_empty() {
                log.say(
                    LogLevel::Warn,
                    format!(
                        "not marking {} known-good yet: the checks passed on local changes to tracked files ({}), not on the commit alone; commit them (a new release) or put them back",
                        head.short(),
                        list_some(&edited)
                    ),
                );
                return Ok(false);
            }
        }
        if bad {
            // A bad mark is a person's (or a rollback's) decision that passing checks do not
            // overturn: the checks may not see what made the release bad.
            log.say(
                LogLevel::Warn,
                format!(
                    "not marking {0} known-good: it is marked known bad (passed every round for {passed}; `forge-rollback known-good unmark {0}` if the mark is wrong)",
                    head.short()
                ),
            );
        } else if dry_run {
            log.say(
                LogLevel::Info,
                format!("dry run: would mark {} known-good (passed every round for {passed})", head.short()),
            );
        } else {
            match self.mark_good(head.as_str(), Some(&format!("watch: passed every round for {passed}"))) {
                Ok(out) => {
                    for n in &out.notes {
                        log.say(LogLevel::Warn, n.clone());
                    }
                    log.say(
                        LogLevel::Success,
                        format!("Marked {} known-good (passed every round for {passed})", head.short()),
                    );
                    report.promoted.push(head.clone());
                }
                // The watch goes on, and tries again: a registry it cannot write is no reason
                // to stop watching.
                Err(e) => {
                    log.say(
                        LogLevel::Error,
                        format!(
                            "could not mark {0} known-good (passed every round for {passed}; tried again next round; by hand: `forge-rollback known-good mark {0}`): {1}",
                            head.short(),
                            e.chain()
                        ),
                    );
                    return Ok(false);
                }
            }
        }
        log.record(&WatchRecord::Promote {
            at: Timestamp::now(),
            commit: head.clone(),
            passed_for_secs: passed_for.as_secs_f64(),
            done: !dry_run && !bad,
        })?;
        Ok(true)
    }

    /// The watch rollback that left HEAD at `head`, if the newest run is one (a rollback a
    /// watcher started, finished, not undone).
    pub(super) fn watch_rollback_to(&self, head: &CommitId) -> Option<String> {
        let runs = self.runs().ok()?;
        let last = runs.last()?;
        (last.kind == crate::model::RunKind::Rollback
            && matches!(last.status, RunStatus::Succeeded | RunStatus::VerificationFailed)
            && last.undone_by.is_none()
            && &last.to == head
            && last.reason.as_deref().is_some_and(|r| r.starts_with("watch:")))
        .then(|| last.run_id.clone())
    }

    /// The outage a watch before this one was holding off, from its log (`watch.jsonl` at
    /// `path`): the commits it rolled back from whose rollback failed its own verification,
    /// with no passing round since. A restarted watch (with `on_failure = "undo"` back on the
    /// release it left) would otherwise roll back from it again at once. A log that cannot be
    /// read, or a line that is not a record (a torn last line), holds nothing.
    pub(super) fn outage_from_log(path: &std::path::Path) -> Vec<CommitId> {
        let failed = RunStatus::VerificationFailed.as_str();
        let mut outage: Vec<CommitId> = Vec::new();
        let Ok(text) = std::fs::read_to_string(path) else { return outage };
        for record in text.lines().filter_map(|l| serde_json::from_str::<WatchRecord>(l).ok()) {
            match record {
                WatchRecord::Round { passed: true, .. } => outage.clear(),
                WatchRecord::Rollback { from, run_id: Some(_), outcome, .. }
                    if outcome == failed && !outage.contains(&from) =>
                {
                    outage.push(from);
                }
                _ => {}
            }
        }
        outage
    }

    pub(super) fn watch_rollback(
        &self,
        log: &mut Log<'_>,
        opts: &WatchOptions,
        head: &CommitId,
        because: Vec<String>,
        report: &mut WatchReport,
        settled: &mut Settled,
    ) -> Result<()> {
        let at = Timestamp::now();
        if settled.rolled_to.contains(head) || settled.outage.contains(head) {
            log.say(
                LogLevel::Error,
                format!(
                    "{} failed rounds, but this watch already rolled back from or to {}: the failures outlived a rollback to a verified release, so they are not in the code; not rolling back again (investigate the services, the database, the network)",
                    opts.failures,
                    head.short()
                ),
            );
            report.not_started = Some(super::WatchNotStarted {
                from: head.clone(),
                reason: "this watch already rolled back from or to it: the failures are not in the code".into(),
                kind: super::NotStartedKind::Outage,
            });
            return log.record(&WatchRecord::Rollback {
                at,
                from: head.clone(),
                run_id: None,
                outcome:
                    "not started: this watch already rolled back from or to HEAD; the failures are not in the code"
                        .into(),
                because,
            });
        }
        if let Some(holder) = self.lock_holder()? {
            report.not_started = Some(super::WatchNotStarted {
                from: head.clone(),
                reason: format!("the lock is held by {holder}"),
                kind: super::NotStartedKind::Locked,
            });
            log.say(
                LogLevel::Warn,
                format!("{} failed rounds, but a run is in progress ({holder}): not starting another", opts.failures),
            );
            return log.record(&WatchRecord::Rollback {
                at,
                from: head.clone(),
                run_id: None,
                outcome: format!("not started: the lock is held by {holder}"),
                because,
            });
        }
        let run_opts = RunOptions {
            level: opts.level,
            target: None,
            dry_run: opts.dry_run,
            // The commit the failing rounds checked, and no other: a fix deployed during the
            // last round, or another watcher's rollback, is refused here, and the next round
            // checks the new HEAD from scratch.
            expect_head: Some(head.clone()),
            reason: Some(format!(
                "watch: {} failed verification rounds in a row: {}",
                opts.failures,
                because.join("; ")
            )),
            ..RunOptions::default()
        };
        log.say(
            LogLevel::Warn,
            format!(
                "{} failed rounds in a row: {}rolling back from {}",
                opts.failures,
                if opts.dry_run { "dry run: would be " } else { "" },
                head.short()
            ),
        );
        // What the failing rounds checked beyond the commit, which the rollback sets aside:
        // failures seen there are no evidence against the commit.
        let edited = self.local_edits();
        let started = self.run(&run_opts, &AutoConfirm, log.observer);
        report.not_started = started.as_ref().err().map(|e| super::WatchNotStarted {
            from: head.clone(),
            reason: e.chain(),
            kind: e.kind().into(),
        });
        match started {
            Ok(outcome) if opts.dry_run => log.record(&WatchRecord::Rollback {
                at,
                from: head.clone(),
                run_id: None,
                outcome: format!("dry run: would roll back to {}", outcome.to.short()),
                because,
            }),
            Ok(outcome) => {
                let verified = outcome.verification.as_ref().is_none_or(|v| v.passed);
                if let Some(id) = &outcome.run_id {
                    report.rollbacks.push(id.clone());
                    report.rollback_outcomes.push(super::WatchRollback {
                        run_id: id.clone(),
                        status: outcome.status,
                        verification_failed: !verified,
                        undone_by: outcome.undone_by.clone(),
                    });
                }
                if matches!(outcome.status, RunStatus::Succeeded | RunStatus::VerificationFailed | RunStatus::Undone) {
                    settled.rolled_to.push(outcome.to.clone());
                }
                if !verified {
                    // The checks failed on the known-good release too (and `on_failure = "undo"`
                    // may have brought the broken one back): the failures are not in the code.
                    // Rolling back again from either commit would only flap.
                    settled.outage.push(head.clone());
                }
                log.record(&WatchRecord::Rollback {
                    at,
                    from: head.clone(),
                    run_id: outcome.run_id.clone(),
                    outcome: outcome.status.to_string(),
                    because,
                })?;
                let edited = match edited {
                    Ok(edited) => edited,
                    Err(e) => vec![format!("(the status could not be read: {})", e.chain())],
                };
                if outcome.status == RunStatus::Succeeded && verified && !edited.is_empty() {
                    log.say(
                        LogLevel::Warn,
                        format!(
                            "not marking {} known bad: the failing rounds ran on local changes to tracked files ({}), which the rollback set aside (in its backup), not on the commit alone",
                            head.short(),
                            list_some(&edited)
                        ),
                    );
                } else if outcome.status == RunStatus::Succeeded && verified {
                    // Only when the known-good release passes where this one failed is there
                    // evidence against this one.
                    // A registry that cannot be written must not end the watch: production
                    // is on the release just rolled back to, and needs watching.
                    match self.mark_bad(head.as_str(), Some("watch: failed verification; rolled back from")) {
                        Ok(_) => {
                            // The mark is in this host's registry file: the gates in CI and
                            // on the git server read it as the default branch holds it.
                            let registry = self.registry_path();
                            let shown = registry.strip_prefix(self.workdir()).unwrap_or(&registry).display().to_string();
                            log.say(
                                LogLevel::Info,
                                format!(
                                    "Marked {0} known bad in `{shown}` on this host: it will not be a rollback target here; `gate` in CI and on the git server sees it once that file is committed on the default branch (`git add {shown} && git commit -m \"mark {0} known bad\" && git push`)",
                                    head.short()
                                ),
                            );
                            log.record(&WatchRecord::MarkBad { at: Timestamp::now(), commit: head.clone() })?;
                        }
                        Err(e) => log.say(
                            LogLevel::Error,
                            format!(
                                "could not mark {0} known bad, so `gate` lets it through: {1}; once the registry can be written: `forge-rollback known-good bad {0}`",
                                head.short(),
                                e.chain()
                            ),
                        ),
                    }
                }
                Ok(())
            }
            Err(e) => {
                log.say(LogLevel::Error, format!("the rollback did not start: {e}"));
                log.record(&WatchRecord::Rollback {
                    at,
                    from: head.clone(),
                    run_id: None,
                    outcome: format!("not started: {e}"),
                    because,
                })
            }
        }
    }
}
