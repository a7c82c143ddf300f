//! Puts every key of the key space with [`preload_value`] before a run whose answers are checked
//! against what the keys hold (scans count the keys they find, CAS compares values), through
//! the run's own sessions and before its warm-up, so none of it is timed.

use std::time::Duration;

use super::backends::{BackendError, Session};
use super::workload::{key_name, preload_value, Op, Workload};

/// Tries of one key's put before the run is given up: a put is idempotent here (the same value
/// every time), so a timeout on a loaded machine need not cost the whole run.
const PUT_TRIES: u32 = 3;
const RETRY_PAUSE: Duration = Duration::from_millis(100);

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
                    put(&mut session, key_name(k), &value).await?;
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

/// One key's put, tried up to [`PUT_TRIES`] times.
async fn put(session: &mut Session, key: String, value: &str) -> Result<(), PreloadError> {
    let op = Op::Put {
        key: key.clone(),
        value: value.to_owned(),
    };
    let mut tries = 1;
    loop {
        match session.execute(&op).await {
            Ok(()) => return Ok(()),
            Err(_) if tries < PUT_TRIES => {
                tries += 1;
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(source) => return Err(PreloadError { key, source }),
        }
    }
}
