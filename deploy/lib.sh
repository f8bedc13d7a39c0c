# shellcheck shell=bash
# shellcheck source-path=SCRIPTDIR
# Shared helpers for deploy/*.sh. Sourced, never run.
#
# Sets: DEPLOY_DIR, REPO_ROOT, RUN_DIR (absolute; default <repo>/.run),
#       LOG_DIR=$RUN_DIR/logs, PID_DIR=$RUN_DIR/pids, plus deploy/versions.env.

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(dirname "$DEPLOY_DIR")"
RUN_DIR="${RUN_DIR:-$REPO_ROOT/.run}"
mkdir -p "$RUN_DIR"
RUN_DIR="$(cd "$RUN_DIR" && pwd)"   # absolute, so a relative RUN_DIR works too
LOG_DIR="$RUN_DIR/logs"
PID_DIR="$RUN_DIR/pids"
mkdir -p "$LOG_DIR" "$PID_DIR"

# shellcheck source=versions.env
. "$DEPLOY_DIR/versions.env"

log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# pid_alive PID: process exists (and is not a zombie).
pid_alive() {
  [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null &&
    [[ "$(ps -o stat= -p "$1" 2>/dev/null)" != Z* ]]
}

# read_pid FILE: print the pid stored in FILE, if any.
read_pid() { [[ -s "$1" ]] && tr -dc '0-9' <"$1"; }

# port_open HOST PORT: something accepts TCP connections there.
port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# tail_log FILE: show the end of a log to explain a failure.
tail_log() {
  [[ -f "$1" ]] || return 0
  log "last lines of $1:"
  tail -n 40 "$1" >&2
}

# apt_ensure COMMAND PACKAGE: install Debian's PACKAGE (no recommends) unless COMMAND exists.
apt_ensure() {
  command -v "$1" >/dev/null 2>&1 && return 0
  local sudo=()
  if ((EUID != 0)); then sudo=(sudo); fi
  log "installing Debian's $2 (apt)"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$2" >/dev/null
  command -v "$1" >/dev/null
}
