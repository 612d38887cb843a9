#!/usr/bin/env bash
# The main job on a fresh machine: set up, generate the synthetic data, train the small
# DINO + Swin + RoPE-Mixed demo on CPU (mmengine progress logging), evaluate the final
# checkpoint with CocoMetric and print the metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
PY=.venv/bin/python
CONFIG=configs/demo/dino_swin-rope-mixed_synthetic.py
WORK_DIR=work_dirs/demo_dino_swin_rope_mixed
if [ ! -f data/synthetic/det/annotations/instances_val.json ]; then
  "$PY" tools/misc/make_synthetic_data.py --out data/synthetic
fi
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
"$PY" tools/test.py "$CONFIG" "$(cat "$WORK_DIR/last_checkpoint")" --work-dir "$WORK_DIR"
