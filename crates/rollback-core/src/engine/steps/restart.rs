//! `restart`: the `[[restart]]` commands in order, each with its readiness wait.

use std::sync::{Mutex, PoisonError};

use crate::backup::EntryKind;
use crate::detail::StepDetail;
use crate::engine::{Ctx, Exec, Rollback};
use crate::error::{Error, Result};
use crate::event::LogLevel;
use crate::hint::{Action, hint};
use crate::plan::Step;

impl Rollback {
    pub(crate) fn step_restart(&self, ctx: &mut Ctx<'_>, ex: &mut Exec<'_>) -> Result<StepDetail> {
        let run_id = ex.run_id.clone();
        ctx.log(LogLevel::Info, format!("Restarting services ({} step(s))...", self.config.restart.len()));
        let verifier = self.verifier();
        // A restart command's stderr may quote a secret (`$DATABASE_URL`, a key the app read
        // from `.env`) or repaint the terminal: scrubbed like a check's reason, in the log and
        // in the journaled detail.
        let mut secrets = crate::verify::redact::known_secrets(&self.config.verify, &self.config.checks).to_vec();
        secrets.extend(self.env_file_values(ex));
        let scrub = crate::verify::redact::scrubber(secrets.clone());
        let shared = Mutex::new(&mut *ctx);
        let log = |level: LogLevel, message: String| {
            shared.lock().unwrap_or_else(PoisonError::into_inner).log(level, scrub(&message));
        };
        // The programs' output goes to files in the run's folder, which its journal is in.
        let output_dir = self.state.run_dir(&run_id);
        let mut results = crate::rt::block_on(crate::restart::run(
            &self.config.restart,
            &verifier,
            self.workdir(),
            &output_dir,
            &log,
        ));
        for r in &mut results {
            r.detail = scrub(&r.detail);
        }
        // The output files keep what the programs wrote, but neither a secret nor a control
        // character: the run's folder is output too. What a server they started writes there
        // later is its own log.
        for (i, step) in self.config.restart.iter().enumerate().take(results.len()) {
            for file in crate::restart::output_files(&output_dir, i, &step.name) {
                if let Err(e) = crate::verify::redact::scrub_file(&file, &secrets)
                    && e.kind() != std::io::ErrorKind::NotFound
                {
                    log(LogLevel::Warn, format!("could not scrub secrets from {}: {e}", file.display()));
                }
            }
        }
        if let Some(bad) = results.iter().find(|r| !r.ok) {
            let unset = self.config.restart.iter().find(|s| s.name == bad.name).and_then(crate::restart::unset_env);
            let hint = match unset {
                // Nothing is wrong with the service: forge-rollback's environment lacks it.
                Some(var) => hint![
                    format!("set `{var}` in the environment forge-rollback runs in, then "),
                    Action::resume(run_id.as_str()),
                    " runs the restart again"
                ],
                None => hint!["fix the service, then ", Action::resume(run_id.as_str()), " runs the restart again"],
            };
            return Err(Error::Service {
                message: format!("restart step `{}` failed: {}", bad.name, bad.detail),
                hint: Some(hint),
            });
        }
        if results.len() < self.config.restart.len() {
            return Err(Error::Service { message: "the restart stopped early".to_owned(), hint: None });
        }
        ctx.log(LogLevel::Success, format!("Services restarted ({} step(s))", results.len()));
        Ok(StepDetail::Restart { steps: results })
    }

    /// The values the `[env]` files hold, which a restart program may read and quote: the
    /// files as they are now, as they were before the run (its snapshot) and as the target's
    /// env record has them (the one this run restores, or the newest of the target). Whatever
    /// cannot be read gives none.
    fn env_file_values(&self, ex: &mut Exec<'_>) -> Vec<String> {
        let mut out = Vec::new();
        let files = crate::env::files(&self.config);
        for file in &files {
            let path = file.to_fs(self.workdir());
            // Regular files only (through a symlink, as the program reads them): a FIFO put
            // there would block the read.
            if std::fs::metadata(&path).is_ok_and(|m| m.is_file())
                && let Ok(bytes) = std::fs::read(&path)
            {
                out.extend(crate::verify::redact::dotenv_values(&bytes));
            }
        }
        let Ok(store) = self.store() else { return out };
        let restored = ex.plan.steps.iter().find_map(|s| match s {
            Step::RestoreEnv { record: Some(id), .. } => Some(id.clone()),
            _ => None,
        });
        let record = match restored {
            Some(id) => store.manifest(&id).ok(),
            None => crate::env::find(store.as_ref(), &ex.plan.to).ok().and_then(|f| f.newest).map(|(_, m)| m),
        };
        // The run's own snapshot holds much more than the env files: only those are read.
        let before = self.own_manifest(ex).ok();
        let entries = record
            .iter()
            .flat_map(|m| &m.entries)
            .chain(before.iter().flat_map(|m| &m.entries).filter(|e| files.contains(&e.path)));
        for entry in entries {
            if let EntryKind::File { blob, .. } = &entry.kind
                && let Ok(bytes) = store.get_blob(blob)
            {
                out.extend(crate::verify::redact::dotenv_values(&bytes));
            }
        }
        out
    }
}
