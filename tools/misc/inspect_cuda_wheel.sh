#!/usr/bin/env bash
# Which CUDA architectures an mmcv wheel's compiled ops hold, with no GPU needed:
#
#   bash tools/misc/inspect_cuda_wheel.sh                 # the CUDA wheel tools/setup_env.sh --cuda cached
#   bash tools/misc/inspect_cuda_wheel.sh path/to/mmcv-2.1.0-*.whl
#
# Prints the cubins (SASS) and PTX per architecture in mmcv/_ext*.so and the number of
# multi-scale deformable attention kernels (DINO's op) per architecture. cuobjdump comes from
# NVIDIA's pip package nvidia-cuda-cuobjdump (CUDA 13.x; reads torch 2.14's CUDA 13.0 code), installed into a
# temporary folder. Exit code 1 when a requested architecture has no ms_deformable kernel.
# Env: ARCHS (default "sm_80 sm_90"), PYTHON (default python3.11).
set -euo pipefail
PY=${PYTHON:-python3.11}
ARCHS=${ARCHS:-"sm_80 sm_90"}
WHEEL=${1:-}
if [ -z "$WHEEL" ]; then
  WHEEL=$(ls "$("$PY" -m pip cache dir)"/mmpe-wheels/mmcv-*-cuda-*/mmcv-*.whl 2>/dev/null | head -1 || true)
  [ -n "$WHEEL" ] || { echo "inspect_cuda_wheel.sh: no CUDA mmcv wheel in pip's cache; run tools/setup_env.sh --cuda or pass a wheel" >&2; exit 2; }
fi
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
"$PY" -m pip install -q --target "$TMP/pkg" "nvidia-cuda-cuobjdump>=13,<14"
CUOBJDUMP=$(find "$TMP/pkg" -name cuobjdump -type f | head -1); chmod +x "$CUOBJDUMP"
"$PY" -m zipfile -e "$WHEEL" "$TMP/wheel" >/dev/null
SO=$(ls "$TMP"/wheel/mmcv/_ext*.so)
echo "wheel: $WHEEL ($(du -h "$WHEEL" | cut -f1)), $(basename "$SO") $(du -h "$SO" | cut -f1)"
echo "cubins per architecture:"; "$CUOBJDUMP" --list-elf "$SO" | grep -o 'sm_[0-9]*' | sort | uniq -c
echo "PTX per architecture:"; "$CUOBJDUMP" --list-ptx "$SO" | grep -o 'sm_[0-9]*' | sort | uniq -c
status=0
for arch in $ARCHS; do
  n=$("$CUOBJDUMP" --dump-resource-usage "$SO" 2>/dev/null |
      awk -v a="arch = $arch" '/arch = /{cur=$0} /Function .*ms_deformable/ && index(cur, a){c++} END{print c+0}')
  echo "$arch: $n ms_deformable_* kernels"
  [ "$n" -gt 0 ] || status=1
done
exit $status
