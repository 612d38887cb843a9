"""PEVisionTransformer, PESimpleFPN and the timm ViT converter."""
import functools
import inspect
import math
import os
import subprocess
import sys

import pytest
import timm
import torch
from torch import nn

from mmpe.converters import convert_timm_vit, timm_vit_layout
from mmpe.models import PEVisionTransformer
from mmpe.pos_embed import LearnedPosEmbed, resize_pos_table
from mmpe.testing import build_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENCODINGS = {
    'ape': dict(type='ape', embed_prefix=True),
    'sincos': dict(type='sincos'),
    'rope_axial': dict(type='rope_axial'),
    'rope_axial_ape': dict(type='rope_axial', with_ape=True),
    'rope_mixed': dict(type='rope_mixed'),
    'rope_mixed_ape': dict(type='rope_mixed', with_ape=True),
    'loope': dict(type='loope'),
    'none': dict(type='none'),
}
SMALL = dict(img_size=64, patch_size=16, embed_dims=32, depth=3, num_heads=2, layer_scale_init_value=0.1)


def small_vit(pos_embed, **kwargs):
    return PEVisionTransformer(**{**SMALL, 'pos_embed': pos_embed, **kwargs})


def encoding_params(model):
    return {n: p for n, p in model.named_parameters() if 'pos_embed' in n and p.requires_grad}


# ---------------------------------------------------------------- shapes and gradients

@pytest.mark.parametrize('name', list(ENCODINGS))
def test_shapes_and_encoding_gradients(name):
    torch.manual_seed(0)
    model = small_vit(ENCODINGS[name], out_indices=(0, 2)).train()
    if name == 'loope':  # the zero-initialised head blocks gradients to the context net at init
        nn.init.normal_(model.pos_embed.context.head.weight)
    params = encoding_params(model)
    assert bool(params) == (name not in ('sincos', 'rope_axial', 'none'))
    for h, w in [(64, 64), (64, 96), (97, 131), (224, 224)]:
        model.zero_grad()
        outs = model(torch.randn(2, 3, h, w))
        assert [tuple(o.shape) for o in outs] == [(2, 32, math.ceil(h / 16), math.ceil(w / 16))] * 2
        sum(o.square().mean() for o in outs).backward()
        for n, p in params.items():
            assert p.grad is not None and p.grad.abs().sum() > 0, f'no gradient for {n} at {h}x{w}'


def test_padding_does_not_change_tokens():
    """A 97x131 image gives the same features as the same image zero-padded to 112x144."""
    torch.manual_seed(0)
    model = small_vit(dict(type='rope_mixed'), with_cls_token=False).eval()
    x = torch.randn(1, 3, 97, 131)
    padded = nn.functional.pad(x, (0, 144 - 131, 0, 112 - 97))
    with torch.no_grad():
        torch.testing.assert_close(model(x)[0], model(padded)[0])


# ---------------------------------------------------------------- timm equality

def randomise(model):
    """Move every parameter off its init so a parameter the converter misses shows."""
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'gamma' in name:
                p.copy_(0.5 + 0.2 * torch.randn_like(p))
            elif name.endswith('bias') or 'norm' in name or name in ('pos_embed', 'cls_token'):
                p.add_(0.2 * torch.randn_like(p))
    return model


TIMM_CASES = [
    ('vit_small_patch16_rope_224', dict(type='rope_axial'), [(224, 224), (160, 288)]),
    ('vit_small_patch16_rope_mixed_224', dict(type='rope_mixed'), [(224, 224), (160, 288)]),
    ('vit_small_patch16_rope_mixed_ape_224', dict(type='rope_mixed', with_ape=True), [(224, 224), (256, 320)]),
    ('deit3_small_patch16_224', dict(type='ape'), [(224, 224), (256, 320)]),
]


def vit_small(pos_embed, **kwargs):
    return PEVisionTransformer(embed_dims=384, depth=12, num_heads=6, layer_scale_init_value=1e-5,
                               pos_embed=pos_embed, out_indices=(11,), **kwargs)


def assert_matches_timm(model, timm_model, sizes):
    for h, w in sizes:
        x = torch.randn(2, 3, h, w)
        with torch.no_grad():
            expected = timm_model.forward_features(x)[:, timm_model.num_prefix_tokens:]
            ours = model(x)[0].flatten(2).transpose(1, 2)
        torch.testing.assert_close(ours, expected, atol=1e-4, rtol=0, msg=f'{h}x{w}')


@pytest.fixture
def timm_plain_bicubic(monkeypatch):
    """timm resizes APE tables with antialias=True (PIL-style bicubic, a=-0.5); docs/design.md and the
    RoPE-ViT authors' code use plain bicubic (a=-0.75). Compare with timm switched to the latter."""
    import timm.models.eva as eva
    import timm.models.vision_transformer as vision_transformer
    for module in (eva, vision_transformer):
        monkeypatch.setattr(module, 'resample_abs_pos_embed',
                            functools.partial(module.resample_abs_pos_embed, antialias=False))


@pytest.mark.slow
@pytest.mark.parametrize('name,pos_embed,sizes', TIMM_CASES, ids=[c[0] for c in TIMM_CASES])
def test_equals_timm(name, pos_embed, sizes, timm_plain_bicubic):
    """Final-block tokens (after the final norm) equal timm's at 224 and at a non-square size."""
    timm_model = randomise(timm.create_model(name, pretrained=False, dynamic_img_size=True)).eval()
    model = vit_small(pos_embed).eval()
    state, ignored = convert_timm_vit(timm_model.state_dict())
    assert set(ignored) == {'head.weight', 'head.bias'}
    model.load_state_dict(state, strict=True)
    assert_matches_timm(model, timm_model, sizes)


def test_timm_eva_attention_with_q_v_bias():
    """timm Eva with EVA attention (qkv bias stored as q_bias/v_bias, k bias fixed at 0)."""
    from timm.models.eva import Eva
    timm_model = Eva(img_size=64, patch_size=16, embed_dim=64, depth=2, num_heads=2, attn_type='eva',
                     init_values=0.1, use_abs_pos_emb=False, use_rot_pos_emb=True, rope_grid_indexing='xy',
                     rope_temperature=100.0, global_pool='token', dynamic_img_size=True)
    randomise(timm_model).eval()
    assert 'blocks.0.attn.q_bias' in timm_model.state_dict()
    model = PEVisionTransformer(embed_dims=64, depth=2, num_heads=2, layer_scale_init_value=0.1,
                                pos_embed=dict(type='rope_axial'), out_indices=1).eval()
    state, _ = convert_timm_vit(timm_model.state_dict())
    q_bias, v_bias = timm_model.blocks[0].attn.q_bias, timm_model.blocks[0].attn.v_bias
    torch.testing.assert_close(state['blocks.0.attn.qkv.bias'], torch.cat([q_bias, torch.zeros(64), v_bias]))
    model.load_state_dict(state, strict=True)
    assert_matches_timm(model, timm_model, [(64, 96)])


def test_layout_detection_and_rope_vit_authors_freqs():
    eva = timm.create_model('vit_small_patch16_rope_mixed_224', pretrained=False).state_dict()
    deit = timm.create_model('deit3_small_patch16_224', pretrained=False).state_dict()
    assert timm_vit_layout(eva) == 'eva' and timm_vit_layout(deit) == 'vit'
    converted, _ = convert_timm_vit(eva)
    assert timm_vit_layout(converted) == 'mmpe'
    # The authors' own checkpoints: one (2, depth, heads * head_dim/2) parameter, plus grid buffers.
    authors = {k: v for k, v in eva.items() if k != 'rope.freqs'}
    authors.update(freqs=eva['rope.freqs'].flatten(2), freqs_t_x=torch.zeros(196), freqs_t_y=torch.zeros(196))
    from_authors, ignored = convert_timm_vit(authors, num_heads=6)
    assert {'freqs_t_x', 'freqs_t_y'} <= set(ignored)
    assert from_authors.keys() == converted.keys()
    for i in range(12):
        key = f'blocks.{i}.attn.pos_embed.freqs'
        torch.testing.assert_close(from_authors[key], eva['rope.freqs'][:, i], rtol=0, atol=0)
    with pytest.raises(ValueError, match='pass num_heads'):
        convert_timm_vit(authors)


@pytest.mark.slow
def test_pretrained_init_cfg_and_cli(tmp_path, monkeypatch, timm_plain_bicubic):
    """init_cfg Pretrained on a timm .safetensors (converted on the fly, APE table resized to the
    model's reference grid) and on the CLI's output equals timm; key problems are logged."""
    from safetensors.torch import save_file
    timm_model = randomise(timm.create_model('vit_small_patch16_rope_mixed_ape_224', pretrained=False,
                                             dynamic_img_size=True)).eval()
    src = str(tmp_path / 'timm.safetensors')
    save_file(timm_model.state_dict(), src)
    logs = []
    monkeypatch.setattr('mmpe.converters.backbone.print_log', lambda msg, *a, **k: logs.append(msg))

    model = vit_small(dict(type='rope_mixed', with_ape=True), img_size=320,
                      init_cfg=dict(type='Pretrained', checkpoint=src)).eval()
    model.init_weights()
    expected_table = resize_pos_table(timm_model.pos_embed, (14, 14), (20, 20))
    torch.testing.assert_close(model.pos_embed.pos_embed.data, expected_table)
    assert not any('missing' in m or 'unexpected' in m for m in logs), logs
    assert_matches_timm(model, timm_model, [(320, 320)])

    dst = str(tmp_path / 'mmpe.pth')
    env = dict(os.environ, PYTHONPATH=ROOT)
    subprocess.run([sys.executable, os.path.join(ROOT, 'tools/model_converters/convert_timm_vit.py'), src, dst],
                   check=True, env=env, capture_output=True)
    model = vit_small(dict(type='rope_mixed', with_ape=True), init_cfg=dict(type='Pretrained', checkpoint=dst)).eval()
    model.init_weights()
    assert_matches_timm(model, timm_model, [(224, 224)])

    # A RoPE-only checkpoint (with CLS token) in a CLS-less APE backbone: both differences are logged.
    rope_only = str(tmp_path / 'rope.pth')
    torch.save(timm.create_model('vit_small_patch16_rope_224', pretrained=False).state_dict(), rope_only)
    logs.clear()
    vit_small(dict(type='ape'), with_cls_token=False,
              init_cfg=dict(type='Pretrained', checkpoint=rope_only)).init_weights()
    text = '\n'.join(logs)
    assert 'missing keys' in text and 'pos_embed.pos_embed' in text
    assert 'unexpected keys' in text and 'cls_token' in text
    assert 'head.weight' in text  # dropped as classification head, and said so


# ---------------------------------------------------------------- window attention, checkpointing, freezing

def test_window_covering_grid_equals_global():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 80, 112)  # 5 x 7 grid, window 8 pads it to 8 x 8
    for pos_embed in (dict(type='rope_mixed'), dict(type='rope_axial', with_ape=True), dict(type='loope')):
        global_model = small_vit(pos_embed, with_cls_token=False, out_indices=(0, 1, 2)).eval()
        window_model = small_vit(pos_embed, with_cls_token=False, out_indices=(0, 1, 2), window_size=8,
                                 global_attn_indices=(1,)).eval()
        window_model.load_state_dict(global_model.state_dict())
        with torch.no_grad():
            for a, b in zip(window_model(x), global_model(x)):
                torch.testing.assert_close(a, b)


@pytest.mark.parametrize('pos_embed', [dict(type='rope_mixed'), dict(type='rope_axial')])
def test_window_attention_equals_masked_global_attention(pos_embed):
    """Windows with local RoPE coordinates == global attention (global coordinates) restricted to
    same-window pairs: RoPE scores depend only on offsets. 5 x 7 grid, 3 x 3 windows (padded)."""
    torch.manual_seed(0)
    block = small_vit(pos_embed, with_cls_token=False, window_size=3).blocks[0].eval()
    hw = (5, 7)
    tokens = torch.randn(2, 35, 32)
    rows, cols = torch.arange(35) // 7, torch.arange(35) % 7
    window = (rows // 3) * 3 + cols // 3
    mask = torch.zeros(35, 35).masked_fill(window[:, None] != window[None, :], float('-inf'))
    with torch.no_grad():
        torch.testing.assert_close(block.window_attention(tokens, hw), block.attn(tokens, hw, 0, mask))


def test_gradient_checkpointing_same_outputs_and_gradients():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 96)
    models = [small_vit(dict(type='rope_mixed', with_ape=True), out_indices=(1, 2), with_cp=cp) for cp in (False, True)]
    models[1].load_state_dict(models[0].state_dict())
    results = []
    for model in models:
        outs = model.train()(x)
        sum(o.square().mean() for o in outs).backward()
        results.append((outs, {n: p.grad for n, p in model.named_parameters()}))
    for a, b in zip(results[0][0], results[1][0]):
        torch.testing.assert_close(a, b)
    for name, grad in results[0][1].items():
        torch.testing.assert_close(results[1][1][name], grad, msg=name)


def test_frozen_stages():
    torch.manual_seed(0)
    model = small_vit(dict(type='loope'), frozen_stages=2, out_indices=2).train()
    assert not model.pos_embed.training and not model.blocks[1].training and model.blocks[2].training
    model(torch.randn(2, 3, 64, 64))[0].sum().backward()
    frozen = ('patch_embed.', 'cls_token', 'pos_embed.', 'blocks.0.', 'blocks.1.')
    for name, p in model.named_parameters():
        if name.startswith(frozen):
            assert not p.requires_grad and p.grad is None, name
        else:
            assert p.requires_grad and p.grad is not None, name


# ---------------------------------------------------------------- weight decay

@pytest.mark.parametrize('name', ['rope_mixed_ape', 'ape', 'loope'])
def test_paramwise_cfg_excludes_encodings_from_weight_decay(name):
    """The optim_wrapper of a config, built by mmengine's default constructor."""
    from mmengine.optim import build_optim_wrapper
    model = small_vit(ENCODINGS[name])
    optim_wrapper = dict(
        optimizer=dict(type='AdamW', lr=1e-4, weight_decay=0.05),
        paramwise_cfg=dict(custom_keys={'pos_embed': dict(decay_mult=0.), 'cls_token': dict(decay_mult=0.),
                                        'norm': dict(decay_mult=0.)}))
    optimizer = build_optim_wrapper(model, optim_wrapper).optimizer
    decay = {id(p): group['weight_decay'] for group in optimizer.param_groups for p in group['params']}
    names = dict(model.named_parameters())
    assert any('pos_embed' in n for n in names)
    for n, p in names.items():
        no_decay = 'pos_embed' in n or 'cls_token' in n or 'norm' in n
        assert decay[id(p)] == (0.0 if no_decay else 0.05), n


# ---------------------------------------------------------------- bad input

def test_encoding_modules_and_the_parsed_config():
    """The backbone keeps its parsed config (``pos_embed_spec``) with RoPE-Axial's default theta filled in (100, the
    RoPE-ViT authors' ViT value; a given theta wins), and every block's encoding has that theta."""
    for pos_embed, theta in ((dict(type='rope_axial'), 100.0), (dict(type='rope_axial', theta=10.0), 10.0)):
        model = small_vit(pos_embed)
        assert (model.pos_embed_spec.type, model.pos_embed_spec.theta) == ('rope_axial', theta)
        assert model.pos_embed is None and [b.attn.pos_embed.theta for b in model.blocks] == [theta] * 3
    with_ape = small_vit(dict(type='rope_mixed', with_ape=True))
    assert isinstance(with_ape.pos_embed, LearnedPosEmbed) and with_ape.pos_embed_spec.with_ape


def test_internal_constructors_take_keywords():
    """Past the two sizes every layer has (embed_dims, num_heads; a neck's channels), constructor arguments are
    keyword-only; the backbones' (built from configs) all are."""
    from mmpe.models import PESimpleFPN, PESwinTransformer, PEViTBlock, PosAttention
    from mmpe.models.swin import PESwinBlock, PESwinStage, ShiftWindowAttention
    for cls, positional in ((PEVisionTransformer, 0), (PESwinTransformer, 0), (PEViTBlock, 2), (PosAttention, 2),
                            (PESwinStage, 2), (PESwinBlock, 2), (ShiftWindowAttention, 2), (PESimpleFPN, 2)):
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
        kinds = [p.kind for p in params]
        assert kinds == [inspect.Parameter.POSITIONAL_OR_KEYWORD] * positional + \
            [inspect.Parameter.KEYWORD_ONLY] * (len(params) - positional), cls.__name__
    with pytest.raises(TypeError, match='positional argument'):
        PEViTBlock(32, 2, 4.0)


def test_bad_input_errors():
    with pytest.raises(ValueError, match="type='rope_2d' is not supported"):
        small_vit(dict(type='rope_2d'))
    with pytest.raises(ValueError, match="PEVisionTransformer pos_embed type='rpb' is not supported"):
        small_vit(dict(type='rpb'))
    model = small_vit(dict(type='rope_mixed'))
    with pytest.raises(ValueError, match='smaller than one patch'):
        model(torch.randn(1, 3, 15, 64))
    with pytest.raises(ValueError, match='in_channels=3'):
        model(torch.randn(1, 1, 64, 64))
    grid_bound = small_vit(dict(type='loope', context='mlp'), img_size=224)
    grid_bound(torch.randn(1, 3, 224, 224))
    with pytest.raises(ValueError, match='bound to the 14x14 patch grid'):
        grid_bound(torch.randn(1, 3, 128, 160))
    with pytest.raises(ValueError, match='out_indices'):
        small_vit(dict(type='ape'), out_indices=(3,))


# ---------------------------------------------------------------- neck, DINO, UperNet (need the OpenMMLab stack)

@pytest.mark.parametrize('num_outs', [4, 5])
def test_simple_fpn_strides(num_outs):
    from mmpe.models import PESimpleFPN
    neck = PESimpleFPN(32, 16, scale_factors=(4.0, 2.0, 1.0, 0.5), num_outs=num_outs,
                       norm_cfg=dict(type='GN', num_groups=4))
    outs = neck((torch.randn(2, 32, 5, 7),))
    scales = [4, 2, 1, 1 / 2, 1 / 4][:num_outs]
    assert [tuple(o.shape) for o in outs] == [(2, 16, math.ceil(5 * s), math.ceil(7 * s)) for s in scales]
    with pytest.raises(ValueError, match='exactly one backbone map'):
        neck((torch.randn(2, 32, 5, 7),) * 2)


TINY_VIT = """type='PEVisionTransformer', img_size=128, patch_size=16, embed_dims=64, depth=4, num_heads=4,
    with_cls_token=False, window_size=4, global_attn_indices=(3,), """


def config_from_text(tmp_path, text):
    """A user's config file: inherits an upstream base, imports mmpe, overrides the model."""
    from mmengine.config import Config
    path = tmp_path / 'config.py'
    path.write_text("custom_imports = dict(imports=['mmpe'], allow_failed_imports=False)\n" + text)
    return Config.fromfile(str(path))


def test_dino_with_vit_and_simple_fpn_trains(tmp_path):
    from mmdet.testing import demo_mm_inputs
    cfg = config_from_text(tmp_path, f"""
_base_ = 'mmdet::dino/dino-4scale_r50_8xb2-12e_coco.py'
model = dict(
    num_queries=50,
    backbone=dict(_delete_=True, {TINY_VIT} pos_embed=dict(type='rope_mixed'), out_indices=(3,)),
    neck=dict(_delete_=True, type='PESimpleFPN', in_channels=64, out_channels=256, num_outs=4),
    encoder=dict(num_layers=1),
    decoder=dict(num_layers=1))
""")
    model = build_model(cfg.model, 'mmdet')
    data = model.data_preprocessor(demo_mm_inputs(2, [(3, 192, 256), (3, 160, 224)], num_items=[3, 2]), True)
    losses = model(**data, mode='loss')
    loss, _ = model.parse_losses(losses)
    assert torch.isfinite(loss)
    loss.backward()
    freqs = model.backbone.blocks[0].attn.pos_embed.freqs
    assert freqs.grad is not None and freqs.grad.abs().sum() > 0


def test_upernet_with_vit_and_multilevel_neck_trains(tmp_path):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    cfg = config_from_text(tmp_path, f"""
_base_ = 'mmseg::_base_/models/upernet_vit-b16_ln_mln.py'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    data_preprocessor=None,
    pretrained=None,
    backbone=dict(_delete_=True, {TINY_VIT} pos_embed=dict(type='loope'), out_indices=(0, 1, 2, 3),
                  frozen_stages=1),
    neck=dict(in_channels=[64] * 4, out_channels=64),
    decode_head=dict(in_channels=[64] * 4, channels=32, num_classes=5, norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=64, channels=16, num_classes=5, norm_cfg=norm_cfg))
""")
    model = build_model(cfg.model, 'mmseg')
    model.train()
    inputs = torch.randn(2, 3, 96, 136)
    samples = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=(96, 136), pad_shape=(96, 136), ori_shape=(96, 136)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 5, (1, 96, 136)))
        samples.append(sample)
    losses = model.loss(inputs, samples)
    loss = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(loss)
    loss.backward()
    assert model.backbone.blocks[0].mlp.fc1.weight.grad is None  # frozen
    assert model.backbone.blocks[3].mlp.fc1.weight.grad is not None
