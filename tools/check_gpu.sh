#!/usr/bin/env bash
# GPU acceptance: everything mmpe's GPU path needs, on a machine with NVIDIA GPUs.
#
#   bash tools/check_gpu.sh            # logs and benchmark tables in work_dirs/check_gpu/
#
# 1. set-up with mmcv's CUDA ops (tools/setup_env.sh --cuda: builds them if the installed mmcv has none)
# 2. the test suite (tests taking the `device` fixture also run on CUDA; tests/test_compat.py
#    compares mmcv's CUDA deformable-attention kernel with its PyTorch path)
# 3. one AMP training step (float16, then bfloat16) of DINO and UperNet, Swin and ViT, every
#    encoding (tools/misc/smoke_train.py)
# 4. tools/train.py --amp (AmpOptimWrapper through the Runner) on the synthetic demo sets, 2 iterations each
# 5. tools/dist_train.sh with 2 GPUs (nccl), 2 iterations, when 2 GPUs are visible
# 6. the speed / memory benchmarks on CUDA (ViT-B 1024 px, Swin-T 800x1333, RoPE rotation)
# 7. torch.compile on CUDA: the deformable-attention operator against mmcv's kernel (opcheck, outputs,
#    gradients, the drop-in module), compiled vs eager DINO training steps (tests/test_deform_attn.py,
#    tests/test_dino_compile.py; also in step 2), DINO's graph breaks and graphs over its training sizes
#    (compile_detector.py), and eager vs compile=True step time, memory and compile time of DINO and
#    UperNet (benchmark_compile.py: docs/benchmarks tables)
# Prints PASS / FAIL / SKIP per step; exit code 1 if a step failed. Without a GPU only step 1
# runs (the CPU parts of steps 2-4 run in CI: the test suite, tests/test_devices.py).
# Env: MMPE_VENV (default <repo>/.venv), and setup_env.sh's (TORCH_CUDA_ARCH_LIST, MAX_JOBS, ...).
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${MMPE_VENV:-$ROOT/.venv}/bin/python
OUT=work_dirs/check_gpu
mkdir -p "$OUT"
RESULTS=()

# step NAME COMMAND...: run COMMAND with its output in $OUT/NAME.log, record PASS/FAIL and the time.
step() {
  local name=$1 start=$SECONDS status
  shift
  echo "[check_gpu $(date +%H:%M:%S)] $name: $*"
  if "$@" > "$OUT/$name.log" 2>&1; then status=PASS; else status=FAIL; fi
  RESULTS+=("$(printf '%-22s %s  (%d s, log %s)' "$name" "$status" $((SECONDS - start)) "$OUT/$name.log")")
  [ "$status" = PASS ]
}
skip() { RESULTS+=("$(printf '%-22s SKIP  (%s)' "$1" "$2")"); }

step setup bash tools/setup_env.sh --cuda || { printf '%s\n' "${RESULTS[@]}"; exit 1; }
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())") || { echo "check_gpu: torch does not import"; exit 1; }
SHORT=(train_cfg.max_iters=2 train_cfg.val_interval=2 default_hooks.logger.interval=1
       default_hooks.checkpoint.interval=2 'param_scheduler=[]')
if [ "$GPUS" -eq 0 ]; then
  for name in tests smoke_fp16 smoke_bf16 train_amp_dino train_amp_upernet dist_train_2gpu \
              benchmark_vit benchmark_swin benchmark_rope deform_attn_cuda compile_detector benchmark_compile; do
    skip "$name" 'torch sees no GPU'
  done
else
  step tests "$PY" -m pytest -q -rs tests
  step smoke_fp16 "$PY" tools/misc/smoke_train.py --device cuda --dtype float16
  if "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_bf16_supported())"; then
    step smoke_bf16 "$PY" tools/misc/smoke_train.py --device cuda --dtype bfloat16
  else
    skip smoke_bf16 'this GPU has no bfloat16'
  fi
  step synthetic_data "$PY" tools/misc/make_synthetic_data.py --out "$OUT/data" --num-train 8 --num-val 4
  export MMPE_SYNTHETIC_DET=$OUT/data/det/ MMPE_SYNTHETIC_SEG=$OUT/data/seg/
  step train_amp_dino "$PY" tools/train.py configs/demo/dino_swin-rope-mixed_synthetic.py --amp \
    --work-dir "$OUT/train_amp_dino" --cfg-options "${SHORT[@]}"
  step train_amp_upernet "$PY" tools/train.py configs/demo/upernet_swin-rope-mixed_synthetic.py --amp \
    --work-dir "$OUT/train_amp_upernet" --cfg-options "${SHORT[@]}"
  if [ "$GPUS" -ge 2 ]; then
    step dist_train_2gpu env PYTHON="$PY" bash tools/dist_train.sh configs/demo/dino_swin-rope-mixed_synthetic.py 2 \
      --amp --work-dir "$OUT/dist_train_2gpu" --cfg-options "${SHORT[@]}"
  else
    skip dist_train_2gpu "$GPUS GPU visible, needs 2"
  fi
  step benchmark_vit "$PY" tools/analysis_tools/benchmark_vit.py --device cuda --out "$OUT/benchmark_vit"
  step benchmark_swin "$PY" tools/analysis_tools/benchmark_swin.py --device cuda --out-dir "$OUT/benchmark_swin"
  step benchmark_rope "$PY" tools/analysis_tools/benchmark_rope.py --device cuda --out "$OUT/benchmark_rope"
  step deform_attn_cuda "$PY" -m pytest -q -rs tests/test_deform_attn.py tests/test_dino_compile.py
  step compile_detector "$PY" tools/analysis_tools/compile_detector.py --device cuda --out "$OUT/compile_detector"
  step benchmark_compile "$PY" tools/analysis_tools/benchmark_compile.py --device cuda --out-dir "$OUT/benchmark_compile"
fi

echo "== check_gpu summary ($GPUS GPU(s))"
printf '%s\n' "${RESULTS[@]}"
! printf '%s\n' "${RESULTS[@]}" | grep -q ' FAIL '
