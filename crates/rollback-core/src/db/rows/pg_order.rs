//! The transactions that write rows back on PostgreSQL: bounded in time and rolled back whole
//! on any error ([`within_or_rolled_back`]), and writing tables in dependency order without
//! knowing the order ([`in_dependency_order`]).

use std::future::Future;
use std::time::Duration;

use tokio_postgres::Client;

use crate::db::{Error, Result};

/// Runs `work` (a transaction it opens on `client`) within `timeout`. On its error the
/// transaction is rolled back, and the error returned; when the time runs out, `timed_out()`.
pub(super) async fn within_or_rolled_back<T>(
    client: &Client,
    timeout: Duration,
    work: impl Future<Output = Result<T>>,
    timed_out: impl FnOnce() -> Error,
) -> Result<T> {
    match tokio::time::timeout(timeout, work).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(e)) => {
            let _ = client.batch_execute("ROLLBACK").await;
            Err(e)
        }
        Err(_) => Err(timed_out()),
    }
}

/// Runs `write(i)` for every `i` in `0..n` inside the transaction open on `client`, each in
/// the savepoint `savepoint`, retrying the ones that fail after the others. Returns every
/// result with its index, in the order they succeeded. When a round makes no progress: the
/// indexes still pending, and the error of the last of them (a savepoint statement's own
/// error: with no index).
pub(super) async fn in_dependency_order<T, F, Fut>(
    client: &Client,
    savepoint: &str,
    n: usize,
    mut write: F,
) -> Result<Vec<(usize, T)>, (Vec<usize>, tokio_postgres::Error)>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<T, tokio_postgres::Error>>,
{
    let mut done = Vec::with_capacity(n);
    let mut pending: Vec<usize> = (0..n).collect();
    while !pending.is_empty() {
        let mut failed = Vec::new();
        let mut last = None;
        let own = |e| (Vec::new(), e);
        for &i in &pending {
            client.batch_execute(&format!("SAVEPOINT {savepoint}")).await.map_err(own)?;
            match write(i).await {
                Ok(t) => {
                    client.batch_execute(&format!("RELEASE SAVEPOINT {savepoint}")).await.map_err(own)?;
                    done.push((i, t));
                }
                Err(e) => {
                    client.batch_execute(&format!("ROLLBACK TO SAVEPOINT {savepoint}")).await.map_err(own)?;
                    last = Some(e);
                    failed.push(i);
                }
            }
        }
        if failed.len() == pending.len()
            && let Some(e) = last
        {
            return Err((failed, e));
        }
        pending = failed;
    }
    Ok(done)
}
