//! [`OidcTokenAuthenticator`]: an IdP access token as the docker password.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use docker_token_core::cache::{Keep, SecretKeyer, TAG_LEN, TtlCache};
use docker_token_core::{
    Authenticator, AuthnOutcome, BackendError, ConfigError, Identity, LoginAttempt, OneLine,
};
use serde_json::{Map, Value};

use crate::claims::{ClaimRules, ClaimsVerdict};
use crate::config::OidcTokenConfig;
use crate::discovery::{Discovery, DiscoverySettings};
use crate::http::{HttpClient, HttpError};
use crate::introspection::{Introspection, IntrospectionError};
use crate::jwt::{self, JwtError, JwtRules};

/// Passwords longer than this are not tokens we would send anywhere.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Authenticates `docker login -u <user> -p <access token>` with tokens of one OpenID
/// Provider.
///
/// * **JWT access tokens** of the configured issuer are verified locally when `audiences` is
///   set: signature with the provider's JWKS (refreshed, rate-limited, on an unknown `kid`),
///   `iss`, `aud` ∈ `audiences`, `exp`, `nbf`, and the algorithm allow-list.
/// * **Other tokens** are sent to the RFC 7662 introspection endpoint, authenticated with the
///   client credentials.
/// * The token's `user_claim` must equal the docker user name; `label_claims` become labels.
///
/// # Outcomes
///
/// | the password is …                                                 | outcome |
/// |-------------------------------------------------------------------|---------|
/// | empty, shorter than `min_token_length`, or the user name is empty | `NotApplicable` (no network call) |
/// | a JWT of another issuer                                           | `NotApplicable` |
/// | a token introspection calls inactive (garbage, revoked, expired, a static user's password) | `NotApplicable` |
/// | a JWT of our issuer that fails verification (forged, tampered, expired, wrong `aud`, unknown key) | `Rejected` |
/// | a valid token of another user, or without a user (client credentials) | `Rejected` |
/// | a valid token of this user                                        | `Authenticated` |
/// | the IdP unreachable, 5xx, timed out, or refusing our client secret | `Err` (unavailable, 503) |
///
/// Inactive tokens are `NotApplicable` because introspection cannot tell a revoked token from
/// a password that was never a token: answering `Rejected` would end the chain before static
/// users or LDAP are asked. Without another backend, the server answers 401 either way. Note
/// that every password of at least `min_token_length` characters that reaches this
/// authenticator is sent to the IdP: put static users and LDAP **before** it in the chain.
///
/// Results are cached (keyed by an HMAC of user and token under a per-process random key; the
/// token itself is not kept): successes until the token's expiry but at most `cache_ttl` (so a
/// revocation takes effect within `cache_ttl`), failures for `negative_cache_ttl`. Errors are
/// not cached.
///
/// If the IdP is down at start-up, the authenticator still constructs; discovery happens on
/// first use (or [`discover`](Self::discover)) and is retried until it succeeds.
pub struct OidcTokenAuthenticator {
    name: String,
    issuer: String,
    http: HttpClient,
    discovery: Discovery,
    rules: ClaimRules,
    jwt: JwtRules,
    verify_jwts_locally: bool,
    keyer: SecretKeyer,
    cache: TtlCache<[u8; TAG_LEN], AuthnOutcome>,
    cache_ttl: Duration,
    negative_cache_ttl: Duration,
    min_token_length: usize,
}

impl fmt::Debug for OidcTokenAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcTokenAuthenticator")
            .field("name", &self.name)
            .field("issuer", &self.issuer)
            .field("user_claim", &self.rules.user_claim)
            .field("audiences", &self.jwt.audiences)
            .field("cached_results", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl OidcTokenAuthenticator {
    /// Builds the authenticator without any network call. Fails on an invalid configuration
    /// or an unreadable `client_secret_file`.
    pub fn from_config(config: &OidcTokenConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        let secret = config.load_secret()?;
        let http = HttpClient::new(config.http_timeout).map_err(|e| {
            ConfigError::new("cannot build the HTTP client")
                .with_source(e)
                .at("oidc_token")
        })?;
        let keyer = SecretKeyer::new().map_err(|e| e.at("oidc_token"))?;
        let name = "oidc_token".to_owned();
        let verify_jwts_locally = !config.audiences.is_empty();
        let discovery = Discovery::new(DiscoverySettings {
            backend: name.clone(),
            issuer: config.issuer.clone(),
            client_id: config.client_id.clone(),
            secret,
            client_auth: config.client_auth,
            introspection_override: config.introspection_endpoint.clone(),
            jwks_override: config.jwks_uri.clone(),
            want_jwks: verify_jwts_locally,
            jwks_min_refresh: config.jwks_min_refresh_interval,
            jwks_max_age: config.jwks_max_age,
        });
        Ok(Self {
            name,
            issuer: config.issuer.clone(),
            http,
            discovery,
            rules: ClaimRules {
                user_claim: config.user_claim.clone(),
                user_claim_fallbacks: config.user_claim_fallbacks.clone(),
                label_claims: config.label_claims.clone(),
            },
            jwt: JwtRules {
                issuer: config.issuer.clone(),
                audiences: config.audiences.clone(),
                algorithms: config
                    .algorithms
                    .iter()
                    .map(|a| a.to_jsonwebtoken())
                    .collect(),
                clock_skew: config.clock_skew,
            },
            verify_jwts_locally,
            keyer,
            cache: TtlCache::new(config.max_cache_entries),
            cache_ttl: config.cache_ttl,
            negative_cache_ttl: config.negative_cache_ttl,
            min_token_length: config.min_token_length,
        })
    }

    /// Renames the backend (for logs, metrics and errors); the default is `oidc_token`.
    #[must_use]
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Reads the provider's discovery document now (it is otherwise read on first use).
    /// An unreachable IdP gives an `Unavailable` error; the authenticator stays usable and
    /// tries again later.
    pub async fn discover(&self) -> Result<(), BackendError> {
        self.discovery
            .endpoints(&self.http)
            .await
            .map(drop)
            .map_err(|e| self.renamed(e))
    }

    /// How many HTTP requests this authenticator has sent to the IdP (for metrics and tests).
    #[must_use]
    pub fn http_requests(&self) -> u64 {
        self.http.requests()
    }

    fn renamed(&self, e: BackendError) -> BackendError {
        if e.backend() == self.name {
            return e;
        }
        let msg = docker_token_core::display_chain(&e);
        BackendError::new(e.kind(), &self.name, msg)
    }

    fn unavailable(&self, what: &str, e: HttpError) -> BackendError {
        BackendError::unavailable(&self.name, what.to_owned()).with_source(e)
    }

    /// Checks a token for a user; returns the outcome and how long it may be cached.
    async fn check(
        &self,
        account: &str,
        token: &str,
    ) -> Result<(AuthnOutcome, Duration), BackendError> {
        let negative = self.negative_cache_ttl;
        let unverified = jwt::parse_unverified(token);
        if let Some(j) = &unverified
            && j.issuer.as_deref() != Some(self.issuer.as_str())
        {
            return Ok((AuthnOutcome::NotApplicable, negative));
        }
        let endpoints = self
            .discovery
            .endpoints(&self.http)
            .await
            .map_err(|e| self.renamed(e))?;
        let claims = match (&unverified, &endpoints.jwks) {
            (Some(_), Some(jwks)) if self.verify_jwts_locally => {
                match self.jwt.verify(token, jwks, &self.http).await {
                    Ok(claims) => claims,
                    Err(JwtError::Invalid(why)) => {
                        tracing::info!(backend = %self.name, user = %OneLine(account), reason = %why, "JWT access token rejected");
                        return Ok((AuthnOutcome::Rejected, negative));
                    }
                    Err(JwtError::Keys(e)) => {
                        return Err(self.unavailable("cannot download the JWKS", e));
                    }
                }
            }
            _ => match self
                .introspect(&endpoints.introspector, token, unverified.is_some())
                .await?
            {
                Ok(claims) => claims,
                Err(decided) => return Ok((decided, negative)),
            },
        };
        Ok(self.decide(account, &claims))
    }

    /// Introspects: the claims of an active token, or an outcome decided without them
    /// (`NotApplicable` for a token the IdP does not vouch for, `Rejected` for an active token
    /// of another issuer or audience).
    async fn introspect(
        &self,
        introspector: &crate::introspection::Introspector,
        token: &str,
        is_jwt: bool,
    ) -> Result<Result<Map<String, Value>, AuthnOutcome>, BackendError> {
        let answer = match introspector.introspect(token, &self.http).await {
            Ok(a) => a,
            Err(e) => match Introspection::from_refusal(&e) {
                Some(a) => a,
                None => return Err(self.introspection_error(e)),
            },
        };
        match answer {
            Introspection::Active(claims) => {
                if let Some(why) = self.introspected_claims_problem(&claims) {
                    tracing::warn!(backend = %self.name, reason = %why, "introspection answer not accepted");
                    return Ok(Err(AuthnOutcome::Rejected));
                }
                Ok(Ok(claims))
            }
            Introspection::Inactive => Ok(Err(AuthnOutcome::NotApplicable)),
            Introspection::Unsupported => {
                if is_jwt {
                    tracing::warn!(backend = %self.name, "the IdP cannot introspect this JWT access token; set `audiences` to verify JWT access tokens locally");
                }
                Ok(Err(AuthnOutcome::NotApplicable))
            }
        }
    }

    fn introspection_error(&self, e: IntrospectionError) -> BackendError {
        match e {
            IntrospectionError::ClientAuthentication => {
                tracing::error!(backend = %self.name, issuer = %self.issuer, "the IdP refused our client credentials at the introspection endpoint (client authentication failed): check client_id, the client secret and client_auth");
                BackendError::unavailable(
                    &self.name,
                    "client authentication failed at the introspection endpoint",
                )
                .with_source(e)
            }
            IntrospectionError::Unavailable(h) => self.unavailable("token introspection failed", h),
            IntrospectionError::Refused(_) => BackendError::misconfigured(
                &self.name,
                "the introspection endpoint refused the request",
            )
            .with_source(e),
            // An answer we cannot read (too large, not JSON, the wrong shape) makes the IdP as
            // unusable as an unreachable one: 503, so that clients retry; not 500.
            IntrospectionError::Invalid(_) => {
                BackendError::unavailable(&self.name, "the introspection answer could not be used")
                    .with_source(e)
            }
        }
    }

    /// `iss` must be ours and `aud` (when present, and `audiences` configured) acceptable.
    fn introspected_claims_problem(&self, claims: &Map<String, Value>) -> Option<String> {
        if let Some(iss) = claims.get("iss").and_then(Value::as_str)
            && iss != self.issuer
        {
            return Some(format!("issuer {iss:?} is not ours"));
        }
        if let (Some(aud), false) = (claims.get("aud"), self.jwt.audiences.is_empty()) {
            let auds: Vec<&str> = match aud {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            if !auds
                .iter()
                .any(|a| self.jwt.audiences.iter().any(|ok| ok == a))
            {
                return Some(format!("audience {aud} is not accepted"));
            }
        }
        None
    }

    fn decide(&self, account: &str, claims: &Map<String, Value>) -> (AuthnOutcome, Duration) {
        let negative = self.negative_cache_ttl;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let exp = claims.get("exp").and_then(Value::as_u64);
        // a JWT's `exp` was already checked with the same tolerance
        if exp.is_some_and(|e| e.saturating_add(self.jwt.clock_skew.as_secs()) <= now) {
            return (AuthnOutcome::Rejected, negative);
        }
        match self.rules.verdict(claims, account) {
            ClaimsVerdict::Matches(labels) => {
                let ttl = exp.map_or(self.cache_ttl, |e| {
                    self.cache_ttl
                        .min(Duration::from_secs(e.saturating_sub(now)))
                });
                tracing::debug!(backend = %self.name, user = %OneLine(account), "access token accepted");
                (
                    AuthnOutcome::Authenticated(Identity::new(account).with_labels(labels)),
                    ttl,
                )
            }
            ClaimsVerdict::OtherUser(owner) => {
                tracing::info!(backend = %self.name, user = %OneLine(account), token_user = %OneLine(&owner), "access token belongs to another user");
                (AuthnOutcome::Rejected, negative)
            }
            ClaimsVerdict::NoUser => {
                tracing::info!(backend = %self.name, user = %OneLine(account), claim = %self.rules.user_claim, "access token names no user");
                (AuthnOutcome::Rejected, negative)
            }
        }
    }
}

#[async_trait]
impl Authenticator for OidcTokenAuthenticator {
    fn name(&self) -> &str {
        &self.name
    }

    async fn authenticate(&self, login: &LoginAttempt) -> Result<AuthnOutcome, BackendError> {
        let token = login.password.expose();
        if login.account.is_empty()
            || token.len() < self.min_token_length.max(1)
            || token.len() > MAX_TOKEN_LEN
        {
            return Ok(AuthnOutcome::NotApplicable);
        }
        // Keyed by an HMAC of (user, token): the token itself is never kept. Concurrent checks
        // of one token for one user make one call to the IdP; each outcome is kept for its
        // own TTL (positive or negative), errors are not kept.
        let key = self
            .keyer
            .tag(&[login.account.as_bytes(), token.as_bytes()]);
        self.cache
            .get_or_try_insert_with(&key, || async {
                let (outcome, ttl) = self.check(&login.account, token).await?;
                Ok((outcome, Keep::For(ttl)))
            })
            .await
    }

    async fn ready(&self) -> Result<(), BackendError> {
        self.discover().await
    }
}
