#!/usr/bin/env bash
# The in-process tiers on the oldest and the newest Python the package supports: 3.10 with the
# lowest versions pyproject allows for its direct dependencies (so the lower bounds are tested),
# 3.13 with the newest. Each gets its own virtualenv (.venv-py3.10, .venv-py3.13). Run by .ci/run
# after the main test command, which runs every tier on the main Python.
#
# The tiers here are the fast one and `postgres` (the sync memory on PostgreSQL: SQLAlchemy and
# psycopg at their bounds), where a dependency's version shows. The e2e, robustness and subprocess
# tiers test processes and pipelines (signals, crashes, stdin, Meltano, tap-postgres): the code
# paths they run are the ones the fast tier runs in this process, so they run once, on the main
# Python (see README, "Tests").
# Usage: bash scripts/other-pythons.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {  # python3.X on PATH, else a pyenv build of 3.X; only one that runs (a pyenv shim may not)
  local version=$1 candidate
  for candidate in "$(command -v "python$version" 2>/dev/null || true)" \
                   "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$version".*/bin/python; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c 'import sys, venv' >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

bash scripts/setup.sh  # uv comes from PyPI into the main virtualenv
.venv/bin/python -m pip install -q 'uv>=0.4,<1'
# shellcheck source=/dev/null
source scripts/postgres.sh
postgres_start
trap postgres_stop EXIT

TIERS="not (e2e or robustness or subprocess)"
missing=()
for pair in 3.10:lowest-direct 3.13:highest; do
  version=${pair%%:*} resolution=${pair#*:}
  if ! python=$(find_python "$version"); then
    missing+=("$version")
    continue
  fi
  venv=.venv-py$version
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  .venv/bin/uv pip install -q --python "$venv/bin/python" --resolution "$resolution" -e '.[test,postgres]'
  echo "== fast and postgres tiers on $("$venv/bin/python" --version) ($resolution versions of the direct dependencies)"
  "$venv/bin/python" -m pytest -q -p no:cacheprovider -m "$TIERS" "$@"
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "WARNING: no Python ${missing[*]} on this machine (PATH or pyenv): its tiers did not run" >&2
fi
