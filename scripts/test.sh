#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: installs what it needs (Python deps, Meltano, tap-postgres,
# Debian's PostgreSQL and Chromium when root), starts PostgreSQL, and runs
# every tier (-m "": the fast tier and the slow ones that `python -m pytest` leaves out; tests/tiers.py).
# Usage: bash scripts/test.sh [pytest args]      (e.g. -m e2e for one tier: a later -m wins)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/pipeline-tools.sh
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ]; then  # the reconcile page's headless-browser test
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
# shellcheck source=/dev/null
source scripts/postgres.sh
postgres_start
trap postgres_stop EXIT
.venv/bin/python -m pytest -m "" "$@"
