"""compare_encodings.py launches runs as users launch training (mmpe.analysis.launchers).

Fast: the launchers' command lines against lists written out here, slurm's against what
tools/slurm_train.sh runs (a fake ``srun`` on PATH records its argv), ``--dry-run`` with
``--launcher slurm`` against lines built here from the arguments (new, resumed from another
node's checkpoint path, trained, evaluated runs), checkpoint lookup and run locks.
Slow (real training on CPU): a failing run is reported with its log's tail while the other
finishes; a run whose last_checkpoint names another node's path resumes from the local file;
``--launcher pytorch --gpus 2`` (2 gloo processes) gives a table of the same format as one process.
"""
import os
import os.path as osp
import runpy
import shutil
import socket
import subprocess
import sys

import pytest
import torch

from mmpe.analysis.launchers import Launcher, RunLock
from mmpe.datasets import generate_segmentation_set

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = 'tools/analysis_tools/compare_encodings.py'
FCN = 'configs/study/fcn1x1_vit-tiny_layout.py'  # the cheapest study config
SEG = 'configs/study/upernet_vit-tiny_layout.py'
PY = sys.executable


def dry_run(monkeypatch, capsys, *args, **env) -> str:
    """Output of ``compare_encodings.py ARGS --dry-run``, run in this process (from the repository root)."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, 'argv', [TOOL, *args, '--dry-run'])
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    runpy.run_path(TOOL, run_name='__main__')
    return capsys.readouterr().out


def compare_encodings(*args, check=True, **env) -> subprocess.CompletedProcess:
    proc = subprocess.run([PY, TOOL, *args], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=ROOT, OMP_NUM_THREADS='1', **env))
    if check and proc.returncode:
        raise AssertionError(f'{args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}')
    return proc


# ----------------------------------------------------------------------------- command lines

def test_launcher_commands():
    args = ['a/config.py', '--work-dir', 'w']
    assert Launcher('none').command('tools/train.py', args, 'job', 29500) == ({}, [PY, 'tools/train.py', *args])
    assert Launcher('pytorch', gpus=2).command('tools/train.py', args, 'job', 29507) == (
        {}, [PY, '-m', 'torch.distributed.run', '--nproc-per-node', '2', '--master-port', '29507', 'tools/train.py',
             *args, '--launcher', 'pytorch'])
    assert Launcher('slurm', partition='gpu', gpus=16, srun_args=['--qos=high']).command(
        'tools/train.py', args, 'cfg-ape-seed1', 29501) == (
        {'MASTER_PORT': '29501'},
        ['srun', '-p', 'gpu', '--job-name=cfg-ape-seed1', '--gres=gpu:8', '--ntasks=16', '--ntasks-per-node=8',
         '--cpus-per-task=5', '--kill-on-bad-exit=1', '--qos=high', PY, '-u', 'tools/train.py', *args,
         '--launcher', 'slurm'])
    slurm = Launcher('slurm', partition='p', gpus=2)  # defaults: GPUS_PER_NODE min(8, GPUS), CPUS_PER_TASK 5
    assert (slurm.gpus_per_node, slurm.cpus_per_task) == (2, 5)
    assert Launcher('slurm', partition='p').gpus == 8


@pytest.mark.parametrize('kwargs, message', [
    (dict(kind='mpi'), "launcher must be one of none, pytorch, slurm, got 'mpi'"),
    (dict(kind='none', gpus=2), '--gpus applies to --launcher pytorch or slurm'),
    (dict(kind='pytorch'), '--launcher pytorch needs --gpus N'),
    (dict(kind='pytorch', gpus=2, partition='p'),
     '--partition: options of --launcher slurm, not of --launcher pytorch'),
    (dict(kind='none', srun_args=['--qos=x'], gpus_per_node=2),
     '--gpus-per-node, --srun-args: options of --launcher slurm, not of --launcher none'),
    (dict(kind='slurm'), '--launcher slurm needs --partition P'),
    (dict(kind='slurm', partition='p', gpus=0), '--gpus must be a positive integer, got 0'),
    (dict(kind='slurm', partition='p', cpus_per_task=-1), '--cpus-per-task must be a positive integer, got -1'),
    (dict(kind='slurm', partition='p', gpus=12), r'--gpus \(12\) must be a multiple of --gpus-per-node \(8\)'),
])
def test_launcher_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Launcher(**kwargs)


@pytest.mark.parametrize('env', [{}, dict(GPUS='2'), dict(GPUS='16', GPUS_PER_NODE='4', CPUS_PER_TASK='10',
                                                            SRUN_ARGS='--time=1:00:00 --qos=high')])
def test_slurm_command_is_slurm_train_sh(tmp_path, env):
    """Same argv as tools/slurm_train.sh for the same values (its defaults included)."""
    fake = tmp_path / 'bin' / 'srun'
    fake.parent.mkdir()
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" srun "$@" > "$SRUN_ARGV"\n')
    fake.chmod(0o755)
    argv_file = tmp_path / 'argv'
    extra = ['--resume', '/w/iter_4.pth', '--cfg-options', 'a=1']
    subprocess.run(['bash', osp.join(ROOT, 'tools/slurm_train.sh'), 'part', 'job-1', 'c.py', '/w', *extra], check=True,
                   capture_output=True, env=dict(os.environ, PATH=f'{fake.parent}:{os.environ["PATH"]}',
                                                 SRUN_ARGV=str(argv_file), PYTHON=PY, **env))
    shell = argv_file.read_text().splitlines()
    ours = Launcher('slurm', partition='part', gpus=int(env['GPUS']) if 'GPUS' in env else None,
                    gpus_per_node=int(env['GPUS_PER_NODE']) if 'GPUS_PER_NODE' in env else None,
                    cpus_per_task=int(env['CPUS_PER_TASK']) if 'CPUS_PER_TASK' in env else None,
                    srun_args=env.get('SRUN_ARGS', '').split())
    assert ours.command(osp.join(ROOT, 'tools/train.py'), ['c.py', '--work-dir', '/w', *extra], 'job-1', 1)[1] == shell


def test_dry_run_slurm_prints_the_srun_lines(tmp_path, monkeypatch, capsys):
    """Runs in every state; nothing is created or run; the lines are built here from the arguments."""
    work = tmp_path / 'work'
    runs = {(stem, seed): work / stem / 'rope_mixed' / f'seed{seed}'
            for seed in (0, 1) for stem in ('fcn1x1_vit-tiny_layout', 'upernet_vit-tiny_layout')}
    evaluated = runs['upernet_vit-tiny_layout', 0]
    (evaluated / 'multires').mkdir(parents=True)
    (evaluated / 'multires' / 'multires.csv').write_text('scale\n1\n')
    moved = runs['fcn1x1_vit-tiny_layout', 1]  # died on a node that mounted the work dir at /node7/work
    moved.mkdir(parents=True)
    torch.save({}, moved / 'iter_40.pth')  # complete checkpoints (resume_checkpoint checks them)
    (moved / 'last_checkpoint').write_text(f'/node7/work/{moved.relative_to(work)}/iter_40.pth')
    trained = runs['upernet_vit-tiny_layout', 1]
    trained.mkdir(parents=True)
    torch.save({}, trained / 'iter_80.pth')
    (trained / 'last_checkpoint').write_text(str(trained / 'iter_80.pth'))
    (trained / 'train_done').write_text('')
    before = sorted(work.rglob('*'))

    out = dry_run(monkeypatch, capsys, FCN, SEG, '--encodings', 'rope_mixed', '--seeds', '0', '1', '--work-dir',
                  str(work), '--out', str(tmp_path / 'out'), '--launcher', 'slurm', '--partition', 'p1', '--gpus', '16',
                  '--srun-args=--time=2-0 --qos=high', '--scales', '0.5', '1', '--tta', '--reproduce',
                  'docs/reproduce.md', MASTER_PORT='31000')
    assert sorted(work.rglob('*')) == before and not (tmp_path / 'out').exists()

    def srun(index, stem, seed, tool, args):
        run = runs[stem, seed]
        return (f'MASTER_PORT={31000 + index} srun -p p1 --job-name={stem}-rope_mixed-seed{seed} --gres=gpu:8 '
                f'--ntasks=16 --ntasks-per-node=8 --cpus-per-task=5 --kill-on-bad-exit=1 --time=2-0 --qos=high '
                f'{PY} -u {tool} {run}/config.py {args.format(run=run)} --launcher slurm')

    train, evaluate = 'tools/train.py', 'tools/analysis_tools/eval_multires.py'
    eval_args = '--work-dir {run} --scales 0.5 1 --tta'
    expected = [
        srun(0, 'fcn1x1_vit-tiny_layout', 0, train, '--work-dir {run}'),
        srun(0, 'fcn1x1_vit-tiny_layout', 0, evaluate, '"$(cat {run}/last_checkpoint)" ' + eval_args),
        srun(2, 'fcn1x1_vit-tiny_layout', 1, train, '--work-dir {run} --resume {run}/iter_40.pth'),
        srun(2, 'fcn1x1_vit-tiny_layout', 1, evaluate, '"$(cat {run}/last_checkpoint)" ' + eval_args),
        srun(3, 'upernet_vit-tiny_layout', 1, evaluate, '{run}/iter_80.pth ' + eval_args),
        f'{PY} tools/analysis_tools/collect_results.py {work} --out {tmp_path / "out"} --flops-size 512 512 '
        f'--reproduce docs/reproduce.md']
    commands = [line for line in out.replace(' \\\n    ', ' ').splitlines() if not line.startswith('#')]
    assert commands == expected
    states = [line.split(': ', 1)[1] for line in out.splitlines() if line.startswith('# ') and ' -- ' in line]
    assert states == ['new run', 'skip, evaluated already', f'resume training from {moved}/iter_40.pth',
                      f'trained; evaluate {trained}/iter_80.pth']


def test_dry_run_rejects_bad_options(tmp_path, monkeypatch, capsys):
    with pytest.raises(ValueError, match='--launcher pytorch needs --gpus N'):
        dry_run(monkeypatch, capsys, FCN, '--work-dir', str(tmp_path), '--out', str(tmp_path), '--launcher', 'pytorch')
    with pytest.raises(ValueError, match='--max-jobs must be a positive integer, got 0'):
        dry_run(monkeypatch, capsys, FCN, '--work-dir', str(tmp_path), '--out', str(tmp_path), '--max-jobs', '0')
    with pytest.raises(ValueError, match="MASTER_PORT must be a port number \\(1-65535\\), got 'x'"):
        dry_run(monkeypatch, capsys, FCN, '--work-dir', str(tmp_path), '--out', str(tmp_path), MASTER_PORT='x')


# ----------------------------------------------------------------------------- run directory state

def test_run_lock(tmp_path):
    lock = RunLock(str(tmp_path))
    host = socket.gethostname()
    assert lock.acquire() is None
    assert (tmp_path / 'study.lock').read_text() == f'{host} {os.getpid()}'
    lock.release()
    assert not (tmp_path / 'study.lock').exists()

    (tmp_path / 'study.lock').write_text(f'{host} {os.getppid()}')  # a live process on this host
    assert lock.acquire(force=True) == f'running in process {os.getppid()} on this host ({lock.path})'
    lock.release()  # not ours: stays
    assert (tmp_path / 'study.lock').read_text() == f'{host} {os.getppid()}'

    dead = subprocess.Popen(['true'])
    dead.wait()
    (tmp_path / 'study.lock').write_text(f'{host} {dead.pid}')  # stale: taken over
    assert lock.acquire() is None and lock.holder() == lock.owner

    (tmp_path / 'study.lock').write_text('node7 123')
    reason = lock.acquire()
    assert reason.startswith('locked by process 123 on host node7') and '--force' in reason
    assert lock.acquire(force=True) is None and lock.holder() == lock.owner
    assert sorted(os.listdir(tmp_path)) == ['study.lock']


def test_run_lock_killed_while_taking_it(tmp_path, monkeypatch):
    """A kill while the lock is being taken leaves no lock (never an empty one, which would read as
    held by a process '?' on a host '?' and block the run until --force)."""
    def killed(*args):
        raise KeyboardInterrupt
    with monkeypatch.context() as patch:
        patch.setattr(os, 'link', killed)
        with pytest.raises(KeyboardInterrupt):
            RunLock(str(tmp_path)).acquire()
    assert not (tmp_path / 'study.lock').exists()
    assert RunLock(str(tmp_path)).acquire() is None


# ----------------------------------------------------------------------------- real runs (CPU)

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp('layout')
    generate_segmentation_set(str(root / 'seg'), num_train=4, num_val=2, height=128, width=160, seed=1, task='layout')
    return dict(MMPE_LAYOUT_SEG=f'{root}/seg/')


STUDY = ['--seeds', '0', '--quick', '--scales', '1', '--flops-size', '64', '80']


@pytest.fixture(scope='module')
def one_process_study(tmp_path_factory, data):
    """--launcher none, --max-jobs 2: FCN and a config whose training raises."""
    tmp = tmp_path_factory.mktemp('none')
    broken = tmp / 'broken.py'
    broken.write_text(f"_base_ = {osp.join(ROOT, FCN)!r}\n"
                      f"model = dict(backbone=dict(pos_embed=dict(_delete_=True, type='no_such_encoding')))\n")
    proc = compare_encodings(FCN, str(broken), *STUDY, '--work-dir', str(tmp / 'work'), '--out', str(tmp / 'out'),
                             '--max-jobs', '2', check=False, **data)
    return tmp, proc


@pytest.mark.slow
def test_failed_run_is_reported_and_the_other_finishes(one_process_study):
    tmp, proc = one_process_study
    assert proc.returncode == 1, proc.stderr[-3000:]
    log = tmp / 'work' / 'broken' / 'config' / 'seed0' / 'steps.log'
    report = proc.stdout.split('broken.py / as configured / seed 0: train failed (exit code 1); '
                               f'last lines of {log}:\n', 1)[1]
    assert 'no_such_encoding' in report.split('\n[')[0]  # the error, from the log's tail
    assert 'problems:\n  - broken.py / as configured / seed 0: train failed' in proc.stdout
    assert (tmp / 'work' / 'fcn1x1_vit-tiny_layout' / 'config' / 'seed0' / 'multires' / 'multires.csv').is_file()
    assert 'ViT-tiny + 1x1 head' in (tmp / 'out' / 'results.md').read_text()


@pytest.mark.slow
def test_resume_from_another_nodes_checkpoint_path(one_process_study, data):
    """The finished FCN run as if it died on a node that mounted the work dir at /node7: its
    last_checkpoint names a path that does not exist here; the study resumes from the local file."""
    tmp, _ = one_process_study
    work = tmp / 'resumed'
    shutil.copytree(tmp / 'work' / 'fcn1x1_vit-tiny_layout', work / 'fcn1x1_vit-tiny_layout')
    run = work / 'fcn1x1_vit-tiny_layout' / 'config' / 'seed0'
    shutil.rmtree(run / 'multires')
    (run / 'train_done').unlink()
    (run / 'last_checkpoint').write_text(f'/node7/{run.relative_to(tmp)}/iter_2.pth')
    out = compare_encodings(FCN, *STUDY, '--work-dir', str(work), '--out', str(tmp / 'out2'), **data).stdout
    assert f'train (resume from {run}/iter_2.pth)' in out
    log = (run / 'steps.log').read_text()
    assert f'--resume {run}/iter_2.pth' in log and 'resumed epoch: 0, iter: 2' in log  # mmengine's message
    assert (run / 'multires' / 'multires.csv').is_file() and not (run / 'study.lock').exists()


@pytest.mark.slow
def test_pytorch_launcher_two_processes(one_process_study, tmp_path, data):
    """2 gloo processes (torchrun) train and evaluate; the table has the one-process table's format."""
    single, _ = one_process_study
    compare_encodings(FCN, *STUDY, '--work-dir', str(tmp_path / 'work'), '--out', str(tmp_path / 'out'),
                      '--launcher', 'pytorch', '--gpus', '2', MASTER_PORT=str(free_port()), **data)
    log = (tmp_path / 'work' / 'fcn1x1_vit-tiny_layout' / 'config' / 'seed0' / 'steps.log').read_text()
    assert log.count('--nproc-per-node 2') == 2 and log.count('GPU number: 2') == 2  # mmengine's world size
    for table in ('results.md', 'results_by_scale.md'):
        ours, reference = ((d / 'out' / table).read_text().splitlines() for d in (tmp_path, single))
        assert len(ours) == len(reference)
        for line, ref in zip(ours, reference):  # same titles and header; rows: same labels, metrics differ
            row = line.startswith('| ') and not line.startswith('| backbone |')
            assert (line.split(' | ')[:3] == ref.split(' | ')[:3]) if row else line == ref
            assert line.count(' | ') == ref.count(' | ')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
