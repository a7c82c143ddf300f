//! Small DOM helpers that write only when a value changed, so frames touch the DOM as little
//! as the picture requires.

use wasm_bindgen::JsCast;
use web_sys::{Document, Element};

pub const SVG_NS: &str = "http://www.w3.org/2000/svg";

pub fn by_id(doc: &Document, id: &str) -> Option<Element> {
    doc.get_element_by_id(id)
}

pub fn html(doc: &Document, tag: &str, class: &str) -> Element {
    let e = doc
        .create_element(tag)
        .unwrap_or_else(|_| doc.create_element("div").expect("div"));
    if !class.is_empty() {
        e.set_class_name(class);
    }
    e
}

pub fn svg(doc: &Document, tag: &str, class: &str) -> Element {
    let e = match doc.create_element_ns(Some(SVG_NS), tag) {
        Ok(e) => e,
        Err(_) => html(doc, "span", ""),
    };
    if !class.is_empty() {
        let _ = e.set_attribute("class", class);
    }
    e
}

pub fn attr(e: &Element, name: &str, value: &str) {
    if e.get_attribute(name).as_deref() != Some(value) {
        let _ = e.set_attribute(name, value);
    }
}

pub fn text(e: &Element, value: &str) {
    if e.text_content().as_deref() != Some(value) {
        e.set_text_content(Some(value));
    }
}

pub fn child(parent: &Element, e: &Element) {
    let _ = parent.append_child(e);
}

/// Makes `parent` hold exactly `n` children, creating them with `make` or removing extras from
/// the end; existing children are reused in place.
pub fn ensure_children(parent: &Element, n: usize, make: impl Fn() -> Element) {
    let mut have = parent.child_element_count() as usize;
    while have < n {
        child(parent, &make());
        have += 1;
    }
    while have > n {
        if let Some(last) = parent.last_element_child() {
            last.remove();
        }
        have -= 1;
    }
}

pub fn nth(parent: &Element, i: usize) -> Option<Element> {
    parent.children().item(i as u32)
}

pub fn input_value(doc: &Document, id: &str) -> String {
    by_id(doc, id)
        .and_then(|e| {
            if let Some(i) = e.dyn_ref::<web_sys::HtmlInputElement>() {
                Some(i.value())
            } else {
                e.dyn_ref::<web_sys::HtmlSelectElement>().map(|s| s.value())
            }
        })
        .unwrap_or_default()
}
