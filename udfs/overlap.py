"""Overlap the CPU's preparation of the next batch with the device's work on this one."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


def map_ahead(
    fn: Callable[[In], Out], items: Iterable[In], *, enabled: bool = True
) -> Iterator[Out]:
    """``map(fn, items)``, but ``fn`` of the next item runs in one background thread while the
    caller works on the current result. Order is kept and an error in ``fn`` is raised where its
    result is taken. With ``enabled=False`` (CPU scoring, where a second thread would only fight
    the model for the same cores) it is plain ``map``.

    >>> list(map_ahead(lambda x: x * x, range(4)))
    [0, 1, 4, 9]
    """
    if not enabled:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(1, thread_name_prefix="policyrank-prepare") as pool:
        pending = None
        for item in items:
            submitted = pool.submit(fn, item)
            if pending is not None:
                yield pending.result()
            pending = submitted
        if pending is not None:
            yield pending.result()
