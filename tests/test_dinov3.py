"""DINOv3 backbones: PEVisionTransformer loaded with timm's DINOv3 weights (random here, perturbed) gives
timm's patch tokens; DINOv3's RoPE (centred coordinates, rotate_half pairing, rows first) and its
coordinate augmentation against DINOv3's formulas written out; the options' errors."""
import importlib
import logging
import math
import re

import pytest
import timm
import torch

from mmpe.converters import checkpoint as ckpt
from mmpe.converters import timm_vit_layout
from mmpe.models import PEVisionTransformer
from mmpe.pos_embed import RoPEAxial, RotateFixed, parse_pos_embed_cfg, rope_axial_tables, rope_coords, rotate_pairs
from mmpe.pos_embed.rope import coords_affine

DINOV3_ROPE = dict(type='rope_axial', theta=100.0, coords='centered', pairing='half', axes='yx')
COMMON = dict(num_reg_tokens=4, layer_scale_init_value=1e-5, norm_eps=1e-5, pos_embed=DINOV3_ROPE)
SIZES = dict(small=dict(embed_dims=384, depth=12, num_heads=6),
             small_plus=dict(embed_dims=384, depth=12, num_heads=6, mlp_type='swiglu', swiglu_align_to=8),
             base=dict(embed_dims=768, depth=12, num_heads=12),
             large=dict(embed_dims=1024, depth=24, num_heads=16))
CPU = torch.device('cpu')


def dinov3_kwargs(name: str, **overrides) -> dict:
    """PEVisionTransformer arguments of timm's ``vit_{size}_patch16_dinov3{,_qkvb}``."""
    size, qkvb = re.fullmatch(r'vit_(\w+?)_patch16_dinov3(_qkvb)?', name).groups()
    bias = dict(qkv_bias=True, mask_k_bias=True) if qkvb else dict(qkv_bias=False)
    return {**SIZES[size], **bias, **COMMON, **overrides}


def perturbed_timm(name: str, seed: int = 0, **kwargs):
    """timm's model, eval mode, with every weight moved off its init: LayerScale about 0.5 (so that
    every block counts), the rest plus noise (biases, norms, tokens non-trivial)."""
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(0.5 + 0.2 * noise if 'gamma' in key else p + 0.05 * noise)
    return model


def save(folder, model) -> str:
    """model's state dict as ``folder``/model.safetensors; returns its path."""
    from safetensors.torch import save_file
    path = folder / 'model.safetensors'
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return str(path)


def max_differences(model, timm_model, hw, middle: int):
    """For one random (2, 3, H, W) input: the largest |ours - timm| of the patch tokens of block
    ``middle`` (no norm: residual stream, in units of its largest |value|) and of the last block
    (after the final norm, absolute)."""
    x = torch.randn(2, 3, *hw)
    with torch.no_grad():
        (mid,) = timm_model.forward_intermediates(x, indices=[middle], norm=False, intermediates_only=True)
        last = timm_model.forward_features(x)[:, timm_model.num_prefix_tokens:]
        ours_mid, ours_last = model(x)
    return ((ours_mid - mid).abs().max() / mid.abs().max()).item(), \
        (ours_last.flatten(2).transpose(1, 2) - last).abs().max().item()


def assert_equals_timm(name, tmp_path, sizes, **kwargs):
    """mmpe's model, loaded from timm's state dict file by mmpe's loader, gives timm's tokens to 1e-5:
    the final ones (normalised) absolutely, a middle block's (the residual stream, whose values
    grow with depth: float32 rounding grows with them) relative to their largest magnitude."""
    timm_model = perturbed_timm(name, **kwargs)
    depth = len(timm_model.blocks)
    middle = (depth - 1) // 2
    model = PEVisionTransformer(**dinov3_kwargs(name, **kwargs), out_indices=(middle, depth - 1))
    model.load_pretrained(save(tmp_path, timm_model))
    model.eval()
    torch.manual_seed(0)
    for hw in sizes:
        mid, last = max_differences(model, timm_model, hw, middle)
        assert mid < 1e-5 and last < 1e-5, (name, hw, mid, last)


@pytest.mark.parametrize('name', ['vit_small_patch16_dinov3', 'vit_small_plus_patch16_dinov3_qkvb'])
def test_short_dinov3_equals_timm(name, tmp_path):
    """Fast: the S and S+ (SwiGLU, masked k bias) widths cut to 2 blocks, at 224 x 224."""
    assert_equals_timm(name, tmp_path, [(224, 224)], depth=2)


DINOV3_MODELS = [f'vit_{size}_patch16_dinov3{bias}' for size in SIZES for bias in ('', '_qkvb')]
# The grids of the equality tests: 224 x 224, 512 x 640 and an odd 13 x 21 grid. The B models with the masked
# k bias differ from those without by their qkv biases only (the S models test the bias at every grid), and
# the L models differ from the B ones by depth and width only (B tests every grid), so those are compared at
# 224 x 224 alone: the L model at 512 x 640 and 208 x 336 costs 43 s of the suite.
GRIDS = [(224, 224), (512, 640), (208, 336)]


@pytest.mark.slow
@pytest.mark.parametrize('name', DINOV3_MODELS)
def test_dinov3_equals_timm(name, tmp_path):
    """Every DINOv3 model timm has (S, S+, B, L, with and without qkv bias)."""
    only_224 = name == 'vit_base_patch16_dinov3_qkvb' or name.startswith('vit_large')
    assert_equals_timm(name, tmp_path, GRIDS[:1] if only_224 else GRIDS)


def test_wrong_rope_layout_is_far_from_timm(tmp_path):
    """The equality above tells the layouts apart: interleaved pairs or the x block first (timm PR
    #2692 dropped rotate_half once) change the tokens far beyond 1e-5."""
    timm_model = perturbed_timm('vit_small_patch16_dinov3', depth=2)
    path = save(tmp_path, timm_model)
    for wrong in (dict(pairing='interleaved'), dict(axes='xy')):
        model = PEVisionTransformer(**dinov3_kwargs('vit_small_patch16_dinov3', depth=2,
                                                    pos_embed={**DINOV3_ROPE, **wrong}), out_indices=(0, 1))
        model.load_pretrained(path)
        assert min(max_differences(model.eval(), timm_model, (224, 224), 0)) > 1e-2, wrong


# ------------------------------------------------------------------------------- the RoPE pieces


def rope_rotate_half(x):
    """DINOv3's rope_rotate_half: [x0 .. x5] -> [-x3, -x4, -x5, x0, x1, x2]."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([-x2, x1], dim=-1)


def test_half_pairing_equals_rotate_half_formula():
    """rotate_pairs(pairing='half') is DINOv3's x cos + rotate_half(x) sin with tables [a, a]; eager
    (in place) and autograd paths alike, and RotateFixed's gradients (double backward too) check out."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, 16, dtype=torch.float64)
    angles = torch.randn(7, 8, dtype=torch.float64)
    cos, sin = angles.cos(), angles.sin()
    expected = x * torch.cat([cos, cos], -1) + rope_rotate_half(x) * torch.cat([sin, sin], -1)
    torch.testing.assert_close(rotate_pairs(x, cos, sin, 'half'), expected, rtol=0, atol=1e-15)
    torch.testing.assert_close(rotate_pairs(x.requires_grad_(), cos, sin, 'half'), expected, rtol=0, atol=1e-15)
    assert torch.autograd.gradcheck(RotateFixed.apply, (x, cos, sin, 'half'))
    assert torch.autograd.gradgradcheck(RotateFixed.apply, (x, cos, sin, 'half'))


def dinov3_coords(hw, normalize_coords: str) -> torch.Tensor:
    """DINOv3's RopePositionEmbedding coordinates (H*W, 2) = [row, column] in [-1, 1], float64."""
    h, w = hw
    n_h, n_w = {'separate': (h, w), 'min': (min(hw),) * 2, 'max': (max(hw),) * 2}[normalize_coords]
    coords_h = torch.arange(0.5, h, dtype=torch.float64) / n_h
    coords_w = torch.arange(0.5, w, dtype=torch.float64) / n_w
    return 2.0 * torch.stack(torch.meshgrid(coords_h, coords_w, indexing='ij'), dim=-1).flatten(0, 1) - 1.0


def affine_coords(affine, hw) -> torch.Tensor:
    """(H*W, 2) = [row, column] of the affine map of the index grid, float64."""
    a_x, b_x, a_y, b_y = affine
    y, x = torch.meshgrid(torch.arange(hw[0], dtype=torch.float64), torch.arange(hw[1], dtype=torch.float64),
                          indexing='ij')
    return torch.stack([a_y * y + b_y, a_x * x + b_x], dim=-1).flatten(0, 1)


@pytest.mark.parametrize('normalize_coords', ['separate', 'min', 'max'])
@pytest.mark.parametrize('hw', [(13, 21), (4, 4), (7, 3)])
def test_centered_coords_and_angles_follow_dinov3(hw, normalize_coords):
    """coords='centered' is DINOv3's coordinates times 2 pi; RoPE-Axial's angles (theta 100, rows first)
    are DINOv3's 2 pi c / period_k, period_k = 100 ** (2k / (d/2)), in its order [rows, columns]."""
    affine = coords_affine(hw, (14, 14), 'centered', None, normalize_coords)
    expected = dinov3_coords(hw, normalize_coords)
    torch.testing.assert_close(affine_coords(affine, hw), 2 * math.pi * expected, rtol=0, atol=1e-12)
    d = 32
    periods = 100.0 ** (2 * torch.arange(d // 4, dtype=torch.float64) / (d // 2))
    angles = (2 * math.pi * expected[:, :, None] / periods).flatten(1)  # (H*W, d/2): rows, then columns
    cos, sin = rope_axial_tables(hw, 5, d, 100.0, CPU, 'yx', affine)
    assert torch.equal(cos[:5], torch.ones(5, d // 2)) and torch.equal(sin[:5], torch.zeros(5, d // 2))
    torch.testing.assert_close(cos[5:].double(), angles.cos(), rtol=0, atol=2e-6)
    torch.testing.assert_close(sin[5:].double(), angles.sin(), rtol=0, atol=2e-6)


AUG = dict(shift=0.3, jitter=1.5, rescale=2.0)


@pytest.mark.parametrize('normalize_coords', ['separate', 'min', 'max'])
@pytest.mark.parametrize('hw', [(13, 21), (6, 4)])
def test_centered_augmentation_follows_dinov3(hw, normalize_coords):
    """With coord_aug, 'centered' coordinates are DINOv3's augmented ones (times 2 pi) for the same five
    uniform numbers (the first draw of torch's global generator): shift by U(-shift, shift) per axis,
    then scale about the origin by exp(U(-ln jitter, ln jitter)) per axis and exp(U(-ln rescale,
    ln rescale)) for both."""
    torch.manual_seed(5)
    u_x, u_y, j_x, j_y, r = (2 * torch.rand(5, dtype=torch.float64) - 1).tolist()
    torch.manual_seed(5)
    affine = coords_affine(hw, (14, 14), 'centered', AUG, normalize_coords)
    coords = dinov3_coords(hw, normalize_coords)  # [row, column]
    coords = coords + torch.tensor([u_y, u_x], dtype=torch.float64) * AUG['shift']
    coords = coords * torch.tensor([j_y, j_x], dtype=torch.float64).mul(math.log(AUG['jitter'])).exp()
    coords = coords * math.exp(r * math.log(AUG['rescale']))
    torch.testing.assert_close(affine_coords(affine, hw), 2 * math.pi * coords, rtol=0, atol=1e-12)


def test_windows_use_centered_coords_of_the_window():
    """ViTDet window blocks with coords='centered' rotate by coordinates normalised over the window:
    a 2x2-window model equals, window by window, the global model run on each 2x2 crop."""
    torch.manual_seed(0)
    kwargs = dict(img_size=32, patch_size=8, embed_dims=32, depth=1, num_heads=2, with_cls_token=False,
                  pos_embed=DINOV3_ROPE)
    windowed = PEVisionTransformer(**kwargs, window_size=2).eval()
    plain = PEVisionTransformer(**kwargs).eval()
    plain.load_state_dict(windowed.state_dict())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        out = windowed(x)[0]
        for i in (0, 16):
            for j in (0, 16):
                torch.testing.assert_close(out[..., i // 8:i // 8 + 2, j // 8:j // 8 + 2],
                                           plain(x[..., i:i + 16, j:j + 16])[0], rtol=1e-5, atol=1e-5)
    assert rope_coords((2, 2), 0, CPU, windowed.blocks[0].window_affine).abs().max() == pytest.approx(math.pi)


# ------------------------------------------------------------------------------- options and errors


@pytest.mark.parametrize('cfg, match', [
    (dict(pairing='rotate_half'), r"pos_embed pairing='rotate_half' is not supported; accepted: 'interleaved', "
                                  r"'half'"),
    (dict(axes='ij'), r"pos_embed axes='ij' is not supported; accepted: 'xy', 'yx'"),
    (dict(coords='centered', normalize_coords='both'), r"pos_embed normalize_coords='both' is not supported; "
                                                       r"accepted: 'separate', 'min', 'max'"),
    (dict(normalize_coords='min'), r"pos_embed normalize_coords='min' needs coords='centered', got coords='index'"),
    (dict(coords='dinov3'), r"pos_embed coords='dinov3' is not supported; accepted: 'index', 'interpolate', "
                            r"'centered'"),
])
def test_rope_option_errors(cfg, match):
    with pytest.raises(ValueError, match=match):
        parse_pos_embed_cfg(dict(type='rope_axial', **cfg))


def test_rope_mixed_has_no_layout_options():
    with pytest.raises(ValueError, match=r"type='rope_mixed' got unknown parameter\(s\) 'pairing'; accepted: .*"):
        parse_pos_embed_cfg(dict(type='rope_mixed', pairing='half'))
    assert parse_pos_embed_cfg(dict(type='rope_axial'))[1] == dict(
        theta=None, with_ape=False, embed_prefix=False, coords='index', normalize_coords='separate',
        coord_aug=None, pairing='interleaved', axes='xy', scaling=None)
    with pytest.raises(ValueError, match=r"pairing must be one of 'interleaved', 'half', got 'odd'"):
        RoPEAxial(16, 100.0, pairing='odd')


@pytest.mark.parametrize('kwargs, match', [
    (dict(mlp_type='geglu'), r"mlp_type='geglu' is not supported; accepted: 'mlp', 'swiglu'"),
    (dict(swiglu_align_to=8), r"swiglu_align_to=8 must be 0, or positive with mlp_type='swiglu' "
                              r"\(got mlp_type='mlp'\)"),
    (dict(qkv_bias=False, mask_k_bias=True), r'mask_k_bias=True masks part of the qkv bias: it needs qkv_bias=True'),
    (dict(num_reg_tokens=-1), r'num_reg_tokens must be an int >= 0, got -1'),
    (dict(window_size=2, pos_embed=dict(DINOV3_ROPE, coords='interpolate')),
     r"PEVisionTransformer with window_size=2 attends in windows with window-local RoPE coordinates: pos_embed "
     r"needs coords in \('index', 'centered'\), coord_aug=None and scaling=None .* got coords='interpolate'"),
])
def test_backbone_option_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PEVisionTransformer(**{**dict(embed_dims=32, depth=1, num_heads=2), **kwargs})


def test_registers_and_masked_k_bias():
    """Register tokens follow CLS and leave the output maps; the masked k bias stays out of the
    projection and gets no gradient; frozen stages freeze the registers."""
    torch.manual_seed(0)
    model = PEVisionTransformer(embed_dims=32, depth=1, num_heads=2, num_reg_tokens=3, mask_k_bias=True,
                                pos_embed=DINOV3_ROPE)
    assert model.num_prefix_tokens == 4 and model.reg_token.shape == (1, 3, 32)
    qkv = model.blocks[0].attn.qkv
    with torch.no_grad():
        qkv.bias[32:64] = 100.0
    x = torch.randn(5, 32)
    torch.testing.assert_close(qkv(x)[:, 32:64], x @ qkv.weight[32:64].T)
    (out,) = model(torch.randn(1, 3, 48, 64))
    assert out.shape == (1, 32, 3, 4)
    out.sum().backward()
    assert qkv.bias.grad[32:64].abs().max() == 0 and qkv.bias.grad[:32].abs().max() > 0
    assert model.reg_token.grad.abs().max() > 0
    frozen = PEVisionTransformer(embed_dims=32, depth=1, num_heads=2, num_reg_tokens=3, frozen_stages=0)
    assert not frozen.reg_token.requires_grad


# ------------------------------------------------------------------------------- by timm:// name


@pytest.fixture
def dinov3_hub(tmp_path, monkeypatch):
    """A Hugging Face cache (HF_HOME, offline) whose repo timm/vit_small_patch16_dinov3.lvd1689m holds
    a 2-block DINOv3 S (timm's layout, perturbed) as model.safetensors."""
    timm_model = perturbed_timm('vit_small_patch16_dinov3', depth=2)
    folder = tmp_path / 'hub' / 'models--timm--vit_small_patch16_dinov3.lvd1689m'
    (folder / 'snapshots' / ('a' * 40)).mkdir(parents=True)
    save(folder / 'snapshots' / ('a' * 40), timm_model)
    (folder / 'refs').mkdir()
    (folder / 'refs' / 'main').write_text('a' * 40)
    from huggingface_hub import constants
    monkeypatch.setenv('HF_HOME', str(tmp_path))
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.delenv('HF_HUB_CACHE', raising=False)
    importlib.reload(constants)
    yield timm_model
    monkeypatch.undo()
    importlib.reload(constants)


class Messages(logging.Handler):
    """Collects the messages logged to the logger it is added to."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_timm_name_loads_dinov3(dinov3_hub):
    """timm://vit_small_patch16_dinov3.lvd1689m (timm's tag; also the default) through init_cfg: layout
    'eva' detected and logged, nothing missing or unexpected, timm's tokens."""
    from mmengine.logging import MMLogger
    name = 'timm://vit_small_patch16_dinov3.lvd1689m'
    assert ckpt.timm_source('timm://vit_small_patch16_dinov3') == ckpt.timm_source(name) == \
        'hf://timm/vit_small_patch16_dinov3.lvd1689m'
    model = PEVisionTransformer(**dinov3_kwargs('vit_small_patch16_dinov3', depth=2), out_indices=(0, 1),
                                init_cfg=dict(type='Pretrained', checkpoint=name))
    logger, handler = MMLogger.get_current_instance(), Messages()
    logger.addHandler(handler)
    try:
        model.init_weights()
    finally:
        logger.removeHandler(handler)
    messages = handler.messages
    assert any(f"checkpoint {name}: detected layout 'eva': timm Eva (timm's RoPE-ViT, EVA and DINOv3 weights)"
               in m for m in messages), messages
    assert not any('missing keys' in m or 'unexpected keys' in m for m in messages), messages
    assert timm_vit_layout(dinov3_hub.state_dict()) == 'eva'
    torch.manual_seed(0)
    assert max(max_differences(model.eval(), dinov3_hub, (224, 224), 0)) < 1e-5
