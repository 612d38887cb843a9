"""Which mmcv build tools/setup_env.sh installs, and whether the installed mmcv already is that build.

    python tools/mmcv_build_plan.py MMCV_VERSION MARKER_FILE {auto,cpu,cuda}

prints ``OPS ARCHS INSTALLED``: 'cpu' or 'cuda', the CUDA architectures joined by '-' ('-' for cpu),
'yes' or 'no'. MARKER_FILE holds the architectures the installed CUDA build was made for.

- 'cuda' (``--cuda`` / FORCE_CUDA=1) or a visible GPU: CUDA ops for TORCH_CUDA_ARCH_LIST, by default
  8.0 and 9.0+PTX plus every visible GPU's architecture.
- 'cpu' (``--cpu``): CPU ops only, replacing an installed CUDA build.
- 'auto' without a GPU (e.g. a login node): an installed CUDA build of the right version is kept as
  it is (the compute nodes need its kernels); otherwise CPU ops.
Runs before mmpe is installed: it imports only torch and mmcv.
"""
import os
import sys
from typing import NamedTuple, Optional, Sequence

DEFAULT_ARCHS = ('8.0', '9.0+PTX')


class Installed(NamedTuple):
    """The mmcv in the environment: its version, whether its ops have CUDA kernels, the architectures
    of the marker file ('unknown' without one)."""
    version: Optional[str]
    cuda_ops: bool
    archs: str


def cuda_archs(arch_list: Optional[str], visible: Sequence[str]) -> str:
    """'-'-joined CUDA architectures: TORCH_CUDA_ARCH_LIST ('8.0;9.0+PTX' or space-separated) if set,
    else DEFAULT_ARCHS plus the visible GPUs' own."""
    archs = arch_list.replace(';', ' ').split() if arch_list else \
        list(DEFAULT_ARCHS) + sorted(set(visible) - {a.split('+')[0] for a in DEFAULT_ARCHS})
    return '-'.join(archs)


def plan(requested: str, version: str, installed: Installed, visible: Sequence[str],
         arch_list: Optional[str]) -> tuple:
    """(ops, archs, installed_is_it) for ``requested`` in {'auto', 'cpu', 'cuda'}."""
    if requested not in ('auto', 'cpu', 'cuda'):
        raise ValueError(f"requested must be 'auto', 'cpu' or 'cuda', got {requested!r}")
    right_version = installed.version == version
    if requested == 'auto' and not visible and right_version and installed.cuda_ops:
        return 'cuda', installed.archs, True  # keep a GPU build on a machine without a GPU
    if requested == 'cuda' or (requested == 'auto' and visible):
        archs = cuda_archs(arch_list, visible)
        return 'cuda', archs, right_version and installed.cuda_ops and installed.archs == archs
    return 'cpu', '-', right_version and not installed.cuda_ops


def installed_mmcv(marker: str) -> Installed:
    """The mmcv importable here (version None when there is none, or its ops do not load)."""
    try:
        import mmcv
        from mmcv.ops import get_compiling_cuda_version
    except Exception:
        return Installed(None, False, 'unknown')
    archs = open(marker).read().strip() if os.path.exists(marker) else 'unknown'
    return Installed(mmcv.__version__, get_compiling_cuda_version() != 'not available', archs)


def main(argv: Sequence[str]) -> None:
    import torch
    version, marker, requested = argv
    if os.environ.get('FORCE_CUDA') == '1':
        if requested == 'cpu':
            sys.exit('setup_env.sh: --cpu contradicts FORCE_CUDA=1')
        requested = 'cuda'
    visible = ['%d.%d' % torch.cuda.get_device_capability(i) for i in range(torch.cuda.device_count())]
    ops, archs, ready = plan(requested, version, installed_mmcv(marker), visible,
                             os.environ.get('TORCH_CUDA_ARCH_LIST'))
    print(ops, archs, 'yes' if ready else 'no')


if __name__ == '__main__':
    main(sys.argv[1:])
