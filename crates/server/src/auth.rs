//! Session tokens:
//! `v2.<player>.<session>.<generation>.<expires_ms>.<hex hmac-sha256>`.
//!
//! A token proves who the player is and which session it belongs to, without
//! a lookup: the HMAC over the first five fields is checked with the server's
//! secret (in constant time), then the expiry with the injected clock. The
//! generation is the player's token generation when it was issued: a login
//! with the token is refused once the player has moved on (logout, ban),
//! which revokes tokens without a list of them. A resume needs no such
//! check: it needs the session alive, and a logout ends it.

use std::fmt::Write;
use std::sync::Arc;

use guildhall_entity::Clock;
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// What a valid token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub player_id: String,
    pub session_id: u64,
    pub generation: u64,
    pub expires_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token is malformed or its signature does not match")]
    Invalid,
    #[error("token expired")]
    Expired,
}

/// Signs and verifies tokens.
pub struct TokenSigner {
    key: hmac::Key,
    ttl_ms: u64,
    clock: Arc<dyn Clock>,
}

impl TokenSigner {
    pub fn new(secret: &[u8], ttl_ms: u64, clock: Arc<dyn Clock>) -> Self {
        Self { key: hmac::Key::new(hmac::HMAC_SHA256, secret), ttl_ms, clock }
    }

    /// 32 random bytes, hex, for when no secret is configured.
    pub fn random_secret() -> String {
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).expect("system randomness");
        hex(&bytes)
    }

    pub fn issue(&self, player_id: &str, session_id: u64, generation: u64) -> (String, u64) {
        let expires = self.clock.now_ms() + self.ttl_ms;
        let body = format!("v2.{player_id}.{session_id}.{generation}.{expires}");
        let tag = hmac::sign(&self.key, body.as_bytes());
        (format!("{body}.{}", hex(tag.as_ref())), expires)
    }

    pub fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let (body, sig) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
        let sig = unhex(sig).ok_or(TokenError::Invalid)?;
        hmac::verify(&self.key, body.as_bytes(), &sig).map_err(|_| TokenError::Invalid)?;
        let mut parts = body.split('.');
        let (Some("v2"), Some(player), Some(session), Some(generation), Some(expires), None) =
            (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Invalid);
        };
        let claims = Claims {
            player_id: player.to_string(),
            session_id: session.parse().map_err(|_| TokenError::Invalid)?,
            generation: generation.parse().map_err(|_| TokenError::Invalid)?,
            expires_at_ms: expires.parse().map_err(|_| TokenError::Invalid)?,
        };
        if self.clock.now_ms() >= claims.expires_at_ms {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

/// The player id of a device: a hash, so that device ids (which may be
/// personal data) never appear in keys, logs or tokens.
pub fn player_id_for_device(device_id: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, device_id.as_bytes());
    format!("p{}", &hex(digest.as_ref())[..24])
}

/// Device ids: [`DEVICE_ID_MIN`] to [`DEVICE_ID_MAX`] bytes of printable
/// ASCII. A device id is an account's only credential, so a short one is
/// guessable; the bounds are Nakama's.
pub fn check_device_id(d: &str) -> Result<(), String> {
    if !(DEVICE_ID_MIN..=DEVICE_ID_MAX).contains(&d.len()) {
        return Err(format!("a device_id has {DEVICE_ID_MIN} to {DEVICE_ID_MAX} bytes, not {}", d.len()));
    }
    if !d.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("a device_id is printable ASCII without spaces".into());
    }
    Ok(())
}

pub const DEVICE_ID_MIN: usize = 10;
pub const DEVICE_ID_MAX: usize = 128;

/// A random session id.
pub fn random_session_id() -> u64 {
    let mut bytes = [0u8; 8];
    SystemRandom::new().fill(&mut bytes).expect("system randomness");
    u64::from_le_bytes(bytes) >> 1
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use guildhall_entity::ManualClock;
    use std::time::Duration;

    fn signer(clock: &ManualClock) -> TokenSigner {
        TokenSigner::new(b"secret", 60_000, Arc::new(clock.clone()))
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let clock = ManualClock::default();
        let s = signer(&clock);
        let (token, expires) = s.issue("p1", 42, 3);
        let claims = Claims { player_id: "p1".into(), session_id: 42, generation: 3, expires_at_ms: expires };
        assert_eq!(s.verify(&token), Ok(claims));
        clock.advance(Duration::from_secs(60));
        assert_eq!(s.verify(&token), Err(TokenError::Expired));
    }

    #[test]
    fn tampered_or_foreign_tokens_are_invalid() {
        let clock = ManualClock::default();
        let s = signer(&clock);
        let (token, _) = s.issue("p1", 42, 0);
        let tampered = token.replacen("p1", "p2", 1);
        assert_eq!(s.verify(&tampered), Err(TokenError::Invalid));
        let other = TokenSigner::new(b"other", 60_000, Arc::new(clock.clone()));
        assert_eq!(other.verify(&token), Err(TokenError::Invalid));
        let (v2, _) = s.issue("p1", 42, 0);
        let v1 = v2.replacen("v2.", "v1.", 1);
        for junk in ["", "v2", "v2.p.1.0.2.zz", ".....", "v2.p1.42.0.99999999999999.00", v1.as_str()] {
            assert_eq!(s.verify(junk), Err(TokenError::Invalid), "{junk:?}");
        }
    }

    #[test]
    fn device_ids_map_to_stable_opaque_player_ids() {
        assert_eq!(player_id_for_device("phone-1"), player_id_for_device("phone-1"));
        assert_ne!(player_id_for_device("phone-1"), player_id_for_device("phone-2"));
        assert!(!player_id_for_device("phone-1").contains("phone"));
    }
}
