//! Failpoints: crash or fail the process at a named point, for crash-recovery tests.
//!
//! `FORGE_ROLLBACK_FAILPOINT=<point>` (comma-separated for several) arms a point; the action is
//! `FORGE_ROLLBACK_FAILPOINT_ACTION`:
//! - `kill` (default): the process sends itself `SIGKILL`, exactly like `kill -9`;
//! - `error`: the step fails with an injected I/O error;
//! - `enospc`: the same with "No space left on device", as on a full disk;
//! - `pause`: write the point's name to `<release>.reached`, then wait until the file named by
//!   `FORGE_ROLLBACK_FAILPOINT_RELEASE` (`<release>`) exists (at most 120 s), then go on: tests
//!   use it to hold the lock while a second run starts.
//!
//! Points: `after:lock`, and for every step `before:<step>` (its begin record is in the
//! journal, nothing done yet), `after:<step>` (work done, end record not yet written) and
//! `end:<step>` (end record written); plus `inside:blob_copy` (a blob being copied into or
//! out of the store, after its first MiB: files over 4 MiB only), `inside:snapshot` (blobs stored, manifest not yet
//! written) and `inside:reset` (the way cleared, the reset not yet done), `written:reset` (git has written the
//! target, the owners of what it wrote not yet given back); for full rollbacks
//! `inside:downgrade` (the database snapshot taken, the downgrade not begun) and, in the native
//! SQL migrator on SQLite, `between:downgrades` (after each committed downgrade of one
//! migration) and `between:upgrades` (the same for `upgrade_database`); in an undo's guarded database restore, `inside:restore_database` (the database
//! checked unchanged under the lock, the restore not begun); `journal:<record>` and
//! `journal:<record>:<step>` (appending that record to a run's journal, e.g.
//! `journal:step_end:reset`: the append fails, nothing of it written); `write:report` (the run finished
//! and journaled, its report about to be written); `before:prune` (`backups prune`, its lock
//! taken, about to read the runs and decide what to keep); `inside:forecast` (a data-loss
//! forecast about to copy the database: with `error`, the forecast cannot be made). With the variable unset, a failpoint is one environment lookup.
//!
//! The same feature lets tests set the clock back: `FORGE_ROLLBACK_CLOCK_SKEW_SECS` (see
//! `time.rs`).
//!
//! Compiled in only with the `failpoints` cargo feature (the crash tests enable it); without
//! it, [`hit`] is an empty inline function, so release binaries cannot be made to kill
//! themselves through their environment.

#[cfg(feature = "failpoints")]
use std::time::{Duration, Instant};

/// The variable naming armed points.
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
pub(crate) const VAR: &str = "FORGE_ROLLBACK_FAILPOINT";

/// Triggers `point` if armed (never, without the `failpoints` feature).
#[cfg(not(feature = "failpoints"))]
#[inline]
#[allow(clippy::unnecessary_wraps)] // the same signature as the armed version
pub(crate) fn hit(_point: &str) -> crate::Result<()> {
    Ok(())
}

/// Triggers `point` if armed.
#[cfg(feature = "failpoints")]
pub(crate) fn hit(point: &str) -> crate::Result<()> {
    let Some(spec) = std::env::var_os(VAR) else { return Ok(()) };
    if !spec.to_string_lossy().split(',').any(|p| p.trim() == point) {
        return Ok(());
    }
    match std::env::var("FORGE_ROLLBACK_FAILPOINT_ACTION").as_deref() {
        // As a full disk fails a write.
        Ok("enospc") => {
            Err(crate::fsutil::IoError::new("failpoint", point, std::io::Error::from_raw_os_error(libc::ENOSPC)).into())
        }
        Ok("error") => Err(crate::fsutil::IoError::new(
            "failpoint",
            point,
            std::io::Error::other(format!("injected failure at `{point}`")),
        )
        .into()),
        Ok("pause") => {
            let release = std::env::var_os("FORGE_ROLLBACK_FAILPOINT_RELEASE").unwrap_or_default();
            // Says it got here: tests wait for this file before they act on the paused process.
            let mut reached = release.clone();
            reached.push(".reached");
            let _ = std::fs::write(&reached, point);
            let start = Instant::now();
            while !std::path::Path::new(&release).exists() && start.elapsed() < Duration::from_secs(120) {
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        }
        _ => {
            // SAFETY: kill(2) on our own pid with a valid signal number.
            #[allow(unsafe_code)]
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
            unreachable!("SIGKILL does not return")
        }
    }
}
