"""Download every checkpoint that configs name into the local caches, for clusters whose compute
nodes are offline: run it on a login node with the same HF_HOME / TORCH_HOME as the jobs, then
run the jobs with HF_HUB_OFFLINE=1.

    python tools/misc/fetch_weights.py configs/dino_swin_rope.py configs/dino/*.py configs/upernet/*.py
    python tools/misc/fetch_weights.py hf://naver-ai/swin_rope_mixed_tiny_patch4_window7_224 timm://MODEL.TAG

Arguments ending in .py are configs (their ``init_cfg`` Pretrained / ``pretrained`` checkpoints and
``load_from``), the others checkpoint names (hf://, timm://, http(s)://). hf:// and timm:// files go
into huggingface_hub's cache, URLs into torch.hub's (where mmengine looks for them).

Gated repos (``facebook/dinov3-*``) need their licence accepted on huggingface.co and a token of
that account: ``HF_TOKEN`` in the environment (huggingface_hub reads it; also ``hf auth login``) or
``--token``, which is passed to every download and never printed.

    HF_TOKEN=hf_... python tools/misc/fetch_weights.py hf://facebook/dinov3-vits16-pretrain-lvd1689m
"""
import argparse
import sys

from mmengine.config import Config

from mmpe.converters import checkpoint as ckpt
from mmpe.engine.preflight import config_checkpoints


def names_in(config_file: str) -> list:
    cfg = Config.fromfile(config_file)
    return config_checkpoints(cfg.get('model', {})) + ([cfg.load_from] if cfg.get('load_from') else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('sources', nargs='+', help='config files (.py) or checkpoint names')
    parser.add_argument('--token', help='Hugging Face token for gated or private repos (default: HF_TOKEN, or the '
                                        'token of `hf auth login`); HF_TOKEN keeps it out of the process list')
    args = parser.parse_args()
    names = []
    for source in args.sources:
        names += names_in(source) if source.endswith('.py') else [source]
    failed = 0
    for name in dict.fromkeys(names):
        if not ckpt.is_named(name):
            print(f'{name}: a local file ({"present" if ckpt.cached_file(name) else "MISSING"}), nothing to fetch')
            failed += ckpt.cached_file(name) is None
            continue
        try:
            print(f'{name} -> {ckpt.resolve(name, token=args.token)}', flush=True)
        except (OSError, ValueError) as err:
            print(f'{name}: FAILED: {err}', file=sys.stderr)
            failed += 1
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
