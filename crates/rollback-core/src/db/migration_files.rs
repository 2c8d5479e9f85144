//! Where migration files are read from: the work tree as it is now, or a commit through the
//! VCS backend (never checked out).

use std::path::{Path, PathBuf};

use super::{Error, Result};
use crate::paths::RepoPath;
use crate::vcs::{CommitId, VcsBackend};

/// A set of files to read migrations from.
pub(crate) enum Source<'a> {
    /// The work tree on disk.
    Worktree(&'a Path),
    /// A commit.
    Commit {
        /// The repository.
        vcs: &'a dyn VcsBackend,
        /// The commit.
        commit: &'a CommitId,
    },
}

/// One file: its path relative to the work tree (`/`-separated) and its bytes.
pub(crate) struct File {
    pub path: String,
    pub bytes: Vec<u8>,
}

impl Source<'_> {
    fn vcs_err(commit: &CommitId, e: crate::vcs::Error) -> Error {
        Error::Vcs { commit: commit.short().to_owned(), source: e }
    }

    /// The file at `rel` (relative to the work tree), `None` when absent.
    pub fn read(&self, rel: &Path) -> Result<Option<Vec<u8>>> {
        match self {
            Source::Worktree(root) => match std::fs::read(root.join(rel)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => {
                    Err(Error::BadMigration { path: rel.display().to_string(), detail: format!("cannot read it: {e}") })
                }
            },
            Source::Commit { vcs, commit } => {
                let Ok(path) = RepoPath::from_fs(Path::new(""), rel) else {
                    return Ok(None);
                };
                vcs.read_file_at(commit, &path).map_err(|e| Self::vcs_err(commit, e))
            }
        }
    }

    /// The files directly inside `dir` whose names `keep` accepts, sorted by name. A missing
    /// folder has no files.
    pub fn list(&self, dir: &Path, keep: &dyn Fn(&str) -> bool) -> Result<Vec<File>> {
        let dir_path = normalize(dir);
        let mut out = Vec::new();
        match self {
            Source::Worktree(root) => {
                let entries = match std::fs::read_dir(root.join(&dir_path)) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
                    Err(e) => {
                        return Err(Error::BadMigration {
                            path: dir_path.display().to_string(),
                            detail: format!("cannot list the folder: {e}"),
                        });
                    }
                };
                for entry in entries {
                    let entry = entry.map_err(|e| Error::BadMigration {
                        path: dir_path.display().to_string(),
                        detail: format!("cannot list the folder: {e}"),
                    })?;
                    let Ok(name) = entry.file_name().into_string() else { continue };
                    if !keep(&name) || !entry.file_type().is_ok_and(|t| t.is_file()) {
                        continue;
                    }
                    let rel = dir_path.join(&name);
                    let bytes = std::fs::read(entry.path()).map_err(|e| Error::BadMigration {
                        path: rel.display().to_string(),
                        detail: format!("cannot read it: {e}"),
                    })?;
                    out.push(File { path: rel.display().to_string(), bytes });
                }
            }
            Source::Commit { vcs, commit } => {
                let prefix = dir_path.display().to_string();
                for p in vcs.tracked_paths(commit).map_err(|e| Self::vcs_err(commit, e))? {
                    let Some(s) = p.to_str() else { continue };
                    let name = if prefix.is_empty() {
                        s
                    } else {
                        match s.strip_prefix(prefix.as_str()).and_then(|r| r.strip_prefix('/')) {
                            Some(n) => n,
                            None => continue,
                        }
                    };
                    if name.contains('/') || !keep(name) {
                        continue;
                    }
                    if let Some(bytes) = vcs.read_file_at(commit, &p).map_err(|e| Self::vcs_err(commit, e))? {
                        out.push(File { path: s.to_owned(), bytes });
                    }
                }
            }
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }
}

/// `a/./b/` → `a/b`; `..` is kept (the config refuses it anyway).
pub(crate) fn normalize(p: &Path) -> PathBuf {
    p.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect()
}
