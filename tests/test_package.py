"""mmpe as an installed package: one home for the version, 'mmpe::' config names (editable install and
a wheel installed outside the repository), a user's config inheriting mmpe's, trained by mmpe's and
mmdet's train.py."""
import importlib.metadata
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mmengine.config import Config

import mmpe
from mmpe.datasets import generate_detection_set
from mmpe.engine.config_names import config_file

ROOT = Path(__file__).resolve().parents[1]
DINO = 'dino/dino-4scale_swin-t-rope-mixed_8xb2-12e_coco.py'
DEMO = 'demo/dino_swin-rope-mixed_synthetic.py'
# A user's project: inherits mmpe's demo detector, reuses its test pipeline (the OpenMMLab idiom that
# needs mmpe's bases to build in mmdet's scope), trains one iteration without validation.
USER_CONFIG = f'''
_base_ = 'mmpe::{DEMO}'
custom_imports = dict(imports=['mmpe'], allow_failed_imports=False)
val_dataloader = dict(dataset=dict(pipeline=_base_.test_pipeline))
train_cfg = dict(max_iters=1, val_interval=10)
default_hooks = dict(checkpoint=dict(interval=1))
'''


def scopes(cfg) -> set:
    """Every ``_scope_`` value in a config."""
    found = set()

    def walk(value):
        if isinstance(value, dict):
            if '_scope_' in value:
                found.add(value['_scope_'])
            for item in value.values():
                walk(item)
        elif isinstance(value, (list, tuple)):
            for item in value:
                walk(item)
    walk(cfg.to_dict() if isinstance(cfg, Config) else cfg)
    return found


def test_version_has_one_home():
    """mmpe.__version__ is mmpe/version.py's, setup.py writes no version of its own, and the installed
    metadata (made by setup.py) carries the same."""
    assert re.fullmatch(r'\d+\.\d+\.\d+', mmpe.__version__)
    assert "version=read_version()" in (ROOT / 'setup.py').read_text()
    assert not re.search(r"version=['\"]", (ROOT / 'setup.py').read_text())
    assert importlib.metadata.version('mmpe') == mmpe.__version__


def test_config_names_resolve_in_the_editable_install(tmp_path, monkeypatch):
    """'mmpe::' names point into the package's .mim/configs, which in the repository is configs/;
    Config.fromfile takes them from any directory."""
    path = config_file(f'mmpe::{DINO}')
    assert path == str(Path(mmpe.__file__).parent / '.mim' / 'configs' / DINO)
    assert Path(path).resolve() == ROOT / 'configs' / DINO
    monkeypatch.chdir(tmp_path)
    assert Config.fromfile(f'mmpe::{DINO}').to_dict() == Config.fromfile(str(ROOT / 'configs' / DINO)).to_dict()
    assert Config.fromfile('mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py').model.type == 'DINO'
    assert config_file('configs/x.py') == 'configs/x.py'  # paths stay paths
    assert config_file('mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py').endswith(
        'mmdet/.mim/configs/dino/dino-4scale_r50_8xb2-12e_coco.py')
    with pytest.raises(ValueError, match=r"config 'mmfoo::dino/a.py': mmengine resolves <package>::<config> names "
                                         r"for the packages \[.*'mmpe'.*\], not 'mmfoo'"):
        config_file('mmfoo::dino/a.py')
    with pytest.raises(FileNotFoundError, match=r'mmpe/\.mim/configs/dino/missing\.py'):
        config_file('mmpe::dino/missing.py')


def test_user_config_builds_in_the_toolbox_scope(tmp_path):
    """A config inheriting 'mmpe::...' has no 'mmpe' registry scope: its datasets and transforms are
    mmdet's (mmengine's root registry has no PackDetInputs and has mmcv's LoadAnnotations)."""
    from mmdet.datasets.transforms import LoadAnnotations, PackDetInputs
    from mmdet.registry import DATASETS
    from mmdet.utils import register_all_modules
    (tmp_path / 'user.py').write_text(USER_CONFIG)
    cfg = Config.fromfile(str(tmp_path / 'user.py'))
    assert cfg.model.backbone.type == 'PESwinTransformer' and cfg.default_scope == 'mmdet'
    assert 'mmpe' not in scopes(cfg)
    register_all_modules()
    dataset = DATASETS.build(dict(cfg.val_dataloader.dataset, lazy_init=True))
    assert [type(t) for t in dataset.pipeline.transforms][-2:] == [LoadAnnotations, PackDetInputs]


@pytest.mark.slow  # builds a wheel, trains twice in subprocesses (about 60 s)
def test_wheel_outside_the_repository(tmp_path):
    """``pip wheel .`` holds the configs and tools; installed into a target folder (no dependencies)
    and run from another directory with only that folder added to the path: mmpe is imported from
    there, 'mmpe::' names and their relative bases resolve inside it, and a user's config inheriting
    mmpe's trains one iteration with mmpe's installed tools/train.py and with mmdet's, the latter
    given mmpe first (mmdet's reads the config before custom_imports can take effect, and mmengine
    knows 'mmpe::' only once mmpe is imported: without that, mmengine's assertion)."""
    wheels, target, work = tmp_path / 'wheels', tmp_path / 'site', tmp_path / 'project'
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', str(ROOT), '--no-deps', '--no-build-isolation', '-q',
                    '-w', str(wheels)], check=True, capture_output=True)
    wheel, = wheels.glob('mmpe-*.whl')
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--no-deps', '-q', '--target', str(target), str(wheel)],
                   check=True, capture_output=True)
    generate_detection_set(str(work / 'data'), num_train=2, num_val=1, seed=0)
    (work / 'user.py').write_text(USER_CONFIG)
    env = dict(os.environ, PYTHONPATH=str(target), MMPE_SYNTHETIC_DET=f'{work}/data/', OMP_NUM_THREADS='1')

    def python(*args, check=True):
        proc = subprocess.run([sys.executable, *args], cwd=work, env=env, capture_output=True, text=True, timeout=600)
        assert not check or proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
        return proc

    proc = python('-c', textwrap.dedent(f'''
        import mmpe
        from mmengine.config import Config
        from mmengine.hub import get_config
        from mmpe.engine.config_names import config_file
        print('out:', mmpe.__file__)
        print('out:', config_file('mmpe::{DINO}'))
        print('out:', get_config('mmpe::{DINO}').model.backbone.pos_embed)  # mmengine's own look-up
        print('out:', Config.fromfile('mmpe::{DEMO}').model.backbone.embed_dims)  # base '../dino/...'
    '''))
    package = target / 'mmpe'
    printed = [line[5:] for line in proc.stdout.splitlines() if line.startswith('out: ')]
    assert printed == [str(package / '__init__.py'), str(package / '.mim' / 'configs' / DINO), "{'type': 'rope_mixed'}",
                       '32']
    assert not (package / '.mim' / 'configs').is_symlink()

    python(str(package / '.mim' / 'tools' / 'train.py'), 'user.py', '--work-dir', 'work_mmpe')
    assert (work / 'work_mmpe' / 'iter_1.pth').is_file()

    mmdet_train = Path(importlib.util.find_spec('mmdet').origin).parent / '.mim' / 'tools' / 'train.py'
    proc = python(str(mmdet_train), 'user.py', '--work-dir', 'work_mmdet', check=False)
    assert proc.returncode != 0 and 'mmengine does not support to load mmpe config' in proc.stderr
    python('-c', f'import sys, runpy, mmpe; sys.argv = ["train.py", "user.py", "--work-dir", "work_mmdet"]; '
                 f'runpy.run_path("{mmdet_train}", run_name="__main__")')
    assert (work / 'work_mmdet' / 'iter_1.pth').is_file()
