//! [`TokenService`]: request → authentication chain → authorization per scope → token.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};

use crate::authn::{AuthenticatorChain, AuthnOutcome, LookupOutcome};
use crate::authz::{AuthorizerChain, AuthzRequest, RuleRef};
use crate::error::{BackendError, Error};
use crate::identity::Identity;
use crate::one_line::OneLine;
use crate::rate_limit::FailedLoginLimiter;
use crate::refresh::{
    MAX_REFRESH_TOKEN_LEN, RefreshRecord, RefreshTokens, new_refresh_token, refresh_token_id,
};
use crate::request::{GrantType, TokenRequest};
use crate::reuse::{ReuseWindow, grant_key};
use crate::scope::Scope;
use crate::secret::Password;
use crate::token::{AccessEntry, IssuedToken, TokenIssuer, TokenResponse};

/// The orchestrator of one token request. Cheap to clone (an `Arc` inside).
///
/// ```no_run
/// # async fn demo(issuer: docker_token_core::token::TokenIssuer) -> Result<(), docker_token_core::Error> {
/// use docker_token_core::{AuthenticatorChain, AuthorizerChain, StaticUsers, TokenService};
/// use docker_token_core::request::TokenRequest;
///
/// let service = TokenService::builder(issuer)
///     .authenticators(AuthenticatorChain::new().with(StaticUsers::default()))
///     .authorizers(AuthorizerChain::new())
///     .build();
/// let request = TokenRequest::from_query("service=registry&scope=repository:foo:pull", None, None)?;
/// match service.issue(&request).await {
///     Ok(issued) => println!("token for {:?}: {}", issued.account, issued.jti),
///     Err(e) => {
///         let (status, _headers, _body) = service.error_response(&e);
///         println!("{status}");
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct TokenService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    authn: AuthenticatorChain,
    authz: AuthorizerChain,
    issuer: TokenIssuer,
    realm: String,
    reuse: Option<ReuseWindow>,
    limiter: Option<FailedLoginLimiter>,
    by_action: BTreeMap<String, Duration>,
    refresh: Option<RefreshTokens>,
}

/// Builds a [`TokenService`].
#[derive(Debug)]
pub struct TokenServiceBuilder {
    authn: AuthenticatorChain,
    authz: AuthorizerChain,
    issuer: TokenIssuer,
    realm: Option<String>,
    reuse_window: Option<Duration>,
    limiter: Option<FailedLoginLimiter>,
    by_action: BTreeMap<String, Duration>,
    refresh: Option<RefreshTokens>,
}

impl TokenServiceBuilder {
    /// The authentication chain, in the order the backends are asked.
    #[must_use]
    pub fn authenticators(mut self, chain: AuthenticatorChain) -> Self {
        self.authn = chain;
        self
    }

    /// The authorization chain, in the order the backends are asked.
    #[must_use]
    pub fn authorizers(mut self, chain: AuthorizerChain) -> Self {
        self.authz = chain;
        self
    }

    /// The realm of the `WWW-Authenticate: Basic` challenge on 401 (default: the issuer,
    /// like docker_auth).
    #[must_use]
    pub fn realm(mut self, realm: impl Into<String>) -> Self {
        self.realm = Some(realm.into());
        self
    }

    /// Opt-in token reuse: an identical grant (account, service, granted access) asked for
    /// again within `window` gets the same token back while it keeps two thirds of its
    /// lifetime, saving the signature (see the README; one `jti` then covers several
    /// requests). `Duration::ZERO` turns it off, the default.
    #[must_use]
    pub fn reuse_window(mut self, window: Duration) -> Self {
        self.reuse_window = Some(window).filter(|w| !w.is_zero());
        self
    }

    /// Limits failed logins (see [`rate_limit`](crate::rate_limit)): while a (account,
    /// client IP) pair or a client IP is limited, requests with credentials are answered
    /// [`Error::RateLimited`] (429) without running the authenticators. A refused refresh
    /// token counts as a failed login of the account `""` from its client IP, and refresh
    /// grants from a limited address are answered 429 before the store is asked. Pass a
    /// clone of the running service's limiter to a rebuilt service to keep the counts across
    /// a reload.
    /// Off unless set; a limiter built from a disabled configuration is ignored.
    #[must_use]
    pub fn failed_login_limiter(mut self, limiter: FailedLoginLimiter) -> Self {
        self.limiter = Some(limiter).filter(|l| l.config().enabled);
        self
    }

    /// Token lifetimes per granted action (e.g. `push` → 1 h). A token lives as long as the
    /// shortest lifetime set for what it grants — these, and the deciding ACL rules'
    /// `expiration` ([`Grant::expiration`](crate::Grant::expiration)) — or the issuer's
    /// expiration when nothing it grants sets one. Denied scopes set nothing.
    #[must_use]
    pub fn expiration_by_action(mut self, lifetimes: BTreeMap<String, Duration>) -> Self {
        self.by_action = lifetimes;
        self
    }

    /// Hands out refresh tokens (on `offline_token=true` / `access_type=offline`) and
    /// accepts the `refresh_token` grant. Without this, no refresh token is issued and the
    /// grant is answered 400 (`UNSUPPORTED`).
    #[must_use]
    pub fn refresh_tokens(mut self, refresh: RefreshTokens) -> Self {
        self.refresh = Some(refresh);
        self
    }

    /// Finishes the service.
    #[must_use]
    pub fn build(self) -> TokenService {
        let realm = self
            .realm
            .unwrap_or_else(|| self.issuer.issuer().to_owned());
        TokenService {
            inner: Arc::new(Inner {
                authn: self.authn,
                authz: self.authz,
                issuer: self.issuer,
                realm,
                reuse: self.reuse_window.map(ReuseWindow::new),
                limiter: self.limiter,
                by_action: self.by_action,
                refresh: self.refresh,
            }),
        }
    }
}

/// A successful token request: the response body plus what the audit log needs.
#[derive(Debug)]
pub struct Issued {
    /// The JSON body to return (`token`, `access_token`, `expires_in`, `issued_at`).
    pub response: TokenResponse,
    /// The authenticated account (`""` for anonymous).
    pub account: String,
    /// The authenticator that accepted the credentials.
    pub authenticator: Option<String>,
    /// What the token grants, per requested scope (denied scopes have no actions).
    pub access: Vec<AccessEntry>,
    /// The token's `jti`.
    pub jti: String,
    /// The id of the refresh token issued with it or used for it, if any.
    pub refresh_id: Option<String>,
}

/// How one scope was decided (the `explain` view).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeDecision {
    /// The requested scope.
    pub scope: Scope,
    /// The granted actions (a subset of the requested ones; empty when denied).
    pub granted: Vec<String>,
    /// The authorizer that decided, or `None` when none did (nothing granted).
    pub authorizer: Option<String>,
    /// The rule that decided, when the authorizer has rules.
    pub rule: Option<RuleRef>,
    /// The token lifetime the decision sets (an ACL rule's `expiration`), if any.
    pub expiration: Option<Duration>,
}

impl TokenService {
    /// Starts a builder with the token issuer; the chains start empty.
    #[must_use]
    pub fn builder(issuer: TokenIssuer) -> TokenServiceBuilder {
        TokenServiceBuilder {
            authn: AuthenticatorChain::new(),
            authz: AuthorizerChain::new(),
            issuer,
            realm: None,
            reuse_window: None,
            limiter: None,
            by_action: BTreeMap::new(),
            refresh: None,
        }
    }

    /// The token issuer (keys, issuer name, lifetime).
    #[must_use]
    pub fn issuer(&self) -> &TokenIssuer {
        &self.inner.issuer
    }

    /// The authentication chain.
    #[must_use]
    pub fn authenticators(&self) -> &AuthenticatorChain {
        &self.inner.authn
    }

    /// The failed-login limiter, if one is set.
    #[must_use]
    pub fn failed_login_limiter(&self) -> Option<&FailedLoginLimiter> {
        self.inner.limiter.as_ref()
    }

    /// The Basic realm used on 401 answers.
    #[must_use]
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// The refresh-token store and policy, when refresh tokens are on.
    #[must_use]
    pub fn refresh_tokens(&self) -> Option<&RefreshTokens> {
        self.inner.refresh.as_ref()
    }

    /// Answers a token request: authenticate (or, for the refresh grant, check the refresh
    /// token and look the user up again), authorize every scope, mint.
    pub async fn issue(&self, request: &TokenRequest) -> Result<Issued, Error> {
        if let GrantType::RefreshToken { refresh_token } = &request.grant {
            return self.refresh(request, refresh_token).await;
        }
        let login = request.login();
        // anonymous attempts guess nothing: they are neither limited nor counted
        let limiter = self
            .inner
            .limiter
            .as_ref()
            .filter(|_| !request.credentials.is_anonymous());
        if let Some(limiter) = limiter {
            refuse_if_limited(limiter, &login.account, request)?;
        }
        let (outcome, by) = match self.inner.authn.authenticate_with_source(&login).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(backend = e.backend(), error = %crate::display_chain(&e), "authentication backend failed");
                return Err(e.into());
            }
        };
        let (identity, authenticator) = match outcome {
            AuthnOutcome::Authenticated(identity) => {
                if let Some(limiter) = limiter {
                    limiter.record_success(&login.account, request.client_ip);
                }
                (identity, by.map(str::to_owned))
            }
            AuthnOutcome::Rejected | AuthnOutcome::NotApplicable => {
                if let Some(limiter) = limiter {
                    count_failure(limiter, &login.account, request);
                }
                tracing::warn!(
                    account = %OneLine(&login.account),
                    client_ip = %OptIp(request.client_ip),
                    rejected_by = by.unwrap_or("none"),
                    "authentication failed"
                );
                return Err(Error::Unauthorized);
            }
        };
        let refresh = match &self.inner.refresh {
            Some(r) if request.offline_token && !identity.is_anonymous() => {
                let by = authenticator.as_deref().unwrap_or_default();
                if self.can_refresh(&identity.account, by).await? {
                    Some(self.new_refresh(r, &identity.account, request, by).await?)
                } else {
                    None
                }
            }
            _ => None,
        };
        let mut issued = self
            .grant(
                identity,
                authenticator,
                request,
                refresh.as_ref().map(|(_, id)| id.as_str()),
            )
            .await?;
        if let Some((token, id)) = refresh {
            issued.response = issued.response.with_refresh_token(token.expose());
            issued.refresh_id = Some(id);
        }
        Ok(issued)
    }

    /// Authorizes the request's scopes for an authenticated identity, mints, and writes the
    /// audit event.
    async fn grant(
        &self,
        identity: Identity,
        authenticator: Option<String>,
        request: &TokenRequest,
        refresh_id: Option<&str>,
    ) -> Result<Issued, Error> {
        let decisions = self
            .decide(
                &identity,
                &request.service,
                request.client_ip,
                &request.scopes,
            )
            .await?;
        let lifetime = self.lifetime(&decisions);
        let access: Vec<AccessEntry> = decisions
            .iter()
            .map(|d| AccessEntry::new(d.scope.resource_type(), d.scope.name(), d.granted.clone()))
            .collect();
        let (issued, reused) = self.mint(&identity.account, &request.service, &access, lifetime)?;
        let jti = issued.jti.clone();
        tracing::info!(
            target: "docker_token::audit",
            account = %OneLine(&identity.account),
            authenticator = authenticator.as_deref().unwrap_or(""),
            service = %OneLine(&request.service),
            client_ip = %OptIp(request.client_ip),
            grant = grant_name(&request.grant),
            requested = %DisplayScopes(&request.scopes),
            granted = %DisplayAccess(&access),
            expires_in = issued.expires_in,
            jti = %jti,
            refresh_id = refresh_id.unwrap_or(""),
            reused,
            "token issued"
        );
        Ok(Issued {
            response: TokenResponse::from(issued),
            account: identity.account,
            authenticator,
            access,
            jti,
            refresh_id: refresh_id.map(str::to_owned),
        })
    }

    /// The token lifetime for these decisions: the shortest one set by a granting decision
    /// (its rule's `expiration`) or by a granted action (`expiration_by_action`); the
    /// issuer's expiration when none is set.
    fn lifetime(&self, decisions: &[ScopeDecision]) -> Duration {
        decisions
            .iter()
            .filter(|d| !d.granted.is_empty())
            .flat_map(|d| {
                let by_action = d
                    .granted
                    .iter()
                    .filter_map(|a| self.inner.by_action.get(a).copied());
                d.expiration.into_iter().chain(by_action)
            })
            .min()
            .unwrap_or_else(|| self.inner.issuer.expiration())
    }

    /// Whether a refresh grant for `account` would find the user again with the backend
    /// `by` that just authenticated it. When not (robots, IdP access tokens, LDAP direct
    /// bind), no refresh token is issued: the client keeps using its password (docker stores
    /// it, as without refresh tokens) instead of a refresh token that could never be used.
    async fn can_refresh(&self, account: &str, by: &str) -> Result<bool, Error> {
        let (outcome, found_by) = self
            .inner
            .authn
            .lookup_with_source(account)
            .await
            .inspect_err(|e| {
                tracing::error!(backend = e.backend(), error = %crate::display_chain(e), "account lookup failed");
            })?;
        let ok = matches!(outcome, LookupOutcome::Found(_)) && found_by == Some(by);
        if !ok {
            tracing::info!(
                account = %OneLine(account),
                authenticator = by,
                "no refresh token: this backend cannot look the user up again"
            );
        }
        Ok(ok)
    }

    /// Issues and stores a new refresh token; returns it and its id.
    async fn new_refresh(
        &self,
        refresh: &RefreshTokens,
        account: &str,
        request: &TokenRequest,
        authenticator: &str,
    ) -> Result<(Password, String), Error> {
        let token = new_refresh_token()?;
        let id = refresh_token_id(token.expose());
        let record = RefreshRecord::new(
            id.clone(),
            account,
            request.service.clone(),
            request.client_id.clone().unwrap_or_default(),
            authenticator,
            &refresh.policy,
            SystemTime::now(),
        );
        refresh
            .store
            .insert_token(record)
            .await
            .inspect_err(store_failed)?;
        Ok((token, id))
    }

    /// The `refresh_token` grant: the token must be known, unexpired, for this service and
    /// client; the user is looked up again (current labels) with the backend that accepted
    /// the password; then the scopes are authorized against the current ACL.
    async fn refresh(&self, request: &TokenRequest, token: &Password) -> Result<Issued, Error> {
        let Some(refresh) = &self.inner.refresh else {
            return Err(Error::UnsupportedGrantType("refresh_token".to_owned()));
        };
        // A refused refresh token is a failed login like a wrong password: it counts against
        // the client address (the pair's account is "", the account being unknown until the
        // token is found), and a limited address is refused before the store is asked.
        let limiter = self.inner.limiter.as_ref();
        if let Some(limiter) = limiter {
            refuse_if_limited(limiter, "", request)?;
        }
        let refused = |id: &str, reason: &'static str| {
            if let Some(limiter) = limiter {
                count_failure(limiter, "", request);
            }
            tracing::warn!(
                refresh_id = id,
                service = %OneLine(&request.service),
                client_id = ?request.client_id,
                client_ip = %OptIp(request.client_ip),
                reason,
                "refresh grant refused"
            );
            Error::InvalidGrant(reason)
        };
        let text = token.expose();
        if text.len() > MAX_REFRESH_TOKEN_LEN || !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(refused("", "the refresh token is malformed"));
        }
        let id = refresh_token_id(text);
        let Some(record) = refresh
            .store
            .get_token(&id)
            .await
            .inspect_err(store_failed)?
        else {
            return Err(refused(
                &id,
                "the refresh token is unknown, expired or revoked",
            ));
        };
        if record.service != request.service {
            return Err(refused(
                &id,
                "the refresh token was issued for another service",
            ));
        }
        if refresh.policy.bind_client_id
            && record.client_id != request.client_id.as_deref().unwrap_or_default()
        {
            return Err(refused(
                &id,
                "the refresh token was issued to another client",
            ));
        }
        if request
            .credentials
            .username()
            .is_some_and(|u| !u.is_empty() && u != record.account)
        {
            return Err(refused(&id, "the refresh token belongs to another account"));
        }
        let (outcome, by) = self
            .inner
            .authn
            .lookup_with_source(&record.account)
            .await
            .inspect_err(|e| {
                tracing::error!(backend = e.backend(), error = %crate::display_chain(e), "account lookup failed");
            })?;
        let identity = match outcome {
            LookupOutcome::Found(identity) if by == Some(record.authenticator.as_str()) => identity,
            LookupOutcome::Found(_) => {
                return Err(refused(
                    &id,
                    "the account is now served by another backend: log in again",
                ));
            }
            LookupOutcome::Unsupported if by == Some(record.authenticator.as_str()) => {
                return Err(refused(
                    &id,
                    "the account's backend cannot re-check users without a password: log in again",
                ));
            }
            // the backend that accepted the login does not know the user any more (another
            // member that cannot look users up is not asked to vouch for it)
            LookupOutcome::NotFound | LookupOutcome::Unsupported => {
                let _ = refresh.store.delete_token(&id).await;
                return Err(refused(&id, "the account no longer exists"));
            }
        };
        let now = SystemTime::now();
        let used = record.used_at(now, &refresh.policy);
        let rotated = if refresh.policy.rotate {
            // deleting is the claim: of two concurrent uses, one wins
            if !refresh
                .store
                .delete_token(&id)
                .await
                .inspect_err(store_failed)?
            {
                return Err(refused(
                    &id,
                    "the refresh token is unknown, expired or revoked",
                ));
            }
            let token = new_refresh_token()?;
            let new_id = refresh_token_id(token.expose());
            let record = RefreshRecord {
                id: new_id.clone(),
                ..used
            };
            refresh
                .store
                .insert_token(record)
                .await
                .inspect_err(store_failed)?;
            Some((token, new_id))
        } else {
            if !refresh
                .store
                .update_token(used)
                .await
                .inspect_err(store_failed)?
            {
                return Err(refused(
                    &id,
                    "the refresh token is unknown, expired or revoked",
                ));
            }
            None
        };
        let used_id = rotated
            .as_ref()
            .map_or(id.as_str(), |(_, new_id)| new_id.as_str());
        let mut issued = self
            .grant(
                identity,
                Some(record.authenticator.clone()),
                request,
                Some(used_id),
            )
            .await?;
        if let Some((token, _)) = rotated {
            issued.response = issued.response.with_refresh_token(token.expose());
        }
        Ok(issued)
    }

    /// Signs a token, or hands out the one issued for the same grant a moment ago when the
    /// reuse window is on. Returns whether it was reused.
    fn mint(
        &self,
        account: &str,
        audience: &str,
        access: &[AccessEntry],
        lifetime: Duration,
    ) -> Result<(IssuedToken, bool), Error> {
        let issuer = &self.inner.issuer;
        let Some(reuse) = &self.inner.reuse else {
            let token = issuer.issue_with_lifetime(account, audience, access, lifetime)?;
            return Ok((token, false));
        };
        let key = grant_key(account, audience, lifetime, access);
        if let Some(token) = reuse.get(&key) {
            crate::metrics::reuse(true);
            return Ok((token, true));
        }
        crate::metrics::reuse(false);
        let token = issuer.issue_with_lifetime(account, audience, access, lifetime)?;
        reuse.put(key, &token);
        Ok((token, false))
    }

    /// Runs the authorization chain for an identity without authenticating: the same code
    /// path [`issue`](Self::issue) uses, reporting which authorizer and rule decided.
    pub async fn explain(
        &self,
        identity: &Identity,
        service: &str,
        client_ip: Option<IpAddr>,
        scopes: &[Scope],
    ) -> Result<Vec<ScopeDecision>, Error> {
        self.decide(identity, service, client_ip, scopes).await
    }

    async fn decide(
        &self,
        identity: &Identity,
        service: &str,
        client_ip: Option<IpAddr>,
        scopes: &[Scope],
    ) -> Result<Vec<ScopeDecision>, Error> {
        let mut out = Vec::with_capacity(scopes.len());
        for scope in scopes {
            let req = AuthzRequest {
                identity,
                service,
                client_ip,
                scope,
            };
            let d = self.inner.authz.decide(&req).await.inspect_err(|e| {
                tracing::error!(backend = e.backend(), error = %crate::display_chain(e), "authorization backend failed");
            })?;
            tracing::debug!(
                account = %OneLine(&identity.account),
                scope = %scope,
                granted = ?d.granted,
                authorizer = ?d.authorizer,
                rule = ?d.rule.as_ref().map(|r| r.index),
                "scope decided"
            );
            out.push(ScopeDecision {
                scope: scope.clone(),
                granted: d.granted,
                authorizer: d.authorizer,
                rule: d.rule,
                expiration: d.expiration,
            });
        }
        Ok(out)
    }

    /// Whether every backend is reachable (for readiness probes).
    pub async fn ready(&self) -> Result<(), BackendError> {
        use crate::{Authenticator, Authorizer};
        self.inner.authn.ready().await?;
        self.inner.authz.ready().await
    }

    /// The JWKS document of the signing keys.
    #[must_use]
    pub fn jwks(&self) -> serde_json::Value {
        self.inner.issuer.keys().jwks()
    }

    /// The HTTP answer for an error: status, headers and a docker-style JSON body.
    #[must_use]
    pub fn error_response(&self, error: &Error) -> (StatusCode, HeaderMap, Vec<u8>) {
        error.to_http(&self.inner.realm)
    }
}

fn store_failed(e: &BackendError) {
    tracing::error!(backend = e.backend(), error = %crate::display_chain(e), "refresh-token store failed");
}

/// 429 (with its metric and audit line) when the (account, client IP) pair or the address
/// is limited; the authenticators and the refresh-token store are then not asked.
fn refuse_if_limited(
    limiter: &FailedLoginLimiter,
    account: &str,
    request: &TokenRequest,
) -> Result<(), Error> {
    let Err(limited) = limiter.check(account, request.client_ip) else {
        return Ok(());
    };
    crate::metrics::rate_limited(limited.kind.as_str());
    tracing::warn!(
        target: "docker_token::audit",
        account = ?account,
        grant = grant_name(&request.grant),
        client_ip = %OptIp(request.client_ip),
        limit = limited.kind.as_str(),
        retry_after_s = limited.retry_after.as_secs_f64().ceil(),
        "login rate-limited"
    );
    Err(Error::RateLimited {
        retry_after: limited.retry_after,
    })
}

/// A failed login (wrong password, unknown user, refused refresh token): counted against the
/// pair and the address, and in the metrics.
fn count_failure(limiter: &FailedLoginLimiter, account: &str, request: &TokenRequest) {
    limiter.record_failure(account, request.client_ip);
    crate::metrics::failed_login();
}

fn grant_name(grant: &GrantType) -> &'static str {
    match grant {
        GrantType::Get => "get",
        GrantType::Password => "password",
        GrantType::RefreshToken { .. } => "refresh_token",
    }
}

#[cfg(test)]
mod refresh_tests;

struct OptIp(Option<IpAddr>);

impl std::fmt::Display for OptIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            // dotted decimal written directly: this is in every audit line, and
            // `Ipv4Addr`'s `Display` (which supports padding) formats into a buffer first
            Some(IpAddr::V4(v4)) => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    let digits = [
                        b'0' + octet / 100,
                        b'0' + octet / 10 % 10,
                        b'0' + octet % 10,
                    ];
                    let skip = match octet {
                        100.. => 0,
                        10.. => 1,
                        _ => 2,
                    };
                    let text = digits.get(skip..).unwrap_or_default();
                    f.write_str(std::str::from_utf8(text).map_err(|_| std::fmt::Error)?)?;
                }
                Ok(())
            }
            Some(ip) => write!(f, "{ip}"),
            None => f.write_str("-"),
        }
    }
}

#[cfg(test)]
#[test]
fn client_ips_print_as_std_prints_them() {
    let mut ips: Vec<IpAddr> = [
        "0.0.0.0",
        "255.255.255.255",
        "10.0.100.9",
        "127.0.0.1",
        "::1",
        "::ffff:1.2.3.4",
    ]
    .iter()
    .filter_map(|s| s.parse().ok())
    .collect();
    ips.extend((0..=255u8).map(|o| IpAddr::from([o, 255 - o, o / 3, o / 17])));
    assert_eq!(ips.len(), 6 + 256);
    for ip in ips {
        assert_eq!(OptIp(Some(ip)).to_string(), ip.to_string());
    }
    assert_eq!(OptIp(None).to_string(), "-");
}

struct DisplayScopes<'a>(&'a [Scope]);

impl std::fmt::Display for DisplayScopes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            std::fmt::Display::fmt(s, f)?;
        }
        Ok(())
    }
}

struct DisplayAccess<'a>(&'a [AccessEntry]);

impl std::fmt::Display for DisplayAccess<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(&a.resource_type)?;
            f.write_str(":")?;
            f.write_str(&a.name)?;
            f.write_str(":")?;
            crate::scope::write_joined(f, &a.actions)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use async_trait::async_trait;
    use http::HeaderValue;

    use super::*;
    use crate::acl::{Acl, AclEntry};
    use crate::keys::{Algorithm, KeySet, SigningKey};
    use crate::static_users::UsersConfig;
    use crate::{Authenticator, BackendError, LoginAttempt, StaticUsers};

    fn acl() -> Acl {
        let entries: Vec<AclEntry> = serde_json::from_value(serde_json::json!([
            {"match": {"account": "alice", "name": "${labels:team}/*"}, "actions": ["*"], "comment": "team"},
            {"match": {"account": "", "name": "demo/*"}, "actions": ["pull"], "comment": "anonymous pull"},
            {"match": {"name": "secret/*"}, "actions": [], "comment": "nobody"}
        ]))
        .unwrap();
        Acl::new(entries).unwrap()
    }

    fn service(anonymous: bool) -> TokenService {
        let mut users = serde_json::json!({
            "alice": {"password": bcrypt::hash("pw", 4).unwrap(), "labels": {"team": ["demo"]}}
        });
        if anonymous {
            users[""] = serde_json::json!({});
        }
        let users: UsersConfig = serde_json::from_value(users).unwrap();
        let key = SigningKey::generate(Algorithm::ES256, "test").unwrap().key;
        let issuer = TokenIssuer::new("test-issuer", Duration::from_secs(300), KeySet::new(key));
        TokenService::builder(issuer)
            .authenticators(
                AuthenticatorChain::new().with(StaticUsers::from_config(&users).unwrap()),
            )
            .authorizers(AuthorizerChain::new().with(acl()))
            .build()
    }

    fn basic(user: &str, pw: &str) -> HeaderValue {
        use base64::Engine;
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
        HeaderValue::from_str(&format!("Basic {v}")).unwrap()
    }

    #[tokio::test]
    async fn issues_a_verifiable_token_with_per_scope_grants() {
        let s = service(false);
        let req = TokenRequest::from_query(
            "service=reg&scope=repository:demo/app:push,pull&scope=repository:other/x:pull&scope=repository:secret/y:pull",
            Some(&basic("alice", "pw")),
            None,
        )
        .unwrap();
        let issued = s.issue(&req).await.unwrap();
        assert_eq!(issued.account, "alice");
        assert_eq!(issued.authenticator.as_deref(), Some("static"));
        let got: Vec<(&str, Vec<String>)> = issued
            .access
            .iter()
            .map(|a| (a.name.as_str(), a.actions.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("demo/app", vec!["pull".to_owned(), "push".to_owned()]),
                ("other/x", vec![]),
                ("secret/y", vec![])
            ]
        );
        let data = crate::verify::TokenVerifier::builder("test-issuer", "reg")
            .key_set(s.issuer().keys())
            .build()
            .unwrap()
            .verify(&issued.response.token)
            .unwrap();
        assert_eq!(data.subject(), "alice");
        assert_eq!(data.jti(), Some(issued.jti.as_str()));
        assert_eq!(
            data.access().actions("repository", "demo/app"),
            ["pull", "push"]
        );
        assert_eq!(issued.response.access_token, issued.response.token);
    }

    #[tokio::test]
    async fn login_without_scope_gets_an_empty_access_token() {
        let s = service(false);
        let req = TokenRequest::from_query(
            "service=reg&account=alice&client_id=docker&offline_token=true",
            Some(&basic("alice", "pw")),
            None,
        )
        .unwrap();
        let issued = s.issue(&req).await.unwrap();
        assert!(issued.access.is_empty());
        assert!(
            issued.response.refresh_token.is_none(),
            "refresh tokens are off unless configured"
        );
    }

    #[tokio::test]
    async fn bad_credentials_are_401_with_basic_challenge() {
        let s = service(true);
        for h in [basic("alice", "wrong"), basic("mallory", "pw")] {
            let req = TokenRequest::from_query("service=reg", Some(&h), None).unwrap();
            let err = s.issue(&req).await.unwrap_err();
            assert!(matches!(err, Error::Unauthorized), "{err:?}");
            let (status, headers, body) = s.error_response(&err);
            assert_eq!(status, 401);
            assert_eq!(
                headers[http::header::WWW_AUTHENTICATE],
                "Basic realm=\"test-issuer\""
            );
            assert!(String::from_utf8(body).unwrap().contains("UNAUTHORIZED"));
        }
    }

    #[tokio::test]
    async fn anonymous_needs_the_empty_user_entry() {
        let req = TokenRequest::from_query(
            "service=reg&scope=repository:demo/app:pull,push",
            None,
            None,
        )
        .unwrap();
        let issued = service(true).issue(&req).await.unwrap();
        assert_eq!(issued.account, "");
        assert_eq!(issued.access[0].actions, vec!["pull".to_owned()]);
        assert!(matches!(
            service(false).issue(&req).await.unwrap_err(),
            Error::Unauthorized
        ));
    }

    #[tokio::test]
    async fn refresh_grant_without_refresh_tokens_is_unsupported() {
        let req = TokenRequest::from_form(
            b"grant_type=refresh_token&refresh_token=abc&service=reg&client_id=x",
            None,
            None,
        )
        .unwrap();
        let err = service(true).issue(&req).await.unwrap_err();
        assert_eq!(err.status(), 400);
        assert_eq!(err.code(), "UNSUPPORTED");
    }

    #[tokio::test]
    async fn explain_names_the_deciding_rule() {
        let s = service(true);
        let scopes = crate::scope::parse_scopes([
            "repository:demo/a:pull,push repository:zzz:pull repository:secret/s:pull",
        ])
        .unwrap();
        let alice = Identity::new("alice")
            .with_labels([("team".to_owned(), vec!["demo".to_owned()])].into());
        let d = s.explain(&alice, "reg", None, &scopes).await.unwrap();
        assert_eq!(d[0].rule.as_ref().map(|r| r.index), Some(0));
        assert_eq!(d[0].granted, vec!["pull", "push"]);
        assert_eq!(d[0].authorizer.as_deref(), Some("acl"));
        assert_eq!(d[1].rule, None);
        assert!(d[1].granted.is_empty());
        assert_eq!(
            d[2].rule.as_ref().and_then(|r| r.comment.as_deref()),
            Some("nobody")
        );
        let anon = s
            .explain(&Identity::anonymous(), "reg", None, &scopes)
            .await
            .unwrap();
        assert_eq!(anon[0].granted, vec!["pull"]);
    }

    #[tokio::test]
    async fn unreachable_backend_is_503_not_401() {
        let key = SigningKey::generate(Algorithm::ES256, "t").unwrap().key;
        let s = TokenService::builder(TokenIssuer::new(
            "i",
            Duration::from_secs(60),
            KeySet::new(key),
        ))
        .authenticators(AuthenticatorChain::new().with(crate::stub::Stub::down("ldap")))
        .build();
        let req = TokenRequest::from_query("service=reg", Some(&basic("bob", "pw")), None).unwrap();
        let err = s.issue(&req).await.unwrap_err();
        assert_eq!(err.status(), 503);
        assert_eq!(err.code(), "UNAVAILABLE");
        assert!(s.ready().await.is_err());
    }

    fn reuse_service(window: Duration, lifetime: Duration) -> TokenService {
        let users: UsersConfig = serde_json::from_value(serde_json::json!({
            "alice": {"password": bcrypt::hash("pw", 4).unwrap(), "labels": {"team": ["demo"]}},
            "": {}
        }))
        .unwrap();
        let key = SigningKey::generate(Algorithm::ES256, "test").unwrap().key;
        TokenService::builder(TokenIssuer::new("test-issuer", lifetime, KeySet::new(key)))
            .authenticators(
                AuthenticatorChain::new().with(StaticUsers::from_config(&users).unwrap()),
            )
            .authorizers(AuthorizerChain::new().with(acl()))
            .reuse_window(window)
            .build()
    }

    async fn token(
        s: &TokenService,
        query: &str,
        user: Option<(&str, &str)>,
    ) -> Result<Issued, Error> {
        let auth = user.map(|(u, p)| basic(u, p));
        let req = TokenRequest::from_query(query, auth.as_ref(), None).unwrap();
        s.issue(&req).await
    }

    struct Counting(StaticUsers, std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl Authenticator for Counting {
        fn name(&self) -> &str {
            "counting"
        }
        async fn authenticate(&self, login: &LoginAttempt) -> Result<AuthnOutcome, BackendError> {
            self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            self.0.authenticate(login).await
        }
    }

    fn limited_service(burst: u32) -> (TokenService, Arc<Counting>) {
        let users: UsersConfig = serde_json::from_value(serde_json::json!({
            "alice": {"password": bcrypt::hash("pw", 4).unwrap(), "labels": {"team": ["demo"]}},
            "": {}
        }))
        .unwrap();
        let counting = Arc::new(Counting(
            StaticUsers::from_config(&users).unwrap(),
            std::sync::atomic::AtomicUsize::new(0),
        ));
        let mut chain = AuthenticatorChain::new();
        chain.push(counting.clone());
        let limiter = FailedLoginLimiter::new(crate::RateLimitConfig {
            burst,
            ..crate::RateLimitConfig::default()
        })
        .unwrap();
        let key = SigningKey::generate(Algorithm::ES256, "test").unwrap().key;
        let s = TokenService::builder(TokenIssuer::new(
            "test-issuer",
            Duration::from_secs(300),
            KeySet::new(key),
        ))
        .authenticators(chain)
        .authorizers(AuthorizerChain::new().with(acl()))
        .failed_login_limiter(limiter)
        .build();
        (s, counting)
    }

    async fn from_ip(
        s: &TokenService,
        user: Option<(&str, &str)>,
        ip: [u8; 4],
    ) -> Result<Issued, Error> {
        let auth = user.map(|(u, p)| basic(u, p));
        let req = TokenRequest::from_query(
            "service=reg&scope=repository:demo/a:pull",
            auth.as_ref(),
            Some(IpAddr::from(ip)),
        )
        .unwrap();
        s.issue(&req).await
    }

    #[tokio::test]
    async fn failed_logins_are_limited_without_asking_the_authenticators() {
        use std::sync::atomic::Ordering::SeqCst;
        let (s, counting) = limited_service(3);
        let ip = [192, 0, 2, 1];
        for _ in 0..3 {
            let e = from_ip(&s, Some(("alice", "wrong")), ip).await.unwrap_err();
            assert!(matches!(e, Error::Unauthorized), "{e:?}");
        }
        assert_eq!(counting.1.load(SeqCst), 3);
        // the right password now gets 429 too: a limited guess learns nothing
        let e = from_ip(&s, Some(("alice", "pw")), ip).await.unwrap_err();
        let Error::RateLimited { retry_after } = e else {
            panic!("{e:?}")
        };
        assert!(retry_after <= Duration::from_secs(10), "{retry_after:?}");
        assert_eq!(counting.1.load(SeqCst), 3, "no authenticator ran");
        let (status, headers, _) = s.error_response(&e);
        assert_eq!(status, 429);
        assert!(headers.contains_key(http::header::RETRY_AFTER));
        // another address, and anonymous requests, are not limited
        assert!(
            from_ip(&s, Some(("alice", "pw")), [192, 0, 2, 2])
                .await
                .is_ok()
        );
        assert!(from_ip(&s, None, ip).await.is_ok());
    }

    #[tokio::test]
    async fn successes_never_count_and_clear_the_pair() {
        let (s, _) = limited_service(2);
        let ip = [192, 0, 2, 9];
        for _ in 0..20 {
            assert!(from_ip(&s, Some(("alice", "pw")), ip).await.is_ok());
        }
        // one wrong password, then the right one: the pair is cleared
        for _ in 0..5 {
            assert!(from_ip(&s, Some(("alice", "wrong")), ip).await.is_err());
            assert!(from_ip(&s, Some(("alice", "pw")), ip).await.is_ok());
        }
        assert_eq!(
            s.failed_login_limiter().unwrap().len(),
            1,
            "only the IP key"
        );
    }

    #[tokio::test]
    async fn reuse_is_off_by_default() {
        let s = service(true);
        let q = "service=reg&scope=repository:demo/a:pull";
        let a = token(&s, q, None).await.unwrap();
        let b = token(&s, q, None).await.unwrap();
        assert_ne!(a.jti, b.jti);
        assert_ne!(a.response.token, b.response.token);
    }

    #[tokio::test]
    async fn reuse_window_returns_the_same_token_for_the_same_grant_only() {
        let s = reuse_service(Duration::from_secs(30), Duration::from_secs(300));
        let q = "service=reg&scope=repository:demo/a:pull,push";
        let first = token(&s, q, Some(("alice", "pw"))).await.unwrap();
        let again = token(&s, q, Some(("alice", "pw"))).await.unwrap();
        assert_eq!(first.response.token, again.response.token);
        assert_eq!(first.jti, again.jti);
        assert!(again.response.expires_in <= first.response.expires_in);
        assert!(
            again.response.expires_in >= 200,
            "{}",
            again.response.expires_in
        );
        // a different grant signs anew: other scope, other account, other service
        let other_scope = token(
            &s,
            "service=reg&scope=repository:demo/b:pull",
            Some(("alice", "pw")),
        )
        .await
        .unwrap();
        assert_ne!(other_scope.jti, first.jti);
        let anon = token(&s, q, None).await.unwrap();
        assert_ne!(
            anon.jti, first.jti,
            "anonymous gets pull only: another grant"
        );
        let other_service = token(
            &s,
            "service=other&scope=repository:demo/a:pull,push",
            Some(("alice", "pw")),
        )
        .await
        .unwrap();
        assert_ne!(other_service.jti, first.jti);
        // authentication still runs every time
        assert!(matches!(
            token(&s, q, Some(("alice", "wrong"))).await,
            Err(Error::Unauthorized)
        ));
    }

    #[tokio::test]
    async fn reused_tokens_keep_most_of_their_lifetime() {
        // a 6 s token may be reused while ≥ 4 s are left (iat is whole seconds, so right after
        // issuing more than 4 s always remain); 2.1 s later at most 3 s are left
        let s = reuse_service(Duration::from_secs(60), Duration::from_secs(6));
        let q = "service=reg&scope=repository:demo/a:pull";
        let first = token(&s, q, None).await.unwrap();
        let again = token(&s, q, None).await.unwrap();
        assert_eq!(again.jti, first.jti);
        assert!(
            (4..=6).contains(&again.response.expires_in),
            "{}",
            again.response.expires_in
        );
        tokio::time::sleep(Duration::from_millis(2100)).await;
        let later = token(&s, q, None).await.unwrap();
        assert_ne!(
            later.jti, first.jti,
            "a token with less than 2/3 of its life left is not handed out"
        );
        assert_eq!(later.response.expires_in, 6);
    }
}
