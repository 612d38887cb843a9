"""Derived position tables live in bounded LRU caches shared by every block, and a long run over
many input shapes stays within those bounds."""
import csv
import os.path as osp
import subprocess
import sys

import torch

from mmpe.models import PESwinTransformer, PEVisionTransformer
from mmpe.pos_embed import TABLE_CACHES, TableCache, rope_axial_tables, rope_coords

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def clear_caches():
    for cache in TABLE_CACHES.values():
        cache.clear()


def test_table_cache_is_lru_and_bounded():
    built = []
    cache = TableCache(lambda n: built.append(n) or torch.full((n,), float(n)), maxsize=3)
    for n in (1, 2, 3):
        cache(n)
    assert cache(1) is cache(1)  # hit: nothing rebuilt; 1 becomes the most recent entry
    cache(4)  # evicts 2, the least recently used
    assert len(cache) == 3 and list(cache.entries) == [(3,), (1,), (4,)]
    cache(2)
    assert built == [1, 2, 3, 4, 2]


def test_tables_built_under_inference_mode_are_plain_tensors():
    clear_caches()
    with torch.inference_mode():
        cos, _ = rope_axial_tables((3, 4), 1, 16, 100.0, torch.device('cpu'))
    assert not cos.is_inference() and not cos.requires_grad


def test_vit_blocks_share_one_table_per_grid():
    """Every block of a RoPE-Axial ViT uses the same cached table; another grid adds one entry."""
    clear_caches()
    model = PEVisionTransformer(img_size=64, patch_size=16, embed_dims=32, depth=4, num_heads=2,
                                pos_embed=dict(type='rope_axial'))
    model(torch.randn(1, 3, 64, 96))
    model(torch.randn(1, 3, 64, 96))
    axial = TABLE_CACHES['rope_axial_tables']
    assert list(axial.entries) == [((4, 6), 1, 16, 100.0, torch.device('cpu'))]
    model(torch.randn(2, 3, 80, 48))
    assert len(axial) == 2


def test_swin_blocks_share_masks_and_coordinates():
    clear_caches()
    model = PESwinTransformer(embed_dims=16, depths=(2, 2), num_heads=(2, 4), strides=(4, 2), out_indices=(0, 1),
                              window_size=4, pos_embed=dict(type='rope_mixed'))
    model(torch.randn(1, 3, 72, 100))
    # one shift mask per stage (each stage has one shifted block), window coordinates once
    assert len(TABLE_CACHES['shift_window_mask']) == 2
    assert list(TABLE_CACHES['rope_coords'].entries) == [((4, 4), 0, torch.device('cpu'))]
    assert rope_coords((4, 4), 0, torch.device('cpu')) is rope_coords((4, 4), 0, torch.device('cpu'))


def test_memory_soak_stays_within_cache_bounds(tmp_path):
    """tools/memory_soak.py over more distinct shapes than any cache holds (a shortened run; the
    2000-shape figures are in the README)."""
    models = ['vit-rope_axial', 'vit-loope', 'swin-rope_mixed']
    subprocess.run([sys.executable, 'tools/memory_soak.py', '--shapes', '80', '--warmup', '20',
                    '--models', *models, '--out', str(tmp_path)], cwd=ROOT, check=True, capture_output=True)
    with open(tmp_path / 'memory_soak.csv') as f:
        rows = list(csv.DictReader(f))
    assert [row['model'] for row in rows] == models
    for row in rows:
        assert row['caches_over_bound'] == 'none', row
        assert float(row['growth_mb']) < 50, row
    # ~75 distinct ViT grids: the RoPE table cache filled up to its bound, so eviction was exercised
    assert 'rope_axial_tables 64/64' in rows[0]['caches_used'], rows[0]
