#!/usr/bin/env bash
# Run the whole test suite on a fresh machine: installs what it needs, starts PostgreSQL.
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/pipeline-tools.sh
# shellcheck source=/dev/null
source scripts/postgres.sh
postgres_start
trap postgres_stop EXIT
.venv/bin/python -m pytest "$@"
