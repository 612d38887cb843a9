"""DINOv3 weights in every published layout: Meta's original files (built here from timm's model with
the key names of facebookresearch/dinov3) and Hugging Face transformers' DINOv3ViTModel load into
PEVisionTransformer by path and by name from a hand-built offline cache, are detected and logged, and
give the reference model's patch tokens; Meta's RoPE periods are checked; gated repos fail with one
error naming the repo and HF_TOKEN; tools/misc/fetch_weights.py passes a token through."""
import importlib
import runpy
import sys
from pathlib import Path

import pytest
import torch
from test_dinov3 import dinov3_kwargs, max_differences, perturbed_timm
from test_weights import _log_messages

from mmpe.converters import checkpoint as ckpt
from mmpe.converters import convert_timm_vit, timm_vit_layout
from mmpe.converters.dinov3 import check_rope_periods
from mmpe.models import PEVisionTransformer

ROOT = Path(__file__).resolve().parents[1]
REVISION = 'c' * 40
HF_REPO = 'facebook/dinov3-vits16-pretrain-lvd1689m'
META_FILE = 'dinov3_vits16_pretrain_lvd1689m-08c60483.pth'  # dinov3/hub/backbones.py's file name


def snapshot(hub: Path, repo: str) -> Path:
    """The snapshot folder of ``repo`` in the huggingface_hub cache ``hub`` (created, refs/main set)."""
    folder = hub / ('models--' + repo.replace('/', '--'))
    (folder / 'snapshots' / REVISION).mkdir(parents=True)
    (folder / 'refs').mkdir()
    (folder / 'refs' / 'main').write_text(REVISION)
    return folder / 'snapshots' / REVISION


def load_logged(model, checkpoint: str) -> list:
    """Load ``checkpoint`` through ``init_cfg`` (mmengine's path); the messages mmengine's logger got."""
    model.init_cfg = dict(type='Pretrained', checkpoint=checkpoint)
    with _log_messages() as messages:
        model.init_weights()
    assert not any('missing keys' in m or 'unexpected keys' in m for m in messages), messages
    return messages


# ------------------------------------------------------------------------------- Meta's original layout


def meta_periods(head_dim: int) -> torch.Tensor:
    """The periods Meta's RopePositionEmbedding stores when trained in bfloat16 (its formula, its dtype)."""
    return 100 ** (2 * torch.arange(head_dim // 4, dtype=torch.bfloat16) / (head_dim // 2))


def meta_state_dict(timm_model) -> dict:
    """timm's DINOv3 state dict in the layout of facebookresearch/dinov3's DinoVisionTransformer (key
    names from dinov3/models/vision_transformer.py and dinov3/layers): storage_tokens, mask_token (1, C),
    rope_embed.periods, ls1/ls2.gamma, a fused qkv bias with a random k part and its bias_mask
    (LinearKMaskedBias), SwiGLUFFN's w1 (gate), w2, w3."""
    gen = torch.Generator().manual_seed(1)
    renames = {'reg_token': 'storage_tokens', '.gamma_1': '.ls1.gamma', '.gamma_2': '.ls2.gamma',
               '.mlp.fc1_g.': '.mlp.w1.', '.mlp.fc1_x.': '.mlp.w2.', '.mlp.fc2.': '.mlp.w3.'}
    swiglu = any('.mlp.fc1_g.' in k for k in timm_model.state_dict())
    out = {}
    for key, value in timm_model.state_dict().items():
        if key.endswith('.attn.q_bias'):
            v_bias = timm_model.state_dict()[key.replace('q_bias', 'v_bias')]
            out[key.replace('q_bias', 'qkv.bias')] = torch.cat([value, torch.randn(value.shape, generator=gen), v_bias])
            out[key.replace('q_bias', 'qkv.bias_mask')] = torch.cat([torch.ones_like(value), torch.zeros_like(value),
                                                                     torch.ones_like(value)])
            continue
        if key.endswith('.attn.v_bias'):
            continue
        for old, new in renames.items():
            if old in key and (swiglu or '.mlp.' not in old):
                key = key.replace(old, new)
        out[key] = value
    dim = timm_model.embed_dim
    out['mask_token'] = torch.randn(1, dim, generator=gen)
    out['rope_embed.periods'] = meta_periods(dim // timm_model.blocks[0].attn.num_heads)
    return out


def assert_meta_layout_equals_timm(name, tmp_path, sizes, **kwargs):
    """Meta's file of timm's (perturbed) model, loaded by path, gives timm's patch tokens to 1e-5 at
    ``sizes`` (mmpe, like timm, computes the periods in float32)."""
    timm_model = perturbed_timm(name, **kwargs)
    depth = len(timm_model.blocks)
    path = tmp_path / META_FILE
    torch.save(meta_state_dict(timm_model), path)
    # without mask_k_bias the k part of the qkv bias counts: only the converter's bias_mask zeroes it
    model = PEVisionTransformer(**dinov3_kwargs(name, **kwargs, mask_k_bias=False),
                                out_indices=((depth - 1) // 2, depth - 1))
    messages = load_logged(model, str(path))
    assert any(f"checkpoint {path}: detected layout 'dinov3': Meta's DINOv3 release" in m for m in messages), messages
    torch.manual_seed(0)
    for hw in sizes:
        assert max(max_differences(model.eval(), timm_model, hw, (depth - 1) // 2)) < 1e-5, (name, hw)


@pytest.mark.parametrize('name', ['vit_small_patch16_dinov3', 'vit_small_patch16_dinov3_qkvb',
                                  'vit_small_plus_patch16_dinov3'])
def test_meta_layout_equals_timm(name, tmp_path):
    """S without and with qkv bias, S+ (SwiGLU w1/w2/w3), cut to 2 blocks, at 224 x 224."""
    assert_meta_layout_equals_timm(name, tmp_path, [(224, 224)], depth=2)


@pytest.mark.slow
def test_meta_layout_equals_timm_base(tmp_path):
    """B with qkv bias (Meta's published B), all 12 blocks, at 224 x 224 and 512 x 640."""
    assert_meta_layout_equals_timm('vit_base_patch16_dinov3_qkvb', tmp_path, [(224, 224), (512, 640)])


def test_meta_layout_by_hf_and_url_name(offline_hub, tmp_path, monkeypatch):
    """Meta's .pth by hf:// name (a repo that holds it) and by its URL, both from offline caches:
    detected, logged, timm's tokens; the dropped keys are the mask token, the bias masks and the periods."""
    timm_model = perturbed_timm('vit_small_patch16_dinov3_qkvb', depth=2)
    state = meta_state_dict(timm_model)
    torch.save(state, snapshot(offline_hub, 'someone/dinov3-meta') / META_FILE)
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    (tmp_path / 'torch' / 'hub' / 'checkpoints').mkdir(parents=True)
    torch.save(state, tmp_path / 'torch' / 'hub' / 'checkpoints' / META_FILE)
    for name in (f'hf://someone/dinov3-meta/{META_FILE}', f'https://dl.fbaipublicfiles.com/dinov3/dinov3_vits16/'
                                                           f'{META_FILE}'):
        model = PEVisionTransformer(**dinov3_kwargs('vit_small_patch16_dinov3_qkvb', depth=2), out_indices=(0, 1))
        messages = load_logged(model, name)
        assert any(f"checkpoint {name}: detected layout 'dinov3'" in m for m in messages), messages
        torch.manual_seed(0)
        assert max(max_differences(model.eval(), timm_model, (224, 224), 0)) < 1e-5, name
    _, ignored = convert_timm_vit(state, num_heads=6)
    assert set(ignored) == {'mask_token', 'rope_embed.periods', 'blocks.0.attn.qkv.bias_mask',
                            'blocks.1.attn.qkv.bias_mask'}


def test_meta_periods_are_checked():
    """The stored periods must be DINOv3's for theta 100 (float32 or bfloat16-rounded) and the model's
    head dimension; other ones are refused, naming both."""
    check_rope_periods(meta_periods(64), 384, 6)
    check_rope_periods(100 ** (4 * torch.arange(16, dtype=torch.float32) / 64), 384, 6)
    with pytest.raises(ValueError, match=r'rope_embed.periods has 16 entries, i.e. head_dim 64, but the model has '
                                         r'embed_dims 768 / num_heads 6 = 128 per head'):
        check_rope_periods(meta_periods(64), 768, 6)
    with pytest.raises(ValueError, match=r"rope_embed.periods \[1.0, 1.1548, .*\] are not DINOv3's theta \*\* "
                                         r"\(4k / head_dim\) for theta 100.0 and head_dim 64 \(\[1.0, 1.3335, .*\], "
                                         r"to bfloat16 rounding\): mmpe computes the periods from pos_embed theta"):
        check_rope_periods(10 ** (4 * torch.arange(16, dtype=torch.float32) / 64), 384, 6)


# ------------------------------------------------------------------------------- transformers' layout


def perturbed_hf(gated: bool):
    """transformers' DINOv3ViTModel, S width, 2 layers, DINOv3's settings (no k bias, registers, eps 1e-5),
    eval mode, its weights moved off their init like ``perturbed_timm``'s; gated: SwiGLU MLP (S+)."""
    transformers = pytest.importorskip('transformers')
    mmpe_model = PEVisionTransformer(**dinov3_kwargs('vit_small_plus_patch16_dinov3' if gated
                                                     else 'vit_small_patch16_dinov3', depth=2))
    hidden = mmpe_model.blocks[0].mlp.fc2.in_features
    config = transformers.DINOv3ViTConfig(
        hidden_size=384, num_hidden_layers=2, num_attention_heads=6, intermediate_size=hidden,
        num_register_tokens=4, layerscale_value=1e-5, layer_norm_eps=1e-5, rope_theta=100.0, query_bias=True,
        key_bias=False, value_bias=True, use_gated_mlp=gated, hidden_act='silu' if gated else 'gelu',
        attn_implementation='eager')
    model = transformers.DINOv3ViTModel(config).eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for key, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            p.copy_(0.5 + 0.2 * noise if 'lambda1' in key else p + 0.05 * noise)
    return model


@pytest.mark.parametrize('gated', [False, True])
def test_hf_layout_by_name_equals_transformers(gated, offline_hub):
    """A DINOv3ViTModel saved by transformers (model.safetensors + config.json, the published files'
    'layer.i.' keys) as hf://facebook/dinov3-vits16-pretrain-lvd1689m in an offline cache: layout
    'hf_dinov3' detected and logged, the patch tokens of transformers' last_hidden_state (and of
    its first layer's hidden state) to 1e-5; the 'model.layer.i.' keys of transformers 5's
    state_dict convert alike."""
    hf_model = perturbed_hf(gated)
    hf_model.save_pretrained(snapshot(offline_hub, HF_REPO))
    name = f'hf://{HF_REPO}'
    model = PEVisionTransformer(**dinov3_kwargs('vit_small_plus_patch16_dinov3_qkvb' if gated
                                                else 'vit_small_patch16_dinov3_qkvb', depth=2), out_indices=(0, 1))
    messages = load_logged(model, name)
    assert any(f"checkpoint {name}: detected layout 'hf_dinov3': Hugging Face transformers DINOv3ViTModel" in m
               for m in messages), messages
    torch.manual_seed(0)
    x = torch.randn(2, 3, 224, 160)
    with torch.no_grad():
        out = hf_model(pixel_values=x, output_hidden_states=True)
        mid, last = model.eval()(x)
    first = out.hidden_states[1][:, 5:]
    assert ((mid.flatten(2).transpose(1, 2) - first).abs().max() / first.abs().max()).item() < 1e-5
    assert (last.flatten(2).transpose(1, 2) - out.last_hidden_state[:, 5:]).abs().max().item() < 1e-5
    in_memory = hf_model.state_dict()
    assert any(k.startswith('model.layer.0.') for k in in_memory) and timm_vit_layout(in_memory) == 'hf_dinov3'
    converted, ignored = convert_timm_vit(in_memory)
    assert set(ignored) == {'embeddings.mask_token'}
    for key, value in model.state_dict().items():
        assert torch.equal(converted[key], value), key


# ------------------------------------------------------------------------------- gated repos, token


def gated_repo_error(repo: str):
    """The error huggingface_hub raises for a gated repo (its own hf_raise_for_status on the hub's
    answer: 401 with X-Error-Code GatedRepo)."""
    import httpx2
    from huggingface_hub.utils import hf_raise_for_status
    request = httpx2.Request('GET', f'https://huggingface.co/{repo}/resolve/main/model.safetensors')
    response = httpx2.Response(401, headers={'X-Error-Code': 'GatedRepo', 'X-Error-Message': 'Access to model '
                               f'{repo} is restricted. You must have access to it and be authenticated to access it.'},
                               request=request)
    with pytest.raises(Exception) as info:
        hf_raise_for_status(response)
    return info.value


@pytest.fixture
def online_hub(offline_hub, monkeypatch):
    """An empty Hugging Face cache in online mode; huggingface_hub's downloads are to be monkeypatched."""
    from huggingface_hub import constants
    monkeypatch.setenv('HF_HUB_OFFLINE', '0')
    importlib.reload(constants)
    return offline_hub


def test_gated_repo_gives_one_error_naming_repo_and_token(online_hub, monkeypatch):
    """hf:// of a gated repo without access, with or without FILE (huggingface_hub's GatedRepoError from
    the file list or the download): HubAccessError naming the repo, its licence page and HF_TOKEN."""
    from huggingface_hub.errors import GatedRepoError
    err = gated_repo_error(HF_REPO)
    assert isinstance(err, GatedRepoError)

    def refuse(*args, **kwargs):
        raise err
    monkeypatch.setattr('huggingface_hub.hf_hub_download', refuse)
    monkeypatch.setattr('huggingface_hub.HfApi.list_repo_files', refuse)
    for name in (f'hf://{HF_REPO}', f'hf://{HF_REPO}/model.safetensors'):
        with pytest.raises(ckpt.HubAccessError) as info:
            ckpt.resolve(name)
        assert str(info.value) == (
            f'checkpoint {name}: the Hugging Face repo {HF_REPO} is gated and refused the download (HTTP 401). '
            f'Accept the licence at https://huggingface.co/{HF_REPO} (logged in), create a read token at '
            f'https://huggingface.co/settings/tokens and set HF_TOKEN=<token> (or run `hf auth login`, or pass '
            f'--token to python tools/misc/fetch_weights.py)')
        assert info.value.__cause__ is None and info.value.__suppress_context__


def test_fetch_weights_passes_the_token_and_never_prints_it(online_hub, monkeypatch, capsys):
    """--token reaches huggingface_hub's list_repo_files and hf_hub_download; neither the success line
    nor the gated-repo failure prints it."""
    token = 'hf_SecretTokenValue123'
    seen = []

    def download(repo, filename, revision=None, token=None):
        seen.append(('download', repo, filename, token))
        if repo == 'facebook/dinov3-vitb16-pretrain-lvd1689m':
            raise gated_repo_error(repo)
        return f'/cache/{repo}/{filename}'

    def list_files(self, repo, revision=None, token=None):
        seen.append(('list', repo, token))
        return ['config.json', 'model.safetensors']
    monkeypatch.setattr('huggingface_hub.hf_hub_download', download)
    monkeypatch.setattr('huggingface_hub.HfApi.list_repo_files', list_files)
    monkeypatch.setattr(sys, 'argv', ['fetch_weights.py', f'hf://{HF_REPO}',
                                      'hf://facebook/dinov3-vitb16-pretrain-lvd1689m/model.safetensors',
                                      '--token', token])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(ROOT / 'tools/misc/fetch_weights.py'), run_name='__main__')
    assert exit_info.value.code == 1
    assert seen == [('list', HF_REPO, token), ('download', HF_REPO, 'model.safetensors', token),
                    ('download', 'facebook/dinov3-vitb16-pretrain-lvd1689m', 'model.safetensors', token)]
    out, err = capsys.readouterr()
    assert out == f'hf://{HF_REPO} -> /cache/{HF_REPO}/model.safetensors\n'
    assert 'is gated and refused the download (HTTP 401)' in err and 'HF_TOKEN' in err
    assert token not in out + err
