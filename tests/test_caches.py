"""Derived position tables live in bounded LRU caches shared by every block, and a long run over
many input shapes stays within those bounds."""
import csv
import os.path as osp
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from mmpe.models import PESwinTransformer, PEVisionTransformer
from mmpe.pos_embed import TABLE_CACHES, TableCache, grid_coords, rope, rope_axial_tables, rope_coords

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


class SlowHashKey:
    """A key whose hashing pauses (releasing the GIL), so that threads interleave inside look-ups."""

    def __init__(self, n):
        self.n = n

    def __hash__(self):
        time.sleep(1e-4)
        return self.n

    def __eq__(self, other):
        return self.n == other.n


def test_table_cache_is_thread_safe():
    """4 threads look up 5 keys in a 2-entry cache, evicting each other's entries all the time: every
    call returns its key's table, nothing raises, and the cache never exceeds its bound."""
    cache = TableCache(lambda key: torch.full((3,), float(key.n)), maxsize=2)

    def lookups(start):
        for i in range(100):
            key = SlowHashKey((start + i) % 5)
            assert torch.equal(cache(key), torch.full((3,), float(key.n)))
            assert len(cache) <= 2

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(lookups, start) for start in range(4)]:
            future.result()


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


@pytest.mark.parametrize('kind', ['rope_axial', 'rope_mixed'])
def test_coordinate_augmentation_caches_only_reusable_tables(kind, monkeypatch):
    """coord_aug draws a new transform every training step: 50 steps at 3 sizes leave at most one entry
    per size in every cache (the drawn tables are built once per forward, shared by its 3 blocks, and
    not cached); evaluation ('interpolate', one fixed transform per size) builds its tables once per size."""
    clear_caches()
    builds = []
    monkeypatch.setattr(rope, 'grid_coords', lambda *args: builds.append(args) or grid_coords(*args))
    model = PEVisionTransformer(img_size=64, patch_size=16, embed_dims=32, depth=3, num_heads=2, pos_embed=dict(
        type=kind, coords='interpolate', coord_aug=dict(shift=0.5, jitter=1.5, rescale=2.0))).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    sizes = [(64, 64), (48, 96), (80, 48)]
    for step in range(50):
        model(torch.randn(1, 3, *sizes[step % 3]))[0].square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    assert len(builds) == 50  # one coordinate table per forward, not one per block
    for name, cache in TABLE_CACHES.items():
        assert len(cache) <= 3, (name, list(cache.entries))
    model.eval()
    with torch.no_grad():
        for _ in range(2):
            for size in sizes:
                model(torch.randn(1, 3, *size))
    assert len(builds) == 53
    for name, cache in TABLE_CACHES.items():
        assert len(cache) <= 3, (name, list(cache.entries))


@pytest.mark.parametrize('kind', ['rope_axial', 'rope_mixed'])
def test_concurrent_forwards_equal_single_threaded(kind, monkeypatch):
    """4 threads x 20 forwards at 5 sizes (ViTDet: global and window RoPE, padding masks) through caches cut
    to 2 entries, so threads evict each other's tables: the outputs equal single-threaded ones, no
    thread raises, and every cache stays within its bound."""
    torch.manual_seed(0)
    model = PEVisionTransformer(img_size=64, patch_size=16, embed_dims=32, depth=2, num_heads=2, window_size=3,
                                global_attn_indices=(1,), pos_embed=dict(type=kind)).eval()
    sizes = [(64, 64), (48, 96), (80, 48), (32, 112), (96, 80)]
    images = [torch.randn(1, 3, *size) for size in sizes]
    with torch.no_grad():
        expected = [model(image)[0] for image in images]
    for cache in TABLE_CACHES.values():
        monkeypatch.setattr(cache, 'maxsize', 2)
    clear_caches()

    def forwards(start):
        for i in range(20):
            j = (start + i) % len(sizes)
            with torch.no_grad():
                torch.testing.assert_close(model(images[j])[0], expected[j], rtol=0, atol=0)

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(forwards, start) for start in range(4)]:
            future.result()
    for name, cache in TABLE_CACHES.items():
        assert len(cache) <= 2, name


def test_swin_blocks_share_masks_and_coordinates():
    clear_caches()
    model = PESwinTransformer(embed_dims=16, depths=(2, 2), num_heads=(2, 4), strides=(4, 2), out_indices=(0, 1),
                              window_size=4, pos_embed=dict(type='rope_mixed'))
    model(torch.randn(1, 3, 72, 100))
    # one shift mask per stage (each stage has one shifted block), window coordinates once
    assert len(TABLE_CACHES['shift_window_mask']) == 2
    assert list(TABLE_CACHES['rope_coords'].entries) == [((4, 4), 0, torch.device('cpu'))]
    assert rope_coords((4, 4), 0, torch.device('cpu')) is rope_coords((4, 4), 0, torch.device('cpu'))


@pytest.mark.slow
def test_memory_soak_stays_within_cache_bounds(tmp_path):
    """tools/analysis_tools/memory_soak.py over more distinct shapes than any cache holds (a shortened run; the
    2000-shape figures are in docs/user_guides/benchmarks.md)."""
    models = ['vit-rope_axial', 'swin-rope_mixed']
    subprocess.run([sys.executable, 'tools/analysis_tools/memory_soak.py', '--shapes', '80', '--warmup', '20',
                    '--models', *models, '--out', str(tmp_path)], cwd=ROOT, check=True, capture_output=True)
    with open(tmp_path / 'memory_soak.csv') as f:
        rows = list(csv.DictReader(f))
    assert [row['model'] for row in rows] == models
    for row in rows:
        assert row['caches_over_bound'] == 'none', row
        assert float(row['growth_mb']) < 50, row
    # ~75 distinct ViT grids: the RoPE table cache filled up to its bound, so eviction was exercised
    assert 'rope_axial_tables 64/64' in rows[0]['caches_used'], rows[0]
