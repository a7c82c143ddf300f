//! Requests to the launcher's control API, built from the core types so that paths and bodies
//! match what the launcher decodes.

use omnikv_core::{
    control::{DeliverRequest, HoldRequest, LinkPair, LinkRequest, ProcessState, Scenario},
    wire::encode_postcard,
    NodeId,
};

/// A control request: path (relative to the page's origin) and body, posted in postcard (with
/// `Content-Type:` [`omnikv_core::wire::POSTCARD_MEDIA_TYPE`]) as the launcher answers the
/// page, so that the page carries no JSON writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlRequest {
    pub path: String,
    pub body: Option<Vec<u8>>,
}

pub const CLUSTER_PATH: &str = "/api/cluster";
/// Where scenarios are posted; the scenario's name follows.
pub const SCENARIO_PATH_PREFIX: &str = "/api/scenarios/";

/// Node actions the launcher accepts, and the state a node's process is in once one is
/// carried out.
const NODE_ACTIONS: [(&str, ProcessState); 4] = [
    ("kill", ProcessState::Down),
    ("restart", ProcessState::Up),
    ("pause", ProcessState::Paused),
    ("resume", ProcessState::Up),
];

fn state_after(action: &str) -> Option<ProcessState> {
    (NODE_ACTIONS.iter())
        .find(|(name, _)| *name == action)
        .map(|(_, state)| *state)
}

/// Where node actions are posted: `/api/nodes/{id}/{action}`.
const NODE_PATH_PREFIX: &str = "/api/nodes/";

pub fn node_action(node: NodeId, action: &str) -> Result<ControlRequest, String> {
    if state_after(action).is_none() {
        return Err(format!("unknown node action \"{action}\""));
    }
    Ok(ControlRequest {
        path: format!("{NODE_PATH_PREFIX}{node}/{action}"),
        body: None,
    })
}

/// The node a node action's path names and the state its process is in once the launcher has
/// carried the action out (the inverse of [`node_action`]).
pub fn process_after(path: &str) -> Option<(NodeId, ProcessState)> {
    let (node, action) = path.strip_prefix(NODE_PATH_PREFIX)?.split_once('/')?;
    Some((node.parse().ok()?, state_after(action)?))
}

pub fn set_link(a: NodeId, b: NodeId, connected: bool) -> ControlRequest {
    let body = LinkRequest { a, b, connected };
    ControlRequest {
        path: "/api/links".into(),
        body: Some(encode_postcard(&body)),
    }
}

/// Holds (or releases) link `a`-`b` in both directions.
pub fn hold_link(a: NodeId, b: NodeId, held: bool) -> ControlRequest {
    let body = HoldRequest {
        a,
        b,
        held,
        both: true,
    };
    ControlRequest {
        path: "/api/links/hold".into(),
        body: Some(encode_postcard(&body)),
    }
}

/// Holds (or releases) every link between `ids`: step mode.
pub fn hold_all(ids: &[NodeId], held: bool) -> Vec<ControlRequest> {
    let pairs = ids
        .iter()
        .enumerate()
        .flat_map(|(i, a)| ids[i + 1..].iter().map(move |b| (*a, *b)));
    pairs.map(|(a, b)| hold_link(a, b, held)).collect()
}

/// Delivers the next `count` messages `a` holds for `b`.
pub fn deliver(a: NodeId, b: NodeId, count: u32) -> ControlRequest {
    let body = DeliverRequest { a, b, count };
    ControlRequest {
        path: "/api/links/deliver".into(),
        body: Some(encode_postcard(&body)),
    }
}

/// Drops the first message `a` holds for `b`, breaking that link's stream.
pub fn drop_held(a: NodeId, b: NodeId) -> ControlRequest {
    ControlRequest {
        path: "/api/links/drop".into(),
        body: Some(encode_postcard(&LinkPair { a, b })),
    }
}

pub fn scenario(name: &str) -> Result<ControlRequest, String> {
    let s = Scenario::parse(name).ok_or_else(|| format!("unknown scenario \"{name}\""))?;
    Ok(ControlRequest {
        path: format!("{SCENARIO_PATH_PREFIX}{}", s.name()),
        body: None,
    })
}
