#!/usr/bin/env bash
# Installs the test peers, then runs every test: unit, integration (against the real
# registry, skopeo, podman, docker CLI, oci-client, slapd) and doc tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-peers.sh
cargo nextest run --workspace --all-features --no-fail-fast
cargo test --workspace --all-features --doc
