"""The Three-Cell Experiment of the LOOPE paper (docs/design.md section 9): data, model head, training, study.

A G x G grid of cells on black; three distinct, non-collinear cells are pure red, green and
blue. A cell's (x, y) is its (column, row), 0-based. Six binary targets (BCE):

0. d(R, G) > d(R, B)      1. d(R, B) > d(R, G)      (both 0 when equal)
2. orientation: (xg - xr)(yb - yr) - (yg - yr)(xb - xr) > 0
3. A_RG > A_RB            4. A_RB > A_RG             ``A_RG = |(yr + yg)(xg - xr)| / 2``
5. vector sum out of grid: both coordinates of pr + pg + pb exceed G - 1

Accuracy is reported per group (``GROUPS``) and as the mean of the four groups. ``three_cell_study``
runs the experiment over encodings and seeds (tools/analysis_tools/three_cell.py).
"""
import json
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..models import PEVisionTransformer
from ..pos_embed import ENCODING_PRESETS
from .progress import Item, Progress
from .report import write_table

NUM_TARGETS = 6
GROUPS = {'distance': (0, 1), 'orientation': (2,), 'area': (3, 4), 'vector_sum': (5,)}
COLUMNS = (*GROUPS, 'mean')  # the accuracy columns of the tables
DISTANCE_CASES = ('>', '<', '=')  # d(R, G) vs d(R, B)


def three_cell_labels(coords: torch.Tensor, grid: int) -> torch.Tensor:
    """Targets (num, 6) float of cells coords (num, 3, 2) = (x, y) of red, green, blue."""
    r, g, b = coords.long().unbind(1)
    d_rg, d_rb = ((g - r) ** 2).sum(-1), ((b - r) ** 2).sum(-1)
    cross = (g[:, 0] - r[:, 0]) * (b[:, 1] - r[:, 1]) - (g[:, 1] - r[:, 1]) * (b[:, 0] - r[:, 0])
    area_rg = ((r[:, 1] + g[:, 1]) * (g[:, 0] - r[:, 0])).abs()  # twice A_RG
    area_rb = ((r[:, 1] + b[:, 1]) * (b[:, 0] - r[:, 0])).abs()
    total = r + g + b
    return torch.stack([d_rg > d_rb, d_rb > d_rg, cross > 0, area_rg > area_rb, area_rb > area_rg,
                        (total > grid - 1).all(-1)], dim=1).float()


def three_cell_sample(num: int, grid: int = 14, seed: int = 0) -> Tuple[torch.LongTensor, torch.Tensor]:
    """``num`` random Three-Cell layouts on a ``grid`` x ``grid`` board, deterministic per seed.

    Cells are distinct and not collinear; the distance cases d(R,G) > d(R,B), <, = each get
    num // 3 samples (the first num % 3 cases one more), in random order.
    Returns coords LongTensor (num, 3, 2) of (x, y) = (column, row) for red, green, blue, and
    labels float (num, 6) (``three_cell_labels``).
    """
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(f'num must be a positive int, got {num!r}')
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
        raise ValueError(f'grid must be an int >= 2 (three non-collinear cells), got {grid!r}')
    gen = torch.Generator().manual_seed(seed)
    missing = [num // 3 + (i < num % 3) for i in range(3)]
    found = []
    while any(missing):
        cand = torch.randint(0, grid, (max(4096, 4 * num), 3, 2), generator=gen)
        r, g, b = cand.unbind(1)
        cross = (g[:, 0] - r[:, 0]) * (b[:, 1] - r[:, 1]) - (g[:, 1] - r[:, 1]) * (b[:, 0] - r[:, 0])
        cand = cand[cross != 0]  # also excludes coincident cells
        d_rg = ((cand[:, 1] - cand[:, 0]) ** 2).sum(-1)
        d_rb = ((cand[:, 2] - cand[:, 0]) ** 2).sum(-1)
        for i, mask in enumerate((d_rg > d_rb, d_rg < d_rb, d_rg == d_rb)):
            found.append(cand[mask][:missing[i]])
            missing[i] -= len(found[-1])
    coords = torch.cat(found)
    coords = coords[torch.randperm(num, generator=gen)]
    return coords, three_cell_labels(coords, grid)


def three_cell_images(coords: torch.Tensor, grid: int, cell_size: int) -> torch.Tensor:
    """Images (num, 3, grid * cell_size, grid * cell_size) in [0, 1]: black, with the cells of
    coords (num, 3, 2) = (x, y) painted pure red, green and blue."""
    num = coords.shape[0]
    images = torch.zeros(num, 3, grid, grid)
    index = torch.arange(num)
    for channel in range(3):
        images[index, channel, coords[:, channel, 1], coords[:, channel, 0]] = 1.0
    return images.repeat_interleave(cell_size, 2).repeat_interleave(cell_size, 3)


def group_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> Dict[str, float]:
    """Accuracy per group of ``GROUPS`` and their 'mean', from logits and labels (num, 6)."""
    correct = ((logits > 0).float() == labels).float().mean(0)
    out = {name: correct[list(idx)].mean().item() for name, idx in GROUPS.items()}
    out['mean'] = sum(out.values()) / len(GROUPS)
    return out


def majority_accuracy(labels: torch.Tensor) -> Dict[str, float]:
    """Group accuracies of always predicting each target's majority class (the chance level)."""
    p = labels.mean(0)
    return group_accuracy(torch.where(p >= 0.5, 1.0, -1.0).expand_as(labels), labels)


class ThreeCellClassifier(nn.Module):
    """A backbone returning NCHW maps (e.g. ``PEVisionTransformer``), the mean of its last map
    over positions (B, C), and a linear head to the 6 Three-Cell logits."""

    def __init__(self, backbone: nn.Module, embed_dims: int):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(embed_dims, NUM_TARGETS)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images (B, 3, H, W) -> logits (B, 6)."""
        return self.head(self.backbone(images)[-1].mean((2, 3)))


@torch.no_grad()
def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 256) -> Dict[str, float]:
    """Group accuracies of ``model`` (eval mode) on images / labels."""
    model.eval()
    logits = torch.cat([model(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])
    return group_accuracy(logits, labels)


def train_three_cell(model: nn.Module, *, grid: int, cell_size: int, steps: int, batch_size: int = 64,
                     lr: float = 1e-3, weight_decay: float = 0.05, seed: int = 0, log_every: int = 0) -> float:
    """Train ``model`` (images -> 6 logits) with BCE and AdamW on a fresh balanced batch per
    step (``three_cell_sample`` stream of ``seed``), linear warm-up over the first 5% of steps
    then cosine decay, gradient norm clipped at 1. Encoding parameters (names containing
    'pos_embed'), biases and norms get no weight decay. Returns the mean loss of the last 10%
    of steps."""
    coords, labels = three_cell_sample(steps * batch_size, grid, seed)
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.dim() < 2 or 'pos_embed' in name else decay).append(param)
    optimizer = torch.optim.AdamW([dict(params=decay, weight_decay=weight_decay),
                                   dict(params=no_decay, weight_decay=0.0)], lr=lr)
    warmup = max(1, steps // 20)

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, steps - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    model.train()
    losses = []
    for step in range(steps):
        batch = slice(step * batch_size, (step + 1) * batch_size)
        loss = F.binary_cross_entropy_with_logits(model(three_cell_images(coords[batch], grid, cell_size)),
                                                  labels[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            print(f'step {step + 1}/{steps} loss {sum(losses[-log_every:]) / log_every:.4f}', flush=True)
    tail = losses[-max(1, steps // 10):]
    return sum(tail) / len(tail)


# ----------------------------------------------------------------------------- the study over encodings and seeds

@dataclass(frozen=True)
class ThreeCellSetup:
    """What every run of a Three-Cell study shares: the board (``grid`` cells per side of ``cell`` pixels
    = the patch size), the ViT (``embed_dims``, ``depth``, ``num_heads``, ``mlp_ratio``), the training
    (``steps`` of ``batch_size``, AdamW ``lr`` and ``weight_decay``) and the test set (``test_size``
    samples of seed ``test_seed``)."""
    grid: int
    cell: int
    embed_dims: int
    depth: int
    num_heads: int
    mlp_ratio: float
    steps: int
    batch_size: int
    lr: float
    weight_decay: float
    test_size: int
    test_seed: int


def run_settings(setup: ThreeCellSetup, encoding: str, seed: int, loope_context: str) -> dict:
    """The settings of one run as runs.jsonl records them (LOOPE runs add their context head)."""
    settings = dict(encoding=encoding, seed=seed, **asdict(setup))
    if encoding == 'loope':
        settings['loope_context'] = loope_context
    return settings


def train_run(settings: dict, test_images: torch.Tensor, test_labels: torch.Tensor, checkpoint: str) -> dict:
    """Train and test one run: mmpe's PEVisionTransformer (one patch per cell, no CLS token, the preset
    encoding) in a ``ThreeCellClassifier``; saves it to ``checkpoint``. Returns the runs.jsonl record."""
    s = settings
    pos_embed = dict(ENCODING_PRESETS[s['encoding']])
    if s['encoding'] == 'loope':
        pos_embed['context'] = s['loope_context']
    torch.manual_seed(s['seed'])
    backbone = PEVisionTransformer(img_size=s['grid'] * s['cell'], patch_size=s['cell'], embed_dims=s['embed_dims'],
                                   depth=s['depth'], num_heads=s['num_heads'], mlp_ratio=s['mlp_ratio'],
                                   with_cls_token=False, pos_embed=pos_embed)
    model = ThreeCellClassifier(backbone, s['embed_dims'])
    start = time.perf_counter()
    loss = train_three_cell(model, grid=s['grid'], cell_size=s['cell'], steps=s['steps'], batch_size=s['batch_size'],
                            lr=s['lr'], weight_decay=s['weight_decay'], seed=s['seed'])
    accuracy = evaluate(model, test_images, test_labels)
    os.makedirs(os.path.dirname(checkpoint), exist_ok=True)
    torch.save({'state_dict': model.state_dict(), 'meta': settings}, checkpoint)
    return dict(settings=settings, accuracy=accuracy, final_loss=loss, seconds=time.perf_counter() - start)


def summary_rows(results: List[dict], encodings: Sequence[str], majority: Dict[str, float]) -> List[dict]:
    """Per encoding the group accuracies 'mean ± std' over its runs (population std), then the
    majority-class row."""
    rows = []
    for encoding in encodings:
        runs = [r for r in results if r['settings']['encoding'] == encoding]
        if not runs:
            continue
        row = dict(encoding=encoding, seeds=len(runs))
        for col in COLUMNS:
            values = [r['accuracy'][col] for r in runs]
            std = statistics.pstdev(values) if len(values) > 1 else 0.0
            row[col] = f'{statistics.mean(values):.3f} ± {std:.3f}'
        row['train_s'] = f"{statistics.mean(r['seconds'] for r in runs):.0f}"
        rows.append(row)
    rows.append(dict(encoding='majority class', seeds='-', **{c: f'{majority[c]:.3f}' for c in COLUMNS},
                     train_s='-'))
    return rows


def three_cell_study(setup: ThreeCellSetup, *, encodings: Sequence[str], seeds: Sequence[int], out: str,
                     loope_context: str = 'conv', table_only: bool = False) -> None:
    """Every (encoding preset, seed) trained on its own balanced stream (the seed sets the initialisation
    and the data) and tested on one test set shared by all runs. Writes to ``out``: runs.jsonl (one line per
    run; runs already there with the same settings are skipped, so an interrupted study resumes;
    ``table_only``: train nothing), three_cell.md/.csv (group accuracies over seeds and the majority-class
    row), three_cell_runs.md/.csv (every run) and checkpoints/ENCODING_seedS.pth. Shows the runs' progress
    (``mmpe.analysis.progress``; the ETA per encoding)."""
    os.makedirs(out, exist_ok=True)
    log_path = os.path.join(out, 'runs.jsonl')
    done = []
    if os.path.exists(log_path):
        with open(log_path) as f:
            done = [json.loads(line) for line in f if line.strip()]
    coords, test_labels = three_cell_sample(setup.test_size, setup.grid, setup.test_seed)
    test_images = three_cell_images(coords, setup.grid, setup.cell)
    results = []
    start = time.perf_counter()
    runs = [(encoding, seed) for encoding in encodings for seed in seeds]
    with Progress('Three-Cell study', [Item(f'{e} seed {s}', kind=e) for e, s in runs], unit='runs',
                  show=not table_only) as progress:
        for index, (encoding, seed) in enumerate(runs):
            settings = run_settings(setup, encoding, seed, loope_context)
            previous = [r for r in done if r['settings'] == settings]
            if previous:
                results.append(previous[-1])
                progress.finish(index)  # never started: counted as skipped
                continue
            if table_only:
                print(f'{encoding} seed {seed}: not run yet (left out of the tables)')
                progress.finish(index)
                continue
            progress.start(index)
            result = train_run(settings, test_images, test_labels,
                               os.path.join(out, 'checkpoints', f'{encoding}_seed{seed}.pth'))
            progress.finish(index)
            results.append(result)
            with open(log_path, 'a') as f:
                f.write(json.dumps(result) + '\n')
            acc = ' '.join(f'{k} {v:.3f}' for k, v in result['accuracy'].items())
            print(f"{encoding} seed {seed}: {acc} (loss {result['final_loss']:.3f}, {result['seconds']:.0f} s)",
                  flush=True)
    majority = majority_accuracy(test_labels)
    title = (f"Three-Cell test accuracy ({setup.test_size} samples, {setup.grid}x{setup.grid} cells of {setup.cell} "
             f"px; ViT {setup.embed_dims}d x {setup.depth}, {setup.num_heads} heads; {setup.steps} steps of "
             f"{setup.batch_size}; mean ± std over seeds {seeds})")
    write_table([dict(encoding=r['settings']['encoding'], seed=r['settings']['seed'], **r['accuracy'],
                      final_loss=r['final_loss'], seconds=r['seconds']) for r in results],
                os.path.join(out, 'three_cell_runs'), 'Three-Cell runs')
    print(write_table(summary_rows(results, encodings, majority), os.path.join(out, 'three_cell'), title))
    print(f'total {time.perf_counter() - start:.0f} s; tables in {out}')
