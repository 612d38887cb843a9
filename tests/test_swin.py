"""PESwinTransformer: a drop-in for mmdet's Swin with 'rpb', every encoding on any input size,
checkpoint conversion (mmdet, Microsoft/timm layout, RoPE-ViT authors' Swin RoPE), DINO and
UperNet training steps, and clear errors."""
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mmpe.converters import convert_microsoft_swin
from mmpe.models import PESwinTransformer
from mmpe.models.swin import SWIN_AXIAL_THETA
from mmpe.pos_embed import BACKBONE_ENCODINGS, PosEmbedSpec, RelativePositionBias, RoPEAxial, relative_position_index

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / 'data'
SMALL = dict(embed_dims=32, depths=(2, 2, 2, 2), num_heads=(2, 4, 8, 16), window_size=7, drop_path_rate=0.0)
TINY = dict(embed_dims=16, depths=(2,), num_heads=(2,), strides=(4,), out_indices=(0,), window_size=4,
            pretrain_img_size=32)
SWIN_T = dict(embed_dims=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), window_size=7, drop_path_rate=0.0)
SIZES = [(224, 224), (200, 312), (97, 131)]
ENCODINGS = BACKBONE_ENCODINGS['swin']
OUT_NORMS = {f'norm{i}.{p}' for i in range(4) for p in ('weight', 'bias')}


def _perturb(model: torch.nn.Module, seed: int = 0) -> None:
    """Move every parameter away from its init (LayerNorm 1/0, zero RPB tables in mmdet)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=gen))


def _mmdet_swin(**kwargs):
    from mmdet.models.backbones import SwinTransformer
    return SwinTransformer(**kwargs)


# ----------------------------------------------------------------------------------- 'rpb' == mmdet
@pytest.fixture(scope='module')
def mmdet_and_ours():
    torch.manual_seed(0)
    ref = _mmdet_swin(**SMALL)
    ref.eval()  # mmdet's SwinTransformer.train() returns None
    _perturb(ref)
    ours = PESwinTransformer(**SMALL).eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    return ref, ours


def test_state_dict_keys_are_mmdet_keys_both_ways(mmdet_and_ours):
    ref, ours = mmdet_and_ours
    assert set(ours.state_dict()) == set(ref.state_dict())  # order differs: our RPB sits after qkv
    fresh_ref = _mmdet_swin(**SMALL)
    fresh_ref.load_state_dict(ours.state_dict(), strict=True)
    loaded = fresh_ref.state_dict()
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)
    # inside a detector the hooks only touch the backbone's own keys
    wrapper = torch.nn.Module()
    wrapper.backbone = ours
    assert set(wrapper.state_dict()) == {'backbone.' + k for k in ref.state_dict()}


@pytest.mark.parametrize('size', SIZES)
def test_rpb_outputs_equal_mmdet(mmdet_and_ours, size):
    ref, ours = mmdet_and_ours
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        expected, actual = ref(x), ours(x)
    assert len(actual) == len(expected) == 4
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-5)


def test_pretrained_init_cfg_loads_mmdet_detector_checkpoint(mmdet_and_ours, tmp_path):
    ref, _ = mmdet_and_ours
    path = tmp_path / 'det.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in ref.state_dict().items()}}, path)
    ours = PESwinTransformer(**SMALL, init_cfg=dict(type='Pretrained', checkpoint=str(path))).eval()
    ours.init_weights()
    x = torch.randn(1, 3, 97, 131)
    with torch.no_grad():
        for a, e in zip(ours(x), ref(x)):
            torch.testing.assert_close(a, e, rtol=0, atol=1e-5)


@pytest.mark.parametrize('encoding', [dict(type='loope'), dict(type='rope_mixed', with_ape=True)])
def test_state_dicts_with_the_earlier_token_encoding_name_load(encoding, tmp_path):
    """The token encoding is ``pos_embed`` (as in PEVisionTransformer); state dicts saved with its earlier name
    ``token_pos_embed`` load unchanged: into the backbone, inside a detector (mmengine's load_from) and from a
    detector checkpoint through init_cfg, with nothing missing or unexpected."""
    torch.manual_seed(0)
    saved = PESwinTransformer(**TINY, pos_embed=encoding)
    _perturb(saved)
    old = {('token_' + k if k.startswith('pos_embed.') else k): v for k, v in saved.state_dict().items()}
    assert 'token_pos_embed.pos_embed' in old or 'token_pos_embed.context.head.weight' in old
    assert not any(k.startswith('pos_embed.') for k in old)

    model = PESwinTransformer(**TINY, pos_embed=encoding)
    model.load_state_dict(old, strict=True)
    detector = torch.nn.Module()
    detector.backbone = PESwinTransformer(**TINY, pos_embed=encoding)
    detector.load_state_dict({'backbone.' + k: v for k, v in old.items()}, strict=True)
    path = tmp_path / 'detector.pth'
    torch.save({'state_dict': {'backbone.' + k: v for k, v in old.items()}}, path)
    from_file = PESwinTransformer(**TINY, pos_embed=encoding)
    loaded = from_file.load_pretrained(str(path))
    assert (loaded.layout, loaded.missing_keys, loaded.unexpected_keys) == ('mmpe', [], [])
    for loaded_model in (model, detector.backbone, from_file):
        for key, value in saved.state_dict().items():
            torch.testing.assert_close(loaded_model.state_dict()[key], value, rtol=0, atol=0, msg=key)


# ------------------------------------------------------------------------------ every encoding
def _expected_shapes(batch, size, embed_dims=32, strides=(4, 8, 16, 32)):
    return [(batch, embed_dims * 2 ** i, math.ceil(size[0] / s), math.ceil(size[1] / s))
            for i, s in enumerate(strides)]


@pytest.mark.parametrize('encoding', ENCODINGS)
def test_output_shapes_any_size(encoding):
    torch.manual_seed(0)
    model = PESwinTransformer(**SMALL, pos_embed=dict(type=encoding)).eval()
    with torch.no_grad():
        for size in SIZES:
            outs = model(torch.randn(2, 3, *size))
            assert [tuple(o.shape) for o in outs] == _expected_shapes(2, size)
            assert all(torch.isfinite(o).all() for o in outs)


# parameters each encoding must train, by name pattern (None: the encoding has none)
TRAINED = {
    'rpb': r'w_msa\.pos_embed\.relative_position_bias_table$',
    'rope_mixed': r'w_msa\.pos_embed\.freqs$',
    'ape': r'^pos_embed\.pos_embed$',
    'loope': r'^pos_embed\.context\.head\.weight$',
    'rope_axial': None, 'sincos': None, 'none': None,
}


@pytest.mark.parametrize('encoding', ENCODINGS)
def test_gradients_reach_encoding_parameters(encoding):
    torch.manual_seed(0)
    model = PESwinTransformer(**SMALL, pos_embed=dict(type=encoding)).train()
    encoding_params = {n: p for n, p in model.named_parameters() if 'pos_embed' in n}
    sum(o.square().mean() for o in model(torch.randn(2, 3, 97, 131))).backward()
    if TRAINED[encoding] is None:
        assert encoding_params == {}
        return
    trained = {n: p for n, p in encoding_params.items() if re.search(TRAINED[encoding], n)}
    expected_count = {'rpb': 8, 'rope_mixed': 8}.get(encoding, 1)  # one per block, or one per model
    assert len(trained) == expected_count
    assert all(p.grad is not None for p in encoding_params.values())
    assert all(p.grad.abs().sum() > 0 for p in trained.values())


@pytest.mark.parametrize('encoding', ['rope_axial', 'rope_mixed'])
def test_rope_in_a_window_depends_only_on_relative_offsets(encoding):
    torch.manual_seed(0)
    model = PESwinTransformer(**SMALL, pos_embed=dict(type=encoding))
    rope = model.stages[1].blocks[1].attn.w_msa.pos_embed
    heads, head_dim = 4, 16
    q = torch.randn(1, heads, 1, head_dim).expand(-1, -1, 49, -1)  # one content at every token
    k = torch.randn(1, heads, 1, head_dim).expand(-1, -1, 49, -1)
    with torch.no_grad():
        scores = rope.rotate(q, (7, 7)) @ rope.rotate(k, (7, 7)).transpose(-1, -2)  # (1, h, 49, 49)
    offset = relative_position_index((7, 7)).flatten()  # same id <=> same (dy, dx)
    flat = scores.flatten(2)
    sums = torch.zeros(1, heads, 13 * 13).index_add_(2, offset, flat)
    counts = torch.zeros(13 * 13).index_add_(0, offset, torch.ones_like(offset, dtype=torch.float))
    per_offset = sums / counts
    torch.testing.assert_close(flat, per_offset[..., offset], rtol=1e-5, atol=1e-5)
    assert per_offset.std() > 0.1  # scores do change with the offset


def test_no_mask_reaches_attention_without_bias_or_shift(monkeypatch):
    """RoPE/none in non-shifted blocks call SDPA with attn_mask=None (fused kernels apply);
    shifted blocks pass the (B*nW, 1, N, N) shift mask; RPB always passes a bias."""
    seen = []
    sdpa = F.scaled_dot_product_attention

    def spy(q, k, v, attn_mask=None, **kwargs):
        seen.append(None if attn_mask is None else tuple(attn_mask.shape))
        return sdpa(q, k, v, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(F, 'scaled_dot_product_attention', spy)
    cfg = dict(SMALL, depths=(2,), num_heads=(2,), strides=(4,), out_indices=(0,))
    for encoding in ('rope_mixed', 'none', 'rpb'):
        seen.clear()
        PESwinTransformer(**cfg, pos_embed=dict(type=encoding))(torch.randn(2, 3, 56, 84))
        windows = 2 * (14 // 7) * (21 // 7)
        if encoding == 'rpb':  # the (heads, N, N) bias, with or without a leading 1
            assert math.prod(seen[0]) == 2 * 49 * 49 and seen[0][-3:] == (2, 49, 49)
            assert seen[1] == (windows, 2, 49, 49)
        else:
            assert seen == [None, (windows, 1, 49, 49)]


def test_with_cp_and_frozen_stages():
    torch.manual_seed(0)
    plain = PESwinTransformer(**SMALL, pos_embed=dict(type='rope_mixed')).train()
    ckpt = PESwinTransformer(**SMALL, pos_embed=dict(type='rope_mixed'), with_cp=True).train()
    ckpt.load_state_dict(plain.state_dict())
    x = torch.randn(1, 3, 64, 96)
    for model in (plain, ckpt):
        sum(o.sum() for o in model(x)).backward()
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(q.grad, p.grad, msg=name)

    frozen = PESwinTransformer(**SMALL, pos_embed=dict(type='ape'), frozen_stages=1).train()
    for name, p in frozen.named_parameters():
        should_freeze = name.startswith(('patch_embed.', 'pos_embed.', 'stages.0.', 'norm0.'))
        assert p.requires_grad != should_freeze, name
    assert not frozen.stages[0].training and frozen.stages[1].training


# ------------------------------------------------------------------ Microsoft layout (timm Swin)
def _timm_swin(img_size, window_size=7):
    """timm's Swin with SMALL's widths, built for ``img_size`` (timm fits its windows to the
    stage maps of that size), weights moved away from their init, in eval mode."""
    from timm.models.swin_transformer import SwinTransformer as TimmSwin
    torch.manual_seed(0)
    model = TimmSwin(img_size=img_size, embed_dim=32, depths=(2, 2, 2, 2), num_heads=(2, 4, 8, 16),
                     window_size=window_size, num_classes=10).eval()
    _perturb(model)
    return model


def _microsoft_checkpoint(timm_model, window_size=7):
    """timm's Swin weights in the Microsoft layout (downsample at the end of a stage, and the
    relative position index stored, non-persistent in timm). A block whose window timm fitted
    to a smaller map has a smaller RPB table: it goes into the middle of a full-window table
    (same offsets) whose other entries are random, since a fitted window must not use them."""
    from timm.models.swin_transformer import get_relative_position_index
    gen = torch.Generator().manual_seed(2)
    full = 2 * window_size - 1
    microsoft = {}
    for key, value in timm_model.state_dict().items():
        if key.endswith('relative_position_bias_table'):
            wh, ww = timm_model.get_submodule(key[:-len('.relative_position_bias_table')]).window_size
            table = torch.randn(full, full, value.shape[1], generator=gen)
            table[window_size - wh:window_size + wh - 1, window_size - ww:window_size + ww - 1] = \
                value.view(2 * wh - 1, 2 * ww - 1, -1)
            value = table.flatten(0, 1)
            microsoft[key.replace('bias_table', 'index')] = get_relative_position_index(window_size, window_size)
        key = re.sub(r'layers\.(\d+)\.downsample', lambda m: f'layers.{int(m[1]) - 1}.downsample', key)
        microsoft[key.replace('head.fc.', 'head.')] = value
    return microsoft


def _layer_norm(maps):
    """timm's raw stage maps, normalised like our (unit-initialised) output norms."""
    return [F.layer_norm(e.permute(0, 2, 3, 1), e.shape[1:2]).permute(0, 3, 1, 2) for e in maps]


def test_microsoft_layout_converts_like_timm(tmp_path):
    """timm's Swin is the Microsoft layout with downsample at the start of a stage. Its weights,
    written as a Microsoft checkpoint and loaded with convert_weights=True, give the same
    stage features (stages whose grid exceeds the window; timm, like Microsoft, stops
    shifting where the grid equals the window and mmdet does not)."""
    timm_model = _timm_swin(224)
    microsoft = _microsoft_checkpoint(timm_model)
    path = tmp_path / 'swin_microsoft.pth'
    torch.save({'model': microsoft}, path)
    ours = PESwinTransformer(**SMALL, convert_weights=True,
                             init_cfg=dict(type='Pretrained', checkpoint=str(path))).eval()
    ours.init_weights()
    converted = convert_microsoft_swin(microsoft)
    result = PESwinTransformer(**SMALL).load_state_dict(converted, strict=False)
    assert result.unexpected_keys == [] and set(result.missing_keys) == OUT_NORMS
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        expected = timm_model.forward_intermediates(x, indices=[0, 1, 2], intermediates_only=True)
        actual = ours(x)
    for a, e in zip(actual[:3], _layer_norm(expected)):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-4)


def test_window_fit_rule_is_timms_per_axis():
    """The window and shift of 'fit' on each map are timm's (``_calc_window_shift``), axis by
    axis; 'pad' keeps them."""
    from timm.models.swin_transformer import SwinTransformerBlock
    model = PESwinTransformer(**SMALL, window_fit='fit')
    pad = PESwinTransformer(**SMALL)
    for hw in [(7, 7), (6, 10), (10, 6), (3, 14), (8, 8), (7, 15), (1, 2)]:
        for shift in (0, 3):
            block = SwinTransformerBlock(dim=8, input_resolution=hw, num_heads=2, window_size=7, shift_size=shift)
            attn = model.stages[0].blocks[shift // 3].attn
            assert attn.window_and_shift(hw) == (block.window_size, block.shift_size), (hw, shift)
            assert pad.stages[0].blocks[shift // 3].attn.window_and_shift(hw) == ((7, 7), (shift, shift))


@pytest.mark.parametrize('size, window_size', [
    ((224, 224), 7),  # last stage 7x7 == window: one window, no shift
    ((224, 448), 7),  # last stage 7x14: no shift along the height only
    ((64, 128), 4),   # stage 2 4x8 as above; stage 3 2x4: a 2x4 window (the RPB table's middle rows)
])
def test_fit_outputs_equal_timm(size, window_size):
    """'fit' with RPB == timm's Swin built for the input size, all four stages. Sizes keep every
    shifted axis a multiple of the window: where it is not, timm pads after the cyclic shift
    and mmdet (and mmpe) before it."""
    timm_model = _timm_swin(size, window_size)
    converted = convert_microsoft_swin(_microsoft_checkpoint(timm_model, window_size))
    cfg = dict(SMALL, window_size=window_size)
    fit = PESwinTransformer(**cfg, window_fit='fit').eval()
    pad = PESwinTransformer(**cfg).eval()
    for model in (fit, pad):
        result = model.load_state_dict(converted, strict=False)
        assert result.unexpected_keys == [] and set(result.missing_keys) == OUT_NORMS
    x = torch.randn(2, 3, *size)
    with torch.no_grad():
        expected = _layer_norm(timm_model.forward_intermediates(x, indices=4, intermediates_only=True))
        actual, padded = fit(x), pad(x)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-5)
    assert (padded[3] - expected[3]).abs().max() > 1e-2  # mmdet's rule gives other features there


# ------------------------------------------------------------ RoPE-ViT authors' Swin RoPE checkpoints
def _authors_freqs(head_dim, num_heads, theta, rotate):
    """The authors' init_random_2d_freqs (rope-vit, SwinTransformer/models/swin_transformer_rope.py)."""
    mag = 1 / (theta ** (torch.arange(0, head_dim, 4)[: head_dim // 4].float() / head_dim))
    fx, fy = [], []
    for _ in range(num_heads):
        a = torch.rand(1) * 2 * torch.pi if rotate else torch.zeros(1)
        fx.append(torch.cat([mag * torch.cos(a), mag * torch.cos(torch.pi / 2 + a)]))
        fy.append(torch.cat([mag * torch.sin(a), mag * torch.sin(torch.pi / 2 + a)]))
    return torch.stack([torch.stack(fx), torch.stack(fy)])


def _authors_angles(freqs, window=7):
    """The authors' init_t_xy + compute_cis angles: (heads, N, d/2)."""
    t = torch.arange(window * window, dtype=torch.float32)
    t_x, t_y = t % window, torch.div(t, window, rounding_mode='floor')
    return t_x.unsqueeze(-1) @ freqs[0].unsqueeze(-2) + t_y.unsqueeze(-1) @ freqs[1].unsqueeze(-2)


def _authors_rotate(x, freqs, window=7):
    """The authors' apply_rotary_emb: channel pairs as complex numbers times e^(i angle)."""
    angles = _authors_angles(freqs, window)
    x_ = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
    return torch.view_as_real(x_ * torch.polar(torch.ones_like(angles), angles)).flatten(3)


def _authors_checkpoint(variant: str):
    """A state dict with the key layout of the authors' swin_rope_{variant}_tiny checkpoint
    (tests/data, a copy of shared/weights/): random values, except the fixed RoPE-Axial
    frequencies and the window coordinates, which are what the authors' code stores."""
    gen = torch.Generator().manual_seed(1)
    state_dict = {}
    for line in (DATA / f'naver_swin_rope_{variant}_tiny_patch4_window7_224_keys.txt').read_text().splitlines():
        if line.startswith('#') or not line.strip():
            continue
        key, shape = line.split('\t')
        shape = tuple(int(s) for s in re.findall(r'\d+', shape))
        if key.endswith('rope_freqs') and variant == 'axial':
            value = _authors_freqs(2 * shape[2], shape[1], 50.0, rotate=False)
        elif key.endswith(('rope_t_x', 'rope_t_y')):
            t = torch.arange(shape[0], dtype=torch.float32)
            value = t % 7 if key.endswith('x') else torch.div(t, 7, rounding_mode='floor')
        else:
            value = 0.1 * torch.randn(shape, generator=gen)
        state_dict[key] = value
    return state_dict


@pytest.mark.parametrize('variant', ['axial', 'mixed'])
def test_authors_swin_rope_checkpoint_converts(variant):
    state_dict = _authors_checkpoint(variant)
    model = PESwinTransformer(**SWIN_T, pos_embed=dict(type=f'rope_{variant}')).eval()
    converted = convert_microsoft_swin(state_dict, model.pos_embed_spec)
    result = model.load_state_dict(converted, strict=False)
    assert result.unexpected_keys == []
    assert set(result.missing_keys) == OUT_NORMS  # the classifier has one final norm, dropped as in mmdet

    attn = model.stages[0].blocks[0].attn.w_msa
    if variant == 'mixed':
        for key, value in state_dict.items():
            m = re.match(r'layers\.(\d+)\.blocks\.(\d+)\.attn\.rope_freqs$', key)
            if m:
                ours = model.stages[int(m[1])].blocks[int(m[2])].attn.w_msa.pos_embed.freqs
                torch.testing.assert_close(ours.detach(), value, rtol=0, atol=0)
        freqs = state_dict['layers.0.blocks.0.attn.rope_freqs']
    else:
        freqs = state_dict['layers.0.blocks.0.attn.rope_freqs']
        assert isinstance(attn.pos_embed, RoPEAxial) and attn.pos_embed.theta == 50.0
        # their fixed frequencies give our RoPE-Axial (theta 50) angles: x block, then y block
        torch.testing.assert_close(_authors_angles(freqs), attn.pos_embed.angles((7, 7)).expand(3, -1, -1),
                                   rtol=0, atol=1e-6)
    q = torch.randn(2, 3, 49, 32)
    torch.testing.assert_close(attn.pos_embed.rotate(q, (7, 7)), _authors_rotate(q, freqs), rtol=0, atol=1e-5)


def _authors_window_attention(block, x, hw, freqs, shift):
    """The authors' (Microsoft) shifted-window attention with RoPE on an (H, W) map that is a
    multiple of the window: roll, partition, rotate q and k, add the region mask, softmax.
    Their SwinTransformerBlock: if min(H, W) <= window, one window of side min(H, W), no shift."""
    attn, ws = block.attn.w_msa, 7
    b, _, c = x.shape
    h, w = hw
    if min(hw) <= ws:
        ws, shift = min(hw), 0
    x = x.view(b, h, w, c)
    mask = None
    if shift:
        x = torch.roll(x, (-shift, -shift), (1, 2))
        img = torch.zeros(1, h, w, 1)
        cnt = 0
        for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
                img[:, hs, wsl] = cnt
                cnt += 1
        ids = img.view(1, h // ws, ws, w // ws, ws).permute(0, 1, 3, 2, 4).reshape(-1, ws * ws)
        mask = (ids[:, None, :] - ids[:, :, None]).ne(0).float() * -100.0
    windows = x.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
    qkv = attn.qkv(windows).reshape(windows.shape[0], ws * ws, 3, attn.num_heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = _authors_rotate(qkv[0] * attn.scale, freqs, ws), _authors_rotate(qkv[1], freqs, ws), qkv[2]
    logits = q @ k.transpose(-2, -1)
    if mask is not None:
        logits = (logits.view(b, -1, attn.num_heads, ws * ws, ws * ws) + mask[None, :, None]).flatten(0, 1)
    out = attn.proj((logits.softmax(-1) @ v).transpose(1, 2).reshape(-1, ws * ws, c))
    out = out.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
    if shift:
        out = torch.roll(out, (shift, shift), (1, 2))
    return out.reshape(b, h * w, c)


@pytest.mark.parametrize('variant', ['axial', 'mixed'])
def test_converted_rope_attention_equals_authors_attention(variant):
    state_dict = _authors_checkpoint(variant)
    model = PESwinTransformer(**SWIN_T, pos_embed=dict(type=f'rope_{variant}')).eval()
    model.load_state_dict(convert_microsoft_swin(state_dict, model.pos_embed_spec), strict=False)
    x = torch.randn(2, 14 * 21, 96)
    with torch.no_grad():
        for j, shift in ((0, 0), (1, 3)):
            block = model.stages[0].blocks[j]
            freqs = state_dict[f'layers.0.blocks.{j}.attn.rope_freqs']
            torch.testing.assert_close(block.attn(x, (14, 21)), _authors_window_attention(block, x, (14, 21), freqs,
                                                                                            shift),
                                       rtol=0, atol=1e-5)


@pytest.mark.parametrize('variant', ['axial', 'mixed'])
def test_fit_attention_equals_authors_at_224(variant):
    """At 224 the authors' Swin attends in shifted 7x7 windows on the 56, 28 and 14 maps and in
    one unshifted window on the last 7x7 map: 'fit' matches them at every stage; 'pad' (mmdet)
    shifts on the last map and does not."""
    state_dict = _authors_checkpoint(variant)
    pos_embed = dict(type=f'rope_{variant}')
    fit = PESwinTransformer(**SWIN_T, pos_embed=pos_embed, window_fit='fit').eval()
    pad = PESwinTransformer(**SWIN_T, pos_embed=pos_embed).eval()
    for model in (fit, pad):
        model.load_state_dict(convert_microsoft_swin(state_dict, model.pos_embed_spec), strict=False)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for i, side in enumerate((56, 28, 14, 7)):
            x = torch.randn(2, side * side, 96 * 2 ** i, generator=gen)
            for j in (0, 1):
                block = fit.stages[i].blocks[j]
                expected = _authors_window_attention(block, x, (side, side),
                                                     state_dict[f'layers.{i}.blocks.{j}.attn.rope_freqs'], 3 * j)
                # float32 error scales with the outputs (max 2 at stage 0, 30 at stage 3 here)
                scale = expected.abs().max()
                torch.testing.assert_close(block.attn(x, (side, side)), expected, rtol=0, atol=1e-5 * scale)
        assert (pad.stages[3].blocks[1].attn(x, (7, 7)) - expected).abs().max() > 1e-2 * scale


@pytest.mark.parametrize('encoding', ['rope_axial', 'rope_mixed', 'rpb'])
def test_fit_on_non_square_inputs(encoding):
    """'fit' on non-square inputs gives the maps' shapes; on a map smaller than the window along
    both axes, plain and shifted blocks are both attention over the whole map (one window, its
    RoPE coordinates / RPB offsets, no shift)."""
    torch.manual_seed(0)
    model = PESwinTransformer(**SMALL, pos_embed=dict(type=encoding), window_fit='fit').eval()
    with torch.no_grad():
        for size in [(224, 96), (97, 131), (40, 300)]:  # last maps 7x3, 4x5, 2x10
            outs = model(torch.randn(2, 3, *size))
            assert [tuple(o.shape) for o in outs] == _expected_shapes(2, size)
            assert all(torch.isfinite(o).all() for o in outs)
        x = torch.randn(2, 4 * 5, 256)
        for block in model.stages[3].blocks:
            torch.testing.assert_close(block.attn(x, (4, 5)), block.attn.w_msa(x, (4, 5)), rtol=0, atol=0)


def test_rpb_bias_of_a_fitted_window():
    """A window fitted to a smaller map takes each offset's bias from the full window's table:
    timm's relative index of the small window into the middle of the table."""
    from timm.models.swin_transformer import get_relative_position_index
    rpb = RelativePositionBias((7, 7), 3)
    table = rpb.relative_position_bias_table.detach().view(13, 13, 3)
    for h, w in [(7, 7), (2, 7), (7, 3), (5, 5), (1, 1)]:
        middle = table[7 - h:6 + h, 7 - w:6 + w].reshape(-1, 3)
        expected = middle[get_relative_position_index(h, w)].permute(2, 0, 1)
        torch.testing.assert_close(rpb.bias((h, w)).detach(), expected, rtol=0, atol=0)
    with pytest.raises(ValueError, match=r'window \(7, 7\) takes windows up to that size, got \(8, 7\)'):
        rpb.bias((8, 7))


def test_converter_rejects_checkpoints_that_do_not_fit():
    mixed = _authors_checkpoint('mixed')
    with pytest.raises(ValueError, match="not RoPE-Axial with theta=50"):
        convert_microsoft_swin(mixed, PosEmbedSpec.parse(dict(type='rope_axial'), axial_theta=SWIN_AXIAL_THETA))
    with pytest.raises(ValueError, match="pos_embed type='rope_axial' without theta: the RoPE-Axial frequencies"):
        convert_microsoft_swin(mixed, dict(type='rope_axial'))
    with pytest.raises(ValueError, match="not RoPE-Axial with theta=100"):
        convert_microsoft_swin(_authors_checkpoint('axial'), dict(type='rope_axial', theta=100))
    with pytest.raises(ValueError, match="'rope_mixed' or 'rope_axial', not 'rpb'"):
        convert_microsoft_swin(mixed, dict(type='rpb'))
    mixed['layers.0.blocks.0.attn.rope_t_x'] = torch.arange(49.0)
    with pytest.raises(ValueError, match='window-local x coordinates'):
        convert_microsoft_swin(mixed, dict(type='rope_mixed'))


@pytest.mark.slow
def test_convert_swin_command_line(tmp_path):
    src, dst = tmp_path / 'authors.pth', tmp_path / 'converted.pth'
    state_dict = _authors_checkpoint('mixed')
    torch.save({'model': state_dict}, src)
    subprocess.run([sys.executable, str(ROOT / 'tools' / 'model_converters' / 'convert_swin.py'), str(src), str(dst),
                    '--pos-embed', 'rope_mixed'], check=True, cwd=ROOT)
    model = PESwinTransformer(**SWIN_T, pos_embed=dict(type='rope_mixed'),
                              init_cfg=dict(type='Pretrained', checkpoint=str(dst)))
    model.init_weights()
    torch.testing.assert_close(model.stages[2].blocks[5].attn.w_msa.pos_embed.freqs.detach(),
                               state_dict['layers.2.blocks.5.attn.rope_freqs'], rtol=0, atol=0)
    torch.testing.assert_close(model.stages[1].downsample.reduction.weight.detach(),
                               convert_microsoft_swin(state_dict, dict(type='rope_mixed'))[
                                   'stages.1.downsample.reduction.weight'], rtol=0, atol=0)


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize('kwargs, message', [
    (dict(pos_embed=dict(type='rope2d')), "type='rope2d' is not supported; accepted types"),
    (dict(pos_embed=dict(type='rope_mixed', thetta=10)), "unknown parameter"),
    (dict(window_size=64), r'window_size must be an int from 1 to the pretraining patch grid 56x56'),
    (dict(window_size=0), r'window_size must be an int'),
    (dict(embed_dims=20), r'head dimension divisible by 4.*num_heads\[0\] = 20 / 2 = 10'),
    (dict(num_heads=(2, 4, 8)), 'one entry per stage'),
    (dict(out_indices=(0, 4)), r'out_indices\[1\] must be an int from 0 to 3, got 4'),
    (dict(use_abs_pos_embed=True), "pos_embed=dict\\(type='ape'\\)"),
    (dict(window_fit='shrink'), "window_fit must be 'pad' or 'fit', got 'shrink'"),
    (dict(strides=(4, 2, 3, 2)), r'strides\[1:\] must be 2 .*got strides=\(4, 2, 3, 2\)'),
])
def test_bad_config_raises_clear_error(kwargs, message):
    cfg = dict(SMALL, pos_embed=dict(type='rope_mixed'))
    cfg.update(kwargs)
    with pytest.raises(ValueError, match=message):
        PESwinTransformer(**cfg)


def test_wrong_input_channels_raise_clear_error():
    model = PESwinTransformer(**SMALL)
    with pytest.raises(ValueError, match=r'in_channels=3.*got shape \(1, 1, 64, 64\)'):
        model(torch.randn(1, 1, 64, 64))
    with pytest.raises(ValueError, match='in_channels=3'):
        model(torch.randn(3, 64, 64))


# ------------------------------------------------------------------- DINO and UperNet
TINY_SWIN = dict(type='PESwinTransformer', embed_dims=32, depths=(2, 2, 2, 2), num_heads=(2, 4, 8, 16),
                 window_size=7, drop_path_rate=0.0)


@pytest.mark.parametrize('encoding', ['rope_mixed', 'ape'])
def test_dino_with_pe_swin_trains(encoding):
    from mmengine.hub import get_config

    from mmpe.testing import build_model, det_batch, finite_losses, train_step
    cfg = get_config('mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py').model
    cfg.backbone = dict(TINY_SWIN, out_indices=(1, 2, 3), pos_embed=dict(type=encoding))
    cfg.neck.in_channels = [64, 128, 256]
    cfg.num_queries = 100
    cfg.encoder.num_layers = 1
    cfg.decoder.num_layers = 2
    cfg.encoder.layer_cfg.ffn_cfg.feedforward_channels = 256
    cfg.decoder.layer_cfg.ffn_cfg.feedforward_channels = 256
    torch.manual_seed(0)
    model = build_model(cfg, 'mmdet')
    assert type(model.backbone).__name__ == 'PESwinTransformer'
    losses = train_step(model, det_batch([(3, 128, 160), (3, 112, 150)]))
    assert 'loss_cls' in losses and finite_losses(losses)
    grads = [p.grad for n, p in model.backbone.named_parameters() if 'pos_embed' in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize('encoding', ['rpb', 'loope'])
def test_upernet_with_pe_swin_trains(encoding):
    from mmengine.hub import get_config

    from mmpe.testing import build_model, finite_losses, seg_batch, train_step
    cfg = get_config('mmseg::swin/swin-tiny-patch4-window7-in1k-pre_upernet_8xb2-160k_ade20k-512x512.py')
    model_cfg = cfg.model
    model_cfg.pretrained = None
    model_cfg.backbone = dict(TINY_SWIN, pos_embed=dict(type=encoding))
    model_cfg.decode_head.in_channels = [32, 64, 128, 256]
    model_cfg.decode_head.channels = 32
    model_cfg.auxiliary_head.in_channels = 128
    model_cfg.auxiliary_head.channels = 16
    model_cfg.data_preprocessor.size = (96, 136)
    torch.manual_seed(0)
    model = build_model(model_cfg, 'mmseg')
    losses = train_step(model, seg_batch([(3, 96, 136)] * 2))
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(losses) and finite_losses(losses)
    assert model.backbone.patch_embed.projection.weight.grad.abs().sum() > 0


# ----------------------------------------------------------------------------------- mask_padding
@pytest.mark.parametrize('encoding', ['rpb', 'rope_axial', 'none'])
def test_mask_padding_changes_nothing_without_padding(encoding):
    """A map that fills its windows at every stage (window 4: 128 px -> 32, 16, 8, 4 patches) has no padding:
    the same outputs with and without ``mask_padding``, shifted blocks included."""
    cfg = dict(SMALL, window_size=4, pos_embed=dict(type=encoding))
    torch.manual_seed(0)
    plain = PESwinTransformer(**cfg).eval()
    masked = PESwinTransformer(**cfg, mask_padding=True).eval()
    masked.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        for a, b in zip(plain(x), masked(x)):
            assert torch.equal(a, b)


def _gathered_window_attention(attn, x, hw, window, shift):
    """Reference of masked-padding window attention: for each window of the padded, cyclically shifted map, the
    tokens of the map (not the padding) attend among themselves only (gathered, no -inf anywhere), with the
    encoding's bias and the shift mask's -100 between regions. x (B, H*W, C) -> (B, H*W, C)."""
    from mmpe.models.swin import shift_window_mask
    (h, w), ws = hw, window
    b, _, c = x.shape
    h_pad, w_pad = -(-h // ws) * ws, -(-w // ws) * ws
    grid = F.pad(x.view(b, h, w, c), (0, 0, 0, w_pad - w, 0, h_pad - h))
    index = F.pad(torch.arange(h * w).view(h, w), (0, w_pad - w, 0, h_pad - h), value=-1)
    grid = torch.roll(grid, (-shift, -shift), (1, 2))
    index = torch.roll(index, (-shift, -shift), (0, 1))
    region = shift_window_mask((h_pad, w_pad), (ws, ws), (shift, shift), x.device, x.dtype) if shift else None
    heads, head_dim = attn.num_heads, attn.head_dim
    bias = attn.pos_embed.bias((ws, ws)) if attn.pos_embed is not None else torch.zeros(heads, ws * ws, ws * ws)
    out = torch.zeros(b, h * w, c)
    for k, (r, col) in enumerate((r, col) for r in range(0, h_pad, ws) for col in range(0, w_pad, ws)):
        tokens = grid[:, r:r + ws, col:col + ws].reshape(b, ws * ws, c)
        ids = index[r:r + ws, col:col + ws].reshape(-1)
        keep = (ids >= 0).nonzero()[:, 0]
        qkv = attn.qkv(tokens).reshape(b, ws * ws, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
        q, key, v = (t[:, :, keep] for t in qkv)
        scores = q @ key.transpose(-1, -2) * attn.scale + bias[:, keep][:, :, keep]
        if region is not None:
            scores = scores + region[k][keep][:, keep]
        y = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, len(keep), c)
        out[:, ids[keep]] = attn.proj(y)
    return out


@pytest.mark.parametrize('shift', [0, 2])
@pytest.mark.parametrize('encoding', ['rpb', 'none'])
def test_mask_padding_attends_only_to_the_map(encoding, shift):
    """With padding (a 6x7 map in windows of 4), ``mask_padding`` gives each window's attention over the map's own
    tokens only, equal to gathering them (no mask values) with the shift mask between regions."""
    from mmpe.models.swin import ShiftWindowAttention
    from mmpe.pos_embed import build_pos_embed
    torch.manual_seed(0)
    spec = PosEmbedSpec.parse(dict(type=encoding))
    block = ShiftWindowAttention(16, 2, window_size=4, shift_size=shift, mask_padding=True,
                                 pos_embed=build_pos_embed(spec, 'attention', num_heads=2, head_dim=8,
                                                           window_size=(4, 4))).eval()
    _perturb(block)
    x = torch.randn(2, 6 * 7, 16)
    with torch.no_grad():
        expected = _gathered_window_attention(block.w_msa, x, (6, 7), 4, shift)
        assert torch.allclose(block(x, (6, 7)), expected, atol=1e-5)
        block.mask_padding = False  # the default lets padding take part: another result
        assert not torch.allclose(block(x, (6, 7)), expected, atol=1e-3)


def test_mask_padding_is_a_bool():
    with pytest.raises(TypeError, match=r"mask_padding must be True or False, got 'yes'"):
        PESwinTransformer(**TINY, mask_padding='yes')
