//! Puts every key of a key space: with [`preload_value`] before a run whose answers are checked
//! against what the keys hold (scans count the keys they find, CAS compares values), through
//! the run's own sessions and before its warm-up, so none of it is timed; and each key with its
//! own value for `omnikv bench fill`, which builds a large table to measure what it costs to
//! hold.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use omnikv_core::limits::TXN_PARTS_MAX;

use super::backends::{BackendError, Session};
use super::workload::{distinct_value, key_name, preload_value, Op};

/// Tries of one request before the preload is given up: a put is idempotent here (the same
/// value every time), so a timeout on a loaded machine need not cost the whole run.
const PUT_TRIES: u32 = 3;
const RETRY_PAUSE: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
#[error("preloading {key}: {source}")]
pub struct PreloadError {
    pub key: String,
    pub source: BackendError,
}

/// What to put.
#[derive(Clone, Debug)]
pub struct Fill {
    /// Keys `0..key_space` (named by [`key_name`]).
    pub key_space: u64,
    pub value_bytes: usize,
    /// Keys per request, at most [`TXN_PARTS_MAX`]: 1 puts them one by one.
    pub batch_keys: u64,
    /// Every key its own value ([`distinct_value`]) rather than [`preload_value`].
    pub distinct_values: bool,
}

/// Session `i` of `n` puts batches `i`, `i + n`, `i + 2n`, ... all at once, one request in
/// flight each, as a run does; `done` counts the keys put. Returns the sessions, in order.
pub async fn preload(
    sessions: Vec<Session>,
    fill: &Fill,
    done: Arc<AtomicU64>,
) -> Result<Vec<Session>, PreloadError> {
    let n = sessions.len() as u64;
    let batch = fill.batch_keys.clamp(1, TXN_PARTS_MAX as u64);
    let batches = fill.key_space.div_ceil(batch);
    let shared = preload_value(fill.value_bytes);
    let tasks: Vec<_> = (0..n)
        .zip(sessions)
        .map(|(i, mut session)| {
            let (shared, fill, done) = (shared.clone(), fill.clone(), done.clone());
            tokio::spawn(async move {
                for b in (i..batches).step_by(n as usize) {
                    let keys = b * batch..((b + 1) * batch).min(fill.key_space);
                    let count = keys.end - keys.start;
                    let puts = keys
                        .map(|k| {
                            let value = match fill.distinct_values {
                                true => distinct_value(k, fill.value_bytes),
                                false => shared.clone(),
                            };
                            (key_name(k), value)
                        })
                        .collect();
                    put(&mut session, puts).await?;
                    done.fetch_add(count, Ordering::Relaxed);
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

/// One request making `puts`, tried up to [`PUT_TRIES`] times.
async fn put(session: &mut Session, puts: Vec<(String, String)>) -> Result<(), PreloadError> {
    let first = puts.first().map(|(k, _)| k.clone()).unwrap_or_default();
    let op = match <[(String, String); 1]>::try_from(puts) {
        Ok([(key, value)]) => Op::Put { key, value },
        Err(puts) => Op::PutMany { puts },
    };
    let mut tries = 1;
    loop {
        match session.execute(&op).await {
            Ok(()) => return Ok(()),
            Err(_) if tries < PUT_TRIES => {
                tries += 1;
                tokio::time::sleep(RETRY_PAUSE).await;
            }
            Err(source) => return Err(PreloadError { key: first, source }),
        }
    }
}
