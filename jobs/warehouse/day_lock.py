"""One daily run per date at a time: a lock file per date, held for the whole run.

Two runs of the same date would each replace that date's rows table by table; interleaved, the
day could hold one run's candidates and the other's scores. The second run therefore stops
before it writes anything, naming the run that holds the date. Runs of different dates do not
wait for each other: every table is partitioned by ``run_date`` and each write replaces only its
own date, which Delta's optimistic concurrency lets commit side by side.

The lock is an advisory ``flock`` on the driver's file system (``<warehouse>/_locks``), which the
kernel releases when the holder dies, even by SIGKILL, so a killed run never leaves a stale lock.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jobs.config.settings import Settings
from jobs.runtime.errors import PolicyrankError
from jobs.runtime.runlog import log
from jobs.warehouse.tables import local_path


def lock_path(settings: Settings, run_date: dt.date) -> Path | None:
    """The date's lock file, or None where the warehouse is not on the local file system."""
    root = local_path(settings.warehouse)
    return None if root is None else root / "_locks" / f"run-daily-{run_date}.lock"


@contextmanager
def hold_day(settings: Settings, run_date: dt.date, *, run_id: str) -> Iterator[None]:
    """Hold ``run_date`` for this process, or raise at once if another run holds it."""
    path = lock_path(settings, run_date)
    if path is None:
        log(
            f"run-daily: no date lock on {settings.warehouse}; concurrent runs of one date are "
            "refused only by Delta's conflict detection"
        )
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise PolicyrankError(
                f"run-daily {run_date} is already running ({_holder(handle.read())}); this run "
                "stopped before writing anything: rerun the date after that one ends"
            ) from None
        handle.seek(0)
        handle.truncate()
        holder = {"pid": os.getpid(), "run_id": run_id, "since": dt.datetime.now(dt.UTC)}
        handle.write(json.dumps(holder, default=str))
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)


def _holder(text: str) -> str:
    try:
        holder = json.loads(text)
        return f"run {holder['run_id']}, pid {holder['pid']}, since {holder['since']}"
    except (ValueError, KeyError):
        return "holder unknown"
