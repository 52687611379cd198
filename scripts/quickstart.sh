#!/usr/bin/env bash
# Set up (pinned), train on the bundled sample data, reconstruct the held-out file, print the quality table.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/a2a inspect-mask sample_data/dynamic_test.h5
.venv/bin/a2a train sample_data/dynamic_train.h5 --out runs/quickstart --overwrite "$@"
.venv/bin/a2a reconstruct runs/quickstart/best.pt sample_data/dynamic_test.h5 --out runs/quickstart/recon \
    --overwrite --preview runs/quickstart/preview.png
