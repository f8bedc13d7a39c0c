#!/usr/bin/env bash
# Debian's headless-capable Chromium for the sandbox page's browser test (driven by the
# Python playwright package through executable_path; never `playwright install`).
# usage: deploy/chromium.sh        installs /usr/bin/chromium if it is missing; idempotent.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
echo "chromium.sh: installing Debian's chromium (apt)" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
command -v chromium >/dev/null
