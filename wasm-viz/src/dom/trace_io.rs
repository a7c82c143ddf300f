//! Trace files: exporting the recording as a download, and importing one to view.

use wasm_bindgen::{JsCast, JsValue};
use web_sys::Document;

use crate::timeline::{Timeline, RECORDS_CAP};

/// Largest trace file imported.
const TRACE_BYTES_MAX: usize = 256 << 20;

/// Offers `timeline` as a download, `omnikv-trace.json`.
pub fn export(doc: &Document, timeline: &Timeline) -> Result<(), String> {
    let json = serde_json::to_string(&timeline.export()).map_err(|e| e.to_string())?;
    let parts = js_sys::Array::of1(&JsValue::from_str(&json));
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type("application/json");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts)
        .map_err(super::net::js_text)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(super::net::js_text)?;
    if let Ok(a) = doc.create_element("a") {
        let _ = a.set_attribute("href", &url);
        let _ = a.set_attribute("download", "omnikv-trace.json");
        if let Some(a) = a.dyn_ref::<web_sys::HtmlElement>() {
            a.click();
        }
    }
    let _ = web_sys::Url::revoke_object_url(&url);
    Ok(())
}

/// A trace file's timeline, paused at its first input that draws something (not on an empty
/// ring).
pub fn import(text: &str) -> Result<Timeline, String> {
    let mut t = Timeline::import_text(text, TRACE_BYTES_MAX, RECORDS_CAP)?;
    while t.cursor() < t.end() && t.model().nodes.is_empty() {
        t.step(true);
    }
    Ok(t)
}
