//! [`VapidCredential`]: VAPID tokens for one push-service origin as an engine [`Credential`],
//! signed in the core and renewed on the core's clock.

use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

use http::HeaderValue;

use super::origin::Origin;
use super::vapid::Vapid;
use crate::engine::{Credential, CredentialStats, Grant};
use crate::jose::{SignError, unix_time};

/// A client-wide event of a VAPID credential.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VapidEvent {
    /// A new token is in use.
    Signed {
        /// Its generation (1 for the first token).
        generation: u64,
        /// Its `exp` claim (UNIX seconds).
        expires: u64,
    },
    /// Signing failed; the notification that needed the token failed with `rejected`.
    SignFailed(SignError),
}

/// The token in use.
struct Token {
    authorization: HeaderValue,
    issued: Instant,
    expires: u64,
    generation: u64,
}

/// VAPID tokens for the push service at one [`Origin`] (its `aud`): one token serves every
/// request to that origin until a quarter of its lifetime is left, then the next request signs
/// a new one; a token the service refused (401) is replaced at the next request. A client keeps
/// one per origin, so tokens are cached per origin.
///
/// `exp` is wall-clock time, but the core never reads a clock: the credential is given one
/// reading, `(now, unix_now)`, when it is made, and computes `exp` from the time elapsed since
/// on the core's clock (re-anchored with
/// [`handle_wall_clock`](crate::engine::Sender::handle_wall_clock)).
pub struct VapidCredential {
    vapid: Vapid,
    origin: Origin,
    wall: (Instant, u64),
    current: Option<Token>,
    /// The service refused the current token: sign a new one.
    stale: bool,
    generation: u64,
    events: VecDeque<VapidEvent>,
    stats: CredentialStats,
}

impl fmt::Debug for VapidCredential {
    /// The identity, the origin and the token's generation and expiry; never the token.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VapidCredential")
            .field("vapid", &self.vapid)
            .field("origin", &self.origin)
            .field("generation", &self.generation)
            .field("expires", &self.current.as_ref().map(|token| token.expires))
            .field("stale", &self.stale)
            .finish_non_exhaustive()
    }
}

impl VapidCredential {
    /// Tokens of `vapid` for `origin`; `(now, unix_now)` is one reading of the core's clock and
    /// the wall clock (UNIX seconds), taken together.
    pub fn new(vapid: Vapid, origin: Origin, now: Instant, unix_now: u64) -> Self {
        VapidCredential {
            vapid,
            origin,
            wall: (now, unix_now),
            current: None,
            stale: false,
            generation: 0,
            events: VecDeque::new(),
            stats: CredentialStats::default(),
        }
    }

    /// The origin the tokens are for.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The identity.
    pub fn vapid(&self) -> &Vapid {
        &self.vapid
    }

    /// True when a request at `now` needs a new token.
    fn needs_renewal(&self, now: Instant) -> bool {
        let Some(token) = &self.current else {
            return true;
        };
        let age = now.saturating_duration_since(token.issued);
        self.stale || age >= self.vapid.lifetime() - self.vapid.lifetime() / 4
    }

    /// Signs a new token at `now`.
    fn renew(&mut self, now: Instant) -> Result<(), SignError> {
        let expires = unix_time(self.wall, now).saturating_add(self.vapid.lifetime().as_secs());
        let authorization = self.vapid.authorization(&self.origin, expires)?;
        self.generation += 1;
        self.stale = false;
        self.stats.refreshes += 1;
        self.current = Some(Token {
            authorization,
            issued: now,
            expires,
            generation: self.generation,
        });
        self.events.push_back(VapidEvent::Signed {
            generation: self.generation,
            expires,
        });
        Ok(())
    }
}

impl Credential for VapidCredential {
    type Event = VapidEvent;

    fn grant(&mut self, now: Instant) -> Grant {
        if self.needs_renewal(now)
            && let Err(error) = self.renew(now)
        {
            self.stats.failures += 1;
            let detail = format!("VAPID token for {}: {error}", self.origin);
            self.events.push_back(VapidEvent::SignFailed(error));
            return Grant::Fail(detail);
        }
        match &self.current {
            Some(token) => Grant::Ready {
                authorization: Some(token.authorization.clone()),
                generation: token.generation,
            },
            None => Grant::Fail(format!("no VAPID token for {}", self.origin)),
        }
    }

    fn handle_rejected(&mut self, generation: u64) {
        if self.current.as_ref().map(|token| token.generation) == Some(generation) {
            self.stale = true;
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn handle_wall_clock(&mut self, now: Instant, unix_now: u64) {
        self.wall = (now, unix_now);
    }

    fn poll_event(&mut self) -> Option<VapidEvent> {
        self.events.pop_front()
    }

    fn stats(&self) -> CredentialStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::webpush::vapid::tests::{vapid, verify};

    fn ready(grant: Grant) -> (HeaderValue, u64) {
        match grant {
            Grant::Ready {
                authorization: Some(authorization),
                generation,
            } => (authorization, generation),
            other => panic!("not ready: {other:?}"),
        }
    }

    fn origin() -> Origin {
        Origin::parse("https://push.example.net").unwrap()
    }

    #[test]
    fn one_token_serves_until_a_quarter_of_its_life_is_left() {
        let hour = Duration::from_secs(3600);
        let start = Instant::now();
        let mut credential = VapidCredential::new(vapid(), origin(), start, 1_700_000_000);
        let (first, generation) = ready(credential.grant(start + Duration::from_secs(5)));
        assert_eq!(generation, 1);
        let (_, claims, _) = verify(&first);
        assert_eq!(
            claims,
            json!({"aud": "https://push.example.net", "exp": 1_700_000_005u64 + 12 * 3600,
                   "sub": "mailto:push@example.com"})
        );
        assert_eq!(
            credential.poll_event(),
            Some(VapidEvent::Signed {
                generation: 1,
                expires: 1_700_000_005 + 12 * 3600
            })
        );
        // Reused for 9 hours (the token was signed 5 s after start).
        let almost = start + 9 * hour;
        assert_eq!(ready(credential.grant(almost)), (first.clone(), 1));
        let (second, generation) = ready(credential.grant(almost + Duration::from_secs(5)));
        assert_eq!(generation, 2);
        assert_ne!(second, first);
        assert_eq!(credential.stats().refreshes, 2);
        assert_eq!(credential.poll_timeout(), None);
    }

    #[test]
    fn a_refused_token_is_replaced_once() {
        let now = Instant::now();
        let mut credential = VapidCredential::new(vapid(), origin(), now, 1_000);
        let (_, first) = ready(credential.grant(now));
        // A late refusal of an older generation changes nothing.
        credential.handle_rejected(first + 7);
        assert_eq!(ready(credential.grant(now)).1, first);
        credential.handle_rejected(first);
        let later = now + Duration::from_secs(2);
        let (token, second) = ready(credential.grant(later));
        assert_eq!(second, first + 1);
        assert_eq!(verify(&token).1["exp"], 1_002 + 12 * 3600);
        assert_eq!(ready(credential.grant(later)).1, second);
    }

    #[test]
    fn the_wall_clock_reanchors_and_debug_hides_the_token() {
        let now = Instant::now();
        let mut credential = VapidCredential::new(vapid(), origin(), now, 1_000);
        credential.handle_wall_clock(now, 5_000);
        let (token, _) = ready(credential.grant(now + Duration::from_secs(1)));
        assert_eq!(verify(&token).1["exp"], 5_001 + 12 * 3600);
        let shown = format!("{credential:?}");
        let jwt = token.to_str().unwrap();
        assert!(!shown.contains(&jwt[8..40]), "{shown}");
        assert!(shown.contains("https://push.example.net"), "{shown}");
        assert_eq!(credential.origin(), &origin());
        assert_eq!(credential.vapid().subject(), "mailto:push@example.com");
    }
}
