//! The token request path: GET query, POST form, the Basic header and the scope grammar.
//! Input: `<query-or-form bytes> 0xFF <Authorization header bytes>`.
#![no_main]

use docker_token_core::Scope;
use docker_token_core::request::{Credentials, TokenRequest};
use docker_token_core::scope::parse_scopes;
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (body, header) = match data.iter().position(|&b| b == 0xFF) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let header = header.and_then(|h| HeaderValue::from_bytes(h).ok());
    if let Some(h) = &header {
        let _ = Credentials::from_authorization(h);
    }
    let _ = TokenRequest::from_form(body, header.as_ref(), None);
    if let Ok(text) = std::str::from_utf8(body) {
        if let Ok(req) = TokenRequest::from_query(text, header.as_ref(), None) {
            // what parsed prints as scopes that parse back to the same
            let shown: Vec<String> = req.scopes.iter().map(ToString::to_string).collect();
            assert_eq!(parse_scopes(&shown).unwrap(), req.scopes);
        }
        if let Ok(scope) = Scope::parse(text) {
            assert_eq!(Scope::parse(&scope.to_string()).unwrap(), scope);
        }
        let _ = parse_scopes(text.split('&'));
    }
});
