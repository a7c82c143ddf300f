//! Requests to the launcher's control API, built from the core types so that paths and bodies
//! match what the launcher decodes.

use omnikv_core::{
    control::{LinkRequest, Scenario},
    NodeId,
};

/// A control request: method, path (relative to the page's origin) and JSON body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlRequest {
    pub path: String,
    pub body: Option<String>,
}

pub const CLUSTER_PATH: &str = "/api/cluster";
/// Where scenarios are posted; the scenario's name follows.
pub const SCENARIO_PATH_PREFIX: &str = "/api/scenarios/";

/// Node actions the launcher accepts.
pub const NODE_ACTIONS: [&str; 4] = ["kill", "restart", "pause", "resume"];

pub fn node_action(node: NodeId, action: &str) -> Result<ControlRequest, String> {
    if !NODE_ACTIONS.contains(&action) {
        return Err(format!("unknown node action {action:?}"));
    }
    Ok(ControlRequest {
        path: format!("/api/nodes/{node}/{action}"),
        body: None,
    })
}

pub fn set_link(a: NodeId, b: NodeId, connected: bool) -> ControlRequest {
    let body = LinkRequest { a, b, connected };
    ControlRequest {
        path: "/api/links".into(),
        body: serde_json::to_string(&body).ok(),
    }
}

pub fn scenario(name: &str) -> Result<ControlRequest, String> {
    let s = Scenario::parse(name).ok_or_else(|| format!("unknown scenario {name:?}"))?;
    Ok(ControlRequest {
        path: format!("{SCENARIO_PATH_PREFIX}{}", s.name()),
        body: None,
    })
}
