#!/usr/bin/env bash
# The whole local stack: PostgreSQL, Kafka, Keycloak (the development identity provider),
# topics, and the four Python services.
#
# usage: deploy/stack.sh {up|down|clean|status}
#   up      install what is missing, start everything not yet running, create topics,
#           return once every service answers /readyz (idempotent)
#   down    stop the services, then Kafka and PostgreSQL; data stays under .run/
#   clean   down, then delete .run/
#   status  one line per component
#
# env: the contract's (API_TOKEN, SIMULATED_CLOCK, KAFKA_BOOTSTRAP, DATABASE_URL,
#      TWILIO_*, PUBLIC_BASE_URL) plus INGEST_PORT, ASSESSOR_PORT, NOTIFIER_PORT,
#      SANDBOX_PORT, READY_TIMEOUT (120 s), SWITCH_MODE (1: restart running services
#      whose SIMULATED_CLOCK differs, instead of refusing), KEYCLOAK_PORT (8180),
#      KEYCLOAK_MANAGEMENT_PORT (9000), OIDC_ISSUER (the local Keycloak's realm hfs),
#      CONSOLE_PORT (8083), CONSOLE_COOKIE_SECURE (1; 0 allows the session cookie over
#      plain http, development only), CONSOLE_SECRET_KEY [generated into .run/].
set -euo pipefail

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# The console last: it calls ingest, the assessor and the notifier for the signed-in user.
SERVICES=(sandbox ingest assessor notifier console)
READY_TIMEOUT="${READY_TIMEOUT:-120}"
PY="$REPO_ROOT/.venv/bin/python"
cd "$REPO_ROOT"

export INGEST_PORT="${INGEST_PORT:-8080}" ASSESSOR_PORT="${ASSESSOR_PORT:-8081}"
export NOTIFIER_PORT="${NOTIFIER_PORT:-8082}" SANDBOX_PORT="${SANDBOX_PORT:-8090}"
export CONSOLE_PORT="${CONSOLE_PORT:-8083}"
export SIMULATED_CLOCK="${SIMULATED_CLOCK:-0}"
export KAFKA_BOOTSTRAP="${KAFKA_BOOTSTRAP:-127.0.0.1:${KAFKA_PORT:-9092}}"
export DATABASE_URL="${DATABASE_URL:-postgresql://recovery:recovery@127.0.0.1:${PG_PORT:-55432}/recovery}"
export TWILIO_API_BASE_URL="${TWILIO_API_BASE_URL:-http://127.0.0.1:$SANDBOX_PORT}"
export PUBLIC_BASE_URL="${PUBLIC_BASE_URL:-http://127.0.0.1:$INGEST_PORT}"
export ASSESSOR_DATA_DIR="${ASSESSOR_DATA_DIR:-$RUN_DIR/assessor}"
# The audit trail is written by its own role (insert-only: audit.append), same database.
export AUDIT_DATABASE_URL="${AUDIT_DATABASE_URL:-$(
  python3 -c 'import sys, urllib.parse as u; p = u.urlsplit(sys.argv[1]); print(p._replace(netloc="hfs_audit_writer:hfs_audit_writer@" + p.netloc.rpartition("@")[2]).geturl())' "$DATABASE_URL"
)}"
export KEYCLOAK_PORT="${KEYCLOAK_PORT:-8180}"
export OIDC_ISSUER="${OIDC_ISSUER:-http://127.0.0.1:$KEYCLOAK_PORT/realms/hfs}"

module_of() { case "$1" in sandbox) echo sms_sandbox ;; *) echo "$1" ;; esac; }
port_of() {
  case "$1" in
    sandbox) echo "$SANDBOX_PORT" ;; ingest) echo "$INGEST_PORT" ;;
    assessor) echo "$ASSESSOR_PORT" ;; notifier) echo "$NOTIFIER_PORT" ;;
    console) echo "$CONSOLE_PORT" ;;
  esac
}

# The API token: API_TOKEN if set, else one generated once for local runs.
api_token() {
  if [[ -n "${API_TOKEN:-}" ]]; then return; fi
  local f="$RUN_DIR/api-token"
  if [[ ! -s "$f" ]]; then
    (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$f")
  fi
  API_TOKEN="$(<"$f")"
  export API_TOKEN
}

# The master key that wraps patients' data keys (MASTER_KEY, base64 of 32 bytes): if not
# set, one generated once for local runs into .run/master-key (production refuses the
# built-in development key, and needs its own from a secret store).
master_key() {
  export KEY_SERVICE_URL="${KEY_SERVICE_URL:-http://127.0.0.1:$INGEST_PORT}"
  # The stores an erasure waits for: the console's only where the stack runs it.
  local stores="ingest,assessor,notifier,provider"
  [[ " ${SERVICES[*]} " == *" console "* ]] && stores+=",console"
  export ERASURE_STORES="${ERASURE_STORES:-$stores}"
  if [[ -n "${MASTER_KEY:-}" ]]; then return; fi
  local f="$RUN_DIR/master-key"
  if [[ ! -s "$f" ]]; then
    (umask 077; head -c 32 /dev/urandom | base64 >"$f")
  fi
  MASTER_KEY="$(<"$f")"
  export MASTER_KEY
}

# SERVICE_CLIENT_ID/SECRET of a service that fetches data keys (its Keycloak client, from
# .run/keycloak/service-clients.json), unless set already; nothing for the others.
service_credentials() {
  local file="$RUN_DIR/keycloak/service-clients.json"
  case "$1" in assessor | notifier | console) ;; *) return 0 ;; esac
  [[ -n "${SERVICE_CLIENT_ID:-}" || ! -s "$file" ]] && return 0
  local id="hfs-$1"
  [[ "$1" == console ]] && id=hfs-console-service  # hfs-console is its sign-in client
  echo "SERVICE_CLIENT_ID=$id SERVICE_CLIENT_SECRET=$(json_secret "$file" "$id")"
}

json_secret() {
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

# The console's environment: the services it calls, its session key (generated once) and
# the realm's generated secret of its OIDC client (written by keycloak.sh start).
console_env() {
  export CONSOLE_INGEST_URL="${CONSOLE_INGEST_URL:-http://127.0.0.1:$INGEST_PORT}"
  export CONSOLE_ASSESSOR_URL="${CONSOLE_ASSESSOR_URL:-http://127.0.0.1:$ASSESSOR_PORT}"
  export CONSOLE_NOTIFIER_URL="${CONSOLE_NOTIFIER_URL:-http://127.0.0.1:$NOTIFIER_PORT}"
  export CONSOLE_ASSETS_DIR="${CONSOLE_ASSETS_DIR:-$RUN_DIR/assets}"
  export CONSOLE_COOKIE_SECURE="${CONSOLE_COOKIE_SECURE:-1}"
  if [[ -z "${CONSOLE_SECRET_KEY:-}" ]]; then
    local f="$RUN_DIR/console-secret-key"
    [[ -s "$f" ]] || (umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$f")
    CONSOLE_SECRET_KEY="$(<"$f")"
    export CONSOLE_SECRET_KEY
  fi
  if [[ -z "${CONSOLE_OIDC_CLIENT_SECRET:-}" && -s "$RUN_DIR/keycloak/clients.json" ]]; then
    CONSOLE_OIDC_CLIENT_SECRET="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["clients"]["hfs-console"]["client_secret"])' "$RUN_DIR/keycloak/clients.json")"
    export CONSOLE_OIDC_CLIENT_SECRET
  fi
}

# The demo clinician a newcomer signs in with (from .run/demo-users.json).
demo_clinician() {
  python3 - "$RUN_DIR/demo-users.json" <<'EOF'
import json, sys
try:
    users = json.load(open(sys.argv[1]))
except (OSError, ValueError):
    sys.exit(0)
for u in users:
    if "clinician" in u["roles"]:
        print(f"{u['username']} / {u['password']} (team {', '.join(u['teams'])})")
        break
EOF
}

python_deps() {
  local uv=(uv)
  if ! command -v uv >/dev/null; then
    uv=(python3 -m uv)
    if ! "${uv[@]}" --version >/dev/null 2>&1; then
      log "installing uv (pip)"
      python3 -m pip install --quiet uv 2>/dev/null || python3 -m pip install --quiet --user uv
    fi
  fi
  (cd "$REPO_ROOT" && "${uv[@]}" sync --frozen --quiet)
}

running_pid() {
  local pid
  pid="$(read_pid "$PID_DIR/$1.pid")" || return 1
  pid_alive "$pid" && [[ "$(ps -o args= -p "$pid")" == *"-m $(module_of "$1")"* ]] && echo "$pid"
}

start_service() {
  local name=$1 module port
  module="$(module_of "$name")"
  port="$(port_of "$name")"
  if running_pid "$name" >/dev/null; then return 0; fi
  port_open 127.0.0.1 "$port" && die "port $port is in use by another process ($name)"
  rm -f "$PID_DIR/$name.pid"
  # Own session and no inherited descriptors: the caller's terminal or CI job never holds it.
  # shellcheck disable=SC2016  # $$ belongs to the inner sh
  setsid sh -c 'echo $$ >"$0"; exec "$@"' "$PID_DIR/$name.pid" \
    env $(service_credentials "$name") "$PY" -m "$module" >>"$LOG_DIR/$name.log" 2>&1 </dev/null &
  for _ in $(seq 50); do [[ -s "$PID_DIR/$name.pid" ]] && break; sleep 0.1; done
  log "$name started (pid $(read_pid "$PID_DIR/$name.pid")), log: $LOG_DIR/$name.log"
}

wait_ready() {
  local name=$1 port deadline=$((SECONDS + READY_TIMEOUT)) retries=5
  port="$(port_of "$name")"
  until curl -fs -o /dev/null "http://127.0.0.1:$port/readyz"; do
    if ! running_pid "$name" >/dev/null; then
      # Our ports lie in the kernel's ephemeral range, so another process's outgoing
      # connection can hold one for a moment: start again rather than give up.
      if ((retries-- > 0)) && tail -n 5 "$LOG_DIR/$name.log" | grep -q "address already in use"; then
        log "$name: port $port was taken for a moment; starting it again"
        sleep 1
        start_service "$name"
        continue
      fi
      tail_log "$LOG_DIR/$name.log"
      die "$name exited"
    fi
    ((SECONDS < deadline)) || { tail_log "$LOG_DIR/$name.log"; die "$name not ready after ${READY_TIMEOUT}s"; }
    sleep 0.5
  done
}

stop_service() {
  local name=$1 pid
  pid="$(running_pid "$name")" || { rm -f "$PID_DIR/$name.pid"; return 0; }
  kill -TERM "$pid"
  for _ in $(seq 40); do pid_alive "$pid" || break; sleep 0.25; done
  if pid_alive "$pid"; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$PID_DIR/$name.pid"
  log "$name stopped"
}

# The environment the running services were started with; a second `up` with another
# SIMULATED_CLOCK would silently keep the old one, so refuse instead.
check_mode() {
  local f="$RUN_DIR/stack.mode" want="SIMULATED_CLOCK=$SIMULATED_CLOCK"
  local any=""
  for s in "${SERVICES[@]}"; do running_pid "$s" >/dev/null && any=1; done
  if [[ -n "$any" && -f "$f" && "$(<"$f")" != "$want" ]]; then
    [[ "${SWITCH_MODE:-0}" == 1 ]] ||
      die "the stack runs with $(<"$f"); run 'make down' before starting it with $want"
    log "switching the services from $(<"$f") to $want"
    for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do stop_service "${SERVICES[i]}"; done
  fi
  echo "$want" >"$f"
}

up() {
  command -v curl >/dev/null || die "curl is required"
  python_deps
  api_token
  master_key
  check_mode
  # Keycloak first: it takes longest to start, and meanwhile the rest comes up.
  "$DEPLOY_DIR/keycloak.sh" start
  "$DEPLOY_DIR/postgres.sh" install
  "$DEPLOY_DIR/postgres.sh" start
  "$DEPLOY_DIR/kafka.sh" start
  "$DEPLOY_DIR/postgres.sh" wait
  "$DEPLOY_DIR/kafka.sh" wait
  (cd "$REPO_ROOT" && "$PY" -m shared.topics >>"$LOG_DIR/topics.log" 2>&1) ||
    { tail_log "$LOG_DIR/topics.log"; die "creating topics failed"; }
  "$DEPLOY_DIR/keycloak.sh" wait
  "$DEPLOY_DIR/npm-assets.sh"
  console_env
  for s in "${SERVICES[@]}"; do start_service "$s"; done
  for s in "${SERVICES[@]}"; do wait_ready "$s"; done
  log "ready: ingest :$INGEST_PORT, assessor :$ASSESSOR_PORT, notifier :$NOTIFIER_PORT, sandbox :$SANDBOX_PORT (token in $RUN_DIR/api-token), identity provider $OIDC_ISSUER (demo users in $RUN_DIR/demo-users.json)"
  log "care-team console: http://127.0.0.1:$CONSOLE_PORT/ — sign in as $(demo_clinician)"
}

down() {
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do stop_service "${SERVICES[i]}"; done
  "$DEPLOY_DIR/kafka.sh" stop
  "$DEPLOY_DIR/keycloak.sh" stop
  [[ -x "$DEPLOY_DIR/postgres.sh" ]] && "$DEPLOY_DIR/postgres.sh" stop
  return 0
}

status() {
  for s in "${SERVICES[@]}"; do
    if pid="$(running_pid "$s")"; then echo "$s: running (pid $pid, :$(port_of "$s"))"
    else echo "$s: stopped"; fi
  done
  "$DEPLOY_DIR/kafka.sh" status || true
  "$DEPLOY_DIR/keycloak.sh" status || true
  "$DEPLOY_DIR/postgres.sh" status || true
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  clean)
    down
    # A cluster kept outside the checkout (see postgres.sh) goes too.
    if [[ -L "$RUN_DIR/postgres" ]]; then rm -rf "$(readlink "$RUN_DIR/postgres")"; fi
    rm -rf "$RUN_DIR"
    log "removed $RUN_DIR"
    ;;
  status) status ;;
  mode) cat "$RUN_DIR/stack.mode" 2>/dev/null || true ;;
  *) echo "usage: $0 {up|down|clean|status}" >&2; exit 2 ;;
esac
