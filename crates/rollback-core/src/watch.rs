//! `forge-rollback watch`: what Argo Rollouts and Flagger do on Kubernetes, for apps that are
//! not on Kubernetes.
//!
//! Every interval the configured checks run. After `failures` consecutive failed rounds the
//! watcher rolls back to the newest verified known-good commit (at the configured level) and
//! marks the commit it rolled back from as known bad, so it is never chosen again. After the
//! commit at HEAD has passed every round for the promotion window, the watcher marks it
//! known-good (recording its env with it). Every decision goes to `watch.jsonl` in the state
//! folder (fsync'ed, with the check values that led to it) and to the log. It never starts a
//! rollback while another run holds the lock, and it stops cleanly between rounds when the
//! stop flag is set (SIGINT/SIGTERM in the CLI).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::engine::{Rollback, RunOptions};
use crate::error::{Error, Result};
use crate::event::{Event, LogLevel, Observer};
use crate::fsutil::IoContext;
use crate::journal::RunStatus;
use crate::plan::Level;
use crate::prompt::AutoConfirm;
use crate::time::Timestamp;
use crate::vcs::CommitId;

/// How to watch.
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// Time between the starts of two rounds.
    pub interval: Duration,
    /// Failed rounds in a row before a rollback.
    pub failures: u32,
    /// The rollback's level (`None`: the assessment's recommendation).
    pub level: Option<Level>,
    /// How long HEAD must pass every round before it is marked known-good (`None`: the
    /// registry's `minimum_uptime_hours`, else 24 h).
    pub promote_after: Option<Duration>,
    /// Decide and log, but never roll back or promote.
    pub dry_run: bool,
    /// Stop after this many rounds.
    pub rounds: Option<u64>,
}

/// One line of `watch.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WatchRecord {
    /// The watcher started.
    Started {
        /// When.
        at: Timestamp,
        /// HEAD.
        head: CommitId,
        /// Seconds between rounds.
        interval_secs: f64,
        /// Failed rounds before a rollback.
        failures: u32,
        /// Promotion window in seconds.
        promote_after_secs: f64,
        /// Dry run.
        dry_run: bool,
    },
    /// One verification round.
    Round {
        /// When it began.
        at: Timestamp,
        /// HEAD during the round.
        head: CommitId,
        /// All checks passed.
        passed: bool,
        /// Failed rounds in a row, this one included.
        consecutive_failures: u32,
        /// The failing checks and why (`name: reason`).
        failed: Vec<String>,
        /// Checks that could not decide (no data) and why: the round neither counts as
        /// failed nor as passing.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        inconclusive: Vec<String>,
    },
    /// A rollback the watcher started (or, in a dry run, would have).
    Rollback {
        /// When.
        at: Timestamp,
        /// The commit it rolled back from.
        from: CommitId,
        /// The run, if one started.
        run_id: Option<String>,
        /// Its status, or why none started.
        outcome: String,
        /// The check values that led to it.
        because: Vec<String>,
    },
    /// A commit marked known-good (or, in a dry run, that would have been).
    Promote {
        /// When.
        at: Timestamp,
        /// The commit.
        commit: CommitId,
        /// How long it passed every round, in seconds.
        passed_for_secs: f64,
        /// Whether the registry was changed.
        done: bool,
    },
    /// A commit marked known bad after a rollback away from it.
    MarkBad {
        /// When.
        at: Timestamp,
        /// The commit.
        commit: CommitId,
    },
    /// The watcher stopped.
    Stopped {
        /// When.
        at: Timestamp,
        /// `signal` or `rounds`.
        reason: String,
    },
}

/// What a watch did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WatchReport {
    /// Rounds run.
    pub rounds: u64,
    /// Rounds that failed.
    pub failed_rounds: u64,
    /// Runs started.
    pub rollbacks: Vec<String>,
    /// Commits marked known-good.
    pub promoted: Vec<CommitId>,
    /// `signal` or `rounds`.
    pub stopped_by: String,
}

/// A stop flag set by SIGINT or SIGTERM, for front-ends that watch.
///
/// The signals are received on the shared runtime, so the process is not killed by them while
/// the flag is installed: the watcher finishes its round (a rollback in progress completes)
/// and returns.
pub fn stop_on_signals() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Registered before this returns, not in the spawned task: a signal that comes as soon
        // as the watch starts sets the flag instead of killing the process.
        let _context = crate::rt::runtime().enter();
        if let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            let f = flag.clone();
            crate::rt::runtime().spawn(async move {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
                f.store(true, Ordering::SeqCst);
            });
        }
    }
    flag
}

struct Log<'a> {
    observer: &'a dyn Observer,
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl Log<'_> {
    fn say(&self, level: LogLevel, message: impl Into<String>) {
        self.observer.event(&Event::Log { at: Timestamp::now(), level, message: message.into(), hint: None });
    }

    fn record(&mut self, r: &WatchRecord) -> Result<()> {
        let mut line = serde_json::to_vec(r).unwrap_or_default();
        line.push(b'\n');
        self.file.write_all(&line).at("append to", &self.path)?;
        self.file.sync_data().at("sync", &self.path)?;
        Ok(())
    }
}

/// `1.5 s`, `12 min`, `24.0 h`.
fn human(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{:.0} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

/// Sleeps until `until`, waking every 100 ms to look at `stop`; `true` if stopped.
fn sleep_until(until: Instant, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::SeqCst) {
            return true;
        }
        let now = Instant::now();
        if now >= until {
            return false;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(100)));
    }
}

impl Rollback {
    /// Watches the services until `stop` is set or `opts.rounds` rounds ran.
    pub fn watch(&self, opts: &WatchOptions, stop: &AtomicBool, observer: &dyn Observer) -> Result<WatchReport> {
        if self.config().checks.is_empty() {
            return Err(Error::usage(
                "nothing to watch: no `[[checks]]` are configured".to_owned(),
                Some("add checks (`forge-rollback init --preset forge --print` shows examples)".into()),
            ));
        }
        if opts.failures == 0 {
            return Err(Error::usage("`failures` must be at least 1".to_owned(), None));
        }
        if opts.level == Some(Level::Manual) {
            // It would only find out when a rollback is due, and then not roll back.
            return Err(Error::usage(
                "a watcher rolls back unattended; a manual rollback asks before every step".to_owned(),
                Some("watch with `--fast` or `--full`, or leave the level to the assessment".into()),
            ));
        }
        let promote_after = if let Some(d) = opts.promote_after {
            d
        } else {
            let hours = self
                .registry()?
                .verification_criteria
                .get("minimum_uptime_hours")
                .and_then(serde_json::Value::as_f64)
                .unwrap_or(24.0);
            Duration::try_from_secs_f64(hours.max(0.0) * 3600.0).map_err(|_| {
                Error::usage(
                    format!("the registry's `verification_criteria.minimum_uptime_hours` ({hours}) is not a usable number of hours"),
                    Some("fix it in the registry, or pass `--promote-after HOURS`".into()),
                )
            })?
        };
        self.state_dir().ensure()?;
        let path = self.state_dir().root().join("watch.jsonl");
        let file = OpenOptions::new().create(true).append(true).mode(0o600).open(&path).at("open", &path)?;
        let mut log = Log { observer, file, path };
        let mut head = self.vcs().head()?.commit;
        log.record(&WatchRecord::Started {
            at: Timestamp::now(),
            head: head.clone(),
            interval_secs: opts.interval.as_secs_f64(),
            failures: opts.failures,
            promote_after_secs: promote_after.as_secs_f64(),
            dry_run: opts.dry_run,
        })?;
        log.say(
            LogLevel::Info,
            format!(
                "Watching {} check(s) every {:.1} s: rollback after {} failed round(s) in a row, promotion after {:.1} h{}",
                self.config().checks.len(),
                opts.interval.as_secs_f64(),
                opts.failures,
                promote_after.as_secs_f64() / 3600.0,
                if opts.dry_run { " (dry run)" } else { "" }
            ),
        );
        let mut report = WatchReport::default();
        // Commits this watch will not roll back from (again): the releases it rolled back to,
        // and the ones it left when the target failed the checks too. The failures outlived a
        // rollback to a verified release, so the code is not their cause; walking down the
        // registry marking releases bad, or flapping between rollback and undo, would only
        // make things worse.
        let mut settled: Vec<CommitId> = Vec::new();
        let mut failures = 0u32;
        let mut passing_since: Option<Instant> = None;
        let mut promoted_head = false;
        loop {
            if stop.load(Ordering::SeqCst) {
                report.stopped_by = "signal".into();
                break;
            }
            if opts.rounds.is_some_and(|n| report.rounds >= n) {
                report.stopped_by = "rounds".into();
                break;
            }
            let round_start = Instant::now();
            let now_head = self.vcs().head()?.commit;
            if now_head != head {
                log.say(LogLevel::Info, format!("HEAD moved to {}: promotion window starts again", now_head.short()));
                head = now_head;
                passing_since = None;
                promoted_head = false;
                failures = 0;
            }
            let v = self.verify(None)?;
            report.rounds += 1;
            let failed: Vec<String> = v
                .checks
                .iter()
                .filter(|c| !c.passed && !c.inconclusive())
                .map(|c| format!("{}: {}", c.name, c.reason))
                .collect();
            let inconclusive: Vec<String> =
                v.checks.iter().filter(|c| c.inconclusive()).map(|c| format!("{}: {}", c.name, c.reason)).collect();
            if failed.is_empty() && !inconclusive.is_empty() {
                // No evidence either way: no step towards a rollback, none towards promotion.
                passing_since = None;
                log.say(
                    LogLevel::Warn,
                    format!(
                        "round {}: inconclusive ({failures}/{} failed in a row, unchanged): {}",
                        report.rounds,
                        opts.failures,
                        inconclusive.join("; ")
                    ),
                );
                log.record(&WatchRecord::Round {
                    at: v.started_at,
                    head: head.clone(),
                    passed: false,
                    consecutive_failures: failures,
                    failed,
                    inconclusive,
                })?;
            } else if v.passed {
                failures = 0;
                let since = *passing_since.get_or_insert(round_start);
                log.say(LogLevel::Success, format!("round {}: all {} check(s) passed", report.rounds, v.checks.len()));
                log.record(&WatchRecord::Round {
                    at: v.started_at,
                    head: head.clone(),
                    passed: true,
                    consecutive_failures: 0,
                    failed,
                    inconclusive,
                })?;
                let passed_for = round_start.saturating_duration_since(since) + Duration::from_millis(v.duration_ms);
                if !promoted_head && passed_for >= promote_after {
                    promoted_head = true;
                    self.promote(&mut log, &head, passed_for, opts.dry_run, &mut report)?;
                }
            } else {
                failures += 1;
                report.failed_rounds += 1;
                passing_since = None;
                log.say(
                    LogLevel::Warn,
                    format!(
                        "round {}: {} of {} check(s) failed ({failures}/{} in a row): {}",
                        report.rounds,
                        failed.len(),
                        v.checks.len(),
                        opts.failures,
                        failed.join("; ")
                    ),
                );
                log.record(&WatchRecord::Round {
                    at: v.started_at,
                    head: head.clone(),
                    passed: false,
                    consecutive_failures: failures,
                    failed: failed.clone(),
                    inconclusive,
                })?;
                if failures >= opts.failures {
                    failures = 0;
                    self.watch_rollback(&mut log, opts, &head, failed, &mut report, &mut settled)?;
                }
            }
            if sleep_until(round_start + opts.interval, stop) {
                report.stopped_by = "signal".into();
                break;
            }
        }
        log.record(&WatchRecord::Stopped { at: Timestamp::now(), reason: report.stopped_by.clone() })?;
        log.say(
            LogLevel::Info,
            format!(
                "Watch stopped ({}): {} round(s), {} failed, {} rollback(s), {} promotion(s)",
                report.stopped_by,
                report.rounds,
                report.failed_rounds,
                report.rollbacks.len(),
                report.promoted.len()
            ),
        );
        Ok(report)
    }

    fn promote(
        &self,
        log: &mut Log<'_>,
        head: &CommitId,
        passed_for: Duration,
        dry_run: bool,
        report: &mut WatchReport,
    ) -> Result<()> {
        let (good, bad) =
            self.registry()?.find(head).map_or((false, false), |e| (e.verified && !e.known_bad, e.known_bad));
        if good {
            return Ok(());
        }
        let passed = human(passed_for);
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
            let out = self.mark_good(head.as_str(), Some(&format!("watch: passed every round for {passed}")))?;
            for n in &out.notes {
                log.say(LogLevel::Warn, n.clone());
            }
            log.say(LogLevel::Success, format!("Marked {} known-good (passed every round for {passed})", head.short()));
            report.promoted.push(head.clone());
        }
        log.record(&WatchRecord::Promote {
            at: Timestamp::now(),
            commit: head.clone(),
            passed_for_secs: passed_for.as_secs_f64(),
            done: !dry_run && !bad,
        })
    }

    fn watch_rollback(
        &self,
        log: &mut Log<'_>,
        opts: &WatchOptions,
        head: &CommitId,
        because: Vec<String>,
        report: &mut WatchReport,
        settled: &mut Vec<CommitId>,
    ) -> Result<()> {
        let at = Timestamp::now();
        if settled.contains(head) {
            log.say(
                LogLevel::Error,
                format!(
                    "{} failed rounds, but this watch already rolled back from or to {}: the failures outlived a rollback to a verified release, so they are not in the code; not rolling back again (investigate the services, the database, the network)",
                    opts.failures,
                    head.short()
                ),
            );
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
        match self.run(&run_opts, &AutoConfirm, log.observer) {
            Ok(outcome) if opts.dry_run => log.record(&WatchRecord::Rollback {
                at,
                from: head.clone(),
                run_id: None,
                outcome: format!("dry run: would roll back to {}", outcome.to.short()),
                because,
            }),
            Ok(outcome) => {
                if let Some(id) = &outcome.run_id {
                    report.rollbacks.push(id.clone());
                }
                let verified = outcome.verification.as_ref().is_none_or(|v| v.passed);
                if matches!(outcome.status, RunStatus::Succeeded | RunStatus::VerificationFailed | RunStatus::Undone) {
                    settled.push(outcome.to.clone());
                }
                if !verified {
                    // The checks failed on the known-good release too (and `on_failure = "undo"`
                    // may have brought the broken one back): the failures are not in the code.
                    // Rolling back again from either commit would only flap.
                    settled.push(head.clone());
                }
                log.record(&WatchRecord::Rollback {
                    at,
                    from: head.clone(),
                    run_id: outcome.run_id.clone(),
                    outcome: outcome.status.to_string(),
                    because,
                })?;
                if outcome.status == RunStatus::Succeeded && verified {
                    // Only when the known-good release passes where this one failed is there
                    // evidence against this one.
                    self.mark_bad(head.as_str(), Some("watch: failed verification; rolled back from"))?;
                    log.say(
                        LogLevel::Info,
                        format!("Marked {} known bad: it will not be a rollback target", head.short()),
                    );
                    log.record(&WatchRecord::MarkBad { at: Timestamp::now(), commit: head.clone() })?;
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
