//! The git commands of `[deploy]`: the push, the rollback commit, reading the remote.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{DeployContext, Error, short};
use crate::lock::PushLock;
use crate::verify::command::{ProgramOutput, run_command_noting};

/// Variables that choose how git reaches a remote: kept when the rest of `GIT_*` is removed.
const KEPT_GIT_VARS: [&str; 7] = [
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_SSH_VARIANT",
    "GIT_ASKPASS",
    "GIT_PROXY_COMMAND",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
];

pub(super) struct Git {
    pub(super) dir: PathBuf,
    pub(super) limit: Duration,
    /// The index file git reads and writes (`GIT_INDEX_FILE`); `None`: the repository's.
    pub(super) index: Option<PathBuf>,
}

/// What a git command printed, and how it ended.
struct GitOut {
    ok: bool,
    stdout: String,
    /// Credentials in remote URLs removed.
    stderr: String,
    /// `exit code 128`, `killed by signal 9`.
    exit: String,
}

impl Git {
    /// `git -C <dir> args...` in a clean environment, killed with forge-rollback.
    fn command(&self, args: &[&str]) -> tokio::process::Command {
        use std::os::unix::ffi::OsStrExt;
        let mut cmd = tokio::process::Command::new("git");
        for (key, _) in std::env::vars_os() {
            let k = key.as_bytes();
            if k.starts_with(b"GIT_") && !KEPT_GIT_VARS.iter().any(|kept| kept.as_bytes() == k) {
                cmd.env_remove(&key);
            }
        }
        if let Some(index) = &self.index {
            cmd.env("GIT_INDEX_FILE", index);
        }
        cmd.env("GIT_TERMINAL_PROMPT", "0")
            .env("LC_ALL", "C")
            .arg("-C")
            .arg(&self.dir)
            .args(["-c", "core.quotepath=off"])
            .args(args);
        // A push that outlived a killed run would update the remote behind the back of the
        // `undo` or `resume` that reads it next.
        crate::signals::die_with_parent(&mut cmd);
        cmd
    }

    /// Runs `git -C <dir> args...`; stdout, or the error.
    pub(super) async fn run(&self, args: &[&str], accept_failure: bool) -> Result<(bool, String, String), Error> {
        let out = self.output(args, None).await?;
        if !out.ok && !accept_failure {
            return Err(Error::Git { args: args.join(" "), exit: out.exit, stderr: out.stderr });
        }
        Ok((out.ok, out.stdout, out.stderr))
    }

    /// Runs git, holding `lock` (if any) until it and every program it started have ended.
    async fn output(&self, args: &[&str], lock: Option<&mut PushLock>) -> Result<GitOut, Error> {
        let mut cmd = self.command(args);
        let out: ProgramOutput = match lock {
            Some(lock) => {
                crate::signals::inherit_fd(&mut cmd, lock.fd());
                run_command_noting(cmd, "git", Some(self.limit), |pid| lock.started(pid)).await
            }
            None => run_command_noting(cmd, "git", Some(self.limit), |_| {}).await,
        }
        .map_err(|e| Error::GitNotFound(e.source))?;
        if out.timed_out {
            return Err(Error::GitTimeout { args: args.join(" "), limit: self.limit });
        }
        Ok(GitOut {
            ok: out.status.is_some_and(|s| s.success()),
            stdout: String::from_utf8_lossy(&out.stdout).trim().to_owned(),
            // A remote URL with credentials in it may be echoed by git.
            stderr: crate::secret::redact_url_credentials(String::from_utf8_lossy(&out.stderr).trim()),
            exit: out.describe_exit(),
        })
    }
}

/// Where the push lock is taken, and for which run ([`PushLock`]); `None`: no lock.
pub(super) type LockAt<'a> = Option<(&'a Path, &'a str)>;

/// Pushes `commit` to `remote`'s `branch`; with `lease`, only if the remote branch is at it.
/// The push runs under the push lock at `lock_at`.
pub(super) async fn push(
    git: &Git,
    remote: &str,
    branch: &str,
    commit: &str,
    lease: Option<&str>,
    lock_at: LockAt<'_>,
) -> Result<String, Error> {
    let dst = format!("refs/heads/{branch}");
    let refspec = format!("{commit}:{dst}");
    let lease_arg = lease.map(|l| format!("--force-with-lease={dst}:{l}"));
    let mut args = vec!["push", "--porcelain"];
    args.extend(lease_arg.as_deref());
    args.extend([remote, refspec.as_str()]);
    let mut lock = match lock_at {
        Some((path, run_id)) => Some(PushLock::acquire(path, run_id).map_err(Error::PushLock)?),
        None => None,
    };
    let out = git.output(&args, lock.as_mut()).await?;
    drop(lock);
    if out.ok {
        return Ok(commit.to_owned());
    }
    // `--porcelain`: `<flag>\t<src>:<dst>\t<summary> (<reason>)`, `!` for a rejected ref.
    let line = out.stdout.lines().find(|l| l.starts_with('!') && l.contains(&format!(":{dst}\t")));
    let reason = line.and_then(|l| l.rsplit('\t').next()).map(|s| s.trim().to_owned()).unwrap_or_default();
    let (remote, branch) = (remote.to_owned(), branch.to_owned());
    // `[rejected]` is git's own verdict from what the remote advertised: the branch moved.
    // `[remote rejected]` is the remote refusing the update itself (a hook, a protected
    // branch, `receive.denyNonFastForwards`), whatever the reason's words.
    if reason.starts_with("[rejected]") {
        if reason.contains("stale info") {
            return Err(Error::RemoteMoved { remote, branch, expected: lease.unwrap_or_default().to_owned() });
        }
        if reason.contains("non-fast-forward") || reason.contains("fetch first") {
            if let Some(expected) = lease {
                return Err(Error::RemoteMoved { remote, branch, expected: expected.to_owned() });
            }
            return Err(Error::NonFastForward { remote, branch, commit: commit.to_owned() });
        }
    }
    if !reason.is_empty() {
        let refuses_force =
            lease.is_some() && reason.starts_with("[remote rejected]") && reason.contains("non-fast-forward");
        return Err(Error::Rejected { remote, branch, reason, said: remote_said(&out.stderr), refuses_force });
    }
    Err(Error::Git { args: args.join(" "), exit: out.exit, stderr: out.stderr })
}

/// Most lines of what the remote said that are kept in an error.
const SAID_LINES: usize = 20;

/// What the remote said (its hooks' output, its reason for refusing): git's `remote: ` lines,
/// the last [`SAID_LINES`] of them, joined; credentials in URLs are already removed.
fn remote_said(stderr: &str) -> String {
    let lines: Vec<&str> =
        stderr.lines().filter_map(|l| l.strip_prefix("remote:")).map(str::trim).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(SAID_LINES)..].join(" | ")
}

/// Whether `remote` names a remote of the repository (`git remote get-url`), or is the path
/// of a repository on this machine.
pub(super) async fn remote_exists(git: &Git, remote: &str) -> Result<bool, Error> {
    let (ok, _, _) = git.run(&["remote", "get-url", "--", remote], true).await?;
    Ok(ok || (remote.starts_with('/') && Path::new(remote).is_dir()))
}

/// The remote branch's tip if it is this run's rollback commit (pushed by an earlier attempt
/// of the same run): parent `from`, the tree `tree` ([`rollback_tree`]), the run named in its
/// message.
pub(super) async fn pushed_before(
    git: &Git,
    remote: &str,
    branch: &str,
    ctx: &DeployContext<'_>,
    tree: &str,
) -> Result<Option<String>, Error> {
    let Some(tip) = remote_branch_tip(git, remote, branch).await? else { return Ok(None) };
    let (ok, parents, _) = git.run(&["log", "-1", "--format=%P", &tip, "--"], true).await?;
    let ours = ok
        && parents == ctx.from
        && git.tree_of(&tip).await?.as_deref() == Some(tree)
        && git.made_by_run(&tip, ctx.run_id).await?;
    Ok(ours.then_some(tip))
}

/// The commit `remote`'s `branch` points at; `None` when the branch does not exist there.
pub(super) async fn remote_branch_tip(git: &Git, remote: &str, branch: &str) -> Result<Option<String>, Error> {
    let refname = format!("refs/heads/{branch}");
    let (_, out, _) = git.run(&["ls-remote", "--refs", remote, &refname], false).await?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .find(|(_, name)| *name == refname)
        .map(|(id, _)| id.to_owned())
        .filter(|id| id.len() >= 40 && id.bytes().all(|b| b.is_ascii_hexdigit())))
}

impl Git {
    /// The tree of `commit`; `None` if the commit is not in this repository.
    pub(super) async fn tree_of(&self, commit: &str) -> Result<Option<String>, Error> {
        let (ok, tree, _) =
            self.run(&["rev-parse", "--verify", "--quiet", &format!("{commit}^{{tree}}")], true).await?;
        Ok(ok.then_some(tree))
    }

    /// Whether `commit` is in this repository and names run `run_id` as its maker.
    pub(super) async fn made_by_run(&self, commit: &str, run_id: &str) -> Result<bool, Error> {
        let (ok, message, _) = self.run(&["log", "-1", "--format=%B", commit, "--"], true).await?;
        Ok(ok && message.contains(&format!("(forge-rollback run {run_id})")))
    }
}

/// One entry of a commit's tree (`git ls-tree`).
#[derive(PartialEq, Eq)]
struct TreeEntry {
    /// `100644`, `100755`, `120000`, `040000`, `160000`.
    mode: String,
    /// `blob`, `tree` or `commit`.
    kind: String,
    oid: String,
}

impl Git {
    /// The entry `path` (relative to the top of the work tree) of `commit`'s tree; `None` when
    /// the commit has nothing there.
    async fn entry(&self, commit: &str, path: &str) -> Result<Option<TreeEntry>, Error> {
        // `-z`: the path unquoted; `--full-tree`: relative to the top, wherever git runs;
        // literal pathspecs: a `*` in a file name is not a pattern.
        let args = ["--literal-pathspecs", "ls-tree", "-z", "--full-tree", commit, "--", path];
        let (_, out, _) = self.run(&args, false).await?;
        for record in out.split('\0') {
            // `<mode> <type> <oid>\t<path>`
            let Some((meta, name)) = record.split_once('\t') else { continue };
            let mut fields = meta.split(' ');
            if let (Some(mode), Some(kind), Some(oid), true) =
                (fields.next(), fields.next(), fields.next(), name == path)
            {
                return Ok(Some(TreeEntry { mode: mode.to_owned(), kind: kind.to_owned(), oid: oid.to_owned() }));
            }
        }
        Ok(None)
    }
}

/// The rollback commit's tree, and the paths of `ctx.keep` in it that are as `from` has them
/// rather than as the target has them. It is the target's tree, except that each kept path
/// (the registry, the configuration file) is `from`'s file, or absent when `from` has none:
/// the production branch must not go back to the target's older registry, which has none of
/// the bad marks made since, and a server gate reading the branch would then let those
/// releases through again. The local reset keeps the same files (`keep_tool_files`). Built in
/// an index of its own, so the repository's index is never touched.
pub(super) async fn rollback_tree(git: &Git, ctx: &DeployContext<'_>) -> Result<(String, Vec<String>), Error> {
    let target_tree = format!("{}^{{tree}}", ctx.to);
    let (tree, kept) = if ctx.keep.is_empty() {
        let (_, tree, _) = git.run(&["rev-parse", "--verify", &target_tree], false).await?;
        (tree, Vec::new())
    } else {
        let temp = tempfile::tempdir().map_err(Error::TempIndex)?;
        let git = Git { dir: git.dir.clone(), limit: git.limit, index: Some(temp.path().join("index")) };
        git.run(&["read-tree", &target_tree], false).await?;
        let mut kept = Vec::new();
        for path in ctx.keep {
            let (target, production) = (git.entry(ctx.to, path).await?, git.entry(ctx.from, path).await?);
            if target == production {
                continue;
            }
            let is_file = |e: &Option<TreeEntry>| e.as_ref().is_some_and(|e| e.kind == "blob");
            match &production {
                // `--replace`: a folder of the target's at the same path (or a file where the
                // path needs a folder) gives way, as in `from`.
                Some(e) if is_file(&production) => {
                    let info = format!("{},{},{path}", e.mode, e.oid);
                    git.run(&["update-index", "--add", "--replace", "--cacheinfo", &info], false).await?;
                }
                None if is_file(&target) => {
                    git.run(&["update-index", "--force-remove", "--", path], false).await?;
                }
                // A folder or a submodule on either side: not the tool's file; the target's stays.
                _ => continue,
            }
            kept.push(path.clone());
        }
        let (_, tree, _) = git.run(&["write-tree"], false).await?;
        (tree, kept)
    };
    check_id("write-tree", &tree)?;
    Ok((tree, kept))
}

/// Whether `id`, what `command` printed, is a full object id; if not, the error saying so.
fn check_id(command: &str, id: &str) -> Result<(), Error> {
    if id.len() < 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Error::Git {
            args: command.into(),
            exit: "exit code 0".into(),
            stderr: format!("unexpected output `{id}`"),
        });
    }
    Ok(())
}

/// Makes the rollback commit: the tree `tree` ([`rollback_tree`]) on top of `from`; its id.
pub(super) async fn revert_commit(git: &Git, ctx: &DeployContext<'_>, tree: &str) -> Result<String, Error> {
    // Use the repository's identity; if it has none, sign as forge-rollback rather than fail.
    let author = git.run(&["var", "GIT_AUTHOR_IDENT"], true).await?.0;
    let committer = git.run(&["var", "GIT_COMMITTER_IDENT"], true).await?.0;
    let mut args: Vec<String> = Vec::new();
    if !(author && committer) {
        args.extend(["-c", "user.name=forge-rollback", "-c", "user.email=forge-rollback@localhost"].map(str::to_owned));
    }
    let message = format!("Roll back to {} (forge-rollback run {})", short(ctx.to), ctx.run_id);
    args.extend(["commit-tree".to_owned(), tree.to_owned(), "-p".to_owned(), ctx.from.to_owned()]);
    args.extend(["-m".to_owned(), message]);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_, id, _) = git.run(&argv, false).await?;
    check_id("commit-tree", &id)?;
    Ok(id)
}
