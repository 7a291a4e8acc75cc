//! From a token's claims (a verified JWT's payload, or an introspection answer) to an outcome:
//! whose token it is, and which labels it brings.

use docker_token_core::Labels;
use serde_json::{Map, Value};

/// Which claims name the user and which become labels.
#[derive(Clone, Debug)]
pub(crate) struct ClaimRules {
    /// The claim that must equal the docker user name.
    pub(crate) user_claim: String,
    /// Claims tried, in order, when `user_claim` is absent.
    pub(crate) user_claim_fallbacks: Vec<String>,
    /// Claims copied into labels.
    pub(crate) label_claims: Vec<String>,
}

/// What the claims say about a login.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ClaimsVerdict {
    /// The token belongs to this user; these are the labels.
    Matches(Labels),
    /// The token names another user (the value is for the log).
    OtherUser(String),
    /// No user claim at all (e.g. a `client_credentials` token).
    NoUser,
}

impl ClaimRules {
    /// The user the claims name: `user_claim` if present, else the first fallback present.
    /// Only string values count.
    pub(crate) fn user<'a>(&self, claims: &'a Map<String, Value>) -> Option<&'a str> {
        std::iter::once(&self.user_claim)
            .chain(&self.user_claim_fallbacks)
            .find_map(|name| claims.get(name))
            .and_then(Value::as_str)
    }

    /// Checks the claims against the login's user name (exact, case-sensitive match).
    pub(crate) fn verdict(&self, claims: &Map<String, Value>, account: &str) -> ClaimsVerdict {
        match self.user(claims) {
            None => ClaimsVerdict::NoUser,
            Some(user) if user == account => ClaimsVerdict::Matches(self.labels(claims)),
            Some(user) => ClaimsVerdict::OtherUser(user.to_owned()),
        }
    }

    /// Labels from `label_claims`: a string gives one value, an array its string elements;
    /// other types and absent claims give nothing.
    pub(crate) fn labels(&self, claims: &Map<String, Value>) -> Labels {
        let mut labels = Labels::new();
        for name in &self.label_claims {
            let values: Vec<String> = match claims.get(name) {
                Some(Value::String(s)) => vec![s.clone()],
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                _ => continue,
            };
            labels.insert(name.clone(), values);
        }
        labels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(fallbacks: &[&str]) -> ClaimRules {
        ClaimRules {
            user_claim: "preferred_username".to_owned(),
            user_claim_fallbacks: fallbacks.iter().map(|s| (*s).to_owned()).collect(),
            label_claims: vec!["groups".to_owned(), "team".to_owned(), "n".to_owned()],
        }
    }

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn user_claim_must_match_exactly() {
        let c = claims(serde_json::json!({"preferred_username": "alice", "sub": "u-1"}));
        assert!(matches!(
            rules(&[]).verdict(&c, "alice"),
            ClaimsVerdict::Matches(_)
        ));
        assert_eq!(
            rules(&[]).verdict(&c, "Alice"),
            ClaimsVerdict::OtherUser("alice".to_owned())
        );
        assert_eq!(
            rules(&[]).verdict(&c, "u-1"),
            ClaimsVerdict::OtherUser("alice".to_owned()),
            "a fallback is not consulted when user_claim is present"
        );
    }

    #[test]
    fn fallbacks_only_when_configured() {
        let c = claims(serde_json::json!({"username": "bob", "sub": "bob"}));
        assert_eq!(rules(&[]).verdict(&c, "bob"), ClaimsVerdict::NoUser);
        assert!(matches!(
            rules(&["username", "sub"]).verdict(&c, "bob"),
            ClaimsVerdict::Matches(_)
        ));
        let not_a_string = claims(serde_json::json!({"preferred_username": 7}));
        assert_eq!(
            rules(&[]).verdict(&not_a_string, "7"),
            ClaimsVerdict::NoUser
        );
    }

    #[test]
    fn labels_from_strings_and_arrays() {
        let c = claims(serde_json::json!({
            "groups": ["dev", 3, "ops"], "team": "blue", "n": {"x": 1}
        }));
        let labels = rules(&[]).labels(&c);
        assert_eq!(labels["groups"], ["dev", "ops"]);
        assert_eq!(labels["team"], ["blue"]);
        assert!(!labels.contains_key("n"));
        assert_eq!(labels.len(), 2);
        let empty = claims(serde_json::json!({"groups": []}));
        assert_eq!(rules(&[]).labels(&empty)["groups"], Vec::<String>::new());
    }
}
