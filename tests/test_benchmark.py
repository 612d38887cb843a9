"""The benchmark helpers measure what they claim: peak memory of one step, not of set-up; resident
memory as the kernel counts it; the benchmark backbones and report tables as documented."""
import csv
import os

import pytest
import torch

from mmpe.analysis.benchmark import (
    cpu_peak_memory_mb,
    cuda_peak_memory_mb,
    report,
    small_backbone,
    status_mb,
    time_interleaved,
)
from mmpe.models import PESwinTransformer, PEVisionTransformer
from mmpe.pos_embed import LearnedPosEmbed, RoPEAxial, RoPEMixed


def allocating_step(step_mb: int, setup_mb: int):
    """Setup that holds ``setup_mb`` and allocates a transient ``setup_mb * 3`` while building;
    its step allocates (and touches) ``step_mb`` at once, then frees it."""
    held = torch.ones(setup_mb * 2 ** 18)  # float32: 4 bytes
    torch.ones(setup_mb * 3 * 2 ** 18).sum()  # a set-up transient larger than the step, freed

    def step():
        buffer = torch.ones(step_mb * 2 ** 18)
        assert buffer[-1] == 1 and held[-1] == 1
    return step


def test_cpu_peak_memory_counts_the_step_only():
    small = cpu_peak_memory_mb(allocating_step, 60, 100)
    large = cpu_peak_memory_mb(allocating_step, 180, 100)
    # Each figure is the step's own allocation (the interpreter adds a few MiB at most), and the
    # 300 MiB set-up transient never shows.
    assert 55 < small < 75, small
    assert 175 < large < 195, large


def test_time_interleaved_runs_every_case():
    calls = {'a': 0, 'b': 0}

    def case(name):
        def run():
            calls[name] += 1
        return run

    times = time_interleaved({'a': case('a'), 'b': case('b')}, warmup=1, repeats=3)
    assert calls == {'a': 4, 'b': 4}
    assert set(times) == {'a', 'b'} and all(t >= 0 for t in times.values())


def test_status_mb_follows_resident_memory():
    """VmRSS agrees with the resident pages of /proc/self/statm and grows by a touched allocation
    (64 MiB: above glibc's mmap threshold, fresh pages); the high-water mark VmHWM is at least VmRSS."""
    with open('/proc/self/statm') as f:
        statm = int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2 ** 20
    before = status_mb('VmRSS')
    assert abs(before - statm) < 4, (before, statm)
    buffer = torch.ones(64 * 2 ** 18)  # float32
    grown = status_mb('VmRSS') - before
    assert 60 < grown < 70, grown
    assert status_mb('VmHWM') >= status_mb('VmRSS') > 0
    del buffer


@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA only: torch sees no GPU on this machine')
def test_cuda_peak_memory_counts_the_step_only():
    held = torch.ones(32 * 2 ** 18, device='cuda')  # 32 MiB held before the step: not counted

    def step():
        buffer = torch.ones(16 * 2 ** 18, device='cuda')  # a 16 MiB transient
        assert buffer[-1] == held[-1]

    assert 15.9 < cuda_peak_memory_mb(step) < 17


@pytest.mark.parametrize('name, cls, encoding, count, shapes', [
    ('vit-rope_mixed', PEVisionTransformer, RoPEMixed, 2, [(1, 64, 4, 6)]),  # ViT-16, 2 blocks, 64 wide
    ('vit-ape', PEVisionTransformer, LearnedPosEmbed, 1, [(1, 64, 4, 6)]),
    ('swin-rope_axial', PESwinTransformer, RoPEAxial, 5,  # depths 1, 2, 1, 1 from 32 wide
     [(1, 32, 16, 24), (1, 64, 8, 12), (1, 128, 4, 6), (1, 256, 2, 3)]),
])
def test_small_backbone_is_the_documented_model(name, cls, encoding, count, shapes):
    model = small_backbone(name).eval()
    assert type(model) is cls
    assert sum(isinstance(m, encoding) for m in model.modules()) == count
    with torch.no_grad():
        assert [tuple(out.shape) for out in model(torch.randn(1, 3, 64, 96))] == shapes


def test_report_adds_ratios_and_writes_table_and_plot(tmp_path, capsys):
    rows = [dict(case='eager', ms=2.0), dict(case='compiled', ms=1.5), dict(case='other', ms=3.0)]
    markdown = report(rows, lambda row: rows[0] if row['case'] != 'other' else None, 'ms', str(tmp_path / 'speed'),
                      'Speed')
    assert [row['ratio'] for row in rows] == [1.0, 0.75, '']
    assert markdown == ('### Speed\n\n| case | ms | ratio |\n|---|---|---|\n| eager | 2 | 1 |\n'
                        '| compiled | 1.5 | 0.75 |\n| other | 3 |  |\n')
    assert capsys.readouterr().out == markdown + '\n'
    assert (tmp_path / 'speed.md').read_text() == markdown
    with open(tmp_path / 'speed.csv', newline='') as f:
        assert list(csv.reader(f)) == [['case', 'ms', 'ratio'], ['eager', '2.0', '1.0'], ['compiled', '1.5', '0.75'],
                                       ['other', '3.0', '']]
    assert (tmp_path / 'speed.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_step_time_shares_put_time_where_it_is_spent():
    """A step of matrix products is matmul time, a sleeping step outside any operator, a step of
    elementwise operators other operators (compiled: inductor's kernels), mmpe's deformable attention
    (forward and backward) its own share; the parts add up to the profiled call's wall time."""
    import time

    from mmpe.analysis.compilation import step_time_shares
    a = torch.randn(384, 384)

    def products():
        for _ in range(20):
            a @ a

    def elementwise():
        x = a
        for _ in range(300):
            x = x * 1.0001 + 0.1
        return x  # used: the compiled step keeps the work

    value = torch.randn(2, 60, 2, 16, requires_grad=True)
    locations = torch.rand(2, 500, 2, 2, 4, 2, requires_grad=True)
    weights = torch.rand(2, 500, 2, 2, 4, requires_grad=True)

    def deformable_attention():
        torch.ops.mmpe.ms_deform_attn(value, torch.tensor([[6, 8], [3, 4]]), torch.tensor([0, 48]), locations,
                                      weights, 64).sum().backward()

    compiled_elementwise = torch.compile(elementwise, backend='inductor')
    compiled_elementwise.__name__ = 'compiled_elementwise'
    shares = {}
    for step in (products, elementwise, lambda: time.sleep(0.2), deformable_attention, compiled_elementwise):
        step()
        shares[step.__name__] = step_time_shares(step)
        parts = sum(v for k, v in shares[step.__name__].items() if k != 'wall_s')
        assert parts == pytest.approx(shares[step.__name__]['wall_s'])
    assert shares['products']['matmul_conv_s'] > 0.8 * shares['products']['wall_s']
    assert shares['elementwise']['other_ops_s'] > 0.5 * shares['elementwise']['wall_s']
    assert shares['elementwise']['matmul_conv_s'] == 0
    assert shares['<lambda>']['outside_ops_s'] >= 0.19
    assert shares['<lambda>']['matmul_conv_s'] == shares['<lambda>']['deform_attn_s'] == 0
    assert shares['deformable_attention']['deform_attn_s'] > 0.5 * shares['deformable_attention']['wall_s']
    assert shares['products']['deform_attn_s'] == shares['elementwise']['compiled_kernels_s'] == 0
    compiled = shares['compiled_elementwise']
    assert compiled['compiled_kernels_s'] > 0.5 * compiled['wall_s'] and compiled['matmul_conv_s'] == 0
