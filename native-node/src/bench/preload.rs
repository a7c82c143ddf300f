//! Puts every key of a key space with [`preload_value`]: before a run whose answers are checked
//! against what the keys hold (scans count the keys they find, CAS compares values), through
//! the run's own sessions and before its warm-up, so none of it is timed; and for
//! `omnikv bench fill`, which builds a large table to measure what it costs to hold.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use omnikv_core::limits::TXN_PARTS_MAX;

use super::backends::{BackendError, Session};
use super::workload::{key_name, preload_value, Op};

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
    let value = preload_value(fill.value_bytes);
    let tasks: Vec<_> = (0..n)
        .zip(sessions)
        .map(|(i, mut session)| {
            let (value, key_space, done) = (value.clone(), fill.key_space, done.clone());
            tokio::spawn(async move {
                for b in (i..batches).step_by(n as usize) {
                    let keys = b * batch..((b + 1) * batch).min(key_space);
                    let count = keys.end - keys.start;
                    put(&mut session, keys.map(key_name).collect(), &value).await?;
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

/// One request putting `keys`, tried up to [`PUT_TRIES`] times.
async fn put(session: &mut Session, keys: Vec<String>, value: &str) -> Result<(), PreloadError> {
    let first = keys.first().cloned().unwrap_or_default();
    let op = match <[String; 1]>::try_from(keys) {
        Ok([key]) => Op::Put {
            key,
            value: value.to_owned(),
        },
        Err(keys) => Op::PutMany {
            puts: keys.into_iter().map(|k| (k, value.to_owned())).collect(),
        },
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
