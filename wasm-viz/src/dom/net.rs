//! Network plumbing: HTTP to the launcher, and WebSockets to the nodes, both in postcard (the
//! page asks for it: `omnikv_core::wire`), so that the page carries no JSON reader.
//!
//! It knows nothing of the app: a [`Socket`] hands what happens to the callback it was opened
//! with, and the poll loop hands each cluster view to its own. The app builds those callbacks,
//! so the dependency points one way (app -> net).

use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};

use js_sys::Promise;
use omnikv_core::wire::{decode_postcard, POSTCARD_MEDIA_TYPE, POSTCARD_PROTOCOL};
use wasm_bindgen::{prelude::*, JsCast};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{
    BinaryType, CloseEvent, Event, MessageEvent, Request, RequestInit, Response, WebSocket,
};

/// Frames longer than this are not copied into the wasm at all: the largest frame any socket
/// accepts is an admin dump.
pub const FRAME_BYTES_MAX: u32 = 16 << 20;

/// How often the launcher's cluster view is polled.
pub const POLL_INTERVAL_MS: i32 = 1_000;

/// An HTTP answer: status and body (postcard), or a description of what failed.
pub type HttpResult = Result<(u16, Vec<u8>), String>;

pub async fn sleep_ms(ms: i32) {
    let p = Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(p).await;
}

/// `fetch` returning the status and body, or a description of what failed. The body sent and
/// the answer asked for are postcard.
pub async fn http(method: &str, path: &str, body: Option<Vec<u8>>) -> HttpResult {
    let window = web_sys::window().ok_or("no window")?;
    let init = RequestInit::new();
    init.set_method(method);
    if let Some(b) = &body {
        init.set_body(&js_sys::Uint8Array::from(b.as_slice()));
    }
    let request = Request::new_with_str_and_init(path, &init).map_err(js_text)?;
    if body.is_some() {
        let _ = request.headers().set("content-type", POSTCARD_MEDIA_TYPE);
    }
    let _ = request.headers().set("accept", POSTCARD_MEDIA_TYPE);
    let resp = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(js_text)?;
    let resp: Response = resp.dyn_into().map_err(js_text)?;
    let body = JsFuture::from(resp.array_buffer().map_err(js_text)?)
        .await
        .map_err(js_text)?;
    let body = js_sys::Uint8Array::new(&body);
    if body.length() > FRAME_BYTES_MAX {
        return Err(format!("an answer of {} bytes", body.length()));
    }
    Ok((resp.status(), body.to_vec()))
}

/// A thrown JavaScript value as text. Not `{:?}`: `JsValue`'s Debug formats numbers as Rust
/// floats, which brings the float formatting machinery (about 15 KB) into the wasm.
pub fn js_text(v: JsValue) -> String {
    v.as_string()
        .or_else(|| {
            v.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .or_else(|| js_sys::JSON::stringify(&v).ok().map(String::from))
        .unwrap_or_else(|| "an undescribed JavaScript error".into())
}

/// One answer of the launcher's cluster view, numbered in the order the views were asked for.
pub struct ClusterAnswer {
    pub asked: u64,
    pub result: HttpResult,
}

/// The launcher's cluster view, once. Views are asked for by the poll loop and after each
/// control request, so an answer can arrive after that of a later ask (a poll in flight across
/// a kill); its number lets the page drop it instead of undoing what the later one said.
pub async fn fetch_cluster() -> ClusterAnswer {
    static ASKED: AtomicU64 = AtomicU64::new(0);
    let asked = ASKED.fetch_add(1, Ordering::Relaxed);
    let result = http("GET", crate::control::CLUSTER_PATH, None).await;
    ClusterAnswer { asked, result }
}

/// Polls the cluster view forever, handing each answer to `on_view`.
pub fn start_poll_loop(on_view: fn(ClusterAnswer)) {
    spawn_local(async move {
        loop {
            on_view(fetch_cluster().await);
            sleep_ms(POLL_INTERVAL_MS).await;
        }
    });
}

/// A socket's frame decoded as a `T` of at most `limit` bytes, or why it could not be.
pub fn decode_frame<T: serde::de::DeserializeOwned>(
    frame: Result<Vec<u8>, String>,
    limit: usize,
) -> Result<T, String> {
    frame.and_then(|bytes| decode_postcard(&bytes, limit).map_err(|e| e.to_string()))
}

/// What a socket reports.
pub enum SocketEvent {
    Open,
    /// A binary frame's bytes, or why a frame was not read.
    Frame(Result<Vec<u8>, String>),
    Closed(String),
}

/// A WebSocket and the handlers attached to it.
pub struct Socket {
    pub ws: WebSocket,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl Socket {
    /// Opens `url`, asking for postcard frames; `deliver` is called with everything that
    /// happens to it.
    pub fn open(url: &str, deliver: impl Fn(SocketEvent) + 'static) -> Result<Socket, String> {
        let ws = WebSocket::new_with_str(url, POSTCARD_PROTOCOL).map_err(js_text)?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let deliver = Rc::new(deliver);
        let d = deliver.clone();
        let on_open = Closure::<dyn FnMut(Event)>::new(move |_: Event| d(SocketEvent::Open));
        let d = deliver.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let data = e.data();
            d(SocketEvent::Frame(
                match data.dyn_ref::<js_sys::ArrayBuffer>() {
                    // Checked before the copy: a huge frame must not grow the wasm's memory, which
                    // never shrinks.
                    Some(b) if b.byte_length() > FRAME_BYTES_MAX => {
                        Err(format!("a frame of {} bytes", b.byte_length()))
                    }
                    Some(b) => Ok(js_sys::Uint8Array::new(b).to_vec()),
                    None => Err("a text frame on a postcard connection".into()),
                },
            ));
        });
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
            deliver(SocketEvent::Closed(format!("closed (code {})", e.code())));
        });
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(Socket {
            ws,
            _on_open: on_open,
            _on_message: on_message,
            _on_close: on_close,
        })
    }

    /// Sends `frame` (postcard) as a binary frame; false if the socket would not take it.
    pub fn send(&self, frame: &[u8]) -> bool {
        self.ws.send_with_u8_array(frame).is_ok()
    }

    pub fn is_open(&self) -> bool {
        self.ws.ready_state() == WebSocket::OPEN
    }

    pub fn is_closed(&self) -> bool {
        matches!(
            self.ws.ready_state(),
            WebSocket::CLOSED | WebSocket::CLOSING
        )
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}
