"""Live progress of long work (a study's runs, eval_multires.py's scales, a benchmark's timed calls): items
done / total, those in flight, elapsed time and an ETA, drawn by rich (a dependency of mmengine) when
stdout is a terminal, else printed as plain lines at a bounded rate (CI, slurm logs, nohup).

The ETA comes from the items measured in this process: an item is measured from ``start`` to ``finish``;
items finished without a start (skipped: done by an earlier invocation) or failed are not. Each item has a
``kind`` and a relative ``work``; an item left costs ``work`` times the measured seconds per unit of work of
its kind (of all measured items while none of its kind has finished). An item in flight costs that minus its
age (at least 0). The items left are laid out in order on the ``jobs`` slots, each slot taking the next item
when it frees (as a thread pool does); the ETA is when the last slot frees.
"""
import heapq
import re
import sys
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Dict, Hashable, Iterable, Iterator, List, Optional, Sequence, Tuple

import rich.progress
from rich.console import Console
from rich.text import Text

PLAIN_INTERVAL = 10.0  # seconds between plain progress lines, at least
WAITING, IN_FLIGHT, MEASURED, SKIPPED, FAILED = 'waiting', 'in flight', 'measured', 'skipped', 'failed'
FINAL = (MEASURED, SKIPPED, FAILED)
REFRESH_PER_SECOND = 2  # rich's redraws
PLAIN_LINE = re.compile(r'\[\d\d:\d\d:\d\d\] [^:]+: \d+/\d+ \S+ done\b')  # what ``Progress.line`` prints


@dataclass(frozen=True)
class Item:
    """One unit of the work: ``label`` names it while in flight; items of one ``kind`` take alike per unit of
    ``work`` (e.g. a study's runs of one config: work 1; test scales: work scale ** 2)."""
    label: str
    kind: Hashable = None
    work: float = 1.0


def duration(seconds: float) -> str:
    """H:MM:SS (days written out beyond 24 hours)."""
    return str(timedelta(seconds=round(seconds)))


class _RichDisplay(rich.progress.Progress):
    """rich's bar (the terminal's width), then lines of their own, cut at its width: ``Progress.status``
    (recomputed at each redraw: the ETA counts down) and one per item in flight."""

    def __init__(self, progress: 'Progress', console: Optional[Console], live: bool):
        self.owner = progress  # (rich renders once while constructing)
        super().__init__(rich.progress.TextColumn('[bold]{task.description}'), rich.progress.BarColumn(bar_width=None),
                         rich.progress.MofNCompleteColumn(), console=console, auto_refresh=live,
                         refresh_per_second=REFRESH_PER_SECOND, get_time=progress.clock, expand=True)

    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        flight = [f'in flight: {label} ({duration(age)})' for label, age in self.owner.in_flight()]
        for line in [self.owner.status(), *flight]:
            yield Text(f'  {line}', no_wrap=True, overflow='ellipsis')


class Progress:
    """Progress of ``items`` (see the module docstring), shown while the ``with`` block runs.

    ``start(i)`` / ``finish(i)`` mark item ``i`` (from any thread); ``track(iterable)`` does both for
    sequential work. ``jobs``: items run at once. ``unit``: what the items are ('runs', 'scales').
    ``show``: False shows nothing (other ranks of a distributed job). ``live``: rich redraws twice a second
    from a thread of its own (the elapsed time and ETA count down); False: only at ``start`` / ``finish``, so
    nothing runs beside timed work (``time_interleaved``). ``console``: draw with rich on it
    (default: a console on stdout when stdout is a terminal, else plain lines, at most one per ``interval``
    seconds, default ``PLAIN_INTERVAL``, the latest state held back and printed at the next event or the
    end). ``say``: writes a plain line (default print). ``clock``: seconds (default time.monotonic).
    The state is allocated up front: following items does not grow the process (the memory soak measures it)."""

    def __init__(self, description: str, items: Sequence[Item], *, unit: str = 'items', jobs: int = 1,
                 show: bool = True, live: bool = True, console: Optional[Console] = None,
                 interval: Optional[float] = None, say: Optional[Callable[[str], None]] = None,
                 clock: Optional[Callable[[], float]] = None):
        if jobs < 1:
            raise ValueError(f'jobs must be a positive integer, got {jobs!r}')
        interval = PLAIN_INTERVAL if interval is None else interval
        if interval < 0:
            raise ValueError(f'interval must be >= 0 seconds, got {interval!r}')
        bad = [item for item in items if not item.work > 0]
        if bad:
            raise ValueError(f'items must have work > 0, got {bad[0]}')
        self.description, self.items, self.unit, self.jobs = description, list(items), unit, jobs
        self.interval = interval
        self.say = say or (lambda line: print(line, flush=True))
        self.clock = clock or time.monotonic
        self._lock = threading.Lock()
        self._begin = self.clock()
        self._state = [WAITING] * len(self.items)
        self._counts = dict.fromkeys(FINAL, 0)
        self._started: Dict[int, float] = {}  # item in flight -> its start time
        kinds = {item.kind for item in self.items}
        self._seconds = dict.fromkeys(kinds, 0.0)  # kind -> measured seconds
        self._work = dict.fromkeys(kinds, 0.0)  # kind -> work of its measured items
        self._next = 0  # the next item ``track`` starts
        self._last_line = -float('inf')
        self._held = False  # a plain line was due but held back by the interval
        self.display = None
        if show and (console is not None or sys.stdout.isatty()):
            self.display = _RichDisplay(self, console, live)
            self._bar = self.display.add_task(description, total=len(self.items))
        self.plain = show and self.display is None

    # ------------------------------------------------------------------------- events

    def __enter__(self) -> 'Progress':
        self._begin = self.clock()
        if self.display is not None:
            self.display.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.display is not None:
            self.display.update(self._bar, completed=self.finished)
            self.display.stop()
        elif self.plain and self._held:
            self.say(self.line())

    def start(self, index: int) -> None:
        """Item ``index`` begins (it is in flight until ``finish``)."""
        with self._lock:
            if self._state[index] != WAITING:
                raise ValueError(f'item {index} ({self.items[index].label}) was started already')
            self._state[index] = IN_FLIGHT
            self._started[index] = self.clock()
        self._changed()

    def finish(self, index: int, failed: bool = False) -> None:
        """Item ``index`` ends: measured if it was started and did not fail; never started: skipped (not
        failed) or not run (failed)."""
        with self._lock:
            if self._state[index] in FINAL:
                raise ValueError(f'item {index} ({self.items[index].label}) was finished already')
            started = self._started.pop(index, None)
            state = FAILED if failed else SKIPPED if started is None else MEASURED
            if state == MEASURED:
                item = self.items[index]
                self._seconds[item.kind] += self.clock() - started
                self._work[item.kind] += item.work
            self._state[index] = state
            self._counts[state] += 1
        self._changed()

    def track(self, iterable: Iterable[Any]) -> Iterator[Any]:
        """Yield from ``iterable``, each element as the next item: started when yielded, finished when the
        next element is asked for or the iteration ends."""
        for element in iterable:
            index, self._next = self._next, self._next + 1
            self.start(index)
            yield element
            self.finish(index)

    def _changed(self) -> None:
        """Show the new state: rich's bar count (redrawn now unless ``live``), plain lines rate-bound."""
        if self.display is not None:
            self.display.update(self._bar, completed=self.finished, refresh=not self.display.live.auto_refresh)
        elif self.plain:
            with self._lock:
                now = self.clock()
                due = now - self._last_line >= self.interval
                self._held = not due
                if due:
                    self._last_line = now
            if due:
                self.say(self.line())

    # ------------------------------------------------------------------------- state

    @property
    def finished(self) -> int:
        return sum(self._counts.values())

    def in_flight(self) -> List[Tuple[str, float]]:
        """(label, seconds since its start) of each item in flight, in the items' order."""
        now = self.clock()
        with self._lock:
            return [(self.items[i].label, now - t) for i, t in sorted(self._started.items())]

    def eta(self) -> Optional[float]:
        """Seconds until every item is finished (module docstring); None before the first measurement."""
        now = self.clock()
        with self._lock:
            if self.finished == len(self.items):
                return 0.0
            if not self._counts[MEASURED]:
                return None
            overall = sum(self._seconds.values()) / sum(self._work.values())

            def cost(i: int) -> float:
                kind = self.items[i].kind
                return self.items[i].work * (self._seconds[kind] / self._work[kind] if self._work[kind] else overall)

            slots = [max(cost(i) - (now - t), 0.0) for i, t in self._started.items()]
            slots += [0.0] * max(self.jobs - len(slots), 0)
            heapq.heapify(slots)
            for i, state in enumerate(self._state):
                if state == WAITING:
                    heapq.heappush(slots, heapq.heappop(slots) + cost(i))
            return max(slots)

    def status(self) -> str:
        """'3/10 runs done (1 skipped, 1 failed), elapsed 0:12:31, ETA 0:40:00'."""
        with self._lock:
            counts = [f'{self._counts[state]} {state}' for state in (SKIPPED, FAILED) if self._counts[state]]
        eta = self.eta()
        text = f'{self.finished}/{len(self.items)} {self.unit} done'
        text += f' ({", ".join(counts)})' if counts else ''
        return (f'{text}, elapsed {duration(self.clock() - self._begin)}, '
                f'ETA {"unknown" if eta is None else duration(eta)}')

    def line(self) -> str:
        """The plain line: time of day, description, ``status``, the items in flight."""
        flight = self.in_flight()
        line = f'[{time.strftime("%H:%M:%S")}] {self.description}: {self.status()}'
        if flight:
            line += f'; {len(flight)} in flight: ' + ', '.join(f'{label} ({duration(age)})' for label, age in flight)
        return line
