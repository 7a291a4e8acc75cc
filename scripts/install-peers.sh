#!/usr/bin/env bash
# Installs everything the tests need, idempotently: the real peers (Debian packages), and
# cargo-nextest. Safe to run again; does nothing that is already done.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

APT_PACKAGES=(
  docker-registry   # the registry the tokens are for (2.8.2)
  skopeo            # containers/image client (1.9.3)
  podman            # podman login
  containerd        # containerd + ctr (1.6): the refresh-token e2e starts a private daemon
  slapd ldap-utils  # OpenLDAP for docker-token-ldap
  redis-server      # the shared store of replicas (docker-token-redis; brings redis-cli)
  jq
  chromium          # the headless browser of the OIDC browser-login test (driven by playwright-core)
  wrk               # the load benchmark (cargo run --release -p docker-token-benches --bin load)
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-peers: installing ${missing[*]}"
  $SUDO apt-get update -qq
  # slapd asks debconf questions; we never use its system instance.
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The system slapd instance is not used by the tests (they start their own on free ports).

if ! command -v docker >/dev/null 2>&1; then
  echo "install-peers: installing the docker CLI (docker.io; its daemon is not started)"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends docker.io >/dev/null
fi

# The OpenID Provider for docker-token-oidc's tests (node oidc-provider, pinned by package-lock.json).
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "install-peers: installing nodejs and npm"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
NODE_MAJOR="$(node -p 'process.versions.node.split(".")[0]')"
if [ "$NODE_MAJOR" -lt 20 ]; then
  echo "install-peers: node $(node --version) is too old for oidc-provider 9 (needs 20.19+; 22 LTS recommended)" >&2
  exit 1
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OIDC_DIR="$ROOT/test-support/oidc-provider"
# node_modules/.installed-lock is a copy of the lock file it was installed from: rerun npm ci when it changed.
if ! cmp -s "$OIDC_DIR/package-lock.json" "$OIDC_DIR/node_modules/.installed-lock" 2>/dev/null; then
  echo "install-peers: npm ci in test-support/oidc-provider"
  npm ci --prefix "$OIDC_DIR" --no-audit --no-fund >/dev/null
  cp "$OIDC_DIR/package-lock.json" "$OIDC_DIR/node_modules/.installed-lock"
fi

if ! command -v cargo-nextest >/dev/null 2>&1; then
  echo "install-peers: installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
echo "install-peers: ok"
