//! Developer access tokens: issue, check, evict (docs/123.md, open §2).
//!
//! 123 counts tokens as devices: at most `MAX_LIVE_PER_CLIENT` live at once per client id, and a
//! new one pushes out the oldest. Tokens are opaque JWT-shaped strings; nothing decodes them.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

/// Live tokens allowed per client id.
pub const MAX_LIVE_PER_CLIENT: usize = 3;

#[derive(Debug, Clone)]
struct TokenInfo {
    client_id: String,
    expires: i64,
    seq: u64,
}

/// Every issued token still remembered.
#[derive(Debug, Default)]
pub struct Tokens {
    by_token: HashMap<String, TokenInfo>,
    issued: u64,
}

impl Tokens {
    /// Issue a token for `client_id` valid until `now + ttl_secs`, evicting the oldest live
    /// token(s) of that client beyond the limit. Returns (token, expiry unix seconds).
    pub fn issue(&mut self, client_id: &str, now: i64, ttl_secs: i64) -> (String, i64) {
        self.issue_capped(client_id, now, ttl_secs, Some(MAX_LIVE_PER_CLIENT))
    }

    /// Issue a token without the per-client device limit: OAuth access tokens (one live per
    /// refresh chain; a refresh revokes the old one) and pasted tokens.
    pub fn issue_uncapped(&mut self, owner: &str, now: i64, ttl_secs: i64) -> (String, i64) {
        self.issue_capped(owner, now, ttl_secs, None)
    }

    fn issue_capped(
        &mut self,
        client_id: &str,
        now: i64,
        ttl_secs: i64,
        cap: Option<usize>,
    ) -> (String, i64) {
        self.by_token.retain(|_, t| t.expires > now);
        while let Some(cap) = cap {
            let live: Vec<(&String, &TokenInfo)> = self
                .by_token
                .iter()
                .filter(|(_, t)| t.client_id == client_id)
                .collect();
            if live.len() < cap {
                break;
            }
            let Some(oldest) = live
                .iter()
                .min_by_key(|(_, t)| t.seq)
                .map(|(k, _)| (*k).clone())
            else {
                break;
            };
            self.by_token.remove(&oldest);
        }
        self.issued += 1;
        let expires = now.saturating_add(ttl_secs);
        let token = make_token(client_id, now, expires);
        self.by_token.insert(
            token.clone(),
            TokenInfo {
                client_id: client_id.to_string(),
                expires,
                seq: self.issued,
            },
        );
        (token, expires)
    }

    /// The client id owning a valid token.
    pub fn check(&self, token: &str, now: i64) -> Option<String> {
        self.by_token
            .get(token)
            .filter(|t| t.expires > now)
            .map(|t| t.client_id.clone())
    }

    /// Invalidate one token (an OAuth refresh revokes the access token of the spent pair).
    pub fn revoke(&mut self, token: &str) {
        self.by_token.remove(token);
    }

    /// Invalidate every token at once (the "401" fault).
    pub fn expire_all(&mut self) {
        self.by_token.clear();
    }

    /// Tokens currently valid.
    pub fn live(&self, now: i64) -> usize {
        self.by_token.values().filter(|t| t.expires > now).count()
    }

    /// Tokens issued since start.
    pub fn issued(&self) -> u64 {
        self.issued
    }
}

/// A JWT-shaped opaque token (`eyJ…`), like 123's.
fn make_token(client_id: &str, now: i64, expires: i64) -> String {
    let mut rng = rand::thread_rng();
    let mut sig = [0u8; 32];
    rng.fill_bytes(&mut sig);
    let jti = rng.next_u64();
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = serde_json::json!({
        "exp": expires, "iat": now, "id": client_id, "jti": format!("{jti:016x}"),
        "iss": "pan123-emulator",
    });
    let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
    format!("{header}.{payload}.{}", URL_SAFE_NO_PAD.encode(sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fourth_token_evicts_first() {
        let mut t = Tokens::default();
        let (a, _) = t.issue("c", 100, 1000);
        let (b, _) = t.issue("c", 101, 1000);
        let (c, _) = t.issue("c", 102, 1000);
        let (other, _) = t.issue("x", 102, 1000);
        assert!(a.starts_with("eyJ"));
        let (d, _) = t.issue("c", 103, 1000);
        assert_eq!(t.check(&a, 104), None);
        for tok in [&b, &c, &d] {
            assert_eq!(t.check(tok, 104).as_deref(), Some("c"));
        }
        assert_eq!(t.check(&other, 104).as_deref(), Some("x"));
        assert_eq!(t.live(104), 4);
        assert_eq!(t.issued(), 5);
        assert_eq!(t.check(&b, 1101), None);
        t.expire_all();
        assert_eq!(t.live(104), 0);
    }

    #[test]
    fn uncapped_tokens_are_not_evicted_and_can_be_revoked() {
        let mut t = Tokens::default();
        let toks: Vec<String> = (0..5)
            .map(|i| t.issue_uncapped("o", 100 + i, 50).0)
            .collect();
        assert!(toks.iter().all(|k| t.check(k, 120).is_some()));
        t.revoke(&toks[0]);
        assert_eq!(t.check(&toks[0], 120), None);
        assert_eq!(t.check(&toks[1], 151), None);
    }
}
