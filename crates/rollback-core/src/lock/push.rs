//! The push lock: a `git push` of `[deploy]` that may still change the remote.
//!
//! A push is the one step whose effect lands elsewhere, late: the remote updates its branch
//! only once it has the whole pack and its hooks have accepted it. A run killed during its
//! push (`kill -9`, the OOM killer) has its `git push` killed with it (a parent-death signal),
//! but what that push started on this machine goes on: for a remote reached by path, the
//! `git receive-pack` and its hooks, which update the branch seconds later. An undo or resume
//! that read the remote meanwhile would find it where it was and act on that.
//!
//! So the push runs holding an `flock` on `<state>/push.lock`, on a descriptor that `git push`
//! and every program it starts inherit: the kernel keeps the lock until the last of them
//! exits, whoever killed whom. A run, resume or undo waits for it like for a git writing the
//! repository, and refuses (exit 3) while it is held. The file names the run and the push's
//! process group.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Error, Taken, check_folder, held, open_lock_file, take, try_flock};
use crate::fsutil::IoContext;
use crate::time::Timestamp;

/// The push a live process holds the push lock for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushHolder {
    /// The run that started it.
    pub run_id: String,
    /// The process group of its `git push` (its programs on this machine are in it), once
    /// started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pgid: Option<u32>,
    /// When it started.
    pub started_at: Timestamp,
}

impl std::fmt::Display for PushHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the `git push` of run {}", self.run_id)?;
        if let Some(pgid) = self.pgid {
            write!(f, " (process group {pgid})")?;
        }
        write!(f, ", started {}", self.started_at.log_format())
    }
}

/// The push lock, held while a push runs.
#[derive(Debug)]
pub(crate) struct PushLock {
    file: File,
    path: PathBuf,
    holder: PushHolder,
}

impl PushLock {
    /// Takes the push lock at `path` for run `run_id`; [`Error::PushRunning`] while another
    /// push holds it.
    pub(crate) fn acquire(path: &Path, run_id: &str) -> Result<Self, Error> {
        check_folder(path)?;
        let file = match take(path)? {
            Taken::Ours(file) => file,
            Taken::Held(mut file) => {
                return Err(Error::PushRunning { path: path.to_owned(), holder: read_holder(&mut file) });
            }
        };
        let mut lock = Self {
            file,
            path: path.to_owned(),
            holder: PushHolder { run_id: run_id.to_owned(), pgid: None, started_at: Timestamp::now() },
        };
        lock.write_holder()?;
        Ok(lock)
    }

    /// The descriptor the push must inherit (it is close-on-exec here).
    pub(crate) fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    /// Records the push's process group, once it is started.
    pub(crate) fn started(&mut self, pgid: u32) {
        self.holder.pgid = Some(pgid);
        // Only the message of a later refusal reads it: a failed write costs the group's number.
        let _ = self.write_holder();
    }

    fn write_holder(&mut self) -> Result<(), Error> {
        let json = serde_json::to_vec(&self.holder).unwrap_or_default();
        self.file.set_len(0).at("truncate", &self.path)?;
        self.file.seek(SeekFrom::Start(0)).at("seek", &self.path)?;
        self.file.write_all(&json).at("write", &self.path)?;
        self.file.sync_all().at("sync", &self.path)?;
        Ok(())
    }
}

impl Drop for PushLock {
    /// Removes the file if nothing holds the lock any more: the push ended and left nothing
    /// running. Else a program it started lives on, holding the lock, and the file stays for
    /// the next command to find.
    fn drop(&mut self) {
        let Ok(again) = open_lock_file(&self.path, OpenOptions::new().read(true)) else { return };
        // Our descriptor shares the lock with the push's programs: close it first, then see
        // whether a fresh one can take it.
        let _ = std::mem::replace(&mut self.file, again);
        if try_flock(&self.file, &self.path).unwrap_or(false) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn read_holder(file: &mut File) -> Option<PushHolder> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    serde_json::from_str(&text).ok()
}

/// [`Error::PushRunning`] while a live process holds the push lock at `path` (a push, or a
/// program it started, still runs), naming the push; `Ok` when it is free or not there, or
/// when all that holds it are git's own background helpers ([`background_helper`]).
pub fn refuse_push_running(path: &Path) -> Result<(), Error> {
    let Some(mut file) = held(path)? else { return Ok(()) };
    let ours = file.metadata().at("read metadata of", path)?;
    let holders = holders((ours.dev(), ours.ino()));
    if !holders.is_empty() && holders.iter().all(|cmdline| background_helper(cmdline)) {
        return Ok(());
    }
    Err(Error::PushRunning { path: path.to_owned(), holder: read_holder(&mut file) })
}

/// Whether a process that holds the push lock (it inherited the descriptor from the push) is
/// one of git's background helpers, which outlive a push by design and change no remote: the
/// credential cache (`git credential-cache--daemon`, 15 minutes by default) and a detached
/// `git gc --auto` or `git maintenance` a path remote's `receive-pack` starts once it has
/// updated its refs.
fn background_helper(cmdline: &[String]) -> bool {
    let args: Vec<&str> = cmdline.iter().map(String::as_str).collect();
    let name = args.first().map(|a| a.rsplit('/').next().unwrap_or(a)).unwrap_or_default();
    if name.starts_with("git-credential-cache--daemon") {
        return true;
    }
    if name != "git" {
        return false;
    }
    // The subcommand, after git's own options (`-C DIR`, `-c k=v`, `--git-dir=...`).
    let mut rest = args.iter().skip(1);
    let sub = loop {
        match rest.next() {
            Some(&("-C" | "-c")) => {
                rest.next();
            }
            Some(a) if a.starts_with('-') => {}
            other => break other.copied().unwrap_or_default(),
        }
    };
    matches!(sub, "credential-cache--daemon" | "gc" | "maintenance")
}

/// The command lines of the other processes (Linux: `/proc`) that have the file `(dev, ino)`
/// open (this one has: it is looking).
fn holders((dev, ino): (u64, u64)) -> Vec<Vec<String>> {
    let Ok(procs) = std::fs::read_dir("/proc") else { return Vec::new() };
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())).map(str::to_owned)
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else { continue };
        let holds =
            fds.flatten().any(|fd| std::fs::metadata(fd.path()).is_ok_and(|m| m.dev() == dev && m.ino() == ino));
        if holds {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            out.push(
                cmdline
                    .split(|b| *b == 0)
                    .filter(|a| !a.is_empty())
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect(),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child of the push that keeps the descriptor, named `argv0`.
    fn child_holding(lock: &PushLock, argv0: &str) -> std::process::Child {
        use std::os::unix::process::CommandExt as _;
        let fd = lock.fd();
        let mut cmd = std::process::Command::new("bash");
        cmd.args(["-c", &format!("exec -a {argv0} sleep 30")]);
        // SAFETY: `fcntl` is async-signal-safe.
        #[allow(unsafe_code)]
        unsafe {
            cmd.pre_exec(move || {
                if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.spawn().unwrap()
    }

    #[test]
    fn a_lock_held_only_by_the_credential_cache_is_free_one_held_by_anything_else_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("push.lock");
        for (argv0, free) in [("git-credential-cache--daemon", true), ("git-receive-pack", false)] {
            let lock = PushLock::acquire(&p, "r1").unwrap();
            let mut child = child_holding(&lock, argv0);
            // The child has exec'd (its command line is its own) before the look.
            let proc_cmdline = format!("/proc/{}/cmdline", child.id());
            while !std::fs::read(&proc_cmdline).unwrap_or_default().starts_with(argv0.as_bytes()) {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            drop(lock);
            assert_eq!(refuse_push_running(&p).is_ok(), free, "{argv0}");
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    #[test]
    fn gits_background_helpers_are_told_from_a_push() {
        let argv = |a: &[&str]| a.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        for helper in [
            argv(&["git-credential-cache--daemon", "/home/u/.cache/git/credential/socket"]),
            argv(&["git", "credential-cache--daemon", "/run/socket"]),
            argv(&["/usr/bin/git", "gc", "--auto", "--quiet"]),
            argv(&["git", "-C", "/srv/remote.git", "-c", "gc.autoDetach=true", "maintenance", "run", "--auto"]),
        ] {
            assert!(background_helper(&helper), "{helper:?}");
        }
        for push in [
            argv(&["git", "push", "--porcelain", "origin"]),
            argv(&["git-receive-pack", "/srv/remote.git"]),
            argv(&["git", "receive-pack", "/srv/remote.git"]),
            argv(&["/bin/sh", "hooks/pre-receive"]),
            argv(&["git", "-C", "gc", "push"]),
            Vec::new(),
        ] {
            assert!(!background_helper(&push), "{push:?}");
        }
    }

    #[test]
    fn held_while_a_child_inherits_it_and_removed_when_free() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("push.lock");
        let mut lock = PushLock::acquire(&p, "r1").unwrap();
        lock.started(4242);
        let held = |p: &Path| match refuse_push_running(p) {
            Err(Error::PushRunning { holder: Some(h), .. }) => Some(h),
            Ok(()) => None,
            other => panic!("{other:?}"),
        };
        let holder = held(&p).expect("held");
        assert_eq!((holder.run_id.as_str(), holder.pgid), ("r1", Some(4242)));
        assert!(holder.to_string().contains("process group 4242"), "{holder}");
        assert!(matches!(PushLock::acquire(&p, "r2"), Err(Error::PushRunning { .. })));
        // A copy of the descriptor, as a child keeps it: the lock outlives ours.
        let child = lock.file.try_clone().unwrap();
        drop(lock);
        assert!(p.exists(), "the file stays while something holds the lock");
        assert_eq!(held(&p).map(|h| h.run_id), Some("r1".to_owned()));
        drop(child);
        assert_eq!(held(&p), None);
        drop(PushLock::acquire(&p, "r3").unwrap());
        assert!(!p.exists(), "removed once free");
    }
}
