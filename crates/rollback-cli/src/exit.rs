//! The documented exit statuses of `forge-rollback` (docs/cli.md, "Exit codes").
//!
//! One enum, so a command returns what happened (`ExitStatus::Refused`), not a bare number,
//! and `main` turns it into the process's exit code in one place (uv's `ExitStatus`).

use rollback_core::ErrorKind;

/// How `forge-rollback` exits. The numbers are part of the interface: scripts and watchdogs
/// branch on them, so a variant's value never changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ExitStatus {
    /// Success (including a dry run).
    Success = 0,
    /// A step failed, a run failed, or a check found problems.
    Failure = 1,
    /// Bad usage, configuration, registry or revision; nothing was changed.
    Usage = 2,
    /// Another rollback holds the lock; nothing was changed.
    Locked = 3,
    /// A safety check refused; nothing was changed.
    Refused = 4,
    /// The operator declined (nothing was changed) or aborted a manual run.
    Cancelled = 5,
    /// The rollback's steps ran, but the services failed verification (also `verify` with a
    /// failing check).
    VerificationFailed = 6,
    /// `rehearse`: every step ran on the copy, but the undo did not bring it back identical.
    RehearsalDiffered = 7,
}

impl ExitStatus {
    /// The status an error exits with: its family decides (a core error anywhere in the
    /// chain), everything else is a failure.
    pub fn of_error(err: &anyhow::Error) -> Self {
        let kind = err.chain().find_map(|e| e.downcast_ref::<rollback_core::Error>()).map(rollback_core::Error::kind);
        match kind {
            Some(ErrorKind::Usage) => Self::Usage,
            Some(ErrorKind::Locked) => Self::Locked,
            Some(ErrorKind::Refused) => Self::Refused,
            Some(ErrorKind::Cancelled) => Self::Cancelled,
            _ => Self::Failure,
        }
    }
}

impl ExitStatus {
    /// The process's exit code.
    pub fn code(self) -> u8 {
        self as u8
    }
}

#[cfg(test)]
mod tests {
    use super::ExitStatus;

    const ALL: [ExitStatus; 8] = [
        ExitStatus::Success,
        ExitStatus::Failure,
        ExitStatus::Usage,
        ExitStatus::Locked,
        ExitStatus::Refused,
        ExitStatus::Cancelled,
        ExitStatus::VerificationFailed,
        ExitStatus::RehearsalDiffered,
    ];

    /// The table in docs/cli.md lists exactly the codes the enum has: a new variant, or a
    /// renumbered one, fails here until the documentation says so.
    #[test]
    fn every_status_is_documented_and_nothing_else() {
        let doc = include_str!("../../../docs/cli.md");
        let section = doc.split("## Exit codes").nth(1).expect("docs/cli.md has an `## Exit codes` section");
        let section = section.split("\n## ").next().unwrap_or(section);
        let documented: Vec<u8> =
            section.lines().filter_map(|l| l.strip_prefix("| ")?.split(' ').next()?.parse().ok()).collect();
        let ours: Vec<u8> = ALL.iter().map(|s| *s as u8).collect();
        assert_eq!(documented, ours, "docs/cli.md's exit code table and `ExitStatus` disagree");
    }

    #[test]
    fn core_error_families_map_to_their_codes() {
        let of = |e: rollback_core::Error| ExitStatus::of_error(&anyhow::Error::from(e).context("while testing"));
        assert_eq!(of(rollback_core::Error::usage("bad flag", None)), ExitStatus::Usage);
        assert_eq!(of(rollback_core::Error::refused("detached HEAD", None)), ExitStatus::Refused);
        assert_eq!(ExitStatus::of_error(&anyhow::anyhow!("disk full")), ExitStatus::Failure);
    }
}
