//! Who may use the control API: which `Host` names it answers to, and the token check.
//!
//! The control API can kill processes, so a web page must not reach it. Comparing `Origin`
//! with `Host` is not enough on its own: a DNS-rebinding page (`evil.example` re-resolved to
//! 127.0.0.1) sends `Host: evil.example:PORT` and a matching `Origin`, both chosen by the
//! attacker. A browser always sends the name it resolved as `Host`, so answering only to names
//! this launcher is known by (the loopback names, the `--http` address and any `--allow-host`)
//! makes a rebound page fail before it reaches a handler.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use subtle::ConstantTimeEq;

/// The host names (without port) the control API answers to.
#[derive(Clone, Debug)]
pub struct HostAllowList {
    /// Lower-case names; IPv6 addresses in brackets, as they appear in a `Host` header.
    names: BTreeSet<String>,
}

impl HostAllowList {
    /// Loopback names, the address the launcher listens on, and `extra` names (the ones other
    /// machines use to reach it when it listens on a public or unspecified address).
    pub fn new(http: SocketAddr, extra: &[String]) -> HostAllowList {
        let mut names: BTreeSet<String> = ["127.0.0.1", "localhost", "[::1]"]
            .into_iter()
            .map(String::from)
            .collect();
        if !http.ip().is_unspecified() {
            names.insert(host_of_addr(http));
        }
        names.extend(extra.iter().map(|h| h.trim().to_ascii_lowercase()));
        HostAllowList { names }
    }

    /// Whether a `Host` header value (`name` or `name:port`) names this launcher. A missing or
    /// malformed header is refused: every HTTP/1.1 client sends one.
    pub fn allows(&self, host_header: Option<&str>) -> bool {
        host_header
            .and_then(host_name)
            .is_some_and(|name| self.names.contains(&name.to_ascii_lowercase()))
    }

    /// The names, for messages and for the nodes' `--allowed-origin` list.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.iter().map(String::as_str)
    }
}

/// The host part of a socket address as a `Host` header writes it.
fn host_of_addr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    }
}

/// `name` of `name:port`, `[v6]` of `[v6]:port`; `None` if it cannot be a host.
fn host_name(header: &str) -> Option<&str> {
    let header = header.trim();
    let name = if header.starts_with('[') {
        let end = header.find(']')?;
        let (name, rest) = header.split_at(end + 1);
        if !(rest.is_empty() || rest.starts_with(':')) {
            return None;
        }
        name
    } else {
        header.split(':').next()?
    };
    (!name.is_empty()).then_some(name)
}

/// Compares a presented token with the configured one in time that does not depend on where
/// they first differ, so the token cannot be guessed a byte at a time by timing replies.
pub fn token_matches(presented: &str, expected: &str) -> bool {
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(http: &str, extra: &[&str]) -> HostAllowList {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        HostAllowList::new(http.parse().unwrap(), &extra)
    }

    #[test]
    fn loopback_names_with_any_port_are_allowed() {
        let l = list("127.0.0.1:8080", &[]);
        for h in [
            "127.0.0.1:8080",
            "localhost:9",
            "LOCALHOST",
            "[::1]:8080",
            "127.0.0.1",
        ] {
            assert!(l.allows(Some(h)), "{h}");
        }
    }

    #[test]
    fn rebinding_and_malformed_hosts_are_refused() {
        let l = list("127.0.0.1:8080", &[]);
        for h in [
            "evil.example:8080",
            "evil.example",
            "127.0.0.1.evil.example:8080",
            "localhost.evil.example",
            "[::1]x",
            "",
            ":8080",
        ] {
            assert!(!l.allows(Some(h)), "{h}");
        }
        assert!(!l.allows(None));
    }

    #[test]
    fn the_listen_address_and_extra_names_are_allowed() {
        let l = list("192.0.2.7:8080", &["Demo.Lan"]);
        assert!(l.allows(Some("192.0.2.7:8080")));
        assert!(l.allows(Some("demo.lan:8080")));
        assert!(!l.allows(Some("192.0.2.8:8080")));
        let any = list("0.0.0.0:8080", &[]);
        assert!(
            !any.allows(Some("0.0.0.0:8080")),
            "not a name a client uses"
        );
        let v6 = list("[2001:db8::1]:80", &[]);
        assert!(v6.allows(Some("[2001:db8::1]:80")));
    }

    #[test]
    fn tokens_match_only_when_equal() {
        assert!(token_matches("s3cret", "s3cret"));
        assert!(!token_matches("s3cre", "s3cret"));
        assert!(!token_matches("s3cret!", "s3cret"));
        assert!(!token_matches("", "s3cret"));
    }
}
