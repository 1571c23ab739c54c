//! Account credentials at rest: sealed with ChaCha20-Poly1305 under the operator's master
//! key (`SWITCHYARD_MASTER_KEY`), never logged, never returned.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The environment variable that holds the master key.
pub const MASTER_KEY_ENV: &str = "SWITCHYARD_MASTER_KEY";

/// Sealing failed or a sealed value does not open with this key.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SecretError {
    /// No master key was configured.
    #[error("no master key: set {MASTER_KEY_ENV} (32 random bytes, e.g. `openssl rand -hex 32`)")]
    NoKey,
    /// The stored value is damaged or was sealed with another key.
    #[error("a stored secret does not open with this master key (was the key changed?)")]
    Open,
}

/// Seals and opens secrets. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
    /// A key for signing, derived from the master key (never the master key itself).
    signing: [u8; 32],
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    /// A box from a master key: 64 hex characters are used as the 32-byte key; any other
    /// text is stretched with SHA-256 (use a long random value).
    pub fn new(master_key: &str) -> Result<SecretBox, SecretError> {
        let master_key = master_key.trim();
        if master_key.is_empty() {
            return Err(SecretError::NoKey);
        }
        let bytes: [u8; 32] = match decode_hex32(master_key) {
            Some(b) => b,
            None => Sha256::digest(master_key.as_bytes()).into(),
        };
        let mut h = Sha256::new();
        h.update(b"switchyard signing key v1\0");
        h.update(bytes);
        Ok(SecretBox {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&bytes)),
            signing: h.finalize().into(),
        })
    }

    /// A 32-byte key for signing (hosted result links), derived from the master key, so
    /// every process holding the master key signs and checks alike.
    pub fn signing_key(&self) -> [u8; 32] {
        self.signing
    }

    /// Seal: `v1:` + base64(nonce ‖ ciphertext).
    pub fn seal(&self, plaintext: &str) -> String {
        let nonce = ChaCha20Poly1305::generate_nonce(&mut OsRng);
        let ct = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend(ct);
        format!("v1:{}", B64.encode(out))
    }

    /// Open a sealed value.
    pub fn open(&self, sealed: &str) -> Result<String, SecretError> {
        let raw = sealed
            .strip_prefix("v1:")
            .and_then(|b| B64.decode(b).ok())
            .ok_or(SecretError::Open)?;
        if raw.len() < 12 {
            return Err(SecretError::Open);
        }
        let (nonce, ct) = raw.split_at(12);
        let pt = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ct)
            .map_err(|_| SecretError::Open)?;
        String::from_utf8(pt).map_err(|_| SecretError::Open)
    }
}

fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
        let hex = std::str::from_utf8(chunk).ok()?;
        out[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    Some(out)
}

/// `"••••" + last 4`, fully masked when shorter than 12 characters.
pub fn mask(secret: &str) -> String {
    let n = secret.chars().count();
    if n < 12 {
        "••••".to_string()
    } else {
        let tail: String = secret.chars().skip(n - 4).collect();
        format!("••••{tail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_wrong_key() {
        let a = SecretBox::new("correct horse battery staple").unwrap();
        let sealed = a.seal("{\"token\":\"abc\"}");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("abc"));
        assert_eq!(a.open(&sealed).unwrap(), "{\"token\":\"abc\"}");
        assert_ne!(a.seal("x"), a.seal("x"), "nonces differ");
        let b = SecretBox::new(&"ab".repeat(32)).unwrap();
        assert_eq!(b.open(&sealed), Err(SecretError::Open));
        assert_eq!(a.open("v1:!!"), Err(SecretError::Open));
        assert_eq!(SecretBox::new(" ").unwrap_err(), SecretError::NoKey);
        assert!(!format!("{a:?}").contains("horse"));
    }

    #[test]
    fn masks_show_at_most_four_characters() {
        assert_eq!(mask("short"), "••••");
        assert_eq!(mask("sim:ok:account-0001"), "••••0001");
    }
}
