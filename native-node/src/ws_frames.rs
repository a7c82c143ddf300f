//! A connection's frames in the wire encoding it chose (`omnikv_core::wire`): the upgrade's
//! subprotocol sets what the node writes, and each frame the other side sends says its own
//! encoding by its type (text: JSON, binary: postcard).

use omnikv_core::{
    wire::{encode_postcard, Encoding, POSTCARD_PROTOCOL},
    DecodeError,
};
use serde::{de::DeserializeOwned, Serialize};
use tokio_tungstenite::tungstenite::{
    handshake::server::{Request, Response},
    http::{header::SEC_WEBSOCKET_PROTOCOL, HeaderValue},
    Message as WsMessage,
};

/// The encoding an upgrade asks for; a postcard upgrade's answer names the subprotocol, as
/// RFC 6455 requires of a server that accepts one (a browser fails the connection otherwise).
pub(crate) fn negotiate(req: &Request, resp: &mut Response) -> Encoding {
    let offered = req
        .headers()
        .get(SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    let encoding = Encoding::from_protocols(offered);
    if encoding == Encoding::Postcard {
        resp.headers_mut().insert(
            SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(POSTCARD_PROTOCOL),
        );
    }
    encoding
}

/// `value` as a frame in `encoding`.
pub(crate) fn frame<T: Serialize>(encoding: Encoding, value: &T) -> WsMessage {
    match encoding {
        Encoding::Json => WsMessage::text(serde_json::to_string(value).expect("frames serialise")),
        Encoding::Postcard => WsMessage::binary(encode_postcard(value)),
    }
}

/// A frame's bytes (`None` for control frames), with the size a budget should count.
pub(crate) fn payload_len(msg: &WsMessage) -> Option<usize> {
    match msg {
        WsMessage::Text(t) => Some(t.len()),
        WsMessage::Binary(b) => Some(b.len()),
        _ => None,
    }
}

/// Decodes a data frame in the encoding its type says; `None` for control frames.
pub(crate) fn decode<T: DeserializeOwned>(
    msg: &WsMessage,
    limit: usize,
) -> Option<Result<T, DecodeError>> {
    match msg {
        WsMessage::Text(t) => Some(Encoding::Json.decode(t.as_bytes(), limit)),
        WsMessage::Binary(b) => Some(Encoding::Postcard.decode(b, limit)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use omnikv_core::client::{ClientOp, ClientRequest};
    use omnikv_core::RequestId;

    #[test]
    fn a_frame_is_read_in_the_encoding_its_type_names() {
        let req = ClientRequest {
            id: RequestId { client: 3, seq: 1 },
            op: ClientOp::Delete { key: "k".into() },
            forget_below: 0,
        };
        for encoding in [Encoding::Json, Encoding::Postcard] {
            let msg = frame(encoding, &req);
            assert_eq!(decode::<ClientRequest>(&msg, 1024), Some(Ok(req.clone())));
        }
        // JSON bytes in a binary frame are not postcard of a request.
        let json_in_binary = WsMessage::binary(serde_json::to_vec(&req).unwrap());
        assert!(matches!(
            decode::<ClientRequest>(&json_in_binary, 1024),
            Some(Err(_))
        ));
        assert_eq!(
            decode::<ClientRequest>(&WsMessage::Ping(Default::default()), 1024),
            None
        );
    }
}
