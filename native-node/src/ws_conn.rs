//! What every WebSocket connection the node serves shares, whichever endpoint it reached
//! (`api` for `/client`, `/events` and `/admin`, `watchers` for `/watch`): the stream type, the
//! time each step may take, and the keep-alive ping that finds a silent peer. The read buffer's
//! size is shared with the connections `omnikv`'s own client library opens (`client`).

use std::time::Duration;

use anyhow::Context;
use futures_util::SinkExt;
use tokio::net::TcpStream;
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Time from accept to a completed upgrade.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A write (one burst of frames, or a ping) that takes longer closes the connection: the
/// other side has stopped reading.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the node pings an open connection.
pub const PING_EVERY: Duration = Duration::from_secs(20);
/// A connection that sends nothing (not even a pong) for this long is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// How much a WebSocket connection reads from its socket at a time. tungstenite zeroes the
/// part of its read buffer it is about to read into, up to this size, on every read: with
/// its default of 128 KiB that memset was 3.5-4% of a node's CPU under 64 clients, whose
/// requests are a few hundred bytes each. A large frame still arrives whole, in more reads.
pub const READ_BUFFER_BYTES: usize = 8 << 10;

/// A ticker for pings, first firing one period from now.
pub(crate) fn ping_ticker() -> tokio::time::Interval {
    let mut t = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    t
}

/// At a ping tick: false if the other side has been silent past [`IDLE_TIMEOUT`] (close it),
/// else pings it; an error if the ping cannot be written within [`WRITE_TIMEOUT`].
pub(crate) async fn ping_unless_idle(
    sink: &mut futures_util::stream::SplitSink<Ws, WsMessage>,
    heard_at: Instant,
) -> anyhow::Result<bool> {
    if heard_at.elapsed() > IDLE_TIMEOUT {
        return Ok(false);
    }
    send_ping(sink).await?;
    Ok(true)
}

/// Pings the other side; an error if the ping cannot be written within [`WRITE_TIMEOUT`].
pub(crate) async fn send_ping(
    sink: &mut futures_util::stream::SplitSink<Ws, WsMessage>,
) -> anyhow::Result<()> {
    timeout(
        WRITE_TIMEOUT,
        sink.send(WsMessage::Ping(Default::default())),
    )
    .await
    .context("no progress")??;
    Ok(())
}
