//! Held links in the demo: the control API's `hold`, `deliver` and `drop`, carried out by the
//! sending node (which holds its own outgoing messages) and confirmed by it.
//!
//! Holds are not remembered by the launcher: a node that restarts sends freely again, and the
//! cluster view shows what the nodes report.

use omnikv_core::{
    admin::{AdminRequest, AdminResponse},
    NodeId,
};

use super::supervisor::{ControlError, Supervisor};

impl Supervisor {
    /// Holds (or releases) what `a` sends to `b`, and what `b` sends to `a` when `both`.
    pub async fn hold(
        &self,
        a: NodeId,
        b: NodeId,
        held: bool,
        both: bool,
    ) -> Result<(), ControlError> {
        self.check_pair(a, b)?;
        let mut directions = vec![(a, b)];
        if both {
            directions.push((b, a));
        }
        for (from, to) in directions {
            let req = AdminRequest::HoldLink { peer: to, held };
            self.ask(from, &req).await?;
        }
        Ok(())
    }

    /// Delivers up to `count` messages `a` holds for `b`; returns how many it delivered.
    pub async fn deliver(&self, a: NodeId, b: NodeId, count: u32) -> Result<u32, ControlError> {
        self.check_pair(a, b)?;
        self.ask(a, &AdminRequest::DeliverHeld { peer: b, count })
            .await
    }

    /// Drops the first message `a` holds for `b` (breaking that link's stream); returns how
    /// many it dropped (0 when none waited).
    pub async fn drop_held(&self, a: NodeId, b: NodeId) -> Result<u32, ControlError> {
        self.check_pair(a, b)?;
        self.ask(a, &AdminRequest::DropHeld { peer: b }).await
    }

    async fn ask(&self, node: NodeId, req: &AdminRequest) -> Result<u32, ControlError> {
        match self.admin(node, req).await {
            Ok(AdminResponse::Ok) => Ok(0),
            Ok(AdminResponse::Held { count }) => Ok(count),
            Ok(AdminResponse::Error { message }) => Err(ControlError::Refused(message)),
            Ok(other) => Err(ControlError::Failed(format!("unexpected answer {other:?}"))),
            Err(e) => Err(ControlError::NotConfirmed(format!(
                "node {node} did not answer: {e}"
            ))),
        }
    }
}
