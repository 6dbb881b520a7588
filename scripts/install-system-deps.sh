#!/usr/bin/env bash
# Installs the Debian packages the tests drive for real (promtool, amtool, the exporters, nginx,
# chromium for the browser tests of the analysis pages).
# Nothing is started: the packages ship no running service inside a container, and the tests
# start what they need on 127.0.0.1 themselves. Without apt-get this says so and returns 0; the
# tests that need a missing tool then skip naming it (or fail under CI=true).
set -euo pipefail

# python3-venv: `make demo`/`make install` bootstrap uv with the system python3 (PEP 668).
# postgresql: the store tests start their own throwaway server from /usr/lib/postgresql/*/bin
# (a cluster the package may create and start on 5432 is never used).
PACKAGES=(python3-venv prometheus prometheus-alertmanager prometheus-node-exporter prometheus-nginx-exporter nginx shellcheck chromium postgresql)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: apt-get not found; not installing ${missing[*]} (tests needing them will skip)"
  exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi
echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
