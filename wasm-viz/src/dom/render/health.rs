//! The header's health line: how many more nodes the cluster can lose and still decide.

use web_sys::Document;

use crate::{
    dom::el::{self, attr, text},
    health,
    model::ClusterModel,
};

pub fn draw(doc: &Document, model: &ClusterModel) {
    let Some(e) = el::by_id(doc, "health") else {
        return;
    };
    if model.nodes.is_empty() {
        return text(&e, "");
    }
    let n = health::can_lose(model);
    attr(&e, "data-can-lose", &n.to_string());
    text(&e, &health::can_lose_text(n));
}
