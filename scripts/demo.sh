#!/usr/bin/env bash
# Demo: sync the bundled sample data into a local fake ChartMogul API and show what landed.
# Usage: bash scripts/demo.sh            (sets up .venv on first use)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m scripts.demo "$@"
