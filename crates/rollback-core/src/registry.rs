//! The known-good commit registry: the runbook's `known-good-commits.json`, read and written in
//! its own format.
//!
//! ```json
//! { "version": "1.0", "description": "...", "last_updated": "2025-12-10T17:39:00Z",
//!   "commits": [ { "hash": "<full hash>", "date": "...", "description": "...",
//!                  "verified": true, "services_tested": [], "database_migrations": [],
//!                  "notes": "" } ],
//!   "verification_criteria": { "required_tests": [], "manual_verification_required": true,
//!                              "minimum_uptime_hours": 24 },
//!   "usage_notes": [], "update_procedure": { "steps": [] } }
//! ```
//!
//! forge-rollback adds two optional keys to a commit, `"known_bad": true` and `"marked_at"`; a
//! commit marked bad is never chosen as a target, nor accepted as one. Keys it does not know are
//! kept as they were, so hand edits and other tools' fields survive a `mark`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;
use crate::vcs::{CommitId, VcsBackend};

/// Registry errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file is not valid JSON or not the registry's shape.
    #[error("invalid registry `{}` at line {line}, column {column}: {message}", path.display())]
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
    /// An entry names its commit by something other than a hash (`HEAD~1`, a branch, a tag,
    /// an option-like `-n`): a registry records commits, never revisions that move.
    #[error("registry `{}` line {line}: `{hash}` is not a commit hash", path.display())]
    BadHash {
        /// The file.
        path: PathBuf,
        /// 1-based line of the entry's hash.
        line: usize,
        /// What the entry holds.
        hash: String,
    },
    /// Reading or writing failed.
    #[error(transparent)]
    Io(#[from] crate::fsutil::IoError),
    /// `unmark` of a commit the registry does not have.
    #[error("commit {commit} is not in the registry `{}`", path.display())]
    NotListed {
        /// The commit.
        commit: String,
        /// The registry.
        path: PathBuf,
    },
}

/// One commit of the registry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The commit (full hash when written by forge-rollback; older files may hold short ones).
    pub hash: String,
    /// The commit's date.
    #[serde(default)]
    pub date: String,
    /// The commit's summary or a note on the release.
    #[serde(default)]
    pub description: String,
    /// Verified good.
    #[serde(default)]
    pub verified: bool,
    /// Services checked on this commit.
    #[serde(default)]
    pub services_tested: Vec<String>,
    /// Migrations this commit's schema is at.
    #[serde(default)]
    pub database_migrations: Vec<String>,
    /// Free text.
    #[serde(default)]
    pub notes: String,
    /// Known bad: never a rollback target.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub known_bad: bool,
    /// When forge-rollback last marked it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marked_at: Option<String>,
    /// Keys forge-rollback does not know, kept as they were.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The registry file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    /// Format version.
    #[serde(default = "default_version")]
    pub version: String,
    /// What this file is.
    #[serde(default)]
    pub description: String,
    /// When it was last written.
    #[serde(default)]
    pub last_updated: String,
    /// The commits, in file order.
    #[serde(default)]
    pub commits: Vec<Entry>,
    /// When a commit counts as verified.
    #[serde(default)]
    pub verification_criteria: serde_json::Value,
    /// Notes for people.
    #[serde(default)]
    pub usage_notes: Vec<String>,
    /// How to update the file.
    #[serde(default)]
    pub update_procedure: serde_json::Value,
    /// Keys forge-rollback does not know.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn default_version() -> String {
    "1.0".into()
}

impl Default for Registry {
    fn default() -> Self {
        Self {
            version: default_version(),
            description: "Known good commits for emergency rollback (maintained by forge-rollback)".into(),
            last_updated: Timestamp::now().to_string(),
            commits: Vec::new(),
            verification_criteria: serde_json::json!({
                "required_tests": [],
                "manual_verification_required": true,
                "minimum_uptime_hours": 24
            }),
            usage_notes: vec![
                "forge-rollback picks the newest verified commit that is not known_bad".into(),
                "mark releases with `forge-rollback known-good mark REV`, broken ones with `known-good bad REV`".into(),
            ],
            update_procedure: serde_json::json!({ "steps": [
                "forge-rollback known-good mark <commit> --note \"...\"",
                "git add <this file> && git commit -m \"Update known good commits\""
            ]}),
            extra: serde_json::Map::new(),
        }
    }
}

/// What a mark did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MarkOutcome {
    /// The entry as it is now.
    pub entry: Entry,
    /// Whether the commit was already listed.
    pub updated: bool,
    /// The env files recorded with the commit (`known-good mark` of HEAD, `[env] files`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<crate::env::EnvRecord>,
    /// Things the operator should know (env not recorded, database unreachable, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Error {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::BadHash { .. } => Some(
                "name each commit by its hash, 4 to 40 hex digits (`git rev-parse REV` prints it); mark releases with `known-good mark`, which writes full hashes"
                    .into(),
            ),
            _ => None,
        }
    }
}

/// Whether `hash` is a commit hash, full or abbreviated (the runbook's file holds 7-digit
/// ones): hex digits only, so no revision expression or option ever reaches git.
fn is_hash(hash: &str) -> bool {
    (4..=40).contains(&hash.len()) && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

impl Registry {
    /// Parses registry JSON; `path` names it in errors. An entry whose `hash` is not a hash is
    /// an error naming its line, never a revision handed to git.
    pub fn parse(text: &[u8], path: &Path) -> Result<Self, Error> {
        let registry: Self = serde_json::from_slice(text).map_err(|e| Error::Parse {
            path: path.to_owned(),
            line: e.line(),
            column: e.column(),
            message: e.to_string().split(" at line ").next().unwrap_or_default().to_owned(),
        })?;
        if let Some(bad) = registry.commits.iter().find(|e| !is_hash(e.hash.trim())) {
            // The line of the first place the value is written as a JSON string.
            let quoted = serde_json::to_string(&bad.hash).unwrap_or_default();
            let at = text.windows(quoted.len()).position(|w| w == quoted.as_bytes()).unwrap_or(0);
            let line = text[..at].split(|b| *b == b'\n').count();
            return Err(Error::BadHash { path: path.to_owned(), line, hash: bad.hash.clone() });
        }
        Ok(registry)
    }

    /// Reads the registry; a missing file is an empty registry.
    pub fn load(path: &Path) -> Result<Self, Error> {
        match std::fs::read(path) {
            Ok(bytes) => Self::parse(&bytes, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self { commits: Vec::new(), ..Self::default() }),
            Err(e) => Err(crate::fsutil::IoError::new("read", path, e).into()),
        }
    }

    /// Runs `edit` (load, change, [`Registry::save`]) holding an exclusive `flock` on the
    /// folder that holds the registry at `path`: two edits at once (a watcher's bad mark and
    /// an operator's `mark`) each see the other's entry instead of the last writer's file
    /// winning. The folder, not the file: a save renames a new file into place. Waits for the
    /// other edit, which takes milliseconds; the kernel drops a dead holder's lock.
    pub fn locked<T, E: From<Error>>(path: &Path, edit: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let path = &Self::resolved(path)?;
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(parent)
            .map_err(|e| Error::from(crate::fsutil::IoError::new("create folder", parent, e)))?;
        let dir =
            std::fs::File::open(parent).map_err(|e| Error::from(crate::fsutil::IoError::new("open", parent, e)))?;
        match crate::lock::flock_wait(&dir) {
            Ok(()) => {}
            // A file system that cannot lock a folder (NFS emulates `flock` with byte-range
            // locks, which need a file open for writing): the edit goes on unlocked, as before
            // there was a lock, rather than every mark failing.
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EBADF | libc::ENOLCK | libc::EOPNOTSUPP | libc::EINVAL)) => {}
            Err(e) => return Err(Error::from(crate::fsutil::IoError::new("lock", parent, e)).into()),
        }
        // Released when `dir` is closed, after the edit.
        edit()
    }

    /// Where the registry at `path` is written: the file a symlink there points to (a registry
    /// shared between checkouts, Capistrano's `shared/`), so that the link stays a link and
    /// the shared file gets the mark; `path` itself otherwise.
    fn resolved(path: &Path) -> Result<PathBuf, Error> {
        if !std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Ok(path.to_path_buf());
        }
        std::fs::canonicalize(path).map_err(|e| crate::fsutil::IoError::new("resolve the symlink", path, e).into())
    }

    /// The JSON text, pretty, with a trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).unwrap_or_default();
        out.push(b'\n');
        out
    }

    /// Writes the registry atomically, keeping the file's permission bits (default `0644`: it
    /// is meant to be committed).
    pub fn save(&mut self, path: &Path) -> Result<(), Error> {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        self.last_updated = Timestamp::now().to_string();
        let path = &Self::resolved(path)?;
        let old = std::fs::metadata(path).ok();
        let mode = old.as_ref().map_or(0o644, |m| m.permissions().mode() & 0o7777);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| crate::fsutil::IoError::new("create folder", parent, e))?;
        }
        crate::fsutil::atomic_write_mode(path, &self.to_json(), mode)?;
        // The owner it had (the deploy user's, written by root under `sudo` or a root
        // watcher): kept. Only root can, and only root changes it by writing.
        if let Some(m) = old
            && crate::fsutil::euid() == 0
            && (m.uid(), m.gid()) != (0, 0)
        {
            std::os::unix::fs::chown(path, Some(m.uid()), Some(m.gid()))
                .map_err(|e| crate::fsutil::IoError::new("set the owner of", path, e))?;
        }
        Ok(())
    }

    /// The entry for `commit`, matching full hashes and the short hashes older files hold.
    pub fn find(&self, commit: &CommitId) -> Option<&Entry> {
        self.position(commit).map(|i| &self.commits[i])
    }

    /// The entry that decides for `commit`: its bad one when it has one (a registry merged from
    /// two branches can list it twice), else its only one.
    pub fn deciding(&self, commit: &CommitId) -> Option<&Entry> {
        self.commits.iter().find(|e| e.known_bad && Self::names(e, commit)).or_else(|| self.find(commit))
    }

    fn position(&self, commit: &CommitId) -> Option<usize> {
        self.commits.iter().position(|e| Self::names(e, commit))
    }

    fn upsert(
        &mut self,
        vcs: &dyn VcsBackend,
        commit: &CommitId,
        note: Option<&str>,
        bad: bool,
    ) -> crate::Result<MarkOutcome> {
        let info = vcs.commit_info(commit)?;
        let now = Timestamp::now().to_string();
        let updated = self.position(commit).is_some();
        let idx = if let Some(i) = self.position(commit) {
            i
        } else {
            self.commits.push(Entry {
                hash: commit.to_string(),
                date: Timestamp::from_unix(info.time).to_string(),
                description: info.summary.clone(),
                verified: false,
                services_tested: Vec::new(),
                database_migrations: Vec::new(),
                notes: String::new(),
                known_bad: false,
                marked_at: None,
                extra: serde_json::Map::new(),
            });
            self.commits.len() - 1
        };
        // One entry per commit from here on: later duplicates go.
        let mut i = 0;
        self.commits.retain(|e| {
            i += 1;
            i - 1 == idx || !Self::names(e, commit)
        });
        let e = &mut self.commits[idx];
        e.hash = commit.to_string();
        let was_good = e.verified && !e.known_bad;
        e.verified = !bad;
        e.known_bad = bad;
        e.marked_at = Some(now);
        if let Some(n) = note {
            n.clone_into(&mut e.notes);
        } else if bad && was_good {
            // The known-good entry's note ("24h uptime, all checks green") is no reason for a
            // bad mark, which `gate` and the refusals quote.
            e.notes.clear();
        }
        Ok(MarkOutcome { entry: e.clone(), updated, env: None, notes: Vec::new() })
    }

    /// Marks `commit` verified good (and not bad).
    pub fn mark(&mut self, vcs: &dyn VcsBackend, commit: &CommitId, note: Option<&str>) -> crate::Result<MarkOutcome> {
        self.upsert(vcs, commit, note, false)
    }

    /// Marks `commit` known bad (and not verified).
    pub fn mark_bad(
        &mut self,
        vcs: &dyn VcsBackend,
        commit: &CommitId,
        note: Option<&str>,
    ) -> crate::Result<MarkOutcome> {
        self.upsert(vcs, commit, note, true)
    }

    /// Removes `commit` from the registry.
    pub fn unmark(&mut self, commit: &CommitId, path: &Path) -> Result<Entry, Error> {
        let i = self
            .position(commit)
            .ok_or_else(|| Error::NotListed { commit: commit.to_string(), path: path.to_owned() })?;
        let first = self.commits.remove(i);
        // Every entry of the commit: a duplicate left behind would keep its mark.
        self.commits.retain(|e| !Self::names(e, commit));
        Ok(first)
    }

    /// Whether `commit` is marked bad: by any of its entries (a registry merged from two
    /// branches can list a commit twice, once good and once bad; bad wins).
    pub fn is_bad(&self, commit: &CommitId) -> bool {
        self.deciding(commit).is_some_and(|e| e.known_bad)
    }

    /// Whether `e` is the entry of `commit` (a full hash, or the short one older files hold).
    fn names(e: &Entry, commit: &CommitId) -> bool {
        let h = e.hash.trim().to_ascii_lowercase();
        h.len() >= 4 && commit.as_str().starts_with(&h)
    }

    /// The rollback target when none is given: among verified, not-bad commits that resolve in
    /// this repository and are not HEAD, the ancestor of HEAD nearest to it: of two where one
    /// descends from the other, the descendant, whatever their commit times say (a rebase
    /// keeps old dates, a clock runs behind, a script commits twice in a second); of two on
    /// separate lines of a merge, the newer by commit time. If no listed commit is an
    /// ancestor, the newest of them (the engine then refuses it as a non-ancestor unless
    /// allowed), the descendant of two made in the same second. Never a silent `HEAD~1`.
    pub fn pick_target(&self, vcs: &dyn VcsBackend, head: &CommitId) -> crate::Result<Option<(CommitId, Entry)>> {
        let mut best: Option<(bool, i64, CommitId, Entry)> = None;
        for e in self.commits.iter().filter(|e| e.verified && !e.known_bad) {
            let Ok(id) = vcs.resolve(e.hash.trim()) else { continue };
            if &id == head || self.is_bad(&id) {
                continue;
            }
            let ancestor = vcs.is_ancestor(&id, head)?;
            let time = vcs.commit_info(&id)?.time;
            let better = match &best {
                None => true,
                Some((_, _, b, _)) if b == &id => false,
                // Both on HEAD's history: the one nearer HEAD, whatever the clocks said (a
                // rebase keeps old dates; a machine's clock runs behind).
                Some((true, t, b, _)) if ancestor => {
                    if vcs.is_ancestor(b, &id)? {
                        true
                    } else if vcs.is_ancestor(&id, b)? {
                        false
                    } else {
                        time > *t
                    }
                }
                Some((a, t, b, _)) if (ancestor, time) == (*a, *t) => vcs.is_ancestor(b, &id)?,
                Some((a, t, ..)) => (ancestor, time) > (*a, *t),
            };
            if better {
                best = Some((ancestor, time, id, e.clone()));
            }
        }
        Ok(best.map(|(_, _, id, e)| (id, e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = r#"{
  "version": "1.0",
  "description": "Known good commits for emergency rollback",
  "last_updated": "2025-12-10T17:39:00Z",
  "commits": [
    { "hash": "0bf9c64", "date": "2025-12-10", "description": "Stable release", "verified": true,
      "services_tested": ["fastapi", "flask", "gradio"], "database_migrations": [], "notes": "",
      "deployed_by": "ops" }
  ],
  "verification_criteria": { "required_tests": ["health"], "manual_verification_required": true, "minimum_uptime_hours": 24 },
  "usage_notes": ["Always verify"],
  "update_procedure": { "steps": ["edit", "commit"] },
  "owner": "team"
}"#;

    #[test]
    fn seed_format_round_trips_with_unknown_keys() {
        let r = Registry::parse(SEED.as_bytes(), Path::new("k.json")).unwrap();
        assert_eq!(r.commits[0].services_tested, ["fastapi", "flask", "gradio"]);
        assert_eq!(r.commits[0].extra["deployed_by"], "ops");
        assert_eq!(r.extra["owner"], "team");
        let back: serde_json::Value = serde_json::from_slice(&r.to_json()).unwrap();
        let orig: serde_json::Value = serde_json::from_str(SEED).unwrap();
        assert_eq!(back, orig);
        let id = CommitId::new("0bf9c64".to_owned() + &"0".repeat(33)).unwrap();
        assert!(r.find(&id).is_some());
    }

    #[test]
    fn parse_error_has_line_and_column() {
        let err = Registry::parse(b"{\n  \"commits\": [ { \"hash\": 5 } ]\n}", Path::new("k.json")).unwrap_err();
        let Error::Parse { line, column, message, .. } = &err else { panic!() };
        assert_eq!(*line, 2);
        assert!(*column > 10, "{column}");
        assert!(message.contains("invalid type"), "{message}");
        assert!(err.to_string().starts_with("invalid registry `k.json` at line 2"), "{err}");
    }
}
