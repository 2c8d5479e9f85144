//! The one tokio runtime of the process.
//!
//! The engine is synchronous (its work is local disk I/O); database, HTTP, WebSocket and
//! process work is async and runs here. The Python module hands the same runtime to
//! `pyo3-async-runtimes`, so there is one runtime per process whichever front-end is used.

use std::future::Future;
use std::sync::{Mutex, PoisonError};

use tokio::runtime::{Handle, Runtime};

/// The runtime, with the process it was built in. A child made by `fork` (gunicorn
/// `--preload`, Python's `multiprocessing`) inherits the memory but none of the threads: the
/// parent's runtime is dead there (its workers drive I/O and timers), and anything run on it
/// would wait for ever. The child builds its own on first use; the parent's stays leaked,
/// never dropped (dropping would wait for threads that do not exist).
static RUNTIME: Mutex<Option<(u32, &'static Runtime)>> = Mutex::new(None);

/// The shared multi-threaded runtime (two workers: checks are I/O-bound) of this process.
///
/// # Panics
/// When it cannot be built (see [`try_runtime`], which every run calls before it changes
/// anything, so that a run does not stop half-way on this).
pub fn runtime() -> &'static Runtime {
    try_runtime().expect("the tokio runtime can be built")
}

/// The shared runtime, or why it cannot be built: building it opens file descriptors (an
/// epoll instance, an event fd, the signal driver's socket pair), and tokio panics when its
/// signal driver gets none. Under a tiny open-file limit (`ulimit -n 12`) this says so instead.
pub fn try_runtime() -> std::io::Result<&'static Runtime> {
    let pid = std::process::id();
    let mut slot = RUNTIME.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((built_in, rt)) = *slot
        && built_in == pid
    {
        return Ok(rt);
    }
    // Room for the descriptors the build opens, asked for before tokio is, which would panic.
    let probes: Vec<std::fs::File> =
        (0..RUNTIME_DESCRIPTORS).map(|_| std::fs::File::open("/dev/null")).collect::<std::io::Result<_>>()?;
    drop(probes);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("forge-rollback")
        .enable_all()
        .build()?;
    let rt: &'static Runtime = Box::leak(Box::new(rt));
    *slot = Some((pid, rt));
    Ok(rt)
}

/// File descriptors the runtime's build opens, with some to spare.
const RUNTIME_DESCRIPTORS: usize = 8;

/// Runs `future` to completion on the shared runtime from synchronous code.
///
/// Safe to call from any thread, including one that is itself inside a tokio runtime (a
/// `spawn_blocking` thread of the Python module): there the future is driven from a scoped
/// helper thread, because a runtime cannot be blocked on from within another.
pub fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send,
    F::Output: Send,
{
    if Handle::try_current().is_ok() {
        std::thread::scope(|s| s.spawn(|| runtime().block_on(future)).join().expect("the runtime thread panicked"))
    } else {
        runtime().block_on(future)
    }
}

/// [`block_on`], asking `stop` every 50 ms while `future` is pending: `Some(why)` drops the
/// future there (what it waited for is abandoned) and returns `Err(why)`. `stop` runs where
/// [`block_on`] drives the future: on this thread (the Python module's signal check needs the
/// main thread), except inside a runtime, on its helper thread.
pub fn block_on_unless<F>(future: F, stop: &(dyn Fn() -> Option<String> + Sync)) -> Result<F::Output, String>
where
    F: Future + Send,
    F::Output: Send,
{
    let watched = async {
        let mut future = std::pin::pin!(future);
        loop {
            match tokio::time::timeout(STOP_POLL, &mut future).await {
                Ok(out) => return Ok(out),
                Err(_) => {
                    if let Some(why) = stop() {
                        return Err(why);
                    }
                }
            }
        }
    };
    block_on(watched)
}

/// How often [`block_on_unless`] asks whether to stop.
const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(50);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_works_inside_and_outside_a_runtime() {
        assert_eq!(block_on(async { 1 + 1 }), 2);
        let inner = runtime().block_on(async { tokio::task::spawn_blocking(|| block_on(async { 40 + 2 })).await });
        assert_eq!(inner.unwrap(), 42);
    }

    #[test]
    fn block_on_unless_abandons_a_future_that_never_ends_once_asked_to() {
        let asked = std::sync::atomic::AtomicUsize::new(0);
        let stop = || (asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 2).then(|| "stop".to_owned());
        assert_eq!(block_on_unless(std::future::pending::<()>(), &stop), Err("stop".to_owned()));
        assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 3);
        // A future that ends first is not asked about.
        assert_eq!(block_on_unless(async { 7 }, &|| Some("never".to_owned())), Ok(7));
        let inner = runtime().block_on(async {
            tokio::task::spawn_blocking(|| block_on_unless(std::future::pending::<()>(), &|| Some("inside".into())))
                .await
        });
        assert_eq!(inner.unwrap(), Err("inside".to_owned()));
    }
}
