//! The `Idempotency-Key` protocol, for any surface that creates things: the
//! first request with a key claims it, runs, and its answer is kept 24 hours;
//! the same key with the same request (method, route and body) replays that
//! answer; with a different request, or while the first is still running, it
//! is refused. A failed create releases the key, so a corrected retry runs.
//!
//! Surfaces keep only their wire format: reading the header and turning an
//! [`Outcome`] into a response.

use std::future::Future;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::ServiceError;
use crate::domain::clock::Clock;
use crate::store::resources::{Idempotency, ResourceStore, Scope};

/// A client's idempotency key: 1–255 visible ASCII characters (a UUID is ideal).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key as sent, without surrounding blanks; `None` if it is not 1–255
    /// visible ASCII characters.
    pub fn parse(raw: &str) -> Option<Self> {
        let key = raw.trim();
        ((1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()))
            .then(|| IdempotencyKey(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A create to run under a key: the key and what identifies the request.
#[derive(Clone, Copy, Debug)]
pub struct KeyedRequest<'a> {
    pub key: &'a IdempotencyKey,
    /// `POST`
    pub method: &'a str,
    /// The route template, e.g. `/clients` (not the URL: a retry may differ
    /// in query or host and still be the same request).
    pub route: &'a str,
    pub body: &'a [u8],
}

impl KeyedRequest<'_> {
    /// SHA-256 of `"{method} {route}"`, a zero byte and the body, in hex.
    /// Stored with the key: changing this makes every kept key a mismatch.
    fn fingerprint(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.method.as_bytes());
        hasher.update(b" ");
        hasher.update(self.route.as_bytes());
        hasher.update([0]);
        hasher.update(self.body);
        hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// What a create answered, in the surface's own wire format, as kept for
/// replays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    /// The created resource's path (`Location`).
    pub location: Option<String>,
}

/// The answer to give, and whether it is the kept answer of an earlier request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The create ran now.
    Ran(Answer),
    /// The create ran before; this is what it answered then.
    Replayed(Answer),
}

pub const MISMATCH: &str = "This Idempotency-Key was already used for a different request. Use a new key for a new request.";
pub const IN_PROGRESS: &str =
    "A request with this Idempotency-Key is still being processed. Retry in a moment.";

/// The protocol, over the store that keeps claims and answers.
pub struct IdempotencyService {
    store: Arc<dyn ResourceStore>,
    clock: Arc<dyn Clock>,
}

impl IdempotencyService {
    pub fn new(store: Arc<dyn ResourceStore>, clock: Arc<dyn Clock>) -> Self {
        IdempotencyService { store, clock }
    }

    /// Runs `create` once per key and request. Without a key it simply runs.
    /// Refusals (`Conflict`: a different request, or one still running) and
    /// store failures come back as `E` from a [`ServiceError`].
    pub async fn run<F, Fut, E>(
        &self,
        scope: &Scope,
        request: Option<KeyedRequest<'_>>,
        create: F,
    ) -> Result<Outcome, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Answer, E>>,
        E: From<ServiceError>,
    {
        let Some(request) = request else {
            return create().await.map(Outcome::Ran);
        };
        let key = request.key.as_str();
        let claim = self
            .store
            .begin_idempotent(scope, key, &request.fingerprint(), self.clock.now())
            .await
            .map_err(|e| E::from(ServiceError::from(e)))?;
        match claim {
            Idempotency::New => match create().await {
                Ok(answer) => {
                    // The resource exists whatever happens to this record: a
                    // failure to keep the answer must not turn it into an error.
                    if let Err(e) = self
                        .store
                        .finish_idempotent(
                            scope,
                            key,
                            answer.status,
                            &answer.body,
                            answer.location.as_deref(),
                        )
                        .await
                    {
                        tracing::warn!(error = %e, "could not store the idempotent answer");
                    }
                    Ok(Outcome::Ran(answer))
                }
                Err(e) => {
                    if let Err(e) = self.store.abandon_idempotent(scope, key).await {
                        tracing::warn!(error = %e, "could not release an idempotency key");
                    }
                    Err(e)
                }
            },
            Idempotency::Replay {
                status,
                body,
                resource_path,
            } => Ok(Outcome::Replayed(Answer {
                status,
                body,
                location: resource_path,
            })),
            Idempotency::Mismatch => Err(ServiceError::Conflict(MISMATCH.into()).into()),
            Idempotency::InProgress => Err(ServiceError::Conflict(IN_PROGRESS.into()).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::token::Environment;
    use crate::service::resources::testing::fixture;

    fn key(s: &str) -> IdempotencyKey {
        IdempotencyKey::parse(s).expect("a valid key")
    }

    #[test]
    fn keys_are_1_to_255_visible_ascii_characters_trimmed() {
        assert_eq!(key("  abc-123 ").as_str(), "abc-123");
        for bad in ["", "   ", "a b", "ключ", &"x".repeat(256)] {
            assert_eq!(IdempotencyKey::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_fingerprint_is_that_of_method_route_and_body() {
        // Kept keys were stored with this very hash: it must not drift.
        let k = key("k");
        let req = KeyedRequest {
            key: &k,
            method: "POST",
            route: "/clients",
            body: b"{}",
        };
        let mut h = Sha256::new();
        h.update(b"POST /clients\0{}");
        let expected: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(req.fingerprint(), expected);
    }

    fn answer(n: u32) -> Answer {
        Answer {
            status: 201,
            body: format!("{{\"n\":{n}}}"),
            location: Some(format!("/things/{n}")),
        }
    }

    #[tokio::test]
    async fn a_retry_replays_a_different_request_conflicts_and_a_failure_releases_the_key() {
        let f = fixture().await;
        let service =
            IdempotencyService::new(f.store.clone(), Arc::new(crate::domain::clock::SystemClock));
        let scope = f.scope(Environment::Test);
        let k = key("retry-1");
        let request = |body: &'static [u8]| {
            Some(KeyedRequest {
                key: &k,
                method: "POST",
                route: "/things",
                body,
            })
        };
        let failed: Result<Outcome, ServiceError> = service
            .run(&scope, request(b"a"), || async {
                Err(ServiceError::Validation(Vec::new()))
            })
            .await;
        assert!(matches!(failed, Err(ServiceError::Validation(_))));
        let first: Result<_, ServiceError> = service
            .run(&scope, request(b"a"), || async { Ok(answer(1)) })
            .await;
        assert_eq!(first.unwrap(), Outcome::Ran(answer(1)));
        let again: Result<_, ServiceError> = service
            .run(&scope, request(b"a"), || async { Ok(answer(2)) })
            .await;
        assert_eq!(again.unwrap(), Outcome::Replayed(answer(1)));
        let other: Result<_, ServiceError> = service
            .run(&scope, request(b"b"), || async { Ok(answer(3)) })
            .await;
        assert!(matches!(other, Err(ServiceError::Conflict(m)) if m == MISMATCH));
        let unkeyed: Result<_, ServiceError> =
            service.run(&scope, None, || async { Ok(answer(4)) }).await;
        assert_eq!(unkeyed.unwrap(), Outcome::Ran(answer(4)));
    }
}
