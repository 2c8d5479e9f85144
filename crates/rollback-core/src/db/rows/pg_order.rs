//! Writing tables in dependency order on PostgreSQL without knowing the order: each table's
//! write runs in a savepoint; one that fails (a foreign key to rows not written yet) is rolled
//! back to its savepoint and tried again after the others, round after round, until a round
//! makes no progress.

use std::future::Future;

use tokio_postgres::Client;

/// Runs `write(i)` for every `i` in `0..n` inside the transaction open on `client`, each in
/// the savepoint `savepoint`, retrying the ones that fail after the others. Returns every
/// result with its index, in the order they succeeded; the last error when a round makes no
/// progress (or a savepoint statement's own error).
pub(super) async fn in_dependency_order<T, F, Fut>(
    client: &Client,
    savepoint: &str,
    n: usize,
    mut write: F,
) -> Result<Vec<(usize, T)>, tokio_postgres::Error>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = Result<T, tokio_postgres::Error>>,
{
    let mut done = Vec::with_capacity(n);
    let mut pending: Vec<usize> = (0..n).collect();
    while !pending.is_empty() {
        let mut failed = Vec::new();
        let mut last = None;
        for &i in &pending {
            client.batch_execute(&format!("SAVEPOINT {savepoint}")).await?;
            match write(i).await {
                Ok(t) => {
                    client.batch_execute(&format!("RELEASE SAVEPOINT {savepoint}")).await?;
                    done.push((i, t));
                }
                Err(e) => {
                    client.batch_execute(&format!("ROLLBACK TO SAVEPOINT {savepoint}")).await?;
                    last = Some(e);
                    failed.push(i);
                }
            }
        }
        if failed.len() == pending.len()
            && let Some(e) = last
        {
            return Err(e);
        }
        pending = failed;
    }
    Ok(done)
}
