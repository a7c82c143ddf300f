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

/// Sets a text input's value (or a checkbox's state, for `checked`).
pub fn set_input(doc: &Document, id: &str, value: &str, checked: Option<bool>) {
    if let Some(i) = by_id(doc, id).and_then(|e| e.dyn_into::<web_sys::HtmlInputElement>().ok()) {
        match checked {
            Some(c) => i.set_checked(c),
            None => i.set_value(value),
        }
    }
}

/// An element with the attribute values and text last written to it through this slot, so a
/// frame compares in Rust and crosses into the DOM only to write what changed (reading the DOM
/// back costs as much as writing it). Only for elements nothing else writes to.
pub struct Slot {
    pub el: Element,
    attrs: Vec<(&'static str, String)>,
    text: Option<String>,
}

impl Slot {
    pub fn new(el: Element) -> Slot {
        Slot {
            el,
            attrs: Vec::new(),
            text: None,
        }
    }

    pub fn attr(&mut self, name: &'static str, value: &str) {
        match self.attrs.iter_mut().find(|(n, _)| *n == name) {
            Some((_, v)) if v == value => {}
            Some((_, v)) => {
                let _ = self.el.set_attribute(name, value);
                value.clone_into(v);
            }
            None => {
                let _ = self.el.set_attribute(name, value);
                self.attrs.push((name, value.to_owned()));
            }
        }
    }

    pub fn text(&mut self, value: &str) {
        if self.text.as_deref() != Some(value) {
            self.el.set_text_content(Some(value));
            self.text = Some(value.to_owned());
        }
    }
}

/// Elements that each show one item (a message) from its arrival to its departure, keyed by
/// the item, with what they were last drawn with (`D`). An element whose item left is taken off
/// the page and kept for the next item, so a busy view rewrites a few attributes instead of
/// making elements.
pub struct KeyedSlots<K, D> {
    pub shown: Vec<(K, D, Slot)>,
    spare: Vec<Slot>,
}

impl<K, D> Default for KeyedSlots<K, D> {
    fn default() -> Self {
        KeyedSlots {
            shown: Vec::new(),
            spare: Vec::new(),
        }
    }
}

impl<K: PartialEq, D> KeyedSlots<K, D> {
    pub fn position(&self, key: &K) -> Option<usize> {
        self.shown.iter().position(|(k, _, _)| k == key)
    }

    /// Takes off the page every element whose item `keep` refuses.
    pub fn retain(&mut self, keep: impl Fn(&K) -> bool) {
        let mut i = 0;
        while i < self.shown.len() {
            if keep(&self.shown[i].0) {
                i += 1;
            } else {
                let (_, _, slot) = self.shown.swap_remove(i);
                slot.el.remove();
                self.spare.push(slot);
            }
        }
    }

    /// The index of `key`'s element, putting one under `parent` first if it has none (a spare
    /// one, else one from `make`).
    pub fn show(
        &mut self,
        parent: &Element,
        key: K,
        drawn: D,
        make: impl FnOnce() -> Slot,
    ) -> usize {
        if let Some(i) = self.position(&key) {
            return i;
        }
        let slot = self.spare.pop().unwrap_or_else(make);
        child(parent, &slot.el);
        self.shown.push((key, drawn, slot));
        self.shown.len() - 1
    }
}

/// The children of `parent` as `T`s (each holding its element), created with `make` or removed
/// from the end so that there are exactly `n`.
pub fn ensure_slots<T>(
    parent: &Element,
    items: &mut Vec<T>,
    n: usize,
    root: impl Fn(&T) -> &Element,
    make: impl Fn() -> T,
) {
    while items.len() < n {
        let item = make();
        child(parent, root(&item));
        items.push(item);
    }
    while items.len() > n {
        if let Some(item) = items.pop() {
            root(&item).remove();
        }
    }
}

/// Whether a checkbox is ticked (false for any other element).
pub fn checked(e: &Element) -> bool {
    e.dyn_ref::<web_sys::HtmlInputElement>()
        .is_some_and(|i| i.checked())
}
