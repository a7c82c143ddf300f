//! A load run: N clients with one request in flight each, closed-loop or at a fixed offered
//! rate (see [`pacing`](super::pacing)), for a duration or an operation count, a progress bar,
//! optional `/events` subscribers, and the leader checked before and after. Scans and CAS are
//! preceded by the [`preload`](super::preload) of every key.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use omnikv_core::event::{frame_events, postcard_frame_events};
use omnikv_core::wire::Encoding;

use super::backends::{self, BackendError, BackendKind, Session, SessionPlan};
use super::pacing::Pacer;
use super::preload::{preload, Fill, PreloadError};
use super::results::{this_command, LoadResult};
use super::stats::Recorder;
use super::workload::{OpStream, Workload, WorkloadError};
use crate::client::Connection;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Workload(#[from] WorkloadError),
    #[error(transparent)]
    Preload(#[from] PreloadError),
}

pub struct LoadPlan {
    pub label: String,
    pub kind: BackendKind,
    pub endpoints: Vec<String>,
    pub clients: usize,
    /// gRPC connections the clients share (etcd); 0: one per endpoint.
    pub connections: usize,
    /// Offered operations per second for all clients together (open loop); `None`: each
    /// client sends its next request when the previous one is answered.
    pub rate_per_s: Option<f64>,
    pub workload: Workload,
    /// Every write on a new client session (OmniKV): see `--session-per-op`.
    pub session_per_op: bool,
    /// What OmniKV's clients write on `/client`.
    pub client_encoding: Encoding,
    /// Stop after this long (measured part, warm-up excluded)...
    pub duration: Option<Duration>,
    /// ...or after this many operations.
    pub ops: Option<u64>,
    pub warmup: Duration,
    /// Hold an `/events` subscriber open on every endpoint (OmniKV only), in this encoding.
    pub events: Option<Encoding>,
    pub request_timeout: Duration,
    pub progress: bool,
}

struct Shared {
    stop: AtomicBool,
    /// Operations started, for the operation budget.
    started: AtomicU64,
    /// Operations completed inside the measurement, for the progress bar.
    done: AtomicU64,
    measure_from: Instant,
    ops_budget: Option<u64>,
}

pub async fn run(plan: LoadPlan) -> Result<LoadResult, LoadError> {
    assert!(!plan.endpoints.is_empty() && plan.clients > 0);
    plan.workload.check()?;
    let kind = plan.workload.kind;
    if plan.kind.requests(kind).is_none() {
        return Err(BackendError::unsupported(plan.kind, kind).into());
    }
    let (mut sessions, connections) = backends::open_sessions(&SessionPlan {
        kind: plan.kind,
        endpoints: &plan.endpoints,
        clients: plan.clients,
        connections: plan.connections,
        timeout: plan.request_timeout,
        session_per_op: plan.session_per_op,
        encoding: plan.client_encoding,
    })
    .await?;
    if plan.workload.needs_preload() {
        if plan.progress {
            eprintln!(
                "{} {}: preloading {} keys (untimed)",
                plan.kind.name(),
                plan.label,
                plan.workload.key_space
            );
        }
        let fill = Fill {
            key_space: plan.workload.key_space,
            value_bytes: plan.workload.value_bytes,
            batch_keys: 1,
            distinct_values: false,
        };
        sessions = preload(sessions, &fill, Arc::default()).await?;
    }
    let events_received = Arc::new(AtomicU64::new(0));
    let mut subscribers = Vec::new();
    if let (Some(encoding), BackendKind::Omnikv) = (plan.events, plan.kind) {
        for endpoint in &plan.endpoints {
            subscribers.push(subscribe(endpoint, encoding, events_received.clone()).await?);
        }
    }
    let shared = Arc::new(Shared {
        stop: AtomicBool::new(false),
        started: AtomicU64::new(0),
        done: AtomicU64::new(0),
        measure_from: Instant::now() + plan.warmup,
        ops_budget: plan.ops,
    });
    let mut clients = Vec::with_capacity(plan.clients);
    let origin = Instant::now();
    for (i, session) in sessions.into_iter().enumerate() {
        let stream = OpStream::new(plan.workload.clone(), 0x5eed + i as u64);
        let pacer = Pacer::new(plan.rate_per_s, i, plan.clients, origin);
        clients.push(tokio::spawn(client(session, stream, pacer, shared.clone())));
    }
    tokio::time::sleep_until(shared.measure_from.into()).await;
    let leader_before = backends::leader(plan.kind, &plan.endpoints, plan.request_timeout)
        .await
        .ok();
    let bar = progress_bar(&plan);
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let done = shared.done.load(Ordering::Relaxed);
        match (plan.duration, plan.ops) {
            (Some(d), _) => {
                bar.set_position(started.elapsed().as_millis().min(d.as_millis()) as u64)
            }
            _ => bar.set_position(done),
        }
        bar.set_message(format!(
            "{:.0} ops/s",
            done as f64 / started.elapsed().as_secs_f64()
        ));
        let out_of_time = plan.duration.is_some_and(|d| started.elapsed() >= d);
        let out_of_ops = plan.ops.is_some_and(|n| done >= n);
        if out_of_time || out_of_ops || clients.iter().all(|c| c.is_finished()) {
            break;
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let mut total = Recorder::default();
    for c in clients {
        let r = c.await.expect("client tasks do not panic");
        total.merge(&r);
    }
    for s in subscribers {
        s.abort();
    }
    let leader_after = backends::leader(plan.kind, &plan.endpoints, plan.request_timeout)
        .await
        .ok();
    let leader_changed = match (&leader_before, &leader_after) {
        (Some(a), Some(b)) => Some(a.leader != b.leader || a.term != b.term),
        _ => None,
    };
    Ok(LoadResult {
        label: plan.label,
        backend: plan.kind,
        clients: plan.clients,
        endpoints: plan.endpoints.len(),
        connections,
        offered_per_s: plan.rate_per_s,
        workload: kind,
        key_space: plan.workload.key_space,
        value_bytes: plan.workload.value_bytes,
        write_percent: plan.workload.write_percent,
        events_subscribers: if plan.events.is_some() {
            plan.endpoints.len()
        } else {
            0
        },
        events_json: plan.events == Some(Encoding::Json),
        client_json: plan.client_encoding == Encoding::Json,
        events_received: events_received.load(Ordering::Relaxed),
        summary: total.summary(elapsed),
        leader_changed,
        command: this_command(),
    })
}

async fn client(
    mut session: Session,
    mut ops: OpStream,
    mut pacer: Pacer,
    shared: Arc<Shared>,
) -> Recorder {
    let mut rec = Recorder::default();
    while !shared.stop.load(Ordering::Relaxed) {
        // Latency counts from when the request was sent, or from when it was due if this
        // client is behind its open-loop schedule (the wait for its previous answer is the
        // system's). A client that is on time sleeps until its slot and counts from waking, so
        // the timer's own lateness (up to a millisecond) is not charged to the system.
        let due = pacer.next_due(Instant::now());
        let t0 = if due > Instant::now() {
            tokio::time::sleep_until(due.into()).await;
            Instant::now()
        } else {
            due
        };
        if shared.stop.load(Ordering::Relaxed) {
            break;
        }
        let measuring = t0 >= shared.measure_from;
        if measuring {
            if let Some(budget) = shared.ops_budget {
                if shared.started.fetch_add(1, Ordering::Relaxed) >= budget {
                    break;
                }
            }
        }
        let op = ops.next_op();
        let result = session.execute(&op).await;
        // Only operations that started inside the measurement and ended before the stop count.
        if !measuring || shared.stop.load(Ordering::Relaxed) {
            continue;
        }
        match result {
            Ok(()) => {
                rec.ok(t0.elapsed());
                shared.done.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                rec.error();
                // A refused or failed request is not retried; pause briefly so that a node
                // without a leader is not spun on.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    rec
}

/// Counts the events of every frame: a postcard subscriber decodes each (as the page does), a
/// JSON one only splits its frames into events.
async fn subscribe(
    endpoint: &str,
    encoding: Encoding,
    events: Arc<AtomicU64>,
) -> Result<tokio::task::JoinHandle<()>, BackendError> {
    let mut conn = Connection::open_in(endpoint, "events", Duration::from_secs(3), encoding)
        .await
        .map_err(|e| BackendError::Connect {
            endpoint: endpoint.to_owned(),
            reason: e.to_string(),
        })?;
    let wait = Duration::from_secs(3600);
    Ok(tokio::spawn(async move {
        loop {
            let count = match encoding {
                Encoding::Postcard => match conn.recv_binary(wait).await {
                    Ok(frame) => postcard_frame_events(&frame).filter(Result::is_ok).count(),
                    Err(_) => break,
                },
                Encoding::Json => match conn.recv_text(wait).await {
                    Ok(frame) => frame_events(&frame).count(),
                    Err(_) => break,
                },
            };
            events.fetch_add(count as u64, Ordering::Relaxed);
        }
    }))
}

fn progress_bar(plan: &LoadPlan) -> ProgressBar {
    if !plan.progress {
        return ProgressBar::hidden();
    }
    let (len, template) = match (plan.duration, plan.ops) {
        (Some(d), _) => (
            d.as_millis() as u64,
            "{prefix} [{bar:40}] {elapsed_precise} {msg}",
        ),
        (None, Some(n)) => (n, "{prefix} [{bar:40}] {pos}/{len} ops {msg}"),
        (None, None) => (0, "{prefix} {msg}"),
    };
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{} {}", plan.kind.name(), plan.label));
    bar
}
