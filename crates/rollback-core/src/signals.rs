//! SIGINT and SIGTERM for front-ends that stop at a boundary (a run's step, a watch's round)
//! instead of dying half-way: the first signal sets a flag, a second ends the process.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

/// Process groups of children that must not outlive forge-rollback when a signal ends it
/// ([`die_by`]): a check's program runs in its own group (a Ctrl-C at the terminal does not
/// reach it), and is killed with its group when its check is dropped, which a process dying
/// by a signal never does.
static CHILD_GROUPS: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// A child's process group, killed if a signal ends forge-rollback while this lives.
#[must_use = "the group is forgotten when this is dropped"]
pub(crate) struct ChildGroup(i32);

impl ChildGroup {
    /// Remembers the group `pgid` (a child spawned with `process_group(0)`).
    pub(crate) fn new(pgid: i32) -> Self {
        CHILD_GROUPS.lock().unwrap_or_else(PoisonError::into_inner).push(pgid);
        Self(pgid)
    }
}

impl Drop for ChildGroup {
    fn drop(&mut self) {
        let mut groups = CHILD_GROUPS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = groups.iter().position(|g| *g == self.0) {
            groups.swap_remove(i);
        }
    }
}

/// A stop flag set by SIGINT or SIGTERM, for front-ends that watch.
///
/// The signals are received on the shared runtime, so the process is not killed by them while
/// the flag is installed: the watcher finishes its round (a rollback in progress completes)
/// and returns.
pub fn stop_on_signals() -> Arc<AtomicBool> {
    stop_on_signals_saying(|| {})
}

/// [`stop_on_signals`], calling `notice` when the first signal comes (a front-end says what
/// happens now: the step or round under way finishes first). A second SIGINT or SIGTERM ends
/// the process at once, by that signal, as `kill` would: for a step that hangs (a `git` whose
/// filter waits on the network). Its journal keeps what it did; the run shows as `interrupted`.
pub fn stop_on_signals_saying(notice: impl Fn() + Send + 'static) -> Arc<AtomicBool> {
    install(false, notice)
}

/// For a command with no boundary to stop at (`verify`): the first SIGINT or SIGTERM ends the
/// process by that signal, as without a handler, but kills the check programs it started
/// first instead of leaving them running, orphaned.
pub fn die_on_signals() {
    install(true, || {});
}

/// The listener tasks [`install`] started; a [`Scope`] ends them when it is dropped.
#[cfg(unix)]
static LISTENERS: Mutex<Vec<tokio::task::AbortHandle>> = Mutex::new(Vec::new());

/// SIGINT's and SIGTERM's actions as [`install`] set them, kept when a [`Scope`] put the host
/// process's back: tokio sets its handler once per process, so a later [`install`] sets these
/// again itself.
#[cfg(unix)]
static ARMED: Mutex<Vec<(libc::c_int, libc::sigaction)>> = Mutex::new(Vec::new());

#[cfg(unix)]
const HANDLED: [libc::c_int; 2] = [libc::SIGINT, libc::SIGTERM];

/// The current action of `signo`.
#[cfg(unix)]
fn action_of(signo: libc::c_int) -> libc::sigaction {
    // SAFETY: a zeroed `sigaction` is a valid value (no handler, empty mask); sigaction(2)
    // with a null new action only reads the current one into it.
    #[allow(unsafe_code)]
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        libc::sigaction(signo, std::ptr::null(), &raw mut old);
        old
    }
}

/// Makes `action` the action of `signo`.
#[cfg(unix)]
fn set_action(signo: libc::c_int, action: &libc::sigaction) {
    // SAFETY: `action` was read by sigaction(2) itself ([`action_of`]): a handler that is
    // still in the process (tokio's, or the host's own), with its flags and mask.
    #[allow(unsafe_code)]
    unsafe {
        libc::sigaction(signo, action, std::ptr::null_mut());
    }
}

/// A front-end run inside a host process that goes on after it (the Python module's
/// `cli_main`): the handlers of [`stop_on_signals`] and [`die_on_signals`] set while this
/// lives act as in the binary; when it is dropped their listener tasks end and SIGINT and
/// SIGTERM get back the actions the process had before (Python's own `KeyboardInterrupt`,
/// SIGTERM's default), so a command that ran once does not decide what a later signal does to
/// the host.
#[must_use = "the host's actions come back when this is dropped"]
pub struct Scope {
    #[cfg(unix)]
    before: Vec<(libc::c_int, libc::sigaction)>,
    /// SIGHUP's action before [`ignore_hangup`], put back as it was.
    #[cfg(unix)]
    hangup: libc::sigaction,
}

impl Scope {
    /// Notes the process's SIGINT, SIGTERM and SIGHUP actions, to put back on drop.
    pub fn enter() -> Self {
        Self {
            #[cfg(unix)]
            before: HANDLED.iter().map(|&signo| (signo, action_of(signo))).collect(),
            #[cfg(unix)]
            hangup: action_of(libc::SIGHUP),
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        #[cfg(unix)]
        {
            set_action(libc::SIGHUP, &self.hangup);
            for task in LISTENERS.lock().unwrap_or_else(PoisonError::into_inner).drain(..) {
                task.abort();
            }
            let mut armed = ARMED.lock().unwrap_or_else(PoisonError::into_inner);
            for (signo, before) in &self.before {
                let now = action_of(*signo);
                if now.sa_sigaction != before.sa_sigaction {
                    armed.retain(|(s, _)| s != signo);
                    armed.push((*signo, now));
                    set_action(*signo, before);
                }
            }
        }
    }
}

/// Ignores SIGHUP from now on (until the [`Scope`] ends), as `nohup` would, for a command that
/// has begun to change things (a run's first step): an operator whose SSH session drops in the
/// middle of a rollback wants it finished, not stopped half-way with no one there to `resume`
/// it. Ignored, not handled: the programs the steps start (`git`, a migration tool, a restart
/// script) inherit it, and the shell's hangup reaches them too (they share our process group),
/// so a handler of our own would still let the step under way be killed. What the run prints
/// to the terminal that went away is lost (the front-end writes best effort); `run.log` and
/// the journal keep it.
pub fn ignore_hangup() {
    #[cfg(unix)]
    // SAFETY: setting a signal's action to "ignore" passes no memory and runs no code.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
}

/// The handlers: the first signal sets the returned flag and calls `notice` (or, with
/// `first_ends`, ends the process); a second ends it.
fn install(first_ends: bool, notice: impl Fn() + Send + 'static) -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // Registered before this returns, not in the spawned task: a signal that comes as soon
        // as the watch starts sets the flag instead of killing the process.
        // No runtime (too few file descriptors to build one): no handlers, and the signals
        // keep their default action; the caller finds out from `rt::try_runtime` itself.
        let Ok(rt) = crate::rt::try_runtime() else { return flag };
        let _context = rt.enter();
        // A [`Scope`] put the host's actions back after an earlier command: tokio's come back.
        for (signo, action) in ARMED.lock().unwrap_or_else(PoisonError::into_inner).iter() {
            set_action(*signo, action);
        }
        if let (Ok(mut int), Ok(mut term)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate())) {
            let f = flag.clone();
            let task = rt.spawn(async move {
                let mut seen = 0;
                loop {
                    let signo = tokio::select! {
                        _ = int.recv() => libc::SIGINT,
                        _ = term.recv() => libc::SIGTERM,
                    };
                    seen += 1;
                    if seen == 1 && !first_ends {
                        f.store(true, Ordering::SeqCst);
                        notice();
                    } else {
                        die_by(signo);
                    }
                }
            });
            LISTENERS.lock().unwrap_or_else(PoisonError::into_inner).push(task.abort_handle());
        }
    }
    flag
}

/// Ends the process by `signo` with its default action (the exit status a shell reads as
/// killed by it), killing the process groups of the check programs running first.
#[cfg(unix)]
fn die_by(signo: libc::c_int) {
    kill_child_groups();
    // SAFETY: restoring a signal's default action and raising it are plain libc calls with no
    // memory passed; the process ends on the raise.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(signo, libc::SIG_DFL);
        libc::raise(signo);
    }
    std::process::exit(128 + signo);
}

/// Kills the process groups of the check programs still running: for a process that ends
/// with work it will not wait for (a signal, or the Python module's interpreter exit with a
/// `verify` left in the background), so that no check program outlives it, orphaned.
#[cfg(unix)]
pub fn kill_child_groups() {
    for pgid in CHILD_GROUPS.lock().unwrap_or_else(PoisonError::into_inner).iter() {
        kill_group(*pgid);
    }
}

/// SIGKILL to every process of group `pgid` (nothing for 0 or 1).
#[cfg(unix)]
pub(crate) fn kill_group(pgid: i32) {
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals exactly the process group `pgid`, which a
    // child of ours leads (spawned with `process_group(0)`, not reaped yet).
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
}

/// Has the child `cmd` starts killed (SIGKILL) when forge-rollback dies, by `kill -9` or the
/// OOM killer, which run no destructor and no signal handler: no migration, restart program or
/// `git push` goes on unsupervised, past its timeout, racing the operator's `resume`. Linux's
/// parent-death signal: it reaches the program itself, not what the program starts (a server
/// a restart script leaves running stays), and follows the thread that started the child;
/// every caller waits for its child on that thread (or on the runtime's, which outlive it).
#[cfg(target_os = "linux")]
pub(crate) fn die_with_parent(cmd: &mut tokio::process::Command) {
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    let arm = move || {
        // SAFETY: `prctl` and `getppid` are async-signal-safe, as a `pre_exec` hook must be.
        #[allow(unsafe_code)]
        let (armed, ppid) =
            unsafe { (libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong), libc::getppid()) };
        if armed != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // The parent died between the fork and the `prctl`: no signal will come.
        if ppid != parent {
            return Err(std::io::Error::other("forge-rollback exited while starting it"));
        }
        Ok(())
    };
    // SAFETY: the hook only makes the two async-signal-safe calls above.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(arm);
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn die_with_parent(_cmd: &mut tokio::process::Command) {}

/// Has the child, and the programs it starts, inherit descriptor `fd` (every descriptor
/// forge-rollback opens is closed on exec): an `flock` on it is held until the last of them
/// exits ([`crate::lock::PushLock`]). `fd` must stay open until the child is started.
#[cfg(unix)]
pub(crate) fn inherit_fd(cmd: &mut tokio::process::Command, fd: std::os::fd::RawFd) {
    let keep = move || {
        // SAFETY: `fcntl` is async-signal-safe; it changes the flags of the child's copy only.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
        if rc == -1 { Err(std::io::Error::last_os_error()) } else { Ok(()) }
    };
    // SAFETY: the hook only makes the async-signal-safe call above.
    #[allow(unsafe_code)]
    unsafe {
        cmd.pre_exec(keep);
    }
}

#[cfg(all(test, unix))]
mod tests {
    /// The Python module's `cli_main` runs a command inside a process that goes on: the
    /// hangup it ignored during a run must be the host's again afterwards.
    #[test]
    fn a_scope_gives_sighup_back_the_action_it_had() {
        // SAFETY: a plain libc call with no memory passed (the test's process only).
        #[allow(unsafe_code)]
        unsafe {
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
        }
        {
            let _scope = super::Scope::enter();
            super::ignore_hangup();
            assert_eq!(super::action_of(libc::SIGHUP).sa_sigaction, libc::SIG_IGN);
        }
        assert_eq!(super::action_of(libc::SIGHUP).sa_sigaction, libc::SIG_DFL);
    }
}
