//! Benchmarks for docker-token. Run `cargo bench -p docker-token-benches`.
//!
//! `benches/core.rs` (criterion): scope parsing, ACL evaluation on 10 and 1000 rules, token
//! minting (ES256, RS256; pre-parsed signer vs `jsonwebtoken::encode`), and a full
//! `TokenService::issue` with a bcrypt cost-5 static user and with an anonymous user.
