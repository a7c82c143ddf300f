//! Who may open a node's WebSocket endpoints, and with what rights.
//!
//! Browsers apply no same-origin rule to WebSockets: any page the user visits can open
//! `ws://127.0.0.1:PORT/client` once it guesses the port, and it cannot hide that it is a page,
//! because the browser always sends its `Origin`. So an upgrade that carries an `Origin` is
//! accepted only from the page origins the node was given (`--allowed-origin`, the launcher's
//! own page); tools (the CLI, Node.js, tests) send no `Origin` and are accepted.
//!
//! `/admin` can cut links. When the node has a cluster secret, a request that changes anything
//! needs the upgrade to carry `Authorization: Bearer SECRET`; without it the connection is
//! read-only (`status`, `dump`, which `/client` could read anyway): this is what the
//! visualizer uses, since a page cannot set that header. A wrong secret is refused outright.

use std::sync::Arc;

use omnikv_core::admin::AdminRequest;

use crate::secret::ClusterSecret;

/// What an `/admin` connection may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminRights {
    /// Every request.
    Full,
    /// Requests that change nothing.
    ReadOnly,
}

impl AdminRights {
    /// Whether `req` is allowed; read-only requests are listed, so that a request added later
    /// needs full rights until someone decides otherwise.
    pub fn allows(self, req: &AdminRequest) -> bool {
        self == AdminRights::Full
            || matches!(
                req,
                AdminRequest::Status
                    | AdminRequest::Dump
                    | AdminRequest::DumpPage { .. }
                    | AdminRequest::DumpHead { .. }
            )
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Refusal {
    #[error("WebSocket from origin {0:?} refused: not this cluster's page")]
    ForeignOrigin(String),
    #[error("wrong cluster secret")]
    WrongSecret,
}

/// The node's rules for WebSocket upgrades.
#[derive(Clone, Debug, Default)]
pub struct UpgradePolicy {
    /// Page origins allowed to connect, normalised by [`normalise_origin`].
    origins: Vec<String>,
    secret: Option<Arc<ClusterSecret>>,
}

/// Origins compare case-insensitively and without a trailing slash.
fn normalise_origin(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

impl UpgradePolicy {
    pub fn new(origins: &[String], secret: Option<Arc<ClusterSecret>>) -> UpgradePolicy {
        UpgradePolicy {
            origins: origins.iter().map(|o| normalise_origin(o)).collect(),
            secret,
        }
    }

    /// An upgrade with no `Origin` comes from a tool; one with an `Origin` must be allowed.
    pub fn check_origin(&self, origin: Option<&str>) -> Result<(), Refusal> {
        match origin {
            None => Ok(()),
            Some(o) if self.origins.contains(&normalise_origin(o)) => Ok(()),
            Some(o) => Err(Refusal::ForeignOrigin(o.to_string())),
        }
    }

    /// The rights an `/admin` upgrade gets from its `Authorization` header.
    pub fn admin_rights(&self, authorization: Option<&str>) -> Result<AdminRights, Refusal> {
        let Some(secret) = &self.secret else {
            // No secret configured: the node only listens on loopback (checked at start),
            // as before secrets existed.
            return Ok(AdminRights::Full);
        };
        match authorization {
            None => Ok(AdminRights::ReadOnly),
            Some(h) => match h.strip_prefix("Bearer ") {
                Some(token) if secret.matches_bearer(token.trim()) => Ok(AdminRights::Full),
                _ => Err(Refusal::WrongSecret),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked_only_when_present() {
        let p = UpgradePolicy::new(&["http://127.0.0.1:8080/".into()], None);
        assert_eq!(p.check_origin(None), Ok(()));
        assert_eq!(p.check_origin(Some("HTTP://127.0.0.1:8080")), Ok(()));
        for bad in ["http://evil.example", "http://127.0.0.1:8081", "null", ""] {
            assert!(p.check_origin(Some(bad)).is_err(), "{bad}");
        }
        let none = UpgradePolicy::default();
        assert!(none.check_origin(Some("http://127.0.0.1:8080")).is_err());
    }

    #[test]
    fn admin_rights_follow_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let secret = ClusterSecret::load_or_create(&dir.path().join("s")).unwrap();
        let bearer = format!("Bearer {}", secret.bearer());
        let p = UpgradePolicy::new(&[], Some(Arc::new(secret)));
        assert_eq!(p.admin_rights(Some(&bearer)), Ok(AdminRights::Full));
        assert_eq!(p.admin_rights(None), Ok(AdminRights::ReadOnly));
        assert_eq!(
            p.admin_rights(Some("Bearer nope")),
            Err(Refusal::WrongSecret)
        );
        assert_eq!(p.admin_rights(Some("Basic x")), Err(Refusal::WrongSecret));
        assert_eq!(
            UpgradePolicy::default().admin_rights(None),
            Ok(AdminRights::Full)
        );
        let cut = AdminRequest::SetLink {
            peer: 2,
            connected: false,
        };
        assert!(!AdminRights::ReadOnly.allows(&cut));
        assert!(AdminRights::ReadOnly.allows(&AdminRequest::Dump));
        assert!(AdminRights::Full.allows(&cut));
    }
}
