#!/usr/bin/env bash
# A private PostgreSQL 15 server for the pipeline and sync-memory tests (Debian package).
# Source this file, then call postgres_start / postgres_stop. Exports TCM_PG_* variables.
# postgres_stop stops only a server postgres_start started, and removes only what it created
# (the directory, or the cluster in it): a server someone else runs on the port is left alone.
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

# Run a command as the server's owner (postgres when we are root), from a directory it can enter:
# the clone may sit in a private directory, and PostgreSQL's tools change to the working directory.
_as_postgres() {
  if [ "$(id -u)" = 0 ]; then
    (cd / && su postgres -s /bin/bash -c "$1")
  else
    (cd / && bash -c "$1")
  fi
}

postgres_start() {
  postgres_install
  TCM_PG_DIR=$(realpath -m "$TCM_PG_DIR")
  export TCM_PG_HOST=127.0.0.1 TCM_PG_PORT TCM_PG_USER=postgres TCM_PG_DIR
  export TCM_PG_URL="postgresql://postgres@127.0.0.1:${TCM_PG_PORT}/postgres"
  if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$TCM_PG_PORT"; then
    return 0  # someone else's server (or an earlier run's): used, never stopped or removed here
  fi
  if [ ! -e "$TCM_PG_DIR" ]; then TCM_PG_MADE_DIR=1; fi
  if [ "$(id -u)" = 0 ]; then install -d -o postgres -g postgres "$TCM_PG_DIR"; else mkdir -p "$TCM_PG_DIR"; fi
  if [ ! -f "$TCM_PG_DIR/data/PG_VERSION" ]; then
    TCM_PG_MADE_DATA=1
    _as_postgres "$PG_BIN/initdb -D $TCM_PG_DIR/data -U postgres --auth=trust -E UTF8 >/dev/null"
  fi
  _as_postgres "$PG_BIN/pg_ctl -D $TCM_PG_DIR/data -l $TCM_PG_DIR/log.txt -o '-p $TCM_PG_PORT -k $TCM_PG_DIR -c listen_addresses=127.0.0.1' -w start >/dev/null"
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$TCM_PG_PORT"
  TCM_PG_STARTED=1
}

postgres_stop() {
  if [ "${TCM_PG_STARTED:-0}" = 1 ]; then
    _as_postgres "$PG_BIN/pg_ctl -D $TCM_PG_DIR/data -m fast stop >/dev/null" || true
    TCM_PG_STARTED=0
    if [ "${TCM_PG_MADE_DIR:-0}" = 1 ]; then
      rm -rf "$TCM_PG_DIR"
    elif [ "${TCM_PG_MADE_DATA:-0}" = 1 ]; then
      rm -rf "$TCM_PG_DIR/data" "$TCM_PG_DIR/log.txt"
    fi
  fi
}
