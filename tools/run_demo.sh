#!/usr/bin/env bash
# The main job on a fresh machine: set up, generate the synthetic data, train the small
# DINO + Swin + RoPE-Mixed demo on CPU (mmengine progress logging), evaluate the final
# checkpoint with CocoMetric and print the metrics, then draw its predictions on the first four
# validation images (mmdet's DetInferencer and visualizer) into $WORK_DIR/predictions/vis.
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
CHECKPOINT=$(cat "$WORK_DIR/last_checkpoint")
"$PY" tools/test.py "$CONFIG" "$CHECKPOINT" --work-dir "$WORK_DIR"
"$PY" tools/image_demo.py data/synthetic/det/val/00000{0,1,2,3}.png "$CONFIG" --weights "$CHECKPOINT" \
  --out-dir "$WORK_DIR/predictions" --device cpu --pred-score-thr 0.3
