//! Secrets the router hands out or receives: poll tokens, OAuth state, the admin token.
//!
//! They are random 256-bit values, so a single SHA-256 is enough to store them: there is no
//! low-entropy password to stretch. The database keeps only the hash, and every comparison
//! compares hashes in constant time, so neither timing nor a stolen file gives a token away.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Bytes of randomness in every secret the router generates.
const SECRET_BYTES: usize = 32;

/// A fresh random secret, URL-safe base64 (43 characters, 256 bits).
pub fn generate() -> SecretString {
    let mut bytes = [0u8; SECRET_BYTES];
    OsRng.fill_bytes(&mut bytes);
    SecretString::from(URL_SAFE_NO_PAD.encode(bytes))
}

/// The form in which a secret is stored and looked up.
pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Whether `candidate` is the secret whose hash is `stored`, in constant time.
pub fn verify(candidate: &str, stored: &[u8]) -> bool {
    let h = Sha256::digest(candidate.as_bytes());
    h.as_slice().ct_eq(stored).into()
}

/// What a console session is bound to: an Argon2id of the admin token, salted per database.
/// The admin token is chosen by a person, so unlike the generated secrets it may be
/// guessable; stored as a plain hash, anyone holding the database file could test guesses
/// at hash speed. Computed once per start.
///
/// OWASP's Argon2id setting with the least memory (7 MiB, 5 passes), which it rates as strong
/// as its 19 MiB, 2-pass one: the 19 MiB would stay in the process's peak memory for good.
pub fn session_binding(admin_token: &str, salt: &[u8]) -> Vec<u8> {
    use argon2::{Algorithm, Argon2, Params, Version};
    let params = Params::new(7 * 1024, 5, 1, Some(32)).expect("valid Argon2 parameters");
    let mut out = vec![0u8; 32];
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(admin_token.as_bytes(), salt, &mut out)
        .expect("a 16-byte salt and a 32-byte output are within Argon2's bounds");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn a_secret_verifies_against_its_hash_and_nothing_else() {
        let s = generate();
        let stored = hash(s.expose_secret());
        assert!(verify(s.expose_secret(), &stored));
        assert!(!verify("guess", &stored));
        assert!(!verify(generate().expose_secret(), &stored));
    }

    #[test]
    fn generated_secrets_carry_256_bits_and_differ() {
        let a = generate();
        assert_eq!(a.expose_secret().len(), 43);
        assert_ne!(a.expose_secret(), generate().expose_secret());
    }

    #[test]
    fn a_session_binding_depends_on_the_salt_and_is_not_the_plain_hash() {
        let token = "an-admin-token-of-at-least-32-characters";
        let a = session_binding(token, b"salt-number-one!");
        assert_eq!(a, session_binding(token, b"salt-number-one!"));
        assert_ne!(a, session_binding(token, b"salt-number-two!"));
        assert_ne!(a, hash(token));
    }

    #[test]
    fn debug_output_hides_the_secret() {
        let s = generate();
        assert!(!format!("{s:?}").contains(s.expose_secret()));
    }
}
