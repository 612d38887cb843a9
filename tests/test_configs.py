"""Every config under configs/ loads, builds on CPU and trains one step; encodings and norms
get no weight decay; weights are named by a known scheme; bad configs fail clearly."""
import copy
import functools
import glob
import os.path as osp
from urllib.parse import urlparse

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope

import mmpe  # noqa: F401
from mmpe.converters.checkpoint import parse_hf, timm_source
from mmpe.engine.preflight import config_checkpoints
from mmpe.testing import build_model, det_batch, finite_losses, seg_batch, train_step

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# every runnable config; configs/**/_base_/ hold pieces that runnable configs inherit, as in mmdet/mmseg
CONFIGS = sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
                 if '/_base_/' not in p)
# The DINO / UperNet configs of the encoding comparison, which start from published ImageNet weights.
COMPARISON = [c for c in CONFIGS if c.startswith(('configs/dino/', 'configs/upernet/', 'configs/mask2former/'))
              or c == 'configs/dino_swin_rope.py']


@functools.lru_cache(maxsize=None)
def _parsed(path: str) -> Config:
    return Config.fromfile(osp.join(ROOT, path))


def load(path: str) -> Config:
    cfg = copy.deepcopy(_parsed(path))
    cfg.model.backbone.init_cfg = None  # never load pretrained weights in tests
    cfg.model.pop('pretrained', None)
    return cfg


def build(cfg: Config):
    torch.manual_seed(0)
    return build_model(cfg.model, cfg.default_scope)


def test_every_config_is_collected():
    assert 'configs/dino_swin_rope.py' in CONFIGS
    assert len([c for c in CONFIGS if c.startswith('configs/dino/')]) >= 14  # ViT-B, ViT-L, DINOv3 B and L
    assert len([c for c in CONFIGS if c.startswith('configs/upernet/')]) >= 14
    assert len([c for c in CONFIGS if c.startswith('configs/mask2former/')]) == 4
    assert len([c for c in COMPARISON if 'dinov3' in c]) == 4
    assert len(COMPARISON) == 33


@pytest.mark.slow
@pytest.mark.parametrize('path', CONFIGS)
def test_config_builds_and_trains_one_step(path):
    cfg = load(path)
    if cfg.default_scope == 'mmdet':
        num_classes = cfg.model.bbox_head.num_classes
        model = build(cfg)
        batch = det_batch([(3, 256, 320)], num_classes=num_classes)
    else:
        cfg.model.data_preprocessor.size = (128, 160)
        model = build(cfg)
        batch = seg_batch([(3, 128, 160)] * 2, num_classes=cfg.model.decode_head.num_classes)
    losses = train_step(model, batch)
    assert finite_losses(losses)
    grads = [p.grad for n, p in model.backbone.named_parameters() if 'pos_embed' in n and p.requires_grad]
    assert all(g is not None for g in grads)

    # No weight decay for encoding parameters, CLS token and the backbone's norms.
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    decay_of = {id(p): g['weight_decay'] for g in optim_wrapper.optimizer.param_groups for p in g['params']}
    no_decay = [n for n, m in model.backbone.named_modules()
                if isinstance(m, (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.modules.batchnorm._NormBase))]
    for name, param in model.backbone.named_parameters():
        module = name.rsplit('.', 1)[0]
        if 'pos_embed' in name or 'cls_token' in name or module in no_decay:
            assert decay_of[id(param)] == 0, f'{name} has weight decay in {path}'
    DefaultScope._instance_dict.clear()


@pytest.mark.parametrize('path', COMPARISON)
def test_config_names_its_weights_by_a_known_scheme(path):
    """Every DINO / UperNet config names one ImageNet checkpoint: hf://OWNER/REPO, a timm model
    with pretrained weights on the hub, or an https URL (nothing is resolved or downloaded)."""
    [name] = config_checkpoints(_parsed(path).model)
    if name.startswith('hf://'):
        assert parse_hf(name).repo.startswith('naver-ai/')
    elif name.startswith('timm://'):
        assert timm_source(name) == f'hf://timm/{name[len("timm://"):]}'
    else:
        url = urlparse(name)
        assert url.scheme == 'https' and url.netloc == 'github.com' and url.path.endswith('.pth'), name


def test_bad_encoding_name_fails_clearly():
    cfg = load('configs/dino_swin_rope.py')
    cfg.model.backbone.pos_embed = dict(type='rope_mixd')
    with pytest.raises(ValueError, match=r"type='rope_mixd'.*accepted types: 'ape', 'sincos', 'rope_axial'"):
        build(cfg)
