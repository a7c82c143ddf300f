//! The opening of a peer stream: who is dialling, and (with a cluster secret) proof of it.
//!
//! Without a secret a stream opens with `Hello { cluster_id, from }` and that is all: it names
//! the cluster to catch misconfiguration, it proves nothing. With a secret the receiver answers
//! a `Hello` with a fresh random `Challenge`, and the dialer replies with a `Proof`, an HMAC of
//! the challenge bound to the cluster id and both member ids, so that a proof cannot be
//! replayed on another stream, by another member or towards another node; then the dialer
//! challenges the receiver the same way, so that neither side talks to an impostor. The secret
//! never crosses the link.
//!
//! ```text
//! dialer D                          receiver R
//!   Hello { cluster, from: D }  ->
//!                               <-  Challenge { nR }
//!   Proof { HMAC(D -> R, nR) }  ->  (checked)
//!   Challenge { nD }            ->
//!                               <-  Proof { HMAC(R -> D, nD) }
//!   (checked)
//! ```
//!
//! Until the handshake is done a stream may only carry small frames
//! ([`HANDSHAKE_FRAME_BYTES_MAX`]): a stranger cannot make a node buffer a large frame.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use omnikv_core::peer::PeerFrame;
use omnikv_core::NodeId;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::secret::{self, ClusterSecret};

/// Largest frame before the handshake completes (a Hello, Challenge or Proof is ~100 bytes).
pub const HANDSHAKE_FRAME_BYTES_MAX: usize = 4 * 1024;
/// Time a stream has to complete its handshake, on either side.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

pub type PeerStream = Framed<TcpStream, LengthDelimitedCodec>;

/// This node as it presents itself to peers.
#[derive(Clone, Debug)]
pub struct PeerIdentity {
    pub id: NodeId,
    pub cluster_id: String,
    pub secret: Option<Arc<ClusterSecret>>,
}

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("stream error: {0}")]
    Io(#[from] std::io::Error),
    #[error("stream closed during the handshake")]
    Closed,
    #[error("expected {expected}, got something else")]
    Unexpected { expected: &'static str },
    #[error("peer of cluster {cluster:?} (member {from}) is not a member of this cluster")]
    Stranger { cluster: String, from: NodeId },
    #[error("member {from} did not prove it holds the cluster secret")]
    BadProof { from: NodeId },
}

/// A stream in handshake mode: small frames only. Raise the limit with [`authenticated`] once
/// the handshake is done.
pub fn stream(tcp: TcpStream) -> PeerStream {
    Framed::new(
        tcp,
        LengthDelimitedCodec::builder()
            .max_frame_length(HANDSHAKE_FRAME_BYTES_MAX)
            .new_codec(),
    )
}

/// Lifts the handshake's frame limit to the one for pieces of OmniPaxos messages (see
/// [`peer_chunks`](crate::peer_chunks)).
pub fn authenticated(stream: &mut PeerStream) {
    stream
        .codec_mut()
        .set_max_frame_length(crate::peer_chunks::PEER_FRAME_BYTES_MAX);
}

async fn send(stream: &mut PeerStream, frame: &PeerFrame) -> Result<(), HandshakeError> {
    let bytes = serde_json::to_vec(frame).expect("handshake frames serialise");
    stream.send(Bytes::from(bytes)).await?;
    Ok(())
}

async fn recv(
    stream: &mut PeerStream,
    expected: &'static str,
) -> Result<PeerFrame, HandshakeError> {
    let bytes = stream.next().await.ok_or(HandshakeError::Closed)??;
    serde_json::from_slice(&bytes).map_err(|_| HandshakeError::Unexpected { expected })
}

/// Sends a fresh challenge; returns its nonce.
async fn challenge(stream: &mut PeerStream) -> Result<[u8; secret::NONCE_BYTES], HandshakeError> {
    let nonce = secret::nonce();
    let frame = PeerFrame::Challenge {
        nonce: hex::encode(nonce),
    };
    send(stream, &frame).await?;
    Ok(nonce)
}

/// Reads a challenge and answers it with a proof that `me` holds the secret, for `to`.
async fn answer_challenge(
    stream: &mut PeerStream,
    me: &PeerIdentity,
    secret: &ClusterSecret,
    to: NodeId,
) -> Result<(), HandshakeError> {
    let unexpected = HandshakeError::Unexpected {
        expected: "a challenge",
    };
    let PeerFrame::Challenge { nonce } = recv(stream, "a challenge").await? else {
        return Err(unexpected);
    };
    let nonce = hex::decode(nonce).map_err(|_| unexpected)?;
    let mac = secret.peer_proof(&me.cluster_id, me.id, to, &nonce);
    send(
        stream,
        &PeerFrame::Proof {
            mac: hex::encode(mac),
        },
    )
    .await
}

/// Reads a proof that `from` holds the secret, answering our challenge `nonce` to `me`.
async fn check_proof(
    stream: &mut PeerStream,
    me: &PeerIdentity,
    secret: &ClusterSecret,
    from: NodeId,
    nonce: &[u8],
) -> Result<(), HandshakeError> {
    let PeerFrame::Proof { mac } = recv(stream, "a proof").await? else {
        return Err(HandshakeError::BadProof { from });
    };
    let mac = hex::decode(mac).map_err(|_| HandshakeError::BadProof { from })?;
    if secret.verify_peer_proof(&me.cluster_id, from, me.id, nonce, &mac) {
        Ok(())
    } else {
        Err(HandshakeError::BadProof { from })
    }
}

/// Dialer side: introduce ourselves to `to` and, with a secret, answer its challenge and make
/// it answer ours. Both ways matter: a process that took a dead member's port must not receive
/// the log entries we would send that member.
pub async fn open(
    stream: &mut PeerStream,
    me: &PeerIdentity,
    to: NodeId,
) -> Result<(), HandshakeError> {
    let hello = PeerFrame::Hello {
        cluster_id: me.cluster_id.clone(),
        from: me.id,
    };
    send(stream, &hello).await?;
    if let Some(secret) = &me.secret {
        answer_challenge(stream, me, secret, to).await?;
        let nonce = challenge(stream).await?;
        check_proof(stream, me, secret, to, &nonce).await?;
    }
    Ok(())
}

/// Listener side: returns the member the stream comes from once it has introduced itself and,
/// with a secret, proved it (and we have proved ourselves to it). `is_member` says which ids
/// may dial us.
pub async fn accept(
    stream: &mut PeerStream,
    me: &PeerIdentity,
    is_member: impl Fn(NodeId) -> bool,
) -> Result<NodeId, HandshakeError> {
    let PeerFrame::Hello { cluster_id, from } = recv(stream, "a hello").await? else {
        return Err(HandshakeError::Unexpected {
            expected: "a hello",
        });
    };
    if cluster_id != me.cluster_id || !is_member(from) || from == me.id {
        return Err(HandshakeError::Stranger {
            cluster: cluster_id,
            from,
        });
    }
    let Some(secret) = &me.secret else {
        return Ok(from);
    };
    let nonce = challenge(stream).await?;
    check_proof(stream, me, secret, from, &nonce).await?;
    answer_challenge(stream, me, secret, from).await?;
    Ok(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair() -> (PeerStream, PeerStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let (a, b) = tokio::join!(TcpStream::connect(addr), l.accept());
        (stream(a.unwrap()), stream(b.unwrap().0))
    }

    fn identity(id: NodeId, secret: Option<&Arc<ClusterSecret>>) -> PeerIdentity {
        PeerIdentity {
            id,
            cluster_id: "c".into(),
            secret: secret.cloned(),
        }
    }

    fn secret(dir: &tempfile::TempDir, name: &str) -> Arc<ClusterSecret> {
        Arc::new(ClusterSecret::load_or_create(&dir.path().join(name)).unwrap())
    }

    /// The listener's side as the transport runs it: the stream is dropped after a refusal.
    async fn accept_then_close(
        mut listener: PeerStream,
        me: &PeerIdentity,
    ) -> Result<NodeId, HandshakeError> {
        accept(&mut listener, me, |id| (1..=3).contains(&id)).await
    }

    #[tokio::test]
    async fn members_with_the_secret_get_in_and_others_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let s = secret(&dir, "s");
        let other = secret(&dir, "other");
        let members = |id| (1..=3).contains(&id);
        let (one, two) = (identity(1, Some(&s)), identity(2, Some(&s)));
        let (two_other, nine) = (identity(2, Some(&other)), identity(9, Some(&s)));

        let (mut dialer, mut listener) = pair().await;
        let (opened, accepted) = tokio::join!(
            open(&mut dialer, &two, 1),
            accept(&mut listener, &one, members)
        );
        opened.unwrap();
        assert_eq!(accepted.unwrap(), 2);

        // A refused dialer is told by the stream closing.
        let (mut dialer, listener) = pair().await;
        let (opened, accepted) = tokio::join!(
            open(&mut dialer, &two_other, 1),
            accept_then_close(listener, &one)
        );
        assert!(matches!(
            accepted,
            Err(HandshakeError::BadProof { from: 2 })
        ));
        assert!(opened.is_err());

        // A dialer without the secret sends no proof: the challenge goes unanswered.
        let (mut dialer, mut listener) = pair().await;
        open(&mut dialer, &identity(2, None), 1).await.unwrap();
        drop(dialer);
        assert!(accept(&mut listener, &identity(1, Some(&s)), members)
            .await
            .is_err());

        // A receiver without the secret (a process on a dead member's port) is found out.
        let (mut dialer, mut listener) = pair().await;
        let impostor = identity(1, Some(&other));
        let pretend = async {
            recv(&mut listener, "a hello").await?;
            challenge(&mut listener).await?;
            recv(&mut listener, "a proof").await?;
            answer_challenge(&mut listener, &impostor, &other, 2).await
        };
        let (opened, _) = tokio::join!(open(&mut dialer, &two, 1), pretend);
        assert!(
            matches!(opened, Err(HandshakeError::BadProof { from: 1 })),
            "{opened:?}"
        );

        // A stranger is refused at its Hello; it never sees a challenge.
        let (mut dialer, listener) = pair().await;
        let (opened, accepted) = tokio::join!(
            open(&mut dialer, &nine, 1),
            accept_then_close(listener, &one)
        );
        assert!(matches!(accepted, Err(HandshakeError::Stranger { .. })));
        assert!(matches!(opened, Err(HandshakeError::Closed)), "{opened:?}");
    }

    #[tokio::test]
    async fn a_large_frame_before_the_handshake_is_refused_unread() {
        use tokio::io::AsyncWriteExt;
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut raw = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let mut listener = stream(l.accept().await.unwrap().0);
        raw.write_all(&(1u32 << 20).to_be_bytes()).await.unwrap();
        let r = accept(&mut listener, &identity(1, None), |_| true).await;
        assert!(matches!(r, Err(HandshakeError::Io(_))), "{r:?}");
    }
}
