//! The cluster secret: what a node's `/admin` rights and its peers' identity rest on.
//!
//! Anything on the machine can open a TCP connection to a node, and any web page can try (the
//! browser only adds an `Origin` header). Knowing the cluster's layout is not proof of anything
//! (the cluster id is in the process list), so rights come from a secret that only processes
//! able to read one file have: the launcher creates it (32 random bytes, hex, mode 0600) in its
//! data directory and gives nodes its path with `--secret-file`.
//!
//! The secret is used two ways: tools present it to `/admin` as a bearer token (over loopback,
//! and compared in constant time), and peers prove they hold it with an HMAC over a fresh
//! challenge, so it never crosses a peer link.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use omnikv_core::NodeId;

/// Bytes of randomness in a secret the launcher creates.
const CREATED_BYTES: usize = 32;
/// A shorter secret is refused: it could be guessed.
const TEXT_LEN_MIN: usize = 32;
/// Bytes of a peer challenge.
pub const NONCE_BYTES: usize = 32;
/// Domain separation: a proof made for a peer handshake means nothing elsewhere.
const PEER_PROOF_CONTEXT: &[u8] = b"omnikv peer hello v1";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("reading the cluster secret {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("creating the cluster secret {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the cluster secret {path} is readable by other users (mode {mode:o}); run chmod 600 on it"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error(
        "the cluster secret {path} is too short ({len} characters, at least {TEXT_LEN_MIN} needed)"
    )]
    TooShort { path: PathBuf, len: usize },
}

/// The secret's text (surrounding whitespace removed). Never printed.
#[derive(Clone)]
pub struct ClusterSecret {
    text: String,
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

type HmacSha256 = Hmac<Sha256>;

impl ClusterSecret {
    /// Reads a secret file, refusing one that other users can read or that is too short.
    pub fn from_file(path: &Path) -> Result<ClusterSecret, SecretError> {
        let read_err = |source| SecretError::Read {
            path: path.to_owned(),
            source,
        };
        let mode = std::fs::metadata(path)
            .map_err(read_err)?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(SecretError::TooOpen {
                path: path.to_owned(),
                mode: mode & 0o777,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        let text = text.trim().to_string();
        if text.len() < TEXT_LEN_MIN {
            return Err(SecretError::TooShort {
                path: path.to_owned(),
                len: text.len(),
            });
        }
        Ok(ClusterSecret { text })
    }

    /// The launcher's secret: read from `path` if it exists (a restarted demo keeps its
    /// cluster), otherwise created there with fresh randomness, readable by its owner only.
    pub fn load_or_create(path: &Path) -> Result<ClusterSecret, SecretError> {
        let mut bytes = [0u8; CREATED_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        let text = hex::encode(bytes);
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path);
        match created {
            Ok(mut file) => {
                file.write_all(text.as_bytes())
                    .and_then(|()| file.sync_all())
                    .map_err(|source| SecretError::Create {
                        path: path.to_owned(),
                        source,
                    })?;
                Ok(ClusterSecret { text })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::from_file(path),
            Err(source) => Err(SecretError::Create {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// What a tool sends as `Authorization: Bearer ...` to `/admin`.
    pub fn bearer(&self) -> &str {
        &self.text
    }

    /// Whether a presented bearer token is this secret, in time independent of its content.
    pub fn matches_bearer(&self, presented: &str) -> bool {
        presented.as_bytes().ct_eq(self.text.as_bytes()).into()
    }

    fn peer_mac(&self, cluster_id: &str, from: NodeId, to: NodeId, nonce: &[u8]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(self.text.as_bytes()).expect("HMAC takes any key length");
        mac.update(PEER_PROOF_CONTEXT);
        // Length-prefixed, so that no two different inputs write the same bytes.
        mac.update(&(cluster_id.len() as u64).to_be_bytes());
        mac.update(cluster_id.as_bytes());
        mac.update(&from.to_be_bytes());
        mac.update(&to.to_be_bytes());
        mac.update(nonce);
        mac
    }

    /// Proof that member `from` of `cluster_id` holds the secret, answering `to`'s `nonce`.
    pub fn peer_proof(&self, cluster_id: &str, from: NodeId, to: NodeId, nonce: &[u8]) -> Vec<u8> {
        self.peer_mac(cluster_id, from, to, nonce)
            .finalize()
            .into_bytes()
            .to_vec()
    }

    /// Checks a peer's proof (constant-time comparison).
    pub fn verify_peer_proof(
        &self,
        cluster_id: &str,
        from: NodeId,
        to: NodeId,
        nonce: &[u8],
        proof: &[u8],
    ) -> bool {
        self.peer_mac(cluster_id, from, to, nonce)
            .verify_slice(proof)
            .is_ok()
    }
}

/// A fresh random challenge for a peer that claims a member id.
pub fn nonce() -> [u8; NONCE_BYTES] {
    let mut n = [0u8; NONCE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_secret_is_private_random_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let a = ClusterSecret::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(a.bearer().len(), 2 * CREATED_BYTES);
        let again = ClusterSecret::load_or_create(&path).unwrap();
        assert_eq!(a.bearer(), again.bearer(), "a restart keeps the secret");
        let other = ClusterSecret::load_or_create(&dir.path().join("other")).unwrap();
        assert_ne!(a.bearer(), other.bearer());
        assert!(format!("{a:?}").find(a.bearer()).is_none(), "never printed");
    }

    #[test]
    fn open_or_short_secret_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let open = dir.path().join("open");
        std::fs::write(&open, "x".repeat(64)).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            ClusterSecret::from_file(&open),
            Err(SecretError::TooOpen { .. })
        ));
        let short = dir.path().join("short");
        std::fs::write(&short, "abc\n").unwrap();
        std::fs::set_permissions(&short, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            ClusterSecret::from_file(&short),
            Err(SecretError::TooShort { .. })
        ));
    }

    #[test]
    fn peer_proofs_bind_secret_cluster_members_and_nonce() {
        let dir = tempfile::tempdir().unwrap();
        let s = ClusterSecret::load_or_create(&dir.path().join("a")).unwrap();
        let t = ClusterSecret::load_or_create(&dir.path().join("b")).unwrap();
        let n = nonce();
        let proof = s.peer_proof("c", 2, 1, &n);
        assert!(s.verify_peer_proof("c", 2, 1, &n, &proof));
        assert!(!t.verify_peer_proof("c", 2, 1, &n, &proof), "other secret");
        assert!(!s.verify_peer_proof("d", 2, 1, &n, &proof), "other cluster");
        assert!(!s.verify_peer_proof("c", 3, 1, &n, &proof), "other sender");
        assert!(
            !s.verify_peer_proof("c", 2, 3, &n, &proof),
            "other receiver"
        );
        assert!(
            !s.verify_peer_proof("c", 2, 1, &nonce(), &proof),
            "replayed"
        );
        assert!(
            !s.verify_peer_proof("c", 2, 1, &n, &proof[..16]),
            "truncated"
        );
        assert!(s.matches_bearer(s.bearer()));
        assert!(!s.matches_bearer(t.bearer()));
    }
}
