//! `[deploy]`: putting the rolled-back code into production for apps deployed from git or by
//! a PaaS. Strategies: `push` (the rolled-back branch to a remote with
//! `--force-with-lease`), `revert-commit` (a new commit whose tree is the target's, pushed
//! without force, history kept); and an optional deploy hook (HTTP POST to a secret URL, as
//! Render and Railway offer).
//!
//! ```toml
//! [deploy]
//! strategy = "revert-commit"     # "none" (default), "push" or "revert-commit"
//! remote = "origin"              # default
//! # branch = "main"              # default: the branch that was rolled back
//! hook_url_env = "RENDER_DEPLOY_HOOK"   # or hook_url = "https://..." (a secret either way)
//! hook_timeout_secs = 30
//! hook_expect_status = [200, 201]       # default: any 2xx
//! ```
//!
//! - `push`: `git push --porcelain --force-with-lease=refs/heads/<b>:<from> <remote>
//!   <to>:refs/heads/<b>`, where `from` is the commit production runs (HEAD before the
//!   rollback). If anyone pushed to the remote branch since, the push is refused
//!   ([`Error::RemoteMoved`]) and nothing changes.
//! - `revert-commit`: `git commit-tree <tree> -p <from>` makes a commit whose files are the
//!   target's and whose parent is `from`, then a plain push (no force): history is kept, and
//!   a remote that moved refuses it as a non-fast-forward ([`Error::NonFastForward`]). The
//!   paths of [`DeployContext::keep`] (the registry and the configuration file, which the
//!   local reset keeps too) are in it as `from` has them: the tree is the target's read into
//!   a temporary index, those entries replaced with `from`'s (`git update-index`), then
//!   `git write-tree`.
//! - `push` puts the target commit itself on the branch: its registry and configuration
//!   file too, older copies that lack the bad marks made since (`revert-commit` keeps them).
//!
//! A remote that refuses the update itself (`[remote rejected]`: a hook, a protected branch,
//! `receive.denyNonFastForwards`) is [`Error::Rejected`], with what it said; only git's own
//! `[rejected]` means that the branch moved. [`check_ready`] finds, before a run changes
//! anything, a hook URL missing from the environment and a remote the repository lacks.
//!
//! git runs killed with forge-rollback (a parent-death signal), and the push holds the push
//! lock (`lock::PushLock`) with everything it starts, so that what outlives a killed
//! run is waited for before the remote is read again. git runs with the inherited `GIT_*` variables removed (a `GIT_DIR` exported by a hook
//! must not redirect it), except those that choose how to reach a remote (`GIT_SSH_COMMAND`,
//! `GIT_ASKPASS`, ...), with `GIT_TERMINAL_PROMPT=0` (never wait on a password prompt) and
//! `LC_ALL=C`. The hook's URL is a secret: it appears in no message, error or report.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

mod error;
mod git;
mod kubernetes_keys;
mod platform_keys;

pub use error::Error;
use git::{Git, push, pushed_before, remote_branch_tip, remote_exists, revert_commit, rollback_tree};

use crate::http::{client_without_redirects, describe_error};
use crate::secret::{Secret, from_inline_or_env, redact_in};
use crate::verify::config::{ExpectStatus, valid_secs};
use crate::verify::{duration, millis, timed_out};

/// How production gets the rolled-back code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeployStrategy {
    /// No git push (a deploy hook may still be called).
    #[default]
    None,
    /// Push the target commit to the remote branch, `--force-with-lease`.
    Push,
    /// Push a new commit (tree of the target, parent the current production commit), no force.
    RevertCommit,
    /// Promote the target commit's earlier deployment on Railway (`crate::platform::railway`).
    Railway,
    /// Roll a Render service back to the target commit's earlier deploy
    /// (`crate::platform::render`).
    Render,
    /// Roll a Heroku app back to the target commit's earlier release (code and config vars;
    /// `crate::platform::heroku`).
    Heroku,
    /// Redeploy the target commit's earlier release image onto a Fly.io app's Machines
    /// (`crate::platform::fly`).
    Fly,
    /// Roll a Kubernetes Deployment or StatefulSet back to the revision built from the target
    /// commit, as `kubectl rollout undo` does (`crate::platform::kubernetes`).
    Kubernetes,
}

impl DeployStrategy {
    /// As written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            DeployStrategy::None => "none",
            DeployStrategy::Push => "push",
            DeployStrategy::RevertCommit => "revert-commit",
            DeployStrategy::Railway => "railway",
            DeployStrategy::Render => "render",
            DeployStrategy::Heroku => "heroku",
            DeployStrategy::Fly => "fly",
            DeployStrategy::Kubernetes => "kubernetes",
        }
    }

    /// Whether the strategy pushes with git (`push`, `revert-commit`).
    pub fn pushes(self) -> bool {
        matches!(self, DeployStrategy::Push | DeployStrategy::RevertCommit)
    }

    /// Whether the strategy promotes a release the platform keeps (`railway`, `render`).
    pub fn is_platform(self) -> bool {
        matches!(
            self,
            DeployStrategy::Railway
                | DeployStrategy::Render
                | DeployStrategy::Heroku
                | DeployStrategy::Fly
                | DeployStrategy::Kubernetes
        )
    }
}

/// `hook_expect_status`, named so in its errors.
fn hook_expect_status<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<ExpectStatus>, D::Error> {
    ExpectStatus::deserialize_as(d, "hook_expect_status").map(Some)
}

fn default_remote() -> String {
    "origin".to_owned()
}
fn default_hook_timeout() -> f64 {
    30.0
}
fn default_push_timeout() -> f64 {
    120.0
}

/// `[deploy]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployConfig {
    /// `none`, `push` or `revert-commit`.
    #[serde(default)]
    pub strategy: DeployStrategy,
    /// The remote pushed to.
    #[serde(default = "default_remote")]
    pub remote: String,
    /// The remote branch (default: the branch that was rolled back).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Longest a `git push` may take, in seconds.
    #[serde(default = "default_push_timeout")]
    pub push_timeout_secs: f64,
    /// The deploy hook's URL (a secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_url: Option<Secret>,
    /// The environment variable holding the deploy hook's URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook_url_env: Option<String>,
    /// Longest the hook may take, in seconds.
    #[serde(default = "default_hook_timeout")]
    pub hook_timeout_secs: f64,
    /// The hook's expected status (default: any `2xx`).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "hook_expect_status")]
    pub hook_expect_status: Option<ExpectStatus>,
    /// Platform strategies: the service's id on the platform (Railway service id, Render
    /// `srv-...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_id: Option<String>,
    /// Heroku: the app's name or id; Fly.io: the app's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// Railway: the environment's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment_id: Option<String>,
    /// Platform strategies: the environment variable holding the API token (default per
    /// platform: `RAILWAY_TOKEN`, `RENDER_API_KEY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_env: Option<String>,
    /// Railway: `project` (a project token, `Project-Access-Token` header; the default) or
    /// `account` (an account or team token, `Authorization: Bearer`).
    #[serde(default)]
    pub token_kind: TokenKind,
    /// Platform strategies: the API's URL (default: the platform's public API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// Fly.io: the GraphQL API's URL, where releases are listed (default
    /// `https://api.fly.io/graphql`; `api_url` is the Machines API's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graphql_url: Option<String>,
    /// Platform strategies: longest wait for a promoted release to serve, in seconds.
    #[serde(default = "default_live_timeout")]
    pub live_timeout_secs: f64,
    /// Platform strategies: how often to ask whether a promoted release serves, in seconds.
    #[serde(default = "default_poll")]
    pub poll_secs: f64,
    /// Platform strategies: after a rollback, turn the platform's automatic deploys off where
    /// it has a switch (Railway, Render), so a push does not deploy the bad release again; undo turns
    /// them back on.
    #[serde(default = "default_freeze")]
    pub freeze: bool,
    /// Kubernetes: the namespace (default: the kubeconfig context's, the service account's, or
    /// `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Kubernetes: the Deployment rolled back (or `statefulset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment: Option<String>,
    /// Kubernetes: the StatefulSet rolled back (or `deployment`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statefulset: Option<String>,
    /// Kubernetes: the container of the pod template whose image runs jobs (default: the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// Kubernetes: the kubeconfig file (default: `$KUBECONFIG`, then `~/.kube/config`; in a pod,
    /// the service account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubernetes: the kubeconfig context (default: its `current-context`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Kubernetes: the pod-template annotation naming the commit a revision was built from
    /// (default `forge-rollback/commit`; the image tag is read when it is absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_annotation: Option<String>,
    /// Kubernetes: the label Argo CD tracks what it deploys by (its `argocd-cm`
    /// `application.instanceLabelKey`); unset: read from `argocd-cm` in namespace `argocd`, else
    /// `app.kubernetes.io/instance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argocd_instance_label: Option<String>,
    /// Kubernetes: the namespace Argo CD is installed in (its `argocd-cm` and Applications);
    /// unset: `argocd`, as its install manifests have it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub argocd_namespace: Option<String>,
    /// Kubernetes, `--full`: the command (argv) that downgrades the database, run as a Job with
    /// the live release's image before the rollout (`"{revision}"` becomes the target
    /// revisions, or `base`). Unset: the downgrade runs here, as for other strategies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate_command: Option<Vec<String>>,
}

fn default_freeze() -> bool {
    true
}

/// How a platform token is sent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TokenKind {
    /// A project token (Railway: `Project-Access-Token: <token>`).
    #[default]
    Project,
    /// An account or team token (`Authorization: Bearer <token>`).
    Account,
}

fn default_live_timeout() -> f64 {
    600.0
}
fn default_poll() -> f64 {
    5.0
}

impl Default for DeployConfig {
    fn default() -> Self {
        Self {
            strategy: DeployStrategy::None,
            remote: default_remote(),
            branch: None,
            push_timeout_secs: default_push_timeout(),
            hook_url: None,
            hook_url_env: None,
            hook_timeout_secs: default_hook_timeout(),
            hook_expect_status: None,
            service_id: None,
            app: None,
            environment_id: None,
            token_env: None,
            token_kind: TokenKind::Project,
            api_url: None,
            graphql_url: None,
            live_timeout_secs: default_live_timeout(),
            poll_secs: default_poll(),
            freeze: default_freeze(),
            namespace: None,
            deployment: None,
            statefulset: None,
            container: None,
            kubeconfig: None,
            context: None,
            commit_annotation: None,
            argocd_instance_label: None,
            argocd_namespace: None,
            migrate_command: None,
        }
    }
}

/// A name git accepts as a remote or branch, and that cannot be read as an option.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && !name.contains("..")
        && !name.ends_with('/')
        && !name.to_ascii_lowercase().ends_with(".lock")
        && name.chars().all(|c| !c.is_whitespace() && !c.is_control() && !"~^:?*[\\".contains(c))
}

/// A branch name git accepts (`git check-ref-format`, as `refs/heads/<name>`), that cannot be
/// read as an option.
fn branch_name(name: &str) -> bool {
    plain_name(name)
        && name != "@"
        && !name.contains("@{")
        && !name.ends_with('.')
        && name
            .split('/')
            .all(|part| !part.is_empty() && !part.starts_with('.') && !part.to_ascii_lowercase().ends_with(".lock"))
}

impl DeployConfig {
    /// Whether there is anything to do (a push or a hook).
    pub fn is_active(&self) -> bool {
        self.strategy.pushes() || self.hook_url.is_some() || self.hook_url_env.is_some()
    }

    /// Checks the section. `Err((key, message))`; the hook URL is never in the message.
    pub fn validate(&self) -> Result<(), (String, String)> {
        self.validate_platform()?;
        if self.strategy.pushes() {
            if !plain_name(&self.remote) {
                return Err(("deploy.remote".into(), format!("`{}` is not a remote name", self.remote)));
            }
            if !valid_secs(self.push_timeout_secs) {
                return Err((
                    "deploy.push_timeout_secs".into(),
                    format!("must be more than 0 (got {})", self.push_timeout_secs),
                ));
            }
        }
        if let Some(b) = &self.branch
            && !branch_name(b.strip_prefix("refs/heads/").unwrap_or(b))
        {
            return Err(("deploy.branch".into(), format!("`{b}` is not a branch name")));
        }
        if self.hook_url.is_some() && self.hook_url_env.is_some() {
            return Err(("deploy.hook_url".into(), "set either `hook_url` or `hook_url_env`, not both".into()));
        }
        if let Some(url) = &self.hook_url {
            check_hook_url(url).map_err(|m| ("deploy.hook_url".to_owned(), m))?;
        }
        if self.hook_url_env.as_ref().is_some_and(String::is_empty) {
            return Err(("deploy.hook_url_env".into(), "names no environment variable".into()));
        }
        if !valid_secs(self.hook_timeout_secs) {
            return Err((
                "deploy.hook_timeout_secs".into(),
                format!("must be more than 0 (got {})", self.hook_timeout_secs),
            ));
        }
        Ok(())
    }
}

/// A secret URL parsed; the message never contains it.
pub(crate) fn check_hook_url(url: &Secret) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url.expose()).map_err(|e| format!("the URL is not valid ({e})"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err("the URL must start with http:// or https://".to_owned());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".to_owned());
    }
    Ok(parsed)
}

/// What [`deploy`] needs to know about the run.
#[derive(Clone, Copy, Debug)]
pub struct DeployContext<'a> {
    /// The work tree (its repository is the one pushed from).
    pub workdir: &'a Path,
    /// The run, named in the commit message and the hook's body.
    pub run_id: &'a str,
    /// The full id of the commit HEAD was at before the rollback: what production runs.
    pub from: &'a str,
    /// The full id of the rollback target.
    pub to: &'a str,
    /// The branch that was rolled back (`None`: HEAD was detached).
    pub branch: Option<&'a str>,
    /// The push lock file (`<state>/push.lock`), held while `git push` and whatever it starts
    /// run, so that a push outliving this process is seen by the next command; `None`: none.
    pub push_lock: Option<&'a Path>,
    /// `revert-commit`: paths (relative to the top of the work tree, `/`-separated) that the
    /// rollback commit has as `from` has them, not as the target has them (or not at all, when
    /// `from` has none): the registry and the configuration file. Empty: the target's tree
    /// exactly (an undo, which puts back the commit the run started from).
    pub keep: &'a [String],
}

/// What [`deploy`] did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployReport {
    /// The strategy used.
    pub strategy: DeployStrategy,
    /// The remote pushed to (none for `none`).
    pub remote: Option<String>,
    /// The remote branch pushed to.
    pub branch: Option<String>,
    /// The commit the remote branch now points at (for `revert-commit`, the new commit).
    pub pushed_commit: Option<String>,
    /// `revert-commit`: the kept paths ([`DeployContext::keep`]) that the pushed commit has
    /// as `from` has them, where the target's differ.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
    /// The deploy hook's answer, when one was called.
    pub hook_status: Option<u16>,
    /// Wall time in milliseconds.
    pub millis: u64,
    /// For people ("pushed 1a2b3c4 to origin/main"); no secrets.
    pub detail: String,
}

/// Runs the configured strategy, then the hook. With neither configured it does nothing and
/// says so in the report.
pub async fn deploy(config: &DeployConfig, ctx: &DeployContext<'_>) -> Result<DeployReport, Error> {
    let start = Instant::now();
    for (what, id) in [("commit id", ctx.from), ("commit id", ctx.to)] {
        if id.len() < 4 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::Invalid { what, value: id.to_owned() });
        }
    }
    let mut report = DeployReport {
        strategy: config.strategy,
        remote: None,
        branch: None,
        pushed_commit: None,
        kept: Vec::new(),
        hook_status: None,
        millis: 0,
        detail: String::new(),
    };
    let mut details = Vec::new();
    // Before the push: a hook that cannot be called must not leave production half-deployed.
    let hook_url = hook_url(config)?;
    if config.strategy.pushes() {
        let (branch, git) = push_target(config, ctx.workdir, ctx.branch)?;
        let lock = ctx.push_lock.map(|path| (path, ctx.run_id));
        let pushed = if config.strategy == DeployStrategy::Push {
            push(&git, &config.remote, branch, ctx.to, Some(ctx.from), lock).await?
        } else {
            let (tree, kept) = rollback_tree(&git, ctx).await?;
            report.kept = kept;
            let commit = revert_commit(&git, ctx, &tree).await?;
            match push(&git, &config.remote, branch, &commit, None, lock).await {
                Ok(pushed) => pushed,
                // Run again after its push went through (a resume after the hook failed): the
                // commit made now differs from the one on the remote only by its date.
                Err(e @ Error::NonFastForward { .. }) => {
                    pushed_before(&git, &config.remote, branch, ctx, &tree).await.ok().flatten().ok_or(e)?
                }
                Err(e) => return Err(e),
            }
        };
        details.push(format!("pushed {} to {}/{branch}", short(&pushed), config.remote));
        if !report.kept.is_empty() {
            let kept: Vec<String> = report.kept.iter().map(|p| format!("`{p}`")).collect();
            let it = if kept.len() == 1 { "it" } else { "them" };
            details.push(format!("kept {} as production ({}) has {it}", kept.join(", "), short(ctx.from)));
        }
        report.remote = Some(config.remote.clone());
        report.branch = Some(branch.to_owned());
        report.pushed_commit = Some(pushed);
    }
    if let Some(url) = hook_url {
        let commit = report.pushed_commit.clone().unwrap_or_else(|| ctx.to.to_owned());
        let body = serde_json::json!({
            "event": "rollback",
            "run_id": ctx.run_id,
            "commit": commit,
            "from": ctx.from,
            "branch": report.branch.as_deref().or(config.branch.as_deref()).or(ctx.branch),
        });
        let status = call_hook(&url, &body, config)
            .await
            .map_err(|reason| Error::Hook { reason, pushed_commit: report.pushed_commit.clone() })?;
        report.hook_status = Some(status);
        details.push(format!("deploy hook answered {status}"));
    }
    report.millis = millis(start.elapsed());
    report.detail =
        if details.is_empty() { "nothing to deploy (no strategy, no hook)".to_owned() } else { details.join("; ") };
    Ok(report)
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// The deploy hook's URL (`None`: no hook), from `hook_url` or the variable `hook_url_env`
/// names, which must be set, not empty, UTF-8 and a URL.
fn hook_url(config: &DeployConfig) -> Result<Option<Secret>, Error> {
    let url = from_inline_or_env(config.hook_url.as_ref(), config.hook_url_env.as_deref()).map_err(Error::HookUrl)?;
    if let (Some(url), Some(var)) = (&url, &config.hook_url_env) {
        check_hook_url(url)
            .map_err(|m| Error::HookUrl(format!("the environment variable `{var}` holds no usable URL: {m}")))?;
    }
    Ok(url)
}

/// What the deploy step would otherwise find only after the reset, checked before a run,
/// resume or undo changes anything: the deploy hook's URL, and the remote pushed to. The
/// error's config key: [`Error::config_key`].
pub async fn check_ready(config: &DeployConfig, workdir: &Path) -> Result<(), Error> {
    hook_url(config)?;
    if config.strategy.pushes() {
        if !plain_name(&config.remote) {
            return Err(Error::Invalid { what: "remote name", value: config.remote.clone() });
        }
        let git = Git { dir: workdir.to_owned(), limit: duration(config.push_timeout_secs), index: None };
        if !remote_exists(&git, &config.remote).await? {
            return Err(Error::NoRemote { remote: config.remote.clone() });
        }
    }
    Ok(())
}

/// POSTs `body` to the hook; its status, or why it failed (never the URL).
async fn call_hook(url: &Secret, body: &serde_json::Value, config: &DeployConfig) -> Result<u16, String> {
    let parsed = check_hook_url(url)?;
    let secrets = secret_parts(url.expose(), &parsed);
    let scrub = |text: String| redact_in(&text, secrets.iter().map(String::as_str));
    let client = client_without_redirects().map_err(|e| e.to_string())?;
    let limit = duration(config.hook_timeout_secs);
    let request =
        client.post(parsed).header(reqwest::header::CONTENT_TYPE, "application/json").body(body.to_string()).send();
    let response = match tokio::time::timeout(limit, request).await {
        Err(_) => return Err(timed_out(limit)),
        Ok(Err(e)) => return Err(scrub(describe_error(e, None))),
        Ok(Ok(r)) => r,
    };
    let status = response.status().as_u16();
    if !ExpectStatus::accepts(config.hook_expect_status.as_ref(), status) {
        return Err(format!(
            "status {status}, expected {}",
            ExpectStatus::describe(config.hook_expect_status.as_ref())
        ));
    }
    Ok(status)
}

/// The URL and the parts of it that may carry its secret (path, query, user info).
pub(crate) fn secret_parts(raw: &str, url: &reqwest::Url) -> Vec<String> {
    let mut parts = vec![raw.to_owned(), url.as_str().to_owned()];
    if url.path().len() > 1 {
        parts.push(url.path().to_owned());
    }
    parts.extend(url.query().map(str::to_owned));
    if !url.username().is_empty() {
        parts.push(url.username().to_owned());
    }
    parts.extend(url.password().map(str::to_owned));
    parts
}

/// Where `[deploy]`'s remote branch is now (`branch`: the branch rolled back, when `[deploy]
/// branch` is not set); `None` when the branch does not exist there.
pub async fn remote_tip(config: &DeployConfig, workdir: &Path, branch: Option<&str>) -> Result<Option<String>, Error> {
    let (branch, git) = push_target(config, workdir, branch)?;
    remote_branch_tip(&git, &config.remote, branch).await
}

/// The branch pushed to (`[deploy] branch`, else `branch`: the branch rolled back, without
/// `refs/heads/`) and the git that pushes, both names checked as [`DeployConfig::validate`]
/// checks them at load (a branch from the repository is checked here first).
fn push_target<'a>(config: &'a DeployConfig, workdir: &Path, branch: Option<&'a str>) -> Result<(&'a str, Git), Error> {
    let branch = config.branch.as_deref().or(branch).ok_or(Error::NoBranch)?;
    let branch = branch.strip_prefix("refs/heads/").unwrap_or(branch);
    if !branch_name(branch) {
        return Err(Error::Invalid { what: "branch name", value: branch.to_owned() });
    }
    if !plain_name(&config.remote) {
        return Err(Error::Invalid { what: "remote name", value: config.remote.clone() });
    }
    Ok((branch, Git { dir: workdir.to_owned(), limit: duration(config.push_timeout_secs), index: None }))
}

/// Whether `commit` is a rollback commit that run `run_id` made (`revert-commit`).
pub async fn made_by_run(config: &DeployConfig, workdir: &Path, commit: &str, run_id: &str) -> Result<bool, Error> {
    if !commit.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(false);
    }
    Git { dir: workdir.to_owned(), limit: duration(config.push_timeout_secs), index: None }
        .made_by_run(commit, run_id)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["main", "release/1.2", "origin", "feat_x-y"] {
            assert!(plain_name(ok), "{ok}");
        }
        for bad in ["", "-f", "a b", "a..b", "x.lock", "a:b", "x/", "a~1"] {
            assert!(!plain_name(bad), "{bad}");
        }
        // Odd but valid (git pushes them).
        for ok in ["main", "a@b", "x{y}", "HEAD", "rel#1'\u{fc}\"x", "release/1.2"] {
            assert!(branch_name(ok), "{ok}");
        }
        // What `git check-ref-format` refuses.
        for bad in ["@", "a@{b", "a//b", ".x", "a/.b", "a/b.lock", "x.", "/a", "a\u{7f}"] {
            assert!(!branch_name(bad), "{bad}");
        }
    }

    #[test]
    fn secret_parts_cover_path_and_query() {
        let raw = "https://user:pw@api.example.com/deploy/srv-123?key=abc";
        let url = reqwest::Url::parse(raw).unwrap();
        let parts = secret_parts(raw, &url);
        let text = redact_in(
            "POST https://api.example.com/deploy/srv-123?key=abc failed for key=abc",
            parts.iter().map(String::as_str),
        );
        assert!(!text.contains("srv-123") && !text.contains("key=abc"), "{text}");
    }
}
