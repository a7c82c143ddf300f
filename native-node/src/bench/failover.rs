//! One failover trial: find the leader, SIGKILL its process, and time the first write
//! acknowledged through a surviving endpoint.
//!
//! A new attempt starts every [`ATTEMPT_SPACING`] on the next survivor, each with its own
//! timeout, so that the measured time is bounded by when the system can first accept a write
//! rather than by one attempt's timeout.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use omnikv_core::wire::Encoding;
use tokio::task::JoinSet;

use super::backends::{self, BackendError, BackendKind, Session};
use super::results::{this_command, FailoverResult};
use super::workload::Op;

const ATTEMPT_SPACING: Duration = Duration::from_millis(5);
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(3);
const ATTEMPTS_IN_FLIGHT_MAX: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("the leader's process id is unknown: pass --pids in endpoint order")]
    NoPid,
    #[error("killing pid {pid}: {reason}")]
    Kill { pid: u32, reason: String },
    #[error("no write was acknowledged within {0:?} of the kill")]
    NoWrite(Duration),
}

pub async fn trial(
    kind: BackendKind,
    endpoints: &[String],
    pids: &[u32],
    give_up_after: Duration,
) -> Result<FailoverResult, FailoverError> {
    let leader = backends::leader(kind, endpoints, Duration::from_secs(2)).await?;
    let pid = leader
        .pid
        .or_else(|| pids.get(leader.endpoint_index).copied())
        .ok_or(FailoverError::NoPid)?;
    let survivors: Vec<String> = endpoints
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != leader.endpoint_index)
        .map(|(_, e)| e.clone())
        .collect();
    let killed_at = Instant::now();
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).map_err(|e| FailoverError::Kill {
        pid,
        reason: e.to_string(),
    })?;
    let mut attempts = JoinSet::new();
    let mut next = 0usize;
    let mut spacing = tokio::time::interval(ATTEMPT_SPACING);
    loop {
        if killed_at.elapsed() > give_up_after {
            return Err(FailoverError::NoWrite(give_up_after));
        }
        tokio::select! {
            _ = spacing.tick(), if attempts.len() < ATTEMPTS_IN_FLIGHT_MAX => {
                let endpoint = survivors[next % survivors.len()].clone();
                next += 1;
                attempts.spawn(attempt(kind, endpoint, next));
            }
            Some(done) = attempts.join_next() => {
                if let Ok(Ok(acked_at)) = done {
                    return Ok(FailoverResult {
                        backend: kind,
                        killed_endpoint: endpoints[leader.endpoint_index].clone(),
                        killed_pid: pid,
                        failover_ms: acked_at.duration_since(killed_at).as_secs_f64() * 1e3,
                        command: this_command(),
                    });
                }
            }
        }
    }
}

/// One write on a fresh session; returns when it was acknowledged.
async fn attempt(kind: BackendKind, endpoint: String, n: usize) -> Result<Instant, BackendError> {
    let mut session =
        Session::open(kind, &endpoint, ATTEMPT_TIMEOUT, false, Encoding::Postcard).await?;
    let op = Op::Put {
        key: format!("failover-{n}"),
        value: "x".into(),
    };
    session.execute(&op).await?;
    Ok(Instant::now())
}
