#!/usr/bin/env bash
# Idempotent set-up of the mmpe environment on Python 3.11 (x86-64):
#   .venv/ in the repo with torch 2.14.1, torchvision 0.29.1, mmcv 2.1.0 built from
#   source with its compiled ops, mmengine, mmdet, mmsegmentation, timm and mmpe (editable).
# The mmcv wheel is built once per (torch version, CPU/CUDA ops) and kept in pip's cache
# directory, so a second run (or a fresh clone on the same machine) installs it instantly.
# Env: MMPE_VENV (default <repo>/.venv), PYTHON (default python3.11), FORCE_CUDA=1 for CUDA ops.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MMPE_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3.11}
TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMCV_VERSION=2.1.0

log() { echo "[setup $(date +%H:%M:%S)] $*"; }

if [ ! -x "$VENV/bin/python" ]; then
  log "creating virtual environment $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
# This machine's pip config lists local package folders that pip warns about once per package.
pip_install() {
  "$PY" -m pip install --progress-bar off "$@" 2>&1 | { grep -v 'is ignored: it is neither a file nor a directory' || true; }
}

log "installing build tools (setuptools <81: mmcv's setup.py and mmengine's mmdet::/mmseg:: config lookup use pkg_resources)"
pip_install -q --upgrade "pip>=24" "setuptools>=77,<81" wheel ninja

log "installing torch $TORCH_VERSION and torchvision $TORCHVISION_VERSION"
pip_install -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"

if "$PY" -c "import mmcv, mmcv.ops; assert mmcv.__version__ == '$MMCV_VERSION'" 2>/dev/null; then
  log "mmcv $MMCV_VERSION with compiled ops already installed"
else
  OPS=$("$PY" -c "import os, torch; print('cuda' if os.environ.get('FORCE_CUDA') == '1' or torch.cuda.is_available() else 'cpu')")
  WHEEL_DIR="$("$PY" -m pip cache dir)/mmpe-wheels/mmcv-$MMCV_VERSION-torch$TORCH_VERSION-$OPS"
  if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    BUILD_DIR=$(mktemp -d)
    log "building mmcv $MMCV_VERSION ($OPS ops) from source; about 25 minutes on 2 cores the first time"
    "$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$BUILD_DIR" "mmcv==$MMCV_VERSION"
    tar -xzf "$BUILD_DIR"/mmcv-$MMCV_VERSION.tar.gz -C "$BUILD_DIR"
    # torch >= 2.10 headers require C++20; mmcv 2.1.0 hard-codes -std=c++17.
    sed -i 's/-std=c++17/-std=c++20/g' "$BUILD_DIR/mmcv-$MMCV_VERSION/setup.py"
    [ "$OPS" = cuda ] && export FORCE_CUDA=1
    # pip hides the compiler output: report progress from the object files instead.
    total=$(ls "$BUILD_DIR/mmcv-$MMCV_VERSION"/mmcv/ops/csrc/pytorch/{,cpu/}*.cpp | wc -l)
    (while sleep 60; do
       log "mmcv build: $(find "$BUILD_DIR/mmcv-$MMCV_VERSION" -name '*.o' | wc -l) of about $total C++ files compiled"
     done) &
    ticker=$!
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PY" -m pip wheel --no-deps --no-build-isolation \
      -w "$BUILD_DIR/wheel" "$BUILD_DIR/mmcv-$MMCV_VERSION" > "$BUILD_DIR/build.log" 2>&1 \
      || { kill $ticker; tail -n 50 "$BUILD_DIR/build.log"; log "mmcv build failed (log: $BUILD_DIR/build.log)"; exit 1; }
    kill $ticker
    mkdir -p "$WHEEL_DIR" && cp "$BUILD_DIR"/wheel/mmcv-*.whl "$WHEEL_DIR"/
    rm -rf "$BUILD_DIR"
  fi
  log "installing mmcv from $WHEEL_DIR"
  pip_install -q --no-deps --force-reinstall "$WHEEL_DIR"/mmcv-*.whl
fi

log "installing mmengine, mmdet, mmsegmentation, timm and mmpe (editable, with test tools)"
pip_install -q -e "$ROOT[tests]"
"$PY" -c "import mmpe, mmdet, mmseg; from mmcv.ops import MultiScaleDeformableAttention; print('stack ok: torch', __import__('torch').__version__)"
log "done: activate with 'source $VENV/bin/activate'"
