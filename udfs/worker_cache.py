"""One model cache per Python worker, shared by the scoring and teacher UDFs.

A Spark Python worker is reused across tasks (``spark.python.worker.reuse``), so a model loaded
once serves every later task on that worker. Entries are keyed by what was asked for, the device
and the model folder's content version, so a folder replaced in place is reloaded, never served
stale; the stale model is dropped before the new one loads, so two never sit in memory at once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from udfs.devices import Placement, choose_placement

T = TypeVar("T")

_MODELS: dict[tuple, tuple[tuple, object]] = {}
_NOTE_SAID = False  # the placement note goes out once per worker, whichever GPU a task got


def content_version(model_dir: str) -> tuple:
    """(path, size, mtime) of every file under ``model_dir``: cheap to read, and it changes when
    any file is rewritten or replaced."""
    stamp = []
    for root, _, files in os.walk(model_dir):
        for name in files:
            path = os.path.join(root, name)
            try:
                info = os.stat(path)
            except OSError:  # removed while we looked: the next call sees the new state
                continue
            stamp.append((os.path.relpath(path, model_dir), info.st_size, info.st_mtime_ns))
    return tuple(sorted(stamp))


def worker_model(
    what: Hashable,
    model_dir: str,
    gpu_addresses: Sequence[str],
    load: Callable[[Placement], T],
) -> T:
    """The worker's model for ``what`` (a frozen config) on the device the task's GPU addresses
    give: loaded with ``load(placement)`` on first use or when ``model_dir``'s content changed."""
    global _NOTE_SAID
    import torch

    placement = choose_placement(gpu_addresses, torch.cuda.is_available())
    if placement.note and not _NOTE_SAID:
        _NOTE_SAID = True
        print(f"[policyrank pid={os.getpid()}] {placement.note}", file=sys.stderr, flush=True)
    key = (what, placement.device, placement.dtype_name)
    version = content_version(model_dir)
    cached = _MODELS.get(key)
    if cached is None or cached[0] != version:
        _MODELS.pop(key, None)
        # Set, not defaulted: on a GPU the tokenizer's threads keep the device fed; on CPU they
        # would fight the model's torch threads for the task's cores.
        os.environ["TOKENIZERS_PARALLELISM"] = "false" if placement.device == "cpu" else "true"
        _MODELS[key] = (version, load(placement))
    return _MODELS[key][1]  # type: ignore[return-value]
