//! RFC 7662 token introspection through the `oauth2` crate's request types.

use std::collections::BTreeMap;

use http::StatusCode;
use oauth2::basic::{
    BasicErrorResponse, BasicErrorResponseType, BasicTokenResponse, BasicTokenType,
};
use oauth2::{
    AccessToken, AuthType, ClientId, ClientSecret, EndpointMaybeSet, EndpointNotSet,
    ExtraTokenFields, IntrospectionUrl, RequestTokenError, StandardTokenIntrospectionResponse,
    TokenIntrospectionResponse as _,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::ClientAuth;
use crate::http::{HttpClient, HttpError, OAuthClient};

/// Every member of the introspection answer that RFC 7662 does not define (e.g. `groups`,
/// `preferred_username`, `email`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub(crate) struct OtherClaims(BTreeMap<String, Value>);

impl ExtraTokenFields for OtherClaims {}

type Introspected = StandardTokenIntrospectionResponse<OtherClaims, BasicTokenType>;

type IntrospectionClient =
    OAuthClient<BasicTokenResponse, Introspected, EndpointMaybeSet, EndpointNotSet>;

/// The answer about one token.
#[derive(Debug)]
pub(crate) enum Introspection {
    /// `active: true`, with all claims (standard and other) in one map.
    Active(Map<String, Value>),
    /// `active: false`: unknown, expired, revoked, or not visible to this client.
    Inactive,
    /// The IdP cannot introspect this kind of token (`unsupported_token_type`).
    Unsupported,
}

/// Why introspection could not answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum IntrospectionError {
    /// The IdP is unreachable, timed out, or answered 5xx/429.
    #[error("introspection request failed: {0}")]
    Unavailable(#[source] HttpError),
    /// The IdP refused our client credentials (401/403 or `invalid_client`).
    #[error(
        "client authentication failed at the introspection endpoint (check client_id and the client secret)"
    )]
    ClientAuthentication,
    /// The IdP answered with another OAuth error.
    #[error("the introspection endpoint answered {0}")]
    Refused(String),
    /// The answer could not be understood.
    #[error("invalid introspection response: {0}")]
    Invalid(String),
}

/// An introspection endpoint and our credentials for it.
#[derive(Debug)]
pub(crate) struct Introspector {
    client: IntrospectionClient,
}

impl Introspector {
    /// `url` is the endpoint; `None` makes every call answer `Unsupported`.
    pub(crate) fn new(
        client_id: &str,
        secret: Option<&docker_token_core::Password>,
        auth: ClientAuth,
        url: Option<IntrospectionUrl>,
    ) -> Self {
        let mut client = oauth2::Client::new(ClientId::new(client_id.to_owned()))
            .set_auth_type(match auth {
                ClientAuth::ClientSecretBasic => AuthType::BasicAuth,
                ClientAuth::ClientSecretPost => AuthType::RequestBody,
            })
            .set_introspection_url_option(url);
        if let Some(s) = secret {
            client = client.set_client_secret(ClientSecret::new(s.expose().to_owned()));
        }
        Self { client }
    }

    /// Asks the IdP about `token`.
    pub(crate) async fn introspect(
        &self,
        token: &str,
        http: &HttpClient,
    ) -> Result<Introspection, IntrospectionError> {
        let token = AccessToken::new(token.to_owned());
        let Ok(request) = self.client.introspect(&token) else {
            return Ok(Introspection::Unsupported);
        };
        let answer = request
            .set_token_type_hint("access_token")
            .request_async(http)
            .await;
        match answer {
            Ok(r) if r.active() => Ok(Introspection::Active(flatten(r))),
            Ok(_) => Ok(Introspection::Inactive),
            Err(e) => Err(classify(e)),
        }
    }
}

fn classify(e: RequestTokenError<HttpError, BasicErrorResponse>) -> IntrospectionError {
    match e {
        RequestTokenError::Request(HttpError::Status(
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN,
        )) => IntrospectionError::ClientAuthentication,
        RequestTokenError::Request(h) if h.is_unavailable() => IntrospectionError::Unavailable(h),
        RequestTokenError::Request(h) => IntrospectionError::Invalid(h.to_string()),
        RequestTokenError::ServerResponse(r) => match r.error() {
            BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient => {
                IntrospectionError::ClientAuthentication
            }
            BasicErrorResponseType::Extension(x) if x == "unsupported_token_type" => {
                IntrospectionError::Refused("unsupported_token_type".to_owned())
            }
            other => IntrospectionError::Refused(other.to_string()),
        },
        RequestTokenError::Parse(err, _body) => IntrospectionError::Invalid(err.to_string()),
        RequestTokenError::Other(msg) => IntrospectionError::Invalid(msg),
    }
}

/// All claims of an active answer in one JSON object: the RFC 7662 members (times as
/// seconds, `scope` space-separated) and the other members as sent.
fn flatten(r: Introspected) -> Map<String, Value> {
    let mut map: Map<String, Value> = r.extra_fields().0.clone().into_iter().collect();
    let mut put = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            map.insert(k.to_owned(), v);
        }
    };
    put("active", Some(Value::Bool(true)));
    put("username", r.username().map(Value::from));
    put("sub", r.sub().map(Value::from));
    put("iss", r.iss().map(Value::from));
    put("jti", r.jti().map(Value::from));
    put("client_id", r.client_id().map(|c| Value::from(c.as_str())));
    put(
        "scope",
        r.scopes()
            .map(|s| Value::from(s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" "))),
    );
    put("aud", r.aud().map(|a| Value::from(a.clone())));
    put("exp", r.exp().map(|t| Value::from(t.timestamp())));
    put("iat", r.iat().map(|t| Value::from(t.timestamp())));
    put("nbf", r.nbf().map(|t| Value::from(t.timestamp())));
    map
}

impl Introspection {
    /// Whether this is an unsupported-token-type refusal rather than an error.
    pub(crate) fn from_refusal(e: &IntrospectionError) -> Option<Self> {
        match e {
            IntrospectionError::Refused(code) if code == "unsupported_token_type" => {
                Some(Self::Unsupported)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_keeps_standard_and_other_claims() {
        let r: Introspected = serde_json::from_value(serde_json::json!({
            "active": true, "sub": "alice", "username": "alice", "groups": ["dev", "ops"],
            "client_id": "registry-ui", "exp": 1795323298, "scope": "openid groups",
            "aud": "urn:x", "token_type": "Bearer", "preferred_username": "alice"
        }))
        .unwrap();
        let m = flatten(r);
        assert_eq!(m["sub"], "alice");
        assert_eq!(m["groups"], serde_json::json!(["dev", "ops"]));
        assert_eq!(m["preferred_username"], "alice");
        assert_eq!(m["exp"], 1795323298);
        assert_eq!(m["scope"], "openid groups");
        assert_eq!(m["aud"], serde_json::json!(["urn:x"]));
        assert_eq!(m["client_id"], "registry-ui");
    }

    #[test]
    fn error_classification() {
        let unauthorized = RequestTokenError::Request(HttpError::Status(StatusCode::UNAUTHORIZED));
        assert!(matches!(
            classify(unauthorized),
            IntrospectionError::ClientAuthentication
        ));
        let down = RequestTokenError::Request(HttpError::Status(StatusCode::BAD_GATEWAY));
        assert!(matches!(classify(down), IntrospectionError::Unavailable(_)));
        let invalid_client: BasicErrorResponse =
            serde_json::from_value(serde_json::json!({"error": "invalid_client"})).unwrap();
        assert!(matches!(
            classify(RequestTokenError::ServerResponse(invalid_client)),
            IntrospectionError::ClientAuthentication
        ));
        let unsupported: BasicErrorResponse =
            serde_json::from_value(serde_json::json!({"error": "unsupported_token_type"})).unwrap();
        let e = classify(RequestTokenError::ServerResponse(unsupported));
        assert!(matches!(
            Introspection::from_refusal(&e),
            Some(Introspection::Unsupported)
        ));
    }
}
