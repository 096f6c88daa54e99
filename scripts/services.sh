#!/usr/bin/env bash
# Start the system services kiln's integration tests use, idempotently, all on 127.0.0.1:
#   dockerd          unix socket $KILN_DOCKER_SOCK (default /run/kiln-docker/docker.sock)
#   OCI registry     Debian's docker-registry (distribution) on 127.0.0.1:5000
#   PostgreSQL       the Debian cluster on 127.0.0.1:5432, role/db "kiln" (password "kiln")
# Prints `export` lines for the environment the tests read; use: eval "$(scripts/services.sh)".
# Needs root. Usage: scripts/services.sh [start|stop]
set -euo pipefail
SOCK_DIR=${KILN_DOCKER_DIR:-/run/kiln-docker}
SOCK=$SOCK_DIR/docker.sock
REG_DIR=${KILN_REGISTRY_DIR:-/var/lib/kiln-registry}
REG_ADDR=127.0.0.1:5000
PG_ETC=${KILN_PG_ETC:-/etc/postgresql}
log() { echo "services: $*" >&2; }
EXPORTS=""
emit() { EXPORTS+="$*"$'\n'; } # an export line for the caller to eval, printed last

wait_for() { # what, seconds, command...
  local what=$1 secs=$2; shift 2
  for _ in $(seq 1 $((secs * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  log "$what did not come up in ${secs}s"; return 1
}

start_docker() {
  if command -v dockerd >/dev/null; then
    if ! DOCKER_HOST=unix://$SOCK docker version >/dev/null 2>&1; then
      mkdir -p "$SOCK_DIR"
      log "starting dockerd ($SOCK)"
      nohup dockerd --host "unix://$SOCK" --data-root "$SOCK_DIR/data" --exec-root "$SOCK_DIR/exec" \
        --pidfile "$SOCK_DIR/dockerd.pid" >"$SOCK_DIR/dockerd.log" 2>&1 &
      wait_for dockerd 60 env DOCKER_HOST=unix://$SOCK docker version || { tail -20 "$SOCK_DIR/dockerd.log" >&2; return 1; }
    fi
    emit "export DOCKER_HOST=unix://$SOCK"
  else
    log "dockerd not installed: Docker tests will skip"
  fi
}

start_registry() {
  if command -v docker-registry >/dev/null; then
    if ! curl -fsS "http://$REG_ADDR/v2/" >/dev/null 2>&1; then
      mkdir -p "$REG_DIR/data"
      cat >"$REG_DIR/config.yml" <<YML
version: 0.1
log: { level: warn }
storage:
  filesystem: { rootdirectory: $REG_DIR/data }
  delete: { enabled: true }
http:
  addr: $REG_ADDR
YML
      log "starting docker-registry ($REG_ADDR)"
      nohup docker-registry serve "$REG_DIR/config.yml" >"$REG_DIR/registry.log" 2>&1 &
      wait_for registry 30 curl -fsS "http://$REG_ADDR/v2/" || { tail -20 "$REG_DIR/registry.log" >&2; return 1; }
    fi
    emit "export KILN_TEST_REGISTRY=$REG_ADDR"
  else
    log "docker-registry not installed: registry tests will skip"
  fi
}

start_postgres() {
  if command -v pg_ctlcluster >/dev/null; then
    local ver
    ver=$(ls "$PG_ETC" 2>/dev/null | sort -n | tail -1)
    if [ -z "$ver" ]; then log "no PostgreSQL cluster: PostgreSQL tests will skip"; return 0; fi
    if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
      log "starting PostgreSQL $ver"
      pg_ctlcluster "$ver" main start || true
      wait_for postgres 60 pg_isready -h 127.0.0.1 -p 5432 -q ||
        { tail -20 "/var/log/postgresql/postgresql-$ver-main.log" >&2; return 1; }
    fi
    grep -q 1 <<<"$(su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='kiln'\"")" ||
      su postgres -c "psql -qc \"CREATE ROLE kiln LOGIN PASSWORD 'kiln' CREATEDB\"" >&2
    grep -q 1 <<<"$(su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='kiln'\"")" ||
      su postgres -c "createdb -O kiln kiln" >&2
    emit "export KILN_TEST_PG=postgres://kiln:kiln@127.0.0.1:5432/kiln"
  else
    log "PostgreSQL not installed: PostgreSQL tests will skip"
  fi
}

stop_all() {
  [ -f "$SOCK_DIR/dockerd.pid" ] && kill "$(cat "$SOCK_DIR/dockerd.pid")" 2>/dev/null || true
  pkill -f "docker-registry serve $REG_DIR" 2>/dev/null || true
}

case "${1:-start}" in
  # Only the export lines reach stdout; everything the services' own tools print goes to stderr,
  # so `eval "$(scripts/services.sh)"` never runs a stray message such as pg_ctl's "Removed stale pid file".
  start) { start_docker; start_registry; start_postgres; } 1>&2; printf '%s' "$EXPORTS" ;;
  stop) stop_all ;;
  *) echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac
