#!/usr/bin/env bash
# Virtualenvs for the end-to-end pipeline tests (tests/e2e): Meltano and tap-postgres each get
# their own, because their dependencies conflict with the target's. Idempotent: an existing,
# working virtualenv with the right version is left alone.
# Usage: bash scripts/pipeline-tools.sh      (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TOOLS=.tools

MELTANO_SPEC='meltano>=4.4,<5'
TAP_POSTGRES_SPEC='meltanolabs-tap-postgres==0.10.0'

# tool_venv NAME PIP_SPEC CHECK_EXECUTABLE CHECK_COMMAND...
tool_venv() {
  local name=$1 spec=$2 exe=$3
  shift 3
  local dir="$TOOLS/$name"
  if [ -x "$dir/bin/$exe" ] && [ -f "$dir/.spec" ] && [ "$(cat "$dir/.spec")" = "$spec" ] \
     && "$dir/bin/python" "$@" >/dev/null 2>&1; then
    return 0
  fi
  echo "pipeline-tools: installing $spec into $dir" >&2
  rm -rf "$dir"
  "$PYTHON" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
  # (grep drops pip's warnings about optional local index directories that do not exist)
  "$dir/bin/python" -m pip install -q --disable-pip-version-check "$spec" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; } >&2
  printf '%s' "$spec" > "$dir/.spec"
}

mkdir -p "$TOOLS"
tool_venv meltano "$MELTANO_SPEC" meltano -c 'import meltano' &
meltano_pid=$!
tool_venv tap-postgres "$TAP_POSTGRES_SPEC" tap-postgres -c 'import tap_postgres' &
tap_pid=$!
status=0
wait "$meltano_pid" || status=$?
wait "$tap_pid" || status=$?
exit "$status"
