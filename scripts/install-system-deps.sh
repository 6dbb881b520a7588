#!/usr/bin/env bash
# Installs the Debian packages the tests drive for real (promtool, amtool, the exporters, nginx,
# chromium for the browser tests of the analysis pages).
# The tests start what they need on 127.0.0.1 themselves, so no packaged service may run: on a
# laptop with systemd, prometheus, alertmanager, nginx or postgresql would otherwise start at
# once (and at every boot) on the ports `make up` publishes. A policy-rc.d that refuses every
# start guards the install, and the services these packages added are disabled afterwards
# (services that were already installed are left alone). Needs root or sudo. Without apt-get
# this says so and returns 0; the tests that need a missing tool then skip naming it (or fail
# under CI=true).
set -euo pipefail

# python3-venv: `make demo`/`make install` bootstrap uv with the system python3 (PEP 668).
# postgresql: the store tests start their own throwaway server from /usr/lib/postgresql/*/bin
# (a cluster the package may create and start on 5432 is never used). wrk: the webhook benchmark.
PACKAGES=(python3-venv prometheus prometheus-alertmanager prometheus-node-exporter prometheus-nginx-exporter nginx shellcheck chromium postgresql wrk)

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
# Overridable for the tests of this script only.
POLICY_RC_D="${POLICY_RC_D:-/usr/sbin/policy-rc.d}"
SYSTEMD_RUNTIME_DIR="${SYSTEMD_RUNTIME_DIR:-/run/systemd/system}"
# Packages whose systemd unit has the package's name and listens on a port.
SERVICES=(prometheus prometheus-alertmanager prometheus-node-exporter prometheus-nginx-exporter nginx postgresql)

echo "install-system-deps: installing ${missing[*]} (apt-get${SUDO:+ through sudo}; no service is started)"
if [ ! -e "$POLICY_RC_D" ]; then
  printf '#!/bin/sh\n# Written by install-system-deps.sh for the duration of its install.\nexit 101\n' \
    | $SUDO tee "$POLICY_RC_D" >/dev/null
  $SUDO chmod 755 "$POLICY_RC_D"
  trap '$SUDO rm -f "$POLICY_RC_D"' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

new_services=()
for pkg in "${missing[@]}"; do
  for service in "${SERVICES[@]}"; do
    if [ "$pkg" = "$service" ]; then new_services+=("$service"); fi
  done
done
if [ ${#new_services[@]} -gt 0 ] && [ -d "$SYSTEMD_RUNTIME_DIR" ] && command -v systemctl >/dev/null 2>&1; then
  $SUDO systemctl disable --now "${new_services[@]}" >/dev/null 2>&1 || true
  echo "install-system-deps: disabled ${new_services[*]}: installed for the tests, which start" \
    "their own on free ports (systemctl enable --now NAME to run one as a service)"
fi
