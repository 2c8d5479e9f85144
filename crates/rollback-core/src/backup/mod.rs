//! Backups: a content-addressed [`BackupStore`] of snapshots.
//!
//! A snapshot is a [`Manifest`] (what every captured path held: file bytes by blob id, mode,
//! symlink target, or absence, the owner of what was there and its extended attributes) plus the blobs it names. Blobs
//! are named by their BLAKE3 hash, so a second snapshot of unchanged files writes no new blob
//! bytes, and `verify` can re-hash everything. The manifest is written last, atomically: it is the snapshot's completion
//! marker, and a crash before it leaves only unreferenced blobs for `prune` to collect.
//!
//! - [`store::FsBackupStore`]: the store on disk (state folder, `0700`/`0600`);
//! - [`snapshot`]: capturing paths of a work tree into a manifest, and restoring them safely.

pub(crate) mod beneath;
pub(crate) mod chown;
pub mod snapshot;
pub mod statcache;
pub mod store;
pub mod xattr;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::fsutil::IoError;
use crate::paths::RepoPath;
use crate::time::Timestamp;
use crate::vcs::CommitId;

/// Errors from the backup store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing the store failed (disk full, permissions, ...).
    #[error(transparent)]
    Io(#[from] IoError),
    /// No snapshot with that id.
    #[error("no backup `{id}`")]
    UnknownSnapshot {
        /// The id asked for.
        id: String,
    },
    /// A blob named by a manifest is missing.
    #[error("backup `{snapshot}` is missing blob {blob} (for `{path}`)")]
    MissingBlob {
        /// The snapshot.
        snapshot: String,
        /// The blob id.
        blob: String,
        /// The path whose content it held.
        path: RepoPath,
    },
    /// A blob whose bytes no longer hash to its name.
    #[error("blob {blob} is corrupt: its content hashes to {actual}")]
    CorruptBlob {
        /// The blob's name.
        blob: String,
        /// What its content hashes to now.
        actual: String,
    },
    /// A blob asked for by id that is not in the store.
    #[error("blob {blob} is not in the backup store")]
    BlobNotFound {
        /// The blob id.
        blob: String,
    },
    /// A path that is neither a regular file, a symlink nor a folder (a FIFO, a socket, a
    /// device): it cannot be backed up.
    #[error("cannot back up `{path}`: it is a {kind} (only files, symlinks and folders can be captured)")]
    UnsupportedFileType {
        /// The path in the work tree.
        path: RepoPath,
        /// What it is ("FIFO", "socket", ...).
        kind: &'static str,
    },
    /// A file that changed while it was read into the store, each of `tries` times
    /// (something is writing it): its bytes could not be captured whole, and nothing was
    /// changed.
    #[error("`{path}` changed while it was being backed up, {tries} times in a row: something is writing it")]
    ChangedWhileCaptured {
        /// The path in the work tree.
        path: RepoPath,
        /// How many times it was read.
        tries: u32,
    },
    /// A manifest that does not parse or fails validation.
    #[error("backup manifest `{}` is invalid: {detail}", path.display())]
    BadManifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong (with line and column for JSON errors).
        detail: String,
    },
    /// The work tree's file system has no room for what a restore writes (checked before the
    /// restore changes anything).
    #[error("not enough space to restore into `{}`: {needed} byte(s) to write, {available} free", path.display())]
    NoSpace {
        /// The work tree.
        path: std::path::PathBuf,
        /// Bytes the restore writes.
        needed: u64,
        /// Bytes free.
        available: u64,
    },
    /// A restore that would write outside the work tree (through `..`, an absolute path, or a
    /// symlinked parent folder).
    #[error("refusing to restore `{path}`: {reason}")]
    UnsafeRestore {
        /// The path in the manifest.
        path: String,
        /// Why it is unsafe.
        reason: String,
    },
}

/// Result of a backup-store call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The name of a blob: the lowercase hex BLAKE3 hash of its content.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BlobId(String);

impl BlobId {
    /// The id of `content`.
    pub fn of(content: &[u8]) -> Self {
        Self(blake3::hash(content).to_hex().to_string())
    }

    /// From a finished hasher.
    pub fn from_hash(hash: blake3::Hash) -> Self {
        Self(hash.to_hex().to_string())
    }

    /// Validates 64 lowercase hex digits (so a blob id is always a safe file name).
    pub fn parse(hex: &str) -> Option<Self> {
        (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))).then(|| Self(hex.to_owned()))
    }

    /// The hex string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BlobId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        BlobId::parse(&s).ok_or_else(|| format!("`{s}` is not a blob id"))
    }
}

impl From<BlobId> for String {
    fn from(b: BlobId) -> String {
        b.0
    }
}

impl fmt::Display for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for BlobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BlobId({})", &self.0[..12])
    }
}

/// A snapshot id: `YYYYMMDD-HHMMSS-xxxxxx` (UTC time plus 6 random hex digits). Safe as a file
/// name; sorts by time.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SnapshotId(String);

impl SnapshotId {
    /// A new id for a snapshot taken now.
    pub fn generate() -> Self {
        Self(format!("{}-{}", Timestamp::now().compact(), crate::state::random_hex(6)))
    }

    /// A new id carrying a label (`YYYYMMDD-HHMMSS-<label>-xxxxxx`; the label is ASCII letters
    /// and digits), so snapshots of one kind are found from their ids, without reading every
    /// manifest.
    pub fn generate_labelled(label: &str) -> Self {
        debug_assert!(label.bytes().all(|b| b.is_ascii_alphanumeric()));
        Self(format!("{}-{label}-{}", Timestamp::now().compact(), crate::state::random_hex(6)))
    }

    /// Whether the id was made by [`SnapshotId::generate_labelled`] with `label`.
    pub fn has_label(&self, label: &str) -> bool {
        self.0.split('-').nth(2) == Some(label)
    }

    /// Validates an id typed by a user or read from disk: ASCII letters, digits and `-`,
    /// 1 to 64 characters.
    pub fn parse(s: &str) -> Option<Self> {
        (!s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
            .then(|| Self(s.to_owned()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SnapshotId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        SnapshotId::parse(&s).ok_or_else(|| format!("`{s}` is not a snapshot id"))
    }
}

impl From<SnapshotId> for String {
    fn from(b: SnapshotId) -> String {
        b.0
    }
}

impl fmt::Display for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SnapshotId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SnapshotId({})", self.0)
    }
}

/// Why a path is in a snapshot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Tracked, with changes in the work tree or the index.
    Tracked,
    /// Untracked (not ignored).
    Untracked,
    /// Ignored, but at a path the rollback target tracks (a reset would overwrite it), or
    /// configured to be captured.
    Ignored,
    /// An `[env] files` entry captured by a full rollback before it restores the target's env:
    /// never removed as untracked, put back by `undo`.
    Env,
}

/// What one path held when the snapshot was taken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EntryKind {
    /// A regular file.
    File {
        /// Its content.
        blob: BlobId,
        /// Its size in bytes.
        size: u64,
        /// Permission bits (`0o644`, `0o755`, ...), exactly as on disk.
        mode: u32,
    },
    /// A symbolic link.
    Symlink {
        /// Where it points, as raw bytes (may be absolute or dangling; it is restored as is,
        /// never followed).
        target: SymlinkTarget,
    },
    /// Nothing was at this path (a tracked file deleted in the work tree).
    Absent,
}

/// A symlink's target, raw bytes, serialized like [`RepoPath`] (string when UTF-8).
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SymlinkTarget(pub Vec<u8>);

impl Serialize for SymlinkTarget {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(t) => s.serialize_str(t),
            Err(_) => s.collect_seq(self.0.iter()),
        }
    }
}

impl<'de> Deserialize<'de> for SymlinkTarget {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Bytes(Vec<u8>),
        }
        Ok(Self(match Raw::deserialize(d)? {
            Raw::Text(t) => t.into_bytes(),
            Raw::Bytes(b) => b,
        }))
    }
}

/// One captured path.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// The path, relative to the work tree.
    pub path: RepoPath,
    /// Why it was captured.
    pub origin: Origin,
    /// What it held.
    #[serde(flatten)]
    pub kind: EntryKind,
    /// Who owned the file or symlink, and the folders above it: given back by a restore that
    /// runs as root. `None` for absent paths, and in manifests written before owners were
    /// recorded (a restore then leaves what it writes to the user it runs as).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Ownership>,
    /// The extended attributes of the file or symlink ([`xattr`]: ACLs, file capabilities,
    /// `user.*`, ...) that the capturing process could read, sorted by name: given back by a
    /// restore, after the owner and around the mode. Empty for absent paths, for files without
    /// any, and in manifests written before they were recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<xattr::Xattr>,
}

/// The numeric user and group ids that owned a file, symlink or folder.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl Owner {
    /// The owner in `meta` (from `lstat` or an open file).
    pub fn of(meta: &std::fs::Metadata) -> Self {
        use std::os::unix::fs::MetadataExt as _;
        Self { uid: meta.uid(), gid: meta.gid() }
    }
}

/// Who owned a captured file or symlink, and the folders above it (for the folders a restore
/// has to make again, when the rollback removed them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ownership {
    /// The path's own owner.
    #[serde(flatten)]
    pub owner: Owner,
    /// Owners of the folders above the path, outermost first. Empty when every one was owned
    /// like the path itself (the usual case: no bytes spent on it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folders: Vec<Owner>,
}

impl Ownership {
    /// The owner of the folder `depth` levels down on the way to the path (0: the outermost
    /// folder below the work tree's root).
    pub fn folder(&self, depth: usize) -> Option<Owner> {
        if self.folders.is_empty() { Some(self.owner) } else { self.folders.get(depth).copied() }
    }
}

/// A folder of the work tree as a snapshot saw it: each folder above a captured path, each
/// folder below a captured folder (empty ones included), and each folder above a file the
/// reset rewrites or deletes (git removes a folder it empties, and makes it again with its
/// default mode). An undo makes again the ones that are missing and gives each its mode.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Folder {
    /// The folder, relative to the work tree.
    pub path: RepoPath,
    /// Permission bits (`0o755`, `0o2775` for a setgid shared folder, `0o555`, ...), exactly
    /// as on disk.
    pub mode: u32,
    /// Who owned it: given to the folder when a restore that runs as root makes it again.
    #[serde(flatten)]
    pub owner: Owner,
    /// Its extended attributes (a default ACL that files made in it inherit, ...), sorted by
    /// name: given back to the folder, around its mode. Empty for folders without any, and in
    /// manifests written before they were recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<xattr::Xattr>,
}

/// An object of the index that a restore may need to write back into the object database.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StagedObject {
    /// The path it was staged for (for messages).
    pub path: RepoPath,
    /// The git object id.
    pub oid: CommitId,
    /// Its content in the store.
    pub blob: BlobId,
}

/// The git index at snapshot time: the raw index file plus the staged objects it names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexSnapshot {
    /// The raw `.git/index` file.
    pub blob: BlobId,
    /// Objects of staged changes.
    pub staged: Vec<StagedObject>,
    /// With a split index (`core.splitIndex`), the shared index file the index names: git
    /// cannot read the index without it, and deletes it once a newer one is two weeks old.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared: Option<SharedIndex>,
}

/// The shared index file of a split index, as captured.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedIndex {
    /// Its file name next to the index (`sharedindex.<hex>`).
    pub name: String,
    /// Its content in the store.
    pub blob: BlobId,
}

/// A snapshot: what every captured path held, and where HEAD was.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version (1).
    pub format: u32,
    /// The snapshot's id.
    pub id: SnapshotId,
    /// When it was taken.
    pub created_at: Timestamp,
    /// The run that took it, if any.
    pub run_id: Option<String>,
    /// The work tree's root, for messages only (restores go to the repository opened now).
    #[serde(with = "crate::paths::os_path")]
    pub workdir: PathBuf,
    /// HEAD's commit at snapshot time.
    pub head: CommitId,
    /// HEAD's branch at snapshot time (`None`: detached).
    pub branch: Option<String>,
    /// Captured paths, sorted, unique.
    pub entries: Vec<ManifestEntry>,
    /// The index, if it was captured.
    pub index: Option<IndexSnapshot>,
    /// What the snapshot is for, when it is not a run's work-tree snapshot: `env` for the env
    /// files recorded with a known-good commit (then `head` is that commit), `database` for a
    /// run's database snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// A database dump, for database snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DatabaseSnapshot>,
    /// Captured files that were hard links to one another (one inode), each group sorted:
    /// [`snapshot::relink`] makes them one file again after a restore. Empty in manifests
    /// written before it was recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hard_links: Vec<Vec<RepoPath>>,
    /// Whose the paths the move will write where nothing stays are to be, taken by a run as root
    /// before it changed anything: each path the target adds, and each folder git will make for
    /// one, with the owner of what was there (a file the move or the clearing of its way
    /// removes), else of the nearest folder above it. Paths that would be root's are left out.
    /// The reset gives them these owners after git wrote them root's, a resumed reset too.
    /// Empty when not run as root, and in manifests written before it was recorded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub landing: BTreeMap<RepoPath, Owner>,
    /// The folders the snapshot saw, with their modes and owners ([`Folder`]), sorted by
    /// path: [`snapshot::restore_folders`] makes the missing ones again and gives each its
    /// mode. Empty in manifests written before folders were recorded (an undo from one gives
    /// back no empty folder, and makes folders with the default mode).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub folders: Vec<Folder>,
}

/// A database dump held by a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseSnapshot {
    /// The dump's content.
    pub blob: BlobId,
    /// What wrote it and how to read it back.
    pub dump: crate::db::DbDump,
    /// The database, password removed.
    pub database: String,
    /// `alembic` or `sql`.
    pub migrator: String,
    /// The schema revision(s) the database was at.
    pub revisions: Vec<crate::db::Revision>,
}

impl Manifest {
    /// The entry of `path`, if the snapshot captured it (the entries are sorted by path).
    pub fn entry(&self, path: &RepoPath) -> Option<&ManifestEntry> {
        self.entries.binary_search_by(|e| e.path.cmp(path)).ok().map(|i| &self.entries[i])
    }

    /// Total bytes of file content the snapshot refers to.
    pub fn content_bytes(&self) -> u64 {
        self.entries
            .iter()
            .map(|e| match e.kind {
                EntryKind::File { size, .. } => size,
                _ => 0,
            })
            .sum()
    }

    /// Every blob the manifest refers to (entries, index, staged objects).
    pub fn blobs(&self) -> impl Iterator<Item = &BlobId> {
        let entries = self.entries.iter().filter_map(|e| match &e.kind {
            EntryKind::File { blob, .. } => Some(blob),
            _ => None,
        });
        let index = self.index.iter().flat_map(|i| {
            std::iter::once(&i.blob).chain(i.shared.iter().map(|s| &s.blob)).chain(i.staged.iter().map(|s| &s.blob))
        });
        entries.chain(index).chain(self.database.iter().map(|d| &d.blob))
    }
}

/// A line of `backups list`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    /// The id.
    pub id: SnapshotId,
    /// When it was taken.
    pub created_at: Timestamp,
    /// The run that took it.
    pub run_id: Option<String>,
    /// HEAD at the time (`None` for a damaged snapshot: its manifest cannot be read).
    pub head: Option<CommitId>,
    /// Branch at the time.
    pub branch: Option<String>,
    /// Number of captured paths (none in a database snapshot).
    pub entries: usize,
    /// Bytes the snapshot holds: its files' content, and its database dump.
    pub bytes: u64,
    /// `env`, `database`, or `None` for a run's work-tree snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The database dump a database snapshot holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<DumpSummary>,
    /// Why the snapshot's manifest cannot be read (torn by a full disk, deleted half-way):
    /// it cannot be restored from, and its other fields are what its id tells
    /// (`backups verify` reports it too).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
}

/// What a database snapshot holds, for `backups list`: which database, and the dump's size.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpSummary {
    /// The database, password removed.
    pub database: String,
    /// `sqlite` or `postgres`.
    pub engine: String,
    /// The dump's format (`sqlite-backup`, `pg-custom`).
    pub format: String,
    /// The dump's size in bytes.
    pub size: u64,
    /// The schema revision(s) the database was at.
    pub revisions: Vec<String>,
}

impl SnapshotSummary {
    /// The summary of `m`.
    pub fn of(m: &Manifest) -> Self {
        let database = m.database.as_ref().map(|d| DumpSummary {
            database: d.database.clone(),
            engine: d.dump.engine.clone(),
            format: d.dump.format.clone(),
            size: d.dump.size,
            revisions: d.revisions.iter().map(|r| r.as_str().to_owned()).collect(),
        });
        Self {
            id: m.id.clone(),
            created_at: m.created_at,
            run_id: m.run_id.clone(),
            head: Some(m.head.clone()),
            branch: m.branch.clone(),
            entries: m.entries.len(),
            bytes: m.content_bytes() + database.as_ref().map_or(0, |d| d.size),
            label: m.label.clone(),
            database,
            damaged: None,
        }
    }

    /// The summary of snapshot `id`, whose manifest cannot be read (`why`): its time and
    /// label are what the id says (`YYYYMMDD-HHMMSS[-label]-xxxxxx`).
    pub fn damaged(id: &SnapshotId, why: String) -> Self {
        let created_at = id
            .as_str()
            .get(..15)
            .and_then(|t| {
                let (d, h) = t.split_once('-')?;
                let (y, rest) = d.split_at_checked(4)?;
                let (mo, dd) = rest.split_at_checked(2)?;
                let (hh, rest) = h.split_at_checked(2)?;
                let (mi, ss) = rest.split_at_checked(2)?;
                Timestamp::parse(&format!("{y}-{mo}-{dd}T{hh}:{mi}:{ss}Z"))
            })
            .unwrap_or(Timestamp::from_unix(0));
        let parts: Vec<&str> = id.as_str().split('-').collect();
        Self {
            id: id.clone(),
            created_at,
            run_id: None,
            head: None,
            branch: None,
            entries: 0,
            bytes: 0,
            label: (parts.len() == 4).then(|| parts[2].to_owned()),
            database: None,
            damaged: Some(why),
        }
    }
}

/// What `backups verify` found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Snapshots checked.
    pub snapshots: usize,
    /// Distinct blobs re-hashed.
    pub blobs: usize,
    /// Bytes re-hashed.
    pub bytes: u64,
    /// Problems, one line each (missing or corrupt blobs, bad manifests). Empty: all good.
    pub problems: Vec<String>,
}

/// What `backups prune` did (or would do).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneReport {
    /// Snapshots deleted.
    pub removed_snapshots: Vec<SnapshotId>,
    /// Snapshots kept.
    pub kept_snapshots: usize,
    /// Blobs deleted (no kept snapshot refers to them).
    pub removed_blobs: usize,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// The pin refs (`refs/forge-rollback/runs/RUN/from`) of runs whose backups are gone that
    /// could not be deleted (git's `packed-refs.lock` held: a `git gc` running, or one that
    /// crashed), each with why. They keep those commits in the repository, nothing else; the
    /// next prune deletes them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs_left: Vec<String>,
}

/// Counters of one `put`: how much was read and how much was newly written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutStats {
    /// Blobs offered.
    pub blobs: usize,
    /// Bytes offered.
    pub bytes: u64,
    /// Blobs that were not yet in the store.
    pub new_blobs: usize,
    /// Bytes written for them.
    pub new_bytes: u64,
}

/// A content-addressed store of snapshots.
pub trait BackupStore: Send + Sync {
    /// Stores `content` unless a blob with its hash already exists; returns its id and whether
    /// bytes were written.
    fn put_blob(&self, content: &[u8]) -> Result<(BlobId, bool)>;

    /// The bytes of a blob, checked against its hash.
    fn get_blob(&self, id: &BlobId) -> Result<Vec<u8>>;

    /// Stores the content of the file at `path` (a database dump: possibly large). Returns its
    /// id, its size and whether bytes were written.
    fn put_blob_file(&self, path: &std::path::Path) -> Result<(BlobId, u64, bool)> {
        let content = std::fs::read(path).map_err(|e| IoError::new("read", path, e))?;
        let (id, new) = self.put_blob(&content)?;
        Ok((id, content.len() as u64, new))
    }

    /// Stores what `file` holds from its current position to its end (a captured work-tree
    /// file: possibly large; the default holds it in memory, [`store::FsBackupStore`] streams
    /// it). Borrowed: the caller can still `fstat` it afterwards. `path` names it in errors.
    /// Returns its id, its size and whether bytes were written.
    fn put_blob_from(&self, mut file: &std::fs::File, path: &std::path::Path) -> Result<(BlobId, u64, bool)> {
        use std::io::Read as _;
        let mut content = Vec::new();
        file.read_to_end(&mut content).map_err(|e| IoError::new("read", path, e))?;
        let (id, new) = self.put_blob(&content)?;
        Ok((id, content.len() as u64, new))
    }

    /// Checks a blob against its hash and returns its size, without holding it in memory
    /// where the store can stream it.
    fn check_blob(&self, id: &BlobId) -> Result<u64> {
        Ok(self.get_blob(id)?.len() as u64)
    }

    /// Writes a blob's content, checked against its hash, to `out` (named `out_path` in
    /// errors), streaming where the store can; no sync. On [`Error::CorruptBlob`] part of the
    /// content may have been written: the caller discards `out`.
    fn copy_blob_to(&self, id: &BlobId, out: &mut std::fs::File, out_path: &std::path::Path) -> Result<()> {
        use std::io::Write as _;
        let content = self.get_blob(id)?;
        out.write_all(&content).map_err(|e| IoError::new("write", out_path, e))?;
        Ok(())
    }

    /// Writes a blob's content, checked against its hash, to a new file at `dest` (mode
    /// `0600`).
    fn get_blob_to_file(&self, id: &BlobId, dest: &std::path::Path) -> Result<()> {
        let content = self.get_blob(id)?;
        crate::fsutil::atomic_write(dest, &content)?;
        Ok(())
    }

    /// Whether a blob exists (not re-hashed).
    fn has_blob(&self, id: &BlobId) -> Result<bool>;

    /// The stat of a blob's file in the store, when the store keeps blobs as files of ours
    /// (`None`: not there, or a store that cannot tell). For the
    /// [stat cache](statcache): a blob whose file keeps the stat it had when it was last
    /// hashed need not be hashed again.
    fn blob_stat(&self, id: &BlobId) -> Result<Option<statcache::FileStat>> {
        let _ = id;
        Ok(None)
    }

    /// The file that holds blob `id`'s content as it is, for a message that points an operator
    /// at it (`None`: a store that keeps its blobs otherwise).
    fn blob_file(&self, id: &BlobId) -> Option<std::path::PathBuf> {
        let _ = id;
        None
    }

    /// Writes a manifest atomically. Every blob it names must already be stored. This is the
    /// snapshot's completion marker.
    fn put_manifest(&self, manifest: &Manifest) -> Result<()>;

    /// Reads and validates a manifest.
    fn manifest(&self, id: &SnapshotId) -> Result<Manifest>;

    /// All complete snapshots, oldest first.
    fn list(&self) -> Result<Vec<SnapshotSummary>>;

    /// The ids of all complete snapshots, without reading their manifests where the store can
    /// (sorted by id).
    fn ids(&self) -> Result<Vec<SnapshotId>> {
        let mut ids: Vec<SnapshotId> = self.list()?.into_iter().map(|s| s.id).collect();
        ids.sort();
        Ok(ids)
    }

    /// Re-hashes every blob of the named snapshots (all when `None`) and checks that each
    /// manifest's blobs exist.
    fn verify(&self, ids: Option<&[SnapshotId]>) -> Result<VerifyReport>;

    /// Keeps the `keep` newest snapshots plus every one in `protect`, deletes the rest, then
    /// deletes blobs no kept manifest refers to (including leftovers of interrupted
    /// snapshots). With `dry_run`, only reports.
    fn prune(&self, keep: usize, protect: &[SnapshotId], dry_run: bool) -> Result<PruneReport>;
}
