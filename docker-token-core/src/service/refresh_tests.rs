//! Per-rule/per-action lifetimes and the refresh-token grant.

use std::collections::HashMap;
use std::sync::RwLock;

use async_trait::async_trait;
use base64::Engine as _;
use http::HeaderValue;

use super::*;
use crate::acl::{Acl, AclEntry};
use crate::identity::Labels;
use crate::keys::{Algorithm, KeySet, SigningKey};
use crate::refresh::{InMemoryRefreshTokenStore, RefreshPolicy, RefreshTokenStore};
use crate::stub::Stub;
use crate::{Authenticator, LoginAttempt};

/// Users whose labels (and existence) the test changes while the service runs.
#[derive(Default)]
struct Users(RwLock<HashMap<String, Labels>>);

impl Users {
    fn set(&self, name: &str, team: &str) {
        let labels = Labels::from([("team".to_owned(), vec![team.to_owned()])]);
        self.0.write().unwrap().insert(name.to_owned(), labels);
    }
    fn remove(&self, name: &str) {
        self.0.write().unwrap().remove(name);
    }
}

#[async_trait]
impl Authenticator for Users {
    fn name(&self) -> &str {
        "users"
    }
    async fn authenticate(&self, login: &LoginAttempt) -> Result<AuthnOutcome, BackendError> {
        Ok(match self.0.read().unwrap().get(&login.account) {
            Some(l) if login.password.expose() == "pw" => AuthnOutcome::Authenticated(
                Identity::new(login.account.clone()).with_labels(l.clone()),
            ),
            Some(_) => AuthnOutcome::Rejected,
            None => AuthnOutcome::NotApplicable,
        })
    }
    async fn lookup_account(&self, account: &str) -> Result<LookupOutcome, BackendError> {
        Ok(match self.0.read().unwrap().get(account) {
            Some(l) => LookupOutcome::Found(Identity::new(account).with_labels(l.clone())),
            None => LookupOutcome::NotFound,
        })
    }
}

fn acl() -> Acl {
    let entries: Vec<AclEntry> = serde_json::from_value(serde_json::json!([
        {"match": {"name": "${labels:team}/*"}, "actions": ["pull", "push"]},
        {"match": {"name": "ci/*"}, "actions": ["pull", "push"], "expiration": 3600},
        {"match": {"name": "short/*"}, "actions": ["pull"], "expiration": 600},
        {"match": {"name": "denied/*"}, "actions": [], "expiration": 5},
        {"match": {"name": "public/*"}, "actions": ["pull"]}
    ]))
    .unwrap();
    Acl::new(entries).unwrap()
}

struct Setup {
    service: TokenService,
    users: Arc<Users>,
    store: Arc<InMemoryRefreshTokenStore>,
}

fn setup(policy: RefreshPolicy, by_action: &[(&str, u64)]) -> Setup {
    setup_with(policy, by_action, None)
}

fn setup_with(
    policy: RefreshPolicy,
    by_action: &[(&str, u64)],
    limiter: Option<FailedLoginLimiter>,
) -> Setup {
    let users = Arc::new(Users::default());
    users.set("alice", "dev");
    let store = Arc::new(InMemoryRefreshTokenStore::new());
    let key = SigningKey::generate(Algorithm::ES256, "test").unwrap().key;
    let issuer = TokenIssuer::new("iss", Duration::from_secs(300), KeySet::new(key));
    let mut authn = AuthenticatorChain::new();
    authn.push(users.clone());
    // knows `carol` but cannot look anybody up (the trait's default)
    authn.push(Arc::new(Stub::accept("nolookup").only("carol")));
    let service = TokenService::builder(issuer)
        .authenticators(authn)
        .authorizers(AuthorizerChain::new().with(acl()))
        .expiration_by_action(
            by_action
                .iter()
                .map(|(a, s)| ((*a).to_owned(), Duration::from_secs(*s)))
                .collect(),
        )
        .refresh_tokens(RefreshTokens::new(store.clone(), policy));
    let service = match limiter {
        Some(l) => service.failed_login_limiter(l),
        None => service,
    }
    .build();
    Setup {
        service,
        users,
        store,
    }
}

fn basic(user: &str, pw: &str) -> HeaderValue {
    let v = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
    HeaderValue::from_str(&format!("Basic {v}")).unwrap()
}

async fn get(s: &TokenService, query: &str, user: &str) -> Result<Issued, Error> {
    let auth = basic(user, "pw");
    s.issue(&TokenRequest::from_query(query, Some(&auth), None).unwrap())
        .await
}

async fn refresh(
    s: &TokenService,
    rt: &str,
    service: &str,
    client: &str,
    scope: &str,
) -> Result<Issued, Error> {
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "refresh_token")
        .append_pair("refresh_token", rt)
        .append_pair("service", service)
        .append_pair("client_id", client)
        .append_pair("scope", scope)
        .finish();
    s.issue(&TokenRequest::from_form(body.as_bytes(), None, None).unwrap())
        .await
}

/// `exp - iat` of the minted JWT (verified), checked against `expires_in`.
fn lifetime_of(s: &TokenService, issued: &Issued) -> u64 {
    let token = crate::verify::TokenVerifier::builder("iss", "reg")
        .key_set(s.issuer().keys())
        .build()
        .unwrap()
        .verify(&issued.response.token)
        .unwrap();
    let iat = token.issued_at().expect("iat");
    let lifetime = token.expires_at().duration_since(iat).unwrap().as_secs();
    assert_eq!(lifetime, issued.response.expires_in, "expires_in is exact");
    lifetime
}

async fn login(s: &TokenService, user: &str) -> String {
    let issued = get(s, "service=reg&client_id=docker&offline_token=true", user)
        .await
        .unwrap();
    issued.response.refresh_token.expect("a refresh token")
}

#[tokio::test]
async fn a_rule_expiration_sets_exp_minus_iat_and_expires_in() {
    let s = setup(RefreshPolicy::default(), &[]).service;
    let push = get(&s, "service=reg&scope=repository:ci/app:pull,push", "alice")
        .await
        .unwrap();
    assert_eq!(push.access[0].actions, ["pull", "push"]);
    assert_eq!(lifetime_of(&s, &push), 3600);
    assert_eq!(push.response.expires_in, 3600);
    // a mixed grant gets the shortest lifetime set by what it grants
    let mixed = get(
        &s,
        "service=reg&scope=repository:ci/app:pull,push&scope=repository:short/x:pull",
        "alice",
    )
    .await
    .unwrap();
    assert_eq!(lifetime_of(&s, &mixed), 600);
    // nothing sets one: the default; a denying rule sets nothing
    let plain = get(
        &s,
        "service=reg&scope=repository:public/x:pull&scope=repository:denied/x:pull",
        "alice",
    )
    .await
    .unwrap();
    assert!(plain.access[1].actions.is_empty());
    assert_eq!(lifetime_of(&s, &plain), 300);
}

#[tokio::test]
async fn per_action_lifetimes_combine_with_rules_by_minimum() {
    let s = setup(RefreshPolicy::default(), &[("push", 1800), ("pull", 7200)]).service;
    // dev/* grants pull,push without a rule expiration: min(pull 7200, push 1800)
    let dev = get(
        &s,
        "service=reg&scope=repository:dev/app:pull,push",
        "alice",
    )
    .await
    .unwrap();
    assert_eq!(lifetime_of(&s, &dev), 1800);
    let pull = get(&s, "service=reg&scope=repository:dev/app:pull", "alice")
        .await
        .unwrap();
    assert_eq!(lifetime_of(&s, &pull), 7200);
    // the rule's 3600 and push's 1800
    let ci = get(&s, "service=reg&scope=repository:ci/app:push", "alice")
        .await
        .unwrap();
    assert_eq!(lifetime_of(&s, &ci), 1800);
    // a login grants nothing: the default
    let login = get(&s, "service=reg", "alice").await.unwrap();
    assert_eq!(lifetime_of(&s, &login), 300);
}

#[tokio::test]
async fn offline_login_issues_a_bound_refresh_token_that_is_stored_hashed() {
    let Setup {
        service: s, store, ..
    } = setup(RefreshPolicy::default(), &[]);
    let rt = login(&s, "alice").await;
    assert_eq!(rt.len(), 43);
    let records = store.list_tokens(Some("alice")).await.unwrap();
    assert_eq!(records.len(), 1);
    let r = &records[0];
    assert_eq!(r.id, refresh_token_id(&rt));
    assert_ne!(r.id, rt);
    assert_eq!(
        (r.service.as_str(), r.client_id.as_str()),
        ("reg", "docker")
    );
    assert_eq!(r.authenticator, "users");
    assert!(
        !serde_json::to_string(r).unwrap().contains(&rt),
        "only the hash is stored"
    );
    // without offline_token: none
    let plain = get(&s, "service=reg", "alice").await.unwrap();
    assert!(plain.response.refresh_token.is_none());
    // POST password grant with access_type=offline
    let auth = basic("alice", "pw");
    let req = TokenRequest::from_form(
        b"grant_type=password&service=reg&client_id=containerd-client&access_type=offline",
        Some(&auth),
        None,
    )
    .unwrap();
    assert!(
        s.issue(&req)
            .await
            .unwrap()
            .response
            .refresh_token
            .is_some()
    );
    assert_eq!(store.len(), 2);
}

#[tokio::test]
async fn the_refresh_grant_re_reads_labels_and_the_current_acl() {
    let Setup {
        service: s,
        users,
        store,
    } = setup(RefreshPolicy::default(), &[]);
    let rt = login(&s, "alice").await;
    let before = store
        .get_token(&refresh_token_id(&rt))
        .await
        .unwrap()
        .unwrap();
    let issued = refresh(
        &s,
        &rt,
        "reg",
        "docker",
        "repository:dev/app:pull,push repository:ops/app:pull",
    )
    .await
    .unwrap();
    assert_eq!(issued.account, "alice");
    assert_eq!(issued.access[0].actions, ["pull", "push"]);
    assert!(issued.access[1].actions.is_empty());
    assert!(
        issued.response.refresh_token.is_none(),
        "no rotation by default"
    );
    assert_eq!(issued.refresh_id.as_deref(), Some(before.id.as_str()));
    // the user moved to team ops: the same refresh token now grants ops, not dev
    users.set("alice", "ops");
    let issued = refresh(
        &s,
        &rt,
        "reg",
        "docker",
        "repository:dev/app:pull repository:ops/app:pull",
    )
    .await
    .unwrap();
    assert!(issued.access[0].actions.is_empty());
    assert_eq!(issued.access[1].actions, ["pull"]);
    // per-rule lifetimes apply to refreshed tokens too
    let ci = refresh(&s, &rt, "reg", "docker", "repository:ci/x:push")
        .await
        .unwrap();
    assert_eq!(lifetime_of(&s, &ci), 3600);
    let after = store.get_token(&before.id).await.unwrap().unwrap();
    assert!(after.last_used_at >= before.last_used_at);
    assert_eq!(after.absolute_expires_at, before.absolute_expires_at);
}

fn assert_invalid_grant(result: Result<Issued, Error>, reason: &str) {
    let err = result.unwrap_err();
    assert!(matches!(err, Error::InvalidGrant(_)), "{err:?}");
    assert_eq!(err.status(), 401);
    assert!(
        err.to_string().contains(reason),
        "{err} does not say {reason:?}"
    );
}

#[tokio::test]
async fn bad_refresh_tokens_are_401_invalid_grant() {
    let Setup {
        service: s,
        users,
        store,
    } = setup(RefreshPolicy::default().with_client_binding(true), &[]);
    let rt = login(&s, "alice").await;
    let unknown = "unknown, expired or revoked";
    assert_invalid_grant(
        refresh(
            &s,
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "reg",
            "docker",
            "",
        )
        .await,
        unknown,
    );
    assert_invalid_grant(
        refresh(&s, &"x".repeat(5000), "reg", "docker", "").await,
        "malformed",
    );
    assert_invalid_grant(
        refresh(&s, "a b\u{7f}\u{e9}", "reg", "docker", "").await,
        "malformed",
    );
    assert_invalid_grant(
        refresh(&s, &rt, "other", "docker", "").await,
        "another service",
    );
    assert_invalid_grant(
        refresh(&s, &rt, "reg", "containers/image", "").await,
        "another client",
    );
    // a Basic user other than the token's account
    let auth = basic("mallory", "x");
    let body = format!("grant_type=refresh_token&refresh_token={rt}&service=reg&client_id=docker");
    let req = TokenRequest::from_form(body.as_bytes(), Some(&auth), None).unwrap();
    assert_invalid_grant(s.issue(&req).await, "another account");
    // still good after all that
    refresh(&s, &rt, "reg", "docker", "").await.unwrap();
    // expired: an idle deadline in the past
    let id = refresh_token_id(&rt);
    let mut expired = store.get_token(&id).await.unwrap().unwrap();
    expired.expires_at = 1;
    assert!(store.update_token(expired).await.unwrap());
    assert_invalid_grant(refresh(&s, &rt, "reg", "docker", "").await, unknown);
    // revoked
    let rt2 = login(&s, "alice").await;
    assert_eq!(store.delete_account_tokens("alice").await.unwrap(), 2);
    assert_invalid_grant(refresh(&s, &rt2, "reg", "docker", "").await, unknown);
    // the user is removed: refused, and the token is dropped
    let rt3 = login(&s, "alice").await;
    users.remove("alice");
    assert_invalid_grant(
        refresh(&s, &rt3, "reg", "docker", "").await,
        "no longer exists",
    );
    assert!(
        store
            .get_token(&refresh_token_id(&rt3))
            .await
            .unwrap()
            .is_none()
    );
    // a backend that cannot look users up: no refresh token at login (the client keeps its
    // password), and a token from elsewhere naming such a user is refused
    let carol = get(
        &s,
        "service=reg&client_id=docker&offline_token=true",
        "carol",
    )
    .await
    .unwrap();
    assert!(carol.response.refresh_token.is_none());
    let forged = RefreshRecord::new(
        refresh_token_id("carols-token"),
        "carol",
        "reg",
        "docker",
        "nolookup",
        &RefreshPolicy::default(),
        SystemTime::now(),
    );
    store.insert_token(forged).await.unwrap();
    assert_invalid_grant(
        refresh(&s, "carols-token", "reg", "docker", "").await,
        "cannot re-check",
    );
    // the HTTP answer
    let (status, _, body) = s.error_response(&Error::InvalidGrant("x"));
    assert_eq!(status, 401);
    assert!(
        String::from_utf8(body)
            .unwrap()
            .contains("\"error\":\"invalid_grant\"")
    );
}

#[tokio::test]
async fn client_ids_are_not_bound_by_default() {
    let s = setup(RefreshPolicy::default(), &[]).service;
    let rt = login(&s, "alice").await;
    refresh(&s, &rt, "reg", "registry-client", "")
        .await
        .unwrap();
    assert_invalid_grant(
        refresh(&s, &rt, "other", "docker", "").await,
        "another service",
    );
}

#[tokio::test]
async fn anonymous_requests_get_no_refresh_token() {
    let s = setup(RefreshPolicy::default(), &[]).service;
    let req = TokenRequest::from_query(
        "service=reg&offline_token=true&client_id=docker",
        None,
        None,
    )
    .unwrap();
    assert!(matches!(s.issue(&req).await, Err(Error::Unauthorized)));
}

#[tokio::test]
async fn rotation_replaces_the_token_at_each_use() {
    let Setup {
        service: s, store, ..
    } = setup(RefreshPolicy::default().with_rotation(true), &[]);
    let rt = login(&s, "alice").await;
    let first = store
        .get_token(&refresh_token_id(&rt))
        .await
        .unwrap()
        .unwrap();
    let issued = refresh(&s, &rt, "reg", "docker", "").await.unwrap();
    let rt2 = issued
        .response
        .refresh_token
        .clone()
        .expect("a new refresh token");
    assert_ne!(rt, rt2);
    assert_invalid_grant(refresh(&s, &rt, "reg", "docker", "").await, "unknown");
    let second = store
        .get_token(&refresh_token_id(&rt2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        second.absolute_expires_at, first.absolute_expires_at,
        "rotation never extends the absolute lifetime"
    );
    assert_eq!(second.created_at, first.created_at);
    refresh(&s, &rt2, "reg", "docker", "").await.unwrap();
    assert_eq!(store.len(), 1);
}

/// A store that is down.
struct Down;

#[async_trait]
impl RefreshTokenStore for Down {
    async fn insert_token(&self, _: RefreshRecord) -> Result<(), BackendError> {
        Err(BackendError::unavailable("redis", "connection refused"))
    }
    async fn get_token(&self, _: &str) -> Result<Option<RefreshRecord>, BackendError> {
        Err(BackendError::unavailable("redis", "connection refused"))
    }
    async fn update_token(&self, _: RefreshRecord) -> Result<bool, BackendError> {
        Err(BackendError::unavailable("redis", "connection refused"))
    }
    async fn delete_token(&self, _: &str) -> Result<bool, BackendError> {
        Err(BackendError::unavailable("redis", "connection refused"))
    }
    async fn delete_account_tokens(&self, _: &str) -> Result<usize, BackendError> {
        Err(BackendError::unavailable("redis", "connection refused"))
    }
    async fn list_tokens(&self, _: Option<&str>) -> Result<Vec<RefreshRecord>, BackendError> {
        Err(BackendError::unavailable("redis", "connection refused"))
    }
    async fn sweep_expired_tokens(&self, _: SystemTime) -> Result<usize, BackendError> {
        Ok(0)
    }
}

#[tokio::test]
async fn an_unreachable_store_is_503_not_401() {
    let users = Users::default();
    users.set("alice", "dev");
    let key = SigningKey::generate(Algorithm::ES256, "test").unwrap().key;
    let s = TokenService::builder(TokenIssuer::new(
        "iss",
        Duration::from_secs(60),
        KeySet::new(key),
    ))
    .authenticators(AuthenticatorChain::new().with(users))
    .refresh_tokens(RefreshTokens::new(Arc::new(Down), RefreshPolicy::default()))
    .build();
    let err = get(&s, "service=reg&offline_token=true", "alice")
        .await
        .unwrap_err();
    assert_eq!(err.status(), 503);
    let err = refresh(&s, "AAAA", "reg", "", "").await.unwrap_err();
    assert_eq!(err.status(), 503);
    // without offline_token the store is not needed
    get(&s, "service=reg", "alice").await.unwrap();
}

#[tokio::test]
async fn refused_refresh_tokens_count_as_failed_logins() {
    let limiter = FailedLoginLimiter::new(crate::RateLimitConfig {
        burst: 3,
        ..crate::RateLimitConfig::default()
    })
    .unwrap();
    let s = setup_with(RefreshPolicy::default(), &[], Some(limiter)).service;
    let good = login(&s, "alice").await;
    let from = |rt: &str, ip: [u8; 4]| {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", rt)
            .append_pair("service", "reg")
            .append_pair("client_id", "docker")
            .finish();
        TokenRequest::from_form(body.as_bytes(), None, Some(IpAddr::from(ip))).unwrap()
    };
    let guesser = [198, 51, 100, 7];
    for i in 0..3 {
        let e = s
            .issue(&from(&format!("guess-{i}"), guesser))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidGrant(_)), "{e:?}");
    }
    // the address is now limited, even with a good token: a limited guess learns nothing
    let e = s.issue(&from("guess-3", guesser)).await.unwrap_err();
    assert!(matches!(e, Error::RateLimited { .. }), "{e:?}");
    let e = s.issue(&from(&good, guesser)).await.unwrap_err();
    assert!(matches!(e, Error::RateLimited { .. }), "{e:?}");
    // another address still refreshes
    assert!(s.issue(&from(&good, [198, 51, 100, 8])).await.is_ok());
}
