#!/usr/bin/env bash
# Idempotent set-up of the mmpe environment on Python 3.11 (x86-64):
#   .venv/ in the repo with torch 2.14.1, torchvision 0.29.1, mmcv 2.1.0 built from
#   source with its compiled ops, mmengine, mmdet, mmsegmentation, timm and mmpe (editable).
#
#   bash tools/setup_env.sh [--cuda | --cpu]
#
# mmcv's ops are built for the CPU, or with CUDA kernels when torch sees a GPU or with --cuda
# (same as FORCE_CUDA=1; works on a machine without a GPU, e.g. a login node). An installed CUDA
# build is kept on a machine without a GPU (run again on a login node, it does not replace the
# kernels the GPU nodes need); --cpu replaces it with a CPU build (tools/mmcv_build_plan.py decides).
# CUDA kernels are compiled for TORCH_CUDA_ARCH_LIST, by default "8.0;9.0+PTX" plus any visible
# GPU's own architecture: sm_80 code runs on A100/A10/L4/RTX 30xx-40xx (8.x), sm_90 on H100/H200,
# and newer GPUs compile the embedded compute_90 PTX at load time. The CUDA compiler is CUDA_HOME's,
# the nvcc on PATH or /usr/local/cuda's when its CUDA major version is torch's (13); otherwise (or
# with MMPE_PIP_NVCC=1) NVIDIA's pip packages are installed into the venv and assembled into
# $VENV/cuda-pip.
# The mmcv wheel is built once per (torch version, ops, CUDA architecture list) and kept in
# pip's cache directory, so a second run (or a fresh clone on the same machine) installs it instantly.
# Env: MMPE_VENV (default <repo>/.venv), PYTHON (default python3.11), FORCE_CUDA=1,
#      TORCH_CUDA_ARCH_LIST, CUDA_HOME, MMPE_PIP_NVCC=1, MAX_JOBS (parallel compile jobs, default: all cores).
set -euo pipefail
{ # bash reads this whole block before running it: editing the file during a run is safe
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${MMPE_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3.11}
TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMCV_VERSION=2.1.0
# NVIDIA's compiler for torch 2.14.1's CUDA 13.0, pinned together: nvcc's own dependencies pull
# newer nvvm/crt, whose ptxas then fails with "Unsupported .version 9.5".
PIP_NVCC=("nvidia-cuda-nvcc==13.0.88" "nvidia-nvvm==13.0.*" "nvidia-cuda-crt==13.0.*" "nvidia-cuda-cccl==13.0.*")

REQUEST=auto
for arg in "$@"; do
  case $arg in
    --cuda|--cpu) [ "$REQUEST" = auto ] || { echo "setup_env.sh: give one of --cuda, --cpu" >&2; exit 2; }
                  REQUEST=${arg#--} ;;
    *) echo "setup_env.sh: unknown argument '$arg' (accepted: --cuda, --cpu)" >&2; exit 2 ;;
  esac
done

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

# CUDA_HOME for building the CUDA ops: an installed toolkit whose CUDA major version is torch's,
# else NVIDIA's pip packages, with lib64/libcudart.so (torch's cpp_extension links -lcudart).
find_cuda_home() {
  local major=$1 dir
  if [ "${MMPE_PIP_NVCC:-0}" != 1 ]; then
    for dir in "${CUDA_HOME:-}" "${CUDA_PATH:-}" "$(dirname "$(dirname "$(command -v nvcc || echo /none/bin/nvcc)")")" \
               /usr/local/cuda; do
      if [ -n "$dir" ] && [ -x "$dir/bin/nvcc" ] && [ -f "$dir/include/cuda_runtime_api.h" ] \
         && [[ $("$dir/bin/nvcc" --version) == *"release $major."* ]]; then
        echo "$dir"; return
      fi
    done
  fi
  log "installing NVIDIA's CUDA compiler from pip: ${PIP_NVCC[*]}" >&2
  pip_install -q "${PIP_NVCC[@]}" >&2
  local nv home="$VENV/cuda-pip"
  nv=$("$PY" -c "import nvidia, os; print(os.path.join(nvidia.__path__[0], 'cu$major'))")
  rm -rf "$home" && mkdir -p "$home/lib64"
  for dir in bin include nvvm; do ln -s "$nv/$dir" "$home/$dir"; done
  ln -s "$nv"/lib/* "$home/lib64/"
  [ -e "$home/lib64/libcudart.so" ] || ln -s "libcudart.so.$major" "$home/lib64/libcudart.so"
  echo "$home"
}

# Which ops (cpu/cuda), the CUDA architectures, and whether the installed mmcv already is that build.
read -r OPS ARCHS INSTALLED < <("$PY" "$ROOT/tools/mmcv_build_plan.py" "$MMCV_VERSION" "$VENV/mmcv-build.txt" "$REQUEST")
if [ "$INSTALLED" = yes ]; then
  log "mmcv $MMCV_VERSION with compiled $OPS ops already installed: kept"
else
  KEY=mmcv-$MMCV_VERSION-torch$TORCH_VERSION-$OPS
  [ "$OPS" = cuda ] && KEY=$KEY-$ARCHS
  WHEEL_DIR="$("$PY" -m pip cache dir)/mmpe-wheels/$KEY"
  if ! ls "$WHEEL_DIR"/mmcv-*.whl >/dev/null 2>&1; then
    BUILD_DIR=$(mktemp -d)
    SRC=$BUILD_DIR/mmcv-$MMCV_VERSION
    "$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$BUILD_DIR" "mmcv==$MMCV_VERSION"
    tar -xzf "$BUILD_DIR"/mmcv-$MMCV_VERSION.tar.gz -C "$BUILD_DIR"
    # torch >= 2.10 headers require C++20; mmcv 2.1.0 hard-codes -std=c++17 (for g++ and nvcc).
    sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
    sources=("$SRC"/mmcv/ops/csrc/pytorch/{,cpu/}*.cpp)
    if [ "$OPS" = cuda ]; then
      major=$("$PY" -c "import torch; print(torch.version.cuda.split('.')[0])")
      CUDA_HOME=$(find_cuda_home "$major")
      # g++ compiles the .cpp files that include CUDA headers too; CUDA 13 keeps <nv/target> in include/cccl.
      export CUDA_HOME FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST=${ARCHS//-/;} CPATH="$CUDA_HOME/include/cccl${CPATH:+:$CPATH}"
      sources+=("$SRC"/mmcv/ops/csrc/pytorch/cuda/*.{cu,cpp})
      log "building mmcv $MMCV_VERSION (CUDA ops for $TORCH_CUDA_ARCH_LIST, nvcc of $CUDA_HOME) from source; about 50 minutes on 2 cores the first time"
    else
      log "building mmcv $MMCV_VERSION (cpu ops) from source; 9-14 minutes on 2 cores the first time (measured)"
    fi
    # pip hides the compiler output: report progress from the object files instead.
    (while sleep 60; do
       log "mmcv build: $(find "$SRC" -name '*.o' | wc -l) of about ${#sources[@]} source files compiled"
     done) &
    ticker=$!
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} "$PY" -m pip wheel --no-deps --no-build-isolation \
      -w "$BUILD_DIR/wheel" "$SRC" > "$BUILD_DIR/build.log" 2>&1 \
      || { kill $ticker; tail -n 50 "$BUILD_DIR/build.log"; log "mmcv build failed (log: $BUILD_DIR/build.log)"; exit 1; }
    kill $ticker
    mkdir -p "$WHEEL_DIR" && cp "$BUILD_DIR"/wheel/mmcv-*.whl "$WHEEL_DIR"/
    rm -rf "$BUILD_DIR"
  fi
  log "installing mmcv from $WHEEL_DIR"
  pip_install -q --no-deps --force-reinstall "$WHEEL_DIR"/mmcv-*.whl
  echo "$ARCHS" > "$VENV/mmcv-build.txt"
fi

log "installing mmengine, mmdet, mmsegmentation, timm and mmpe (editable, with test and docs tools)"
pip_install -q -e "$ROOT[tests,docs]"
"$PY" -c "import mmpe, mmdet, mmseg; from mmcv.ops import MultiScaleDeformableAttention; print('stack ok: torch', __import__('torch').__version__)"
if [ "$OPS" = cuda ]; then
  log "installed: mmcv $MMCV_VERSION with CUDA ops for architectures ${ARCHS//-/;} (and CPU ops)"
else
  log "installed: mmcv $MMCV_VERSION with CPU ops only (on a GPU, DINO's deformable attention would run mmcv's slower PyTorch path; build the CUDA ops with --cuda)"
fi
log "done: activate with 'source $VENV/bin/activate'"
exit
}
