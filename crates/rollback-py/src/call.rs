//! One call into the engine from Python, and every live call of the process.
//!
//! A [`Call`] is shared by the prompter, the observer and the binding of one `run`/`undo`/
//! `resume` (sync or async). It holds:
//! - the cancellation asked for (an asyncio task cancelled, Ctrl-C, interpreter exit): the
//!   engine asks [`Call::cancelled`] before each step and stops there, journaled `cancelled`;
//! - the exception to raise when the call returns (a callback's, `KeyboardInterrupt`,
//!   `AbortRollback`), so nothing ever unwinds through the engine;
//! - for async calls, the event loop that awaits it, where async callbacks are awaited, and the
//!   future of the async callback being awaited now: cancelling the call cancels it, so a
//!   callback waiting on something that never comes (an operator who never answers) cannot
//!   keep a cancelled call from stopping.
//!
//! Interpreter exit: an `atexit` hook ([`at_exit`]) cancels every live call and waits for each
//! to stop at its next step boundary (a second Ctrl-C stops the wait; the run is then left
//! `running` for `resume` or `undo`, as after a crash). From then on no worker thread touches
//! Python again ([`with_python`] refuses), so a run outliving the interpreter never panics.
//!
//! Fork: a child forked while calls are live has none of the threads that run them; the
//! `os.register_at_fork` hook ([`after_fork_in_child`]) makes it forget them and close its
//! copies of their run locks.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use pyo3::prelude::*;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The process's live calls, and whether Python is going away.
#[derive(Default)]
struct Registry {
    /// Interpreter exit has begun: worker threads must not attach any more.
    finalizing: bool,
    /// Worker threads inside [`with_python`] now.
    attached: usize,
    live: HashMap<u64, Arc<Call>>,
}

static REGISTRY: OnceLock<(Mutex<Registry>, Condvar)> = OnceLock::new();
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn registry() -> &'static (Mutex<Registry>, Condvar) {
    REGISTRY.get_or_init(Default::default)
}

/// Runs `f` with the GIL, unless the interpreter is exiting (then `None`): worker threads call
/// Python only through this.
pub fn with_python<R>(f: impl for<'py> FnOnce(Python<'py>) -> R) -> Option<R> {
    let (m, cv) = registry();
    {
        let mut r = lock(m);
        if r.finalizing {
            return None;
        }
        r.attached += 1;
    }
    let out = Python::try_attach(f);
    lock(m).attached -= 1;
    cv.notify_all();
    out
}

/// Whether this thread is Python's main thread (where Ctrl-C arrives).
pub fn on_main_thread(py: Python<'_>) -> PyResult<bool> {
    let threading = py.import("threading")?;
    Ok(threading.call_method0("current_thread")?.is(&threading.call_method0("main_thread")?))
}

/// Runs `work` (a call that is no run: `verify`, `assess`, `plan`) without the GIL. On the main
/// thread it runs on the shared runtime's blocking pool while this thread waits in short
/// slices, running Python's signal handlers between them: Ctrl-C (or a handler that raises)
/// ends the wait at once with its exception, as in the CLI, instead of after a check's or the
/// database's timeout. The work then ends in the background, its result dropped, as a
/// cancelled `averify()`'s is; it only reads.
pub fn interruptible<T: Send + 'static>(py: Python<'_>, work: impl FnOnce() -> T + Send + 'static) -> PyResult<T> {
    if !on_main_thread(py)? {
        return Ok(py.detach(work));
    }
    on_the_pool(py, work, Err)
}

/// Runs `work` on the shared runtime's blocking pool while this thread (the main one) waits
/// for it in 50 ms slices, running Python's signal handlers between them; what one raises
/// goes to `raised`, whose `Err` ends the wait there (the work is left to finish alone).
fn on_the_pool<T: Send + 'static>(
    py: Python<'_>,
    work: impl FnOnce() -> T + Send + 'static,
    mut raised: impl FnMut(PyErr) -> PyResult<()>,
) -> PyResult<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rollback_core::rt::runtime().spawn_blocking(move || {
        let _ = tx.send(work());
    });
    // `detach` wants what it borrows to be `Sync`, which a receiver is not.
    let rx = Mutex::new(rx);
    loop {
        match py.detach(|| lock(&rx).recv_timeout(Duration::from_millis(50))) {
            Ok(out) => return Ok(out),
            Err(RecvTimeoutError::Timeout) => {
                if let Err(e) = py.check_signals() {
                    raised(e)?;
                }
            }
            Err(RecvTimeoutError::Disconnected) => {
                return Err(pyo3::exceptions::PyRuntimeError::new_err(
                    "forge_rollback worker thread panicked (a bug; please report it)",
                ));
            }
        }
    }
}

/// Runs `work`, which writes and stops at its next boundary once `call` is cancelled
/// (`upgrade_database`, between two migrations), without the GIL. On the main thread it runs
/// on the shared runtime's blocking pool while this thread waits in short slices, running
/// Python's signal handlers between them: what one raises (Ctrl-C) cancels `call`, and is
/// raised once the work has stopped, never before (the lock it holds is released by then).
pub fn until_stopped<T: Send + 'static>(
    py: Python<'_>,
    call: &Arc<Call>,
    work: impl FnOnce() -> T + Send + 'static,
) -> PyResult<T> {
    let live = Live::register(call);
    let out = if on_main_thread(py)? {
        on_the_pool(py, work, |e| {
            call.interrupt(py, e);
            Ok(())
        })?
    } else {
        py.detach(work)
    };
    drop(live);
    call.take_parked().map_or(Ok(out), Err)
}

/// Why a run stops for `raised`, what a Python signal handler raised: `interrupted
/// (KeyboardInterrupt)` for Ctrl-C, as a run's error reads wherever the Ctrl-C lands.
pub fn interrupted(py: Python<'_>, raised: &PyErr) -> String {
    let name = raised.get_type(py).name().map(|n| n.to_string());
    format!("interrupted ({})", name.as_deref().unwrap_or("signal"))
}

/// Whether `raised`, coming out of a Python callback, is the host asking the call to stop
/// rather than the callback failing: Ctrl-C's `KeyboardInterrupt`, or an exception a Python
/// signal handler raised while the callback ran (a job's time limit: Celery's
/// `SoftTimeLimitExceeded`, `signal.alarm` raising `TimeoutError`). Python runs a handler in
/// whatever Python code the main thread runs when the signal arrives, so its exception comes
/// out of the callback as if the callback had raised it; only its traceback tells: it passes
/// through the handler's own frame (`forge_rollback._signals`).
pub fn raised_by_signal(py: Python<'_>, raised: &PyErr) -> bool {
    if raised.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) {
        return true;
    }
    py.import("forge_rollback._signals")
        // The traceback as pyo3 holds it: before Python 3.12 the exception's
        // `__traceback__` is only set once Python code catches it.
        .and_then(|m| m.call_method1("raised_by_signal_handler", (raised.traceback(py),)))
        .and_then(|r| r.is_truthy())
        .unwrap_or(false)
}

/// One call into the engine.
#[derive(Default)]
pub struct Call {
    cancel: Mutex<Option<String>>,
    /// The exception to raise when the call returns; the first one wins.
    raise: Mutex<Option<PyErr>>,
    /// The asyncio loop awaiting an async call (set when it is awaited).
    event_loop: OnceLock<Py<PyAny>>,
    /// The `concurrent.futures.Future` of the async callback being awaited now, if any.
    awaiting: Mutex<Option<Py<PyAny>>>,
    /// A sync call on the main thread: Ctrl-C is looked for at each step boundary.
    pub signals: bool,
}

impl Call {
    /// A call whose callbacks may be async (awaited on the loop set by [`Call::set_loop`]).
    pub fn new(signals: bool) -> Arc<Self> {
        Arc::new(Self { signals, ..Self::default() })
    }

    /// Asks the run to stop at its next step boundary; an async callback being awaited is
    /// cancelled now.
    pub fn cancel(&self, why: &str) {
        {
            let mut c = lock(&self.cancel);
            if c.is_none() {
                *c = Some(why.to_owned());
            }
        }
        self.cancel_awaited();
    }

    /// Cancels the async callback being awaited, if any (its awaiter then gets
    /// `concurrent.futures.CancelledError`).
    fn cancel_awaited(&self) {
        // Not under the lock: `cancel` runs Python code, which may let the worker that awaits
        // the callback take the GIL and then wait for this lock.
        let awaited = lock(&self.awaiting).take();
        if let Some(future) = awaited {
            with_python(|py| {
                let _ = future.bind(py).call_method0("cancel");
            });
        }
    }

    /// Whether the call was asked to stop (a signal is not looked for).
    pub fn is_cancelled(&self) -> bool {
        lock(&self.cancel).is_some()
    }

    /// Notes the `concurrent.futures.Future` of the async callback awaited now (`None`: done);
    /// cancels it at once if the call already was.
    pub fn set_awaiting(&self, future: Option<Py<PyAny>>) {
        *lock(&self.awaiting) = future;
        if self.is_cancelled() {
            self.cancel_awaited();
        }
    }

    /// Why the run must stop, if it must; on the main thread of a sync call, a pending Ctrl-C
    /// (or any signal handler that raises) becomes the reason, and its exception is raised when
    /// the call returns.
    pub fn cancelled(&self) -> Option<String> {
        if let Some(why) = lock(&self.cancel).clone() {
            return Some(why);
        }
        if self.signals {
            with_python(|py| {
                if let Err(e) = py.check_signals() {
                    self.interrupt(py, e);
                }
            });
        }
        lock(&self.cancel).clone()
    }

    /// Stops the run at its next step boundary for `raised`, what a Python signal handler
    /// raised (Ctrl-C's `KeyboardInterrupt`, a job's time limit), and keeps it to raise when
    /// the call returns. The run's error reads [`interrupted`]`(raised)`.
    pub fn interrupt(&self, py: Python<'_>, raised: PyErr) {
        let why = interrupted(py, &raised);
        self.park(raised);
        self.cancel(&why);
    }

    /// Keeps `err` to raise when the call returns (the first one kept wins).
    pub fn park(&self, err: PyErr) {
        let mut slot = lock(&self.raise);
        if slot.is_none() {
            *slot = Some(err);
        }
    }

    /// Whether an exception is waiting to be raised.
    pub fn has_parked(&self) -> bool {
        lock(&self.raise).is_some()
    }

    /// Takes the exception to raise, if any.
    pub fn take_parked(&self) -> Option<PyErr> {
        lock(&self.raise).take()
    }

    /// The loop awaiting this call (async calls).
    pub fn set_loop(&self, event_loop: Py<PyAny>) {
        let _ = self.event_loop.set(event_loop);
    }

    /// The loop awaiting this call, if it is an async call that is being awaited.
    pub fn event_loop(&self) -> Option<&Py<PyAny>> {
        self.event_loop.get()
    }
}

/// A call registered as live until dropped; interpreter exit cancels it and waits for it.
pub struct Live {
    id: u64,
}

impl Live {
    pub fn register(call: &Arc<Call>) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let (m, _) = registry();
        let mut r = lock(m);
        if r.finalizing {
            call.cancel("the Python interpreter is exiting");
        }
        r.live.insert(id, call.clone());
        Self { id }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        let (m, cv) = registry();
        lock(m).live.remove(&self.id);
        cv.notify_all();
    }
}

/// The `os.register_at_fork(after_in_child=...)` hook. The child of a fork has the memory of
/// the parent's live calls but none of the threads that run them: they are the parent's, so
/// the child forgets them (its interpreter exit would wait for them for ever) and closes its
/// copies of their run locks' descriptors (it would hold the locks after the parent died).
#[pyfunction]
pub fn after_fork_in_child() {
    rollback_core::lock::close_inherited();
    let (m, _) = registry();
    let inherited = {
        let mut r = lock(m);
        // A worker thread of the parent may have been waiting for the GIL inside
        // `with_python`: it is not in the child.
        r.attached = 0;
        std::mem::take(&mut r.live)
    };
    drop(inherited);
}

/// The `atexit` hook: cancels every live call, waits for each to stop at its next step
/// boundary, then keeps worker threads away from Python for good.
#[pyfunction]
pub fn at_exit(py: Python<'_>) {
    let (m, cv) = registry();
    // Not under the registry's lock: cancelling a call may attach to Python (`with_python`).
    let live: Vec<Arc<Call>> = lock(m).live.values().cloned().collect();
    for call in live {
        call.cancel("the Python interpreter is exiting");
    }
    loop {
        let done = py.detach(|| {
            let r = lock(m);
            let (r, _) = cv.wait_timeout(r, Duration::from_millis(50)).unwrap_or_else(PoisonError::into_inner);
            r.live.is_empty()
        });
        // A second Ctrl-C stops the wait: the run is left `running`, as after a crash.
        if done || py.check_signals().is_err() {
            break;
        }
    }
    lock(m).finalizing = true;
    // A `verify` left in the background (a cancelled `averify()`, an interrupted `verify()`, a
    // daemon thread's) would leave its check programs running after the process, orphaned:
    // they end with it, as when a signal ends the CLI.
    #[cfg(unix)]
    rollback_core::signals::kill_child_groups();
    py.detach(|| {
        let mut r = lock(m);
        while r.attached > 0 {
            r = cv.wait(r).unwrap_or_else(PoisonError::into_inner);
        }
    });
}
