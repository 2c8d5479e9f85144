//! git command-line backend: [`GitCliBackend`].
//!
//! Every call runs `git -C <workdir> -c core.quotepath=off ...` with a clean environment: all
//! inherited `GIT_*` variables are removed (a `GIT_DIR` or `GIT_INDEX_FILE` exported by a hook
//! must not redirect us), then `GIT_TERMINAL_PROMPT=0`, `LC_ALL=C` and
//! `GIT_LITERAL_PATHSPECS=1` are set. Output is always read in a `-z` format, so paths are raw
//! bytes and never quoted.
//!
//! Opened with a libgit2 reader ([`GitCliBackend::with_reader`], what [`super::open`] and the
//! engine do), the queries that only read objects and refs (HEAD, revisions, commits, ancestry,
//! tree diffs, trees, refs) run in process through it, and so does the check for flagged index
//! entries: a `git` process costs a fork and an exec, and under load a scheduling wait, for an
//! answer libgit2 reads in microseconds. The work-tree scan (`status`), the checkout and every
//! write stay with `git` itself (its status scan and checkout are multi-threaded). A revision
//! libgit2 does not know is asked of `git` too, so git's revision syntax keeps the last word.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::command::Git;
use super::git2::{Git2Backend, check_full_ref, sort_status};
use super::{
    Change, ChangeKind, CommitId, CommitInfo, Error, FlaggedEntry, Head, MissingBlob, Result, StagedBlob, StatusEntry,
    StatusKind, VcsBackend,
};
use crate::fsutil::IoContext;
use crate::paths::RepoPath;

mod hooks;
mod partial;
mod reset;

/// `git log` format of one commit: id, summary, author, committer time, NUL-separated.
const LOG_FORMAT: &str = "--format=%H%x00%s%x00%an%x00%ct";

/// Where the tool's own refs live: written in process when a reader is open.
const OWN_REFS: &str = "refs/forge-rollback/";

/// git command-line backend.
pub struct GitCliBackend {
    workdir: PathBuf,
    git_dir: PathBuf,
    worktree_git_dir: PathBuf,
    /// In-process reads of objects, refs and index flags (see the module docs).
    reader: Option<Git2Backend>,
    /// Longest the fetch of a partial clone's missing blobs may take (`[vcs] fetch_timeout_secs`).
    fetch_limit: std::time::Duration,
}

/// The default of `[vcs] fetch_timeout_secs`.
pub const DEFAULT_FETCH_TIMEOUT_SECS: f64 = 120.0;

fn default_fetch_limit() -> std::time::Duration {
    std::time::Duration::from_secs_f64(DEFAULT_FETCH_TIMEOUT_SECS)
}

fn parse_err(command: &str, detail: impl Into<String>) -> Error {
    Error::Parse { command: command.to_owned(), detail: detail.into() }
}

/// The mode of a gitlink (submodule) entry in `--raw` output.
const GITLINK_MODE: &str = "160000";

/// A `--raw -z` listing (`diff-tree`, `diff-index`): each change's metadata
/// (`:src-mode dst-mode src-id dst-id status`, as five fields) and its path's bytes.
fn raw_changes<'a>(command: &str, out: &'a [u8]) -> Result<Vec<([&'a str; 5], &'a [u8])>> {
    let recs: Vec<&[u8]> = records(out).collect();
    if !recs.len().is_multiple_of(2) {
        return Err(parse_err(command, "odd number of fields"));
    }
    recs.chunks(2)
        .map(|pair| {
            let bad = || parse_err(command, format!("bad record `{}`", String::from_utf8_lossy(pair[0])));
            let meta = std::str::from_utf8(pair[0]).map_err(|_| bad())?;
            let fields: Vec<&str> = meta.trim_start_matches(':').split(' ').collect();
            Ok((<[&str; 5]>::try_from(fields).map_err(|_| bad())?, pair[1]))
        })
        .collect()
}

/// Output without its final newline.
fn one_line(mut out: Vec<u8>) -> Vec<u8> {
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    out
}

fn parse_id(command: &str, raw: &[u8]) -> Result<CommitId> {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|s| CommitId::new(s.trim()))
        .ok_or_else(|| parse_err(command, format!("`{}` is not an object id", String::from_utf8_lossy(raw))))
}

fn parse_path(command: &str, raw: &[u8]) -> Result<RepoPath> {
    RepoPath::new(raw.to_vec()).map_err(|e| parse_err(command, format!("invalid path: {e}")))
}

/// NUL-terminated records (the last terminator optional).
fn records(out: &[u8]) -> impl Iterator<Item = &[u8]> {
    let out = out.strip_suffix(b"\0").unwrap_or(out);
    out.split(|b| *b == 0).filter(move |_| !out.is_empty())
}

fn canonical(path: &Path) -> Result<PathBuf> {
    Ok(path.canonicalize().at("resolve", path)?)
}

fn change_kind(c: u8) -> Option<ChangeKind> {
    match c {
        b'A' | b'C' => Some(ChangeKind::Added),
        b'D' => Some(ChangeKind::Deleted),
        b'M' | b'R' | b'U' => Some(ChangeKind::Modified),
        b'T' => Some(ChangeKind::TypeChanged),
        _ => None,
    }
}

/// One `ls-tree` record: `(mode, type, oid, path)`.
type RawEntry<'o> = (u32, &'o [u8], &'o [u8], &'o [u8]);

/// Splits one `ls-tree` record.
fn split_entry<'o>(command: &str, rec: &'o [u8]) -> Result<RawEntry<'o>> {
    let bad = || parse_err(command, format!("bad record `{}`", String::from_utf8_lossy(rec)));
    let tab = rec.iter().position(|b| *b == b'\t').ok_or_else(bad)?;
    let (meta, path) = (&rec[..tab], &rec[tab + 1..]);
    let mut fields = meta.split(|b| *b == b' ');
    let mode = fields.next().ok_or_else(bad)?;
    let mode = u32::from_str_radix(std::str::from_utf8(mode).map_err(|_| bad())?, 8).map_err(|_| bad())?;
    let (second, third) = (fields.next().ok_or_else(bad)?, fields.next().ok_or_else(bad)?);
    Ok((mode, second, third, path))
}

/// Parses `git status --porcelain=v2 -z` output (renames off), sorted.
fn parse_status(out: &[u8]) -> Result<Vec<StatusEntry>> {
    let bad = |rec: &[u8]| parse_err("status", format!("bad record `{}`", String::from_utf8_lossy(rec)));
    let mut entries = Vec::new();
    let mut recs = records(out);
    while let Some(rec) = recs.next() {
        let (tag, body) = (rec.first().copied(), rec.get(2..).unwrap_or_default());
        let (path, kind) = match tag {
            Some(b'1' | b'2' | b'u') => {
                let fields = match tag {
                    Some(b'1') => 7,
                    Some(b'2') => 8,
                    _ => 9,
                };
                let mut parts = body.splitn(fields + 1, |b| *b == b' ');
                let xy = parts.next().filter(|xy| xy.len() == 2).ok_or_else(|| bad(rec))?;
                let path = parts.nth(fields - 1).ok_or_else(|| bad(rec))?;
                if tag == Some(b'2') {
                    recs.next(); // the original path of a rename or copy
                }
                let kind = if tag == Some(b'u') {
                    StatusKind::Tracked { staged: None, unstaged: Some(ChangeKind::Modified) }
                } else {
                    StatusKind::Tracked { staged: change_kind(xy[0]), unstaged: change_kind(xy[1]) }
                };
                (path, kind)
            }
            Some(b'?') => (body, StatusKind::Untracked),
            Some(b'!') => (body, StatusKind::Ignored),
            Some(b'#') => continue,
            _ => return Err(bad(rec)),
        };
        let path = path.strip_suffix(b"/").unwrap_or(path);
        if !matches!(kind, StatusKind::Tracked { .. }) && super::names_git_dir(path) {
            continue;
        }
        entries.push(StatusEntry::new(parse_path("status", path)?, kind));
    }
    sort_status(&mut entries);
    Ok(entries)
}

impl GitCliBackend {
    /// Opens the repository containing `dir`.
    pub fn open(dir: &Path) -> Result<Self> {
        let not_repo = |e: Error| match e {
            Error::GitNotFound(_) => e,
            Error::Command { stderr, .. } if stderr.contains("detected dubious ownership") => super::not_owned(dir),
            other => Error::NotARepository { path: dir.to_path_buf(), source: Some(Box::new(other)) },
        };
        let query = |what: &str| -> Result<PathBuf> {
            let out = Git::new(dir).args(["rev-parse", "--path-format=absolute", what]).run().map_err(not_repo)?;
            Ok(PathBuf::from(OsString::from_vec(one_line(out))))
        };
        let bare = Git::new(dir).args(["rev-parse", "--is-bare-repository"]).run().map_err(not_repo)?;
        let git_dir = canonical(&query("--git-common-dir")?)?;
        if one_line(bare) == b"true" {
            return Err(Error::BareRepository { path: git_dir });
        }
        let worktree_git_dir = canonical(&query("--absolute-git-dir")?)?;
        let workdir = canonical(&query("--show-toplevel")?)?;
        Ok(Self { workdir, git_dir, worktree_git_dir, reader: None, fetch_limit: default_fetch_limit() })
    }

    /// The command-line backend over the repository `reader` has open, reading objects, refs
    /// and index flags through it (see the module docs). No `git` process runs to open it.
    pub fn with_reader(reader: Git2Backend) -> Self {
        Self {
            workdir: reader.workdir().to_path_buf(),
            git_dir: reader.git_dir().to_path_buf(),
            worktree_git_dir: reader.index_path().parent().map(Path::to_path_buf).unwrap_or_default(),
            reader: Some(reader),
            fetch_limit: default_fetch_limit(),
        }
    }

    /// The longest the fetch of a partial clone's missing blobs may take before it is stopped
    /// and the run refused (default [`DEFAULT_FETCH_TIMEOUT_SECS`]).
    #[must_use]
    pub fn with_fetch_timeout(mut self, limit: std::time::Duration) -> Self {
        self.fetch_limit = limit;
        self
    }

    /// Opens the repository containing `dir` with a libgit2 reader, or without one when
    /// libgit2 cannot open it (a repository format it does not know): `git` answers all.
    pub fn open_with_reader(dir: &Path) -> Result<Self> {
        match Git2Backend::open(dir) {
            Ok(reader) => Ok(Self::with_reader(reader)),
            // What `git` would refuse too: said as libgit2 found it, even without `git`.
            Err(e @ (Error::NotOwned(_) | Error::BareRepository { .. })) => Err(e),
            Err(_) => Self::open(dir),
        }
    }

    fn fetch_limit(&self) -> std::time::Duration {
        self.fetch_limit
    }

    fn git(&self) -> Git<'_> {
        Git::new(&self.workdir)
    }

    /// `rev-parse -q --verify <rev>^{commit}`: `None` if it names no commit.
    fn peel_commit(&self, rev: &str) -> Result<Option<CommitId>> {
        self.git()
            .args(["rev-parse", "-q", "--verify", "--end-of-options", &format!("{rev}^{{commit}}")])
            .run_maybe()?
            .map(|out| parse_id("rev-parse", &out))
            .transpose()
    }

    fn log(&self, args: &[&str]) -> Result<Vec<CommitInfo>> {
        let out = self.git().args(["log", "--no-show-signature", "--no-color", "-z", LOG_FORMAT]).args(args).run()?;
        let fields: Vec<&[u8]> = records(&out).collect();
        if !fields.len().is_multiple_of(4) {
            return Err(parse_err("log", format!("{} fields, not a multiple of 4", fields.len())));
        }
        fields
            .chunks(4)
            .map(|c| {
                let time = std::str::from_utf8(c[3])
                    .ok()
                    .and_then(|t| t.trim().parse().ok())
                    .ok_or_else(|| parse_err("log", "bad commit time"))?;
                Ok(CommitInfo {
                    id: parse_id("log", c[0])?,
                    summary: String::from_utf8_lossy(c[1]).into_owned(),
                    author: String::from_utf8_lossy(c[2]).into_owned(),
                    time,
                })
            })
            .collect()
    }

    /// Contents of blobs, through one `cat-file --batch`.
    fn cat_blobs(&self, oids: &[&CommitId]) -> Result<Vec<Vec<u8>>> {
        if oids.is_empty() {
            return Ok(Vec::new());
        }
        let input: String = oids.iter().flat_map(|o| [o.as_str(), "\n"]).collect();
        let out = self.git().args(["cat-file", "--batch"]).stdin(input.as_bytes()).run()?;
        let mut rest = &out[..];
        let mut blobs = Vec::with_capacity(oids.len());
        for oid in oids {
            let nl = rest.iter().position(|b| *b == b'\n').ok_or_else(|| parse_err("cat-file", "truncated"))?;
            let header = String::from_utf8_lossy(&rest[..nl]).into_owned();
            let mut parts = header.split(' ');
            let (id, kind, size) = (parts.next(), parts.next(), parts.next());
            if id != Some(oid.as_str()) || kind != Some("blob") {
                return Err(parse_err("cat-file", format!("expected blob {oid}, got `{header}`")));
            }
            let size: usize = size.and_then(|s| s.parse().ok()).ok_or_else(|| parse_err("cat-file", "bad size"))?;
            let body = rest.get(nl + 1..nl + 1 + size).ok_or_else(|| parse_err("cat-file", "truncated"))?;
            blobs.push(body.to_vec());
            rest = rest.get(nl + 2 + size..).unwrap_or_default();
        }
        Ok(blobs)
    }

    /// Whether the refs `rev`'s leading name may name (and the object it may abbreviate) lead
    /// to different commits ([`super::RefCandidates`]); asked only after git warned.
    fn names_commits_apart(&self, rev: &str) -> Result<bool> {
        let Some(c) = super::RefCandidates::of(rev) else { return Ok(false) };
        let out = self.git().args(["for-each-ref", "--format=%(refname)%00%(objectname)"]).args(&c.refs).run()?;
        let lines = |out: &[u8]| -> Vec<Vec<u8>> {
            out.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(<[u8]>::to_vec).collect()
        };
        // Patterns also match refs below them (`refs/tags/NAME/x`): only exact names count.
        let mut ids: Vec<String> = lines(&out)
            .iter()
            .filter_map(|l| l.split(|b| *b == 0).collect::<Vec<_>>().get(..2).map(<[&[u8]]>::to_vec))
            .filter(|f| c.refs.iter().any(|r| r.as_bytes() == f[0]))
            .map(|f| String::from_utf8_lossy(f[1]).into_owned())
            .collect();
        if let Some(hex) = c.short_hash.filter(|_| !ids.is_empty()) {
            // The object the name abbreviates, when exactly one has that prefix.
            let all = self.git().args(["rev-parse", &format!("--disambiguate={hex}")]).run_maybe()?.unwrap_or_default();
            if let [only] = &lines(&all)[..] {
                ids.push(String::from_utf8_lossy(only).into_owned());
            }
        }
        let mut commits = Vec::new();
        for id in &ids {
            commits.extend(self.peel_commit(id)?);
        }
        Ok(commits.windows(2).any(|w| w[0] != w[1]))
    }
}

fn reject_option(name: &str) -> Result<()> {
    if name.is_empty() || name.starts_with('-') {
        return Err(Error::UnknownRevision { rev: name.to_owned() });
    }
    Ok(())
}

impl VcsBackend for GitCliBackend {
    fn name(&self) -> &'static str {
        "git-cli"
    }

    fn workdir(&self) -> &Path {
        &self.workdir
    }

    fn git_dir(&self) -> &Path {
        &self.git_dir
    }

    fn index_path(&self) -> PathBuf {
        self.worktree_git_dir.join("index")
    }

    fn head(&self) -> Result<Head> {
        if let Some(r) = &self.reader {
            return r.head();
        }
        let branch = self.git().args(["symbolic-ref", "-q", "HEAD"]).run_maybe()?.map(|out| {
            let full = one_line(out);
            let short = full.strip_prefix(b"refs/heads/").unwrap_or(&full);
            String::from_utf8_lossy(short).into_owned()
        });
        match self.peel_commit("HEAD")? {
            Some(commit) => Ok(Head { commit, branch }),
            None => Err(Error::UnbornBranch { branch: branch.unwrap_or_else(|| "HEAD".to_owned()) }),
        }
    }

    fn resolve(&self, rev: &str) -> Result<CommitId> {
        if let Some(r) = &self.reader {
            match r.resolve(rev) {
                // Syntax libgit2 does not know may still name a commit for git.
                Err(Error::UnknownRevision { .. }) => {}
                other => return other,
            }
        }
        let unknown = || Error::UnknownRevision { rev: rev.to_owned() };
        reject_option(rev)?;
        // First without peeling: `^{commit}` would make git prefer a commit among ambiguous
        // candidates, where libgit2 reports the ambiguity.
        let out = self
            .git()
            .args(["-c", "core.warnAmbiguousRefs=true", "rev-parse", "--verify", "--end-of-options", rev])
            .output()?;
        // Success with "warning: refname '…' is ambiguous": git picked one of several refs
        // (or a ref over a short hash) by its own preference; a rollback does not guess when
        // they lead to different commits.
        let warned = String::from_utf8_lossy(&out.stderr).contains("is ambiguous");
        if !out.status.success() || (warned && self.names_commits_apart(rev)?) {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(if stderr.contains("ambiguous") {
                Error::AmbiguousRevision { rev: rev.to_owned() }
            } else {
                unknown()
            });
        }
        let oid = parse_id("rev-parse", &one_line(out.stdout))?;
        self.peel_commit(oid.as_str())?.ok_or_else(unknown)
    }

    fn commit_info(&self, id: &CommitId) -> Result<CommitInfo> {
        if let Some(r) = &self.reader {
            return r.commit_info(id);
        }
        let mut infos = self.log(&["--no-walk", "--end-of-options", id.as_str()])?;
        if infos.len() != 1 {
            return Err(parse_err("log", format!("{} commits for {id}", infos.len())));
        }
        Ok(infos.remove(0))
    }

    fn is_ancestor(&self, ancestor: &CommitId, descendant: &CommitId) -> Result<bool> {
        if let Some(r) = &self.reader {
            return r.is_ancestor(ancestor, descendant);
        }
        Ok(self
            .git()
            .args(["merge-base", "--is-ancestor", "--end-of-options", ancestor.as_str(), descendant.as_str()])
            .run_maybe()?
            .is_some())
    }

    fn commits_between(&self, from: &CommitId, to: &CommitId, limit: usize) -> Result<Vec<CommitInfo>> {
        if let Some(r) = &self.reader {
            return r.commits_between(from, to, limit);
        }
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.log(&["--date-order", &format!("--max-count={limit}"), "--end-of-options", &format!("{from}..{to}")])
    }

    fn diff(&self, from: &CommitId, to: &CommitId) -> Result<Vec<Change>> {
        if let Some(r) = &self.reader {
            return r.diff(from, to);
        }
        let out = self
            .git()
            .args(["diff-tree", "-r", "-z", "--no-renames", "--raw", "--end-of-options"])
            .args([from.as_str(), to.as_str()])
            .run()?;
        let mut changes = raw_changes("diff-tree", &out)?
            .into_iter()
            .map(|([src_mode, dst_mode, _, _, status], path)| {
                let kind = status
                    .bytes()
                    .next()
                    .and_then(change_kind)
                    .ok_or_else(|| parse_err("diff-tree", format!("status `{status}`")))?;
                let submodule = src_mode == GITLINK_MODE || dst_mode == GITLINK_MODE;
                Ok(Change { path: parse_path("diff-tree", path)?, kind, submodule })
            })
            .collect::<Result<Vec<_>>>()?;
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(changes)
    }

    fn status(&self, include_ignored: bool) -> Result<Vec<StatusEntry>> {
        // `matching`, not `traditional`: with `--untracked-files=all`, `traditional` lists every
        // file of an ignored folder; `matching` lists a folder that an ignore rule matches once,
        // as libgit2 does.
        let ignored = if include_ignored { "--ignored=matching" } else { "--ignored=no" };
        let out = self
            .git()
            .args(["--no-optional-locks", "status", "--porcelain=v2", "-z", "--untracked-files=all", "--no-renames"])
            .arg(ignored)
            .run()?;
        let mut entries = parse_status(&out)?;
        let flagged: Vec<FlaggedEntry> = self.flagged_entries()?.into_iter().map(|f| f.entry).collect();
        super::add_hidden_changes(&mut entries, &flagged);
        Ok(entries)
    }

    fn flagged(&self) -> Result<Vec<FlaggedEntry>> {
        Ok(self.flagged_entries()?.into_iter().map(|f| f.entry).collect())
    }

    fn blob_size_at(&self, commit: &CommitId, path: &RepoPath) -> Result<Option<u64>> {
        match &self.reader {
            Some(r) => r.blob_size_at(commit, path),
            None => Ok(self.read_file_at(commit, path)?.map(|b| b.len() as u64)),
        }
    }

    fn tracked_paths(&self, commit: &CommitId) -> Result<Vec<RepoPath>> {
        if let Some(r) = &self.reader {
            return r.tracked_paths(commit);
        }
        let out = self
            .git()
            .args(["ls-tree", "-r", "-z", "--full-tree", "--name-only", "--end-of-options"])
            .arg(commit.as_str())
            .run()?;
        let mut paths = records(&out).map(|p| parse_path("ls-tree", p)).collect::<Result<Vec<_>>>()?;
        paths.sort();
        Ok(paths)
    }

    fn read_file_at(&self, commit: &CommitId, path: &RepoPath) -> Result<Option<Vec<u8>>> {
        if let Some(r) = &self.reader {
            return match r.read_file_at(commit, path) {
                Err(Error::BlobNotLocal { blob, fetch: None }) => self.fetch_blob(blob).map(Some),
                read => read,
            };
        }
        let out = self
            .git()
            .args(["ls-tree", "-z", "--full-tree", "--end-of-options", commit.as_str()])
            .arg(OsStr::from_bytes(path.as_bytes()))
            .run()?;
        for rec in records(&out) {
            let (_, kind, oid, p) = split_entry("ls-tree", rec)?;
            if p == path.as_bytes() && kind == b"blob" {
                let oid = parse_id("ls-tree", oid)?;
                return Ok(self.cat_blobs(&[&oid])?.pop());
            }
        }
        Ok(None)
    }

    fn checkout_converts(&self, commit: &CommitId, paths: &[&RepoPath]) -> Result<bool> {
        if let Some(r) = &self.reader {
            return r.checkout_converts(commit, paths);
        }
        // One process for the settings, one for the attribute files (the default asks three
        // times, then reads each attribute file that could apply).
        let set = self
            .git()
            .args(["config", "-z", "--get-regexp", r"^core\.(autocrlf|eol|attributesfile)$"])
            .run_maybe()?
            .unwrap_or_default();
        for rec in records(&set) {
            let (key, value) = rec.split_at(rec.iter().position(|b| *b == b'\n').unwrap_or(rec.len()));
            let value = String::from_utf8_lossy(value.strip_prefix(b"\n").unwrap_or(value)).to_ascii_lowercase();
            if key != b"core.autocrlf" || matches!(value.as_str(), "true" | "input" | "yes" | "on" | "1") {
                return Ok(true);
            }
        }
        if self.git_dir().join("info/attributes").exists() {
            return Ok(true);
        }
        let wanted = super::attribute_files_for(paths);
        if wanted.is_empty() {
            return Ok(false);
        }
        let files = self
            .git()
            .args(["ls-tree", "-r", "-z", "--name-only", "--full-tree", "--end-of-options", commit.as_str()])
            .run()?;
        Ok(records(&files).any(|p| wanted.iter().any(|w| w.as_bytes() == p)))
    }

    fn config_value(&self, key: &str) -> Result<Option<String>> {
        // Read in process when libgit2 can (no `git` process on the fast path), as the other
        // reads of settings are.
        if let Some(r) = &self.reader {
            return r.config_value(key);
        }
        let out = self.git().args(["config", "--get", key]).run_maybe()?;
        Ok(out.map(|v| String::from_utf8_lossy(&v).trim().to_owned()))
    }

    fn promisor_remote(&self) -> Result<Option<String>> {
        self.promisor_remote_by_git()
    }

    fn missing_blobs(&self, commit: &CommitId, paths: &[&RepoPath]) -> Result<Vec<MissingBlob>> {
        self.missing_blobs_by_git(commit, paths)
    }

    fn hook_refuses_move(&self, to: &CommitId) -> Result<Option<String>> {
        GitCliBackend::hook_refuses_move(self, to)
    }

    fn fetches_blobs(&self) -> bool {
        true
    }

    fn fetch_blobs(&self, blobs: &[MissingBlob]) -> Result<bool> {
        self.fetch_blobs_by_git(blobs)
    }

    fn fetch_lfs(&self, remote: &str, commit: &CommitId) -> Result<bool> {
        reject_option(remote)?;
        // Within the partial-clone fetch's limit: an LFS server that never answers must not
        // hold the rollback (the run is refused then, nothing changed).
        self.git().args(["lfs", "fetch", remote, commit.as_str()]).limit(self.fetch_limit()).run()?;
        Ok(true)
    }

    fn lfs_smudges(&self, path: &RepoPath, pointer: &[u8]) -> Result<bool> {
        // The filter git's checkout runs, on the same pointer: it alone knows which paths its
        // include and exclude lists leave as pointers. It may download; within the fetch's
        // limit, as above.
        self.git()
            .args(["lfs", "smudge", "--"])
            .arg(path.as_path())
            .stdin(pointer)
            .discard_stdout()
            .limit(self.fetch_limit())
            .run()?;
        Ok(true)
    }

    fn staged_blobs(&self) -> Result<Vec<StagedBlob>> {
        // `diff-index --cached` compares the index with HEAD's tree (the empty tree on an
        // unborn branch) and, unlike `ls-files -s`, skips `git add -N` entries.
        let head = match &self.reader {
            Some(r) => match r.head() {
                Ok(h) => Some(h.commit),
                Err(Error::UnbornBranch { .. }) => None,
                Err(e) => return Err(e),
            },
            None => self.peel_commit("HEAD")?,
        };
        let base = match head {
            Some(c) => c,
            None => parse_id(
                "hash-object",
                &one_line(self.git().args(["hash-object", "-t", "tree", "--stdin"]).stdin(b"").run()?),
            )?,
        };
        let out = self
            .git()
            .args(["diff-index", "--cached", "--ita-invisible-in-index", "--raw", "-z", "--no-renames"])
            .arg("--end-of-options")
            .arg(base.as_str())
            .run()?;
        let mut staged = Vec::new();
        for ([_, dst_mode, _, dst_oid, status], path) in raw_changes("diff-index", &out)? {
            if !matches!(status, "A" | "M" | "T") || dst_mode == GITLINK_MODE {
                continue;
            }
            staged.push((parse_path("diff-index", path)?, parse_id("diff-index", dst_oid.as_bytes())?));
        }
        staged.sort_by(|a, b| a.0.cmp(&b.0));
        let oids: Vec<&CommitId> = staged.iter().map(|(_, o)| o).collect();
        let contents = self.cat_blobs(&oids)?;
        Ok(staged.into_iter().zip(contents).map(|((path, oid), content)| StagedBlob { path, oid, content }).collect())
    }

    fn has_object(&self, oid: &CommitId) -> Result<bool> {
        if let Some(r) = &self.reader {
            return r.has_object(oid);
        }
        Ok(self.git().args(["cat-file", "-e", "--end-of-options", oid.as_str()]).run_maybe()?.is_some())
    }

    fn write_blob(&self, content: &[u8]) -> Result<CommitId> {
        let out = self.git().args(["hash-object", "-w", "--no-filters", "--stdin"]).stdin(content).run()?;
        parse_id("hash-object", &one_line(out))
    }

    fn reset_hard(&self, commit: &CommitId, message: &str) -> Result<()> {
        self.reset(commit, message, true)
    }

    fn refresh(&self) -> Result<Vec<RepoPath>> {
        self.refresh_index()
    }

    fn reset_hard_refreshed(&self, commit: &CommitId, message: &str) -> Result<()> {
        self.reset(commit, message, false)
    }

    fn checkout_branch_at(&self, branch: &str, commit: &CommitId, message: &str) -> Result<()> {
        reject_option(branch)?;
        let full = format!("refs/heads/{branch}");
        self.git().args(["check-ref-format", &full]).run()?;
        self.git().args(["update-ref", "-m", message, "--end-of-options", &full, commit.as_str()]).run()?;
        self.git().args(["symbolic-ref", "-m", message, "HEAD", &full]).run()?;
        self.reset(commit, message, true)
    }

    fn set_ref(&self, name: &str, commit: &CommitId, message: &str) -> Result<()> {
        check_full_ref(name)?;
        // The tool's own refs (the pin of each run) through libgit2: no `git` process. Git
        // syncs a ref file it writes (`core.fsync`'s default); libgit2 does not, so the file is
        // synced here. Other refs (branches) stay `git update-ref`'s, hooks and all.
        if let Some(r) = &self.reader
            && name.starts_with(OWN_REFS)
        {
            r.set_ref(name, commit, message)?;
            let file = self.git_dir.join(name);
            if let Ok(f) = std::fs::File::open(&file) {
                f.sync_all().map_err(|e| Error::Io(crate::fsutil::IoError::new("sync", &file, e)))?;
            }
            return Ok(());
        }
        self.git()
            .args(["update-ref", "--no-deref", "-m", message, "--end-of-options", name, commit.as_str()])
            .run()
            .map(drop)
    }

    fn delete_ref(&self, name: &str) -> Result<()> {
        check_full_ref(name)?;
        self.git().args(["update-ref", "--no-deref", "-d", "--end-of-options", name]).run().map(drop)
    }

    fn read_ref(&self, name: &str) -> Result<Option<CommitId>> {
        if let Some(r) = &self.reader {
            return r.read_ref(name);
        }
        reject_option(name)?;
        let exists = self.git().args(["show-ref", "--verify", "-q", name]).run_maybe()?.is_some();
        if !exists {
            return Ok(None);
        }
        self.peel_commit(name)
    }
}
