#!/usr/bin/env bash
# Debian's wrk, the load generator `make bench` drives ingest with (a C program in its own
# process: a Python client would take the CPU the service under test needs).
# usage: deploy/wrk.sh      installs /usr/bin/wrk if it is missing; idempotent.
set -euo pipefail

if command -v wrk >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
echo "wrk.sh: installing Debian's wrk (apt)" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk >/dev/null
command -v wrk >/dev/null
