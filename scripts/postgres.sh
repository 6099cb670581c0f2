#!/usr/bin/env bash
# A private PostgreSQL 15 server for the pipeline and sync-memory tests (Debian package).
# Source this file, then call postgres_start / postgres_stop. Exports TCM_PG_* variables.
TCM_PG_PORT=${TCM_PG_PORT:-55432}
TCM_PG_DIR=${TCM_PG_DIR:-/tmp/target-chartmogul-pg}
PG_BIN=/usr/lib/postgresql/15/bin

postgres_install() {
  if [ ! -x "$PG_BIN/pg_ctl" ]; then
    if [ "$(id -u)" != 0 ]; then
      echo "PostgreSQL 15 is missing and installing it needs root (apt-get install postgresql)" >&2
      return 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
}

postgres_start() {
  postgres_install
  export TCM_PG_HOST=127.0.0.1 TCM_PG_PORT TCM_PG_USER=postgres TCM_PG_DIR
  export TCM_PG_URL="postgresql://postgres@127.0.0.1:${TCM_PG_PORT}/postgres"
  if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$TCM_PG_PORT"; then
    return 0
  fi
  local as=()
  if [ "$(id -u)" = 0 ]; then as=(su postgres -s /bin/bash -c); else as=(bash -c); fi
  if [ "$(id -u)" = 0 ]; then install -d -o postgres -g postgres "$TCM_PG_DIR"; else mkdir -p "$TCM_PG_DIR"; fi
  if [ ! -f "$TCM_PG_DIR/data/PG_VERSION" ]; then
    "${as[@]}" "$PG_BIN/initdb -D $TCM_PG_DIR/data -U postgres --auth=trust -E UTF8 >/dev/null"
  fi
  "${as[@]}" "$PG_BIN/pg_ctl -D $TCM_PG_DIR/data -l $TCM_PG_DIR/log.txt -o '-p $TCM_PG_PORT -k $TCM_PG_DIR -c listen_addresses=127.0.0.1' -w start >/dev/null"
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$TCM_PG_PORT"
  TCM_PG_STARTED=1
}

postgres_stop() {
  if [ "${TCM_PG_STARTED:-0}" = 1 ]; then
    local as=()
    if [ "$(id -u)" = 0 ]; then as=(su postgres -s /bin/bash -c); else as=(bash -c); fi
    "${as[@]}" "$PG_BIN/pg_ctl -D $TCM_PG_DIR/data -m fast stop >/dev/null" || true
  fi
}
