#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: installs what it needs, starts PostgreSQL, and runs
# every tier (-m "": the fast tier and the slow ones that `python -m pytest` leaves out; tests/tiers.py).
# Usage: bash scripts/test.sh [pytest args]      (e.g. -m e2e for one tier: a later -m wins)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/pipeline-tools.sh
# shellcheck source=/dev/null
source scripts/postgres.sh
postgres_start
trap postgres_stop EXIT
.venv/bin/python -m pytest -m "" "$@"
