"""Bounded caches of derived position tables (RoPE angles, sin-cos tables, attention masks).

Detection trains at thousands of distinct input sizes, so every table cache is an LRU cache
with a fixed number of entries, held at module level: all blocks of all models share it, and
a table lives once per key (grid, device, dtype and whatever else changes it), never once per
block. Tables are built directly on their device, so a cache hit costs no host-to-device copy.
Tables of a key that no later call repeats (``OneOffKey``: a random draw of one forward) never
enter a shared cache.
"""
import threading
from collections import OrderedDict
from functools import wraps
from typing import Callable, Dict

import torch

# Every cache made by ``table_cache``, by function name: tests and benchmarks check their bounds.
TABLE_CACHES: Dict[str, 'TableCache'] = {}


def build_plain(build: Callable, key: tuple):
    """``build(*key)`` as plain tensors without history, even when first asked for under
    inference_mode (evaluation), so the same table can serve a later training step."""
    with torch.inference_mode(False), torch.no_grad():
        return build(*key)


class TableCache:
    """LRU mapping from a hashable key to the tensors ``build`` makes for it, at most ``maxsize`` entries.

    Safe to call from several threads: a lock guards the entries, and is never held while building,
    so a build may call other cached builders (``rope_axial_tables`` calls ``rope_coords``) and
    builds of different keys run in parallel. Two threads missing the same key both build it; the
    first one stored is kept and returned to both (one table per key).
    """

    def __init__(self, build: Callable, maxsize: int):
        self.build = build
        self.maxsize = maxsize
        self.entries = OrderedDict()
        self.lock = threading.Lock()

    def __call__(self, *key):
        with self.lock:
            if key in self.entries:
                self.entries.move_to_end(key)
                return self.entries[key]
        value = build_plain(self.build, key)
        with self.lock:
            value = self.entries.setdefault(key, value)
            self.entries.move_to_end(key)
            if len(self.entries) > self.maxsize:
                self.entries.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self.entries)

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


class OneOffKey(tuple):
    """A key argument that no later call repeats, e.g. the random coordinate transform of one
    training forward (``mmpe.pos_embed.rope.coords_affine``). A cached builder whose last argument
    is a OneOffKey builds each table once and keeps it on the key (``tables``), not in its shared
    cache: every layer of that forward gets the same table, reusable tables are not evicted for it,
    and it is freed with the key (after the forward, or after backward with gradient checkpointing)."""

    def __new__(cls, values):
        key = super().__new__(cls, values)
        key.tables = {}
        return key


def table_cache(maxsize: int):
    """Decorate a table builder whose positional arguments are hashable (ints, tuples, devices,
    dtypes): calls are served from a shared ``TableCache``, or from the key itself when the last
    argument is a ``OneOffKey``. Under ``torch.compile`` the builder runs inside the graph instead
    (no Python-side cache in a compiled region)."""
    def decorate(build: Callable) -> Callable:
        cache = TableCache(build, maxsize)
        TABLE_CACHES[build.__qualname__] = cache

        @wraps(build)
        def cached(*key):
            if torch.compiler.is_compiling():
                return build(*key)
            if key and isinstance(key[-1], OneOffKey):
                tables, entry = key[-1].tables, (cache, key[:-1])  # not the key itself: no reference cycle
                if entry not in tables:
                    tables[entry] = build_plain(build, key)
                return tables[entry]
            return cache(*key)
        cached.cache = cache
        return cached
    return decorate
