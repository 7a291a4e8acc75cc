//! The ACL pattern compiler and matcher: patterns (globs, `/regex/`, placeholders) from the
//! input, evaluated against values from the input.
//! Input lines: account pattern, name pattern, label pattern, account, name, label value.
#![no_main]

use docker_token_core::acl::{Acl, AclEntry};
use docker_token_core::{AuthzRequest, Identity, Scope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.split('\n');
    let mut next = || parts.next().unwrap_or("");
    let (account_p, name_p, label_p) = (next(), next(), next());
    let (account, name, label) = (next(), next(), next());
    let rules = serde_json::json!([
        {"match": {"account": account_p, "name": name_p}, "actions": ["pull"]},
        {"match": {"labels": {"group": label_p}}, "actions": ["*"]},
        {"match": {"name": format!("${{account}}/{name_p}")}, "actions": ["push"]},
    ]);
    let Ok(entries) = serde_json::from_value::<Vec<AclEntry>>(rules) else {
        return;
    };
    let Ok(acl) = Acl::new(entries) else {
        return;
    };
    let mut labels = docker_token_core::Labels::new();
    labels.insert("group".to_owned(), vec![label.to_owned(), account.to_owned()]);
    let identity = Identity::new(account).with_labels(labels);
    let scope = Scope::new("repository", name, ["pull", "push"]);
    let req = AuthzRequest {
        identity: &identity,
        service: "registry",
        client_ip: None,
        scope: &scope,
    };
    if let Some(grant) = acl.evaluate(&req) {
        assert!(grant.actions.iter().all(|a| a == "pull" || a == "push"));
    }
});
