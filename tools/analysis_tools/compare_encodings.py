"""The whole encoding study in one command: train every (config, encoding, seed), evaluate each at
several test scales, collect one table.

    python tools/analysis_tools/compare_encodings.py CONFIG [CONFIG ...] [--encodings E ...] [--seeds 0 1]
        --work-dir work_dirs/study --out docs/results [--scales 0.5 0.75 1 1.25 1.5 2]
        [--flops-size H W] [--metrics ...] [--quick]

Each CONFIG is a base config; with ``--encodings`` every encoding replaces its backbone's
``pos_embed`` (an encoding is a preset name, see ``mmpe.pos_embed.ENCODING_PRESETS``, or
``NAME=DICT`` for any pos_embed dict, e.g. ``"rope_mixed interpolate={'type': 'rope_mixed',
'coords': 'interpolate'}"``); without it every CONFIG runs as it is (a list of configs). A run
lives in ``WORK_DIR/<config name>/<encoding>/seed<k>/``: a generated ``config.py`` (inherits
CONFIG, sets the encoding, ``randomness.seed`` and the ``study`` labels: rerun it with
tools/train.py by hand if you like), mmengine's outputs, ``multires/`` (eval_multires.py) and
``steps.log`` (output of the steps). Steps already done are skipped: a run with ``train_done``
is not retrained, an unfinished one resumes from its last checkpoint (``--resume``), and an
evaluated one (``multires/multires.csv``) is not re-evaluated; so an interrupted study resumes
where it stopped. Finally collect_results.py tabulates every run under WORK_DIR into ``--out``.
Runs train with the config's own schedule, without validation (eval_multires evaluates).
``--quick`` is a minute-scale smoke test: 2 iterations, scales 0.5 1 2.
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
import time

from mmpe.analysis.report import slug
from mmpe.analysis.study import MULTIRES, parse_encoding

ANALYSIS_TOOLS = osp.dirname(osp.abspath(__file__))
TOOLS = osp.dirname(ANALYSIS_TOOLS)
QUICK_ITERS = 2


def run_config(base: str, pos_embed, name, seed: int, quick: bool) -> str:
    """Text of a run's config: inherits ``base``, sets the encoding (unless None), seed and labels."""
    lines = [f'_base_ = {osp.abspath(base)!r}', '']
    if pos_embed is not None:
        lines.append(f'model = dict(backbone=dict(pos_embed=dict(_delete_=True, **{pos_embed!r})))')
    study = dict(seed=seed) if name is None else dict(encoding=name, seed=seed)
    lines += [f'randomness = dict(seed={seed})',
              f'study = dict({", ".join(f"{k}={v!r}" for k, v in study.items())})',
              '# evaluation is eval_multires.py\'s job: no validation during training',
              'val_dataloader = None', 'val_cfg = None', 'val_evaluator = None']
    if quick:
        lines += ['# --quick',
                  f'train_cfg = dict(_delete_=True, type="IterBasedTrainLoop", max_iters={QUICK_ITERS})',
                  'param_scheduler = []',
                  f'default_hooks = dict(checkpoint=dict(type="CheckpointHook", by_epoch=False, '
                  f'interval={QUICK_ITERS}), logger=dict(type="LoggerHook", interval=1))',
                  'log_processor = dict(by_epoch=False)']
    return '\n'.join(lines) + '\n'


def step(args, log: str, what: str) -> None:
    """Run a tool, appending its output to ``log``; raise with the log's tail if it fails."""
    start = time.time()
    print(f'[{time.strftime("%H:%M:%S")}] {what}', flush=True)
    with open(log, 'a') as f:
        f.write(f'\n$ {" ".join(args)}\n')
        f.flush()
        code = subprocess.call(args, stdout=f, stderr=subprocess.STDOUT)
    if code:
        with open(log) as f:
            tail = f.read()[-4000:]
        raise RuntimeError(f'{what} failed (exit {code}); log {log}:\n{tail}')
    print(f'    done in {time.time() - start:.0f} s', flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('configs', nargs='+', help='base configs (or, without --encodings, the configs to compare)')
    parser.add_argument('--encodings', nargs='+', help='preset names or NAME=DICT pos_embed dicts')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--work-dir', required=True, help='root of the run directories')
    parser.add_argument('--out', required=True, help='output directory of collect_results.py')
    parser.add_argument('--scales', type=float, nargs='+', help='test scales (default 0.5 0.75 1 1.25 1.5 2; '
                                                                '--quick: 0.5 1 2)')
    parser.add_argument('--flops-size', type=int, nargs=2, default=[512, 512], metavar=('H', 'W'))
    parser.add_argument('--metrics', nargs='+', help='metric columns of the final table (default: all)')
    parser.add_argument('--quick', action='store_true', help=f'{QUICK_ITERS} iterations per run: a smoke test')
    args = parser.parse_args()
    for config in args.configs:
        if not osp.isfile(config):
            raise ValueError(f'config {config!r} does not exist')
    encodings = [parse_encoding(e) for e in args.encodings] if args.encodings else [(None, None)]
    scales = args.scales or ([0.5, 1.0, 2.0] if args.quick else [0.5, 0.75, 1.0, 1.25, 1.5, 2.0])
    python = sys.executable
    study_start = time.time()
    for seed in args.seeds:  # seed outermost: a study cut short has every encoding at its first seeds
        for config in args.configs:
            for name, pos_embed in encodings:
                run = osp.join(args.work_dir, osp.splitext(osp.basename(config))[0], slug(name or 'config'),
                               f'seed{seed}')
                label = f'{osp.basename(config)} / {name or "as configured"} / seed {seed}'
                os.makedirs(run, exist_ok=True)
                log = osp.join(run, 'steps.log')
                if osp.isfile(osp.join(run, MULTIRES, 'multires.csv')):
                    print(f'{label}: evaluated already, skipped')
                    continue
                run_cfg = osp.join(run, 'config.py')
                with open(run_cfg, 'w') as f:
                    f.write(run_config(config, pos_embed, name, seed, args.quick))
                if not osp.isfile(osp.join(run, 'train_done')):
                    resume = ['--resume'] if osp.isfile(osp.join(run, 'last_checkpoint')) else []
                    step([python, osp.join(TOOLS, 'train.py'), run_cfg, '--work-dir', run, *resume], log,
                         f'{label}: train' + (' (resumed)' if resume else ''))
                    open(osp.join(run, 'train_done'), 'w').close()
                with open(osp.join(run, 'last_checkpoint')) as f:
                    checkpoint = f.read().strip()
                step([python, osp.join(ANALYSIS_TOOLS, 'eval_multires.py'), run_cfg, checkpoint, '--work-dir', run,
                      '--scales', *map(str, scales)], log, f'{label}: evaluate at scales {scales}')
    collect = [python, osp.join(ANALYSIS_TOOLS, 'collect_results.py'), args.work_dir, '--out', args.out,
               '--flops-size', *map(str, args.flops_size)]
    if args.metrics:
        collect += ['--metrics', *args.metrics]
    print(f'[{time.strftime("%H:%M:%S")}] collect results into {args.out}', flush=True)
    if subprocess.call(collect):
        raise RuntimeError(f'{" ".join(collect)} failed')
    print(f'study done in {time.time() - study_start:.0f} s (this invocation)')


if __name__ == '__main__':
    main()
