//! Network plumbing: HTTP to the launcher, and WebSockets to the nodes. Each socket's handlers
//! only hand frames to the app; the socket object lives in a [`Socket`] that detaches its
//! handlers when dropped.

use js_sys::Promise;
use wasm_bindgen::{prelude::*, JsCast};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{CloseEvent, Event, MessageEvent, Request, RequestInit, Response, WebSocket};

use super::with_app;

/// Frames longer than this (in UTF-16 units, never more than their UTF-8 bytes) are not copied
/// into the wasm at all: the largest frame any socket accepts is an admin dump.
pub const FRAME_CHARS_MAX: u32 = 16 << 20;

/// How often the launcher's cluster view is polled.
pub const POLL_INTERVAL_MS: i32 = 1_000;

pub async fn sleep_ms(ms: i32) {
    let p = Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = JsFuture::from(p).await;
}

/// `fetch` returning the status and body text, or a description of what failed.
pub async fn http(method: &str, path: &str, body: Option<String>) -> Result<(u16, String), String> {
    let window = web_sys::window().ok_or("no window")?;
    let init = RequestInit::new();
    init.set_method(method);
    if let Some(b) = &body {
        init.set_body(&JsValue::from_str(b));
    }
    let request = Request::new_with_str_and_init(path, &init).map_err(js_text)?;
    if body.is_some() {
        let _ = request.headers().set("content-type", "application/json");
    }
    let resp = JsFuture::from(window.fetch_with_request(&request))
        .await
        .map_err(js_text)?;
    let resp: Response = resp.dyn_into().map_err(js_text)?;
    let text = JsFuture::from(resp.text().map_err(js_text)?)
        .await
        .map_err(js_text)?;
    Ok((resp.status(), text.as_string().unwrap_or_default()))
}

pub fn js_text(v: JsValue) -> String {
    v.as_string()
        .or_else(|| {
            v.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| format!("{v:?}"))
}

pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Polls the cluster view forever; the app opens and closes streams from it.
pub fn start_poll_loop() {
    spawn_local(async {
        loop {
            poll_once().await;
            sleep_ms(POLL_INTERVAL_MS).await;
        }
    });
}

pub async fn poll_once() {
    let result = http("GET", crate::control::CLUSTER_PATH, None).await;
    with_app(|app| app.on_cluster(result));
}

/// What a socket reports to the app.
pub enum SocketEvent {
    Open,
    Frame(String),
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
    /// Opens `url`; `deliver` is called (through the app) with everything that happens.
    pub fn open(
        url: &str,
        deliver: fn(&mut super::app::App, u64, SocketEvent),
        tag: u64,
    ) -> Result<Socket, String> {
        let ws = WebSocket::new(url).map_err(js_text)?;
        let on_open = Closure::<dyn FnMut(Event)>::new(move |_: Event| {
            with_app(|app| deliver(app, tag, SocketEvent::Open));
        });
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            let data = e.data();
            let ev = match data.dyn_ref::<js_sys::JsString>() {
                // Checked before the copy: a huge frame must not grow the wasm's memory, which
                // never shrinks.
                Some(s) if s.length() > FRAME_CHARS_MAX => {
                    SocketEvent::Frame(format!("<frame of {} characters>", s.length()))
                }
                Some(s) => SocketEvent::Frame(String::from(s)),
                None => SocketEvent::Frame(String::from("<binary frame>")),
            };
            with_app(|app| deliver(app, tag, ev));
        });
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |e: CloseEvent| {
            let why = format!("closed (code {})", e.code());
            with_app(|app| deliver(app, tag, SocketEvent::Closed(why)));
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
