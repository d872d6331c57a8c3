//! Encryption at rest for the secrets the router must be able to read back: access tokens,
//! refresh tokens and PKCE verifiers (poll tokens, states and session cookies are only ever
//! hashed).
//!
//! Each value is sealed with XChaCha20-Poly1305 under its own random 192-bit nonce, and
//! stored as `enc:v1:<key id>:<base64url(nonce ‖ ciphertext)>`. The key id is derived from
//! the key, so a configured key can be matched to the rows it sealed without storing
//! anything about it, and `previous_keys` can open old rows while new rows use the current
//! key. The associated data binds each value to its table, column and request, so a sealed
//! value copied into another row or column does not open. Values without the prefix are
//! plaintext from before a key was set. With `storage.require_sealed` (on by default once
//! a key is set) they are refused, so that someone who can write the file cannot plant a
//! token; `rekey` is the way to seal them.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::rngs::OsRng;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use crate::config::{ConfigError, StorageConfig};

const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 24;

/// One key: the cipher and the id written next to what it seals. `Debug` shows the id only.
struct Key {
    id: String,
    cipher: XChaCha20Poly1305,
}

/// Seals and opens stored secrets; with no key configured it passes plaintext through.
pub struct Sealer {
    current: Option<Key>,
    previous: Vec<Key>,
    /// Refuse values stored without the prefix.
    require_sealed: bool,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("current", &self.current.as_ref().map(|k| &k.id))
            .field(
                "previous",
                &self.previous.iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .field("require_sealed", &self.require_sealed)
            .finish()
    }
}

/// A stored value that cannot be opened with the configured keys.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("sealed with key id {0}, which is neither storage.encryption_key nor in storage.previous_keys")]
    UnknownKey(String),
    #[error("a sealed value failed authentication (wrong key, or the row was tampered with)")]
    Corrupt,
    #[error("a value is stored unsealed and storage.require_sealed is on; run `claude-auth-router rekey` to seal it")]
    Unsealed,
}

impl Sealer {
    /// No encryption: values are stored as they are.
    pub fn plaintext() -> Self {
        Self {
            current: None,
            previous: Vec::new(),
            require_sealed: false,
        }
    }

    /// The keys from `[storage]`, each checked to be base64 of exactly 32 bytes.
    pub fn from_config(cfg: &StorageConfig) -> Result<Self, ConfigError> {
        let inline = cfg.encryption_key.expose_secret().trim();
        let current = match (&cfg.encryption_key_file, inline.is_empty()) {
            (Some(_), false) => {
                return Err(invalid(
                    "storage.encryption_key_file",
                    "cannot be set together with storage.encryption_key",
                ))
            }
            (Some(path), true) => {
                let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Invalid {
                    key: "storage.encryption_key_file",
                    message: format!("cannot be read ({}): {e}", path.display()),
                })?;
                Some(Key::parse(text.trim(), "storage.encryption_key_file")?)
            }
            (None, false) => Some(Key::parse(inline, "storage.encryption_key")?),
            (None, true) => None,
        };
        let previous = cfg
            .previous_keys
            .iter()
            .map(|k| Key::parse(k.expose_secret().trim(), "storage.previous_keys"))
            .collect::<Result<Vec<_>, _>>()?;
        if current.is_none() && !previous.is_empty() {
            return Err(invalid(
                "storage.previous_keys",
                "needs storage.encryption_key (the current key) as well",
            ));
        }
        if current.is_none() && cfg.require_sealed == Some(true) {
            return Err(invalid(
                "storage.require_sealed",
                "needs storage.encryption_key: without a key nothing is sealed",
            ));
        }
        let require_sealed = cfg.require_sealed.unwrap_or(current.is_some());
        Ok(Self {
            current,
            previous,
            require_sealed,
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.current.is_some()
    }

    /// The id of the key new values are sealed with.
    pub fn current_id(&self) -> Option<&str> {
        self.current.as_ref().map(|k| k.id.as_str())
    }

    /// Whether a key with this id is configured (current or previous).
    pub fn knows(&self, id: &str) -> bool {
        self.keys().any(|k| k.id == id)
    }

    /// Seals `value` for the place named by `aad`, or returns it as it is without a key.
    pub fn seal(&self, value: &str, aad: &str) -> String {
        let Some(key) = &self.current else {
            return value.to_owned();
        };
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let sealed = key
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption does not fail for in-memory inputs");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}:{}", key.id, URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Whether unsealed values are refused (`storage.require_sealed`).
    pub fn requires_sealed(&self) -> bool {
        self.require_sealed
    }

    /// Opens a stored value. Plaintext (no prefix) comes back as it is, unless
    /// `require_sealed` refuses it.
    pub fn open(&self, stored: &str, aad: &str) -> Result<SecretString, OpenError> {
        if self.require_sealed && !stored.starts_with(PREFIX) {
            return Err(OpenError::Unsealed);
        }
        self.open_any(stored, aad)
    }

    /// Opens a stored value, plaintext included: for `rekey`, which seals what it reads.
    pub fn open_any(&self, stored: &str, aad: &str) -> Result<SecretString, OpenError> {
        let Some(rest) = stored.strip_prefix(PREFIX) else {
            return Ok(SecretString::from(stored.to_owned()));
        };
        let (id, data) = rest.split_once(':').ok_or(OpenError::Corrupt)?;
        let key = self
            .keys()
            .find(|k| k.id == id)
            .ok_or_else(|| OpenError::UnknownKey(id.to_owned()))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(data)
            .map_err(|_| OpenError::Corrupt)?;
        if bytes.len() < NONCE_LEN {
            return Err(OpenError::Corrupt);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = key
            .cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| OpenError::Corrupt)?;
        String::from_utf8(plain)
            .map(SecretString::from)
            .map_err(|_| OpenError::Corrupt)
    }

    /// Whether `stored` is already sealed with the current key (so `rekey` can skip it).
    pub fn is_current(&self, stored: &str) -> bool {
        match (self.current_id(), stored.strip_prefix(PREFIX)) {
            (Some(id), Some(rest)) => rest.split_once(':').is_some_and(|(k, _)| k == id),
            (None, None) => true,
            _ => false,
        }
    }

    fn keys(&self) -> impl Iterator<Item = &Key> {
        self.current.iter().chain(&self.previous)
    }
}

/// The key id of a stored value, when it is sealed.
pub fn key_id_of(stored: &str) -> Option<&str> {
    stored
        .strip_prefix(PREFIX)?
        .split_once(':')
        .map(|(id, _)| id)
}

/// The associated data of a stored secret: its table, column and request.
pub fn aad(column: &str, request_id: uuid::Uuid) -> String {
    format!("{column}/{request_id}")
}

impl Key {
    fn parse(b64: &str, config_key: &'static str) -> Result<Self, ConfigError> {
        let bytes = STANDARD
            .decode(b64)
            .or_else(|_| URL_SAFE_NO_PAD.decode(b64))
            .map_err(|_| {
                invalid(
                    config_key,
                    "must be base64 (for example: openssl rand -base64 32)",
                )
            })?;
        if bytes.len() != 32 {
            return Err(invalid(
                config_key,
                &format!("must decode to 32 bytes, not {}", bytes.len()),
            ));
        }
        let digest = Sha256::new_with_prefix(b"claude-auth-router storage key id\0")
            .chain_update(&bytes)
            .finalize();
        let id = hex(&digest[..4]);
        let cipher = XChaCha20Poly1305::new_from_slice(&bytes).expect("32-byte key");
        Ok(Key { id, cipher })
    }
}

/// Lower-case hex, for digests and hashes that travel as text.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        text.push(char::from(DIGITS[usize::from(b >> 4)]));
        text.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    text
}

fn invalid(key: &'static str, message: &str) -> ConfigError {
    ConfigError::Invalid {
        key,
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretString {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        SecretString::from(STANDARD.encode(bytes))
    }

    fn sealer(current: &SecretString, previous: &[SecretString]) -> Sealer {
        let cfg = StorageConfig {
            encryption_key: current.clone(),
            previous_keys: previous.to_vec(),
            ..StorageConfig::default()
        };
        Sealer::from_config(&cfg).unwrap()
    }

    #[test]
    fn a_sealed_value_opens_only_in_its_own_place_and_hides_its_text() {
        let s = sealer(&key(), &[]);
        let sealed = s.seal("fake-at-secret", "token_bundles.access_token/1");
        assert!(sealed.starts_with("enc:v1:") && !sealed.contains("fake-at-secret"));
        assert_ne!(
            sealed,
            s.seal("fake-at-secret", "token_bundles.access_token/1"),
            "fresh nonce each time"
        );
        assert_eq!(
            s.open(&sealed, "token_bundles.access_token/1")
                .unwrap()
                .expose_secret(),
            "fake-at-secret"
        );
        assert!(matches!(
            s.open(&sealed, "token_bundles.access_token/2"),
            Err(OpenError::Corrupt)
        ));
    }

    #[test]
    fn previous_keys_open_old_rows_and_unknown_keys_are_named() {
        let (old, new) = (key(), key());
        let before = sealer(&old, &[]);
        let sealed = before.seal("v", "a");
        let rotated = sealer(&new, std::slice::from_ref(&old));
        assert_eq!(rotated.open(&sealed, "a").unwrap().expose_secret(), "v");
        assert!(!rotated.is_current(&sealed));
        assert!(rotated.is_current(&rotated.seal("v", "a")));
        let unrelated = sealer(&key(), &[]);
        assert!(
            matches!(unrelated.open(&sealed, "a"), Err(OpenError::UnknownKey(id)) if id == before.current_id().unwrap())
        );
    }

    #[test]
    fn without_a_key_values_pass_through_and_plaintext_reads_back() {
        let s = Sealer::plaintext();
        assert_eq!(s.seal("v", "a"), "v");
        assert_eq!(
            s.open("legacy-plain", "a").unwrap().expose_secret(),
            "legacy-plain"
        );
    }

    #[test]
    fn with_a_key_plaintext_is_refused_unless_require_sealed_is_turned_off() {
        let k = key();
        let strict = sealer(&k, &[]);
        assert!(strict.requires_sealed(), "on by default with a key");
        assert!(matches!(
            strict.open("planted", "a"),
            Err(OpenError::Unsealed)
        ));
        assert_eq!(
            strict.open_any("planted", "a").unwrap().expose_secret(),
            "planted"
        );

        let lenient = Sealer::from_config(&StorageConfig {
            encryption_key: k,
            require_sealed: Some(false),
            ..StorageConfig::default()
        })
        .unwrap();
        assert_eq!(
            lenient.open("legacy", "a").unwrap().expose_secret(),
            "legacy"
        );
    }

    #[test]
    fn require_sealed_without_a_key_is_refused_with_the_config_key() {
        let err = Sealer::from_config(&StorageConfig {
            require_sealed: Some(true),
            ..StorageConfig::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("storage.require_sealed"), "{err}");
    }

    #[test]
    fn malformed_keys_are_refused_with_the_config_key() {
        for bad in ["not base64!", "c2hvcnQ="] {
            let cfg = StorageConfig {
                encryption_key: SecretString::from(bad),
                ..StorageConfig::default()
            };
            let err = Sealer::from_config(&cfg).unwrap_err().to_string();
            assert!(err.contains("storage.encryption_key"), "{err}");
        }
    }

    #[test]
    fn debug_output_shows_key_ids_only() {
        let k = key();
        let debug = format!("{:?}", sealer(&k, &[]));
        assert!(!debug.contains(k.expose_secret()));
    }
}
