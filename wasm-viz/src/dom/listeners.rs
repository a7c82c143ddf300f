//! The page's listeners and its animation-frame loop, each reaching the app through
//! [`with_app`].
//!
//! All controls are handled by one delegated click listener reading `data-action` attributes,
//! so per-node buttons and markers created later need no listeners of their own.

use std::{cell::RefCell, rc::Rc};

use wasm_bindgen::{prelude::*, JsCast};
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{Document, Element, Event, HtmlInputElement, KeyboardEvent, MouseEvent};

use super::{app::with_app, el, net};

pub fn install(doc: &Document) -> Result<(), JsValue> {
    let click = Closure::<dyn FnMut(Event)>::new(|e: Event| {
        let target = e
            .target()
            .and_then(|t| t.dyn_into::<Element>().ok())
            .and_then(|t| t.closest("[data-action]").ok().flatten());
        let shift = e.dyn_ref::<MouseEvent>().is_some_and(|m| m.shift_key());
        if let Some(t) = target {
            with_app(|app| app.on_click(t, shift));
        }
    });
    doc.add_event_listener_with_callback("click", click.as_ref().unchecked_ref())?;
    click.forget(); // lives as long as the page

    let keys = Closure::<dyn FnMut(KeyboardEvent)>::new(|e: KeyboardEvent| {
        let in_form = e
            .target()
            .and_then(|t| t.dyn_into::<Element>().ok())
            .is_some_and(|t| t.id() == "key" || t.id() == "value");
        if in_form && e.key() == "Enter" {
            e.prevent_default();
            with_app(|app| app.submit("put"));
        } else if e.key() == super::stepping::DELIVER_KEY && !in_form && !typing(&e) {
            with_app(|app| app.deliver_next());
        } else if e.key() == "Escape" {
            with_app(|app| app.view.close_drawers());
        }
    });
    doc.add_event_listener_with_callback("keydown", keys.as_ref().unchecked_ref())?;
    keys.forget();

    if let Some(scrub) = el::by_id(doc, "scrub") {
        let on_input = Closure::<dyn FnMut(Event)>::new(|e: Event| {
            let v = e
                .target()
                .and_then(|t| t.dyn_into::<HtmlInputElement>().ok())
                .map(|i| i.value_as_number())
                .unwrap_or(0.0);
            with_app(|app| {
                app.active().seek(v.max(0.0) as u64);
                app.view.invalidate();
            });
        });
        scrub.add_event_listener_with_callback("input", on_input.as_ref().unchecked_ref())?;
        on_input.forget();
    }

    if let Some(file) = el::by_id(doc, "import") {
        let on_change = Closure::<dyn FnMut(Event)>::new(|e: Event| {
            let file = e
                .target()
                .and_then(|t| t.dyn_into::<HtmlInputElement>().ok())
                .and_then(|i| i.files())
                .and_then(|f| f.get(0));
            if let Some(file) = file {
                spawn_local(async move {
                    match JsFuture::from(file.array_buffer()).await {
                        Ok(buffer) => {
                            let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
                            with_app(|app| app.import(&bytes));
                        }
                        Err(e) => {
                            let msg = net::js_text(e);
                            with_app(|app| app.notice(format!("import failed: {msg}")));
                        }
                    }
                });
            }
        });
        file.add_event_listener_with_callback("change", on_change.as_ref().unchecked_ref())?;
        on_change.forget();
    }
    Ok(())
}

/// Whether a key press goes to a text field or a select (where letters are typed, not commands).
fn typing(e: &KeyboardEvent) -> bool {
    (e.target().and_then(|t| t.dyn_into::<Element>().ok()))
        .is_some_and(|t| matches!(t.tag_name().as_str(), "INPUT" | "SELECT" | "TEXTAREA"))
}

/// The frame callback, shared with itself so that it can ask for the next frame.
type FrameSlot = Rc<RefCell<Option<Closure<dyn FnMut()>>>>;

/// Draws once per animation frame, forever.
pub fn start_frames() {
    let slot: FrameSlot = Rc::new(RefCell::new(None));
    let again = slot.clone();
    *slot.borrow_mut() = Some(Closure::new(move || {
        with_app(|app| app.frame());
        if let (Some(w), Some(cb)) = (web_sys::window(), again.borrow().as_ref()) {
            let _ = w.request_animation_frame(cb.as_ref().unchecked_ref());
        }
    }));
    let first = slot.borrow();
    if let (Some(w), Some(cb)) = (web_sys::window(), first.as_ref()) {
        let _ = w.request_animation_frame(cb.as_ref().unchecked_ref());
    }
}
