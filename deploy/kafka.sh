#!/usr/bin/env bash
# Local single-node Kafka (KRaft, no ZooKeeper) run from jars fetched by Maven.
#
# The broker is locked: clients speak SASL_SSL (TLS + SCRAM-SHA-512) and the
# StandardAuthorizer denies what no ACL allows (deploy/kafka/server.properties).
#
# usage: deploy/kafka.sh {fetch|secrets|start|stop|status|wait|provision}
#   fetch     download Kafka $KAFKA_VERSION (deploy/versions.env) into
#             $RUN_DIR/kafka/libs, unless already there
#   secrets   generate what is missing under $RUN_DIR/kafka: a CA and the broker's
#             certificate (tls/; SAN 127.0.0.1 and localhost; renewed when it expires
#             within 30 days or no longer matches the CA), one password per principal
#             (credentials/<principal>, 0600); never overwrites a valid one
#   start     secrets, fetch if needed, format storage once, start the broker in the
#             background (no-op if already running); does not wait, use `wait`
#   wait      block until the broker is up (KAFKA_WAIT_TIMEOUT, default 60 s), then
#             provision
#   provision apply the SCRAM logins and ACLs (shared/kafka_security.py) if they
#             changed since the last time (through the INTERNAL listener, with the
#             node's certificate: works on storage from an older plaintext run too)
#   stop    TERM, then KILL after 30 s; no-op if not running
#   status  print state; exit 0 if running, 3 if not
#
# env: RUN_DIR (<repo>/.run), KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093),
#      KAFKA_INTERNAL_PORT (KAFKA_PORT + 2: the node's own mTLS listener),
#      KAFKA_HEAP_OPTS (-Xms256m -Xmx512m), KAFKA_JVM_OPTS (extra JVM flags),
#      JAVA_HOME / JAVA (java on PATH), KAFKA_WAIT_TIMEOUT (60)
set -euo pipefail
# shellcheck source-path=SCRIPTDIR

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
# The broker's own TLS listener (inter-broker, provisioning): next to the client port.
KAFKA_INTERNAL_PORT="${KAFKA_INTERNAL_PORT:-$((KAFKA_PORT + 2))}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:-}"
KAFKA_WAIT_TIMEOUT="${KAFKA_WAIT_TIMEOUT:-60}"

KAFKA_DIR="$RUN_DIR/kafka"
LIBS="$KAFKA_DIR/libs"
MARKER="$LIBS/.kafka-$KAFKA_VERSION"     # present once a fetch completed
DATA_DIR="$KAFKA_DIR/data"
PROPS="$KAFKA_DIR/server.properties"
PID_FILE="$PID_DIR/kafka.pid"
TLS_DIR="$KAFKA_DIR/tls"
CRED_DIR="$KAFKA_DIR/credentials"
PROVISIONED="$KAFKA_DIR/provisioned"     # digest of the logins and ACLs last applied
PY="$REPO_ROOT/.venv/bin/python"
LOG_FILE="$LOG_DIR/kafka.log"

java_bin() {
  if [[ -n "${JAVA:-}" ]]; then echo "$JAVA"
  elif [[ -n "${JAVA_HOME:-}" ]]; then echo "$JAVA_HOME/bin/java"
  else command -v java || die "java not found (install a JDK 17+ or set JAVA_HOME)"
  fi
}

# Pid of our broker, if it is running (pid file + a live kafka.Kafka process).
running_pid() {
  local pid
  pid="$(read_pid "$PID_FILE")" || return 1
  pid_alive "$pid" && [[ "$(ps -o args= -p "$pid")" == *kafka.Kafka* ]] && echo "$pid"
}

fetch() {
  [[ -f "$MARKER" ]] && return 0
  running_pid >/dev/null && die "Kafka is running on other jars; stop it before fetching $KAFKA_VERSION"
  command -v mvn >/dev/null || die "mvn not found (needed to download Kafka)"
  log "fetching Kafka $KAFKA_VERSION into $LIBS (log: $LOG_DIR/kafka-fetch.log)"
  # Download into a scratch dir and swap it in, so an interrupted fetch or a
  # version change never leaves a mix of jars behind.
  rm -rf "$LIBS.tmp"
  if ! mvn -B -q -f "$DEPLOY_DIR/kafka/pom.xml" dependency:copy-dependencies \
      -Dkafka.version="$KAFKA_VERSION" -DoutputDirectory="$LIBS.tmp" \
      >"$LOG_DIR/kafka-fetch.log" 2>&1; then
    tail_log "$LOG_DIR/kafka-fetch.log"
    die "maven could not fetch Kafka $KAFKA_VERSION"
  fi
  rm -rf "$LIBS"
  mv "$LIBS.tmp" "$LIBS"
  touch "$MARKER"
}

# A random secret: 32 hex characters.
random_secret() { head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'; }

principals() {
  [[ -x "$PY" ]] || die "$PY missing (make install)"
  (cd "$REPO_ROOT" && "$PY" -m shared.kafka_security principals)
}

# The CA, the broker's certificate and keystore, one password per principal.
secrets() {
  command -v openssl >/dev/null || die "openssl not found (needed for the broker's TLS)"
  mkdir -p "$TLS_DIR" "$CRED_DIR"
  chmod 700 "$TLS_DIR" "$CRED_DIR"
  local old_umask
  old_umask="$(umask)"
  umask 077
  if [[ ! -s "$TLS_DIR/ca.key" || ! -s "$TLS_DIR/ca.crt" ]] ||
      ! openssl x509 -in "$TLS_DIR/ca.crt" -noout -checkend 2592000 >/dev/null 2>&1; then
    log "generating the local Kafka CA in $TLS_DIR"
    openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 1825 \
      -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.crt" -subj "/CN=hfs local Kafka CA" \
      -addext "basicConstraints=critical,CA:TRUE" \
      -addext "keyUsage=critical,keyCertSign,cRLSign" >/dev/null 2>&1 ||
      die "openssl could not create the CA"
    rm -f "$TLS_DIR/broker.crt"
  fi
  [[ -s "$TLS_DIR/keystore.password" ]] || random_secret >"$TLS_DIR/keystore.password"
  if [[ ! -s "$TLS_DIR/broker.crt" || ! -s "$TLS_DIR/broker.p12" ]] ||
      ! openssl verify -CAfile "$TLS_DIR/ca.crt" "$TLS_DIR/broker.crt" >/dev/null 2>&1 ||
      ! openssl x509 -in "$TLS_DIR/broker.crt" -noout -checkend 2592000 >/dev/null 2>&1; then
    log "issuing the broker's certificate (CN=broker, SAN 127.0.0.1, localhost)"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" \
      "extendedKeyUsage=serverAuth,clientAuth" \
      "subjectAltName=IP:127.0.0.1,DNS:localhost" \
      "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid,issuer" >"$TLS_DIR/broker.ext"
    openssl req -new -newkey rsa:2048 -nodes -sha256 -keyout "$TLS_DIR/broker.key" \
      -out "$TLS_DIR/broker.csr" -subj "/CN=broker" >/dev/null 2>&1 &&
      openssl x509 -req -sha256 -days 397 -in "$TLS_DIR/broker.csr" -CA "$TLS_DIR/ca.crt" \
        -CAkey "$TLS_DIR/ca.key" -CAcreateserial -extfile "$TLS_DIR/broker.ext" \
        -out "$TLS_DIR/broker.crt" >/dev/null 2>&1 &&
      openssl pkcs12 -export -in "$TLS_DIR/broker.crt" -inkey "$TLS_DIR/broker.key" \
        -certfile "$TLS_DIR/ca.crt" -name broker -out "$TLS_DIR/broker.p12" \
        -passout "file:$TLS_DIR/keystore.password" >/dev/null 2>&1 ||
      die "openssl could not issue the broker's certificate"
    rm -f "$TLS_DIR/broker.csr"
  fi
  local p
  for p in $(principals); do
    [[ -s "$CRED_DIR/$p" ]] || random_secret >"$CRED_DIR/$p"
  done
  umask "$old_umask"
}

# The client properties of the provisioning tool: the INTERNAL listener, with the node's
# certificate (the principal broker, a super user).
admin_config() {
  local f="$KAFKA_DIR/provision.properties"
  (umask 077; printf '%s\n' \
    "bootstrap.servers=127.0.0.1:$KAFKA_INTERNAL_PORT" \
    "security.protocol=SSL" \
    "ssl.keystore.type=PKCS12" \
    "ssl.keystore.location=$TLS_DIR/broker.p12" \
    "ssl.keystore.password=$(<"$TLS_DIR/keystore.password")" \
    "ssl.truststore.type=PEM" \
    "ssl.truststore.location=$TLS_DIR/ca.crt" >"$f")
  echo "$f"
}

provision() {
  local acls digest java
  acls="$(cd "$REPO_ROOT" && "$PY" -m shared.kafka_security acls)" || die "cannot list the ACLs"
  printf '%s\n' "$acls" >"$KAFKA_DIR/acls.txt"
  # What was applied, to this cluster: the ACLs and every login (names and passwords).
  digest="$( { cat "$KAFKA_DIR/cluster.id" "$KAFKA_DIR/acls.txt"; \
    for f in "$CRED_DIR"/*; do echo "${f##*/}"; cat "$f"; done; } | sha256sum | cut -d' ' -f1)"
  if [[ -f "$PROVISIONED" && "$(<"$PROVISIONED")" == "$digest" ]]; then return 0; fi
  java="$(java_bin)"
  log "applying the SCRAM logins and ACLs (log: $LOG_DIR/kafka-provision.log)"
  if ! "$java" -cp "$LIBS/*" -Dlog4j2.configurationFile="$DEPLOY_DIR/kafka/log4j2.xml" \
      "$DEPLOY_DIR/kafka/Provision.java" "$(admin_config)" "$CRED_DIR" "$KAFKA_DIR/acls.txt" \
      >"$LOG_DIR/kafka-provision.log" 2>&1; then
    tail_log "$LOG_DIR/kafka-provision.log"
    die "provisioning the Kafka logins and ACLs failed"
  fi
  echo "$digest" >"$PROVISIONED"
  log "$(grep -E '^(logins|acls):' "$LOG_DIR/kafka-provision.log" | tr '\n' ' ')"
}

# Render deploy/kafka/server.properties (its @NAME@ placeholders) for this run.
write_props() {
  local p
  p="$(<"$DEPLOY_DIR/kafka/server.properties")"
  p="${p//@KAFKA_PORT@/"$KAFKA_PORT"}"
  p="${p//@KAFKA_CONTROLLER_PORT@/"$KAFKA_CONTROLLER_PORT"}"
  p="${p//@KAFKA_DATA_DIR@/"$DATA_DIR"}"
  p="${p//@KAFKA_TLS_DIR@/"$TLS_DIR"}"
  p="${p//@KAFKA_KEYSTORE_PASSWORD@/"$(<"$TLS_DIR/keystore.password")"}"
  p="${p//@KAFKA_INTERNAL_PORT@/"$KAFKA_INTERNAL_PORT"}"
  (umask 077; printf '%s\n' "$p" >"$PROPS")
}

# Format the KRaft storage once; the cluster id is generated once and kept.
format_storage() {
  [[ -f "$DATA_DIR/meta.properties" ]] && return 0
  local java id_file="$KAFKA_DIR/cluster.id"
  java="$(java_bin)"
  if [[ ! -s "$id_file" ]]; then
    "$java" -cp "$LIBS/*" kafka.tools.StorageTool random-uuid >"$id_file.tmp"
    mv "$id_file.tmp" "$id_file"
  fi
  log "formatting $DATA_DIR (cluster id $(<"$id_file"))"
  "$java" -cp "$LIBS/*" kafka.tools.StorageTool format \
    -t "$(<"$id_file")" -c "$PROPS" >>"$LOG_FILE" 2>&1 ||
    { tail_log "$LOG_FILE"; die "formatting Kafka storage failed"; }
}

start() {
  if running_pid >/dev/null; then
    log "already running (pid $(running_pid))"
    return 0
  fi
  port_open 127.0.0.1 "$KAFKA_PORT" &&
    die "port $KAFKA_PORT is already in use by another process (set KAFKA_PORT?)"
  port_open 127.0.0.1 "$KAFKA_INTERNAL_PORT" &&
    die "port $KAFKA_INTERNAL_PORT is already in use by another process (set KAFKA_INTERNAL_PORT?)"
  fetch
  secrets
  mkdir -p "$DATA_DIR"
  write_props
  # One log per run; the previous one is kept as kafka.log.1.
  [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.1"
  format_storage

  local java
  java="$(java_bin)"
  rm -f "$PID_FILE"
  # log4j2's own shutdown hook would stop logging while Kafka's hook is still
  # shutting down (losing those lines), hence shutdownHookEnabled=false.
  # setsid: own session, so Ctrl-C / CI job control of the caller doesn't hit
  # it. The inner sh writes its own pid and then execs java, so the pid file
  # holds the JVM's pid whether or not setsid had to fork.
  # shellcheck disable=SC2016,SC2086  # $$ is for the inner sh; opts are word lists
  setsid sh -c 'echo $$ >"$0"; exec "$@"' "$PID_FILE" \
    "$java" -server $KAFKA_HEAP_OPTS \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true -Dlog4j2.shutdownHookEnabled=false \
    -Dlog4j2.configurationFile="$DEPLOY_DIR/kafka/log4j2.xml" \
    $KAFKA_JVM_OPTS \
    -cp "$LIBS/*" kafka.Kafka "$PROPS" \
    >>"$LOG_FILE" 2>&1 </dev/null &
  for _ in $(seq 50); do [[ -s "$PID_FILE" ]] && break; sleep 0.1; done
  log "started (pid $(read_pid "$PID_FILE")), log: $LOG_FILE"
}

wait_ready() {
  local pid deadline=$((SECONDS + KAFKA_WAIT_TIMEOUT))
  while :; do
    pid="$(running_pid)" || { tail_log "$LOG_FILE"; die "Kafka is not running (exited? see $LOG_FILE)"; }
    # Kafka 4.x opens the client port only once the broker is fully started
    # (it logs "Kafka Server started" at the same moment).
    if port_open 127.0.0.1 "$KAFKA_PORT"; then
      log "ready on 127.0.0.1:$KAFKA_PORT (pid $pid)"
      provision
      return 0
    fi
    if ((SECONDS >= deadline)); then
      tail_log "$LOG_FILE"
      die "Kafka not ready on 127.0.0.1:$KAFKA_PORT after ${KAFKA_WAIT_TIMEOUT}s"
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
    log "still alive after 30s, killing pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 20); do pid_alive "$pid" || break; sleep 0.25; done
  fi
  rm -f "$PID_FILE"
  log "stopped"
}

status() {
  local pid
  if pid="$(running_pid)"; then
    echo "kafka: running (pid $pid, 127.0.0.1:$KAFKA_PORT, Kafka $KAFKA_VERSION)"
  else
    echo "kafka: stopped"
    return 3
  fi
}

case "${1:-}" in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  wait) wait_ready ;;
  secrets) secrets ;;
  provision) provision ;;
  *) echo "usage: $0 {fetch|secrets|start|stop|status|wait|provision}" >&2; exit 2 ;;
esac
