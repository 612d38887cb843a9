"""Fault injection (mmpe.analysis.faults, tools/analysis_tools/fault_injection.py): trainings killed
with SIGKILL inside their checkpoint saves resume from the checkpoint ``--resume`` names and end with
the weights of an uninterrupted run; with 2 gloo processes, the rank that survives a kill exits by
itself, saying why; a study killed in training resumes and ends with the uninterrupted study's
tables. The fast tests check the pieces: where a kill landed, the kill plans, the derived config,
the survivor's message."""
import os
import os.path as osp
import random
import re
import subprocess
import sys
import time

import pytest
import torch
from mmengine.config import Config

from mmpe.analysis import faults
from mmpe.analysis.faults import POINTS, Job, Pause, Schedule, landing, random_planner, scripted_planner, started_from
from mmpe.datasets import generate_segmentation_set
from mmpe.engine import launch

CONFIG = 'configs/demo/upernet_swin-rope-mixed_synthetic.py'


@pytest.mark.parametrize('events, place', [
    ([], 'startup'), (['start', 'resumed 2'], 'startup'), (['start', 'iter 1'], 'training'),
    (['iter 4', 'val 4'], 'validation'), (['val 4', 'val_end'], 'training'),
    (['iter 2', 'write_begin iter_2.pth'], 'checkpoint write'),
    (['write_begin iter_2.pth', 'write_end iter_2.pth'], 'checkpoint saved, last_checkpoint not'),
    (['write_end iter_2.pth', 'write_begin last_checkpoint'], 'last_checkpoint write'),
    (['write_begin last_checkpoint', 'write_end last_checkpoint'], 'last_checkpoint saved'),
    (['iter 2', 'paused train_iter'], 'training'), (['iter 6', 'finished'], 'shutdown'),
])
def test_landing(events, place):
    assert landing(events) == place


@pytest.mark.parametrize('output, place', [
    ('', 'startup'), ('[10:00:01] a.py / ape / seed 0: train\n', 'training'),
    ('[10:00:01] a.py / ape / seed 0: train (resume from w/iter_2.pth)\n', 'training'),
    ('[10:00:01] a.py / ape / seed 0: train done in 3 s\n', 'between steps'),
    ('[10:00:01] a.py / ape / seed 0: train\n[10:00:02] study: 1/2 runs done, elapsed 0:00:03, ETA 0:00:03; 1 in '
     'flight: b.py / ape / seed 0 (0:00:00)\n', 'training'),  # a progress line (another run's) is no step
    ('[10:00:04] a.py / ape / seed 0: evaluate iter_8.pth at scales [1.0]\n', 'evaluation'),
    ('[10:00:09] a.py / ape / seed 0: evaluated already, skipped\n', 'between steps'),
    ('[10:00:09] collect results into out\n', 'collection'), ('study done in 9 s (this invocation)\n', 'shutdown'),
])
def test_study_place(output, place):
    assert faults.study_place('mmengine log line\n' + output) == place


def test_check_steps(tmp_path):
    """The steps a launch appended to steps.log, against the run's state before it."""
    job = faults.StudyJob([], str(tmp_path))
    run_dir = tmp_path / 'work' / 'a' / 'ape' / 'seed0'
    run_dir.mkdir(parents=True)
    (run_dir / 'config.py').write_text('')
    (run_dir / 'steps.log').write_text('$ python tools/train.py c.py --work-dir d\nlog\n')
    before = {str(run_dir): faults.RunState(steps=len('$ python tools/train.py c.py --work-dir d\nlog\n'),
                                            resume_from=2, evaluated=False)}
    with open(run_dir / 'steps.log', 'a') as f:
        f.write('$ python tools/train.py c.py --work-dir d --resume d/iter_2.pth\n'
                '$ python tools/train.py c.py --work-dir d\n$ python tools/analysis_tools/eval_multires.py c.py x\n')
    result = faults.StudyResult(run=0)
    faults.check_steps(job, before, result)
    assert (result.trainings_resumed, result.from_scratch, result.evaluations, result.evaluations_repeated) == \
        (1, 1, 1, 0)
    assert result.failures == [f'{run_dir}: training started from iteration 0, its newest complete checkpoint is '
                               f'of iteration 2']
    before[str(run_dir)].evaluated = True
    faults.check_steps(job, before, result)
    assert result.evaluations_repeated == 1 and result.failures[-1] == f'{run_dir}: evaluated again'


def test_started_from():
    assert started_from(['start', 'resumed 4', 'iter 5']) == 4
    assert started_from(['start', 'iter 1', 'iter 2']) == 0
    assert started_from(['start']) is None


def test_random_planner_kills_ahead_of_the_resume():
    schedule = Schedule(CONFIG, iters=12, interval=2, val_interval=4)
    plan = random_planner(random.Random(0), schedule, 2, faults.Timing(startup=10.0, per_iter=1.0), kills=200)
    plans = [(resume_from, plan(resume_from)) for resume_from in [0, 4, 10, 12] * 50]
    assert plan(0) is None  # 200 kills planned
    for resume_from, kill_plan in plans:
        if kill_plan.pause is None:
            assert 0 <= kill_plan.delay <= 10 + 12 - resume_from
            continue
        pause = kill_plan.pause
        assert pause.step > resume_from and kill_plan.rank == pause.rank
        if 'checkpoint' in pause.point:
            assert pause.step in schedule.checkpoint_steps and pause.rank == 0
        if pause.point == 'validation':
            assert pause.step in schedule.val_steps
    pauses = [p.pause for _, p in plans if p.pause is not None]
    assert {p.point for p in pauses} == set(POINTS)
    assert 50 <= len(pauses) <= 150 and {p.rank for _, p in plans} == {0, 1}


def test_scripted_planner():
    plan = scripted_planner([Pause('checkpoint_write', 2), Pause('train_iter', 3, rank=1)])
    assert plan(0).pause.point == 'checkpoint_write'
    assert plan(0).rank == 1
    assert plan(2) is None


def test_job_config_adds_the_fault_hook(tmp_path):
    schedule = Schedule(CONFIG, iters=6, interval=2, val_interval=3, max_keep_ckpts=1, dist_timeout=30)
    job = Job(schedule, str(tmp_path), processes=1)
    cfg = Config.fromfile(job.config)
    assert cfg.custom_hooks == [dict(type='RandomStateHook'), dict(type='FaultHook', trace_dir=job.trace_dir)]
    assert cfg.custom_imports.imports == ['mmpe', 'mmpe.analysis.faults']
    assert (cfg.train_cfg.max_iters, cfg.train_cfg.val_interval) == (6, 3)
    assert cfg.default_hooks.checkpoint == dict(type='CheckpointHook', by_epoch=False, interval=2, max_keep_ckpts=1,
                                                _scope_='mmseg')
    assert cfg.env_cfg.dist_cfg.timeout == 30 and cfg.model.backbone.type == 'PESwinTransformer'
    assert schedule.checkpoint_steps == [2, 4, 6] and schedule.val_steps == [3, 6]


@pytest.mark.parametrize('error, line', [
    (RuntimeError('[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:561] Connection closed by peer '
                  '[127.0.0.1]:9113. This is typically caused by a remote worker crashing.'),
     'Connection closed by peer [127.0.0.1]:9113'),
    (torch.distributed.DistStoreError('Timed out after 61 seconds waiting for clients. 1/2 clients joined.'),
     'Timed out after 61 seconds waiting for clients. 1/2 clients joined'),
    (RuntimeError('CUDA out of memory'), None),
    (ValueError('bad config'), None),
])
def test_a_lost_process_ends_training_with_one_line(monkeypatch, capsys, error, line):
    class Runner:
        def train(self):
            raise error
    monkeypatch.setattr(launch, 'build_runner', lambda cfg: Runner())
    monkeypatch.setenv('RANK', '1')
    monkeypatch.setenv('WORLD_SIZE', '2')
    if line is None:
        assert launch.lost_process(error) is None
        with pytest.raises(type(error)):
            launch.train(Config())
        return
    with pytest.raises(SystemExit) as exit_info:
        launch.train(Config())
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.splitlines()[-1] == (
        f'rank 1 of 2 stops: another process of this run is gone or unreachable ({line}). Start every process of '
        f'the run again with --resume to continue from its last checkpoint.')


# ----------------------------------------------------------------------------- real kills (slow)

@pytest.fixture(scope='module')
def environment(tmp_path_factory):
    root = tmp_path_factory.mktemp('faults')
    generate_segmentation_set(str(root / 'seg'), num_train=8, num_val=4, seed=1)
    return root, dict(MMPE_SYNTHETIC_SEG=f'{root}/seg/')


SCHEDULE = Schedule(CONFIG, iters=4, interval=2, val_interval=4, dist_timeout=30)


def reference(root, env, processes: int):
    job = Job(SCHEDULE, str(root / f'{processes}p-reference'), processes, env)
    faults.reference_run(job, timeout=900)
    return job.final_state()


@pytest.mark.slow
def test_kills_inside_checkpoint_saves_resume_exactly(environment):
    """One process killed inside the first checkpoint's write (nothing to resume: a start from
    scratch), inside the last_checkpoint write of the second (resumes from the first), and after that
    write, before the first is removed (resumes from the second, removes the first)."""
    root, env = environment
    job = Job(SCHEDULE, str(root / '1p'), 1, env)
    pauses = [Pause('checkpoint_write', 2), Pause('last_checkpoint_write', 4), Pause('last_checkpoint_saved', 4)]
    result = faults.run_with_kills(job, 0, reference(root, env, 1), scripted_planner(pauses), wait_timeout=900)
    assert result.failures == []
    assert [(k.landed, k.resume_expected, k.resumed) for k in result.kills] == [
        ('checkpoint write', 0, 0), ('last_checkpoint write', 2, 2), ('last_checkpoint saved', 4, 4)]
    assert result.equal and result.launches == 4 and result.from_scratch == 0
    assert sorted(name for name in os.listdir(job.work_dir) if name.endswith('.pth')) == ['iter_4.pth']


@pytest.mark.slow
def test_two_processes_survivor_exits_and_the_run_resumes(environment):
    """Rank 0 killed inside the last_checkpoint write of iteration 4: rank 1, waiting in a collective,
    exits by itself with mmpe's line; relaunched, both resume from iteration 2 and end equal."""
    root, env = environment
    job = Job(SCHEDULE, str(root / '2p'), 2, env)
    result = faults.run_with_kills(job, 0, reference(root, env, 2), scripted_planner([
        Pause('last_checkpoint_write', 4)]), wait_timeout=900)
    assert result.failures == []
    (kill,) = result.kills
    assert (kill.landed, kill.resume_expected, kill.resumed) == ('last_checkpoint write', 2, 2)
    assert kill.survivor_seconds < faults.survivor_bound(SCHEDULE)
    assert kill.survivor_message.startswith('rank 1 of 2 stops: another process of this run is gone or '
                                            'unreachable ('), kill.survivor_message
    assert re.search(r'Connection (closed|reset) by peer', kill.survivor_message), kill.survivor_message  # gloo
    assert result.equal


@pytest.mark.slow
def test_fault_injection_tool(environment, tmp_path):
    """The script: a random kill and its tables."""
    root, env = environment
    proc = subprocess.run([sys.executable, 'tools/analysis_tools/fault_injection.py', '--work-dir', str(tmp_path),
                           '--kills', '1', '--processes', '1', '--iters', '2', '--interval', '1', '--val-interval',
                           '2', '--random-share', '0'], cwd=faults.ROOT, env=dict(os.environ, **env),
                          capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ('summary', 'places', 'kills'):
        assert osp.isfile(tmp_path / f'{name}.md') and osp.isfile(tmp_path / f'{name}.csv')
    assert '| 1 | 1 | 2 | 1 | 1 | 0 | ' in proc.stdout  # processes, runs, launches, kills, planned, random
    assert '| 1/1 |' in proc.stdout


@pytest.mark.slow
def test_study_killed_in_training_resumes_and_ends_equal(environment):
    """compare_encodings.py killed with its training (the whole session) right after its run's first
    checkpoint: the same command again takes over the stale lock, resumes the training from that
    checkpoint (not from scratch), evaluates once, and the tables equal the uninterrupted study's."""
    root, _ = environment
    generate_segmentation_set(str(root / 'layout'), num_train=4, num_val=2, height=128, width=160, seed=1,
                              task='layout')
    env = dict(MMPE_LAYOUT_SEG=f'{root}/layout/')
    config = root / 'study.py'
    config.write_text(faults.study_config('configs/study/fcn1x1_vit-tiny_layout.py', iters=4, interval=2))
    argv = [str(config), '--encodings', 'rope_mixed', '--seeds', '0', '--scales', '1', '--flops-size', '64', '80']
    reference = faults.StudyJob(argv, str(root / 'study-reference'), env)
    faults.reference_study(reference, timeout=1800)

    job = faults.StudyJob(argv, str(root / 'study-killed'), env)
    run_dir = osp.join(job.work_dir, 'study', 'rope_mixed', 'seed0')
    proc = job.launch()
    while not osp.isfile(osp.join(run_dir, 'last_checkpoint')):  # iteration 2 saved, 3 and 4 to come
        assert proc.poll() is None, job.output(0)
        time.sleep(0.02)
    faults.kill(proc)
    assert faults.study_place(job.output(0)) == 'training' and osp.isfile(osp.join(run_dir, 'study.lock'))
    assert job.states()[run_dir].resume_from == 2

    result = faults.study_with_kills(job, 0, reference.tables(), duration=0.0, runs=1, kills=0, rng=random.Random(0))
    assert result.failures == [] and result.equal
    assert (result.trainings_resumed, result.from_scratch, result.evaluations) == (1, 0, 1)
