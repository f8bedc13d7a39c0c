#!/usr/bin/env bash
# Run a command against the local stack: start the stack if it is not running, and stop
# it again afterwards in that case (a stack you started yourself is left as it was).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

started=""
if ! "$DEPLOY_DIR/stack.sh" status 2>/dev/null | grep -q '^notifier: running'; then
  started=1
fi
cleanup() { [[ -n "$started" ]] && "$DEPLOY_DIR/stack.sh" down; }
trap cleanup EXIT
"$DEPLOY_DIR/stack.sh" up
"$@"
