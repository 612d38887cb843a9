"""Bounded caches of derived position tables (RoPE angles, sin-cos tables, attention masks).

Detection trains at thousands of distinct input sizes, so every table cache is an LRU cache
with a fixed number of entries, held at module level: all blocks of all models share it, and
a table lives once per key (grid, device, dtype and whatever else changes it), never once per
block. Tables are built directly on their device, so a cache hit costs no host-to-device copy.
"""
from collections import OrderedDict
from functools import wraps
from typing import Callable, Dict

import torch

# Every cache made by ``table_cache``, by function name: tests and benchmarks check their bounds.
TABLE_CACHES: Dict[str, 'TableCache'] = {}


class TableCache:
    """LRU mapping from a hashable key to the tensors ``build`` makes for it, at most ``maxsize`` entries."""

    def __init__(self, build: Callable, maxsize: int):
        self.build = build
        self.maxsize = maxsize
        self.entries = OrderedDict()

    def __call__(self, *key):
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key]
        # Built as plain tensors without history, even when first asked for under inference_mode
        # (evaluation), so the same table can serve a later training step.
        with torch.inference_mode(False), torch.no_grad():
            value = self.build(*key)
        self.entries[key] = value
        if len(self.entries) > self.maxsize:
            self.entries.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self.entries)

    def clear(self) -> None:
        self.entries.clear()


def table_cache(maxsize: int):
    """Decorate a table builder whose positional arguments are hashable (ints, tuples, devices,
    dtypes): calls are served from a shared ``TableCache``. Under ``torch.compile`` the builder
    runs inside the graph instead (no Python-side cache in a compiled region)."""
    def decorate(build: Callable) -> Callable:
        cache = TableCache(build, maxsize)
        TABLE_CACHES[build.__qualname__] = cache

        @wraps(build)
        def cached(*key):
            if torch.compiler.is_compiling():
                return build(*key)
            return cache(*key)
        cached.cache = cache
        return cached
    return decorate
