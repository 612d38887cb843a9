"""DINOv3 in the DINO / UperNet configs and the study: the configs' backbones are timm's DINOv3 models
named by their weights, their optimizers follow layer-wise lr decay (the formula written out here),
PELayerDecayOptimizerConstructor's rule and errors on a small model, and the 'rope_dinov3' encoding preset
through the study tools. (tests/test_configs.py trains every config one step.)"""
import copy
import functools
import os.path as osp
import re
import types

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import DefaultScope
from test_dinov3 import DINOV3_ROPE, dinov3_kwargs
from timm.layers import LayerScale, Mlp

import mmpe  # noqa: F401
from mmpe.analysis.study import encoding_name, parse_encoding
from mmpe.analysis.study_runner import run_config
from mmpe.converters.checkpoint import timm_source
from mmpe.models import PESwinTransformer, PEVisionTransformer
from mmpe.pos_embed import ENCODING_PRESETS, RoPEAxial
from mmpe.testing import build_model, finite_losses, seg_batch, train_step

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = ['configs/dino/dino-4scale_vit-b16-dinov3_simplefpn_8xb2-12e_coco.py',
           'configs/dino/dino-4scale_vit-l16-dinov3_simplefpn_8xb2-12e_coco.py',
           'configs/upernet/upernet_vit-b16-dinov3_mln_8xb2-160k_ade20k-512x512.py',
           'configs/upernet/upernet_vit-l16-dinov3_mln_8xb2-160k_ade20k-512x512.py']
# Fine-tuning settings each config states its source for (config comments).
LAYER_DECAY = {CONFIGS[0]: 0.7, CONFIGS[1]: 0.8, CONFIGS[2]: 0.65, CONFIGS[3]: 0.8}
NARROW = 64  # backbone width of the models built here (the depth is the config's)


@functools.lru_cache(maxsize=None)
def parsed(path: str) -> Config:
    return Config.fromfile(osp.join(ROOT, path))


def timm_name(cfg: Config) -> str:
    """timm model name of the config's weights, e.g. 'vit_base_patch16_dinov3' of
    'timm://vit_base_patch16_dinov3.lvd1689m'."""
    return re.fullmatch(r'timm://(\w+)\.lvd1689m', cfg.model.backbone.init_cfg.checkpoint)[1]


def layer_id(name: str, depth: int) -> int:
    """ViTDet's / BEiT's layer of a parameter: embeddings and tokens 0, block i i + 1, the rest depth + 1."""
    block = re.match(r'backbone\.blocks\.(\d+)\.', name)
    if block:
        return int(block[1]) + 1
    if re.match(r'backbone\.(patch_embed|cls_token|reg_token|pos_embed)\b', name):
        return 0
    return depth + 1


@functools.lru_cache(maxsize=None)
def narrow_model(path: str) -> torch.nn.Module:
    """The config's model with a NARROW-wide backbone (and neck input): everything else as configured."""
    cfg = copy.deepcopy(parsed(path))
    cfg.model.backbone.update(embed_dims=NARROW, num_heads=4, init_cfg=None)
    neck = cfg.model.neck
    neck.in_channels = [NARROW] * len(neck.in_channels) if isinstance(neck.in_channels, list) else NARROW
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.default_scope)
    DefaultScope._instance_dict.clear()
    return model


@pytest.mark.parametrize('path', CONFIGS)
def test_config_backbone_is_the_dinov3_model_of_its_weights(path):
    """The backbone arguments are those of the timm DINOv3 model the weights name (tests/test_dinov3.py checks
    those against timm), and timm's pretrained config names that tag on its hub; nothing is downloaded."""
    cfg = parsed(path)
    name = timm_name(cfg)
    backbone = cfg.model.backbone
    assert {k: backbone[k] for k in dinov3_kwargs(name)} == dinov3_kwargs(name)
    tag = f'{name}.lvd1689m'
    assert timm_source(f'timm://{tag}') == f'hf://timm/{tag}'
    size = {'b16': 'base', 'l16': 'large'}[re.search(r'vit-(b16|l16)-dinov3', path)[1]]
    assert name == f'vit_{size}_patch16_dinov3'  # the size the file name says, without the zero qkv bias


@pytest.mark.parametrize('path', CONFIGS)
def test_config_differs_from_the_ape_baseline_of_its_size_only_by_dinov3(path):
    """Comparable with the encoding comparison: detector / segmentor, neck, windows, out_indices, drop path, data
    and schedule are those of the APE config of the same size; only the backbone's DINOv3 arguments, the weights
    and the optimizer (layer-wise lr decay) differ."""
    cfg, baseline = parsed(path).to_dict(), parsed(path.replace('-dinov3_', '-ape_')).to_dict()
    dinov3_keys = {*dinov3_kwargs(timm_name(parsed(path))), 'init_cfg'}
    for model in (cfg['model'], baseline['model']):
        model['backbone'] = {k: v for k, v in model['backbone'].items() if k not in dinov3_keys}
    variables = ('optim_wrapper', 'pretrained', 'depth', 'custom_keys', 'backbone_no_decay')
    assert {k: v for k, v in cfg.items() if k not in variables} == \
        {k: v for k, v in baseline.items() if k not in variables}


@pytest.mark.parametrize('path', [CONFIGS[0], CONFIGS[2]])
def test_config_takes_the_preset_and_dumps(path, tmp_path):
    """The ViT-B configs (the ViT-L ones inherit them) take DINOv3's RoPE from the 'rope_dinov3' preset, imported
    after _base_ (an old-style config); no module becomes a config value, and a dumped config rebuilds to the same
    dict."""
    cfg = parsed(path)
    assert cfg.model.backbone.pos_embed == ENCODING_PRESETS['rope_dinov3']
    assert not any(isinstance(value, types.ModuleType) for value in cfg.values())
    cfg.dump(str(tmp_path / 'dumped.py'))
    assert Config.fromfile(str(tmp_path / 'dumped.py')).to_dict() == cfg.to_dict()


@pytest.mark.parametrize('path', CONFIGS)
def test_config_builds_a_dinov3_backbone(path):
    """Built (narrowed): 4 register tokens after the CLS token, LayerScale (1e-5) and a GELU MLP in every block,
    no qkv bias, LayerNorm eps 1e-5, DINOv3's RoPE (axial, theta 100, centred coordinates, rotate_half, rows first)
    in every block."""
    backbone = narrow_model(path).backbone
    depth = parsed(path).model.backbone.depth
    assert isinstance(backbone, PEVisionTransformer) and len(backbone.blocks) == depth
    assert backbone.reg_token.shape == (1, 4, NARROW) and backbone.num_prefix_tokens == 5
    for block in backbone.blocks:
        assert isinstance(block.ls1, LayerScale) and isinstance(block.ls2, LayerScale)
        assert isinstance(block.mlp, Mlp) and block.attn.qkv.bias is None and block.norm1.eps == 1e-5
        rope = block.attn.pos_embed
        assert isinstance(rope, RoPEAxial)
        assert (rope.theta, rope.pairing, rope.axes) == (100.0, 'half', 'yx')
    assert backbone.pos_embed_spec.coords == 'centered' and backbone.pos_embed_spec.coord_aug is None
    torch.testing.assert_close(backbone.blocks[0].ls1.gamma, torch.full((NARROW, ), 1e-5))


@pytest.mark.parametrize('path', CONFIGS)
def test_config_optimizer_decays_lr_by_layer(path):
    """Every parameter's lr is base_lr * rate ** (depth + 1 - layer) with the config's rate; no weight decay for
    1-D parameters (biases, norms, LayerScale), the CLS and register tokens and encodings, the base otherwise."""
    cfg = parsed(path)
    model = narrow_model(path)
    DefaultScope.get_instance(f'test-{path}', scope_name=cfg.default_scope)
    optimizer = build_optim_wrapper(model, copy.deepcopy(cfg.optim_wrapper)).optimizer
    DefaultScope._instance_dict.clear()
    base_lr, base_wd = cfg.optim_wrapper.optimizer.lr, cfg.optim_wrapper.optimizer.weight_decay
    rate, depth = LAYER_DECAY[path], cfg.model.backbone.depth
    group_of = {id(p): g for g in optimizer.param_groups for p in g['params']}
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    assert len(group_of) == len(names)
    for name, param in model.named_parameters():
        group = group_of[id(param)]
        assert group['lr'] == pytest.approx(base_lr * rate ** (depth + 1 - layer_id(name, depth)), rel=1e-12), name
        no_decay = param.ndim == 1 or re.search(r'cls_token|reg_token|pos_embed', name)
        assert group['weight_decay'] == (0.0 if no_decay else base_wd), name
    lrs = {n: group_of[id(p)]['lr'] for n, p in model.named_parameters()}
    assert lrs['backbone.patch_embed.proj.weight'] == pytest.approx(base_lr * rate ** (depth + 1))
    assert lrs[f'backbone.blocks.{depth - 1}.attn.qkv.weight'] == pytest.approx(base_lr * rate)


# ------------------------------------------------------------------------- the constructor on a small model


class SmallModel(torch.nn.Module):
    """A 3-block ViT (RoPE-Mixed + APE: encoding parameters in the token encoding and in every block, 2 registers,
    LayerScale, final norm) with a linear neck and head."""

    def __init__(self, frozen_stages: int = -1):
        super().__init__()
        self.backbone = PEVisionTransformer(img_size=32, patch_size=8, embed_dims=32, depth=3, num_heads=2,
                                            num_reg_tokens=2, layer_scale_init_value=0.1, frozen_stages=frozen_stages,
                                            pos_embed=dict(type='rope_mixed', with_ape=True))
        self.neck = torch.nn.Linear(32, 16)
        self.head = torch.nn.Linear(16, 3)


def optim_cfg(**paramwise):
    return dict(constructor='PELayerDecayOptimizerConstructor', optimizer=dict(type='AdamW', lr=1e-3,
                                                                               weight_decay=0.05),
                paramwise_cfg=paramwise)


def test_layer_decay_scales_mmengine_rules_by_layer():
    """Each parameter's group is mmengine's (DefaultOptimWrapperConstructor, same paramwise_cfg) with the lr times
    0.5 ** (4 - layer): custom keys' lr_mult and decay_mult, flat_decay_mult for the 1-D parameters without a
    custom key; frozen parameters are left out, as mmengine does."""
    model = SmallModel(frozen_stages=1)  # patch embedding, tokens, APE and block 0 frozen
    paramwise = dict(flat_decay_mult=0.0, custom_keys={'cls_token': dict(decay_mult=0.0), 'reg_token': dict(
        decay_mult=0.0), 'pos_embed': dict(decay_mult=0.0), 'head': dict(lr_mult=2.0)})
    optimizer = build_optim_wrapper(model, optim_cfg(layer_decay_rate=0.5, **paramwise)).optimizer
    mmengine_cfg = {**optim_cfg(**paramwise), 'constructor': 'DefaultOptimWrapperConstructor'}
    reference = build_optim_wrapper(model, mmengine_cfg).optimizer
    group_of = {id(p): g for g in optimizer.param_groups for p in g['params']}
    reference_of = {id(p): g for g in reference.param_groups for p in g['params']}
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert len(group_of) == len(trainable) < len(list(model.parameters()))
    assert any(n.startswith('backbone.blocks.1.attn.pos_embed') for n in trainable)  # RoPE-Mixed frequencies
    for name, param in trainable.items():
        group, mmengine_group = group_of[id(param)], reference_of[id(param)]
        expected_lr = mmengine_group.get('lr', 1e-3) * 0.5 ** (4 - layer_id(name, 3))
        assert group['lr'] == pytest.approx(expected_lr, rel=1e-12), name
        assert group['weight_decay'] == mmengine_group.get('weight_decay', 0.05), name
    lr_of = {n: group_of[id(p)]['lr'] for n, p in trainable.items()}
    assert lr_of['backbone.blocks.1.attn.qkv.weight'] == pytest.approx(1e-3 * 0.5 ** 2)
    assert lr_of['backbone.blocks.1.attn.pos_embed.freqs'] == pytest.approx(1e-3 * 0.5 ** 2)
    assert lr_of['backbone.norm.weight'] == lr_of['neck.weight'] == pytest.approx(1e-3)
    assert lr_of['head.weight'] == pytest.approx(2e-3)
    decay_of = {n: group_of[id(p)]['weight_decay'] for n, p in trainable.items()}
    assert decay_of['backbone.blocks.1.norm1.weight'] == decay_of['backbone.blocks.1.attn.pos_embed.freqs'] == 0.0
    assert decay_of['backbone.blocks.1.attn.qkv.weight'] == decay_of['head.bias'] == 0.05  # a custom key wins


def test_layer_decay_is_found_in_mmdet_and_mmseg_scopes():
    """Configs name the constructor under mmdet's and mmseg's default scopes; the layers' lrs match."""
    model = SmallModel()
    lrs = []
    for scope in ('mmdet', 'mmseg'):
        DefaultScope.get_instance(f'test-layer-decay-{scope}', scope_name=scope)
        optimizer = build_optim_wrapper(model, optim_cfg(layer_decay_rate=0.9)).optimizer
        DefaultScope._instance_dict.clear()
        lrs.append([g['lr'] for g in optimizer.param_groups])
    assert lrs[0] == lrs[1] and min(lrs[0]) == pytest.approx(1e-3 * 0.9 ** 4)


@pytest.mark.parametrize('paramwise, message', [
    (dict(), r'layer_decay_rate must be a number in \(0, 1\] \(1: no decay\), got None'),
    (dict(layer_decay_rate=0.0), r'layer_decay_rate must be a number in \(0, 1\] \(1: no decay\), got 0.0'),
    (dict(layer_decay_rate=1.5), r'got 1.5'),
    (dict(layer_decay_rate=True), r'got True'),
    (dict(layer_decay_rate=0.7, num_layers=12, decay_rate=0.7),
     r"unknown key\(s\) 'decay_rate', 'num_layers'; accepted: layer_decay_rate and mmengine's 'custom_keys', .*"
     r"\(the number of layers is the backbone's number of blocks\)"),
])
def test_layer_decay_bad_arguments_fail_clearly(paramwise, message):
    with pytest.raises(ValueError, match=r'PELayerDecayOptimizerConstructor paramwise_cfg .*' + message):
        build_optim_wrapper(SmallModel(), optim_cfg(**paramwise))


def test_layer_decay_needs_a_base_lr():
    cfg = optim_cfg(layer_decay_rate=0.9)
    del cfg['optimizer']['lr']
    with pytest.raises(ValueError, match='PELayerDecayOptimizerConstructor needs the base learning rate optimizer.lr'):
        build_optim_wrapper(SmallModel(), cfg)


def test_layer_decay_needs_a_vit_backbone_whose_parameters_it_knows():
    model = SmallModel()
    model.backbone = PESwinTransformer(embed_dims=32, depths=(1, 1), num_heads=(2, 2), strides=(4, 2), window_size=4,
                                       out_indices=(1, ))
    with pytest.raises(TypeError, match='needs a model whose backbone is a PEVisionTransformer, got '
                                        'PESwinTransformer'):
        build_optim_wrapper(model, optim_cfg(layer_decay_rate=0.9))
    model = SmallModel()
    model.backbone.extra = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match=r"does not know the layer of backbone parameter 'backbone.extra': known "
                                         r"are backbone.\{patch_embed, cls_token, reg_token, pos_embed\} \(layer 0\), "
                                         r"backbone.blocks.N \(N \+ 1\) and backbone.norm \(4\)"):
        build_optim_wrapper(model, optim_cfg(layer_decay_rate=0.9))


# ------------------------------------------------------------------------- the encoding preset in the study


def test_rope_dinov3_preset_is_dinov3s_rope():
    """The preset is the encoding tests/test_dinov3.py checks against timm's DINOv3, and maps back to its name;
    Swin (window-local index coordinates only) refuses it, saying why."""
    assert parse_encoding('rope_dinov3') == ('rope_dinov3', DINOV3_ROPE)
    assert encoding_name(dict(DINOV3_ROPE)) == 'rope_dinov3'
    with pytest.raises(ValueError, match=r"PESwinTransformer attends in windows with window-local RoPE coordinates: "
                                         r"pos_embed needs coords in \('index'\), .* got coords='centered'"):
        PESwinTransformer(pos_embed=parse_encoding('rope_dinov3')[1])


def test_study_config_with_rope_dinov3_trains_one_step(tmp_path):
    """compare_encodings.py's run config for ``--encodings rope_dinov3`` on the ViT study config builds a ViT with
    DINOv3's RoPE, which trains one step (finite losses)."""
    name, pos_embed = parse_encoding('rope_dinov3')
    text = run_config(osp.join(ROOT, 'configs/study/upernet_vit-tiny_layout.py'), pos_embed=pos_embed, name=name,
                      seed=0, quick=True)
    path = tmp_path / 'config.py'
    path.write_text(text)
    cfg = Config.fromfile(str(path))
    assert cfg.model.backbone.pos_embed == DINOV3_ROPE and cfg.study.encoding == 'rope_dinov3'
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.default_scope)
    DefaultScope._instance_dict.clear()
    rope = model.backbone.blocks[0].attn.pos_embed
    assert isinstance(rope, RoPEAxial) and (rope.pairing, rope.axes, model.backbone.pos_embed_spec.coords) == \
        ('half', 'yx', 'centered')
    losses = train_step(model, seg_batch([(3, 128, 160)] * 2, num_classes=cfg.model.decode_head.num_classes))
    assert finite_losses(losses)
