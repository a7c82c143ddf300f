//! The browser side: owns the sockets, the recording and the drawing, on wasm32 only.
//!
//! Network callbacks only record inputs (through [`app::App`]); drawing happens once per
//! animation frame from the model at the timeline's cursor, so a burst of events costs one
//! redraw. Socket objects are replaced outside their own callbacks (in the frame or the poll
//! loop), because a callback must not free the closure that is running it.
//!
//! Layout: `app` wires everything and is the only module that knows the [`app::App`];
//! `listeners` (DOM events, frames), `net` (HTTP, sockets), `streams` (node event streams and
//! table heads), `client_form`, `watch_feed`, `controls`, `stepping` (step mode's words and
//! targets) and `trace_io` each do one job and are handed callbacks;
//! `render` draws, one module per panel; `el` holds the DOM helpers.

mod app;
mod client_form;
mod controls;
mod el;
mod listeners;
mod net;
mod render;
mod stepping;
mod streams;
mod trace_io;
mod watch_feed;

use wasm_bindgen::prelude::*;

/// The page's clock, in Unix milliseconds (the nodes' event times are on the same clock).
pub(crate) fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Starts the visualizer in the current page (called by the bootstrap script).
#[wasm_bindgen(js_name = startVisualizer)]
pub fn start_visualizer() -> Result<(), JsValue> {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&format!("omnikv-viz panicked: {info}").into());
    }));
    let doc = web_sys::window()
        .and_then(|w| w.document())
        .ok_or("no document")?;
    app::install(app::App::new(doc.clone()));
    listeners::install(&doc)?;
    net::start_poll_loop(|view| {
        app::with_app(|app| app.on_cluster(view));
    });
    listeners::start_frames();
    Ok(())
}
