//! The browser side: owns the sockets, the recording and the drawing, on wasm32 only.
//!
//! Network callbacks only record inputs (through [`App`]); drawing happens once per animation
//! frame from the model at the timeline's cursor, so a burst of events costs one redraw. Socket
//! objects are replaced outside their own callbacks (in the frame or the poll loop), because a
//! callback must not free the closure that is running it.

mod app;
mod el;
mod net;
mod render;

use std::cell::RefCell;

use wasm_bindgen::prelude::*;

use app::App;

thread_local! {
    static APP: RefCell<Option<App>> = const { RefCell::new(None) };
}

/// Runs `f` on the app if it is started and not already borrowed (a nested call is dropped
/// rather than panicking).
pub(crate) fn with_app<R>(f: impl FnOnce(&mut App) -> R) -> Option<R> {
    APP.with(|cell| match cell.try_borrow_mut() {
        Ok(mut guard) => guard.as_mut().map(f),
        Err(_) => None,
    })
}

/// Starts the visualizer in the current page (called by the bootstrap script).
#[wasm_bindgen(js_name = startVisualizer)]
pub fn start_visualizer() -> Result<(), JsValue> {
    std::panic::set_hook(Box::new(|info| {
        web_sys::console::error_1(&format!("omnikv-viz panicked: {info}").into());
    }));
    let app = App::new()?;
    APP.with(|cell| *cell.borrow_mut() = Some(app));
    app::install_listeners()?;
    net::start_poll_loop();
    app::start_frames();
    Ok(())
}
