#!/usr/bin/env bash
# Set up (pinned), lint (ruff) and run the whole test suite; arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check a2a_cli tests benchmarks
exec .venv/bin/python -m pytest "$@"
