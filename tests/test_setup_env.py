"""tools/setup_env.sh: which mmcv build it installs (tools/mmcv_build_plan.py) and its arguments."""
import runpy
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
build_plan = runpy.run_path(str(ROOT / 'tools/mmcv_build_plan.py'))
plan, Installed = build_plan['plan'], build_plan['Installed']

CUDA_BUILD = Installed('2.1.0', True, '8.0-8.6-9.0+PTX')
CPU_BUILD = Installed('2.1.0', False, 'unknown')
NONE = Installed(None, False, 'unknown')


@pytest.mark.parametrize('requested, installed, visible, arch_list, expected', [
    # a login node (no GPU) keeps the GPU nodes' CUDA build, whatever architectures it has
    ('auto', CUDA_BUILD, [], None, ('cuda', '8.0-8.6-9.0+PTX', True)),
    ('cpu', CUDA_BUILD, [], None, ('cpu', '-', False)),  # unless asked
    ('auto', Installed('2.0.1', True, '8.0-9.0+PTX'), [], None, ('cpu', '-', False)),  # another version
    ('auto', CPU_BUILD, [], None, ('cpu', '-', True)),
    ('auto', NONE, [], None, ('cpu', '-', False)),
    # a GPU node builds for the default architectures and its own
    ('auto', NONE, ['8.6'], None, ('cuda', '8.0-9.0+PTX-8.6', False)),
    ('auto', CUDA_BUILD, ['8.6'], None, ('cuda', '8.0-9.0+PTX-8.6', False)),  # marker lists them in another order
    ('auto', CPU_BUILD, ['9.0'], None, ('cuda', '8.0-9.0+PTX', False)),
    ('cuda', Installed('2.1.0', True, '9.0'), [], '9.0', ('cuda', '9.0', True)),
    ('cuda', Installed('2.1.0', True, '9.0'), [], '8.0;9.0', ('cuda', '8.0-9.0', False)),
])
def test_build_plan(requested, installed, visible, arch_list, expected):
    assert plan(requested, '2.1.0', installed, visible, arch_list) == expected


def test_build_plan_of_this_environment():
    """The installed stack (CPU ops, no GPU here): nothing to rebuild, unless CUDA is asked for."""
    def run(*args, **env):
        return subprocess.run([sys.executable, str(ROOT / 'tools/mmcv_build_plan.py'), '2.1.0', '/nonexistent', *args],
                              capture_output=True, text=True, env=env or None)
    import torch
    if torch.cuda.is_available():
        pytest.skip('a GPU is visible: the plan builds CUDA ops')
    from mmcv.ops import get_compiling_cuda_version
    ops = 'cpu' if get_compiling_cuda_version() == 'not available' else 'cuda'
    assert run('auto').stdout.split()[::2] == [ops, 'yes']
    assert run('cuda').stdout.split() == ['cuda', '8.0-9.0+PTX', 'no']
    proc = run('cpu', FORCE_CUDA='1', PATH='/usr/bin:/bin')
    assert proc.returncode == 1 and 'setup_env.sh: --cpu contradicts FORCE_CUDA=1' in proc.stderr


@pytest.mark.parametrize('args, message', [
    (['--cuda', '--cpu'], 'setup_env.sh: give one of --cuda, --cpu'),
    (['--gpu'], "setup_env.sh: unknown argument '--gpu' (accepted: --cuda, --cpu)"),
])
def test_setup_rejects_bad_arguments_before_doing_anything(tmp_path, args, message):
    proc = subprocess.run(['bash', str(ROOT / 'tools/setup_env.sh'), *args], capture_output=True, text=True,
                          env={'MMPE_VENV': str(tmp_path / 'venv'), 'PATH': '/usr/bin:/bin'})
    assert proc.returncode == 2 and proc.stderr.strip() == message
    assert not (tmp_path / 'venv').exists()
