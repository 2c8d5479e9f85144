//! git command-line backend.
use std::path::Path;
/// git command-line backend.
pub struct GitCliBackend;
impl GitCliBackend {
    /// Opens the repository containing `dir`.
    pub fn open(_dir: &Path) -> super::Result<Self> {
        unimplemented!()
    }
}
impl super::VcsBackend for GitCliBackend {
    fn name(&self) -> &'static str { unimplemented!() }
    fn workdir(&self) -> &Path { unimplemented!() }
    fn git_dir(&self) -> &Path { unimplemented!() }
    fn index_path(&self) -> std::path::PathBuf { unimplemented!() }
    fn head(&self) -> super::Result<super::Head> { unimplemented!() }
    fn resolve(&self, _: &str) -> super::Result<super::CommitId> { unimplemented!() }
    fn commit_info(&self, _: &super::CommitId) -> super::Result<super::CommitInfo> { unimplemented!() }
    fn is_ancestor(&self, _: &super::CommitId, _: &super::CommitId) -> super::Result<bool> { unimplemented!() }
    fn commits_between(&self, _: &super::CommitId, _: &super::CommitId, _: usize) -> super::Result<Vec<super::CommitInfo>> { unimplemented!() }
    fn diff(&self, _: &super::CommitId, _: &super::CommitId) -> super::Result<Vec<super::Change>> { unimplemented!() }
    fn status(&self, _: bool) -> super::Result<Vec<super::StatusEntry>> { unimplemented!() }
    fn tracked_paths(&self, _: &super::CommitId) -> super::Result<Vec<crate::paths::RepoPath>> { unimplemented!() }
    fn read_file_at(&self, _: &super::CommitId, _: &crate::paths::RepoPath) -> super::Result<Option<Vec<u8>>> { unimplemented!() }
    fn staged_blobs(&self) -> super::Result<Vec<super::StagedBlob>> { unimplemented!() }
    fn has_object(&self, _: &super::CommitId) -> super::Result<bool> { unimplemented!() }
    fn write_blob(&self, _: &[u8]) -> super::Result<super::CommitId> { unimplemented!() }
    fn reset_hard(&self, _: &super::CommitId, _: &str) -> super::Result<()> { unimplemented!() }
    fn checkout_branch_at(&self, _: &str, _: &super::CommitId, _: &str) -> super::Result<()> { unimplemented!() }
    fn set_ref(&self, _: &str, _: &super::CommitId, _: &str) -> super::Result<()> { unimplemented!() }
    fn delete_ref(&self, _: &str) -> super::Result<()> { unimplemented!() }
    fn read_ref(&self, _: &str) -> super::Result<Option<super::CommitId>> { unimplemented!() }
}
