//! Env history: the `.env` and config files that went with each known-good commit.
//!
//! The old scripts' "full" rollback restored a `.env` copied seconds earlier: a no-op. Here,
//! `known-good mark` records the `[env] files` as they are when a release is declared good,
//! into the backup store (never into git: they hold secrets), labelled `env` with the commit.
//! `run --full` puts back the content recorded for the target; `assess` compares the files as
//! they are now with that record and lists the keys added, removed or changed — names only,
//! never values.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::backup::{self, BackupStore, EntryKind, Manifest, Origin, SnapshotId};
use crate::config::Config;
use crate::paths::RepoPath;
use crate::time::Timestamp;
use crate::vcs::{CommitId, Head};

/// The label of env-history snapshots.
pub const LABEL: &str = "env";

/// An env record: which files were recorded for a commit, when.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvRecord {
    /// The commit the env belongs to.
    pub commit: CommitId,
    /// The snapshot holding the files.
    pub snapshot: SnapshotId,
    /// When it was recorded.
    pub recorded_at: Timestamp,
    /// The files that existed then (the others are recorded as absent).
    pub files: Vec<RepoPath>,
}

/// How one env file differs between now and the record: key names only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvFileDiff {
    /// The file.
    pub file: RepoPath,
    /// The file exists now but not in the record (a rollback deletes it).
    pub only_now: bool,
    /// The file is in the record but not here now (a rollback creates it).
    pub only_recorded: bool,
    /// Keys the record has and the file does not (a rollback adds them back).
    pub added: Vec<String>,
    /// Keys the file has and the record does not (a rollback removes them).
    pub removed: Vec<String>,
    /// Keys in both, with different values.
    pub changed: Vec<String>,
}

impl EnvFileDiff {
    /// Whether anything differs.
    pub fn is_empty(&self) -> bool {
        !self.only_now
            && !self.only_recorded
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
    }
}

/// The env part of an assessment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnvAssessment {
    /// The configured files.
    pub files: Vec<RepoPath>,
    /// The record for the target commit, if one was made.
    pub target_record: Option<EnvRecord>,
    /// Per file, what a full rollback would change (only files that differ).
    pub diffs: Vec<EnvFileDiff>,
}

/// Parses dotenv text into key → BLAKE3 hash of the value (values are never kept). Accepts
/// `KEY=value`, `export KEY=value`, quotes, comments and blank lines; anything else is skipped.
pub fn keys(content: &[u8]) -> BTreeMap<String, blake3::Hash> {
    let text = String::from_utf8_lossy(content);
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map_or(line, str::trim_start);
        let Some((key, value)) = line.split_once('=') else { continue };
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-') {
            continue;
        }
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .or_else(|| value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
            .unwrap_or(value);
        out.insert(key.to_owned(), blake3::hash(value.as_bytes()));
    }
    out
}

/// Compares the key names of two versions of one file (`None`: the file does not exist).
pub fn diff(file: &RepoPath, now: Option<&[u8]>, recorded: Option<&[u8]>) -> EnvFileDiff {
    let mut d = EnvFileDiff {
        file: file.clone(),
        only_now: false,
        only_recorded: false,
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
    };
    match (now, recorded) {
        (None, None) => {}
        (Some(_), None) => d.only_now = true,
        (None, Some(_)) => d.only_recorded = true,
        (Some(a), Some(b)) => {
            let (now, rec) = (keys(a), keys(b));
            for (k, v) in &rec {
                match now.get(k) {
                    None => d.added.push(k.clone()),
                    Some(w) if w != v => d.changed.push(k.clone()),
                    Some(_) => {}
                }
            }
            d.removed = now.keys().filter(|k| !rec.contains_key(*k)).cloned().collect();
        }
    }
    d
}

/// The configured env files as repository paths.
pub fn files(config: &Config) -> Vec<RepoPath> {
    config.env.files.iter().filter_map(|f| RepoPath::new(f.as_os_str().as_encoded_bytes().to_vec()).ok()).collect()
}

/// Records the configured files as they are now, for `commit`. `Ok(None)` when none of them
/// exists (nothing worth recording).
pub fn record(
    store: &dyn BackupStore,
    workdir: &Path,
    head: &Head,
    commit: &CommitId,
    files: &[RepoPath],
) -> crate::Result<Option<EnvRecord>> {
    let paths: Vec<(RepoPath, Origin)> = files.iter().map(|f| (f.clone(), Origin::Ignored)).collect();
    let (entries, _) = backup::snapshot::capture(store, workdir, &paths)?;
    let present: Vec<RepoPath> =
        entries.iter().filter(|e| e.kind != EntryKind::Absent).map(|e| e.path.clone()).collect();
    if present.is_empty() {
        return Ok(None);
    }
    let manifest = Manifest {
        format: 1,
        id: SnapshotId::generate_labelled(LABEL),
        created_at: Timestamp::now(),
        run_id: None,
        workdir: workdir.to_path_buf(),
        head: commit.clone(),
        branch: head.branch.clone(),
        entries,
        index: None,
        label: Some(LABEL.into()),
        database: None,
        hard_links: Vec::new(),
        landing: std::collections::BTreeMap::new(),
    };
    store.put_manifest(&manifest)?;
    Ok(Some(EnvRecord {
        commit: commit.clone(),
        snapshot: manifest.id,
        recorded_at: manifest.created_at,
        files: present,
    }))
}

/// The newest env record of `commit`, if any. Only the env records' manifests are read (their
/// ids say they are env records): every `assess` asks, and a store holds many run snapshots.
pub fn find(store: &dyn BackupStore, commit: &CommitId) -> crate::Result<Option<(EnvRecord, Manifest)>> {
    let mut newest: Option<Manifest> = None;
    for id in store.ids()?.into_iter().filter(|id| id.has_label(LABEL)) {
        let m = store.manifest(&id)?;
        if m.label.as_deref() == Some(LABEL)
            && &m.head == commit
            && newest.as_ref().is_none_or(|n| (n.created_at, &n.id) < (m.created_at, &m.id))
        {
            newest = Some(m);
        }
    }
    let Some(manifest) = newest else { return Ok(None) };
    let files = manifest.entries.iter().filter(|e| e.kind != EntryKind::Absent).map(|e| e.path.clone()).collect();
    Ok(Some((
        EnvRecord { commit: commit.clone(), snapshot: manifest.id.clone(), recorded_at: manifest.created_at, files },
        manifest,
    )))
}

/// Compares the files in the work tree with a record (only files that differ are returned).
pub fn compare(
    store: &dyn BackupStore,
    workdir: &Path,
    files: &[RepoPath],
    record: &Manifest,
) -> crate::Result<Vec<EnvFileDiff>> {
    let mut out = Vec::new();
    for f in files {
        let now = std::fs::read(f.to_fs(workdir)).ok();
        let recorded = match record.entries.iter().find(|e| &e.path == f).map(|e| &e.kind) {
            Some(EntryKind::File { blob, .. }) => Some(store.get_blob(blob)?),
            _ => None,
        };
        let d = diff(f, now.as_deref(), recorded.as_deref());
        if !d.is_empty() {
            out.push(d);
        }
    }
    Ok(out)
}

/// Whether two captured entries hold the same content (a file's bytes, a symlink's target, or
/// nothing); permission bits are not content.
pub(crate) fn same_content(a: &EntryKind, b: &EntryKind) -> bool {
    match (a, b) {
        (EntryKind::File { blob: x, .. }, EntryKind::File { blob: y, .. }) => x == y,
        (EntryKind::Symlink { target: x }, EntryKind::Symlink { target: y }) => x == y,
        (EntryKind::Absent, EntryKind::Absent) => true,
        _ => false,
    }
}

/// Whether `file` in the work tree holds `kind`'s content now (read, never followed).
pub(crate) fn holds(workdir: &Path, file: &RepoPath, kind: &EntryKind) -> bool {
    match kind {
        EntryKind::Absent => backup::snapshot::lstat_in_tree(workdir, file).is_none(),
        k => {
            backup::snapshot::lstat_in_tree(workdir, file).is_some()
                && backup::snapshot::still_as_captured(&file.to_fs(workdir), k)
        }
    }
}

/// The env files of `restored` (the snapshot an undo puts back) that were changed since the
/// run being undone left them: each holds now (`is_now`) neither what the run wrote there
/// (`left`, from its `restore_env` record or the snapshot its own undo restored) nor what the
/// undo puts back. The undo overwrites those edits: they stay only in its own snapshot.
pub(crate) fn edited_since(
    restored: &Manifest,
    left: &BTreeMap<RepoPath, EntryKind>,
    is_now: &dyn Fn(&RepoPath, &EntryKind) -> bool,
) -> Vec<RepoPath> {
    restored
        .entries
        .iter()
        .filter(|e| e.origin == Origin::Env)
        .filter(|e| !is_now(&e.path, &e.kind))
        // A file the run did not write is as the run left it when it holds what the undo
        // puts back (the content from before the run).
        .filter(|e| left.get(&e.path).is_none_or(|k| !is_now(&e.path, k)))
        .map(|e| e.path.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_records_are_told_apart_by_their_ids() {
        let env = SnapshotId::generate_labelled(LABEL);
        assert!(env.has_label(LABEL) && SnapshotId::parse(env.as_str()).is_some_and(|p| p.has_label(LABEL)));
        assert!(!SnapshotId::generate().has_label(LABEL));
        assert!(!SnapshotId::generate_labelled("database").has_label(LABEL));
    }

    #[test]
    fn keys_and_diff_never_hold_values() {
        let a = b"# comment\nexport API_KEY='s3cr3t-value'\nDB_URL=postgres://u:pw@h/db\nSAME=1\nbad line\n";
        let b = b"API_KEY=other-secret\nSAME=1\nNEW_FLAG=\"on\"\n";
        let k = keys(a);
        assert_eq!(k.keys().cloned().collect::<Vec<_>>(), ["API_KEY", "DB_URL", "SAME"]);
        let d = diff(&RepoPath::new(".env").unwrap(), Some(a), Some(b));
        assert_eq!(d.added, ["NEW_FLAG"]);
        assert_eq!(d.removed, ["DB_URL"]);
        assert_eq!(d.changed, ["API_KEY"]);
        let json = serde_json::to_string(&d).unwrap();
        assert!(!json.contains("s3cr3t") && !json.contains("other-secret") && !json.contains("pw@"), "{json}");
        assert!(diff(&RepoPath::new(".env").unwrap(), Some(b), Some(b)).is_empty());
        assert!(diff(&RepoPath::new(".env").unwrap(), None, Some(b)).only_recorded);
    }
}
