"""The benchmark helpers measure what they claim: peak memory of one step, not of set-up."""
import torch

from mmpe.benchmark import cpu_peak_memory_mb, time_interleaved


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
