#!/usr/bin/env bash
# Fresh-machine install: Debian packages (when apt-get is available and we are root), then npm.
set -euo pipefail
cd "$(dirname "$0")/.."
# libdnnl-dev: oneDNN for the native CPU backend. python3-torch: the independent reference
# (tests/pytorch-reference.test.ts) and the speed yardstick of `npm run bench`; the library never uses it.
APT_PACKAGES=(libdnnl-dev python3-torch)
if command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "setup: installing Debian packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
  fi
else
  echo "setup: apt-get not found; install oneDNN yourself (see environment.md) or the wasm backend is used"
fi
npm install --no-audit --no-fund
