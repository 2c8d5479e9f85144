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
    /// The bytes differ, although no key does (a file that is not a dotenv, bytes that are not
    /// UTF-8, a comment): a rollback still puts the recorded bytes back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub content_differs: bool,
}

impl EnvFileDiff {
    /// Whether anything differs.
    pub fn is_empty(&self) -> bool {
        !self.only_now
            && !self.only_recorded
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && !self.content_differs
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
    /// Why a full rollback cannot restore the env: full and manual runs refuse, before
    /// anything changes. Empty: nothing stops it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<EnvBlock>,
}

/// What stops a full rollback from restoring the env files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EnvBlock {
    /// The target's env record is damaged: a blob corrupt or missing.
    DamagedRecord {
        /// The record.
        record: SnapshotId,
        /// What is wrong with it.
        reason: String,
    },
    /// An env record whose manifest cannot be read, newer than the target's newest readable
    /// one (or with none): it may be the target's newest, whose commit cannot be told.
    UnreadableRecord {
        /// The record.
        record: SnapshotId,
        /// Why it cannot be read.
        reason: String,
    },
    /// A folder that is not empty is where an env file goes.
    Folder {
        /// The env file.
        file: RepoPath,
    },
}

impl EnvBlock {
    /// One sentence for people, naming the record or file (`target`: the commit rolled back to).
    pub fn message(&self, target: &CommitId) -> String {
        match self {
            EnvBlock::DamagedRecord { record, reason } => {
                format!("the env record {record} of {} is damaged: {reason}", target.short())
            }
            EnvBlock::UnreadableRecord { record, reason } => format!(
                "env record {record} cannot be read ({reason}): it may be the newest recorded for {}",
                target.short()
            ),
            EnvBlock::Folder { file } => {
                format!("env file `{file}` is a folder that is not empty: a full rollback cannot restore it")
            }
        }
    }
}

/// Parses dotenv text into key → BLAKE3 hash of the value (values are never kept). Accepts
/// `KEY=value`, `export KEY=value`, quotes, comments and blank lines; anything else is skipped.
pub fn keys(content: &[u8]) -> BTreeMap<String, blake3::Hash> {
    crate::dotenv::entries(content).into_iter().map(|(k, v)| (k, blake3::hash(v.as_bytes()))).collect()
}

/// Compares the key names of two versions of one file (`None`: the file does not exist), and
/// their bytes when no key differs: only whether they do is kept.
pub fn diff(file: &RepoPath, now: Option<&[u8]>, recorded: Option<&[u8]>) -> EnvFileDiff {
    let mut d = EnvFileDiff {
        file: file.clone(),
        only_now: false,
        only_recorded: false,
        added: Vec::new(),
        removed: Vec::new(),
        changed: Vec::new(),
        content_differs: false,
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
            d.content_differs = d.is_empty() && a != b;
        }
    }
    d
}

/// The configured env files as repository paths.
pub fn files(config: &Config) -> Vec<RepoPath> {
    config.env.files.iter().filter_map(|f| RepoPath::new(f.as_os_str().as_encoded_bytes().to_vec()).ok()).collect()
}

/// Records the configured files as they are now, for `commit`: the record (`None` when none of
/// them exists: nothing worth recording) and notes for the operator on files recorded or left
/// out in a way they may not expect.
///
/// A file that is a symlink (`.env -> ../shared/.env`, the shared-folder layout of Capistrano
/// and other deploy tools) is recorded by the content it leads to, when that is a regular
/// file: what the app reads. A full rollback then writes that content in place of the link
/// (the shared file is never written through), and `undo` puts the link back, from the run's
/// snapshot. A link that leads to no regular file, and a file below a symlinked folder, are
/// not recorded (a full rollback leaves them as they are): the notes say so.
pub fn record(
    store: &dyn BackupStore,
    workdir: &Path,
    head: &Head,
    commit: &CommitId,
    files: &[RepoPath],
) -> crate::Result<(Option<EnvRecord>, Vec<String>)> {
    let mut notes = Vec::new();
    let mut paths: Vec<(RepoPath, Origin)> = Vec::new();
    for f in files {
        match symlinked_folder(workdir, f) {
            Some(link) => notes.push(format!(
                "`{f}` not recorded: `{link}` is a symlink, and env history does not follow symlinked folders; a full rollback leaves the file as it is"
            )),
            None if std::fs::symlink_metadata(f.to_fs(workdir)).is_ok_and(|m| m.is_dir()) => notes.push(format!(
                "`{f}` not recorded: it is a folder, and `[env] files` names files; a full rollback leaves it as it is"
            )),
            None => paths.push((f.clone(), Origin::Ignored)),
        }
    }
    let (mut entries, _) = backup::snapshot::capture(store, workdir, &paths)?;
    let mut dangling = Vec::new();
    for e in &mut entries {
        let EntryKind::Symlink { target } = &e.kind else { continue };
        let shown = String::from_utf8_lossy(&target.0).into_owned();
        let Some((kind, owner)) = follow(store, &e.path.to_fs(workdir))? else {
            notes.push(format!(
                "`{}` not recorded: it is a symlink to `{shown}`, which leads to no regular file; a full rollback leaves it as it is",
                e.path
            ));
            dangling.push(e.path.clone());
            continue;
        };
        notes.push(format!(
            "`{}` is a symlink to `{shown}`: the content it leads to is recorded; a full rollback writes that content in place of the link (leaving `{shown}` as it is), and `undo` puts the link back",
            e.path
        ));
        e.kind = kind;
        e.owner = Some(owner);
    }
    entries.retain(|e| !dangling.contains(&e.path));
    let present: Vec<RepoPath> =
        entries.iter().filter(|e| e.kind != EntryKind::Absent).map(|e| e.path.clone()).collect();
    if present.is_empty() {
        return Ok((None, notes));
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
        folders: Vec::new(),
    };
    store.put_manifest(&manifest)?;
    let record =
        EnvRecord { commit: commit.clone(), snapshot: manifest.id, recorded_at: manifest.created_at, files: present };
    Ok((Some(record), notes))
}

/// The content an env file that is a symlink leads to, stored: its entry (a file, with the
/// permission bits and owner of the file the link leads to). `None` when the link leads to no
/// regular file (dangling, a folder, a device).
fn follow(store: &dyn BackupStore, full: &Path) -> crate::Result<Option<(EntryKind, backup::Ownership)>> {
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::fs::OpenOptionsExt;
    // `O_NONBLOCK`: a link to a FIFO must not hang the mark; it is refused below.
    let Ok(file) = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(full) else {
        return Ok(None);
    };
    let meta =
        file.metadata().map_err(|e| backup::Error::from(crate::fsutil::IoError::new("read metadata of", full, e)))?;
    if !meta.is_file() {
        return Ok(None);
    }
    let (blob, size, _) = store.put_blob_from(&file, full)?;
    let owner = backup::Ownership { owner: backup::Owner::of(&meta), folders: Vec::new() };
    Ok(Some((EntryKind::File { blob, size, mode: meta.mode() & 0o7777 }, owner)))
}

/// The folder above `file` that is a symlink, if one is (outermost first: nothing is looked
/// at through a link).
pub(crate) fn symlinked_folder(workdir: &Path, file: &RepoPath) -> Option<RepoPath> {
    let ancestors: Vec<RepoPath> = file.ancestors().collect();
    for anc in ancestors.into_iter().rev() {
        match std::fs::symlink_metadata(anc.to_fs(workdir)) {
            Ok(m) if m.file_type().is_symlink() => return Some(anc),
            Ok(m) if m.is_dir() => {}
            _ => return None,
        }
    }
    None
}

/// What [`find`] found for a commit.
#[derive(Debug, Default)]
pub struct Found {
    /// The newest env record of the commit that could be read, and its manifest.
    pub newest: Option<(EnvRecord, Manifest)>,
    /// Env records whose manifest could not be read (torn, deleted half-way), each with the
    /// reason, that may be the commit's newest: newer than `newest`, or any when there is
    /// none. Whose commit they hold cannot be told.
    pub unreadable: Vec<(SnapshotId, String)>,
}

/// The newest env record of `commit`, if any. Only the env records' manifests are read (their
/// ids say they are env records): every `assess` asks, and a store holds many run snapshots.
/// A manifest that cannot be read does not stop the search: a damaged record of another
/// commit must not block a rollback (see [`Found::unreadable`]).
pub fn find(store: &dyn BackupStore, commit: &CommitId) -> crate::Result<Found> {
    let mut newest: Option<Manifest> = None;
    let mut unreadable = Vec::new();
    for id in store.ids()?.into_iter().filter(|id| id.has_label(LABEL)) {
        let m = match store.manifest(&id) {
            Ok(m) => m,
            Err(e @ (backup::Error::BadManifest { .. } | backup::Error::UnknownSnapshot { .. })) => {
                unreadable.push((id, e.to_string()));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if m.label.as_deref() == Some(LABEL)
            && &m.head == commit
            && newest.as_ref().is_none_or(|n| (n.created_at, &n.id) < (m.created_at, &m.id))
        {
            newest = Some(m);
        }
    }
    // Ids sort by the time they were made: an unreadable record older than the newest
    // readable one cannot be the commit's newest.
    if let Some(n) = &newest {
        unreadable.retain(|(id, _)| id > &n.id);
    }
    let newest = newest.map(|manifest| {
        let files = manifest.entries.iter().filter(|e| e.kind != EntryKind::Absent).map(|e| e.path.clone()).collect();
        (
            EnvRecord {
                commit: commit.clone(),
                snapshot: manifest.id.clone(),
                recorded_at: manifest.created_at,
                files,
            },
            manifest,
        )
    });
    Ok(Found { newest, unreadable })
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
        // Below a symlinked folder the restore writes nothing (it never writes through a
        // link): nothing there differs for a rollback.
        if symlinked_folder(workdir, f).is_some() {
            continue;
        }
        let now = std::fs::read(f.to_fs(workdir)).ok();
        let recorded = match record.entries.iter().find(|e| &e.path == f).map(|e| &e.kind) {
            Some(EntryKind::File { blob, .. }) => Some(store.get_blob(blob)?),
            // A link recorded as a link (by versions that did not follow it): the restore
            // puts the link back, and its content is none of the record's business.
            Some(EntryKind::Symlink { .. }) => continue,
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

/// The env files (`env`, paths) of `restored` (the snapshot an undo puts back) that were
/// changed since the run being undone left them: each holds now (`is_now`) neither what the
/// run wrote there (`left`, from its `restore_env` record or the snapshot its own undo
/// restored) nor what the undo puts back. The undo overwrites those edits: they stay only in
/// its own snapshot.
pub(crate) fn edited_since(
    restored: &Manifest,
    env: &std::collections::BTreeSet<RepoPath>,
    left: &BTreeMap<RepoPath, EntryKind>,
    is_now: &dyn Fn(&RepoPath, &EntryKind) -> bool,
) -> Vec<RepoPath> {
    restored
        .entries
        .iter()
        .filter(|e| env.contains(&e.path))
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

    #[test]
    fn a_rotated_multi_line_value_is_a_changed_key() {
        let good = b"TLS_KEY=\"-----BEGIN PRIVATE KEY-----\nAAAAgoodKey1\n-----END PRIVATE KEY-----\"\nPORT=8000\n";
        let bad = b"TLS_KEY=\"-----BEGIN PRIVATE KEY-----\nBBBBbadKey2\n-----END PRIVATE KEY-----\"\nPORT=8000\n";
        let d = diff(&RepoPath::new(".env").unwrap(), Some(bad), Some(good));
        assert_eq!(
            (d.changed, d.added, d.removed, d.content_differs),
            (vec!["TLS_KEY".to_owned()], vec![], vec![], false)
        );
    }

    #[test]
    fn bytes_that_differ_in_no_key_still_differ() {
        let f = RepoPath::new("config/secrets.yaml").unwrap();
        for (now, recorded) in [
            (&b"K=\xff\n"[..], &b"K=\xfe\n"[..]),
            (b"db_password: bad2\n", b"db_password: good1\n"),
            (b"# rotated\nK=1\n", b"K=1\n"),
        ] {
            let d = diff(&f, Some(now), Some(recorded));
            assert!(d.content_differs && !d.is_empty(), "{d:?}");
            assert!(d.added.is_empty() && d.removed.is_empty() && d.changed.is_empty());
            let json = serde_json::to_string(&d).unwrap();
            assert!(
                json.contains(r#""content_differs":true"#) && !json.contains("bad2") && !json.contains("good1"),
                "{json}"
            );
        }
        let same = diff(&f, Some(b"db_password: good1\n"), Some(b"db_password: good1\n"));
        assert!(same.is_empty() && !same.content_differs);
        // Written only when set, and read back when missing (diffs journaled by earlier versions).
        let json = serde_json::to_string(&same).unwrap();
        assert!(!json.contains("content_differs"), "{json}");
        assert_eq!(serde_json::from_str::<EnvFileDiff>(&json).unwrap(), same);
    }
}
