"""Checks of backbone arguments: each raises a ValueError (a value out of range) or TypeError (a
value of the wrong kind) naming the owner, the parameter, what it accepts and what was given."""
import math
import numbers
from typing import Optional, Sequence


def is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(owner: str, name: str, value, low: int, high: Optional[int] = None) -> None:
    """``value`` is an int in [low, high] (no upper bound without ``high``)."""
    accepted = f'an int from {low} to {high}' if high is not None else f'an int >= {low}'
    if not is_int(value):
        raise TypeError(f'{owner}: {name} must be {accepted}, got {value!r}')
    if value < low or high is not None and value > high:
        raise ValueError(f'{owner}: {name} must be {accepted}, got {value!r}')


def check_number(owner: str, name: str, value, low: float, high: float = math.inf, low_open: bool = False,
                 high_open: bool = True) -> None:
    """``value`` is a finite real number in the interval from ``low`` to ``high`` (open or closed ends)."""
    interval = f'{"(" if low_open else "["}{low:g}, {high:g}{")" if high_open else "]"}'
    accepted = f'a finite number in {interval}'
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f'{owner}: {name} must be {accepted}, got {value!r}')
    if not (math.isfinite(value) and (low < value if low_open else low <= value)
            and (value < high if high_open else value <= high)):
        raise ValueError(f'{owner}: {name} must be {accepted}, got {value!r}')


def check_bool(owner: str, name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f'{owner}: {name} must be True or False, got {value!r}')


def check_ints(owner: str, name: str, values, low: int, high: Optional[int] = None, min_len: int = 1) -> None:
    """``values`` is a list or tuple of at least ``min_len`` ints, each in [low, high]."""
    if not isinstance(values, (list, tuple)) or len(values) < min_len:
        raise TypeError(f'{owner}: {name} must be a list or tuple of at least {min_len} int(s), got {values!r}')
    for i, value in enumerate(values):
        check_int(owner, f'{name}[{i}]', value, low, high)


def check_size(owner: str, name: str, value, low: int, low_name: str = '') -> Sequence[int]:
    """``value`` is an int or an (H, W) pair of ints, each >= ``low`` (``low_name``: what it is); returns (H, W)."""
    accepted = f'an int or an (H, W) pair of ints >= {f"{low_name}={low}" if low_name else low}'
    pair = (value, value) if is_int(value) else value
    if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(is_int(side) for side in pair)):
        raise TypeError(f'{owner}: {name} must be {accepted}, got {value!r}')
    if min(pair) < low:
        raise ValueError(f'{owner}: {name} must be {accepted}, got {value!r}')
    return tuple(pair)


def check_drop_rates(owner: str, **rates) -> None:
    """Dropout and drop-path probabilities: finite numbers in [0, 1)."""
    for name, value in rates.items():
        check_number(owner, name, value, 0.0, 1.0)
