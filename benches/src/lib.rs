//! Benchmarks for docker-token.
//!
//! - `benches/core.rs` (criterion, `cargo bench -p docker-token-benches`): scope parsing, ACL
//!   evaluation on 10 and 1000 rules, token minting (ES256, RS256; pre-parsed signer vs
//!   `jsonwebtoken::encode`), and a full `TokenService::issue` with a bcrypt cost-5 static user
//!   and with an anonymous user.
//! - `src/bin/load` (`cargo run --release -p docker-token-benches --bin load`): the release
//!   server under `wrk` on loopback; see the README's "Performance" section.
