"""Live progress of long work (mmpe.analysis.progress): the plain lines off a terminal (done / total, skipped,
in flight, elapsed, an ETA from the measured items, rate-bound), the rich display on a terminal, and the
study runner and eval_multires.py using it. Times come from a fake clock; every expected line is written
out here from the module's ETA rule (measured seconds per unit of work of the item's kind, items laid out
on the job slots)."""
import os
import os.path as osp
import re
from io import StringIO
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from rich.console import Console

from mmpe.analysis import progress as progress_module
from mmpe.analysis import study_runner
from mmpe.analysis.launchers import Launcher
from mmpe.analysis.progress import PLAIN_LINE, Item, Progress
from mmpe.analysis.study import tta_views
from mmpe.engine.launch import launched_as_main

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
FCN = osp.join(ROOT, 'configs/study/fcn1x1_vit-tiny_layout.py')
STAMP = re.compile(r'^\[\d\d:\d\d:\d\d\] ')


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def plain(description, items, clock, **kwargs):
    """A Progress off a terminal whose lines are collected (time of day removed) instead of printed."""
    lines = []
    progress = Progress(description, items, clock=clock, say=lambda line: lines.append(STAMP.sub('', line)),
                        **kwargs)
    return progress, lines


def test_plain_lines_count_done_and_estimate_the_rest_from_measured_items():
    clock = FakeClock()
    items = [Item('a', kind='x'), Item('b', kind='x'), Item('c', kind='y', work=2), Item('d', kind='x')]
    progress, lines = plain('demo', items, clock, unit='runs', interval=0)
    with progress:
        progress.start(0)
        clock.now = 30
        progress.finish(0)  # x: 30 s per unit; overall 30 s per unit
        progress.finish(1)  # never started: skipped, not measured
        progress.start(2)
        clock.now = 40
        in_flight = progress.line()
        clock.now = 100
        progress.finish(2, failed=True)  # failed: not measured
        progress.start(3)
        clock.now = 130
        progress.finish(3)
    assert lines == [
        'demo: 0/4 runs done, elapsed 0:00:00, ETA unknown; 1 in flight: a (0:00:00)',
        # b, d (x: 30 s each) and c (no y measured: overall 30 s per unit x work 2)
        'demo: 1/4 runs done, elapsed 0:00:30, ETA 0:02:00',
        'demo: 2/4 runs done (1 skipped), elapsed 0:00:30, ETA 0:01:30',
        'demo: 2/4 runs done (1 skipped), elapsed 0:00:30, ETA 0:01:30; 1 in flight: c (0:00:00)',
        'demo: 3/4 runs done (1 skipped, 1 failed), elapsed 0:01:40, ETA 0:00:30',
        'demo: 3/4 runs done (1 skipped, 1 failed), elapsed 0:01:40, ETA 0:00:30; 1 in flight: d (0:00:00)',
        'demo: 4/4 runs done (1 skipped, 1 failed), elapsed 0:02:10, ETA 0:00:00',
    ]
    # c in flight for 10 s of its 60: 50 s left, then d 30 s
    assert STAMP.sub('', in_flight) == 'demo: 2/4 runs done (1 skipped), elapsed 0:00:40, ETA 0:01:20; ' \
                                       '1 in flight: c (0:00:10)'


def test_eta_lays_the_items_left_out_on_the_job_slots():
    """5 runs of 10 s on 2 slots: after the first, one in flight (its 10 s used up) and three waiting take
    two more rounds, 20 s (not 3 x 10 / 2 = 15 s); kinds estimate apart, a kind without a measurement costs
    the overall rate times its work."""
    clock = FakeClock()
    progress, _ = plain('study', [Item(str(i)) for i in range(5)], clock, jobs=2, show=False)
    progress.start(0)
    progress.start(1)
    assert progress.eta() is None
    clock.now = 10
    progress.finish(0)
    assert progress.eta() == 20
    clock.now = 14
    assert progress.eta() == 20  # run 1 overdue: counted as finishing now
    items = [Item('a', kind='fast'), Item('b', kind='slow', work=3), Item('c', kind='fast'), Item('d', kind='slow')]
    progress, _ = plain('mixed', items, clock, show=False)
    for index, seconds in ((0, 2), (1, 30)):  # fast: 2 s per unit, slow: 10 s per unit
        progress.start(index)
        clock.now += seconds
        progress.finish(index)
    assert progress.eta() == 2 + 10
    progress, _ = plain('overall', items, clock, show=False)
    progress.start(0)
    clock.now += 2
    progress.finish(0)
    assert progress.eta() == 3 * 2 + 2 + 2  # slow items at the overall 2 s per unit


def test_plain_lines_are_rate_bound_and_the_last_state_is_printed_at_the_end():
    clock = FakeClock()
    progress, lines = plain('soak', [Item(str(i)) for i in range(6)], clock, interval=80)
    with progress:
        for _ in progress.track(range(6)):  # an item per 25 s
            clock.now += 25
    # events (finish, then start of the next) at 0 (printed), 25, 25, 50, 50, 75, 75, 100 (printed: finish 3),
    # 100, 125, 125, 150 (held back, printed at the end)
    assert lines == [
        'soak: 0/6 items done, elapsed 0:00:00, ETA unknown; 1 in flight: 0 (0:00:00)',
        'soak: 4/6 items done, elapsed 0:01:40, ETA 0:00:50',
        'soak: 6/6 items done, elapsed 0:02:30, ETA 0:00:00',
    ]


def test_nothing_is_shown_without_show():
    progress, lines = plain('rank 1', [Item('a')], FakeClock(), show=False, interval=0)
    with progress:
        for _ in progress.track('a'):
            pass
    assert lines == [] and progress.display is None and progress.finished == 1


def test_rich_draws_the_bar_status_and_items_in_flight_on_a_terminal():
    clock = FakeClock()
    out = StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    progress = Progress('study', [Item('fcn / ape / seed 0'), Item('fcn / rope_mixed / seed 0')], unit='runs',
                        console=console, clock=clock)
    with progress:
        progress.start(0)
        clock.now = 90
        progress.finish(0)
        progress.start(1)
        clock.now = 100  # interrupted here: the last frame shows the run in flight
    text = out.getvalue()
    last = text.rsplit('study ', 1)[1]  # the last frame (rich's bar and the line below it)
    assert '\x1b[' in text and '━' in last  # drawn in place with rich's bar, not printed line by line
    assert '1/2 runs done, elapsed 0:01:40, ETA 0:01:20' in last
    assert '  in flight: fcn / rope_mixed / seed 0 (0:00:10)' in last


def test_rich_without_live_redraws_at_each_event_only():
    """live=False (time_interleaved): no drawing thread beside the timed calls; each start / finish redraws."""
    out = StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    progress = Progress('timing', [Item('a (timed)'), Item('b (timed)')], unit='calls', console=console,
                        clock=FakeClock(), live=False)
    with progress:
        assert progress.display.live._refresh_thread is None
        progress.start(0)
        assert out.getvalue().rsplit('timing ', 1)[1].count('in flight: a (timed) (0:00:00)') == 1
        progress.finish(0)
        assert '1/2 calls done' in out.getvalue().rsplit('timing ', 1)[1]

def test_bad_arguments_and_order_fail_clearly():
    with pytest.raises(ValueError, match=r'jobs must be a positive integer, got 0'):
        Progress('x', [], jobs=0)
    with pytest.raises(ValueError, match=r'interval must be >= 0 seconds, got -1'):
        Progress('x', [], interval=-1)
    with pytest.raises(ValueError, match=r"items must have work > 0, got Item\(label='a', kind=None, work=0\)"):
        Progress('x', [Item('a', work=0)])
    progress = Progress('x', [Item('a'), Item('b')], show=False)
    progress.start(0)
    with pytest.raises(ValueError, match=r'item 0 \(a\) was started already'):
        progress.start(0)
    progress.finish(0)
    with pytest.raises(ValueError, match=r'item 0 \(a\) was finished already'):
        progress.finish(0)


# ----------------------------------------------------------------------------- the tools using it

def test_study_runner_shows_the_progress_of_its_runs(tmp_path, monkeypatch, capsys):
    """A study of 3 runs (the second evaluated already) whose steps are faked: each step takes a minute of the
    progress clock and writes what training (last_checkpoint) or evaluation (multires.csv) leaves."""
    clock = FakeClock()
    monkeypatch.setattr(progress_module, 'time', SimpleNamespace(monotonic=clock, strftime=lambda _: '12:00:00'))
    monkeypatch.setattr(progress_module, 'PLAIN_INTERVAL', 0.0)
    steps = []

    def fake_call(argv, **kwargs):
        clock.now += 60
        tool = osp.basename(argv[1])
        steps.append(tool)
        if tool != 'collect_results.py':
            run_dir = argv[argv.index('--work-dir') + 1]
            if tool == 'train.py':
                torch.save({}, osp.join(run_dir, 'iter_2.pth'))  # complete (resume_checkpoint checks)
                with open(osp.join(run_dir, 'last_checkpoint'), 'w') as f:
                    f.write(osp.join(run_dir, 'iter_2.pth'))
            else:
                write_multires(run_dir)
        return 0

    monkeypatch.setattr(study_runner.subprocess, 'call', fake_call)
    work = tmp_path / 'work'
    write_multires(str(work / 'fcn1x1_vit-tiny_layout' / 'rope_axial' / 'seed0'))
    settings = study_runner.study_settings(configs=[FCN], encodings=['ape', 'rope_axial', 'rope_mixed'], seeds=[0],
                                           work_dir=str(work), out=str(tmp_path / 'out'), quick=True)
    assert study_runner.run_study(settings, Launcher('none')) == []
    assert steps == ['train.py', 'eval_multires.py', 'train.py', 'eval_multires.py', 'collect_results.py']
    lines = [line for line in capsys.readouterr().out.splitlines() if '] study: ' in line]
    label = 'fcn1x1_vit-tiny_layout.py / {} / seed 0'
    assert lines == [
        f'[12:00:00] study: 0/3 runs done, elapsed 0:00:00, ETA unknown; 1 in flight: {label.format("ape")} (0:00:00)',
        '[12:00:00] study: 1/3 runs done, elapsed 0:02:00, ETA 0:04:00',  # 2 runs of 2 minutes left
        '[12:00:00] study: 2/3 runs done (1 skipped), elapsed 0:02:00, ETA 0:02:00',
        f'[12:00:00] study: 2/3 runs done (1 skipped), elapsed 0:02:00, ETA 0:02:00; 1 in flight: '
        f'{label.format("rope_mixed")} (0:00:00)',
        '[12:00:00] study: 3/3 runs done (1 skipped), elapsed 0:04:00, ETA 0:00:00',
    ]
    assert all(PLAIN_LINE.match(line) for line in lines)  # what faults.study_place leaves out


def write_multires(run_dir: str) -> None:
    """What eval_multires.py leaves in a run directory, as far as the study runner looks."""
    path = osp.join(run_dir, 'multires', 'multires.csv')
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write('scale,mIoU\n1,50\n')


def test_eval_multires_weighs_scales_by_pixels_and_tta_by_its_views():
    cfg = Config(dict(test_dataloader=dict(dataset=dict(pipeline=[
        dict(type='LoadImageFromFile'),
        dict(type='TestTimeAug', transforms=[[dict(type='Resize', scale_factor=r) for r in (0.5, 1.0, 1.5)],
                                             [dict(type='RandomFlip', prob=p) for p in (0.0, 1.0)],
                                             [dict(type='PackSegInputs')]])]))))
    assert tta_views(cfg) == 3 * 2 * 1
    cfg.test_dataloader.dataset.pipeline = [dict(type='LoadImageFromFile'), dict(type='mmseg.PackSegInputs')]
    assert tta_views(cfg) == 1


@pytest.mark.parametrize('launcher, env, main', [
    ('none', dict(RANK='3'), True), ('pytorch', dict(RANK='0'), True), ('pytorch', dict(RANK='1'), False),
    ('pytorch', {}, True), ('slurm', dict(SLURM_PROCID='2'), False), ('mpi', dict(OMPI_COMM_WORLD_RANK='1'), False)])
def test_launched_as_main_reads_the_launchers_rank(monkeypatch, launcher, env, main):
    for variable in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    assert launched_as_main(launcher) is main
