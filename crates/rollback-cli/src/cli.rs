//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args as ClapArgs, Parser, Subcommand};

/// Emergency rollback of code, schema and config to the last known-good commit; every
/// rollback can be undone.
#[derive(Debug, Parser)]
#[command(name = "forge-rollback", version, about, long_about = None, propagate_version = true)]
pub struct Args {
    /// Run as if started in DIR.
    #[arg(short = 'C', global = true, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Use this configuration file instead of discovering one.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print data as JSON on stdout (log lines still go to stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// Print no log lines, only the result and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented default configuration file.
    Init {
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
        /// Start from a preset: `forge` adds the runbook's service checks (FastAPI on :8000,
        /// Flask on :5000, Gradio on :7860, a WebSocket, the auth flow).
        #[arg(long, value_parser = ["forge"])]
        preset: Option<String>,
        /// Print the default configuration instead of writing it.
        #[arg(long)]
        print: bool,
        /// Where to write it (default: rollback/config/rollback.toml in the work tree).
        #[arg(long, value_name = "FILE")]
        path: Option<PathBuf>,
    },
    /// Show HEAD, the target, what changed between them, the dirty state and the risks.
    Assess {
        /// Roll back to this revision instead of the newest verified known-good commit.
        #[arg(long, visible_alias = "commit", value_name = "REV")]
        target: Option<String>,
    },
    /// Print the ordered steps of a rollback and the files each touches; writes nothing.
    Plan {
        #[command(flatten)]
        level: LevelArgs,
        /// Roll back to this revision.
        #[arg(long, visible_alias = "commit", value_name = "REV")]
        target: Option<String>,
        /// Only the database part of a full rollback (see `run --database-only`).
        #[arg(long)]
        database_only: bool,
    },
    /// Roll back: snapshot, reset, remove untracked files, clear caches, record.
    Run(RunArgs),
    /// Put back the state from before a run (itself undoable); rows written to the database
    /// since the run stay.
    Undo {
        /// The run to undo (see `runs list`).
        run: String,
        /// Do not ask for confirmation.
        #[arg(long, short = 'y', visible_alias = "auto-confirm")]
        yes: bool,
        /// Restore the run's database snapshot as it was even if rows were written since: the
        /// database as it is now is first dumped into the state folder (the path is printed).
        #[arg(long)]
        restore_snapshot: bool,
    },
    /// Finish a run that was interrupted or failed, from the first step that did not complete.
    Resume {
        /// The run to resume.
        run: String,
        /// A manual run: run the remaining steps without asking.
        #[arg(long, short = 'y', visible_alias = "auto-confirm")]
        yes: bool,
    },
    /// Rehearse a rollback and its undo on a throwaway copy of the work tree, `.git`, the state
    /// folder and the database: report each step and its time, the data-loss forecast, and
    /// whether the undo came back identical. Nothing real is changed.
    Rehearse(RehearseArgs),
    /// Run the configured service checks (`[[checks]]`) now, concurrently.
    Verify {
        /// Only these checks (by name).
        #[arg(long = "check", value_name = "NAME")]
        checks: Vec<String>,
    },
    /// Watch the services: verify every interval; roll back after N failed rounds in a row;
    /// mark a commit known-good once it passed for the promotion window.
    Watch(WatchArgs),
    /// List runs, or show one.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// The known-good commit registry.
    #[command(name = "known-good")]
    KnownGood {
        #[command(subcommand)]
        command: KnownGoodCommand,
    },
    /// The backup store.
    Backups {
        #[command(subcommand)]
        command: BackupsCommand,
    },
    /// Print or write the incident report of a run (Markdown from the runbook's template, or
    /// JSON).
    Report {
        /// The run.
        run: String,
        /// `md` or `json`.
        #[arg(long, default_value = "md", value_parser = ["md", "json"])]
        format: String,
        /// Write to this file instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Exit 4 if REV is marked known bad in the registry, 0 otherwise: for CI and git
    /// pre-push / pre-receive hooks, so a release rolled back is not deployed again.
    Gate {
        /// The commit to check (a hash, tag, branch, `HEAD`).
        rev: String,
        /// Read the registry as this commit holds it (`main`, `FETCH_HEAD`), not from the work
        /// tree: in CI the work tree is the commit being deployed, which cannot hold its own
        /// bad mark.
        #[arg(long, value_name = "REF")]
        registry_at: Option<String>,
        /// The ref a pre-receive hook is updating to REV (`refs/heads/main`). When it is the
        /// branch HEAD names, a push that leaves its registry or configuration unreadable is
        /// refused, and one that repairs them is judged by the registry it brings.
        #[arg(long = "ref", value_name = "REFNAME")]
        push_ref: Option<String>,
    },
    /// Remove the lock file left by a run that died (refused while its holder is alive).
    Unlock,
    /// Build a sample app repository in a temp dir, roll it back from a broken release, undo,
    /// and show what happened.
    Demo {
        /// Keep the sample repository instead of deleting it.
        #[arg(long)]
        keep: bool,
    },
    /// Print a shell completion script: `forge-rollback completions bash >
    /// ~/.local/share/bash-completion/completions/forge-rollback`.
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): `forge-rollback man > ~/.local/share/man/man1/forge-rollback.1`;
    /// with `--dir`, write it and one page per subcommand into a folder.
    Man {
        /// Write every page (`forge-rollback.1`, `forge-rollback-run.1`, ...) into this folder
        /// (created if missing) instead of printing the main page.
        #[arg(long = "dir", id = "pages_dir", value_name = "DIR")]
        pages_dir: Option<PathBuf>,
    },
}

/// `--fast`, `--full`, `--manual`.
#[derive(Debug, ClapArgs)]
#[group(multiple = false)]
pub struct LevelArgs {
    /// Code only (default unless the assessment recommends more).
    #[arg(long)]
    pub fast: bool,
    /// Code, database schema and env config.
    #[arg(long)]
    pub full: bool,
    /// Like full, approving each step.
    #[arg(long)]
    pub manual: bool,
}

/// `run` arguments.
#[derive(Debug, ClapArgs)]
pub struct RunArgs {
    #[command(flatten)]
    pub level: LevelArgs,
    /// Roll back to this revision instead of the newest verified known-good commit.
    #[arg(long, visible_alias = "commit", value_name = "REV")]
    pub target: Option<String>,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y', visible_alias = "auto-confirm")]
    pub yes: bool,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow a target that is not an ancestor of HEAD.
    #[arg(long)]
    pub allow_non_ancestor: bool,
    /// Why: recorded in the journal and the incident report.
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
    /// How bad the incident is: critical, high, medium or low, in any case (for the incident
    /// report).
    #[arg(long, value_name = "LEVEL", value_parser = ["critical", "high", "medium", "low"], ignore_case = true)]
    pub severity: Option<String>,
    /// Run a downgrade through a migration whose downgrade cannot restore data.
    #[arg(long)]
    pub allow_irreversible: bool,
    /// Only the database part of a full rollback: snapshot the database and downgrade it to
    /// the target's revision; the code, env files and services stay as they are (a fleet runs
    /// it once, before any host's code moves). `undo RUN` upgrades it back.
    #[arg(long)]
    pub database_only: bool,
}

/// `rehearse` arguments.
#[derive(Debug, ClapArgs)]
pub struct RehearseArgs {
    /// Code, database schema and env config (default: the assessment's recommendation).
    #[arg(long, conflicts_with = "fast")]
    pub full: bool,
    /// Code only; the database is neither copied nor read.
    #[arg(long)]
    pub fast: bool,
    /// Roll back to this revision instead of the newest verified known-good commit.
    #[arg(long, visible_alias = "commit", value_name = "REV")]
    pub target: Option<String>,
    /// Allow a target that is not an ancestor of HEAD.
    #[arg(long)]
    pub allow_non_ancestor: bool,
    /// Rehearse a downgrade through a migration whose downgrade cannot restore data.
    #[arg(long)]
    pub allow_irreversible: bool,
}

/// `watch` arguments (default from `[watch]`).
#[derive(Debug, ClapArgs)]
pub struct WatchArgs {
    /// Seconds between rounds.
    // A negative value typed after a space (`--interval -1`) reaches the documented refusal
    // that quotes it, not clap's "unexpected argument".
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub interval: Option<f64>,
    /// Failed rounds in a row before rolling back.
    #[arg(long, value_name = "N")]
    pub failures: Option<u32>,
    /// Level of the rollback it starts.
    #[command(flatten)]
    pub level: LevelArgs,
    /// Hours a commit must pass every round before it is marked known-good (`0` promotes
    /// after the first passing round; default: the registry's `minimum_uptime_hours`).
    #[arg(long, value_name = "HOURS", allow_negative_numbers = true)]
    pub promote_after: Option<f64>,
    /// Report what it would do; never roll back or promote.
    #[arg(long)]
    pub dry_run: bool,
    /// Stop after this many rounds (default: until SIGINT/SIGTERM).
    #[arg(long, value_name = "N")]
    pub rounds: Option<u64>,
}

/// `runs` subcommands.
#[derive(Debug, Subcommand)]
pub enum RunsCommand {
    /// Every run, oldest first.
    List,
    /// One run: outcome, steps, log.
    Show {
        /// The run.
        run: String,
    },
}

/// `known-good` subcommands.
#[derive(Debug, Subcommand)]
pub enum KnownGoodCommand {
    /// List the registry.
    List,
    /// Mark a commit verified good (refused for a commit marked known bad, unless --lift-bad).
    Mark {
        /// The commit.
        rev: String,
        /// A note.
        #[arg(long)]
        note: Option<String>,
        /// Mark it known-good even if it is marked known bad, lifting that mark.
        #[arg(long)]
        lift_bad: bool,
    },
    /// Mark a commit known bad: never a rollback target.
    Bad {
        /// The commit.
        rev: String,
        /// A note.
        #[arg(long)]
        note: Option<String>,
    },
    /// Remove a commit from the registry.
    Unmark {
        /// The commit.
        rev: String,
    },
}

/// `backups` subcommands.
#[derive(Debug, Subcommand)]
pub enum BackupsCommand {
    /// Every snapshot, oldest first.
    List,
    /// Re-hash every blob of the named snapshots (all by default).
    Verify {
        /// Snapshot ids.
        ids: Vec<String>,
    },
    /// Delete old snapshots and the blobs only they use.
    Prune {
        /// How many of the newest snapshots to keep (those of unfinished runs are always kept).
        #[arg(long)]
        keep: usize,
        /// Report what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
}
