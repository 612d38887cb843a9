"""Weights by name (hf://, timm://) from a Hugging Face cache built here, offline; layout detection
of every checkpoint layout both backbones read; clear errors for missing, foreign or unreadable
checkpoints."""
import argparse
import contextlib
import importlib
import logging
import re
import sys
import time
import types
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger
from mmengine.runner import CheckpointLoader, load_checkpoint

from mmpe.converters import (
    SWIN_LAYOUTS,
    VIT_LAYOUTS,
    PretrainedLoad,
    convert_microsoft_swin,
    describe_state_dict,
    swin_layout,
    timm_vit_layout,
)
from mmpe.converters import checkpoint as ckpt
from mmpe.models import PESwinTransformer, PEVisionTransformer
from mmpe.pos_embed import PosEmbedSpec

DATA = Path(__file__).resolve().parent / 'data'
VIT = dict(img_size=64, patch_size=16, embed_dims=64, depth=2, num_heads=4, layer_scale_init_value=1e-5)
TIMM_VIT = dict(img_size=64, embed_dim=64, depth=2, num_heads=4)
SWIN = dict(embed_dims=32, depths=(2, 2), num_heads=(2, 4), strides=(4, 2), out_indices=(0, 1), window_size=4,
            pretrain_img_size=64, drop_path_rate=0.0)
REVISION = 'a' * 40


def _perturbed(model: torch.nn.Module, seed: int = 0) -> dict:
    """The state dict of ``model`` with every floating tensor moved away from its init."""
    gen = torch.Generator().manual_seed(seed)
    return {k: v + 0.05 * torch.randn(v.shape, generator=gen) if v.is_floating_point() else v
            for k, v in model.state_dict().items()}


def _timm_swin_small() -> dict:
    """A small timm Swin's state dict (timm's layout), weights perturbed."""
    from timm.models.swin_transformer import SwinTransformer
    torch.manual_seed(0)
    return _perturbed(SwinTransformer(img_size=64, embed_dim=32, depths=(2, 2), num_heads=(2, 4), window_size=4,
                                      num_classes=10))


def _microsoft_layout(timm_swin: dict) -> dict:
    """timm Swin weights in the Microsoft layout (timm's earlier one too): each patch merging at the
    end of its stage (timm puts it at the start of the next), the classifier named 'head'."""
    return {re.sub(r'layers\.(\d+)\.downsample', lambda m: f'layers.{int(m[1]) - 1}.downsample', k)
            .replace('head.fc.', 'head.'): v for k, v in timm_swin.items()}


def _authors_swin_rope(microsoft: dict) -> dict:
    """The RoPE-ViT authors' Swin RoPE layout (tests/data key lists) of the same small Swin:
    no RPB tables, per-block attn.rope_freqs (2, heads, d/2) and window coordinates."""
    gen = torch.Generator().manual_seed(3)
    out = {}
    for key, value in microsoft.items():
        if key.endswith('relative_position_bias_table'):
            block = key[:-len('relative_position_bias_table')]
            heads = value.shape[1]
            out[block + 'rope_freqs'] = torch.randn(2, heads, 32 * 2 ** int(key.split('.')[1]) // heads // 2,
                                                    generator=gen)
            t = torch.arange(16.)
            out[block + 'rope_t_x'], out[block + 'rope_t_y'] = t % 4, torch.div(t, 4, rounding_mode='floor')
        elif not key.endswith('relative_position_index'):
            out[key] = value
    return out


def _authors_deit3(eva: dict) -> dict:
    """The RoPE-ViT authors' DeiT-III RoPE-Mixed layout (deit/models_v2_rope.py) of timm Eva weights:
    one flat ``freqs`` (2, depth, heads * d/2) and grid buffers instead of ``rope.freqs``."""
    out = {k: v for k, v in eva.items() if k != 'rope.freqs'}
    out['freqs'] = eva['rope.freqs'].flatten(2)
    t = torch.arange(16.)
    out['freqs_t_x'], out['freqs_t_y'] = t % 4, torch.div(t, 4, rounding_mode='floor')
    return out


def _real_key_layout(name: str) -> dict:
    """A state dict with the keys and shapes of a published checkpoint (tests/data), for detection."""
    state = {}
    for line in (DATA / name).read_text().splitlines():
        if line.strip() and not line.startswith('#'):
            key, shape = line.split('\t')
            state[key] = torch.empty(tuple(int(s) for s in re.findall(r'\d+', shape)))
    return state


@pytest.fixture(scope='module')
def checkpoints():
    """{name: (state dict or checkpoint, file name in the hub repo)} in every layout."""
    torch.manual_seed(0)
    eva = _perturbed(timm.create_model('vit_small_patch16_rope_mixed_224', pretrained=False, **TIMM_VIT))
    deit = _perturbed(timm.create_model('deit3_small_patch16_224', pretrained=False, **TIMM_VIT))
    from mmdet.models.backbones import SwinTransformer
    mmdet = _perturbed(SwinTransformer(**{k: v for k, v in SWIN.items() if k != 'pretrain_img_size'}))
    timm_swin = _timm_swin_small()
    microsoft = _microsoft_layout(timm_swin)
    return {
        'timm_eva': (eva, 'model.safetensors'),
        'timm_vit': (deit, 'model.safetensors'),
        # the authors' files hold {'model': ...} and pickle their argparse options
        'authors_deit3': ({'model': _authors_deit3(eva), 'args': argparse.Namespace(lr=1e-3)}, 'pytorch_model.bin'),
        'mmpe_vit': ({'state_dict': _perturbed(PEVisionTransformer(**VIT, pos_embed=dict(type='rope_mixed')))},
                     'vit_mmpe.pth'),
        'mmdet_swin': ({'state_dict': {'backbone.' + k: v for k, v in mmdet.items()}}, 'det.pth'),
        'microsoft_swin': ({'model': microsoft}, 'swin_tiny.pth'),
        'timm_swin': (timm_swin, 'model.safetensors'),
        'authors_swin': ({'model': _authors_swin_rope(microsoft), 'config': argparse.Namespace(window=4)},
                         'pytorch_model.bin'),
        'mmpe_swin': (_perturbed(PESwinTransformer(**SWIN, pos_embed=dict(type='rope_mixed'))), 'model.safetensors'),
    }


def _write(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == '.safetensors':
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in obj.items()}, str(path))
    else:
        torch.save(obj, path)


def _write_hub_repo(home: Path, repo: str, obj, filename: str) -> None:
    """``obj`` as ``filename`` of the hub repo ``repo`` (revision REVISION, also 'main') under HF_HOME ``home``."""
    folder = home / 'hub' / ('models--' + repo.replace('/', '--'))
    _write(folder / 'snapshots' / REVISION / filename, obj)
    (folder / 'refs').mkdir()
    (folder / 'refs' / 'main').write_text(REVISION)


@pytest.fixture(scope='module')
def hub(tmp_path_factory, checkpoints):
    """HF_HOME with huggingface_hub's cache layout (hub/models--OWNER--REPO/{refs/main,snapshots/REV/FILE})
    holding every checkpoint as test/<name> (and the Eva weights where timm:// looks for them);
    HF_HUB_OFFLINE=1. huggingface_hub reads both variables on import: its constants are reloaded."""
    home = tmp_path_factory.mktemp('hf_home')
    repos = {f'test/{name}': (obj, filename) for name, (obj, filename) in checkpoints.items()}
    repos['timm/vit_small_patch16_rope_mixed_224.naver_in1k'] = checkpoints['timm_eva']
    for repo, (obj, filename) in repos.items():
        _write_hub_repo(home, repo, obj, filename)
    from huggingface_hub import constants
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('HF_HOME', str(home))
        mp.setenv('HF_HUB_OFFLINE', '1')
        mp.delenv('HF_HUB_CACHE', raising=False)
        importlib.reload(constants)
        yield home
    importlib.reload(constants)


def _features(model, size=(64, 96)):
    torch.manual_seed(1)
    with torch.no_grad():
        return model.eval()(torch.randn(1, 3, *size))


def _loaded(cls, checkpoint, **kwargs):
    """The backbone built from its config (mmdet's registry) with init_cfg Pretrained, initialised."""
    from mmdet.registry import MODELS
    model = MODELS.build(dict(type=cls.__name__, **kwargs, init_cfg=dict(type='Pretrained', checkpoint=checkpoint)))
    model.init_weights()
    return model


CASES = [  # (checkpoint, backbone, kwargs)
    ('timm_eva', PEVisionTransformer, dict(VIT, pos_embed=dict(type='rope_mixed'))),
    ('timm_vit', PEVisionTransformer, dict(VIT, pos_embed=dict(type='ape'))),
    ('authors_deit3', PEVisionTransformer, dict(VIT, pos_embed=dict(type='rope_mixed'))),
    ('mmpe_vit', PEVisionTransformer, dict(VIT, pos_embed=dict(type='rope_mixed'))),
    ('mmdet_swin', PESwinTransformer, dict(SWIN)),
    ('microsoft_swin', PESwinTransformer, dict(SWIN)),
    ('timm_swin', PESwinTransformer, dict(SWIN)),
    ('authors_swin', PESwinTransformer, dict(SWIN, pos_embed=dict(type='rope_mixed'))),
    ('mmpe_swin', PESwinTransformer, dict(SWIN, pos_embed=dict(type='rope_mixed'))),
]


@pytest.mark.parametrize('name, cls, kwargs', CASES, ids=[c[0] for c in CASES])
def test_hf_checkpoint_loads_like_its_local_file(hub, name, cls, kwargs):
    """hf://OWNER/REPO (weight file found by name) through init_cfg gives the same weights and
    features as the same file by its local path, and as the file's tensors converted directly."""
    by_name = _loaded(cls, f'hf://test/{name}', **kwargs)
    path = ckpt.cached_file(f'hf://test/{name}')
    assert path.startswith(str(hub / 'hub' / f'models--test--{name}' / 'snapshots' / REVISION))
    by_path = _loaded(cls, path, **kwargs)
    for a, b in zip(_features(by_name), _features(by_path)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    # Independently of the loader: the file's tensors (converted where the layout needs it) are in the model.
    state = ckpt.read_checkpoint(path)
    state = state.get('state_dict', state.get('model', state))
    if name == 'timm_swin':
        state = _microsoft_layout(state)  # the same weights, converted below as Microsoft's
    if name in ('microsoft_swin', 'timm_swin'):
        state = convert_microsoft_swin(state)
    if name == 'authors_swin':
        state = convert_microsoft_swin(state, dict(type='rope_mixed'))
    model_state = by_name.state_dict()
    for key, value in state.items():
        key = key[len('backbone.'):] if key.startswith('backbone.') else key
        if key in model_state and model_state[key].shape == value.shape:
            torch.testing.assert_close(model_state[key], value, rtol=0, atol=0, msg=key)


def test_authors_deit3_layout_equals_timm_eva(hub):
    """The authors' DeiT-III file (flat freqs, pickled argparse options) and timm's Eva file of the
    same weights give the same model."""
    kwargs = dict(VIT, pos_embed=dict(type='rope_mixed'))
    for a, b in zip(_features(_loaded(PEVisionTransformer, 'hf://test/authors_deit3', **kwargs)),
                    _features(_loaded(PEVisionTransformer, 'hf://test/timm_eva', **kwargs))):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_timm_scheme_and_load_from(hub, checkpoints):
    """timm://MODEL.TAG is the hub file timm's pretrained config names; mmengine's load_checkpoint
    (load_from, tools/test.py) reads hf:// and timm:// through the registered schemes."""
    name = 'timm://vit_small_patch16_rope_mixed_224.naver_in1k'
    assert ckpt.timm_source(name) == 'hf://timm/vit_small_patch16_rope_mixed_224.naver_in1k'
    assert ckpt.timm_source('timm://vit_small_patch16_rope_mixed_224') == ckpt.timm_source(name)  # default tag
    kwargs = dict(VIT, pos_embed=dict(type='rope_mixed'))
    for a, b in zip(_features(_loaded(PEVisionTransformer, name, **kwargs)),
                    _features(_loaded(PEVisionTransformer, 'hf://test/timm_eva', **kwargs))):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert CheckpointLoader._get_checkpoint_loader(name) is ckpt.load_from_timm
    model = PESwinTransformer(**SWIN, pos_embed=dict(type='rope_mixed'))
    load_checkpoint(model, 'hf://test/mmpe_swin/model.safetensors', strict=True)
    expected = checkpoints['mmpe_swin'][0]
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, expected[key], rtol=0, atol=0)


def test_checkpoint_loader_reads_timm_names(hub, checkpoints):
    """mmengine's CheckpointLoader (load_from, tools/test.py) gives the file timm:// stands for as it was
    written (timm's Eva layout, unconverted), on the CPU without a map_location."""
    expected = checkpoints['timm_eva'][0]
    for kwargs in ({}, dict(map_location='cpu')):
        state = CheckpointLoader.load_checkpoint('timm://vit_small_patch16_rope_mixed_224.naver_in1k', **kwargs)
        assert state.keys() == expected.keys() and 'rope.freqs' in state
        for key, value in expected.items():
            assert state[key].device.type == 'cpu'
            torch.testing.assert_close(state[key], value, rtol=0, atol=0, msg=key)
    with pytest.raises(ckpt.CheckpointNotCachedError, match='repo timm/vit_base_patch16_rope_224.naver_in1k'):
        CheckpointLoader.load_checkpoint('timm://vit_base_patch16_rope_224.naver_in1k')


# ------------------------------------------------------------------------------- timm Swin-T
TIMM_SWIN_T = 'swin_tiny_patch4_window7_224'
# 224: timm leaves the last stage's 7x7 map (one window) unshifted; 224x448: its 7x14 map shifts along
# the width only. Every map is a multiple of the window: elsewhere timm pads after the cyclic shift,
# mmdet and mmpe before it (tests/test_swin.py).
TIMM_SWIN_SIZES = [(224, 224), (224, 448)]
OUT_NORM_KEYS = [f'norm{i}.{p}' for i in range(4) for p in ('weight', 'bias')]


@pytest.fixture(scope='module')
def timm_swin_t(hub, tmp_path_factory):
    """A random-weight timm Swin-T (weights perturbed) by three names: timm's layout as
    timm://swin_tiny_patch4_window7_224.ms_in1k (in the hub cache) and as a file, timm's earlier
    (Microsoft) layout as a file; and timm's stage maps (NCHW, before any norm) of these weights at
    each of TIMM_SWIN_SIZES, from timm's model built for that size: {size: (images, maps)}."""
    torch.manual_seed(0)
    state = _perturbed(timm.create_model(TIMM_SWIN_T, pretrained=False))
    _write_hub_repo(hub, f'timm/{TIMM_SWIN_T}.ms_in1k', state, 'model.safetensors')
    folder = tmp_path_factory.mktemp('timm_swin_t')
    _write(folder / 'timm.safetensors', state)
    _write(folder / 'older_timm.pth', {'model': _microsoft_layout(state)})
    names = dict(timm_name=f'timm://{TIMM_SWIN_T}.ms_in1k', timm_file=str(folder / 'timm.safetensors'),
                 older_timm_file=str(folder / 'older_timm.pth'))
    gen = torch.Generator().manual_seed(1)
    expected = {}
    for size in TIMM_SWIN_SIZES:
        model = timm.create_model(TIMM_SWIN_T, pretrained=False, img_size=size).eval()
        model.load_state_dict(state)
        images = torch.randn(1, 3, *size, generator=gen)
        with torch.no_grad():
            expected[size] = (images, model.forward_intermediates(images, intermediates_only=True))
    return names, expected


@pytest.mark.parametrize('source, layout', [('timm_name', 'timm'), ('timm_file', 'timm'),
                                            ('older_timm_file', 'microsoft')])
def test_timm_swin_t_gives_timms_stage_features(timm_swin_t, source, layout):
    """A timm Swin-T checkpoint (timm's layout by timm:// name or by path, timm's earlier layout by
    path) loads into PESwinTransformer (RPB) with every weight but the output norms, the layout
    logged, and with window_fit='fit' (timm's window rule) gives timm's four stage maps at 224x224
    and 224x448. timm has no per-stage norms (its final norm is dropped, as mmdet does), so ours
    stay unit LayerNorms: timm's maps are layer-normalised likewise."""
    names, expected = timm_swin_t
    with _log_messages() as messages:
        model = _loaded(PESwinTransformer, names[source], window_fit='fit').eval()
    assert f'checkpoint {names[source]}: detected layout {layout!r}: {SWIN_LAYOUTS[layout]}' in messages
    assert f'checkpoint {names[source]}: missing keys (in PESwinTransformer, not in the checkpoint): ' \
        f'{OUT_NORM_KEYS}' in messages
    assert not any('unexpected keys' in m for m in messages)
    for size, (images, maps) in expected.items():
        with torch.no_grad():
            actual = model(images)
        for i, (a, e) in enumerate(zip(actual, maps)):
            e = F.layer_norm(e.permute(0, 2, 3, 1), e.shape[1:2]).permute(0, 3, 1, 2)
            torch.testing.assert_close(a, e, rtol=0, atol=1e-5, msg=lambda m: f'{size}, stage {i}: {m}')


def test_hub_names_files_and_revisions(hub, tmp_path):
    assert ckpt.parse_hf('hf://o/r') == ckpt.HubFile('o/r')
    assert ckpt.parse_hf('hf://o/r/sub/f.pth@v1') == ckpt.HubFile('o/r', 'sub/f.pth', 'v1')
    assert ckpt.parse_hf('hf://o/r@v1/f.pth') == ckpt.HubFile('o/r', 'f.pth', 'v1')  # huggingface_hub's order
    for bad in ('hf://o', 'hf://o/', 'hf://o/r/', 'hf://o/r@', 'hf:///r'):
        with pytest.raises(ValueError, match='expected hf://OWNER/REPO'):
            ckpt.parse_hf(bad)
    # A named file and a revision (a ref and a commit) resolve in the cache.
    folder = hub / 'hub' / 'models--test--mmpe_vit'
    assert ckpt.cached_file('hf://test/mmpe_vit/vit_mmpe.pth') == str(folder / 'snapshots' / REVISION / 'vit_mmpe.pth')
    assert ckpt.cached_file(f'hf://test/mmpe_vit@{REVISION}') == ckpt.cached_file('hf://test/mmpe_vit')
    assert ckpt.cached_file('hf://test/mmpe_vit@v2') is None
    # Without FILE: model.safetensors before pytorch_model.bin; several .pth are ambiguous.
    snapshot = hub / 'hub' / 'models--test--mmpe_swin' / 'snapshots' / REVISION
    (snapshot / 'pytorch_model.bin').write_bytes(b'')
    assert ckpt.cached_file('hf://test/mmpe_swin').endswith('model.safetensors')
    (snapshot / 'pytorch_model.bin').unlink()
    snapshot = hub / 'hub' / 'models--test--microsoft_swin' / 'snapshots' / REVISION
    (snapshot / 'other.pth').write_bytes(b'')
    try:
        with pytest.raises(ValueError, match=r'several \.pth files \(other\.pth, swin_tiny\.pth\); name one'):
            ckpt.cached_file('hf://test/microsoft_swin')
    finally:
        (snapshot / 'other.pth').unlink()


def test_offline_miss_fails_at_once_naming_repo_cache_and_command(hub):
    """A name that is not cached, offline: one clear error, at once (a hang check, not a benchmark)."""
    for name, repo in (('hf://nobody/missing', 'nobody/missing'),
                       ('timm://vit_base_patch16_rope_224.naver_in1k', 'timm/vit_base_patch16_rope_224.naver_in1k')):
        start = time.perf_counter()
        with pytest.raises(ckpt.CheckpointNotCachedError) as err:
            _loaded(PEVisionTransformer, name, **VIT)
        elapsed = time.perf_counter() - start
        message = str(err.value)
        assert f'repo {repo}' in message and 'HF_HUB_OFFLINE=1' in message
        assert str(hub / 'hub' / ('models--' + repo.replace('/', '--'))) in message
        assert f'python tools/misc/fetch_weights.py {name}' in message
        assert elapsed < 5, f'{name}: the offline miss took {elapsed:.1f} s'
    url = 'https://example.org/weights/swin.pth'
    with pytest.raises(ckpt.CheckpointNotCachedError, match=r'looked in .*checkpoints/swin\.pth.*fetch_weights'):
        ckpt.resolve(url)
    with pytest.raises(ValueError, match="timm has no pretrained weights named 'no_such_model'"):
        ckpt.resolve('timm://no_such_model')


def test_online_miss_downloads_the_weight_file(hub, monkeypatch, tmp_path):
    """Not cached and online: the repo's files are listed and its weight file by name downloaded,
    URLs go where mmengine caches them; a hub that cannot be reached is the not-cached error.
    (huggingface_hub's and torch.hub's downloads are stubbed: no network here.)"""
    from huggingface_hub.errors import LocalEntryNotFoundError
    monkeypatch.setattr(ckpt, 'offline', lambda: False)
    monkeypatch.setattr('huggingface_hub.HfApi.list_repo_files',
                        lambda self, repo, revision=None, token=None: ['README.md', 'a.pth', 'pytorch_model.bin'])
    calls = []
    monkeypatch.setattr('huggingface_hub.hf_hub_download', lambda repo, filename, revision=None, token=None:
                        calls.append((repo, filename, revision)) or filename)
    assert ckpt.resolve('hf://o/r@v1') == 'pytorch_model.bin' and calls == [('o/r', 'pytorch_model.bin', 'v1')]

    def unreachable(*args, **kwargs):
        raise LocalEntryNotFoundError('connection refused')
    monkeypatch.setattr('huggingface_hub.hf_hub_download', unreachable)
    with pytest.raises(ckpt.CheckpointNotCachedError, match='repo o/r, the hub cannot be reached: connection refused'):
        ckpt.resolve('hf://o/r/f.pth')

    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setattr(torch.hub, 'download_url_to_file', lambda url, dst: Path(dst).write_text(url))
    path = ckpt.resolve('https://example.org/v1/swin.pth')
    assert path == str(tmp_path / 'torch' / 'hub' / 'checkpoints' / 'swin.pth')
    assert Path(path).read_text() == 'https://example.org/v1/swin.pth'


# ------------------------------------------------------------------------------- layout detection
def test_layout_detection_of_every_layout(checkpoints):
    from mmpe.converters import backbone_state_dict
    vit = {name: timm_vit_layout(backbone_state_dict(checkpoints[name][0]))
           for name in ('timm_eva', 'timm_vit', 'authors_deit3', 'mmpe_vit')}
    assert vit == dict(timm_eva='eva', timm_vit='vit', authors_deit3='deit3', mmpe_vit='mmpe')
    swin = {name: swin_layout(backbone_state_dict(checkpoints[name][0]))
            for name in ('mmdet_swin', 'microsoft_swin', 'timm_swin', 'authors_swin', 'mmpe_swin')}
    assert swin == dict(mmdet_swin='mmdet', microsoft_swin='microsoft', timm_swin='timm', authors_swin='rope_vit',
                        mmpe_swin='mmpe')
    for variant in ('axial', 'mixed'):  # the key lists of the published checkpoints
        assert swin_layout(_real_key_layout(f'naver_swin_rope_{variant}_tiny_patch4_window7_224_keys.txt')) == \
            'rope_vit'
    # DINOv3's two layouts (Meta's, transformers'): tests/test_dinov3_layouts.py
    assert set(VIT_LAYOUTS) == set(vit.values()) | {'dinov3', 'hf_dinov3'} and set(SWIN_LAYOUTS) == set(swin.values())


@contextlib.contextmanager
def _log_messages():
    """The messages logged to mmengine's current logger inside the block."""
    messages = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def test_detected_layout_is_logged(hub):
    with _log_messages() as messages:
        _loaded(PESwinTransformer, 'hf://test/authors_swin', **dict(SWIN, pos_embed=dict(type='rope_mixed')))
    assert "checkpoint hf://test/authors_swin: detected layout 'rope_vit': the RoPE-ViT authors' Swin RoPE " \
        '(Microsoft layout with attn.rope_freqs)' in messages


@pytest.mark.parametrize('name, cls, kwargs, looks_like', [
    ('timm_vit', PESwinTransformer, SWIN, "a ViT state dict, layout 'vit': timm VisionTransformer"),
    ('authors_deit3', PESwinTransformer, SWIN, "a ViT state dict, layout 'deit3': the RoPE-ViT authors' DeiT-III"),
    ('microsoft_swin', PEVisionTransformer, VIT, "a Swin state dict, layout 'microsoft': Microsoft Swin"),
    ('mmdet_swin', PEVisionTransformer, VIT, "a Swin state dict, layout 'mmdet': mmdet/mmseg Swin"),
])
def test_checkpoint_of_another_model_is_an_error(hub, name, cls, kwargs, looks_like):
    with pytest.raises(ValueError, match=f'checkpoint hf://test/{name} is not a (ViT|Swin) checkpoint: it looks '
                                         f'like {looks_like}'):
        _loaded(cls, f'hf://test/{name}', **kwargs)


def test_foreign_state_dict_and_unreadable_file(tmp_path):
    resnet = tmp_path / 'resnet.pth'
    torch.save({'state_dict': {'conv1.weight': torch.zeros(1), 'layer1.0.conv1.weight': torch.zeros(1)}}, resnet)
    assert describe_state_dict({'conv1.weight': 0}) == \
        'neither a ViT nor a Swin state dict (1 entries: conv1.weight, ...)'
    text = tmp_path / 'notes.pth'
    text.write_text('not a checkpoint')
    for cls, kwargs in ((PEVisionTransformer, VIT), (PESwinTransformer, SWIN)):
        with pytest.raises(ValueError, match=f'checkpoint {resnet} is not a .* checkpoint: it looks like neither a '
                                             f'ViT nor a Swin state dict .*conv1.weight'):
            _loaded(cls, str(resnet), **kwargs)
        with pytest.raises(ValueError, match=f"'{text}' is not a checkpoint file that safetensors or "
                                             r'torch.load\(weights_only=True\) can read'):
            _loaded(cls, str(text), **kwargs)
        with pytest.raises(FileNotFoundError, match='does not exist'):
            _loaded(cls, str(tmp_path / 'absent.pth'), **kwargs)


def test_pickled_metadata_is_read_as_plain_dicts(tmp_path, monkeypatch):
    """A yacs-like config (a dict subclass with attributes, as the authors' Swin files pickle) and
    argparse options from a module that is not installed: read as OrderedDicts, never executed."""
    module = types.ModuleType('fake_yacs')

    class CfgNode(dict):
        def __init__(self, items):
            super().__init__(items)
            self.__dict__.update(immutable=False, deprecated=set())
    CfgNode.__module__, CfgNode.__qualname__ = 'fake_yacs', 'CfgNode'
    module.CfgNode = CfgNode
    monkeypatch.setitem(sys.modules, 'fake_yacs', module)
    path = tmp_path / 'swin.pth'
    weight = torch.randn(3)
    torch.save({'model': {'w': weight}, 'config': CfgNode({'MODEL': CfgNode({'TYPE': 'swin'})}),
                'args': argparse.Namespace(lr=0.1)}, path)
    monkeypatch.delitem(sys.modules, 'fake_yacs')
    checkpoint = ckpt.read_checkpoint(str(path))
    assert checkpoint['config'] == {'MODEL': {'TYPE': 'swin'}} and type(checkpoint['config']) is OrderedDict
    assert vars(checkpoint['args']) == {'lr': 0.1}
    torch.testing.assert_close(checkpoint['model']['w'], weight, rtol=0, atol=0)


def _as_numpy1(path):
    """Rewrite the torch zip file ``path`` as numpy 1.x pickles its arrays and scalars
    (numpy.core.multiarray.* instead of numpy 2's numpy._core.multiarray.*)."""
    with zipfile.ZipFile(path) as source:
        records = [(info, source.read(info)) for info in source.infolist()]
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as target:
        for info, data in records:
            if info.filename.endswith('/data.pkl'):
                assert b'numpy._core.multiarray' in data
                data = data.replace(b'numpy._core.multiarray', b'numpy.core.multiarray')
            target.writestr(info, data)


class Executes:
    """Pickles as a call of print: a checkpoint must never run it."""

    def __reduce__(self):
        return print, ('EXECUTED',)


def test_checkpoint_of_a_numpy1_stack_loads_without_running_code(tmp_path, capsys):
    """An mmengine checkpoint written with numpy 1.x (arrays and scalars in its message hub and
    random state, argparse options in its meta) loads: tensors and numpy values as saved, the
    options as a plain dict. A file that pickles a call of anything else is still refused."""
    from mmengine.logging import HistoryBuffer
    weight = torch.randn(3, 2)
    rng = np.random.RandomState(3).get_state()
    path = tmp_path / 'iter_2.pth'
    torch.save({'meta': {'iter': 2, 'seed': np.int64(7), 'args': argparse.Namespace(lr=0.1)},
                'state_dict': OrderedDict(weight=weight),
                'message_hub': {'log_scalars': {'train/loss': HistoryBuffer([np.float64(0.5), 0.25], [1, 1])}},
                'rng_state': {'numpy': rng}}, path)
    _as_numpy1(path)
    allowed = set(torch.serialization.get_safe_globals())
    checkpoint = ckpt.read_checkpoint(str(path))
    assert set(torch.serialization.get_safe_globals()) == allowed  # what import mmpe allowed stays allowed
    torch.testing.assert_close(checkpoint['state_dict']['weight'], weight, rtol=0, atol=0)
    assert checkpoint['meta']['seed'] == 7 and type(checkpoint['meta']['seed']) is np.int64
    assert vars(checkpoint['meta']['args']) == {'lr': 0.1}
    np.testing.assert_array_equal(checkpoint['message_hub']['log_scalars']['train/loss'].data[0], [0.5, 0.25])
    assert checkpoint['rng_state']['numpy'][0] == rng[0]
    np.testing.assert_array_equal(checkpoint['rng_state']['numpy'][1], rng[1])

    evil = tmp_path / 'evil.pth'
    torch.save({'state_dict': {'w': weight}, 'meta': Executes(), 'seed': np.float64(1.0)}, evil)
    _as_numpy1(evil)
    with pytest.raises(ValueError, match=f"'{evil}' is not a checkpoint file that safetensors or "
                                         r'torch.load\(weights_only=True\) can read'):
        ckpt.read_checkpoint(str(evil))
    assert 'EXECUTED' not in capsys.readouterr().out


def test_nothing_fits_is_an_error_and_partial_match_a_warning(tmp_path, checkpoints):
    """Keys of the right layout but none of the model's: an error; an RPB checkpoint for a
    RoPE-Mixed model: loads, with the missing and unused keys listed."""
    only_head = tmp_path / 'head.pth'
    torch.save({'blocks.0.unknown': torch.zeros(1), 'head.weight': torch.zeros(2, 2)}, only_head)
    with pytest.raises(ValueError, match=f"checkpoint {only_head} fills none of the ViT backbone's weights: it looks "
                                         "like a ViT state dict, layout 'vit'"):
        _loaded(PEVisionTransformer, str(only_head), **VIT)
    rpb = tmp_path / 'rpb.pth'
    torch.save(checkpoints['mmdet_swin'][0], rpb)
    with _log_messages() as messages:
        _loaded(PESwinTransformer, str(rpb), **dict(SWIN, pos_embed=dict(type='rope_mixed')))
    text = '\n'.join(messages)
    assert 'missing keys' in text and 'stages.0.blocks.0.attn.w_msa.pos_embed.freqs' in text
    assert 'unexpected keys' in text and 'relative_position_bias_table' in text


def test_load_pretrained_returns_what_it_loaded(checkpoints, tmp_path):
    """Both backbones load through the one sequence and return what it did: the detected layout, the keys the
    conversion dropped (classifier; the authors' Swin also its derived masks and window coordinates), the missing
    and the unexpected keys. The expected keys are read off the checkpoints here."""
    deit = checkpoints['timm_vit'][0]
    _write(tmp_path / 'deit.pth', deit)
    loaded = PEVisionTransformer(**VIT, pos_embed=dict(type='ape')).load_pretrained(str(tmp_path / 'deit.pth'))
    assert isinstance(loaded, PretrainedLoad)
    assert (loaded.checkpoint, loaded.layout, loaded.missing_keys, loaded.unexpected_keys) == \
        (str(tmp_path / 'deit.pth'), 'vit', [], [])
    assert set(loaded.ignored_keys) == {k for k in deit if k.startswith('head.')} != set()

    authors = checkpoints['authors_swin'][0]['model']
    _write(tmp_path / 'authors.pth', {'model': authors})
    model = PESwinTransformer(**SWIN, pos_embed=dict(type='rope_mixed'))
    loaded = model.load_pretrained(str(tmp_path / 'authors.pth'))
    assert (loaded.layout, loaded.unexpected_keys) == ('rope_vit', [])
    assert set(loaded.missing_keys) == {f'norm{i}.{p}' for i in (0, 1) for p in ('weight', 'bias')}  # per-stage norms
    dropped = {k for k in authors if re.search(r'(\.attn_mask|\.rope_t_[xy])$|^(head|norm)\.', k)}
    assert set(loaded.ignored_keys) == dropped and any(k.endswith('rope_t_x') for k in dropped)


def test_pos_embed_is_parsed_once_per_backbone(checkpoints, tmp_path, monkeypatch):
    """A backbone parses its pos_embed dict once, at construction; its blocks, stages and the conversion of a
    checkpoint on load get the parsed spec."""
    parsed = []
    parse = PosEmbedSpec.parse.__func__

    def counting_parse(cls, cfg, axial_theta=None):
        if not isinstance(cfg, PosEmbedSpec):
            parsed.append(cfg)
        return parse(cls, cfg, axial_theta)

    monkeypatch.setattr(PosEmbedSpec, 'parse', classmethod(counting_parse))
    for name, cls, kwargs in (('timm_eva', PEVisionTransformer, VIT), ('authors_swin', PESwinTransformer, SWIN)):
        path = tmp_path / f'{name}.pth'
        _write(path, checkpoints[name][0])
        _loaded(cls, str(path), **kwargs, pos_embed=dict(type='rope_mixed'))
    assert parsed == [dict(type='rope_mixed')] * 2
