//! The configuration file: one TOML file, loaded and validated before anything changes, then
//! held in memory for the whole run (a reset may delete or change the file itself).
//!
//! Discovery, first match wins: `--config FILE`, `<work tree>/rollback/config/rollback.toml`,
//! `<work tree>/forge-rollback.toml`; with none of them, the defaults below apply.
//! [`DEFAULT_TOML`] is what `forge-rollback init` writes: every key, commented.

use std::path::{Path, PathBuf};

mod glob;
mod secrets;
pub use glob::matches_nearly_everything;

use globset::{GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::db::DatabaseConfig;
use crate::deploy::DeployConfig;
use crate::model::Level;
use crate::notify::NotifyConfig;
use crate::paths::RepoPath;
use crate::restart::RestartStep;
use crate::vcs::BackendKind;
use crate::verify::{CheckConfig, VerifySettings};

/// Where `init` writes and discovery looks first, relative to the work tree.
pub const DEFAULT_PATH: &str = "rollback/config/rollback.toml";
/// Where discovery looks second.
pub const ALT_PATH: &str = "forge-rollback.toml";

/// The commented default configuration written by `forge-rollback init`.
pub const DEFAULT_TOML: &str = r#"# forge-rollback configuration.
# Loaded and checked before a rollback changes anything, then kept in memory: resetting to an
# older commit cannot take the configuration away half-way through a run.

[registry]
# The known-good commit registry (the runbook's format), relative to the work tree.
# Commit it: `known-good mark` and `known-good bad` update it, and a rollback keeps the
# current registry even when the target commit has an older copy.
path = "rollback/config/known-good-commits.json"

[state]
# Backups, journals, logs and the lock. Default: <git dir>/forge-rollback, which no
# `git reset` or `git clean` can reach and nothing commits. If you set it, use a folder
# outside the work tree.
# dir = "/var/lib/forge-rollback/myapp"

[vcs]
# "git-cli" (the `git` program on PATH, run with no inherited GIT_* variables; faster on
# large trees) or "git2" (libgit2, built in: no git program needed).
backend = "git-cli"
# In a partial clone, the longest the fetch of missing blobs may take (git-cli), seconds.
# fetch_timeout_secs = 120

[clean]
# Ignored files are left alone by a rollback, except those matching these globs: they are
# snapshotted and removed like untracked files (undo brings them back).
ignored = []

[caches]
# Cleared after the reset: matching folders are removed whole, matching files one by one.
# Tracked files are never removed. Caches are not snapshotted and undo does not restore them,
# so a glob must name something (`**`, `*`, `**/*` are refused), and the [env] files, the
# SQLite database and this file are never cleared, whatever the globs match.
globs = ["**/__pycache__", "**/*.pyc", "**/*.pyo", "**/.pytest_cache"]
# Folders never searched for caches (virtual environments, dependencies).
skip_dirs = [".venv", "venv", ".tox", "node_modules", ".git"]

[categories]
# How `assess` sorts changed files. A file matching none of them counts as code.
migrations = ["**/migrations/**", "**/alembic/versions/**", "**/*.sql"]
dependencies = ["**/requirements*.txt", "**/pyproject.toml", "**/poetry.lock", "**/uv.lock", "**/Pipfile", "**/Pipfile.lock", "**/setup.py", "**/setup.cfg", "**/package.json", "**/package-lock.json", "**/Cargo.toml", "**/Cargo.lock"]
env = ["**/.env", "**/.env.*", "**/*.env", "**/*.ini", "**/*.cfg", "**/*.yaml", "**/*.yml", "**/config/**", "**/Procfile", "**/railway.json", "**/railway.toml"]

[env]
# Env and config files a full rollback puts back as they were when the target commit was
# marked known-good (`known-good mark` of HEAD records them, in the backup store, never in
# git). `assess` lists the keys that differ: names only, never values.
files = [".env"]

# ---- Full rollback: the database goes back with the code (docs/configuration.md).
# [database]
# kind = "alembic"                  # or "sql": NNNN_name.up.sql / .down.sql in migrations_dir
# url_env = "DATABASE_URL"          # or url = "sqlite:///app.db" / "postgresql://..."; never printed
# python = ".venv/bin/python"       # alembic: the interpreter with Alembic installed
# alembic_ini = "alembic.ini"
# migrations_dir = "migrations"     # sql
# timeout_secs = 300

# ---- Proving the services work after a rollback (`forge-rollback verify`; `init --preset forge`).
# [verify]
# timeout_secs = 10
# on_failure = "stop"               # or "undo": put the pre-rollback state back at once
#
# [[checks]]
# name = "fastapi"
# kind = "http"                     # http, tcp, websocket, command, sql, db-revision, flow
# url = "http://127.0.0.1:8000/"
# expect_status = 200
# body_contains = "healthy"

# ---- Bringing services back, in order, each with a readiness wait. Never kills by name.
# [[restart]]
# name = "api"
# argv = ["systemctl", "restart", "myapp"]
# timeout_secs = 60
# ready = "fastapi"

# ---- Production: push the rolled-back code, or a revert commit, and/or call a deploy hook.
# [deploy]
# strategy = "push"                 # "none", "push" (--force-with-lease) or "revert-commit"
# remote = "origin"
# hook_url_env = "RENDER_DEPLOY_HOOK"

# ---- Webhooks on start, success, failure, verification failure, cancel. URLs are secrets.
# [[notify]]
# url_env = "SLACK_WEBHOOK_URL"
# format = "slack"

# ---- forge-rollback watch
# [watch]
# interval_secs = 30
# failures = 3
# promote_after_hours = 24
"#;

/// Errors from loading or validating the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config `{}`", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or mistyped keys.
    #[error("invalid config `{}` at line {line}, column {column}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        message: String,
    },
    /// A value that parses but makes no sense.
    #[error("invalid config `{}`: {key}: {message}", path.display())]
    Invalid {
        /// The file (or `<defaults>`).
        path: PathBuf,
        /// The key, dotted (`caches.globs`).
        key: String,
        /// What is wrong.
        message: String,
    },
    /// `init` would overwrite an existing file.
    #[error("config `{}` already exists", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
}

impl Error {
    /// What the operator can do.
    pub fn hint(&self) -> Option<crate::hint::Hint> {
        use crate::hint::{Action, hint};
        match self {
            Error::Parse { .. } | Error::Invalid { .. } => {
                Some(hint!["fix the file; ", Action::PrintConfig { preset: None }, " shows every key with its default"])
            }
            // Only `forge-rollback init` writes a configuration.
            Error::Exists { .. } => Some("pass `--force` to overwrite it".into()),
            Error::Read { .. } => None,
        }
    }
}

/// `[registry]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistryConfig {
    /// The registry file, relative to the work tree (or absolute).
    pub path: PathBuf,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self { path: PathBuf::from("rollback/config/known-good-commits.json") }
    }
}

/// `[state]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    /// The state folder; default `<git dir>/forge-rollback`.
    pub dir: Option<PathBuf>,
}

/// `[vcs]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VcsConfig {
    /// Which backend.
    pub backend: BackendKind,
    /// Longest the `git-cli` back-end's fetch of a partial clone's missing blobs may take, in
    /// seconds, before it is stopped and the run refused.
    pub fetch_timeout_secs: f64,
}

impl Default for VcsConfig {
    fn default() -> Self {
        Self { backend: BackendKind::default(), fetch_timeout_secs: crate::vcs::cli::DEFAULT_FETCH_TIMEOUT_SECS }
    }
}

impl VcsConfig {
    /// `fetch_timeout_secs` as a duration.
    pub fn fetch_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.fetch_timeout_secs.clamp(0.001, crate::verify::config::MAX_SECS))
    }
}

/// `[clean]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CleanConfig {
    /// Globs of ignored files to snapshot and remove.
    pub ignored: Vec<String>,
}

/// `[caches]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Globs of cache folders and files.
    pub globs: Vec<String>,
    /// Folder names never searched.
    pub skip_dirs: Vec<String>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            globs: ["**/__pycache__", "**/*.pyc", "**/*.pyo", "**/.pytest_cache"].map(String::from).to_vec(),
            skip_dirs: [".venv", "venv", ".tox", "node_modules", ".git"].map(String::from).to_vec(),
        }
    }
}

/// `[categories]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Categories {
    /// Database migration files.
    pub migrations: Vec<String>,
    /// Dependency manifests and lock files.
    pub dependencies: Vec<String>,
    /// Environment and configuration files.
    pub env: Vec<String>,
}

impl Default for Categories {
    fn default() -> Self {
        let v = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect();
        Self {
            migrations: v(&["**/migrations/**", "**/alembic/versions/**", "**/*.sql"]),
            dependencies: v(&[
                "**/requirements*.txt",
                "**/pyproject.toml",
                "**/poetry.lock",
                "**/uv.lock",
                "**/Pipfile",
                "**/Pipfile.lock",
                "**/setup.py",
                "**/setup.cfg",
                "**/package.json",
                "**/package-lock.json",
                "**/Cargo.toml",
                "**/Cargo.lock",
            ]),
            env: v(&[
                "**/.env",
                "**/.env.*",
                "**/*.env",
                "**/*.ini",
                "**/*.cfg",
                "**/*.yaml",
                "**/*.yml",
                "**/config/**",
                "**/Procfile",
                "**/railway.json",
                "**/railway.toml",
            ]),
        }
    }
}

/// The file as written: every section optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
struct RawConfig {
    registry: RegistryConfig,
    state: StateConfig,
    vcs: VcsConfig,
    clean: CleanConfig,
    caches: CacheConfig,
    categories: Categories,
    database: Option<DatabaseConfig>,
    env: EnvConfig,
    checks: Vec<CheckConfig>,
    verify: VerifySettings,
    restart: Vec<RestartStep>,
    deploy: Option<DeployConfig>,
    notify: Vec<NotifyConfig>,
    watch: WatchConfig,
}

/// The `[env] files` as the engine uses them, each relative to the work tree and written one way
/// (`./.env` is `.env`), or why one cannot be: outside the work tree, a folder (`.env/`), empty,
/// or the same file twice.
fn env_files(files: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out: Vec<PathBuf> = Vec::with_capacity(files.len());
    for f in files {
        let text = f.to_string_lossy();
        // `components()` drops a trailing `/` and every `.` after the first part: look first.
        if text.trim().is_empty() {
            return Err("an empty path names no file".into());
        }
        if text.ends_with('/') {
            return Err(format!(
                "`{text}` ends with `/`, so it names a folder; an env file is a file (`{}`)",
                text.trim_end_matches('/')
            ));
        }
        let clean: PathBuf = f.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect();
        if f.is_absolute()
            || clean.as_os_str().is_empty()
            || clean.components().any(|c| !matches!(c, std::path::Component::Normal(_)))
            || RepoPath::from_fs(Path::new("/w"), &Path::new("/w").join(&clean)).is_err()
        {
            return Err(format!("`{text}` must be a path inside the work tree, relative to it, without `..`"));
        }
        if out.contains(&clean) {
            return Err(format!("`{text}` names `{}` a second time", clean.display()));
        }
        out.push(clean);
    }
    Ok(out)
}

/// `[env]`: the env and config files a full rollback puts back as they were recorded with the
/// target commit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnvConfig {
    /// Files, relative to the work tree. `known-good mark` records their content with the
    /// commit (in the backup store, never in git); `run --full` restores the recorded content;
    /// `assess` lists the keys that differ (names only, never values).
    pub files: Vec<PathBuf>,
}

impl Default for EnvConfig {
    fn default() -> Self {
        Self { files: vec![PathBuf::from(".env")] }
    }
}

/// `[watch]`: `forge-rollback watch`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    /// Seconds between verification rounds.
    pub interval_secs: f64,
    /// Consecutive failed rounds before a rollback.
    pub failures: u32,
    /// The level of the rollback it starts (`None`: the assessment's recommendation).
    pub level: Option<Level>,
    /// Hours a commit must pass every round before it is marked known-good (default: the
    /// registry's `minimum_uptime_hours`, else 24).
    pub promote_after_hours: Option<f64>,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self { interval_secs: 30.0, failures: 3, level: None, promote_after_hours: None }
    }
}

/// A loaded, validated configuration.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    /// The file it came from; `None` when the defaults apply.
    pub source: Option<PathBuf>,
    /// `[registry]`.
    pub registry: RegistryConfig,
    /// `[state]`.
    pub state: StateConfig,
    /// `[vcs]`.
    pub vcs: VcsConfig,
    /// `[clean]`.
    pub clean: CleanConfig,
    /// `[caches]`.
    pub caches: CacheConfig,
    /// `[categories]`.
    pub categories: Categories,
    /// `[database]`.
    pub database: Option<DatabaseConfig>,
    /// `[env]`.
    pub env: EnvConfig,
    /// `[[checks]]`.
    pub checks: Vec<CheckConfig>,
    /// `[verify]`.
    pub verify: VerifySettings,
    /// `[[restart]]`.
    pub restart: Vec<RestartStep>,
    /// `[deploy]`.
    pub deploy: Option<DeployConfig>,
    /// `[[notify]]`.
    pub notify: Vec<NotifyConfig>,
    /// `[watch]`.
    pub watch: WatchConfig,
    #[serde(skip)]
    matchers: Matchers,
}

/// Compiled glob sets.
#[derive(Clone, Debug, Default)]
struct Matchers {
    clean_ignored: GlobSet,
    caches: GlobSet,
    migrations: GlobSet,
    dependencies: GlobSet,
    env: GlobSet,
}

/// What kind of file a changed path is, for `assess`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Application code (anything not in another category).
    Code,
    /// Database migrations.
    Migrations,
    /// Dependency manifests and lock files.
    Dependencies,
    /// Environment and configuration.
    Env,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rfind('\n').map_or(before.chars().count(), |i| before[i + 1..].chars().count()) + 1;
    (line, column)
}

fn build_set(path: &Path, key: &str, globs: &[String]) -> Result<GlobSet, Error> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        let glob = globset::GlobBuilder::new(g).literal_separator(true).build().map_err(|e| Error::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            message: format!("bad glob `{g}`: {}", e.kind()),
        })?;
        b.add(glob);
    }
    b.build().map_err(|e| Error::Invalid { path: path.to_owned(), key: key.to_owned(), message: e.to_string() })
}

impl Default for Config {
    fn default() -> Self {
        Self::from_raw(RawConfig::default(), None).expect("the defaults are valid")
    }
}

impl Config {
    /// Parses configuration text; `source` names it in errors.
    pub fn parse(text: &str, source: Option<&Path>) -> Result<Self, Error> {
        let shown = source.map_or_else(|| PathBuf::from("<config>"), Path::to_path_buf);
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let at = crate::verify::config::error_offset(text, e.message()).or(e.span().map(|s| s.start));
            let (line, column) = at.map_or((1, 1), |at| line_col(text, at));
            Error::Parse { path: shown.clone(), line, column, message: e.message().trim().to_owned() }
        })?;
        Self::from_raw(raw, source.map(Path::to_path_buf))
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
        Self::parse(&text, Some(path))
    }

    /// `explicit` if given, else the first file found in `workdir`, else the defaults.
    pub fn discover(workdir: &Path, explicit: Option<&Path>) -> Result<Self, Error> {
        if let Some(p) = explicit {
            return Self::load(p);
        }
        for candidate in [DEFAULT_PATH, ALT_PATH] {
            let p = workdir.join(candidate);
            if p.is_file() {
                return Self::load(&p);
            }
        }
        Ok(Self::default())
    }

    fn from_raw(mut raw: RawConfig, source: Option<PathBuf>) -> Result<Self, Error> {
        let shown = source.clone().unwrap_or_else(|| PathBuf::from("<defaults>"));
        let invalid = |(key, message): (String, String)| Error::Invalid { path: shown.clone(), key, message };
        if let Some(db) = &raw.database {
            // Its keys are named in full already (`database.url`).
            db.validate().map_err(invalid)?;
        }
        raw.env.files = env_files(&raw.env.files).map_err(|m| invalid(("env.files".into(), m)))?;
        crate::verify::config::validate(&raw.checks, &raw.verify, raw.database.is_some()).map_err(invalid)?;
        let check_names: Vec<&str> = raw.checks.iter().map(|c| c.name.as_str()).collect();
        crate::restart::validate(&raw.restart, &check_names).map_err(invalid)?;
        if let Some(d) = &raw.deploy {
            // Its keys are named in full already (`deploy.remote`).
            d.validate().map_err(invalid)?;
        }
        crate::notify::validate(&raw.notify).map_err(invalid)?;
        if !(crate::verify::config::valid_secs(raw.vcs.fetch_timeout_secs)
            && raw.vcs.fetch_timeout_secs <= crate::verify::config::MAX_SECS)
        {
            return Err(invalid((
                "vcs.fetch_timeout_secs".into(),
                format!("must be more than 0 and at most a day (got {})", raw.vcs.fetch_timeout_secs),
            )));
        }
        if !(raw.watch.interval_secs > 0.0 && raw.watch.interval_secs.is_finite()) {
            return Err(invalid(("watch.interval_secs".into(), "must be a positive number of seconds".into())));
        }
        if raw.watch.failures == 0 {
            return Err(invalid(("watch.failures".into(), "must be at least 1".into())));
        }
        if raw.watch.promote_after_hours.is_some_and(|h| !(h >= 0.0 && h.is_finite())) {
            return Err(invalid(("watch.promote_after_hours".into(), "must be zero or more hours".into())));
        }
        if raw.registry.path.as_os_str().is_empty() {
            return Err(Error::Invalid {
                path: shown,
                key: "registry.path".into(),
                message: "must not be empty".into(),
            });
        }
        if let Some(dir) = &raw.state.dir
            && dir.as_os_str().is_empty()
        {
            return Err(Error::Invalid { path: shown, key: "state.dir".into(), message: "must not be empty".into() });
        }
        for name in &raw.caches.skip_dirs {
            if name.is_empty() || name.contains('/') {
                return Err(Error::Invalid {
                    path: shown,
                    key: "caches.skip_dirs".into(),
                    message: format!("`{name}` must be a single folder name"),
                });
            }
        }
        if let Some(g) = raw.caches.globs.iter().find(|g| matches_nearly_everything(g)) {
            return Err(Error::Invalid {
                path: shown,
                key: "caches.globs".into(),
                message: format!(
                    "`{g}` names no file or folder (every part of it is wildcards or dots), so it matches nearly everything; caches are deleted without a snapshot: name them (`**/__pycache__`, `**/*.pyc`, `build/cache`)"
                ),
            });
        }
        let matchers = Matchers {
            clean_ignored: build_set(&shown, "clean.ignored", &raw.clean.ignored)?,
            caches: build_set(&shown, "caches.globs", &raw.caches.globs)?,
            migrations: build_set(&shown, "categories.migrations", &raw.categories.migrations)?,
            dependencies: build_set(&shown, "categories.dependencies", &raw.categories.dependencies)?,
            env: build_set(&shown, "categories.env", &raw.categories.env)?,
        };
        let mut verify = raw.verify;
        verify.secrets = secrets::of(raw.database.as_ref(), raw.deploy.as_ref(), &raw.notify);
        Ok(Self {
            source,
            registry: raw.registry,
            state: raw.state,
            vcs: raw.vcs,
            clean: raw.clean,
            caches: raw.caches,
            categories: raw.categories,
            database: raw.database,
            env: raw.env,
            checks: raw.checks,
            verify,
            restart: raw.restart,
            deploy: raw.deploy,
            notify: raw.notify,
            watch: raw.watch,
            matchers,
        })
    }

    /// The category of a changed path. Migrations win over env, env over dependencies.
    pub fn categorize(&self, path: &RepoPath) -> Category {
        let p = path.as_path();
        if self.matchers.migrations.is_match(p) {
            Category::Migrations
        } else if self.matchers.dependencies.is_match(p) {
            Category::Dependencies
        } else if self.matchers.env.is_match(p) {
            Category::Env
        } else {
            Category::Code
        }
    }

    /// Whether an ignored path is configured to be snapshotted and removed.
    pub fn clean_ignored(&self, path: &RepoPath) -> bool {
        self.matchers.clean_ignored.is_match(path.as_path())
    }

    /// Whether a path is a cache to clear.
    pub fn is_cache(&self, path: &RepoPath) -> bool {
        self.matchers.caches.is_match(path.as_path())
    }

    /// The registry file's absolute path.
    pub fn registry_path(&self, workdir: &Path) -> PathBuf {
        workdir.join(&self.registry.path)
    }
}

/// The configuration text `init` writes: [`DEFAULT_TOML`], or a preset (`forge`: the
/// runbook's service checks added).
pub fn preset(name: Option<&str>) -> Result<String, crate::Error> {
    match name {
        None => Ok(DEFAULT_TOML.to_owned()),
        Some("forge") => Ok(format!("{DEFAULT_TOML}{FORGE_CHECKS_TOML}")),
        Some(other) => {
            Err(crate::Error::usage(format!("unknown preset `{other}`"), Some("the presets are: forge".into())))
        }
    }
}

/// The `forge` preset's additions: the runbook's post-rollback checklist as checks.
pub const FORGE_CHECKS_TOML: &str = r#"
# ---- The runbook's post-rollback checklist, as checks (`forge-rollback verify` runs them,
# ---- concurrently; `run` runs them after every rollback). Adjust hosts and ports.

[verify]
# Per-check timeout when a check sets none, in seconds.
timeout_secs = 10
# After a rollback whose checks fail: "stop" (status verification_failed, exit 6) or "undo"
# (put the pre-rollback state back at once).
on_failure = "stop"

# Service health: FastAPI responds at `/` with a healthy status.
[[checks]]
name = "fastapi"
kind = "http"
url = "http://127.0.0.1:8000/"
expect_status = 200
body_contains = "healthy"
retries = 2

# Service health: Flask responds at `/health`.
[[checks]]
name = "flask"
kind = "http"
url = "http://127.0.0.1:5000/health"
expect_status = 200

# Service health: the Gradio interface loads.
[[checks]]
name = "gradio"
kind = "http"
url = "http://127.0.0.1:7860/"
expect_status = 200

# Service health: WebSocket connections work.
[[checks]]
name = "websocket"
kind = "websocket"
url = "ws://127.0.0.1:8000/ws/health"

# Authentication: login, a JWT, and a protected endpoint that requires it. The check logs in
# with a dedicated account, so it leaves no rows behind: create the account once, e.g.
#   curl -X POST http://127.0.0.1:8000/register -H 'Content-Type: application/json' \
#        -d '{"username": "forge-check", "password": "..."}'
# and export its credentials where forge-rollback runs (FORGE_CHECK_USER, FORGE_CHECK_PASSWORD).
# To also check registration, add a `register` step with a fresh user
# (`vars = { new_user = "forge-check-{{random}}" }`) and a `[[checks.teardown]]` step that
# deletes it (e.g. `DELETE /users/me` with its token): teardown steps always run, even after a
# failing step. Without a teardown every round adds a user (2,880 a day at a 30 s interval).
[[checks]]
name = "auth"
kind = "flow"
base_url = "http://127.0.0.1:8000"
timeout_secs = 20
vars_env = { user = "FORGE_CHECK_USER", password = "FORGE_CHECK_PASSWORD" }

[[checks.steps]]
name = "log in"
method = "POST"
url = "/token"
form = { username = "{{user}}", password = "{{password}}" }
capture = { token = "/access_token" }
expect_status = 200

[[checks.steps]]
name = "protected with the token"
url = "/protected"
headers = { Authorization = "Bearer {{token}}" }
expect_status = 200

[[checks.steps]]
name = "protected without a token"
url = "/protected"
expect_status = 401
"#;

/// Writes configuration text to `path` (refusing to overwrite unless `force`).
pub fn write_text(path: &Path, text: &str, force: bool) -> Result<(), crate::Error> {
    if path.exists() && !force {
        return Err(Error::Exists { path: path.to_owned() }.into());
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| crate::fsutil::IoError::new("create folder", parent, e))?;
    }
    // The config is meant to be committed: ordinary permissions, not the private state mode.
    crate::fsutil::atomic_write_mode(path, text.as_bytes(), 0o644)?;
    Ok(())
}

#[cfg(test)]
mod tests;
