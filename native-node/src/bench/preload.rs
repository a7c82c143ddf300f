//! Puts every key of the key space with [`preload_value`] before a run whose answers are checked
//! against what the keys hold (scans count the keys they find, CAS compares values), through
//! the run's own sessions and before its warm-up, so none of it is timed.

use super::backends::{BackendError, Session};
use super::workload::{key_name, preload_value, Op, Workload};

#[derive(Debug, thiserror::Error)]
#[error("preloading {key}: {source}")]
pub struct PreloadError {
    pub key: String,
    pub source: BackendError,
}

/// Session `i` of `n` puts keys `i`, `i + n`, `i + 2n`, ... all at once, one request in flight
/// each, as the run will. Returns the sessions for the run, in the same order.
pub async fn preload(
    sessions: Vec<Session>,
    workload: &Workload,
) -> Result<Vec<Session>, PreloadError> {
    let n = sessions.len();
    let value = preload_value(workload.value_bytes);
    let tasks: Vec<_> = sessions
        .into_iter()
        .enumerate()
        .map(|(i, mut session)| {
            let (value, key_space) = (value.clone(), workload.key_space);
            tokio::spawn(async move {
                for k in (i as u64..key_space).step_by(n) {
                    let key = key_name(k);
                    let op = Op::Put {
                        key: key.clone(),
                        value: value.clone(),
                    };
                    session
                        .execute(&op)
                        .await
                        .map_err(|source| PreloadError { key, source })?;
                }
                Ok(session)
            })
        })
        .collect();
    let mut ready = Vec::with_capacity(tasks.len());
    for task in tasks {
        ready.push(task.await.expect("preload tasks do not panic")?);
    }
    Ok(ready)
}
