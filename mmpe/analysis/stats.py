"""Statistics over seeds: mean, sample std and the Student-t confidence interval of the mean,
and paired differences between two encodings run with the same seeds.

No scipy at run time: the t distribution's CDF has a closed form for whole degrees of freedom
(Abramowitz & Stegun, Handbook of Mathematical Functions, 26.7.3 and 26.7.4), and its quantile
is found by bisection on that CDF to float precision (tests compare with scipy.stats.t.ppf).
"""
import math
import statistics
from typing import Dict, Hashable, List, NamedTuple, Sequence


class Interval(NamedTuple):
    """A confidence interval; NaN ends when it is undefined (fewer than two values)."""
    low: float
    high: float

    def sign(self) -> str:
        """'+' when the interval lies above zero, '-' below, '' when it contains zero or is undefined."""
        if self.low > 0:
            return '+'
        if self.high < 0:
            return '-'
        return ''


class Summary(NamedTuple):
    """n finite values, their mean, sample std (n - 1; NaN for n < 2) and the t interval of the mean."""
    n: int
    mean: float
    std: float
    ci: Interval


def t_two_sided(t: float, dof: int) -> float:
    """``P(|T| <= t)`` for T ~ Student t with ``dof`` (whole, >= 1) degrees of freedom, t >= 0
    (A&S 26.7.3 for odd, 26.7.4 for even dof)."""
    theta = math.atan(t / math.sqrt(dof))
    cos2 = math.cos(theta) ** 2
    if dof % 2 == 0:  # sin(theta) [1 + 1/2 cos^2 + 1*3/(2*4) cos^4 + ... up to cos^(dof-2)]
        term = total = 1.0
        for k in range(1, dof // 2):
            term *= (2 * k - 1) / (2 * k) * cos2
            total += term
        return math.sin(theta) * total
    # 2/pi [theta + sin(theta) (cos + 2/3 cos^3 + ... up to cos^(dof-2))], the sum empty for dof 1
    term = total = math.cos(theta) if dof > 1 else 0.0
    for k in range(1, (dof - 1) // 2):
        term *= (2 * k) / (2 * k + 1) * cos2
        total += term
    return 2 / math.pi * (theta + math.sin(theta) * total)


def t_quantile(confidence: float, dof: int) -> float:
    """The t with ``P(|T| <= t)`` = ``confidence`` (0.95: t.ppf(0.975, dof)) for ``dof`` degrees of freedom."""
    if not 0 < confidence < 1:
        raise ValueError(f'confidence must be in (0, 1), got {confidence!r}')
    if not (isinstance(dof, int) and dof >= 1):
        raise ValueError(f'dof must be a whole number >= 1, got {dof!r}')
    low, high = 0.0, 1.0
    while t_two_sided(high, dof) < confidence:
        low, high = high, 2 * high
    for _ in range(200):  # bisection until the bracket stops shrinking
        middle = (low + high) / 2
        if middle in (low, high):
            break
        low, high = (middle, high) if t_two_sided(middle, dof) < confidence else (low, middle)
    return (low + high) / 2


def summarize(values: Sequence[float], confidence: float = 0.95) -> Summary:
    """Summary of the finite values (NaN is left out): n, mean, sample std and the interval
    mean ± t_quantile(confidence, n - 1) * std / sqrt(n)."""
    values = [v for v in values if not math.isnan(v)]
    n = len(values)
    if n == 0:
        return Summary(0, math.nan, math.nan, Interval(math.nan, math.nan))
    mean = statistics.fmean(values)
    if n == 1:
        return Summary(1, mean, math.nan, Interval(math.nan, math.nan))
    std = statistics.stdev(values)
    half = t_quantile(confidence, n - 1) * std / math.sqrt(n)
    return Summary(n, mean, std, Interval(mean - half, mean + half))


class Paired(NamedTuple):
    """The summary of per-seed differences (value - reference) over the seeds both have, and the
    seeds only one of them has (dropped)."""
    difference: Summary
    unpaired: List[Hashable]
    unpaired_reference: List[Hashable]


def paired_difference(values: Dict[Hashable, float], reference: Dict[Hashable, float],
                      confidence: float = 0.95) -> Paired:
    """Paired difference of ``values`` against ``reference``, both {seed: value}: a seed is a pair
    when both have it (a NaN on either side leaves that pair out of n)."""
    seeds = [s for s in values if s in reference]
    return Paired(summarize([values[s] - reference[s] for s in seeds], confidence),
                  [s for s in values if s not in reference], [s for s in reference if s not in values])
