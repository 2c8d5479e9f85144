//! `gate`: whether a commit is marked known bad in the registry, for CI and git hooks, so that
//! a release that was rolled back is not deployed straight back. In a work tree through
//! [`crate::Rollback::gate_with`]; in a bare repository (a git server's `pre-receive` or
//! `update` hook, where a push that would deploy is still refusable) through [`gate_bare`].
//!
//! A server's hook also guards the registry itself ([`GateArgs::push_ref`]): a push to the
//! default branch that would leave its registry or configuration unreadable is refused, since
//! every later push would then be refused too, the repair included; and a push that repairs
//! one that is unreadable is judged by the registry it brings.

use std::path::{Path, PathBuf};

use crate::config::{ALT_PATH, Config, DEFAULT_PATH};
use crate::error::{Error, Result};
use crate::paths::RepoPath;
use crate::registry::Registry;
use crate::vcs::CommitId;
use crate::vcs::git2::BareRepo;

/// What [`crate::Rollback::gate_with`] or [`gate_bare`] found.
#[derive(Clone, Debug, serde::Serialize)]
#[non_exhaustive]
pub struct Gate {
    /// The commit asked about (the object, when it is not a commit).
    pub commit: CommitId,
    /// What `commit` is: a commit, or a tree or a blob (a tag of one), which no registry can
    /// mark and which passes.
    pub kind: crate::vcs::ObjectKind,
    /// It is marked known bad: it must not be deployed again.
    pub known_bad: bool,
    /// Its registry entry, if it has one.
    pub entry: Option<crate::registry::Entry>,
    /// The registry file exists. Without one nothing is marked, and every commit passes: a
    /// front-end says so, as a misspelt `registry` path looks just the same.
    pub registry_found: bool,
    /// What a front-end says besides the answer (on stderr): the object is not a commit, the
    /// registry read is a push's that repairs the server's, where the registry's path came from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Gate {
    /// What `reg` says of `commit`: the bad entry when it has one (a merged registry can list
    /// a commit twice).
    pub(crate) fn of(reg: &Registry, commit: CommitId, registry_found: bool) -> Self {
        let entry = reg.deciding(&commit).cloned();
        Self {
            commit,
            kind: crate::vcs::ObjectKind::Commit,
            known_bad: entry.as_ref().is_some_and(|e| e.known_bad),
            entry,
            registry_found,
            notes: Vec::new(),
        }
    }

    /// A commit no registry marks (there is none).
    fn unmarked(commit: CommitId) -> Self {
        Self {
            commit,
            kind: crate::vcs::ObjectKind::Commit,
            known_bad: false,
            entry: None,
            registry_found: false,
            notes: Vec::new(),
        }
    }
}

/// How `gate` is asked, besides the revision.
#[derive(Clone, Copy, Debug, Default)]
pub struct GateArgs<'a> {
    /// Read the registry as this commit holds it (`--registry-at`), and the configuration that
    /// says where it is, unless `config` names one.
    pub registry_at: Option<&'a str>,
    /// The ref a `pre-receive` hook is updating to the revision (`--ref refs/heads/main`).
    /// When it is the branch HEAD names, the configuration and registry the revision holds
    /// must load (else the push is refused), and they judge the push when HEAD's do not load.
    pub push_ref: Option<&'a str>,
    /// The configuration file given on the command line (`--config`).
    pub config: Option<&'a Path>,
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

/// Whether git is running the caller as a hook of a push it is receiving: the pushed objects
/// are then in a quarantine folder only a repository opened with git's environment sees.
pub fn in_push_quarantine() -> bool {
    ["GIT_QUARANTINE_PATH", "GIT_OBJECT_DIRECTORY", "GIT_ALTERNATE_OBJECT_DIRECTORIES"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()))
}

/// `--registry-at REF` named a commit without the registry: bad usage, not an empty registry
/// that passes everything. `origin` says which configuration gave the path.
pub(crate) fn no_registry(holder: &CommitId, at: &str, rel: &RepoPath, origin: &str) -> Error {
    Error::usage(
        format!("commit {} ({at}) has no registry at `{rel}` (the path {origin} gives)", holder.short()),
        Some(
            "name the branch the registry is committed on (`git fetch origin main`, then `--registry-at FETCH_HEAD`)"
                .into(),
        ),
    )
}

/// `rev` names an object, but not a commit (a tag of a tree or a blob, such as git.git's
/// `junio-gpg-pub`): nothing a registry can mark, so it passes, said in a note. Any other
/// failure to resolve is `err`.
pub(crate) fn non_commit(repo: Option<&BareRepo>, rev: &str, err: Error) -> Result<Gate> {
    let found = match (&err, repo) {
        (Error::Vcs(crate::vcs::Error::UnknownRevision { .. }), Some(repo)) => repo.non_commit(rev),
        _ => None,
    };
    let Some((id, kind)) = found else { return Err(err) };
    let note = format!("{id} is a {kind}, not a commit: nothing to gate");
    Ok(Gate { commit: id, kind, known_bad: false, entry: None, registry_found: false, notes: vec![note] })
}

/// Reads the file at a path of a commit (`None`: no file there).
pub(crate) type ReadAt<'a> = dyn Fn(&CommitId, &RepoPath) -> Result<Option<Vec<u8>>> + 'a;

/// The configuration committed in `commit` (read as `name`) and the file it is in; `None`
/// when it has none.
pub(crate) fn committed_config(read: &ReadAt<'_>, commit: &CommitId, name: &str) -> Result<Option<(Config, String)>> {
    for candidate in [DEFAULT_PATH, ALT_PATH] {
        let rel = RepoPath::new(candidate.as_bytes().to_vec()).expect("a plain relative path");
        if let Some(bytes) = read(commit, &rel)? {
            let text = String::from_utf8(bytes).map_err(|_| {
                Error::usage(format!("`{candidate}` of {name} ({}) is not UTF-8 text", commit.short()), None)
            })?;
            let config = Config::parse(&text, Some(&PathBuf::from(format!("{name}:{candidate}"))))?;
            return Ok(Some((config, format!("`{candidate}` of {name}"))));
        }
    }
    Ok(None)
}

/// The registry's path inside the repository; an absolute one cannot be read from a commit.
pub(crate) fn registry_in_repository(config: &Config) -> Result<RepoPath> {
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

/// A registry as a commit holds it: the registry (`None`: no file there) and where it was
/// looked for, for notes (`` `rollback/config/known-good-commits.json` of main (1a2b3c4) ``).
pub(crate) struct Copy {
    pub(crate) registry: Option<Registry>,
    rel: RepoPath,
    pub(crate) shown: String,
    /// Which configuration gave the path.
    origin: String,
}

/// The registry `commit` (read as `name`) holds, where its own configuration says (or
/// `config`'s, when one was given).
fn committed_copy(read: &ReadAt<'_>, commit: &CommitId, name: &str, config: Option<&Config>) -> Result<Copy> {
    let (rel, origin) = match config {
        Some(c) => (registry_in_repository(c)?, "the configuration given (`--config`)".to_owned()),
        None => match committed_config(read, commit, name)? {
            Some((c, file)) => (registry_in_repository(&c)?, file),
            None => {
                (registry_in_repository(&Config::default())?, format!("the default configuration ({name} has none)"))
            }
        },
    };
    let shown = format!("`{rel}` of {name} ({})", commit.short());
    let registry = match read(commit, &rel)? {
        Some(bytes) => Some(Registry::parse(&bytes, &PathBuf::from(format!("{name}:{rel}")))?),
        None => None,
    };
    Ok(Copy { registry, rel, shown, origin })
}

/// A configuration or registry that is there but does not load (not a failure to read the
/// repository): what locks a server's hook.
pub(crate) fn unloadable(e: &Error) -> bool {
    !matches!(e, Error::Vcs(_) | Error::Io(_) | Error::Registry(crate::registry::Error::Io(_)))
}

/// The short name of the branch HEAD names when `push_ref` is that branch.
fn pushes_head_branch(repo: &BareRepo, push_ref: Option<&str>) -> Option<String> {
    let pushed = push_ref?;
    let head = repo.head_branch()?;
    let short = head.strip_prefix("refs/heads/").unwrap_or(&head);
    (pushed == head || pushed == short).then(|| short.to_owned())
}

/// A push moving the branch HEAD names (`push_ref`) to `tip`: the registry the tip holds,
/// which must load, else the push is refused (every later push would be refused, the repair
/// included). `None` for a push to another branch.
pub(crate) fn pushed_copy(
    repo: &BareRepo,
    tip: &CommitId,
    push_ref: Option<&str>,
    config: Option<&Config>,
) -> Result<Option<(String, Copy)>> {
    let Some(branch) = pushes_head_branch(repo, push_ref) else { return Ok(None) };
    let read = |c: &CommitId, p: &RepoPath| repo.read_file_at(c, p).map_err(Error::from);
    let name = format!("the pushed {branch}");
    match committed_copy(&read, tip, &name, config) {
        Ok(copy) => Ok(Some((branch, copy))),
        Err(e) if unloadable(&e) => Err(Error::refused(
            format!("this push leaves the registry or configuration of {branch} unreadable: {e}"),
            Some(format!(
                "fix the file in a new commit and push again: with it on {branch}, `forge-rollback gate` in this server's hook could judge no push any more, its repair included"
            ).into()),
        )),
        Err(e) => Err(e),
    }
}

/// HEAD's registry or configuration (`e`) does not load: every gate on this server fails
/// until it is repaired. Said so, with the way out.
pub(crate) fn unreadable_on_server(e: &Error, branch: &str) -> Error {
    Error::usage(
        format!("the registry or configuration on {branch} (this server's HEAD) cannot be read, so no push can be judged: {e}"),
        Some(format!(
            "push a commit to {branch} that repairs the file: a pre-receive hook that passes `--ref \"$ref\"` to `gate` (docs/cli.md) accepts it; with an older hook, an administrator fixes it on the server (`git update-ref refs/heads/{branch} <a commit with the file readable>`)"
        ).into()),
    )
}

/// The gate in a bare repository (or any repository, read as one: only its history). There is
/// no work tree, so the registry is read as the commit `registry_at` holds it, by default HEAD
/// (the default branch, where bad marks are committed), and so is the configuration that says
/// where the registry is (`rollback/config/rollback.toml`, then `forge-rollback.toml`), unless
/// `config` names a file. In a `pre-receive` hook the commit asked about is the one being
/// pushed, still in git's quarantine: [`BareRepo::open`] reads it there.
///
/// A repository with no commit yet (its first push) and a default branch without a registry
/// pass, with `registry_found` false; a `registry_at` without one is bad usage, as in a work
/// tree, and so is an unborn HEAD beside other branches. With `push_ref`, see [`GateArgs`].
pub fn gate_bare(dir: &Path, rev: &str, args: GateArgs<'_>) -> Result<BareGate> {
    let repo = BareRepo::open(dir)?;
    let commit = match repo.resolve(rev) {
        Ok(c) => c,
        Err(e) => return non_commit(Some(&repo), rev, e.into()).map(|gate| BareGate { gate, registry: String::new() }),
    };
    let at = args.registry_at;
    let holder = match at {
        Some(at) => Some((repo.resolve(at)?, at.to_owned())),
        None => repo.head()?.map(|(c, branch)| (c, branch.unwrap_or_else(|| "HEAD".to_owned()))),
    };
    let explicit = args.config.map(Config::load).transpose()?;
    let pushed = pushed_copy(&repo, &commit, args.push_ref, explicit.as_ref())?;
    let Some((holder, name)) = holder else {
        // HEAD unborn beside branches (`master` where every push goes to `main`): reading no
        // registry would let every commit through.
        if repo.has_refs()? {
            return Err(Error::usage(
                "HEAD of this repository names a branch with no commit, though it has others: which one holds the registry is not known",
                Some("name it with `--registry-at main` (the branch bad marks are committed on), or point HEAD at it: `git symbolic-ref HEAD refs/heads/main`".into()),
            ));
        }
        let rel = registry_in_repository(explicit.as_ref().unwrap_or(&Config::default()))?;
        return Ok(BareGate {
            gate: Gate::unmarked(commit),
            registry: format!("`{rel}`: the repository has no commit on HEAD yet"),
        });
    };
    let read = |c: &CommitId, p: &RepoPath| repo.read_file_at(c, p).map_err(Error::from);
    let mut notes = Vec::new();
    let copy = match (committed_copy(&read, &holder, &name, explicit.as_ref()), pushed) {
        (Ok(copy), _) => copy,
        // The push repairs the default branch's registry or configuration: judged by the one
        // it brings, which loads (else it was refused above).
        (Err(e), Some((branch, copy))) if at.is_none() && unloadable(&e) => {
            notes.push(format!(
                "the registry or configuration on {branch} cannot be read ({e}); this push repairs it, and is judged by {}",
                copy.shown
            ));
            copy
        }
        (Err(e), _) if at.is_none() && unloadable(&e) => return Err(unreadable_on_server(&e, &name)),
        (Err(e), _) => return Err(e),
    };
    let Some(reg) = copy.registry else {
        if let Some(at) = at {
            return Err(no_registry(&holder, at, &copy.rel, &copy.origin));
        }
        let mut gate = Gate::unmarked(commit);
        gate.notes = notes;
        return Ok(BareGate { gate, registry: copy.shown });
    };
    let mut gate = Gate::of(&reg, commit, true);
    gate.notes = notes;
    Ok(BareGate { gate, registry: copy.shown })
}
