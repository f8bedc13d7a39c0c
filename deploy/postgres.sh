#!/usr/bin/env bash
# Private local PostgreSQL cluster for dev/CI (not the system one).
#
# usage: deploy/postgres.sh {install|start|stop|status|wait|url}
#   install  apt-get install postgresql if no server binaries are found
#   start    install if needed, initdb once, start on 127.0.0.1:$PG_PORT and
#            make sure role + database $PG_DATABASE exist (idempotent; only the
#            role/database check runs if already running). Returns once the
#            server accepts connections.
#   wait     block until it accepts TCP connections (PG_WAIT_TIMEOUT, 30 s)
#   stop     fast shutdown; no-op if not running
#   status   print state; exit 0 if running, 3 if not
#   url      print the DATABASE_URL
#
# env: RUN_DIR (<repo>/.run), PG_PORT (55432), PG_DATABASE (recovery: also the
#      role name and its password), PG_BIN (newest /usr/lib/postgresql/*/bin,
#      else pg_ctl's dir on PATH), PG_WAIT_TIMEOUT (30)
#
# As root the server runs as the `postgres` OS user (PostgreSQL refuses root),
# otherwise as the current user. The superuser role `postgres` is trusted on
# the unix socket only ($RUN_DIR/postgres/sock, mode 0700); TCP connections
# need a password (scram-sha-256).
set -euo pipefail
# shellcheck source-path=SCRIPTDIR

# shellcheck source=lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_PORT="${PG_PORT:-55432}"
PG_DATABASE="${PG_DATABASE:-recovery}"
PG_WAIT_TIMEOUT="${PG_WAIT_TIMEOUT:-30}"

PG_DIR="$RUN_DIR/postgres"
LOG_FILE="$LOG_DIR/postgres.log"
# As root the server runs as 'postgres', which must be able to reach its directory. When the
# checkout sits where it cannot (under /root, say), keep the cluster under /var/tmp instead,
# one per checkout, and link it from .run/ for humans.
if ((EUID == 0)) && id postgres >/dev/null 2>&1 &&
   ! runuser -u postgres -- test -x "$RUN_DIR" 2>/dev/null; then
  PG_DIR="/var/tmp/hfs-postgres-$(printf '%s' "$RUN_DIR" | cksum | cut -d' ' -f1)"
  LOG_FILE="$PG_DIR/postgres.log"
  mkdir -p "$PG_DIR"
  ln -sfn "$PG_DIR" "$RUN_DIR/postgres"
  ln -sfn "$LOG_FILE" "$LOG_DIR/postgres.log"
fi
DATA_DIR="$PG_DIR/data"
SOCK_DIR="$PG_DIR/sock"
PID_FILE="$PID_DIR/postgres.pid"   # copy of postmaster.pid's pid, for humans
DATABASE_URL="postgresql://$PG_DATABASE:$PG_DATABASE@127.0.0.1:$PG_PORT/$PG_DATABASE"

# Print the directory holding postgres/pg_ctl/initdb; fail if there is none.
pg_bin() {
  local d="${PG_BIN:-}"
  if [[ -z "$d" ]]; then
    # Debian layout; the newest major version wins.
    d="$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' \
           2>/dev/null | sort -V | tail -n 1)"
    d="${d%/postgres}"
    if [[ -z "$d" ]] && command -v pg_ctl >/dev/null; then
      d="$(dirname "$(command -v pg_ctl)")"
    fi
  fi
  [[ -n "$d" && -x "$d/postgres" && -x "$d/pg_ctl" ]] && echo "$d"
}

# Run a command as the server's OS user (from /, so its cwd is readable).
as_pg() {
  if ((EUID == 0)); then
    (cd / && runuser -u postgres -- "$@")
  else
    "$@"
  fi
}

install() {
  pg_bin >/dev/null && return 0
  local -a sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || die "PostgreSQL is not installed and sudo is unavailable"
    sudo=(sudo)
  fi
  local apt_log="$LOG_DIR/postgres-install.log"
  log "installing PostgreSQL with apt-get (log: $apt_log)"
  local -a apt=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql)
  # Only refresh the package lists if the install fails without it.
  { "${apt[@]}" || { "${sudo[@]}" apt-get update -q && "${apt[@]}"; }; } >"$apt_log" 2>&1 ||
    { tail_log "$apt_log"; die "apt-get install postgresql failed"; }
  # The package creates (and, given an init system, starts) a system cluster
  # "main" on port 5432. We don't use it: stop it and turn off its autostart.
  local conf ver
  for conf in /etc/postgresql/*/main/start.conf; do
    [[ -f "$conf" ]] || continue
    ver="$(basename "$(dirname "$(dirname "$conf")")")"
    "${sudo[@]}" pg_ctlcluster "$ver" main stop >/dev/null 2>&1 || true
    echo manual | "${sudo[@]}" tee "$conf" >/dev/null || true
  done
  pg_bin >/dev/null || die "PostgreSQL installed, but no server binaries found"
}

is_running() {
  local bin
  bin="$(pg_bin)" && [[ -f "$DATA_DIR/PG_VERSION" ]] &&
    as_pg "$bin/pg_ctl" status -D "$DATA_DIR" >/dev/null 2>&1
}

# Create the cluster's directories, owned by the server's OS user.
prepare_dirs() {
  # A unix socket path is limited to 107 bytes ("/.s.PGSQL.NNNNN" is appended).
  ((${#SOCK_DIR} + 16 <= 107)) || die "socket path too long: $SOCK_DIR (use a shorter RUN_DIR)"
  mkdir -p "$DATA_DIR" "$SOCK_DIR"
  chmod 700 "$DATA_DIR" "$SOCK_DIR"
  touch "$LOG_FILE"
  if ((EUID == 0)); then
    id postgres >/dev/null 2>&1 || die "no 'postgres' OS user to run the server as"
    chown -R postgres: "$PG_DIR" "$LOG_FILE"
    # Every parent directory of $RUN_DIR must be traversable (o+x) by it.
    as_pg test -w "$DATA_DIR" -a -w "$LOG_FILE" ||
      die "OS user 'postgres' cannot reach $PG_DIR (a parent directory lacks o+x?); fix the permissions or point RUN_DIR elsewhere, e.g. RUN_DIR=/tmp/recovery-run"
  fi
}

init_cluster() {
  [[ -f "$DATA_DIR/PG_VERSION" ]] && return 0
  log "initdb $DATA_DIR"
  as_pg "$1/initdb" -D "$DATA_DIR" -U postgres -E UTF8 --no-locale \
    --auth-local=trust --auth-host=scram-sha-256 >>"$LOG_FILE" 2>&1 ||
    { tail_log "$LOG_FILE"; die "initdb failed"; }
  # Our settings live in deploy.conf, rewritten on every start.
  echo "include 'deploy.conf'" >>"$DATA_DIR/postgresql.conf"
}

write_conf() {
  cat >"$DATA_DIR/deploy.conf" <<EOF
# Written by deploy/postgres.sh on every start; edits are overwritten.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$SOCK_DIR'
# ingest alone may hold 32 (INGEST_DB_POOL_SIZE), the tests open scratch databases too.
max_connections = 200
EOF
  if ((EUID == 0)); then chown postgres: "$DATA_DIR/deploy.conf"; fi
}

# Idempotent: create the role and database if missing, (re)set the password.
ensure_database() {
  "$1/psql" -X -q -v ON_ERROR_STOP=1 -h "$SOCK_DIR" -p "$PG_PORT" -U postgres \
    -d postgres -v name="$PG_DATABASE" >/dev/null <<'SQL'
SELECT format('CREATE ROLE %I LOGIN', :'name')
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'name') \gexec
-- CREATEDB: integration tests make a scratch database each, isolated from the running stack.
SELECT format('ALTER ROLE %I LOGIN CREATEDB PASSWORD %L', :'name', :'name') \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'name', :'name')
  WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'name') \gexec
-- The audit trail's writer: it may only execute audit.append() (granted by the audit
-- migration); its password is the development default, which production refuses.
SELECT 'CREATE ROLE hfs_audit_writer LOGIN'
  WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'hfs_audit_writer') \gexec
ALTER ROLE hfs_audit_writer LOGIN NOCREATEDB PASSWORD 'hfs_audit_writer';
SQL
}

start() {
  install
  local bin
  bin="$(pg_bin)"
  if is_running; then
    log "already running"
  else
    port_open 127.0.0.1 "$PG_PORT" &&
      die "port $PG_PORT is already in use by another process (set PG_PORT?)"
    prepare_dirs
    init_cluster "$bin"
    write_conf
    as_pg "$bin/pg_ctl" start -D "$DATA_DIR" -l "$LOG_FILE" -w -t 60 -s ||
      { tail_log "$LOG_FILE"; die "PostgreSQL failed to start"; }
    log "started on 127.0.0.1:$PG_PORT, log: $LOG_FILE"
  fi
  head -n 1 "$DATA_DIR/postmaster.pid" >"$PID_FILE"
  ensure_database "$bin" || die "could not create role/database $PG_DATABASE"
}

stop() {
  if is_running; then
    as_pg "$(pg_bin)/pg_ctl" stop -D "$DATA_DIR" -m fast -w -t 60 -s
    log "stopped"
  else
    log "not running"
  fi
  rm -f "$PID_FILE"
}

status() {
  if is_running; then
    echo "postgres: running (pid $(head -n 1 "$DATA_DIR/postmaster.pid"), $DATABASE_URL)"
  else
    echo "postgres: stopped"
    return 3
  fi
}

wait_ready() {
  local bin deadline=$((SECONDS + PG_WAIT_TIMEOUT))
  bin="$(pg_bin)" || die "PostgreSQL is not installed"
  until "$bin/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT"; do
    if ((SECONDS >= deadline)); then
      tail_log "$LOG_FILE"
      die "PostgreSQL not ready on 127.0.0.1:$PG_PORT after ${PG_WAIT_TIMEOUT}s"
    fi
    sleep 0.5
  done
  log "ready on 127.0.0.1:$PG_PORT"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  wait) wait_ready ;;
  url) echo "$DATABASE_URL" ;;
  *) echo "usage: $0 {install|start|stop|status|wait|url}" >&2; exit 2 ;;
esac
