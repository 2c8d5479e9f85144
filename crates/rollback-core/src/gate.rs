//! `gate`: whether a commit is marked known bad in the registry, for CI and git hooks, so that
//! a release that was rolled back is not deployed straight back. In a work tree through
//! [`crate::Rollback::gate_at`]; in a bare repository (a git server's `pre-receive` or `update`
//! hook, where a push that would deploy is still refusable) through [`gate_bare`].

use std::path::{Path, PathBuf};

use crate::config::{ALT_PATH, Config, DEFAULT_PATH};
use crate::error::{Error, Result};
use crate::paths::RepoPath;
use crate::registry::Registry;
use crate::vcs::CommitId;
use crate::vcs::git2::BareRepo;

/// What [`crate::Rollback::gate`] or [`gate_bare`] found.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct Gate {
    /// The commit asked about.
    pub commit: CommitId,
    /// It is marked known bad: it must not be deployed again.
    pub known_bad: bool,
    /// Its registry entry, if it has one.
    pub entry: Option<crate::registry::Entry>,
    /// The registry file exists. Without one nothing is marked, and every commit passes: a
    /// front-end says so, as a misspelt `registry` path looks just the same.
    pub registry_found: bool,
}

impl Gate {
    /// What `reg` says of `commit`: the bad entry when it has one (a merged registry can list
    /// a commit twice).
    pub(crate) fn of(reg: &Registry, commit: CommitId, registry_found: bool) -> Self {
        let entry = reg.deciding(&commit).cloned();
        Self { commit, known_bad: entry.as_ref().is_some_and(|e| e.known_bad), entry, registry_found }
    }
}

/// [`gate_bare`]'s answer, and where it looked for the registry, for the note a front-end
/// gives when there is none (`` `rollback/known_good.json` of main (1a2b3c4) ``).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct BareGate {
    /// What the registry says of the commit.
    pub gate: Gate,
    /// Where the registry was looked for: its path, and the commit read.
    pub registry: String,
}

/// `--registry-at REF` named a commit without the registry: bad usage, not an empty registry
/// that passes everything.
pub(crate) fn no_registry(holder: &CommitId, at: &str, rel: &RepoPath) -> Error {
    Error::usage(
        format!("commit {} ({at}) has no registry at `{rel}`", holder.short()),
        Some(
            "name the branch the registry is committed on (`git fetch origin main`, then `--registry-at FETCH_HEAD`)"
                .into(),
        ),
    )
}

/// The gate in a bare repository (or any repository, read as one: only its history). There is
/// no work tree, so the registry is read as the commit `at` holds it, by default HEAD (the
/// default branch, where bad marks are committed), and so is the configuration that says where
/// the registry is (`rollback/config/rollback.toml`, then `forge-rollback.toml`), unless
/// `config` names a file. In a `pre-receive` hook the commit asked about is the one being
/// pushed, still in git's quarantine: [`BareRepo::open`] reads it there.
///
/// A repository with no commit yet (its first push) and a default branch without a registry
/// pass, with `registry_found` false; an `at` without one is bad usage, as in a work tree, and
/// so is an unborn HEAD beside other branches.
pub fn gate_bare(dir: &Path, config: Option<&Path>, rev: &str, at: Option<&str>) -> Result<BareGate> {
    let repo = BareRepo::open(dir)?;
    let commit = repo.resolve(rev)?;
    let holder = match at {
        Some(at) => Some((repo.resolve(at)?, at.to_owned())),
        None => repo.head()?.map(|(c, branch)| (c, branch.unwrap_or_else(|| "HEAD".to_owned()))),
    };
    let config = match (config, &holder) {
        (Some(path), _) => Config::load(path)?,
        (None, Some((c, name))) => committed_config(&repo, c, name)?,
        (None, None) => Config::default(),
    };
    let rel = registry_in_repository(&config)?;
    let Some((holder, name)) = holder else {
        // HEAD unborn beside branches (`master` where every push goes to `main`): reading no
        // registry would let every commit through.
        if repo.has_refs()? {
            return Err(Error::usage(
                "HEAD of this repository names a branch with no commit, though it has others: which one holds the registry is not known",
                Some("name it with `--registry-at main` (the branch bad marks are committed on), or point HEAD at it: `git symbolic-ref HEAD refs/heads/main`".into()),
            ));
        }
        let gate = Gate { commit, known_bad: false, entry: None, registry_found: false };
        return Ok(BareGate { gate, registry: format!("`{rel}`: the repository has no commit on HEAD yet") });
    };
    let shown = format!("`{rel}` of {name} ({})", holder.short());
    let Some(bytes) = repo.read_file_at(&holder, &rel)? else {
        if let Some(at) = at {
            return Err(no_registry(&holder, at, &rel));
        }
        return Ok(BareGate {
            gate: Gate { commit, known_bad: false, entry: None, registry_found: false },
            registry: shown,
        });
    };
    let reg = Registry::parse(&bytes, &PathBuf::from(format!("{name}:{rel}")))?;
    Ok(BareGate { gate: Gate::of(&reg, commit, true), registry: shown })
}

/// The configuration committed in `commit` (the defaults when it has none).
fn committed_config(repo: &BareRepo, commit: &CommitId, name: &str) -> Result<Config> {
    for candidate in [DEFAULT_PATH, ALT_PATH] {
        let rel = RepoPath::new(candidate.as_bytes().to_vec()).expect("a plain relative path");
        if let Some(bytes) = repo.read_file_at(commit, &rel)? {
            let text = String::from_utf8(bytes).map_err(|_| {
                Error::usage(format!("`{candidate}` of {name} ({}) is not UTF-8 text", commit.short()), None)
            })?;
            return Ok(Config::parse(&text, Some(&PathBuf::from(format!("{name}:{candidate}"))))?);
        }
    }
    Ok(Config::default())
}

/// The registry's path inside the repository; an absolute one cannot be read from a commit.
fn registry_in_repository(config: &Config) -> Result<RepoPath> {
    let path = &config.registry.path;
    let inside = if path.is_absolute() { None } else { RepoPath::from_fs(Path::new(""), path).ok() };
    inside.ok_or_else(|| {
        Error::usage(
            format!(
                "the registry `{}` is not a path inside the repository: in a bare repository it is read from a commit",
                path.display()
            ),
            Some("configure `[registry] path` relative to the repository's root, or run `gate` in a work tree".into()),
        )
    })
}
