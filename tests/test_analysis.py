"""PESI metrics, position tables / RoPE kernels and the Three-Cell data, accuracies, head and training
step against direct references, and tools/analysis_tools/pesi.py + tools/analysis_tools/three_cell.py
end to end."""
import copy
import csv
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from mmpe.analysis import (
    ThreeCellClassifier,
    ape_table,
    cosine_similarity_map,
    evaluate,
    group_accuracy,
    loope_module,
    loope_static_table,
    loope_table,
    majority_accuracy,
    pesi,
    pesi_from_similarity,
    raster_order,
    rope_kernel,
    rope_mixed_freqs,
    sincos_table,
    three_cell_images,
    three_cell_labels,
    three_cell_sample,
    train_three_cell,
)
from mmpe.converters import axial_as_mixed_freqs
from mmpe.models.vit import PEVisionTransformer
from mmpe.pos_embed import LOOPEPosEmbed, RoPEAxial, RoPEMixed, SinCosPosEmbed, gilbert_order, resize_pos_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def distance_similarity(h, w, fn):
    """(h, w, h, w) similarity fn(euclidean distance)."""
    r, c = np.meshgrid(np.arange(h), np.arange(w), indexing='ij')
    d = np.hypot(r[:, :, None, None] - r[None, None], c[:, :, None, None] - c[None, None])
    return fn(d)


def reference_pesi(sim, num_buckets=60):
    """docs/design.md section 9 written out with loops and scipy.stats.spearmanr."""
    h, w = sim.shape[:2]
    m_u, m_d, a_su = [], [], []
    for x in range(h):
        for y in range(w):
            cells = [(i, j) for i in range(h) for j in range(w)]
            dist = {cell: math.hypot(cell[0] - x, cell[1] - y) for cell in cells}
            bins = {}
            for cell in cells:
                bins.setdefault(round(dist[cell]), []).append(sim[x, y][cell])
            radii = sorted(bins)
            mu = [np.mean(bins[r]) for r in radii]
            rho = spearmanr(radii, mu)[0] if len(radii) > 1 else float('nan')
            m_u.append(1 - (0 if np.isnan(rho) else rho))
            a_su.append(np.mean([np.std(bins[r]) / np.mean(bins[r]) for r in radii]))
            buckets = {}
            for cell in cells:
                theta = math.atan2(cell[1] - y, cell[0] - x)
                buckets.setdefault(math.floor(theta / (2 * math.pi / num_buckets)) % num_buckets, []).append(cell)
            total = 0.0
            for members in buckets.values():
                if len(members) >= 2:
                    rho = spearmanr([dist[c] for c in members], [sim[x, y][c] for c in members])[0]
                    total += 0 if np.isnan(rho) else rho
            m_d.append(1 - total / num_buckets)
    return {'M_U': np.mean(m_u), 'M_D': np.mean(m_d), 'A_SU': np.mean(a_su)}


def test_pesi_matches_direct_reference():
    table = torch.randn(4, 5, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.5
    sim = F.cosine_similarity(table.reshape(20, 1, 8), table.reshape(1, 20, 8), dim=-1).reshape(4, 5, 4, 5).numpy()
    np.testing.assert_allclose(cosine_similarity_map(table), sim, atol=1e-12)
    for buckets in (60, 7):
        got, want = pesi(table, num_buckets=buckets), reference_pesi(sim, buckets)
        for key in want:
            assert got[key] == pytest.approx(want[key], abs=1e-9), (buckets, key)


def test_pesi_radially_decreasing_and_distance_only():
    # Mean similarity strictly decreasing with the radius at every centre: rho = -1, M_U = 2.
    assert pesi_from_similarity(distance_similarity(5, 7, lambda d: np.exp(-d / 3)))['M_U'] == 2.0
    # A similarity depending only on the radial bin (rounded distance): every bin constant, A_SU = 0.
    result = pesi_from_similarity(distance_similarity(5, 7, lambda d: 1 / (1 + np.rint(d))))
    assert result['A_SU'] == pytest.approx(0, abs=1e-12) and result['M_U'] == 2.0
    # Strictly increasing: rho = +1, M_U = 0.
    assert pesi_from_similarity(distance_similarity(4, 4, lambda d: d + 1))['M_U'] == 0.0


def test_pesi_directed_bucket_rules():
    # One row of W cells, table rows (cos(a c), sin(a c)): cosine similarity cos(a |dc|) falls with distance.
    # From centre c, the cells to the right lie in bucket 15 (theta = pi/2), those to the left in 45
    # (theta = -pi/2): rho = -1 where a bucket holds >= 2 cells; the centre alone in bucket 0 counts 0,
    # as do the 57 empty buckets.
    width, a = 7, 0.3
    cols = torch.arange(width, dtype=torch.float64) * a
    table = torch.stack([cols.cos(), cols.sin()], -1)[None]
    expected = np.mean([1 + ((width - 1 - c >= 2) + (c >= 2)) / 60 for c in range(width)])
    result = pesi(table)
    assert result['M_D'] == pytest.approx(expected, abs=1e-12)
    assert result['M_U'] == 2.0 and result['A_SU'] == pytest.approx(0, abs=1e-12)
    # One bucket: distance and similarity anti-correlated over the whole row at every centre.
    assert pesi(table, num_buckets=1)['M_D'] == pytest.approx(2.0, abs=1e-12)

    # One column of 3 cells with phases 0, 2a, a: A = cos(phase difference).
    # Centre 0: bucket 0 (theta = 0, straight down) holds the centre (d 0, s 1) and cells 1, 2
    #   (d 1, 2; s cos 2a < cos a): Spearman(d, s) = -0.5.
    # Centre 1: cell 0 alone in bucket 30 (counts 0); bucket 0 holds the centre and cell 2: -1.
    # Centre 2: bucket 30 holds cells 0 and 1, both at similarity cos a: undefined, counts 0.
    phase = np.array([0, 2 * a, a])
    sim = np.cos(phase[:, None] - phase[None, :]).reshape(3, 1, 3, 1)
    assert pesi_from_similarity(sim)['M_D'] == pytest.approx(np.mean([1 + 0.5 / 60, 1 + 1 / 60, 1]), abs=1e-12)


def test_pesi_rejects_bad_input():
    with pytest.raises(ValueError, match='num_buckets'):
        pesi(torch.randn(3, 3, 4), num_buckets=0)
    with pytest.raises(ValueError, match=r'\(H, W, H, W\)'):
        pesi_from_similarity(np.ones((3, 3, 3, 4)))
    with pytest.raises(ValueError, match='zero'):
        pesi(torch.zeros(2, 2, 4))


def test_rope_kernel_equals_mean_cosine_of_module_angles():
    hw = (3, 4)
    torch.manual_seed(0)
    mixed = RoPEMixed(num_heads=2, head_dim=8)
    angles = mixed.angles(hw).detach().double()  # (h, N, d/2)
    want = torch.cos(angles[:, :, None] - angles[:, None, :]).mean((0, 3)).reshape(3, 4, 3, 4).numpy()
    np.testing.assert_allclose(rope_kernel(mixed.freqs, hw), want, atol=1e-12)
    axial = RoPEAxial(head_dim=8, theta=100.0).angles(hw).double()
    want = torch.cos(axial[:, :, None] - axial[:, None, :]).mean((0, 3)).reshape(3, 4, 3, 4).numpy()
    np.testing.assert_allclose(rope_kernel(axial_as_mixed_freqs(2, 8, 100.0), hw), want, atol=1e-12)
    # A sequence of layers: the mean of their kernels.
    other = RoPEMixed(num_heads=2, head_dim=8).freqs
    np.testing.assert_allclose(rope_kernel([mixed.freqs, other], hw),
                               (rope_kernel(mixed.freqs, hw) + rope_kernel(other, hw)) / 2, atol=1e-12)


def test_additive_tables_equal_module_outputs():
    hw, c = (3, 5), 16
    zeros = torch.zeros(1, 15, c)
    torch.testing.assert_close(sincos_table(hw, c), SinCosPosEmbed(c)(zeros, hw).reshape(3, 5, c))
    torch.manual_seed(0)
    loope = LOOPEPosEmbed(c, patch_size=2).eval()
    image = torch.rand(3, 6, 10)
    # Zero-initialised context head: X_C = 0, the static Gilbert table.
    torch.testing.assert_close(loope_table(loope, image), loope_static_table(hw, c))
    with torch.no_grad():
        loope.context.head.weight.fill_(0.7)
        loope.context.head.bias.fill_(-0.2)
    want = loope(zeros, hw, image[None]).reshape(3, 5, c)
    assert not torch.allclose(want, loope_static_table(hw, c))
    torch.testing.assert_close(loope_table(loope, image), want)


def test_tables_from_models_and_checkpoints(tmp_path):
    torch.manual_seed(0)
    ape = PEVisionTransformer(img_size=16, patch_size=4, embed_dims=16, depth=1, num_heads=2)
    table = ape.pos_embed.pos_embed.detach()
    path = str(tmp_path / 'ape.pth')
    torch.save({'state_dict': {f'backbone.{k}': v for k, v in ape.state_dict().items()}}, path)
    for source in (ape, path):
        torch.testing.assert_close(ape_table(source), table.reshape(4, 4, 16))
        torch.testing.assert_close(ape_table(source, (5, 3)), resize_pos_table(table, (4, 4), (5, 3)).reshape(5, 3, 16))
    mixed = PEVisionTransformer(img_size=16, patch_size=4, embed_dims=16, depth=3, num_heads=2,
                                pos_embed=dict(type='rope_mixed'))
    for got, block in zip(rope_mixed_freqs(mixed), mixed.blocks):
        torch.testing.assert_close(got, block.attn.pos_embed.freqs.detach())
    loope = PEVisionTransformer(img_size=16, patch_size=4, embed_dims=16, depth=1, num_heads=2,
                                pos_embed=dict(type='loope'))
    with torch.no_grad():
        loope.pos_embed.context.head.bias.fill_(0.3)
    image = torch.rand(3, 16, 16)
    torch.testing.assert_close(loope_table(loope_module(loope.state_dict()), image),
                               loope_table(loope.pos_embed, image))
    with pytest.raises(ValueError, match='no learned APE'):
        ape_table(mixed)
    with pytest.raises(ValueError, match='no RoPE-Mixed'):
        rope_mixed_freqs(ape)


def test_raster_order_is_one_based_row_major():
    assert raster_order((2, 3)).tolist() == [[1, 2, 3], [4, 5, 6]]
    assert torch.equal(raster_order((1, 5)), gilbert_order(1, 5))  # one row: the Gilbert curve is the raster


def brute_force_labels(coords, grid):
    out = []
    for (xr, yr), (xg, yg), (xb, yb) in coords.tolist():
        d_rg, d_rb = math.dist((xr, yr), (xg, yg)), math.dist((xr, yr), (xb, yb))
        a_rg, a_rb = abs((yr + yg) * (xg - xr)) / 2, abs((yr + yb) * (xb - xr)) / 2
        orientation = (xg - xr) * (yb - yr) - (yg - yr) * (xb - xr) > 0
        out.append([d_rg > d_rb, d_rb > d_rg, orientation, a_rg > a_rb, a_rb > a_rg,
                    xr + xg + xb > grid - 1 and yr + yg + yb > grid - 1])
    return torch.tensor(out, dtype=torch.float32)


@pytest.mark.parametrize('grid', [14, 4])
def test_three_cell_sample(grid):
    num = 3001
    coords, labels = three_cell_sample(num, grid, seed=3)
    assert coords.dtype == torch.long and coords.shape == (num, 3, 2) and labels.shape == (num, 6)
    assert coords.min() >= 0 and coords.max() < grid
    torch.testing.assert_close(labels, brute_force_labels(coords, grid))
    torch.testing.assert_close(three_cell_labels(coords, grid), labels)
    for (xr, yr), (xg, yg), (xb, yb) in coords.tolist():
        assert len({(xr, yr), (xg, yg), (xb, yb)}) == 3
        assert (xg - xr) * (yb - yr) != (yg - yr) * (xb - xr)  # not collinear
    # Balanced distance cases: >, <, = each num // 3 (+1 for the first num % 3 cases).
    cases = [int((labels[:, :2] == torch.tensor(p)).all(1).sum()) for p in ([1., 0.], [0., 1.], [0., 0.])]
    assert cases == [1001, 1000, 1000]
    again, _ = three_cell_sample(num, grid, seed=3)
    assert torch.equal(again, coords)
    assert not torch.equal(three_cell_sample(num, grid, seed=4)[0], coords)
    # The other targets are not degenerate.
    assert ((labels[:, 2:].mean(0) > 0.05) & (labels[:, 2:].mean(0) < 0.95)).all()


def test_three_cell_images():
    grid, cell = 6, 3
    coords, _ = three_cell_sample(40, grid, seed=0)
    images = three_cell_images(coords, grid, cell)
    assert images.shape == (40, 3, grid * cell, grid * cell)
    colours = torch.eye(3)
    for image, cells in zip(images, coords.tolist()):
        for y in range(grid):
            for x in range(grid):
                block = image[:, y * cell:(y + 1) * cell, x * cell:(x + 1) * cell]
                colour = colours[cells.index([x, y])] if [x, y] in cells else torch.zeros(3)
                assert torch.equal(block, colour[:, None, None].expand_as(block)), (x, y)


# Logits and labels (4 samples, 6 targets) with a hand count of the correct predictions (logit > 0 is 1;
# a zero logit is 0): per target 3/4, 4/4, 3/4, 3/4, 3/4, 3/4.
LOGITS = torch.tensor([[2.0, -1.0, 0.5, 1.0, 3.0, -2.0],
                       [1.0, 0.1, -0.5, 1.0, -1.0, -1.0],
                       [-1.0, -3.0, -0.2, 4.0, -1.0, 1.0],
                       [0.3, 0.0, -1.0, -1.0, -2.0, -1.0]])
LABELS = torch.tensor([[1, 0, 1, 0, 1, 1],
                       [0, 1, 0, 1, 0, 0],
                       [0, 0, 1, 1, 0, 1],
                       [1, 0, 0, 0, 1, 0]], dtype=torch.float32)
ACCURACY = dict(distance=(3 / 4 + 1) / 2, orientation=3 / 4, area=3 / 4, vector_sum=3 / 4)
ACCURACY['mean'] = sum(ACCURACY.values()) / 4


def test_group_accuracy_and_majority_class_against_hand_counts():
    assert group_accuracy(LOGITS, LABELS) == pytest.approx(ACCURACY, abs=1e-7)
    # Majority class per target of these labels: 1, 0, 1, 1, 0, 0 (fractions of ones 2/3, 1/3, 2/3, 2/3, 0, 1/3).
    labels = torch.tensor([[1, 0, 0, 1, 0, 0], [1, 0, 1, 1, 0, 0], [0, 1, 1, 0, 0, 1]], dtype=torch.float32)
    chance = dict(distance=2 / 3, orientation=2 / 3, area=(2 / 3 + 1) / 2, vector_sum=2 / 3)
    assert majority_accuracy(labels) == pytest.approx(dict(chance, mean=sum(chance.values()) / 4), abs=1e-7)


class _Lookup(torch.nn.Module):
    """Logits LOGITS[i] for the image filled with i; records the batch sizes and modes it ran in."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, images):
        self.calls.append((len(images), self.training))
        return LOGITS[images[:, 0, 0, 0].long()]


def test_evaluate_runs_eval_mode_in_batches():
    model = _Lookup().train()
    images = torch.arange(4.0)[:, None, None, None].expand(4, 3, 2, 2)
    assert evaluate(model, images, LABELS, batch_size=3) == pytest.approx(ACCURACY, abs=1e-7)
    assert model.calls == [(3, False), (1, False)]


class _Maps(torch.nn.Module):
    """A backbone whose last output map is its input (NCHW)."""

    def forward(self, images):
        return [images[:, :1], images]


def test_three_cell_classifier_is_a_linear_head_on_the_mean_of_the_last_map():
    torch.manual_seed(0)
    model = ThreeCellClassifier(_Maps(), embed_dims=3)
    images = torch.randn(2, 3, 4, 5)
    want = images.mean((2, 3)) @ model.head.weight.T + model.head.bias
    torch.testing.assert_close(model(images), want)
    assert model(images).shape == (2, 6)


def test_train_three_cell_step_against_adamw_formula(capsys):
    """One step (warm-up of one step: the full lr) on the first batch of the seed's sample stream:
    returns its BCE loss, and moves every parameter by AdamW's first update of the gradient clipped to
    norm 1, p (1 - lr wd) - lr g / (|g| + eps), with wd = 0 for the encoding table (a 3-D tensor named
    pos_embed), biases and norms."""
    grid, cell, batch, lr, wd = 4, 4, 8, 1e-2, 10.0
    torch.manual_seed(0)
    model = ThreeCellClassifier(PEVisionTransformer(img_size=16, patch_size=4, embed_dims=16, depth=1, num_heads=2,
                                                    mlp_ratio=2), 16)
    reference = copy.deepcopy(model).train()
    coords, labels = three_cell_sample(batch, grid, seed=5)
    loss = F.binary_cross_entropy_with_logits(reference(three_cell_images(coords, grid, cell)), labels)
    loss.backward()
    grads = {name: p.grad for name, p in reference.named_parameters()}
    clip = min(1.0, 1.0 / (torch.cat([g.flatten() for g in grads.values()]).norm().item() + 1e-6))

    returned = train_three_cell(model, grid=grid, cell_size=cell, steps=1, batch_size=batch, lr=lr, weight_decay=wd,
                                seed=5, log_every=1)
    assert returned == pytest.approx(loss.item(), abs=1e-6)
    assert capsys.readouterr().out == f'step 1/1 loss {loss.item():.4f}\n'
    no_decay = set()
    for name, p in model.named_parameters():
        p0, g = reference.get_parameter(name).detach(), grads[name] * clip
        decay = 0.0 if p0.dim() < 2 or 'pos_embed' in name else wd
        no_decay |= {name} if not decay else set()
        torch.testing.assert_close(p.detach(), p0 * (1 - lr * decay) - lr * g / (g.abs() + 1e-8), rtol=0, atol=1e-6,
                                   msg=name)
    assert 'backbone.pos_embed.pos_embed' in no_decay and 'head.weight' not in no_decay


def run_tool(*args):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    result = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_tools_end_to_end(tmp_path):
    tc = tmp_path / 'tc'
    run_tool('tools/analysis_tools/three_cell.py', '--quick', '--out', str(tc))
    rows = read_csv(tc / 'three_cell.csv')
    assert [r['encoding'] for r in rows] == ['ape', 'sincos', 'rope_axial', 'rope_mixed', 'loope', 'none',
                                              'majority class']
    for row in rows:
        for col in ('distance', 'orientation', 'area', 'vector_sum', 'mean'):
            assert 0 <= float(row[col].split(' ± ')[0]) <= 1
    assert (tc / 'three_cell.md').read_text().count('\n|') == len(rows) + 2  # header, separator, rows
    with open(tc / 'runs.jsonl') as f:
        assert len(f.readlines()) == 12  # 6 encodings x 2 seeds
    # A rerun with the same settings reuses every run.
    assert 'seed 0:' not in run_tool('tools/analysis_tools/three_cell.py', '--quick', '--out', str(tc),
                                     '--encodings', 'ape')

    out = tmp_path / 'pesi'
    ckpt = tc / 'checkpoints'
    run_tool('tools/analysis_tools/pesi.py', '--grids', '6x6', '4x7', '--embed-dims', '32', '--num-heads', '4',
             '--depth', '2',
             '--checkpoint', f'q_ape={ckpt / "ape_seed0.pth"}',
             '--checkpoint', f'q_mixed={ckpt / "rope_mixed_seed0.pth"}',
             '--checkpoint', f'q_loope={ckpt / "loope_seed1.pth"}', '--out', str(out))
    rows = read_csv(out / 'pesi.csv')
    names = ['sincos', 'sinusoid_raster', 'loope_static', 'ape_init', 'rope_axial', 'rope_mixed_init',
             'q_ape:ape', 'q_mixed:rope_mixed', 'q_loope:loope']
    assert [r['encoding'] for r in rows] == names * 2
    assert [r['grid'] for r in rows] == ['6x6'] * 9 + ['4x7'] * 9
    assert {r['encoding']: r['similarity'] for r in rows}['rope_axial'] == 'rope kernel'
    assert {r['encoding']: r['similarity'] for r in rows}['q_ape:ape'] == 'cosine'
    for row in rows:
        assert 0 <= float(row['M_U']) <= 2 and 0 <= float(row['M_D']) <= 2
    assert (out / 'pesi.md').exists() and (out / 'pesi_maps_6x6.png').stat().st_size > 0
    assert (out / 'pesi_maps_4x7.png').exists()


def test_three_cell_takes_encoding_presets(tmp_path):
    """Three-Cell trains any ViT preset, e.g. DINOv3's RoPE, and refuses Swin's RPB by name."""
    run_tool('tools/analysis_tools/three_cell.py', '--quick', '--seeds', '0', '--encodings', 'rope_dinov3',
             '--out', str(tmp_path))
    [row, majority] = read_csv(tmp_path / 'three_cell.csv')
    assert row['encoding'] == 'rope_dinov3' and majority['encoding'] == 'majority class'
    assert 0 <= float(row['mean'].split(' ± ')[0]) <= 1
    result = subprocess.run([sys.executable, 'tools/analysis_tools/three_cell.py', '--quick', '--encodings', 'rpb'],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 2 and "invalid choice: 'rpb'" in result.stderr and "'rope_dinov3'" in result.stderr
