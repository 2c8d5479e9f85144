//! Files bigger than the memory the tool may use (issue 13, case 12): capture streams each
//! file into the store and undo streams each blob back, so the binary's peak memory stays far
//! below the size of the files it moves.
#![allow(clippy::print_stderr)] // the measured figures are the point

use std::io::{Read, Write};
use std::path::Path;

use rollback_testkit::TestRepo;

use crate::common::fr;

const MIB: usize = 1 << 20;
/// Each file's size, in MiB.
const FILE_MIB: usize = 150;
/// The peak resident memory allowed for one command: well below one file.
const LIMIT_MIB: i64 = 80;

/// MiB `i` of the file made from `seed`: a pseudo-random MiB, stamped with its index.
fn block(seed: u64, i: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    let mut out = Vec::with_capacity(MIB);
    while out.len() < MIB {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out[..8].copy_from_slice(&(i as u64).to_le_bytes());
    out
}

fn write_big(path: &Path, seed: u64) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::fs::File::create(path).unwrap();
    let mut b = block(seed, 0);
    for i in 0..FILE_MIB {
        b[..8].copy_from_slice(&(i as u64).to_le_bytes());
        f.write_all(&b).unwrap();
    }
}

fn is_big(path: &Path, seed: u64) -> bool {
    let mut f = std::fs::File::open(path).unwrap();
    let mut want = block(seed, 0);
    let mut got = vec![0u8; MIB];
    for i in 0..FILE_MIB {
        want[..8].copy_from_slice(&(i as u64).to_le_bytes());
        f.read_exact(&mut got).unwrap();
        if got != want {
            return false;
        }
    }
    f.read(&mut got).unwrap() == 0
}

/// The largest peak resident set of the child processes waited for so far, in MiB.
fn children_peak_mib() -> i64 {
    // SAFETY: `usage` is a properly sized, writable struct for the duration of the call.
    #[allow(unsafe_code)]
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_CHILDREN, &raw mut usage), 0);
        usage
    };
    // Linux reports it in KiB.
    usage.ru_maxrss / 1024
}

#[test]
fn two_untracked_files_bigger_than_the_memory_limit_round_trip() {
    let r = TestRepo::new();
    r.three_releases();
    write_big(&r.path().join("data/a.bin"), 0x1234_5678);
    write_big(&r.path().join("data/b.bin"), 0x9abc_def0);
    let setup = children_peak_mib();

    let out = fr(&r, &["run", "--fast", "--yes", "--json", "--target", "v1"]);
    out.ok();
    let run_peak = children_peak_mib();
    assert!(!r.exists("data/a.bin") && !r.exists("data/b.bin"), "the rollback removed them");
    let id = out.json()["run_id"].as_str().unwrap().to_owned();

    fr(&r, &["undo", &id, "--yes", "--json"]).ok();
    let undo_peak = children_peak_mib();
    eprintln!(
        "peak RSS: git set-up {setup} MiB, run (capture) {run_peak} MiB, undo (restore) {undo_peak} MiB, \
         for 2 files of {FILE_MIB} MiB"
    );
    assert!(run_peak < LIMIT_MIB, "capture held {run_peak} MiB for {FILE_MIB} MiB files");
    assert!(undo_peak < LIMIT_MIB, "undo held {undo_peak} MiB for {FILE_MIB} MiB files");
    assert!(is_big(&r.path().join("data/a.bin"), 0x1234_5678), "a.bin is back byte for byte");
    assert!(is_big(&r.path().join("data/b.bin"), 0x9abc_def0), "b.bin is back byte for byte");
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = rollback_testkit::clean_git_env(&mut std::process::Command::new("git"))
        .current_dir(dir)
        .args(["-c", "user.name=t", "-c", "user.email=t@e"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The work tree's file system fills up after a rollback that removed a big untracked file:
/// the undo is refused before it changes anything, saying how much to free; with room again it
/// gives the file back.
#[test]
fn an_undo_without_room_for_its_files_is_refused_before_anything_changes() {
    let Some(fs) = crate::common::SmallFs::or_skip("size=4m") else { return };
    let repo = fs.mountpoint.join("app");
    std::fs::create_dir(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    std::fs::write(repo.join("main.py"), "V = 1\n").unwrap();
    git(&repo, &["add", "-A"]);
    git(&repo, &["commit", "-qm", "v1"]);
    git(&repo, &["tag", "v1"]);
    std::fs::write(repo.join("main.py"), "V = 2\n").unwrap();
    git(&repo, &["commit", "-qam", "v2"]);
    let data: Vec<u8> =
        (0..1_500_000u32).map(|n| u8::try_from((n.wrapping_mul(2_654_435_761) >> 24) & 0xff).unwrap()).collect();
    std::fs::write(repo.join("data.bin"), &data).unwrap();
    // The state folder (and its blobs) on the ordinary disk.
    let state = tempfile::tempdir().unwrap();
    let config = state.path().join("rollback.toml");
    std::fs::write(&config, format!("[state]\ndir = \"{}\"\n", state.path().join("state").display())).unwrap();
    let cfg = config.to_str().unwrap();
    let fr_at = |args: &[&str]| {
        let mut all = vec!["--config", cfg];
        all.extend_from_slice(args);
        crate::common::run_in(&repo, &all, &[])
    };
    let out = fr_at(&["run", "--fast", "--yes", "--json", "--target", "v1"]);
    out.ok();
    let id = out.json()["run_id"].as_str().unwrap().to_owned();
    assert!(!repo.join("data.bin").exists());

    // Fill the file system: less room than the 1.5 MB the undo writes back.
    let free = rollback_core::backup::snapshot::free_space(&repo).unwrap();
    let filler = vec![0u8; usize::try_from(free).unwrap() - 500_000];
    std::fs::write(fs.mountpoint.join("filler"), filler).unwrap();
    let head = git(&repo, &["rev-parse", "HEAD"]);
    let tree = rollback_testkit::TreeState::capture(&repo);
    let refused = fr_at(&["undo", &id, "--yes"]);
    refused.code(4);
    assert!(
        refused.stderr.contains(&format!("undo of run {id} needs 1500"))
            && refused.stderr.contains("(1500000 for the files it writes back, 0 for the tracked files git writes, "),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("then run the undo again; nothing was changed"), "{}", refused.stderr);
    assert_eq!(git(&repo, &["rev-parse", "HEAD"]), head, "HEAD did not move");
    assert_eq!(rollback_testkit::TreeState::capture(&repo), tree, "the tree did not change");

    std::fs::remove_file(fs.mountpoint.join("filler")).unwrap();
    fr_at(&["undo", &id, "--yes"]).ok();
    assert_eq!(std::fs::read(repo.join("data.bin")).unwrap(), data);
    assert_eq!(std::fs::read(repo.join("main.py")).unwrap(), b"V = 2\n");
}

/// A repository on a small file system whose state folder is elsewhere; `fr_at` runs the
/// binary there with that configuration.
struct SmallRepo {
    fs: crate::common::SmallFs,
    repo: std::path::PathBuf,
    _state: tempfile::TempDir,
    cfg: String,
}

impl SmallRepo {
    fn new(options: &str) -> Option<Self> {
        let fs = crate::common::SmallFs::or_skip(options)?;
        let repo = fs.mountpoint.join("app");
        std::fs::create_dir(&repo).unwrap();
        git(&repo, &["init", "-q", "-b", "main"]);
        let state = tempfile::tempdir().unwrap();
        let config = state.path().join("rollback.toml");
        std::fs::write(&config, format!("[state]\ndir = \"{}\"\n", state.path().join("state").display())).unwrap();
        let cfg = config.to_str().unwrap().to_owned();
        Some(Self { fs, repo, _state: state, cfg })
    }

    fn fr_at(&self, args: &[&str]) -> crate::common::Out {
        let mut all = vec!["--config", self.cfg.as_str()];
        all.extend_from_slice(args);
        crate::common::run_in(&self.repo, &all, &[])
    }

    fn commit(&self, message: &str) {
        git(&self.repo, &["add", "-A"]);
        git(&self.repo, &["commit", "-qm", message]);
    }

    /// Fills the file system up to `keep` bytes free.
    fn fill_to(&self, keep: u64) {
        let free = rollback_core::backup::snapshot::free_space(&self.repo).unwrap();
        std::fs::write(self.fs.mountpoint.join("filler"), vec![0u8; usize::try_from(free - keep).unwrap()]).unwrap();
    }
}

/// The rollback deleted a big tracked file (the broken release added it); the file system
/// then fills up. The undo's `git reset` writes that file back: counted now, so the undo is
/// refused before it changes anything (before, it passed the check and failed half-way, HEAD
/// still at the target and the local edit not back).
#[test]
fn an_undo_without_room_for_the_tracked_files_git_writes_is_refused() {
    let Some(s) = SmallRepo::new("size=4m") else { return };
    std::fs::write(s.repo.join("main.py"), "V = 1\n").unwrap();
    s.commit("v1");
    git(&s.repo, &["tag", "v1"]);
    let data: Vec<u8> = (0..1_500_000u32).map(|n| (n.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(s.repo.join("model.bin"), &data).unwrap();
    s.commit("v2: a model");
    std::fs::write(s.repo.join("main.py"), "V = 2 # local edit\n").unwrap();
    let out = s.fr_at(&["run", "--fast", "--yes", "--json", "--target", "v1"]);
    out.ok();
    let id = out.json()["run_id"].as_str().unwrap().to_owned();
    assert!(!s.repo.join("model.bin").exists());

    s.fill_to(500_000);
    let head = git(&s.repo, &["rev-parse", "HEAD"]);
    let tree = rollback_testkit::TreeState::capture(&s.repo);
    let refused = s.fr_at(&["undo", &id, "--yes"]);
    refused.code(4);
    assert!(refused.stderr.contains("1500000 for the tracked files git writes"), "{}", refused.stderr);
    assert_eq!(git(&s.repo, &["rev-parse", "HEAD"]), head, "HEAD did not move");
    assert_eq!(rollback_testkit::TreeState::capture(&s.repo), tree, "the tree did not change");

    std::fs::remove_file(s.fs.mountpoint.join("filler")).unwrap();
    s.fr_at(&["undo", &id, "--yes"]).ok();
    assert_eq!(std::fs::read(s.repo.join("model.bin")).unwrap(), data);
    assert_eq!(std::fs::read(s.repo.join("main.py")).unwrap(), b"V = 2 # local edit\n");
}

/// Room in bytes but not in inodes: the undo makes 200 untracked files again on a file
/// system that can hold only a few more. Refused before anything changes, naming the count
/// (before, it wrote some of them and failed half-way).
#[test]
fn an_undo_without_inodes_for_its_files_is_refused() {
    let Some(s) = SmallRepo::new("size=8m,nr_inodes=400") else { return };
    std::fs::write(s.repo.join("main.py"), "V = 1\n").unwrap();
    s.commit("v1");
    git(&s.repo, &["tag", "v1"]);
    std::fs::write(s.repo.join("main.py"), "V = 2\n").unwrap();
    s.commit("v2");
    std::fs::create_dir(s.repo.join("uploads")).unwrap();
    for n in 0..200 {
        std::fs::write(s.repo.join(format!("uploads/{n}.txt")), format!("upload {n}\n")).unwrap();
    }
    let before = rollback_testkit::TreeState::capture(&s.repo);
    let out = s.fr_at(&["run", "--fast", "--yes", "--json", "--target", "v1"]);
    out.ok();
    let id = out.json()["run_id"].as_str().unwrap().to_owned();
    assert!(!s.repo.join("uploads").exists());

    // Use up the inodes, leaving about 20.
    let filler = s.fs.mountpoint.join("many");
    std::fs::create_dir(&filler).unwrap();
    let mut n = 0;
    while rollback_core::backup::snapshot::free_inodes(&s.repo).unwrap().unwrap() > 20 {
        std::fs::write(filler.join(n.to_string()), "").unwrap();
        n += 1;
    }
    let tree = rollback_testkit::TreeState::capture(&s.repo);
    let refused = s.fr_at(&["undo", &id, "--yes"]);
    refused.code(4);
    assert!(refused.stderr.contains("makes 202 file(s), symlink(s) and folder(s) where none is"), "{}", refused.stderr);
    assert_eq!(rollback_testkit::TreeState::capture(&s.repo), tree, "the tree did not change");

    std::fs::remove_dir_all(&filler).unwrap();
    s.fr_at(&["undo", &id, "--yes"]).ok();
    assert_eq!(rollback_testkit::TreeState::capture(&s.repo), before);
}

/// RES-RESET-NOROOM: the target brings back a big tracked file the broken release deleted, and
/// the work tree's file system has less room than that. The run's reset would stop half-way
/// (part of the tree at the target, a torn file, and with `git` only "unable to write file"):
/// it is refused before anything changes, saying how much to free; with room it goes through.
/// Both back-ends.
#[test]
fn a_run_without_room_for_the_tracked_files_its_reset_writes_is_refused() {
    for backend in ["git-cli", "git2"] {
        let Some(s) = SmallRepo::new("size=4m") else { return };
        let config = std::fs::read_to_string(&s.cfg).unwrap();
        std::fs::write(&s.cfg, format!("{config}[vcs]\nbackend = \"{backend}\"\n")).unwrap();
        let data: Vec<u8> = (0..1_500_000u32).map(|n| (n.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
        std::fs::write(s.repo.join("model.bin"), &data).unwrap();
        std::fs::write(s.repo.join("main.py"), "V = 1\n").unwrap();
        s.commit("v1: a model");
        git(&s.repo, &["tag", "v1"]);
        std::fs::remove_file(s.repo.join("model.bin")).unwrap();
        std::fs::write(s.repo.join("main.py"), "V = 2\n").unwrap();
        s.commit("v2: no model");
        git(&s.repo, &["gc", "-q"]);

        s.fill_to(500_000);
        let head = git(&s.repo, &["rev-parse", "HEAD"]);
        let tree = rollback_testkit::TreeState::capture(&s.repo);
        let refused = s.fr_at(&["run", "--fast", "--yes", "--target", "v1"]);
        refused.code(4);
        assert!(refused.stderr.contains("(1500000 for the tracked files it writes, "), "{backend}: {}", refused.stderr);
        assert!(refused.stderr.contains("then run again; nothing was changed"), "{backend}: {}", refused.stderr);
        assert_eq!(git(&s.repo, &["rev-parse", "HEAD"]), head, "{backend}: HEAD did not move");
        assert_eq!(rollback_testkit::TreeState::capture(&s.repo), tree, "{backend}: the tree did not change");

        std::fs::remove_file(s.fs.mountpoint.join("filler")).unwrap();
        s.fr_at(&["run", "--fast", "--yes", "--target", "v1"]).ok();
        assert_eq!(std::fs::read(s.repo.join("model.bin")).unwrap(), data, "{backend}");
    }
}

/// The same for inodes: the target brings back a folder of 120 files on a file system that
/// can make only a few more.
#[test]
fn a_run_without_inodes_for_the_files_its_reset_makes_is_refused() {
    let Some(s) = SmallRepo::new("size=8m,nr_inodes=600") else { return };
    std::fs::create_dir(s.repo.join("d")).unwrap();
    for n in 0..120 {
        std::fs::write(s.repo.join(format!("d/{n}.txt")), format!("file {n}\n")).unwrap();
    }
    std::fs::write(s.repo.join("main.py"), "V = 1\n").unwrap();
    s.commit("v1");
    git(&s.repo, &["tag", "v1"]);
    std::fs::remove_dir_all(s.repo.join("d")).unwrap();
    std::fs::write(s.repo.join("main.py"), "V = 2\n").unwrap();
    s.commit("v2");
    git(&s.repo, &["gc", "-q"]);
    let filler = s.fs.mountpoint.join("many");
    std::fs::create_dir(&filler).unwrap();
    let mut n = 0;
    while rollback_core::backup::snapshot::free_inodes(&s.repo).unwrap().unwrap() > 40 {
        std::fs::write(filler.join(n.to_string()), "").unwrap();
        n += 1;
    }
    let tree = rollback_testkit::TreeState::capture(&s.repo);
    let refused = s.fr_at(&["run", "--fast", "--yes", "--target", "v1"]);
    refused.code(4);
    assert!(
        refused.stderr.contains("the rollback's reset makes 121 file(s) and folder(s) where none is"),
        "{}",
        refused.stderr
    );
    assert_eq!(rollback_testkit::TreeState::capture(&s.repo), tree, "the tree did not change");

    std::fs::remove_dir_all(&filler).unwrap();
    s.fr_at(&["run", "--fast", "--yes", "--target", "v1"]).ok();
    assert_eq!(std::fs::read_to_string(s.repo.join("d/7.txt")).unwrap(), "file 7\n");
}

/// RES-REHEARSE-TMPDIR: the rehearsal's copy goes to `$TMPDIR`; when that is full, the error
/// named the real work tree's file (whose disk has room). It names the copy's path now.
#[test]
fn a_full_tmpdir_is_named_by_the_rehearsal_not_the_work_tree() {
    let Some(fs) = crate::common::SmallFs::or_skip("size=1m") else { return };
    let r = rollback_testkit::TestRepo::new();
    r.three_releases();
    std::fs::write(r.path().join("big-untracked.bin"), vec![7u8; 2_000_000]).unwrap();
    let tmp = fs.mountpoint.to_str().unwrap();
    let out = crate::common::fr_env(&r, &["rehearse", "--fast", "--target", "v1"], &[("TMPDIR", tmp)]);
    out.code(1);
    assert!(out.stderr.contains(&format!("copy into `{tmp}/forge-rollback-rehearse-")), "{}", out.stderr);
    assert!(out.stderr.contains("No space left on device"), "{}", out.stderr);
}
