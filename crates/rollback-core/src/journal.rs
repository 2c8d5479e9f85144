//! The run journal: one JSON object per line, fsync'ed after every record.
//!
//! A run writes `started` (with its whole plan), then `step_begin` and `step_end` (or
//! `step_failed`) around every step, then `finished`, then (with `[[notify]]`) `notified`. An undo appends `undone` to the journal
//! of the run it undid. After a crash (`kill -9`, power loss) the journal says exactly which
//! steps completed, so `resume` can finish the run and `undo` can put everything back. A last
//! line cut short by a crash is ignored; damage anywhere else is an error naming the line.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::detail::{FailureDetail, ProgressDetail, StepDetail};
use crate::fsutil::{IoContext, IoError};
use crate::plan::Plan;
use crate::time::Timestamp;

/// Journal errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No run with that id.
    #[error("no run `{run_id}`")]
    UnknownRun {
        /// The id asked for.
        run_id: String,
    },
    /// A line that is not a valid record (other than a torn last line).
    #[error("journal `{}` is damaged at line {line}: {detail}", path.display())]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        detail: String,
    },
    /// A record that cannot be written as JSON (nothing was written).
    #[error("cannot write a record to journal `{}`: {detail}", path.display())]
    Unwritable {
        /// The journal file.
        path: PathBuf,
        /// What serde said.
        detail: String,
    },
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] IoError),
}

pub use crate::model::{RunStatus, Severity};

impl std::str::FromStr for Severity {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self, crate::Error> {
        match s.to_ascii_lowercase().as_str() {
            "critical" => Ok(Severity::Critical),
            "high" => Ok(Severity::High),
            "medium" => Ok(Severity::Medium),
            "low" => Ok(Severity::Low),
            _ => Err(crate::Error::usage(
                format!("unknown severity `{s}`"),
                Some("use one of critical, high, medium, low".into()),
            )),
        }
    }
}

/// The journal format this version writes, in [`Record::Started`]: `1` journals what a step
/// finds part-way ([`Record::Progress`]), so a reader can tell "the step never got that far"
/// from "written before such records existed" (`0`), and what the webhooks did
/// ([`Record::Notified`]).
pub const JOURNAL_FORMAT: u32 = 1;

/// One journal line.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// The run began (under the lock) with this plan.
    Started {
        /// When.
        at: Timestamp,
        /// The run.
        run_id: String,
        /// The plan it executes.
        plan: Plan,
        /// Why (from `--reason`).
        reason: Option<String>,
        /// How bad (from `--severity`).
        #[serde(default)]
        severity: Option<Severity>,
        /// The work tree it ran in, as its git folder relative to the repository's (`""`: the
        /// main work tree, `worktrees/NAME`: a linked one). Linked work trees share the state
        /// folder, so `undo` and `resume` check they run where the run did. `None` in journals
        /// written before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        worktree: Option<String>,
        /// The repository it ran in: its common git folder, absolute and canonical. Two clones
        /// (or two unrelated repositories) whose configs name one state folder see each
        /// other's runs, and `worktree` is the same (`""`) in each; this tells them apart.
        /// (The work tree's own path is the plan's `workdir`.) `None` in journals written
        /// before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none", with = "crate::paths::os_path_opt")]
        git_dir: Option<PathBuf>,
        /// Who asked for the run (`RunOptions::actor`); `None` when not given, and in older
        /// journals.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        actor: Option<String>,
        /// What the journal records ([`JOURNAL_FORMAT`] when written by this version; `0`
        /// in journals written before it was recorded, which have no [`Record::Progress`]).
        #[serde(default)]
        format: u32,
        /// The run's place among the runs of its state folder: one more than the highest
        /// before it, taken under the state folder's lock ([`RunOrder`]). `None` in journals
        /// written before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    },
    /// A step is about to run.
    StepBegin {
        /// When.
        at: Timestamp,
        /// 0-based index into the plan's steps.
        index: usize,
        /// Step name.
        step: String,
    },
    /// A step completed.
    StepEnd {
        /// When.
        at: Timestamp,
        /// 0-based index.
        index: usize,
        /// Step name.
        step: String,
        /// What it did (snapshot id, counts, ...).
        detail: StepDetail,
    },
    /// A step failed.
    StepFailed {
        /// When.
        at: Timestamp,
        /// 0-based index.
        index: usize,
        /// Step name.
        step: String,
        /// The error, whole chain, one line.
        error: String,
        /// What the step leaves behind despite failing, when it says (a failed downgrade:
        /// `{"database_changed": false}` once the database is as it was before the step).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        detail: Option<FailureDetail>,
    },
    /// What a running step found part-way, before acting on it ([`ProgressDetail`]).
    Progress {
        /// When.
        at: Timestamp,
        /// 0-based index.
        index: usize,
        /// Step name.
        step: String,
        /// What it found.
        detail: ProgressDetail,
    },
    /// The operator answered for a step of a manual run.
    Decision {
        /// When.
        at: Timestamp,
        /// 0-based index.
        index: usize,
        /// Step name.
        step: String,
        /// `yes`, `no`, `inspect`, `abort` or `abort-undo`.
        answer: String,
    },
    /// A step the operator chose to skip (manual runs).
    StepSkipped {
        /// When.
        at: Timestamp,
        /// 0-based index.
        index: usize,
        /// Step name.
        step: String,
    },
    /// A resume took over the run.
    Resumed {
        /// When.
        at: Timestamp,
    },
    /// The work tree was captured again after the run's snapshot (by a resume, or by the reset
    /// finding a path changed since the snapshot): `snapshot` holds the latest content of every
    /// path the run's snapshot held plus every path changed since, and is what `undo` restores
    /// from then on.
    Recaptured {
        /// When.
        at: Timestamp,
        /// The new snapshot (a whole manifest, not a difference).
        snapshot: crate::backup::SnapshotId,
        /// The snapshot it replaces.
        replaces: crate::backup::SnapshotId,
        /// Paths whose content differs from the replaced snapshot.
        changed: usize,
        /// Why: `resume` or `reset`.
        reason: String,
    },
    /// The run ended.
    Finished {
        /// When.
        at: Timestamp,
        /// How.
        status: RunStatus,
        /// The error, if it failed.
        error: Option<String>,
        /// The warnings logged until then (what the run's outcome and incident report list),
        /// so that a report made later has them too.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        warnings: Vec<String>,
    },
    /// The webhooks were sent, after `finished` (they are sent once the run is recorded): what
    /// each did with the run's `started` and its last event. Those that failed are warnings of
    /// the run, as `finished`'s are ([`RunState::warnings`]).
    Notified {
        /// When the last was done.
        at: Timestamp,
        /// One per webhook and event sent.
        results: Vec<crate::notify::NotifyResult>,
    },
    /// A later undo restored the state from before this run.
    Undone {
        /// When.
        at: Timestamp,
        /// The undo's run id, or [`NOTHING_CHANGED`] for a run marked undone because it
        /// stopped before changing anything.
        by: String,
    },
}

/// `Record::Undone`'s `by` (and `undone_by` in outcomes) of a run that stopped before changing
/// anything: marked undone without an undo run.
pub const NOTHING_CHANGED: &str = "nothing-changed";

/// How a run was undone, for people, after "undone": `by run ID`, or that it had changed
/// nothing.
pub fn undone_by_words(by: &str) -> String {
    if by == NOTHING_CHANGED {
        "with nothing to undo: it stopped before changing anything".to_owned()
    } else {
        format!("by run {by}")
    }
}

/// An open journal, appending.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
}

impl Journal {
    /// Creates a new journal holding `first` (the run's `started` record); fails if it
    /// exists. The file appears with its first record in it or not at all
    /// ([`crate::fsutil::atomic_create`]): a crash half-way, or a record that cannot be
    /// written, never leaves an empty journal, which would read as damaged and stop every
    /// later command that lists the runs.
    pub fn create(path: &Path, first: &Record) -> Result<Self, Error> {
        crate::fsutil::atomic_create(path, &line_of(first, path)?, 0o600)?;
        Self::open(path)
    }

    /// Opens an existing journal for appending. A torn last line (a crash or a power loss in
    /// the middle of an append, which [`read`] ignores) is dealt with first, so that the next
    /// record starts on a line of its own: a whole record that only lost its newline gets it
    /// back; anything else is cut off (the file truncated to its last complete line and
    /// synced), after the cut bytes are kept in `journal.jsonl.torn` next to it. Appending
    /// after the torn bytes instead would glue the next record to them, and the journal would
    /// then read as damaged for good.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let (mut file, _) =
            crate::fsutil::open_private(path, OpenOptions::new().read(true).append(true), "open journal")?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).at("read journal", path)?;
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let tail = &bytes[complete..];
        if !tail.is_empty() {
            if parse_line(tail).is_some() {
                file.write_all(b"\n").at("append to journal", path)?;
            } else if complete == 0 {
                // Not even the `started` record is whole (it is written with the file, so
                // this is damage from outside): nothing is cut.
                return Err(Error::Corrupt {
                    path: path.to_owned(),
                    line: 1,
                    detail: "the first record is not `started`".into(),
                });
            } else {
                keep_torn(path, tail)?;
                file.set_len(complete as u64).at("cut the torn last line of journal", path)?;
            }
            file.sync_data().at("sync journal", path)?;
        }
        Ok(Self { file, path: path.to_owned() })
    }

    /// Appends a record and fsyncs it.
    pub fn append(&mut self, record: &Record) -> Result<(), Error> {
        let line = line_of(record, &self.path)?;
        #[cfg(feature = "failpoints")]
        failpoint(&line)?;
        self.file.write_all(&line).at("append to journal", &self.path)?;
        self.file.sync_data().at("sync journal", &self.path)?;
        Ok(())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The failpoints `journal:<record>` and `journal:<record>:<step>` of an append of `line`.
#[cfg(feature = "failpoints")]
fn failpoint(line: &[u8]) -> Result<(), Error> {
    let record: serde_json::Value = serde_json::from_slice(line).unwrap_or_default();
    let kind = record["record"].as_str().unwrap_or_default();
    let hit = |point: String| match crate::failpoint::hit(&point) {
        Err(crate::Error::Io(e)) => Err(Error::Io(e)),
        _ => Ok(()),
    };
    hit(format!("journal:{kind}"))?;
    match record["step"].as_str() {
        Some(step) => hit(format!("journal:{kind}:{step}")),
        None => Ok(()),
    }
}

/// Where [`Journal::open`] keeps the bytes of a torn last line it cuts off.
pub fn torn_path(journal: &Path) -> PathBuf {
    let mut name = journal.file_name().unwrap_or_default().to_owned();
    name.push(".torn");
    journal.with_file_name(name)
}

/// Appends the torn bytes, and a newline, to [`torn_path`] (mode `0600`), synced.
fn keep_torn(journal: &Path, tail: &[u8]) -> Result<(), Error> {
    let side = torn_path(journal);
    let (mut f, _) = crate::fsutil::open_private(
        &side,
        OpenOptions::new().append(true).create(true).mode(0o600),
        "keep the torn last line of journal in",
    )?;
    f.write_all(tail).and_then(|()| f.write_all(b"\n")).at("write", &side)?;
    f.sync_all().at("sync", &side)?;
    if let Some(dir) = side.parent() {
        crate::fsutil::sync_dir(dir)?;
    }
    Ok(())
}

/// One line as a record, older forms included; `None` when it is not one.
fn parse_line(line: &[u8]) -> Option<Record> {
    serde_json::from_slice::<Record>(line).ok().or_else(|| upgrade(line))
}

/// `record` as one journal line: its JSON and a newline.
fn line_of(record: &Record, path: &Path) -> Result<Vec<u8>, Error> {
    let mut line =
        serde_json::to_vec(record).map_err(|e| Error::Unwritable { path: path.to_owned(), detail: e.to_string() })?;
    line.push(b'\n');
    Ok(line)
}

/// Reads every record. A torn last line (a crash in the middle of a write) is dropped.
pub fn read(path: &Path) -> Result<Vec<Record>, Error> {
    match read_readable(path)? {
        (records, None) => Ok(records),
        (_, Some(damage)) => Err(damage),
    }
}

/// Reads the records up to the first damaged line, and that damage ([`Error::Corrupt`]), if
/// any. A torn last line (a crash in the middle of a write: the final line, without its
/// newline) is not damage and is dropped; any other line that is not a record is. I/O errors
/// are errors.
pub fn read_readable(path: &Path) -> Result<(Vec<Record>, Option<Error>), Error> {
    let bytes = crate::fsutil::read(path)?;
    let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').collect();
    let mut records = Vec::new();
    let mut damage = None;
    for (i, line) in lines.iter().enumerate() {
        if line.is_empty() {
            continue;
        }
        let is_last = i + 1 >= lines.len() || lines[i + 1..].iter().all(|l| l.is_empty());
        match serde_json::from_slice::<Record>(line).or_else(|e| upgrade(line).ok_or(e)) {
            Ok(r) => records.push(r),
            // Only the final line can be cut short, and only if it lacks its newline.
            Err(_) if is_last && !bytes.ends_with(b"\n") => break,
            Err(e) => {
                let detail = match records.first() {
                    // Not damage, most likely: a record kind this version does not know.
                    Some(Record::Started { format, .. }) if *format > JOURNAL_FORMAT => format!(
                        "{e}; the run was journaled by a newer forge-rollback (journal format {format}, this one reads up to {JOURNAL_FORMAT}): resume or undo it with that version"
                    ),
                    _ => e.to_string(),
                };
                damage = Some(Error::Corrupt { path: path.to_owned(), line: i + 1, detail });
                break;
            }
        }
    }
    if !matches!(records.first(), Some(Record::Started { .. })) {
        records.clear();
        damage =
            Some(Error::Corrupt { path: path.to_owned(), line: 1, detail: "the first record is not `started`".into() });
    }
    Ok((records, damage))
}

/// Reads a record written before step details carried their `"kind"` tag: the tag is the
/// record's step name. `None` when that does not help either (the caller reports the first
/// error).
fn upgrade(line: &[u8]) -> Option<Record> {
    let mut v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let obj = v.as_object_mut()?;
    if obj.get("record")?.as_str()? != "step_end" {
        return None;
    }
    let step = obj.get("step")?.as_str()?.to_owned();
    let detail = obj.get_mut("detail")?.as_object_mut()?;
    if detail.contains_key("kind") {
        return None;
    }
    detail.insert("kind".into(), serde_json::Value::String(step));
    serde_json::from_value(v).ok()
}

/// A run as reconstructed from its journal.
#[derive(Clone, Debug)]
pub struct RunState {
    /// The run.
    pub run_id: String,
    /// When it started.
    pub started_at: Timestamp,
    /// Its plan.
    pub plan: Plan,
    /// Why.
    pub reason: Option<String>,
    /// How bad.
    pub severity: Option<Severity>,
    /// The work tree it ran in (see [`Record::Started`]); `None` if not recorded.
    pub worktree: Option<String>,
    /// The repository's git folder it ran in (see [`Record::Started`]); `None` if not
    /// recorded.
    pub git_dir: Option<PathBuf>,
    /// Who asked for it, if given.
    pub actor: Option<String>,
    /// Its journal's format ([`JOURNAL_FORMAT`]; `0` if written before it was recorded).
    pub format: u32,
    /// Its place among the state folder's runs (see [`Record::Started`]); `None` if not
    /// recorded.
    pub seq: Option<u64>,
    /// For each step of the plan, its completion detail if it completed.
    pub done: Vec<Option<StepDetail>>,
    /// A step that began and neither ended nor failed (the crash point), if any.
    pub interrupted_at: Option<usize>,
    /// The last failure (step index and error), if the latest attempt failed.
    pub failure: Option<(usize, String)>,
    /// Recorded outcome.
    pub status: RunStatus,
    /// When it finished, if it did.
    pub finished_at: Option<Timestamp>,
    /// The undo that undid it.
    pub undone_by: Option<String>,
    /// The warnings of the latest attempt, as its [`Record::Finished`] has them, then its
    /// webhooks' that failed ([`Record::Notified`]).
    pub warnings: Vec<String>,
    /// Steps the operator skipped (manual runs).
    pub skipped: Vec<usize>,
    /// Every record, for timelines.
    pub records: Vec<Record>,
    /// The latest work-tree snapshot: the `snapshot` step's, or a later
    /// [`Record::Recaptured`] one. `undo` restores from it.
    pub tree_snapshot: Option<crate::backup::SnapshotId>,
}

/// Where a run stands among the runs of one state folder, for "which came first": by the
/// `seq` of its [`Record::Started`], which a clock stepped back (NTP, a restored VM) cannot
/// reorder. Runs journaled before `seq` was recorded come before every numbered one, in the
/// order of their start times, then ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunOrder<'a>(bool, u64, Timestamp, &'a str);

impl<'a> RunOrder<'a> {
    /// From a run's `seq`, start time and id.
    pub fn new(seq: Option<u64>, started_at: Timestamp, run_id: &'a str) -> Self {
        Self(seq.is_some(), seq.unwrap_or(0), started_at, run_id)
    }
}

impl RunState {
    /// Its place among the runs of its state folder.
    pub fn order(&self) -> RunOrder<'_> {
        RunOrder::new(self.seq, self.started_at, &self.run_id)
    }

    /// Rebuilds the state from records.
    pub fn from_records(path: &Path, records: Vec<Record>) -> Result<Self, Error> {
        let Some(Record::Started { at, run_id, plan, reason, severity, worktree, git_dir, actor, format, seq }) =
            records.first().cloned()
        else {
            return Err(Error::Corrupt {
                path: path.to_owned(),
                line: 1,
                detail: "the first record is not `started`".into(),
            });
        };
        let mut state = RunState {
            run_id,
            started_at: at,
            done: vec![None; plan.steps.len()],
            plan,
            reason,
            severity,
            worktree,
            git_dir,
            actor,
            format,
            seq,
            interrupted_at: None,
            failure: None,
            status: RunStatus::Running,
            finished_at: None,
            undone_by: None,
            warnings: Vec::new(),
            skipped: Vec::new(),
            records: Vec::new(),
            tree_snapshot: None,
        };
        for (n, r) in records.iter().enumerate().skip(1) {
            let check = |index: usize| {
                if index < state.done.len() {
                    Ok(())
                } else {
                    Err(Error::Corrupt {
                        path: path.to_owned(),
                        line: n + 1,
                        detail: format!("step {index} is not in the plan"),
                    })
                }
            };
            match r {
                Record::Started { .. } => {
                    return Err(Error::Corrupt {
                        path: path.to_owned(),
                        line: n + 1,
                        detail: "a second `started` record".into(),
                    });
                }
                Record::StepBegin { index, .. } => {
                    check(*index)?;
                    state.interrupted_at = Some(*index);
                }
                Record::StepEnd { index, detail, .. } => {
                    check(*index)?;
                    if let StepDetail::Snapshot { snapshot, .. } = detail
                        && state.plan.steps[*index].name() == "snapshot"
                    {
                        state.tree_snapshot = Some(snapshot.clone());
                    }
                    state.done[*index] = Some(detail.clone());
                    state.interrupted_at = None;
                }
                Record::StepFailed { index, error, .. } => {
                    check(*index)?;
                    state.failure = Some((*index, error.clone()));
                    state.interrupted_at = None;
                }
                Record::Decision { index, .. } | Record::Progress { index, .. } => check(*index)?,
                Record::StepSkipped { index, .. } => {
                    check(*index)?;
                    state.done[*index] = Some(StepDetail::Skipped);
                    state.skipped.push(*index);
                    state.interrupted_at = None;
                }
                Record::Recaptured { snapshot, .. } => state.tree_snapshot = Some(snapshot.clone()),
                Record::Resumed { .. } => {
                    state.failure = None;
                    state.status = RunStatus::Running;
                    state.finished_at = None;
                }
                Record::Finished { at, status, warnings, .. } => {
                    state.status = *status;
                    state.finished_at = Some(*at);
                    state.warnings.clone_from(warnings);
                }
                Record::Notified { results, .. } => {
                    state.warnings.extend(results.iter().filter_map(crate::notify::NotifyResult::warning));
                }
                Record::Undone { by, .. } => {
                    state.undone_by = Some(by.clone());
                    state.status = RunStatus::Undone;
                }
            }
        }
        state.records = records;
        Ok(state)
    }

    /// Reads a journal file and rebuilds the state.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let records = read(path)?;
        Self::from_records(path, records)
    }

    /// Like [`RunState::load`], but a damaged journal gives the state its records before the
    /// first damage say, with the damage ([`Error::Corrupt`]); an error only when not even the
    /// `started` record can be read. For listing runs: what lies past the damage is unknown,
    /// so nothing may be undone or resumed from such a state.
    pub fn load_readable(path: &Path) -> Result<(Self, Option<Error>), Error> {
        let (mut records, mut damage) = read_readable(path)?;
        loop {
            match Self::from_records(path, records.clone()) {
                Ok(state) => return Ok((state, damage)),
                // A record that does not fit the run (a step not in the plan): damage there.
                Err(Error::Corrupt { line, path, detail }) if line >= 2 && line <= records.len() => {
                    records.truncate(line - 1);
                    damage = Some(Error::Corrupt { path, line, detail });
                }
                Err(e) => return Err(damage.unwrap_or(e)),
            }
        }
    }

    /// The completion detail of the first step with this name, if it completed.
    pub fn detail_of(&self, step: &str) -> Option<&StepDetail> {
        self.plan.steps.iter().zip(&self.done).find(|(s, _)| s.name() == step).and_then(|(_, d)| d.as_ref())
    }

    /// What the run's downgrade destroys: the plan's forecast, or the one measured again when a
    /// resume put rows back and took the database snapshot again (see `StepDetail::DbSnapshot`).
    pub fn data_loss_forecast(&self) -> &[crate::model::DataLoss] {
        match self.detail_of("db_snapshot") {
            Some(StepDetail::DbSnapshot { forecast: Some(f), .. }) => f,
            _ => &self.plan.data_loss,
        }
    }

    /// Why what the run's downgrade destroys is unknown, if it is: its plan's data-loss forecast
    /// could not be made (the reason its `data_loss_unknown` risk gives), and no resume measured
    /// it again. The forecast is then empty, and says nothing.
    pub fn data_loss_unknown(&self) -> Option<&str> {
        if matches!(self.detail_of("db_snapshot"), Some(StepDetail::DbSnapshot { forecast: Some(_), .. })) {
            return None;
        }
        let risk = self.plan.risks.iter().find(|r| r.code == crate::model::RiskCode::DataLossUnknown)?;
        Some(risk.why())
    }

    /// The verdict of the run's completed `verify` step, if it has one.
    pub fn verification(&self) -> Option<&crate::verify::VerificationReport> {
        match self.detail_of("verify")? {
            StepDetail::Verify(v) => Some(v),
            _ => None,
        }
    }

    /// The snapshot id a completed step journaled (`snapshot` and `db_snapshot` steps).
    pub fn snapshot_of(&self, step: &str) -> Option<crate::backup::SnapshotId> {
        self.detail_of(step).and_then(StepDetail::snapshot).cloned()
    }

    /// Whether step `index` changed what it works on: it began, was not skipped, and did not
    /// end in a failure that says it left nothing changed (`database_changed: false` in the
    /// failure's detail: a downgrade whose database was put back).
    pub fn step_changed(&self, index: usize) -> bool {
        let last = self.records.iter().rev().find(|r| {
            matches!(r, Record::StepBegin { index: i, .. } | Record::StepEnd { index: i, .. } | Record::StepFailed { index: i, .. } if *i == index)
        });
        match last {
            None => false,
            Some(Record::StepFailed { detail: Some(d), .. }) => d.database_changed,
            Some(_) => !self.skipped.contains(&index),
        }
    }

    /// Where step `index` stands: `skipped` (by the operator), `done`, `failed`,
    /// `interrupted` (begun, and the process died) or `pending`.
    pub fn step_status(&self, index: usize) -> &'static str {
        if self.skipped.contains(&index) {
            "skipped"
        } else if self.done.get(index).is_some_and(Option::is_some) {
            "done"
        } else if self.failure.as_ref().is_some_and(|(f, _)| *f == index) {
            "failed"
        } else if self.interrupted_at == Some(index) {
            "interrupted"
        } else {
            "pending"
        }
    }

    /// The first step that has not completed.
    pub fn next_step(&self) -> Option<usize> {
        self.done.iter().position(Option::is_none)
    }
}

#[cfg(test)]
mod tests;
