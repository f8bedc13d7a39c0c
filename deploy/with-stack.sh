#!/usr/bin/env bash
# Run a command against the local stack: start the stack if it is not running, and stop
# it again afterwards in that case (a stack you started yourself is left as it was).
set -euo pipefail
# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The tests run on the simulated clock (scenarios move it); a running stack on the wall
# clock is switched for the run and switched back afterwards.
started="" previous=""
# The tests find PostgreSQL and Kafka by these (as stack.sh sets them for the services), so
# a stack on other ports (PG_PORT, KAFKA_PORT) is the one tested.
export KAFKA_BOOTSTRAP="${KAFKA_BOOTSTRAP:-127.0.0.1:${KAFKA_PORT:-9092}}"
export DATABASE_URL="${DATABASE_URL:-postgresql://recovery:recovery@127.0.0.1:${PG_PORT:-55432}/recovery}"
# (status read whole first: grep -q stopping early would fail the pipe under pipefail)
status="$("$DEPLOY_DIR/stack.sh" status 2>/dev/null || true)"
if ! grep -q '^notifier: running' <<<"$status"; then
  started=1
else
  previous="$("$DEPLOY_DIR/stack.sh" mode)"
fi
cleanup() {
  if [[ -n "$started" ]]; then
    "$DEPLOY_DIR/stack.sh" down
  elif [[ -n "$previous" && "$previous" != "SIMULATED_CLOCK=1" ]]; then
    SWITCH_MODE=1 env "$previous" "$DEPLOY_DIR/stack.sh" up
  fi
}
trap cleanup EXIT
SIMULATED_CLOCK=1 SWITCH_MODE=1 "$DEPLOY_DIR/stack.sh" up
"$@"
