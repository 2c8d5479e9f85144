//! What the back-end's checkout cannot do with this repository, found before anything changes:
//! blobs a partial clone does not hold, (the git2 back-end under `core.ignorecase`) tracked
//! names that differ only in letter case, and a `reference-transaction` hook that will not let
//! the branch move.
//!
//! Found by the reset itself, either comes too late: a missing blob stops `git reset --hard`
//! (the remote unreachable) or libgit2 (it never fetches) after the files the target does not
//! have were removed, so the run fails with the live release's tree half-gone; two names in one
//! let libgit2 leave a tracked file out of the work tree and report success.

use crate::error::Error;
use crate::model::{Risk, RiskCode, RiskSeverity};
use crate::paths::RepoPath;
use crate::vcs::{CommitId, MissingBlob, VcsBackend};

/// The shell command that fetches every blob of `commit` a partial clone lacks from `remote`,
/// in one batch (what the git-cli back-end runs for the files a reset writes).
fn fetch_command(remote: &str, commit: &CommitId) -> String {
    format!(
        "git rev-list --objects --no-walk --missing=print {} | sed -n 's/^?//p' | git -c fetch.negotiationAlgorithm=noop fetch --no-tags --no-write-fetch-head --filter=blob:none --stdin {remote}",
        commit.short()
    )
}

/// The refusal for the blobs `missing` of `commit`, after a fetch that failed (`fetch_error`)
/// or that this back-end cannot make (`None`).
fn missing_refusal(
    vcs: &dyn VcsBackend,
    remote: &str,
    commit: &CommitId,
    missing: &[MissingBlob],
    fetch_error: Option<String>,
) -> Error {
    let first = missing.first().map_or_else(String::new, |m| format!(" (`{}` first)", m.path));
    let lacks = format!(
        "{} file(s) the reset writes{first} have no blob in this partial clone (`git clone --filter`), which fetches them from `{remote}` when they are needed",
        missing.len()
    );
    let fetch = fetch_command(remote, commit);
    match fetch_error {
        Some(why) => Error::refused(
            format!("{lacks}, and fetching them failed: {why}"),
            Some(
                format!(
                    "nothing was changed; make `{remote}` reachable from this host and run again, or fetch the blobs yourself first: `{fetch}`"
                )
                .into(),
            ),
        ),
        None => Error::refused(
            format!(
                "{lacks}, and the `{}` back-end (libgit2) never fetches a missing object: the reset would stop half-way",
                vcs.name()
            ),
            Some(
                format!(
                    "nothing was changed; set `backend = \"git-cli\"` under `[vcs]` (it fetches them first), or fetch them yourself: `{fetch}`"
                )
                .into(),
            ),
        ),
    }
}

/// What a reset to `commit` writing `paths` lacks in a partial clone: `Ok(None)` when every
/// blob is there (or the repository is a full clone), `Ok(Some(missing))` otherwise.
fn missing(vcs: &dyn VcsBackend, commit: &CommitId, paths: &[&RepoPath]) -> Result<Option<Vec<MissingBlob>>, Error> {
    let missing = vcs.missing_blobs(commit, paths).map_err(Error::from)?;
    Ok((!missing.is_empty()).then_some(missing))
}

/// The refusal of a reset to `commit` that writes `paths` when blobs it needs are not in the
/// object database. With `fetch` (a run, not a dry run) a back-end that can fetches them
/// first, and the reset is refused only if that fails; without, a back-end that can fetch
/// is not refused (the `blobs_not_fetched` risk of [`risks`] says what the run will fetch).
pub(crate) fn refuse_missing_blobs(
    vcs: &dyn VcsBackend,
    commit: &CommitId,
    paths: &[&RepoPath],
    fetch: bool,
) -> Option<Error> {
    let missing = match missing(vcs, commit, paths) {
        Ok(Some(m)) => m,
        Ok(None) => return None,
        Err(e) => return Some(e),
    };
    let remote = match vcs.promisor_remote() {
        Ok(r) => r.unwrap_or_else(|| "origin".to_owned()),
        Err(e) => return Some(e.into()),
    };
    if !fetch {
        // A dry run fetches nothing; a back-end that cannot fetch is refused either way.
        return (!vcs.fetches_blobs()).then(|| missing_refusal(vcs, &remote, commit, &missing, None));
    }
    match vcs.fetch_blobs(&missing) {
        Ok(false) => Some(missing_refusal(vcs, &remote, commit, &missing, None)),
        Err(e) => Some(missing_refusal(vcs, &remote, commit, &missing, Some(e.to_string()))),
        Ok(true) => match self::missing(vcs, commit, paths) {
            Ok(None) => None,
            Ok(Some(still)) => {
                Some(missing_refusal(vcs, &remote, commit, &still, Some(format!("`{remote}` did not send them"))))
            }
            Err(e) => Some(e),
        },
    }
}

/// The risks of a reset to `commit` writing `paths` that this module's refusals are about:
/// said by `assess` and `plan` too, with the refusal's words where a run would refuse.
pub(crate) fn risks(vcs: &dyn VcsBackend, commit: &CommitId, head: &CommitId, paths: &[&RepoPath]) -> Vec<Risk> {
    let mut out = Vec::new();
    if let Ok(Some(missing)) = missing(vcs, commit, paths) {
        let remote = vcs.promisor_remote().ok().flatten().unwrap_or_else(|| "origin".to_owned());
        out.push(if vcs.fetches_blobs() {
            Risk::new(
                RiskCode::BlobsNotFetched,
                RiskSeverity::Medium,
                format!(
                    "{} file(s) the reset writes have no blob in this partial clone: the run fetches them from `{remote}` before it changes anything, and refuses if it cannot",
                    missing.len()
                ),
            )
        } else {
            Risk::new(
                RiskCode::BlobsNotFetched,
                RiskSeverity::High,
                missing_refusal(vcs, &remote, commit, &missing, None).to_string(),
            )
        });
    }
    if let Some(e) = refuse_case_twins(vcs, &[head, commit]) {
        out.push(Risk::new(RiskCode::CaseOnlyNames, RiskSeverity::High, e.to_string()));
    }
    out
}

/// The warning when `branch`, which the reset moves, is also checked out in other worktrees:
/// their HEAD moves with it while their files and index stay on the release rolled back from.
/// Git refuses to move such a branch with `git branch -f`; a reset moves it anyway, and so does
/// this one (production is here), with this said first.
pub(crate) fn branch_elsewhere(vcs: &dyn VcsBackend, branch: &str, what: &str) -> Option<Risk> {
    let others = vcs.worktrees_on_branch(branch);
    let first = others.first()?;
    let more = match others.len() {
        1 => String::new(),
        n => format!(" (and {} more)", n - 1),
    };
    Some(Risk::new(
        RiskCode::BranchInOtherWorktree,
        RiskSeverity::Medium,
        format!(
            "branch `{branch}` is also checked out in the worktree `{}`{more}: {what} moves its HEAD too, while its files and index stay where they are, so `git status` there shows the release moved from as staged changes and a commit there would bring it back; see to it after {what} (`git -C {} status`)",
            first.display(),
            first.display()
        ),
    ))
}

/// The refusal when the back-end's checkout would take two tracked names of `commits` that
/// differ only in letter case for one file.
pub(crate) fn refuse_case_twins(vcs: &dyn VcsBackend, commits: &[&CommitId]) -> Option<Error> {
    match vcs.case_twins(commits) {
        Ok(None) => None,
        Err(e) => Some(e.into()),
        Ok(Some((a, b))) => Some(Error::refused(
            format!(
                "`{a}` and `{b}` are both tracked, and with `core.ignorecase` set the `{}` back-end (libgit2) takes them for one file: the reset or its undo would leave one of them out of the work tree",
                vcs.name()
            ),
            Some(
                "nothing was changed; set `backend = \"git-cli\"` under `[vcs]`, or, on a case-sensitive file system, `git config core.ignorecase false`"
                    .into(),
            ),
        )),
    }
}

/// The refusal when the repository's `reference-transaction` hook will not let the branch move
/// to `target` (asked without moving it): found by `git reset --hard`, that came after the
/// files and the index were the target's.
pub(crate) fn refuse_hooked_move(vcs: &dyn VcsBackend, branch: Option<&str>, target: &CommitId) -> Option<Error> {
    let branch = branch?;
    match vcs.hook_refuses_move(target) {
        Ok(None) => None,
        Err(e) => Some(e.into()),
        Ok(Some(said)) => Some(Error::refused(
            format!(
                "the repository's `reference-transaction` hook refuses to move `{branch}` to {}: {said}",
                target.short()
            ),
            Some(
                "nothing was changed; the hook guards the branch (a release freeze?): lift it, or ask whoever set it up, then run again"
                    .into(),
            ),
        )),
    }
}
