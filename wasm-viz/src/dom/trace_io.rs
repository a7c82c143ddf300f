//! Trace files: exporting the recording as a download, and importing one to view.

use wasm_bindgen::JsCast;
use web_sys::Document;

use crate::timeline::{Timeline, RECORDS_CAP};

/// Largest trace file imported.
const TRACE_BYTES_MAX: usize = 256 << 20;

/// The name a trace file is offered under.
pub const TRACE_FILE_NAME: &str = "omnikv-trace.bin";

/// Offers `timeline` as a download, [`TRACE_FILE_NAME`].
pub fn export(doc: &Document, timeline: &Timeline) -> Result<(), String> {
    let bytes = js_sys::Uint8Array::from(timeline.export_bytes().as_slice());
    let parts = js_sys::Array::of1(&bytes);
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type("application/octet-stream");
    let blob = web_sys::Blob::new_with_buffer_source_sequence_and_options(&parts, &opts)
        .map_err(super::net::js_text)?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(super::net::js_text)?;
    if let Ok(a) = doc.create_element("a") {
        let _ = a.set_attribute("href", &url);
        let _ = a.set_attribute("download", TRACE_FILE_NAME);
        if let Some(a) = a.dyn_ref::<web_sys::HtmlElement>() {
            a.click();
        }
    }
    let _ = web_sys::Url::revoke_object_url(&url);
    Ok(())
}

/// A trace file's timeline, paused at its first input that draws something (not on an empty
/// ring).
pub fn import(bytes: &[u8]) -> Result<Timeline, String> {
    let mut t = Timeline::import_bytes(bytes, TRACE_BYTES_MAX, RECORDS_CAP)?;
    while t.cursor() < t.end() && t.model().nodes.is_empty() {
        t.step(true);
    }
    Ok(t)
}
