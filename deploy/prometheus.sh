#!/usr/bin/env bash
# Debian's Prometheus server for the metrics test (tests/integration/test_prometheus.py),
# which runs its own `prometheus` process on a free port; the package's own systemd service
# is never left running.
# usage: deploy/prometheus.sh      installs /usr/bin/prometheus if it is missing; idempotent.
set -euo pipefail

if command -v prometheus >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
echo "prometheus.sh: installing Debian's prometheus (apt)" >&2

# Keep the package's post-install from starting its service (Debian's policy-rc.d protocol:
# exit 101 = action forbidden). Only created if absent, and removed again afterwards.
POLICY=/usr/sbin/policy-rc.d
OWN_POLICY=0
if [[ ! -e "$POLICY" ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  OWN_POLICY=1
fi
cleanup() { if [[ "$OWN_POLICY" == 1 ]]; then $SUDO rm -f "$POLICY"; fi; }
trap cleanup EXIT

$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null

# Belt and braces: where systemd runs, stop and disable the packaged service.
if command -v systemctl >/dev/null 2>&1 && [[ -d /run/systemd/system ]]; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
command -v prometheus >/dev/null
