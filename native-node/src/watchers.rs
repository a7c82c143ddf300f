//! `/watch`: one watcher's connection. It reads the watcher's [`WatchRequest`], then copies
//! changes from the node's window ([`ChangeFeed`]) a bounded batch at a time and writes them as
//! [`WatchFrame`]s, waking when the node records more.
//!
//! A watcher holds one frame at a time (at most about `WATCH_FRAME_BYTES_MAX`), and the node
//! never waits for it: a watcher that reads too slowly falls out of the window and gets
//! `compacted`, one whose socket makes no progress for `WRITE_TIMEOUT` is closed.

use std::time::Duration;

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use omnikv_core::{
    limits::ADMIN_FRAME_BYTES_MAX,
    watch::{WatchFrame, WatchRequest},
    wire::Encoding,
};
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

use crate::changes::{ChangeFeed, Read};
use crate::ws_conn::{ping_ticker, ping_unless_idle, Ws, HANDSHAKE_TIMEOUT, WRITE_TIMEOUT};
use crate::ws_frames;

/// A watcher with nothing new to read is told how far it has been served this often, so that
/// it can resume from a recent index even when nothing in its range changes, and knows the
/// node is alive (the client gives up on a node that stays silent).
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

pub async fn serve(
    ws: Ws,
    encoding: Encoding,
    feed: ChangeFeed,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (mut sink, mut stream) = ws.split();
    let send = |frame: &WatchFrame| ws_frames::frame(encoding, frame);
    let first = timeout(HANDSHAKE_TIMEOUT, stream.next())
        .await
        .context("no watch request in time")?;
    let decoded = match &first {
        Some(Ok(msg)) => ws_frames::decode::<WatchRequest>(msg, ADMIN_FRAME_BYTES_MAX),
        _ => None,
    };
    let request = match decoded {
        Some(r) => r
            .map_err(|e| e.to_string())
            .and_then(|r| match r.range.problem() {
                Some(p) => Err(p),
                None => Ok(r),
            }),
        None => Err("the first frame must be a watch request".into()),
    };
    let request = match request {
        Ok(r) => r,
        Err(message) => {
            let frame = send(&WatchFrame::Error { message });
            let _ = timeout(WRITE_TIMEOUT, sink.send(frame)).await;
            return Ok(());
        }
    };
    let mut cursor = request.from_index.unwrap_or_else(|| feed.end());
    let mut last_sent = Instant::now();
    // The first frame goes at once, changes or not: it tells the watcher the index it is
    // served from, so a watcher that must reconnect before any change resumes without a gap.
    let mut first = true;
    let mut heard_at = Instant::now();
    let mut ping = ping_ticker();
    loop {
        // Registered before reading, so a change recorded in between still wakes us.
        let recorded = feed.recorded.notified();
        tokio::pin!(recorded);
        recorded.as_mut().enable();
        let frame = match feed.read(&request.range, cursor) {
            Read::Compacted { oldest_index } => {
                let frame = send(&WatchFrame::Compacted { oldest_index });
                let _ = timeout(WRITE_TIMEOUT, sink.send(frame)).await;
                break;
            }
            Read::Changes { changes, up_to } => {
                cursor = up_to;
                let progress = std::mem::take(&mut first) || last_sent.elapsed() >= PROGRESS_EVERY;
                (!changes.is_empty() || progress).then_some(WatchFrame::Changes { changes, up_to })
            }
        };
        if let Some(frame) = frame {
            timeout(WRITE_TIMEOUT, sink.send(send(&frame)))
                .await
                .context("watcher not reading")??;
            last_sent = Instant::now();
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = &mut recorded => {}
            _ = tokio::time::sleep(PROGRESS_EVERY) => {}
            incoming = stream.next() => match incoming {
                // A watcher has nothing more to say; anything but a close shows it is alive.
                Some(Ok(m)) if !m.is_close() => heard_at = Instant::now(),
                _ => break,
            },
            _ = ping.tick() => {
                if !ping_unless_idle(&mut sink, heard_at).await.context("watcher not reading")? {
                    break;
                }
            }
        }
    }
    let _ = timeout(WRITE_TIMEOUT, sink.close()).await;
    Ok(())
}
