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
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::engine::Rollback;
use crate::error::{Error, Result};
use crate::event::{Event, LogLevel, Observer};
use crate::fsutil::IoContext;
use crate::plan::Level;
use crate::time::Timestamp;
use crate::vcs::CommitId;

mod act;

use act::Settled;

/// The stop flag of front-ends that watch (moved to [`crate::signals`]).
pub use crate::signals::{stop_on_signals, stop_on_signals_saying};

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
    /// How each of those runs ended, in the same order: a front-end's exit status says when
    /// one did not succeed (a `--rounds` watch in a CI job or a cron script).
    #[serde(default)]
    pub rollback_outcomes: Vec<WatchRollback>,
    /// Commits marked known-good.
    pub promoted: Vec<CommitId>,
    /// `signal` or `rounds`.
    pub stopped_by: String,
    /// The rollback this watch decided on last but did not start, when no round passed and no
    /// rollback started after it: production was left failing, and a front-end's exit status
    /// says why (another run held the lock, the failures outlived a rollback, a refusal).
    #[serde(default)]
    pub not_started: Option<WatchNotStarted>,
}

/// A rollback a watch decided on, after failed rounds, and did not start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchNotStarted {
    /// The commit the failed rounds checked.
    pub from: CommitId,
    /// Why, as the log says it.
    pub reason: String,
    /// Why, as a family.
    pub kind: NotStartedKind,
}

/// Why a watch did not start the rollback it decided on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotStartedKind {
    /// This watch already rolled back from or to that commit: the failures outlived a
    /// rollback to a verified release, so they are not in the code.
    Outage,
    /// Another run held the lock.
    Locked,
    /// The configuration, the registry or the repository was not usable (no target, ...).
    Usage,
    /// A safety check refused: HEAD moved during the last round (a fix deployed), a dirty
    /// tree, ...
    Refused,
    /// The rollback was declined or interrupted before its first step.
    Cancelled,
    /// Anything else that stopped it before its first step.
    Failed,
}

impl From<crate::ErrorKind> for NotStartedKind {
    fn from(kind: crate::ErrorKind) -> Self {
        match kind {
            crate::ErrorKind::Usage => Self::Usage,
            crate::ErrorKind::Locked => Self::Locked,
            crate::ErrorKind::Refused => Self::Refused,
            crate::ErrorKind::Cancelled => Self::Cancelled,
            _ => Self::Failed,
        }
    }
}

/// How a rollback a watch started ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchRollback {
    /// The run.
    pub run_id: String,
    /// Its status when the watch went on.
    pub status: crate::journal::RunStatus,
    /// Its checks failed (it may have been undone for that: `[verify] on_failure = "undo"`).
    pub verification_failed: bool,
    /// The undo that put back what it changed (`[verify] on_failure = "undo"`): production is
    /// back on the release the watch left.
    #[serde(default)]
    pub undone_by: Option<String>,
}

/// The longest interval between rounds: a year (longer ones overflow the clock's arithmetic,
/// and watch nothing).
const MAX_INTERVAL: Duration = Duration::from_secs(366 * 24 * 3600);

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
        // Its checks and its rollbacks need the runtime: refused now, not at the first round.
        crate::rt::try_runtime().map_err(Error::Runtime)?;
        if opts.failures == 0 {
            return Err(Error::usage("`failures` must be at least 1".to_owned(), None));
        }
        if opts.interval > MAX_INTERVAL {
            return Err(Error::usage(
                format!("an interval of {:.0} s is longer than a year", opts.interval.as_secs_f64()),
                Some("give `--interval` (or `[watch] interval_secs`) in seconds, at most 31622400".into()),
            ));
        }
        if opts.level == Some(Level::Manual) {
            // It would only find out when a rollback is due, and then not roll back.
            return Err(Error::usage(
                "a watcher rolls back unattended; a manual rollback asks before every step".to_owned(),
                Some("watch with `--fast` or `--full`, or leave the level to the assessment".into()),
            ));
        }
        // A registry that cannot be read must not keep production unwatched: the default
        // window, said; it is read again at each promotion and rollback.
        let mut unreadable = None;
        let promote_after = if let Some(d) = opts.promote_after {
            d
        } else {
            let hours = match self.registry() {
                Ok(r) => r.verification_criteria.get("minimum_uptime_hours").and_then(serde_json::Value::as_f64),
                Err(e) => {
                    unreadable = Some(e.chain());
                    None
                }
            }
            .unwrap_or(24.0);
            // A negative window would promote after one round: refused like an absurd one.
            Duration::try_from_secs_f64(hours * 3600.0).map_err(|_| {
                Error::usage(
                    format!("the registry's `verification_criteria.minimum_uptime_hours` ({hours}) is not a usable number of hours"),
                    Some("fix it in the registry, or pass `--promote-after HOURS`".into()),
                )
            })?
        };
        self.state_dir().ensure()?;
        let path = self.state_dir().root().join("watch.jsonl");
        let outage = Self::outage_from_log(&path);
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
        if let Some(e) = unreadable {
            log.say(
                LogLevel::Error,
                format!(
                    "could not read the registry, so the promotion window is the default 24 h (pass `--promote-after HOURS` to choose): {e}; the watch goes on, and reads it again to promote or roll back"
                ),
            );
        }
        // A run left half-way (the watch's own, killed with it; an operator's): every rollback
        // this watch decides on would be refused, so say it now, not at the first outage.
        if self.refuse_locked().is_ok()
            && let Err(e) = self.refuse_unfinished()
        {
            log.say(
                LogLevel::Warn,
                format!(
                    "{e}: until it is finished or undone, a rollback this watch decides on is refused{}",
                    crate::Error::hint(&e).map(|h| format!("; {h}")).unwrap_or_default()
                ),
            );
        }
        let mut report = WatchReport::default();
        let mut settled = Settled::default();
        // A watch before this one (restarted by systemd, after a reboot) rolled back to HEAD:
        // failures now would walk down the registry just the same.
        if let Some(run) = self.watch_rollback_to(&head) {
            log.say(
                LogLevel::Info,
                format!(
                    "HEAD ({}) is the release watch run {run} rolled back to: this watch will not roll back from it either",
                    head.short()
                ),
            );
            settled.rolled_to.push(head.clone());
        }
        for commit in &outage {
            log.say(
                LogLevel::Info,
                format!(
                    "the last watch's rollback from {} failed its own verification (an outage) and no round has passed since: this watch will not roll back from it until one does",
                    commit.short()
                ),
            );
        }
        settled.outage = outage;
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
                report.not_started = None;
                // The outage that failed a rollback's own verification is over.
                settled.outage.clear();
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
                // Asked to stop (a signal during the round): the operator is taking over.
                if !promoted_head && passed_for >= promote_after && !stop.load(Ordering::SeqCst) {
                    promoted_head = self.promote(&mut log, &head, passed_for, opts.dry_run, &mut report)?;
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
                    if stop.load(Ordering::SeqCst) {
                        // A signal during the round: the operator is taking over (a planned
                        // outage, a deploy by hand). Only a rollback already begun finishes.
                        log.say(
                            LogLevel::Warn,
                            format!(
                                "{} failed rounds in a row, but this watch was asked to stop during the round: not starting a rollback",
                                opts.failures
                            ),
                        );
                        report.not_started = Some(WatchNotStarted {
                            from: head.clone(),
                            reason: "the watch was asked to stop (a signal)".into(),
                            kind: NotStartedKind::Cancelled,
                        });
                        log.record(&WatchRecord::Rollback {
                            at: Timestamp::now(),
                            from: head.clone(),
                            run_id: None,
                            outcome: "not started: the watch was asked to stop (a signal)".into(),
                            because: failed,
                        })?;
                    } else {
                        self.watch_rollback(&mut log, opts, &head, failed, &mut report, &mut settled)?;
                    }
                }
            }
            // The last round: no interval after it to wait out.
            if opts.rounds.is_some_and(|n| report.rounds >= n) {
                report.stopped_by = "rounds".into();
                break;
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
}
