#!/usr/bin/env bash
# Installs the test peers, then runs every test: doc tests, then unit and integration tests
# (against the real registry, skopeo, podman, docker CLI, oci-client and slapd).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-peers.sh
cargo test --workspace --all-features --doc
cargo nextest run --workspace --all-features --no-fail-fast
