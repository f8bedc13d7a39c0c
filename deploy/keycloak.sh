#!/usr/bin/env bash
# Local Keycloak (the development identity provider), run from the server distribution that
# Maven fetches from Maven Central, with realm `hfs` imported from deploy/keycloak/hfs-realm.json.
#
# usage: deploy/keycloak.sh {fetch|start|stop|status|wait}
#   fetch   download and unpack Keycloak $KEYCLOAK_VERSION (deploy/versions.env) into
#           $RUN_DIR/keycloak/dist, unless already there
#   start   fetch if needed; generate the secrets once (demo users' passwords into
#           $RUN_DIR/demo-users.json, client secrets into $RUN_DIR/keycloak/clients.json,
#           the bootstrap admin's password into $RUN_DIR/keycloak/admin-password); render the
#           realm with them; start Keycloak in the background (no-op if already running);
#           does not wait, use `wait`
#   wait    block until the realm answers (KEYCLOAK_WAIT_TIMEOUT, default 300 s)
#   stop    TERM, then KILL after 30 s; no-op if not running
#   status  print state; exit 0 if running, 3 if not
#
# The realm is imported when Keycloak's database has none; when the rendered realm file
# changes (a new client, a new role) the development database is discarded and the realm
# imported again, so a checkout always runs the realm it holds.
#
# env: RUN_DIR (<repo>/.run), KEYCLOAK_PORT (8180), KEYCLOAK_MANAGEMENT_PORT (9000),
#      CONSOLE_PORT (8083: the console's redirect URIs), KEYCLOAK_HEAP (-Xms64m -Xmx512m),
#      JAVA_HOME, KEYCLOAK_WAIT_TIMEOUT (300)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KEYCLOAK_PORT="${KEYCLOAK_PORT:-8180}"
KEYCLOAK_MANAGEMENT_PORT="${KEYCLOAK_MANAGEMENT_PORT:-9000}"
CONSOLE_PORT="${CONSOLE_PORT:-8083}"
KEYCLOAK_HEAP="${KEYCLOAK_HEAP:--Xms64m -Xmx512m}"
KEYCLOAK_WAIT_TIMEOUT="${KEYCLOAK_WAIT_TIMEOUT:-300}"

KC_DIR="$RUN_DIR/keycloak"
KC_HOME="$KC_DIR/dist"
MARKER="$KC_HOME/.keycloak-$KEYCLOAK_VERSION"   # present once a fetch completed
IMPORT_DIR="$KC_HOME/data/import"
REALM_SRC="$DEPLOY_DIR/keycloak/hfs-realm.json"
REALM_SHA="$KC_HOME/data/.realm.sha256"
CLIENTS="$KC_DIR/clients.json"
# The services' own clients (client credentials for ingest's data-key endpoint).
SERVICE_CLIENTS="$KC_DIR/service-clients.json"
ADMIN_PASSWORD="$KC_DIR/admin-password"
DEMO_USERS="$RUN_DIR/demo-users.json"
PID_FILE="$PID_DIR/keycloak.pid"
LOG_FILE="$LOG_DIR/keycloak.log"
ISSUER="http://127.0.0.1:$KEYCLOAK_PORT/realms/hfs"

running_pid() {
  local pid args
  pid="$(read_pid "$PID_FILE")" || return 1
  # kc.sh first, then (after its first build) the JVM it execs in its place.
  pid_alive "$pid" || return 1
  args="$(ps -o args= -p "$pid")"
  [[ "$args" == *"$KC_HOME/bin/kc.sh"* || "$args" == *"-Dkc.home.dir=$KC_HOME/"* ]] && echo "$pid"
}

fetch() {
  [[ -f "$MARKER" ]] && return 0
  running_pid >/dev/null && die "Keycloak is running from another version; stop it before fetching $KEYCLOAK_VERSION"
  command -v mvn >/dev/null || die "mvn not found (needed to download Keycloak)"
  log "fetching Keycloak $KEYCLOAK_VERSION into $KC_HOME (log: $LOG_DIR/keycloak-fetch.log)"
  # Unpack into a scratch dir and swap it in: an interrupted fetch leaves nothing half-done.
  rm -rf "$KC_DIR/dist.tmp" "$KC_DIR/dist.tmp.markers"
  if ! mvn -B -q -f "$DEPLOY_DIR/keycloak/pom.xml" dependency:unpack \
      -Dkeycloak.version="$KEYCLOAK_VERSION" -Dkeycloak.dir="$KC_DIR/dist.tmp" \
      >"$LOG_DIR/keycloak-fetch.log" 2>&1; then
    tail_log "$LOG_DIR/keycloak-fetch.log"
    die "maven could not fetch Keycloak $KEYCLOAK_VERSION"
  fi
  rm -rf "$KC_HOME"
  mv "$KC_DIR/dist.tmp/keycloak-$KEYCLOAK_VERSION" "$KC_HOME"
  rm -rf "$KC_DIR/dist.tmp" "$KC_DIR/dist.tmp.markers"
  touch "$MARKER"
}

secret() { head -c 18 /dev/urandom | base64 | tr '+/' '-_'; }

# The generated secrets, once: they survive restarts (the realm keeps them) until `make clean`.
write_secrets() {
  (
    umask 077
    [[ -s "$ADMIN_PASSWORD" ]] || secret >"$ADMIN_PASSWORD"
    if [[ ! -s "$CLIENTS" ]]; then
      cat >"$CLIENTS.tmp" <<EOF
{"issuer": "$ISSUER",
 "token_endpoint": "$ISSUER/protocol/openid-connect/token",
 "clients": {
  "hfs-console": {"client_id": "hfs-console", "client_secret": "$(secret)"},
  "hfs-integration": {"client_id": "hfs-integration", "client_secret": "$(secret)"},
  "hfs-integration-team-a": {"client_id": "hfs-integration-team-a", "client_secret": "$(secret)"},
  "hfs-reader": {"client_id": "hfs-reader", "client_secret": "$(secret)"},
  "hfs-test": {"client_id": "hfs-test-*", "client_secret": "$(secret)"}
 }}
EOF
      mv "$CLIENTS.tmp" "$CLIENTS"
    fi
    if [[ ! -s "$SERVICE_CLIENTS" ]]; then
      printf '{"hfs-assessor": "%s", "hfs-notifier": "%s", "hfs-console-service": "%s"}\n' \
        "$(secret)" "$(secret)" "$(secret)" >"$SERVICE_CLIENTS.tmp"
      mv "$SERVICE_CLIENTS.tmp" "$SERVICE_CLIENTS"
    fi
    if [[ ! -s "$DEMO_USERS" ]]; then
      cat >"$DEMO_USERS.tmp" <<EOF
[{"username": "ana.clinician", "password": "$(secret)", "roles": ["clinician"], "teams": ["team-a"]},
 {"username": "ben.approver", "password": "$(secret)", "roles": ["clinician", "approver"], "teams": ["team-b"]},
 {"username": "cara.clinician", "password": "$(secret)", "roles": ["clinician"], "teams": ["team-b"]},
 {"username": "olga.operator", "password": "$(secret)", "roles": ["operator"], "teams": []},
 {"username": "adam.admin", "password": "$(secret)", "roles": ["admin"], "teams": []}]
EOF
      mv "$DEMO_USERS.tmp" "$DEMO_USERS"
    fi
  )
}

# json_get FILE KEY...: one string out of a JSON file (python3 is there: the services need it).
json_get() {
  python3 - "$@" <<'EOF'
import json, sys
doc = json.load(open(sys.argv[1]))
for key in sys.argv[2:]:
    doc = doc[int(key)] if isinstance(doc, list) else doc[key]
print(doc)
EOF
}

password_of() {
  python3 - "$DEMO_USERS" "$1" <<'EOF'
import json, sys
print(next(u["password"] for u in json.load(open(sys.argv[1])) if u["username"] == sys.argv[2]))
EOF
}

# Render deploy/keycloak/hfs-realm.json (its @NAME@ placeholders) into Keycloak's import dir.
write_realm() {
  local r
  r="$(<"$REALM_SRC")"
  r="${r//@CONSOLE_PORT@/"$CONSOLE_PORT"}"
  r="${r//@CONSOLE_CLIENT_SECRET@/"$(json_get "$CLIENTS" clients hfs-console client_secret)"}"
  r="${r//@INTEGRATION_SECRET@/"$(json_get "$CLIENTS" clients hfs-integration client_secret)"}"
  r="${r//@INTEGRATION_TEAM_A_SECRET@/"$(json_get "$CLIENTS" clients hfs-integration-team-a client_secret)"}"
  r="${r//@READER_SECRET@/"$(json_get "$CLIENTS" clients hfs-reader client_secret)"}"
  r="${r//@TEST_SECRET@/"$(json_get "$CLIENTS" clients hfs-test client_secret)"}"
  r="${r//@ASSESSOR_SECRET@/"$(json_get "$SERVICE_CLIENTS" hfs-assessor)"}"
  r="${r//@NOTIFIER_SECRET@/"$(json_get "$SERVICE_CLIENTS" hfs-notifier)"}"
  r="${r//@CONSOLE_SERVICE_SECRET@/"$(json_get "$SERVICE_CLIENTS" hfs-console-service)"}"
  r="${r//@PW_ANA@/"$(password_of ana.clinician)"}"
  r="${r//@PW_BEN@/"$(password_of ben.approver)"}"
  r="${r//@PW_CARA@/"$(password_of cara.clinician)"}"
  r="${r//@PW_OLGA@/"$(password_of olga.operator)"}"
  r="${r//@PW_ADAM@/"$(password_of adam.admin)"}"
  mkdir -p "$IMPORT_DIR"
  (umask 077; printf '%s\n' "$r" >"$IMPORT_DIR/hfs-realm.json")
  local sha
  sha="$(sha256sum "$IMPORT_DIR/hfs-realm.json" | cut -d' ' -f1)"
  if [[ -d "$KC_HOME/data/h2" && "$(cat "$REALM_SHA" 2>/dev/null)" != "$sha" ]]; then
    log "the realm file changed: discarding the development database to import it again"
    rm -rf "$KC_HOME/data/h2"
  fi
  echo "$sha" >"$REALM_SHA"
}

start() {
  if running_pid >/dev/null; then
    log "already running (pid $(running_pid))"
    return 0
  fi
  port_open 127.0.0.1 "$KEYCLOAK_PORT" &&
    die "port $KEYCLOAK_PORT is already in use by another process (set KEYCLOAK_PORT?)"
  port_open 127.0.0.1 "$KEYCLOAK_MANAGEMENT_PORT" &&
    die "port $KEYCLOAK_MANAGEMENT_PORT is already in use by another process (set KEYCLOAK_MANAGEMENT_PORT?)"
  fetch
  write_secrets
  write_realm
  [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
  rm -f "$PID_FILE"
  # start-dev: HTTP on loopback, the H2 database under $KC_HOME/data (i.e. under .run/),
  # no build step to run first. The hostname pins the issuer to the contract's URL whatever
  # name a client uses to reach it.
  # shellcheck disable=SC2016  # $$ is for the inner sh
  KC_BOOTSTRAP_ADMIN_USERNAME=admin KC_BOOTSTRAP_ADMIN_PASSWORD="$(<"$ADMIN_PASSWORD")" \
    JAVA_OPTS_KC_HEAP="$KEYCLOAK_HEAP" \
    setsid sh -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
    "$KC_HOME/bin/kc.sh" start-dev \
    --http-host=127.0.0.1 --http-port="$KEYCLOAK_PORT" \
    --http-management-port="$KEYCLOAK_MANAGEMENT_PORT" --health-enabled=true \
    --hostname="http://127.0.0.1:$KEYCLOAK_PORT" \
    --import-realm --log-console-output=default \
    >>"$LOG_FILE" 2>&1 </dev/null &
  for _ in $(seq 50); do [[ -s "$PID_FILE" ]] && break; sleep 0.1; done
  log "started (pid $(read_pid "$PID_FILE")), log: $LOG_FILE"
}

wait_ready() {
  local pid deadline=$((SECONDS + KEYCLOAK_WAIT_TIMEOUT))
  while :; do
    pid="$(running_pid)" || { tail_log "$LOG_FILE"; die "Keycloak is not running (exited? see $LOG_FILE)"; }
    if curl -fs -o /dev/null "http://127.0.0.1:$KEYCLOAK_MANAGEMENT_PORT/health/ready" &&
      curl -fs -o /dev/null "$ISSUER/.well-known/openid-configuration"; then
      log "ready: issuer $ISSUER (pid $pid)"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      tail_log "$LOG_FILE"
      die "Keycloak not ready on 127.0.0.1:$KEYCLOAK_PORT after ${KEYCLOAK_WAIT_TIMEOUT}s"
    fi
    sleep 0.5
  done
}

stop() {
  local pid
  if ! pid="$(running_pid)"; then
    rm -f "$PID_FILE"
    log "not running"
    return 0
  fi
  kill -TERM "$pid"
  for _ in $(seq 60); do pid_alive "$pid" || break; sleep 0.5; done
  if pid_alive "$pid"; then
    log "still alive after 30s, killing pid $pid and its JVM"
    pkill -KILL -P "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PID_FILE"
  log "stopped"
}

status() {
  local pid
  if pid="$(running_pid)"; then
    echo "keycloak: running (pid $pid, $ISSUER, Keycloak $KEYCLOAK_VERSION)"
  else
    echo "keycloak: stopped"
    return 3
  fi
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  wait) wait_ready ;;
  *) echo "usage: $0 {fetch|start|stop|status|wait}" >&2; exit 2 ;;
esac
