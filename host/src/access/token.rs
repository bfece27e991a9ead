//! Tokens: what a credential looks like on the wire and what is kept of it.
//!
//! A token is 256 random bits, base64url, behind a prefix that says what it is
//! for (`cfd_` a device, `cfr_` a reader), so that a leaked one is recognised by
//! secret scanners and by eye. It is shown once, when it is made; the store
//! keeps its SHA-256 (to recognise it) and, for device tokens, Mosquitto's
//! PBKDF2-SHA512 hash of it (to export a broker password file). Neither gives
//! the token back.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// What a token lets its holder do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenKind {
    /// Writes one device's telemetry.
    Device,
    /// Reads telemetry of all devices or a list of them.
    Reader,
}

impl TokenKind {
    pub fn prefix(self) -> &'static str {
        match self {
            TokenKind::Device => "cfd_",
            TokenKind::Reader => "cfr_",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            TokenKind::Device => "device",
            TokenKind::Reader => "reader",
        }
    }

    pub fn from_name(name: &str) -> Option<TokenKind> {
        [TokenKind::Device, TokenKind::Reader]
            .into_iter()
            .find(|k| k.name() == name)
    }

    /// The kind a presented token claims by its prefix.
    pub fn of(token: &str) -> Option<TokenKind> {
        [TokenKind::Device, TokenKind::Reader]
            .into_iter()
            .find(|k| token.starts_with(k.prefix()))
    }
}

/// A new random token of `kind`.
pub fn mint(kind: TokenKind) -> String {
    random_token(kind.prefix())
}

/// A new random control token: the admin credential a running host leaves in
/// its data directory for `cromflag devices` on the same machine.
pub fn mint_control() -> String {
    random_token("cfc_")
}

fn random_token(prefix: &str) -> String {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).expect("the operating system's random source");
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(secret))
}

/// The SHA-256 of a token, in hex: how the store finds a credential.
pub fn digest(token: &str) -> String {
    format!("{:x}", Sha256::digest(token.as_bytes()))
}

/// The short public name of a credential (the first 8 hex digits of its
/// digest): what `show` lists and `revoke --key` takes. It tells nothing of
/// the token that a stored digest does not already tell.
pub fn key_id(digest: &str) -> &str {
    &digest[..digest.len().min(8)]
}

/// Compares two secrets in time that depends only on their lengths.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Mosquitto's iteration count for `$7$` hashes (`mosquitto_passwd`'s default).
const MOSQUITTO_ITERATIONS: u32 = 101;

/// `token` hashed as a Mosquitto password file line wants it:
/// `$7$<iterations>$<base64 salt>$<base64 PBKDF2-SHA512>` (12-byte salt,
/// 64-byte hash, standard base64 with padding), as `mosquitto_passwd` writes.
pub fn mosquitto_hash(token: &str) -> String {
    let mut salt = [0u8; 12];
    getrandom::fill(&mut salt).expect("the operating system's random source");
    let mut hash = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(token.as_bytes(), &salt, MOSQUITTO_ITERATIONS, &mut hash);
    format!(
        "$7${MOSQUITTO_ITERATIONS}${}${}",
        STANDARD.encode(salt),
        STANDARD.encode(hash)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_say_their_kind() {
        let a = mint(TokenKind::Device);
        let b = mint(TokenKind::Device);
        assert_ne!(a, b);
        assert!(a.starts_with("cfd_"));
        assert_eq!(a.len(), 4 + 43, "32 bytes in unpadded base64url");
        assert_eq!(TokenKind::of(&a), Some(TokenKind::Device));
        assert_eq!(
            TokenKind::of(&mint(TokenKind::Reader)),
            Some(TokenKind::Reader)
        );
        assert_eq!(TokenKind::of("admin"), None);
    }

    #[test]
    fn digests_are_sha256_hex() {
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(key_id(&digest("abc")), "ba7816bf");
    }

    #[test]
    fn secrets_compare_by_value() {
        assert!(same_secret("s3cret", "s3cret"));
        assert!(!same_secret("s3cret", "s3creT"));
        assert!(!same_secret("s3cret", "s3cre"));
    }

    #[test]
    fn mosquitto_hashes_verify_with_their_salt() {
        let line = mosquitto_hash("cfd_token");
        let parts: Vec<&str> = line.split('$').collect();
        assert_eq!(parts[..3], ["", "7", "101"]);
        let salt = STANDARD.decode(parts[3]).unwrap();
        let hash = STANDARD.decode(parts[4]).unwrap();
        assert_eq!((salt.len(), hash.len()), (12, 64));
        let mut again = [0u8; 64];
        pbkdf2::pbkdf2_hmac::<Sha512>(b"cfd_token", &salt, 101, &mut again);
        assert_eq!(hash, again);
    }
}
