//! One function per command: call the core, print the result.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rollback_core::backup::SnapshotId;
use rollback_core::event::Observer as _;
use rollback_core::lock::Unlocked;
use rollback_core::plan::Level;
use rollback_core::prompt::{AutoConfirm, Prompter};
use rollback_core::{Rollback, RunOptions, config};
use rollback_core::{RunOutcome, RunStatus};

use crate::cli::{Args, BackupsCommand, Command, KnownGoodCommand, LevelArgs, RunsCommand};
use crate::exit::ExitStatus;
use crate::output::{LogPrinter, OnSignal, Output};
use crate::render;
use crate::terminal::TerminalPrompter;

fn open(args: &Args) -> anyhow::Result<Rollback> {
    let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    // A locked database is said on stderr while the command waits, whichever command it is.
    let notices = std::sync::Arc::new(LogPrinter::new(args.quiet, OnSignal::Die));
    let rb = Rollback::open(&dir, args.config.as_deref())?;
    // What the configuration holds that works but not as one may expect (a secret too short
    // to be scrubbed): said once, as it is loaded, whichever command loads it.
    for message in rb.config().warnings() {
        notices.event(&rollback_core::event::Event::Log {
            at: rollback_core::time::Timestamp::now(),
            level: rollback_core::event::LogLevel::Warn,
            message,
            hint: None,
        });
    }
    Ok(rb.with_notices(notices))
}

/// The error of opening a bare repository as a work tree.
fn is_bare(err: &anyhow::Error) -> bool {
    matches!(
        crate::output::core_error(err),
        Some(rollback_core::Error::Vcs(rollback_core::vcs::Error::BareRepository { .. }))
    )
}

/// The error of a configuration file that does not load.
fn is_config(err: &anyhow::Error) -> bool {
    matches!(crate::output::core_error(err), Some(rollback_core::Error::Config(_)))
}

fn level(l: &LevelArgs) -> Option<Level> {
    if l.full {
        Some(Level::Full)
    } else if l.manual {
        Some(Level::Manual)
    } else if l.fast {
        Some(Level::Fast)
    } else {
        None
    }
}

/// Runs the command; returns the exit status for outcomes that are not errors.
pub fn dispatch(args: &Args, out: &Output) -> anyhow::Result<ExitStatus> {
    let on_signal = match &args.command {
        // A manual run too: its prompts read the stop flag ([`TerminalPrompter`]), so a Ctrl-C
        // at a prompt stops the run there, and one during a step at the step's end.
        Command::Run(_) | Command::Undo { .. } | Command::Resume { .. } => OnSignal::StopRun,
        // Nothing real to protect, but its copy to remove: stopped at a boundary, cleaned up.
        Command::Rehearse { .. } => OnSignal::StopRehearsal,
        _ => OnSignal::Die,
    };
    let log = LogPrinter::new(args.quiet, on_signal).with_progress(crate::progress::wanted(args.json, args.quiet));
    match &args.command {
        Command::Init { force, print, path, preset } => {
            init(args, out, *force, *print, path.as_deref(), preset.as_deref())
        }
        Command::Assess { target } => {
            let rb = open(args)?;
            let a = rb.assess(target.as_deref())?;
            if out.json {
                out.json_value(&a)?;
            } else {
                out.text(&render::assessment(&a))?;
            }
            Ok(ExitStatus::Success)
        }
        Command::Plan { level: l, target, database_only } => {
            let rb = open(args)?;
            let plan = rb.plan_with(&RunOptions {
                level: level(l),
                target: target.clone(),
                database_only: *database_only,
                ..RunOptions::default()
            })?;
            if out.json {
                out.json_value(&plan)?;
            } else {
                out.text(&plan.render())?;
            }
            Ok(ExitStatus::Success)
        }
        Command::Run(r) => {
            let rb = open(args)?;
            let opts = RunOptions {
                level: level(&r.level),
                target: r.target.clone(),
                dry_run: r.dry_run,
                allow_non_ancestor: r.allow_non_ancestor,
                reason: r.reason.clone(),
                severity: r.severity.as_deref().map(str::parse).transpose()?,
                allow_irreversible: r.allow_irreversible,
                // No `--actor` flag yet: runs from the CLI record none.
                actor: None,
                database_only: r.database_only,
                expect_head: None,
            };
            let prompter: &dyn Prompter = if r.yes { &AutoConfirm } else { &TerminalPrompter };
            let outcome = rb.run(&opts, prompter, &log)?;
            print_outcome(out, &outcome)
        }
        Command::Undo { run, yes, restore_snapshot } => {
            let rb = open(args)?;
            let prompter: &dyn Prompter = if *yes { &AutoConfirm } else { &TerminalPrompter };
            let opts = rollback_core::UndoOptions { restore_snapshot: *restore_snapshot, ..Default::default() };
            let outcome = rb.undo_with(run, &opts, prompter, &log)?;
            print_outcome(out, &outcome)
        }
        Command::Resume { run, yes } => {
            let rb = open(args)?;
            let prompter: &dyn Prompter = if *yes { &AutoConfirm } else { &TerminalPrompter };
            let outcome = rb.resume_with(run, prompter, &log)?;
            print_outcome(out, &outcome)
        }
        Command::Rehearse(r) => {
            let rb = open(args)?;
            let opts = rollback_core::RehearseOptions {
                level: if r.full {
                    Some(Level::Full)
                } else if r.fast {
                    Some(Level::Fast)
                } else {
                    None
                },
                target: r.target.clone(),
                allow_non_ancestor: r.allow_non_ancestor,
                allow_irreversible: r.allow_irreversible,
            };
            let rehearsal = rb.rehearse(&opts, &log)?;
            if out.json {
                out.json_value(&rehearsal)?;
            } else {
                out.text(&rehearsal.render())?;
            }
            Ok(if !rehearsal.steps_passed() {
                ExitStatus::Failure
            } else if !rehearsal.undo_identical {
                ExitStatus::RehearsalDiffered
            } else {
                ExitStatus::Success
            })
        }
        Command::Verify { checks } => {
            let rb = open(args)?;
            let only = (!checks.is_empty()).then_some(checks.as_slice());
            // Ctrl-C ends `verify` at once, as it always did, but not its check programs.
            rollback_core::signals::die_on_signals();
            let report = rb.verify(only)?;
            if out.json {
                out.json_value(&report)?;
            } else {
                out.text(&render::verification(&report))?;
            }
            Ok(if report.passed { ExitStatus::Success } else { ExitStatus::VerificationFailed })
        }
        Command::Watch(w) => {
            let rb = open(args)?;
            let cfg = &rb.config().watch;
            let opts = rollback_core::watch::WatchOptions {
                interval: seconds(w.interval.unwrap_or(cfg.interval_secs), "--interval")?,
                failures: w.failures.unwrap_or(cfg.failures),
                level: level(&w.level).or(cfg.level),
                promote_after: match (w.promote_after, cfg.promote_after_hours) {
                    (Some(h), _) => Some(hours(h, "--promote-after")?),
                    (None, Some(h)) => Some(hours(h, "[watch] promote_after_hours")?),
                    (None, None) => None,
                },
                dry_run: w.dry_run,
                rounds: w.rounds,
            };
            let stop = rollback_core::signals::stop_on_signals_saying(|| {
                crate::output::signal_notice(
                    "interrupted: stopping after this round, once a rollback under way finishes (a second Ctrl-C or SIGTERM stops at once)",
                );
            });
            let report = rb.watch(&opts, &stop, &log)?;
            if out.json {
                out.json_value(&report)?;
            } else {
                out.text(&format!(
                    "watched {} round(s) ({} failed); rollbacks: {}; promoted: {}; stopped by {}\n",
                    report.rounds,
                    report.failed_rounds,
                    if report.rollbacks.is_empty() { "none".to_owned() } else { report.rollbacks.join(", ") },
                    if report.promoted.is_empty() {
                        "none".to_owned()
                    } else {
                        report.promoted.iter().map(|c| c.short().to_owned()).collect::<Vec<_>>().join(", ")
                    },
                    report.stopped_by
                ))?;
            }
            // A rollback decided on and not started, with no passing round since, decides
            // by why; else the last rollback of this watch, the one that left production
            // where it is, as that `run` would have: a `--rounds` watch in a CI job or a
            // cron script must not read success while the service was left failing.
            Ok(match &report.not_started {
                Some(n) => watch_not_started_exit(n.kind),
                None => report
                    .rollback_outcomes
                    .last()
                    .map_or(ExitStatus::Success, |r| run_exit(r.status, r.verification_failed)),
            })
        }
        Command::Runs { command } => runs(args, out, command),
        Command::KnownGood { command } => known_good(args, out, command),
        Command::Backups { command } => backups(args, out, command),
        Command::Report { run, format, output } => {
            let rb = open(args)?;
            let report = rb.report(run)?;
            let text = if format == "json" || out.json { report.to_json() } else { report.to_markdown() };
            match output {
                Some(path) => {
                    std::fs::write(path, &text).with_context(|| format!("writing `{}`", path.display()))?;
                }
                None => out.text(&text)?,
            }
            Ok(ExitStatus::Success)
        }
        Command::Gate { rev, registry_at, push_ref } => {
            let dir = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
            let gate_args = rollback_core::gate::GateArgs {
                registry_at: registry_at.as_deref(),
                push_ref: push_ref.as_deref(),
                config: args.config.as_deref(),
            };
            // A git server's bare repository (a `pre-receive` hook): the history only. So too
            // a push-to-deploy repository whose work tree's configuration does not load, in
            // its hook: the push may be the one that repairs it.
            let in_push = rollback_core::gate::in_push_quarantine();
            // Whether the registry read is not this work tree's file (a server's, a ref's).
            let (gate, registry, registry_elsewhere) = match open(args) {
                Err(e) if is_bare(&e) || (in_push && is_config(&e)) => {
                    let b = rollback_core::gate::gate_bare(&dir, rev, gate_args)?;
                    (b.gate, b.registry, true)
                }
                opened => {
                    let rb = opened?;
                    let registry = format!("`{}`", rb.registry_path().display());
                    (rb.gate_with(rev, gate_args)?, registry, in_push || registry_at.is_some())
                }
            };
            for note in &gate.notes {
                crate::output::note(args.quiet, note);
            }
            if gate.kind != rollback_core::vcs::ObjectKind::Commit {
                if out.json {
                    out.json_value(&serde_json::to_value(&gate)?)?;
                }
                return Ok(ExitStatus::Success);
            }
            if !gate.registry_found {
                crate::output::note(
                    args.quiet,
                    &format!("there is no registry at {registry}: no commit is marked known bad"),
                );
            }
            if out.json {
                out.json_value(&serde_json::to_value(&gate)?)?;
            }
            if gate.known_bad {
                let why = gate.entry.as_ref().map(|e| e.notes.trim()).filter(|n| !n.is_empty());
                let short = gate.commit.short();
                return Err(rollback_core::Error::refused(
                    format!(
                        "commit {short} is marked known bad in the registry{}",
                        why.map(|n| format!(" ({n})")).unwrap_or_default()
                    ),
                    Some(if registry_elsewhere {
                        // A server's hook or a CI job reads the default branch's registry:
                        // an unmark in a work tree changes nothing there until it is pushed.
                        format!(
                            "deploy a fix on top of it; to lift the mark once it is safe, run `forge-rollback known-good unmark {short}` in a clone, then commit the registry and push it to the default branch, which this gate reads"
                        )
                    } else {
                        format!(
                            "deploy a fix on top of it; `forge-rollback known-good unmark {short}` lifts the mark once it is safe"
                        )
                    }
                    .into()),
                )
                .into());
            }
            if !out.json {
                out.text(&format!("commit {} is not marked known bad\n", gate.commit.short()))?;
            }
            Ok(ExitStatus::Success)
        }
        Command::Unlock => {
            let rb = open(args)?;
            let found = rb.unlock()?;
            if out.json {
                let (removed, removed_file) = match &found {
                    Unlocked::NoFile => (None, false),
                    Unlocked::Removed(h) => (Some(h), true),
                    Unlocked::RemovedUnreadable => (None, true),
                };
                out.json_value(&serde_json::json!({ "removed": removed, "removed_file": removed_file }))?;
            } else {
                match found {
                    Unlocked::Removed(h) => out.text(&format!("removed the lock left by {h}\n"))?,
                    Unlocked::RemovedUnreadable => out.text(
                        "removed a lock file that names no holder (its holder died before writing it, or it was damaged)\n",
                    )?,
                    Unlocked::NoFile => out.text("no lock file: nothing to do\n")?,
                }
            }
            Ok(ExitStatus::Success)
        }
        Command::Completions { shell } => {
            refuse_json(out, "completions", "it prints a shell script")?;
            crate::completions::completions(out, *shell)?;
            Ok(ExitStatus::Success)
        }
        Command::Man { pages_dir: None } => {
            refuse_json(out, "man", "it prints the roff page; `man --dir DIR --json` lists the pages it writes")?;
            crate::completions::man(out)?;
            Ok(ExitStatus::Success)
        }
        Command::Man { pages_dir: Some(dir) } => {
            let pages = crate::completions::man_pages(dir)?;
            if out.json {
                out.json_value(&serde_json::json!({ "pages": pages }))?;
            } else {
                for p in &pages {
                    out.text(&format!("{}\n", p.display()))?;
                }
            }
            Ok(ExitStatus::Success)
        }
        Command::Demo { keep } => {
            let report = crate::demo::run_demo(*keep, &log)?;
            if out.json {
                out.json_value(&report)?;
            } else {
                out.text(&report.render())?;
            }
            Ok(if report.identical { ExitStatus::Success } else { ExitStatus::Failure })
        }
    }
}

/// A positive, finite number of seconds.
fn seconds(s: f64, flag: &str) -> anyhow::Result<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| rollback_core::Error::usage(format!("{flag} must be a positive number, not {s}"), None).into())
}

/// `--json` on a command whose output is a document of its own (TOML, roff, a shell script):
/// a usage error, not a success whose stdout a script cannot parse.
fn refuse_json(out: &Output, command: &str, why: &str) -> anyhow::Result<()> {
    if out.json {
        return Err(rollback_core::Error::usage(
            format!("`--json` does not apply to `{command}`: {why}"),
            Some(format!("run `{command}` without `--json`").into()),
        )
        .into());
    }
    Ok(())
}

/// A number of hours (`--promote-after`), checked as typed: the error quotes the hours the
/// operator gave, not the seconds they became.
fn hours(h: f64, what: &str) -> anyhow::Result<std::time::Duration> {
    if h.is_nan() || h < 0.0 {
        return Err(rollback_core::Error::usage(
            format!("{what} must be zero or a positive number of hours, not {h}"),
            Some("give the hours after which a watch promotes its target, e.g. `--promote-after 24`".into()),
        )
        .into());
    }
    std::time::Duration::try_from_secs_f64(h * 3600.0).map_err(|_| {
        rollback_core::Error::usage(
            format!("{what} of {h:e} hours is too large"),
            Some("give a number of hours a watch can wait for, e.g. `--promote-after 24`".into()),
        )
        .into()
    })
}

fn init(
    args: &Args,
    out: &Output,
    force: bool,
    print: bool,
    path: Option<&Path>,
    preset: Option<&str>,
) -> anyhow::Result<ExitStatus> {
    if print {
        refuse_json(out, "init --print", "it prints the TOML file itself; `init --json` writes it and says where")?;
    }
    let text = config::preset(preset)?;
    if print {
        out.text(&text)?;
        return Ok(ExitStatus::Success);
    }
    let base = args.dir.clone().unwrap_or_else(|| PathBuf::from("."));
    let target = if let Some(p) = path {
        base.join(p)
    } else {
        let workdir = open(args)?.workdir().to_owned();
        // `forge-rollback.toml` is found after the default path: a new file there would
        // silently take its place.
        let in_use = workdir.join(config::ALT_PATH);
        if !force && in_use.exists() && !workdir.join(config::DEFAULT_PATH).exists() {
            return Err(rollback_core::Error::usage(
                format!(
                    "`{}` is the configuration in use: a new `{}` would be found first and replace it",
                    in_use.display(),
                    config::DEFAULT_PATH
                ),
                Some("edit that file, write the new one elsewhere with `--path FILE` (read with `--config FILE`), or pass `--force` to write it anyway".into()),
            )
            .into());
        }
        workdir.join(config::DEFAULT_PATH)
    };
    config::write_text(&target, &text, force)?;
    if out.json {
        out.json_value(&serde_json::json!({ "written": target }))?;
    } else {
        out.text(&format!("wrote {}\n", target.display()))?;
    }
    Ok(ExitStatus::Success)
}

fn print_outcome(out: &Output, o: &RunOutcome) -> anyhow::Result<ExitStatus> {
    let printed = if out.json {
        out.json_value(o)
    } else if let Some(plan) = &o.plan {
        let mut s = plan.render();
        for w in &o.warnings {
            let _ = writeln!(s, "warning: {w}");
        }
        s.push_str("dry run: nothing was changed\n");
        // The plan is all a dry run gives: not printed, it failed.
        out.text(&s)?;
        Ok(())
    } else {
        out.text(&render::outcome(o)).map_err(anyhow::Error::from)
    };
    let status = run_exit(o.status, o.verification.as_ref().is_some_and(|v| !v.passed));
    // The run is over and journaled: the exit status says how it ended, whether or not its
    // outcome could be printed (stdout a file on a full disk). A closed pipe (`| head`) is
    // not worth a word.
    if let Err(e) = printed
        && !crate::output::is_broken_pipe(&e)
    {
        let show =
            o.run_id.as_deref().map_or_else(String::new, |id| format!("; `forge-rollback runs show {id}` shows it"));
        crate::output::sayln!(
            "warning: the outcome could not be printed on stdout ({e:#}): the run ended `{}`{show}",
            o.status
        );
    }
    Ok(status)
}

/// The exit status of a run that ended `status`, its checks failed or not.
fn run_exit(status: RunStatus, verification_failed: bool) -> ExitStatus {
    // Failed checks are exit 6 for a run whose steps all ran (undone or not); a run that
    // failed or was interrupted after its checks says that instead (1, 5).
    if verification_failed && !matches!(status, RunStatus::Failed | RunStatus::Cancelled) {
        return ExitStatus::VerificationFailed;
    }
    match status {
        RunStatus::Succeeded | RunStatus::Planned | RunStatus::Undone => ExitStatus::Success,
        RunStatus::Cancelled => ExitStatus::Cancelled,
        RunStatus::VerificationFailed => ExitStatus::VerificationFailed,
        RunStatus::Failed | RunStatus::Running => ExitStatus::Failure,
    }
}

/// How a watch exits when the rollback it decided on last did not start and no round passed
/// since: the failures outlived a rollback (the checks fail, as `verify` exits), or why the
/// run did not start, as that `run` would have exited.
fn watch_not_started_exit(kind: rollback_core::watch::NotStartedKind) -> ExitStatus {
    use rollback_core::watch::NotStartedKind;
    match kind {
        NotStartedKind::Outage => ExitStatus::VerificationFailed,
        NotStartedKind::Locked => ExitStatus::Locked,
        NotStartedKind::Usage => ExitStatus::Usage,
        NotStartedKind::Refused => ExitStatus::Refused,
        NotStartedKind::Cancelled => ExitStatus::Cancelled,
        NotStartedKind::Failed => ExitStatus::Failure,
    }
}

fn runs(args: &Args, out: &Output, command: &RunsCommand) -> anyhow::Result<ExitStatus> {
    let rb = open(args)?;
    match command {
        RunsCommand::List => {
            let runs = rb.runs()?;
            if out.json {
                out.json_value(&runs)?;
            } else if runs.is_empty() {
                out.text("no runs yet\n")?;
            } else {
                let mut s = String::new();
                for r in &runs {
                    let status = if r.damaged.is_some() {
                        "damaged".to_owned()
                    } else if r.interrupted {
                        "interrupted".to_owned()
                    } else {
                        r.status.to_string()
                    };
                    let what = match (&r.undo_of, r.level) {
                        (Some(u), _) => format!("undo of {u}"),
                        (None, Some(l)) => format!("{l} rollback"),
                        (None, None) => "rollback".into(),
                    };
                    let _ = writeln!(
                        s,
                        "{}  {:<19} {:<32} {} -> {}  {}",
                        r.run_id,
                        status,
                        what,
                        r.from.short(),
                        r.to.short(),
                        r.started_at.log_format()
                    );
                    if let Some(d) = &r.damaged {
                        let _ = writeln!(s, "    {d}");
                    }
                    // A state folder shared with another clone lists its runs too; they are
                    // undone and resumed there, not here.
                    if r.other_worktree {
                        let _ = writeln!(s, "    ran in another work tree: {}", r.workdir.display());
                    }
                }
                out.text(&s)?;
            }
        }
        RunsCommand::Show { run } => {
            let (outcome, records, log) = rb.run_details(run)?;
            if out.json {
                out.json_value(&serde_json::json!({ "outcome": outcome, "journal": records }))?;
            } else {
                let mut s = render::outcome(&outcome);
                if !log.is_empty() {
                    s.push_str("log:\n");
                    for line in log.lines() {
                        let _ = writeln!(s, "  {line}");
                    }
                }
                out.text(&s)?;
            }
        }
    }
    Ok(ExitStatus::Success)
}

fn known_good(args: &Args, out: &Output, command: &KnownGoodCommand) -> anyhow::Result<ExitStatus> {
    let rb = open(args)?;
    match command {
        KnownGoodCommand::List => {
            let reg = rb.registry()?;
            if out.json {
                out.json_value(&reg)?;
            } else if reg.commits.is_empty() {
                out.text(&format!("no commits in {}\n", rb.registry_path().display()))?;
            } else {
                let mut s = String::new();
                for e in &reg.commits {
                    let state = if e.known_bad {
                        "BAD"
                    } else if e.verified {
                        "good"
                    } else {
                        "unverified"
                    };
                    let _ = writeln!(
                        s,
                        "{:<12} {:<10} {}  {}",
                        &e.hash[..e.hash.len().min(12)],
                        state,
                        e.description,
                        e.notes
                    );
                }
                out.text(&s)?;
            }
        }
        KnownGoodCommand::Mark { rev, note, .. } | KnownGoodCommand::Bad { rev, note } => {
            let o = match command {
                KnownGoodCommand::Mark { lift_bad, .. } => rb.mark_good_with(rev, note.as_deref(), *lift_bad)?,
                _ => rb.mark_bad(rev, note.as_deref())?,
            };
            let bad = matches!(command, KnownGoodCommand::Bad { .. });
            if out.json {
                out.json_value(&o)?;
            } else {
                let mut text = format!(
                    "{} {} as {} in {}\n",
                    if o.updated { "updated" } else { "added" },
                    o.entry.hash,
                    if bad { "known bad" } else { "verified known-good" },
                    rb.registry_path().display()
                );
                if let Some(env) = &o.env {
                    let files: Vec<String> = env.files.iter().map(ToString::to_string).collect();
                    let _ = writeln!(text, "recorded env files {} with it (backup {})", files.join(", "), env.snapshot);
                }
                if !o.entry.database_migrations.is_empty() {
                    let _ = writeln!(text, "database at {}", o.entry.database_migrations.join(", "));
                }
                for n in &o.notes {
                    let _ = writeln!(text, "note: {n}");
                }
                out.text(&text)?;
            }
        }
        KnownGoodCommand::Unmark { rev } => {
            let e = rb.unmark(rev)?;
            if out.json {
                out.json_value(&e)?;
            } else {
                out.text(&format!("removed {} from {}\n", e.hash, rb.registry_path().display()))?;
            }
        }
    }
    Ok(ExitStatus::Success)
}

fn backups(args: &Args, out: &Output, command: &BackupsCommand) -> anyhow::Result<ExitStatus> {
    let rb = open(args)?;
    match command {
        BackupsCommand::List => {
            let list = rb.backups()?;
            if out.json {
                out.json_value(&list)?;
            } else if list.is_empty() {
                out.text("no backups yet\n")?;
            } else {
                out.text(&render::backups(&list))?;
            }
            Ok(ExitStatus::Success)
        }
        BackupsCommand::Verify { ids } => {
            let parsed: Vec<SnapshotId> = ids
                .iter()
                .map(|i| {
                    SnapshotId::parse(i)
                        .ok_or_else(|| rollback_core::Error::usage(format!("`{i}` is not a backup id"), None))
                })
                .collect::<Result<_, _>>()?;
            let report = rb.verify_backups(if parsed.is_empty() { None } else { Some(&parsed) })?;
            if out.json {
                out.json_value(&report)?;
            } else {
                let mut s = format!(
                    "checked {} backup(s), {} blob(s), {} byte(s)\n",
                    report.snapshots, report.blobs, report.bytes
                );
                for p in &report.problems {
                    let _ = writeln!(s, "problem: {p}");
                }
                if report.problems.is_empty() {
                    s.push_str("all blobs match their hashes\n");
                }
                out.text(&s)?;
            }
            Ok(if report.problems.is_empty() { ExitStatus::Success } else { ExitStatus::Failure })
        }
        BackupsCommand::Prune { keep, dry_run } => {
            let report = rb.prune_backups(*keep, *dry_run).context("pruning backups")?;
            let lost = rb.runs_no_longer_undoable(&report.removed_snapshots).context("pruning backups")?;
            if out.json {
                /// The store's report, and the runs it leaves without a backup to undo from.
                #[derive(serde::Serialize)]
                struct Pruned<'a> {
                    #[serde(flatten)]
                    report: &'a rollback_core::backup::PruneReport,
                    runs_no_longer_undoable: &'a [String],
                }
                out.json_value(&Pruned { report: &report, runs_no_longer_undoable: &lost })?;
            } else {
                let mut s = format!(
                    "{}removed {} backup(s) and {} blob(s), freed {} byte(s); kept {} backup(s)\n",
                    if *dry_run { "dry run: would have " } else { "" },
                    report.removed_snapshots.len(),
                    report.removed_blobs,
                    report.freed_bytes,
                    report.kept_snapshots
                );
                if !lost.is_empty() {
                    let _ = writeln!(
                        s,
                        "{} run(s) {} no longer be undone (their backups {} removed): {}",
                        lost.len(),
                        if *dry_run { "could" } else { "can" },
                        if *dry_run { "would be" } else { "were" },
                        lost.join(", ")
                    );
                }
                if let Some(first) = report.refs_left.first() {
                    let _ = writeln!(
                        s,
                        "warning: {} pin ref(s) of the pruned runs could not be deleted (first: {first}); they keep those commits in the repository, nothing else: run `backups prune` again once git's lock is free",
                        report.refs_left.len()
                    );
                }
                out.text(&s)?;
            }
            Ok(ExitStatus::Success)
        }
    }
}
