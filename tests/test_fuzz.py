"""Generated bad input (hypothesis): pos_embed dicts, backbone arguments and input tensors.

Every generated case either builds and runs a forward with finite outputs of the documented shapes
(and the encoding the config asked for: no silent fallback), or raises a ValueError or TypeError
whose message names the parameter and what it accepts; never another exception. A misspelled key
names the closest accepted one. The fast tier runs a fixed set of examples per property
(``derandomize``); the slow tier draws many more, new ones on every run.
"""
import difflib
import math
import re
import string

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmpe.models import PESwinTransformer, PEVisionTransformer
from mmpe.pos_embed import (
    ENCODINGS,
    LearnedPosEmbed,
    LOOPEPosEmbed,
    RelativePositionBias,
    RoPEAxial,
    RoPEMixed,
    SinCosPosEmbed,
    parse_pos_embed_cfg,
)
from mmpe.pos_embed.rope import AXES, COORDS, NORMALIZE_COORDS, PAIRINGS, SCALINGS


def tier(examples: int, fast: bool) -> settings:
    """The fast tier: a fixed set of ``examples`` (derandomized); the slow tier: 10 times as many, new each run."""
    return settings(max_examples=examples if fast else 10 * examples, deadline=None, derandomize=fast,
                    suppress_health_check=[HealthCheck.too_slow])
ERRORS = (ValueError, TypeError)

# ----------------------------------------------------------------------------- values

CHOICES = dict(coords=COORDS, normalize_coords=NORMALIZE_COORDS, pairing=PAIRINGS, axes=AXES, context=('conv', 'mlp'))
BOOLS = ('with_ape', 'embed_prefix')
COORD_AUG_LOW = dict(shift=0.0, jitter=1.0, rescale=1.0)

not_bool = st.one_of(st.none(), st.integers(-2, 2), st.text(max_size=4), st.floats(allow_nan=True))
not_number = st.one_of(st.none(), st.booleans(), st.text(max_size=4), st.lists(st.integers(), max_size=2))
not_str = st.one_of(st.none(), st.integers(-2, 2), st.floats(), st.booleans(), st.lists(st.text(max_size=3),
                                                                                        max_size=2))


def bad_choice(accepted) -> st.SearchStrategy:
    return st.one_of(not_str, st.text(max_size=12).filter(lambda s: s not in accepted),
                     st.sampled_from(accepted).map(str.upper).filter(lambda s: s not in accepted))


def misspelled(word: str) -> st.SearchStrategy:
    """``word`` with one character deleted, doubled, replaced or inserted."""
    letters = st.sampled_from(string.ascii_lowercase + '_')

    @st.composite
    def edit(draw):
        i = draw(st.integers(0, len(word) - 1))
        kind = draw(st.sampled_from(['delete', 'double', 'replace', 'insert']))
        if kind == 'delete':
            return word[:i] + word[i + 1:]
        if kind == 'double':
            return word[:i] + word[i] + word[i:]
        c = draw(letters)
        return word[:i] + c + (word[i + 1:] if kind == 'replace' else word[i:])
    return edit().filter(lambda s: s != word and s)


@st.composite
def coord_aug(draw):
    keys = draw(st.sets(st.sampled_from(list(COORD_AUG_LOW))))
    return {k: draw(st.floats(COORD_AUG_LOW[k], COORD_AUG_LOW[k] + 2)) for k in sorted(keys)}


@st.composite
def valid_pos_embed(draw, kind=None) -> dict:
    """A valid pos_embed dict: some of ``kind``'s parameters (all types by default) with valid values."""
    kind = kind or draw(st.sampled_from(list(ENCODINGS)))
    cfg = dict(type=kind)
    for key in draw(st.sets(st.sampled_from(list(ENCODINGS[kind])))) if ENCODINGS[kind] else ():
        if key == 'theta':
            cfg[key] = draw(st.one_of(st.integers(1, 10 ** 4), st.floats(1e-3, 1e6)))
        elif key in BOOLS:
            cfg[key] = draw(st.booleans())
        elif key == 'coord_aug':
            cfg[key] = draw(st.one_of(st.none(), coord_aug()))
        elif key == 'scaling':
            cfg[key] = draw(st.one_of(st.none(), scaling(kind)))
        else:
            cfg[key] = draw(st.sampled_from(CHOICES[key]))
    if cfg.get('normalize_coords', 'separate') != 'separate':
        cfg['coords'] = 'centered'
    if cfg.get('scaling') is not None:  # test-time scaling extends index-trained RoPE only
        cfg.update(coords='index', normalize_coords='separate')
    return cfg


def scaling(kind: str) -> st.SearchStrategy:
    types = SCALINGS if kind == 'rope_axial' else tuple(t for t in SCALINGS if t != 'ntk')
    return st.builds(dict, type=st.sampled_from(types), train_grid=st.integers(1, 64))


@st.composite
def bad_pos_embed(draw):
    """(cfg, what its error must name, accepted values the message must list or None)."""
    case = draw(st.sampled_from(['not_dict', 'no_type', 'type', 'unknown', 'value', 'normalize_without_centered']))
    if case == 'not_dict':
        return draw(st.one_of(st.none(), st.text(max_size=6), st.lists(st.integers(), max_size=2),
                              st.integers())), 'pos_embed', None
    if case == 'no_type':
        return draw(valid_pos_embed().map(lambda c: {k: v for k, v in c.items() if k != 'type'})), 'type', None
    cfg = draw(valid_pos_embed())
    kind = cfg['type']
    if case == 'type':
        cfg['type'] = draw(st.one_of(bad_choice(tuple(ENCODINGS)), misspelled(kind)))
        return cfg, 'type', tuple(ENCODINGS)
    if case == 'unknown' or not ENCODINGS[kind]:
        key = draw(st.one_of(misspelled(draw(st.sampled_from(list(ENCODINGS[kind]) or ['theta']))),
                             st.text(string.ascii_lowercase, min_size=1, max_size=8)).filter(
            lambda k: k not in ENCODINGS[kind] and k != 'type'))
        cfg[key] = 1
        return cfg, key, tuple(ENCODINGS[kind])
    if case == 'normalize_without_centered' and kind.startswith('rope'):
        cfg.update(normalize_coords=draw(st.sampled_from(['min', 'max'])),
                   coords=draw(st.sampled_from(['index', 'interpolate'])))
        return cfg, 'normalize_coords', None
    key = draw(st.sampled_from(list(ENCODINGS[kind])))
    if key == 'theta':
        cfg[key] = draw(st.one_of(not_number.filter(lambda v: v is not None),  # None: the default
                                  st.floats(max_value=0.0), st.just(math.nan), st.just(math.inf)))
    elif key in BOOLS:
        cfg[key] = draw(not_bool)
    elif key == 'scaling':
        cfg.update(coords='index', normalize_coords='separate')
        cfg[key] = draw(st.one_of(not_str.filter(lambda v: v is not None), st.text(max_size=4),
                                  scaling(kind).map(lambda c: {k: v for k, v in c.items() if k != 'train_grid'}),
                                  st.builds(dict, type=bad_choice(SCALINGS), train_grid=st.integers(1, 64))))
    elif key == 'coord_aug':
        aug_key = draw(st.sampled_from(list(COORD_AUG_LOW)))
        cfg[key] = draw(st.one_of(
            not_number.filter(lambda v: v is not None),
            st.builds(dict, **{aug_key: st.one_of(st.floats(max_value=COORD_AUG_LOW[aug_key], exclude_max=True),
                                                  st.just(math.nan), st.just(math.inf), not_number)}),
            misspelled(aug_key).map(lambda k: {k: 1.0})))
    else:
        cfg[key] = draw(bad_choice(CHOICES[key]))
        return cfg, key, CHOICES[key]
    return cfg, key, None


def assert_names(err: Exception, name: str, accepted=None) -> None:
    """The message names ``name`` and says what is accepted (every value of ``accepted``)."""
    message = str(err)
    assert name in message, message
    assert re.search(r'accepted|must be|needs', message), message
    for value in accepted or ():
        assert repr(value) in message, (value, message)


# ----------------------------------------------------------------------------- pos_embed dicts

def check_bad_pos_embed(case) -> None:
    cfg, name, accepted = case
    with pytest.raises(ERRORS) as err:
        parse_pos_embed_cfg(cfg)
    assert_names(err.value, name, accepted)
    if name not in ('pos_embed', 'type') and isinstance(cfg, dict) and name not in ENCODINGS.get(cfg['type'], ()):
        close = difflib.get_close_matches(name, list(ENCODINGS[cfg['type']]), n=1)
        if close:
            assert f'did you mean {close[0]!r}' in str(err.value), str(err.value)


@tier(30, fast=True)
@given(bad_pos_embed())
def test_bad_pos_embed_names_the_parameter(case):
    check_bad_pos_embed(case)


@pytest.mark.slow
@tier(30, fast=False)
@given(bad_pos_embed())
def test_bad_pos_embed_names_the_parameter_many(case):
    check_bad_pos_embed(case)


def test_misspelled_key_names_the_closest():
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) 'thetta'.*did you mean 'theta'\?"):
        parse_pos_embed_cfg(dict(type='rope_axial', thetta=100))
    with pytest.raises(ValueError, match=r"type='rope_mixd' is not supported.*did you mean 'rope_mixed'\?"):
        parse_pos_embed_cfg(dict(type='rope_mixd'))


# ----------------------------------------------------------------------------- backbones

def expected_modules(model, cfg: dict) -> None:
    """The encoding ``cfg`` asked for is the one built (no fallback): attention and token parts."""
    kind = cfg['type']
    attention = {'rope_axial': RoPEAxial, 'rope_mixed': RoPEMixed, 'rpb': RelativePositionBias}.get(kind)
    found = [m for name, m in model.named_modules() if name.endswith('attn.pos_embed') or
             name.endswith('w_msa.pos_embed')]
    assert found and all(type(m) is attention for m in found) if attention else not found
    token = {'ape': LearnedPosEmbed, 'sincos': SinCosPosEmbed, 'loope': LOOPEPosEmbed}.get(kind)
    if kind.startswith('rope') and cfg.get('with_ape'):
        token = LearnedPosEmbed
    tokens = [m for m in model.modules() if isinstance(m, (LearnedPosEmbed, SinCosPosEmbed, LOOPEPosEmbed))]
    assert [type(m) for m in tokens] == ([token] if token else [])
    if kind == 'rope_axial' and cfg.get('theta') is not None:
        assert all(m.theta == cfg['theta'] for m in found)
    if kind == 'rope_mixed':
        assert all(m.theta == cfg.get('theta', 10.0) for m in found)


@st.composite
def vit_kwargs(draw):
    """Valid PEVisionTransformer arguments of a small model, any encoding."""
    heads = draw(st.sampled_from([1, 2, 4]))
    depth = draw(st.integers(1, 3))
    patch = draw(st.sampled_from([4, 8, 16]))
    kwargs = dict(
        img_size=draw(st.sampled_from([patch, 2 * patch, (2 * patch, 3 * patch)])), patch_size=patch,
        embed_dims=heads * draw(st.sampled_from([4, 8, 12])), depth=depth, num_heads=heads,
        mlp_ratio=draw(st.floats(0.25, 4)), qkv_bias=draw(st.booleans()),
        layer_scale_init_value=draw(st.one_of(st.none(), st.floats(1e-6, 1.0))),
        drop_rate=draw(st.floats(0, 0.9)), attn_drop_rate=draw(st.floats(0, 0.9)),
        drop_path_rate=draw(st.floats(0, 0.9)), with_cls_token=draw(st.booleans()),
        window_size=draw(st.sampled_from([0, 0, 1, 2, 3])),
        out_indices=draw(st.lists(st.integers(-depth, depth - 1), min_size=1, max_size=depth, unique=True)),
        final_norm=draw(st.booleans()), frozen_stages=draw(st.integers(-1, depth)),
        num_reg_tokens=draw(st.integers(0, 2)), mlp_type=draw(st.sampled_from(['mlp', 'swiglu'])))
    if kwargs['window_size']:
        kwargs['global_attn_indices'] = draw(st.lists(st.integers(0, depth - 1), max_size=depth, unique=True))
    kwargs['pos_embed'] = draw(valid_pos_embed(draw(st.sampled_from(list(ENCODINGS)))))
    return kwargs


@st.composite
def swin_kwargs(draw):
    """Valid PESwinTransformer arguments of a small model (1 to 3 stages), any encoding."""
    stages = draw(st.integers(1, 3))
    patch = draw(st.sampled_from([2, 4]))
    dims = draw(st.sampled_from([8, 16]))
    heads = [draw(st.sampled_from([h for h in (1, 2, 4) if (dims * 2 ** i) % h == 0])) for i in range(stages)]
    grid = draw(st.integers(2, 8))
    kwargs = dict(
        pretrain_img_size=grid * patch, embed_dims=dims, patch_size=patch,
        window_size=draw(st.integers(1, grid)), mlp_ratio=draw(st.floats(0.25, 4)),
        depths=[draw(st.integers(1, 2)) for _ in range(stages)], num_heads=heads,
        strides=[patch] + [2] * (stages - 1),
        out_indices=sorted(draw(st.sets(st.integers(0, stages - 1), min_size=1))),
        qkv_bias=draw(st.booleans()), patch_norm=draw(st.booleans()),
        drop_rate=draw(st.floats(0, 0.9)), attn_drop_rate=draw(st.floats(0, 0.9)),
        drop_path_rate=draw(st.floats(0, 0.9)), frozen_stages=draw(st.integers(-1, stages)),
        window_fit=draw(st.sampled_from(['pad', 'fit'])))
    kwargs['pos_embed'] = draw(valid_pos_embed())
    return kwargs


def backbone_outcome(cls, kwargs, h, w) -> None:
    """Build ``cls(**kwargs)`` and run a (2, 3, h, w) forward: finite maps of the documented sizes and
    the asked encoding, or a ValueError/TypeError naming what is wrong (checked by the caller)."""
    model = cls(**kwargs).eval()
    expected_modules(model, kwargs['pos_embed'])
    x = torch.randn(2, 3, h, w)
    outs = model(x)
    if cls is PEVisionTransformer:
        p = kwargs['patch_size']
        sizes = [(2, kwargs['embed_dims'], math.ceil(h / p), math.ceil(w / p))] * len(
            {i % kwargs['depth'] for i in kwargs['out_indices']})
    else:
        strides = [kwargs['patch_size'] * 2 ** i for i in kwargs['out_indices']]
        sizes = [(2, kwargs['embed_dims'] * 2 ** i, math.ceil(h / s), math.ceil(w / s))
                 for i, s in zip(kwargs['out_indices'], strides)]
    assert [tuple(o.shape) for o in outs] == sizes
    assert all(torch.isfinite(o).all() for o in outs)


def refused(cls, kwargs) -> bool:
    """Whether the backbone refuses the encoding by design: RPB outside Swin, a RoPE coordinate mode or
    augmentation or test-time scaling its windows do not implement, a head dimension RoPE cannot pair, a width sin-cos
    (4) or LOOPE (2) cannot divide."""
    cfg = kwargs['pos_embed']
    kind, rope = cfg['type'], cfg['type'].startswith('rope')
    if cls is PEVisionTransformer:
        widths, heads, windows, window_coords = [kwargs['embed_dims']], [kwargs['num_heads']], \
            kwargs['window_size'] > 0, ('index', 'centered')
        if kind == 'rpb':
            return True
    else:
        widths = [kwargs['embed_dims'] * 2 ** i for i in range(len(kwargs['depths']))]
        heads, windows, window_coords = kwargs['num_heads'], True, ('index',)
    if rope and windows and (cfg.get('coords', 'index') not in window_coords or cfg.get('coord_aug') is not None
                             or cfg.get('scaling') is not None):
        return True
    if rope and any((width // h) % 4 for width, h in zip(widths, heads)):
        return True
    return bool(kind == 'sincos' and kwargs['embed_dims'] % 4 or kind == 'loope' and kwargs['embed_dims'] % 2)


def check_valid_backbone(cls, kwargs, hw) -> None:
    """Valid arguments build and run at ``hw`` (LOOPE's context='mlp': at its reference size), or,
    for a combination the backbone refuses by design, raise an error naming it."""
    if refused(cls, kwargs):
        with pytest.raises(ERRORS) as err:
            backbone_outcome(cls, kwargs, *hw)
        assert re.search(r'pos_embed|head dim|embed_dims|coords', str(err.value)), str(err.value)
        return
    cfg = kwargs['pos_embed']
    if cfg['type'] == 'loope' and cfg.get('context') == 'mlp':
        grid = kwargs.get('img_size', kwargs.get('pretrain_img_size'))
        grid = (grid, grid) if isinstance(grid, int) else grid
        hw = tuple(grid)  # the paper's head is bound to the reference grid
    backbone_outcome(cls, kwargs, *hw)


image_size = st.tuples(st.integers(16, 72), st.integers(16, 72))


@tier(12, fast=True)
@given(vit_kwargs(), image_size)
def test_vit_valid_arguments_build_and_run(kwargs, hw):
    check_valid_backbone(PEVisionTransformer, kwargs, hw)


@tier(12, fast=True)
@given(swin_kwargs(), image_size)
def test_swin_valid_arguments_build_and_run(kwargs, hw):
    check_valid_backbone(PESwinTransformer, kwargs, hw)


@pytest.mark.slow
@tier(12, fast=False)
@given(vit_kwargs(), image_size)
def test_vit_valid_arguments_build_and_run_many(kwargs, hw):
    check_valid_backbone(PEVisionTransformer, kwargs, hw)


@pytest.mark.slow
@tier(12, fast=False)
@given(swin_kwargs(), image_size)
def test_swin_valid_arguments_build_and_run_many(kwargs, hw):
    check_valid_backbone(PESwinTransformer, kwargs, hw)


# One bad argument at a time: (name, bad values). Numbers of the wrong kind, out of range, wrong types.
negative_or_zero_int = st.one_of(st.integers(-3, 0), st.floats(0.5, 3.5).filter(lambda v: v != int(v)),
                                 st.text(max_size=3), st.none(), st.just(True))
rate = st.one_of(st.floats(max_value=0.0, exclude_max=True), st.floats(min_value=1.0), st.just(math.nan),
                 st.text(max_size=3), st.none())
COMMON_BAD = dict(
    embed_dims=negative_or_zero_int, patch_size=negative_or_zero_int,
    mlp_ratio=st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.just(math.inf), st.text(max_size=3)),
    qkv_bias=not_bool, drop_rate=rate, attn_drop_rate=rate, drop_path_rate=rate,
    out_indices=st.one_of(st.integers(10, 20), st.lists(st.integers(10, 20), min_size=1, max_size=2),
                          st.text(max_size=3)),
    frozen_stages=st.one_of(st.integers(-10, -2), st.integers(10, 20), st.floats(0.5, 1.5), st.text(max_size=2)),
    pos_embed=st.one_of(st.none(), st.text(max_size=5), st.integers()))
VIT_BAD = dict(COMMON_BAD, depth=negative_or_zero_int, num_heads=negative_or_zero_int,
               img_size=st.one_of(st.integers(-3, 0), st.text(max_size=3), st.tuples(st.integers(1, 3))),
               window_size=st.one_of(st.integers(-3, -1), st.floats(0.5, 2.5), st.text(max_size=2)),
               with_cls_token=not_bool, final_norm=not_bool, num_reg_tokens=st.one_of(st.integers(-3, -1),
                                                                                        st.text(max_size=2)),
               layer_scale_init_value=st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.text(max_size=2)),
               mlp_type=bad_choice(('mlp', 'swiglu')), norm_eps=st.one_of(st.floats(max_value=0.0), st.text(
                   max_size=2)))
SWIN_BAD = dict(COMMON_BAD, window_size=negative_or_zero_int, patch_norm=not_bool,
                window_fit=bad_choice(('pad', 'fit')),
                depths=st.one_of(st.lists(st.integers(-2, 0), min_size=1, max_size=3), st.text(max_size=2)),
                num_heads=st.one_of(st.lists(st.integers(-2, 0), min_size=1, max_size=3), st.text(max_size=2)),
                pretrain_img_size=st.one_of(st.integers(-3, 0), st.text(max_size=3)),
                qk_scale=st.one_of(st.floats(max_value=0.0), st.just(math.nan), st.text(max_size=2)))


@st.composite
def bad_backbone(draw, cls):
    """(arguments valid but for one, that one's name); the valid ones build and run at any size."""
    kwargs = draw((vit_kwargs() if cls is PEVisionTransformer else swin_kwargs()).filter(
        lambda kw: not refused(cls, kw) and kw['pos_embed'].get('context') != 'mlp'))
    bad = VIT_BAD if cls is PEVisionTransformer else SWIN_BAD
    name = draw(st.sampled_from(sorted(bad)))
    kwargs[name] = draw(bad[name])
    return kwargs, name


def check_bad_backbone(cls, case) -> None:
    kwargs, name = case
    with pytest.raises(ERRORS) as err:
        backbone_outcome(cls, kwargs, 40, 56)
    assert name in str(err.value), str(err.value)


@tier(30, fast=True)
@given(bad_backbone(PEVisionTransformer))
def test_vit_bad_argument_names_it(case):
    check_bad_backbone(PEVisionTransformer, case)


@tier(30, fast=True)
@given(bad_backbone(PESwinTransformer))
def test_swin_bad_argument_names_it(case):
    check_bad_backbone(PESwinTransformer, case)


@pytest.mark.slow
@tier(30, fast=False)
@given(bad_backbone(PEVisionTransformer))
def test_vit_bad_argument_names_it_many(case):
    check_bad_backbone(PEVisionTransformer, case)


@pytest.mark.slow
@tier(30, fast=False)
@given(bad_backbone(PESwinTransformer))
def test_swin_bad_argument_names_it_many(case):
    check_bad_backbone(PESwinTransformer, case)


# ----------------------------------------------------------------------------- input tensors

MODELS = {}


def small_model(name: str) -> torch.nn.Module:
    """'vit-<preset>' or 'swin-<preset>': a small backbone, eval mode, cached."""
    if name not in MODELS:
        from mmpe.pos_embed import ENCODING_PRESETS
        backbone, preset = name.split('-', 1)
        torch.manual_seed(0)
        if backbone == 'vit':
            MODELS[name] = PEVisionTransformer(img_size=32, patch_size=8, embed_dims=32, depth=2, num_heads=2,
                                               num_reg_tokens=1, out_indices=(0, 1),
                                               pos_embed=ENCODING_PRESETS[preset]).eval()
        else:
            MODELS[name] = PESwinTransformer(pretrain_img_size=32, embed_dims=16, depths=(1, 1), num_heads=(2, 4),
                                             strides=(4, 2), window_size=4, out_indices=(0, 1),
                                             pos_embed=ENCODING_PRESETS[preset]).eval()
    return MODELS[name]


INPUT_MODELS = [f'vit-{e}' for e in ('ape', 'sincos', 'rope_axial', 'rope_mixed+ape', 'rope_dinov3', 'loope',
                                     'none')] + [f'swin-{e}' for e in ('rpb', 'rope_axial', 'rope_mixed', 'loope')]


@st.composite
def input_case(draw):
    name = draw(st.sampled_from(INPUT_MODELS))
    h, w = draw(st.one_of(st.tuples(st.integers(1, 70), st.integers(1, 70)),
                          st.sampled_from([(16, 2048), (2048, 16), (8, 513), (513, 8), (1, 1), (7, 9)])))
    return dict(name=name, h=h, w=w, batch=draw(st.integers(1, 3)), layout=draw(
        st.sampled_from(['contiguous', 'channels_last', 'strided', 'transposed'])), bf16=draw(st.booleans()))


def make_input(batch: int, h: int, w: int, layout: str) -> torch.Tensor:
    x = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(h * 7919 + w))
    if layout == 'channels_last':
        return x.contiguous(memory_format=torch.channels_last)
    if layout == 'strided':  # every other column of a wider tensor
        wide = torch.zeros(batch, 3, h, 2 * w)
        wide[..., ::2] = x
        return wide[..., ::2]
    if layout == 'transposed':
        return x.transpose(2, 3).contiguous().transpose(2, 3)
    return x


def check_input(case) -> None:
    """Finite maps of ceil(H / stride) x ceil(W / stride) (ViT: a ValueError below one patch); any
    memory layout gives the contiguous input's maps, and each image of a batch its own maps."""
    model = small_model(case['name'])
    h, w, batch = case['h'], case['w'], case['batch']
    x = make_input(batch, h, w, case['layout'])
    vit = case['name'].startswith('vit')
    if vit and min(h, w) < model.patch_size:
        with pytest.raises(ValueError, match='smaller than one patch'):
            model(x)
        return
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=case['bf16']):
        outs = model(x)
        reference = model(x.contiguous())
        singles = [model(x[i:i + 1].contiguous()) for i in range(batch)]
    strides = [8, 8] if vit else [4, 8]
    dims = [32, 32] if vit else [16, 32]
    assert [tuple(o.shape) for o in outs] == [(batch, c, math.ceil(h / s), math.ceil(w / s))
                                              for c, s in zip(dims, strides)]
    tolerance = dict(rtol=0.05, atol=0.05) if case['bf16'] else dict(rtol=1e-4, atol=1e-4)
    for out, ref in zip(outs, reference):
        assert torch.isfinite(out.float()).all()
        torch.testing.assert_close(out, ref, **tolerance)
    for i, single in enumerate(singles):
        for out, one in zip(outs, single):
            torch.testing.assert_close(out[i:i + 1], one, **tolerance)


@tier(6, fast=True)
@given(input_case())
def test_inputs_run_or_fail_clearly(case):
    check_input(case)


@pytest.mark.slow
@tier(6, fast=False)
@given(input_case())
def test_inputs_run_or_fail_clearly_many(case):
    check_input(case)


def test_input_of_wrong_rank_or_channels_fails_clearly():
    for name in ('vit-ape', 'swin-rpb'):
        for x in (torch.randn(3, 32, 32), torch.randn(1, 4, 32, 32), torch.randn(1, 1, 3, 32, 32)):
            with pytest.raises(ValueError, match=r'expects (input|images) \(B, in_channels=3, H, W\), got shape'):
                small_model(name)(x)
