//! [`TokenService`]: request → authentication chain → authorization per scope → token.

use std::net::IpAddr;
use std::sync::Arc;

use http::{HeaderMap, StatusCode};

use crate::authn::{AuthenticatorChain, AuthnOutcome};
use crate::authz::{AuthorizerChain, AuthzRequest, RuleRef};
use crate::error::{BackendError, Error};
use crate::identity::Identity;
use crate::request::{GrantType, TokenRequest};
use crate::scope::Scope;
use crate::token::{AccessEntry, TokenIssuer, TokenResponse};

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
}

/// Builds a [`TokenService`].
#[derive(Debug)]
pub struct TokenServiceBuilder {
    authn: AuthenticatorChain,
    authz: AuthorizerChain,
    issuer: TokenIssuer,
    realm: Option<String>,
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

    /// Finishes the service.
    #[must_use]
    pub fn build(self) -> TokenService {
        let realm = self.realm.unwrap_or_else(|| self.issuer.issuer().to_owned());
        TokenService { inner: Arc::new(Inner { authn: self.authn, authz: self.authz, issuer: self.issuer, realm }) }
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
}

impl TokenService {
    /// Starts a builder with the token issuer; the chains start empty.
    #[must_use]
    pub fn builder(issuer: TokenIssuer) -> TokenServiceBuilder {
        TokenServiceBuilder { authn: AuthenticatorChain::new(), authz: AuthorizerChain::new(), issuer, realm: None }
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

    /// The Basic realm used on 401 answers.
    #[must_use]
    pub fn realm(&self) -> &str {
        &self.inner.realm
    }

    /// Answers a token request: authenticate, authorize every scope, mint.
    pub async fn issue(&self, request: &TokenRequest) -> Result<Issued, Error> {
        if let GrantType::RefreshToken { .. } = request.grant {
            return Err(Error::UnsupportedGrantType("refresh_token".to_owned()));
        }
        let login = request.login();
        let (outcome, by) = match self.inner.authn.authenticate_with_source(&login).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(backend = e.backend(), error = %crate::display_chain(&e), "authentication backend failed");
                return Err(e.into());
            }
        };
        let (identity, authenticator) = match outcome {
            AuthnOutcome::Authenticated(identity) => (identity, by.map(str::to_owned)),
            AuthnOutcome::Rejected | AuthnOutcome::NotApplicable => {
                tracing::warn!(
                    account = %login.account,
                    client_ip = %OptIp(request.client_ip),
                    rejected_by = by.unwrap_or("none"),
                    "authentication failed"
                );
                return Err(Error::Unauthorized);
            }
        };
        let decisions = self.decide(&identity, &request.service, request.client_ip, &request.scopes).await?;
        let access: Vec<AccessEntry> = decisions
            .iter()
            .map(|d| AccessEntry::new(d.scope.resource_type(), d.scope.name(), d.granted.clone()))
            .collect();
        let issued = self.inner.issuer.issue(&identity.account, &request.service, &access)?;
        let jti = issued.jti.clone();
        tracing::info!(
            target: "docker_token::audit",
            account = %identity.account,
            authenticator = authenticator.as_deref().unwrap_or(""),
            service = %request.service,
            client_ip = %OptIp(request.client_ip),
            requested = %DisplayScopes(&request.scopes),
            granted = %DisplayAccess(&access),
            jti = %jti,
            "token issued"
        );
        Ok(Issued { response: TokenResponse::from(issued), account: identity.account, authenticator, access, jti })
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
            let req = AuthzRequest { identity, service, client_ip, scope };
            let d = self.inner.authz.decide(&req).await.map_err(|e| {
                tracing::error!(backend = e.backend(), error = %crate::display_chain(&e), "authorization backend failed");
                e
            })?;
            tracing::debug!(
                account = %identity.account,
                scope = %scope,
                granted = ?d.granted,
                authorizer = ?d.authorizer,
                rule = ?d.rule.as_ref().map(|r| r.index),
                "scope decided"
            );
            out.push(ScopeDecision { scope: scope.clone(), granted: d.granted, authorizer: d.authorizer, rule: d.rule });
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

struct OptIp(Option<IpAddr>);

impl std::fmt::Display for OptIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => write!(f, "{ip}"),
            None => f.write_str("-"),
        }
    }
}

struct DisplayScopes<'a>(&'a [Scope]);

impl std::fmt::Display for DisplayScopes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, s) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{s}")?;
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
            write!(f, "{}:{}:{}", a.resource_type, a.name, a.actions.join(","))?;
        }
        Ok(())
    }
}
