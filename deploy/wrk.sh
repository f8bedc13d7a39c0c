#!/usr/bin/env bash
# Debian's wrk, the load generator `make bench` drives ingest with (a C program in its own
# process: a Python client would take the CPU the service under test needs).
# usage: deploy/wrk.sh      installs /usr/bin/wrk if it is missing; idempotent.
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
apt_ensure wrk wrk
