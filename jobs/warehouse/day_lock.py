"""Lock files in ``<warehouse>/_locks``: one daily run per date, and no VACUUM during a write.

One daily run per date at a time: a lock file per date, held for the whole run.

Two runs of the same date would each replace that date's rows table by table; interleaved, the
day could hold one run's candidates and the other's scores. The second run therefore stops
before it writes anything, naming the run that holds the date. Runs of different dates do not
wait for each other: every table is partitioned by ``run_date`` and each write replaces only its
own date, which Delta's optimistic concurrency lets commit side by side.

The lock is an advisory ``flock`` on the driver's file system (``<warehouse>/_locks``), which the
kernel releases when the holder dies, even by SIGKILL, so a killed run never leaves a stale lock.

The warehouse lock (``warehouse.lock``) keeps ``maintain`` from deleting files a write still
needs: every writing run holds it shared, ``maintain`` alone (it waits for the writes under way,
and a write waits for it), and run-daily's own maintenance converts its run's shared hold without
waiting, or skips. A warehouse that is not on the local file system has no lock.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import IO

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
    with _open(path) as handle:
        if not _try(handle, fcntl.LOCK_EX):
            raise PolicyrankError(
                f"run-daily {run_date} is already running ({_holder(_read(handle))}); this run "
                "stopped before writing anything: rerun the date after that one ends"
            )
        _claim(handle, run_id)
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


# ---------------------------------------------------------------- the warehouse lock
#
# Every writing run holds ``<warehouse>/_locks/warehouse.lock`` SHARED for its whole run; a
# VACUUM holds it EXCLUSIVE, so it never deletes the uncommitted files of a write under way.

_POLL_S = 0.5  # flock has no timeout: a waiter retries the non-blocking call this often


@dataclass
class _Hold:
    path: Path
    handle: IO[str]


# This thread's shared hold (one per run: run-daily dates run as threads of one process), so
# run-daily's own maintenance can convert it instead of waiting for itself.
_SHARED: ContextVar[_Hold | None] = ContextVar("policyrank_warehouse_hold", default=None)


def warehouse_lock_path(settings: Settings) -> Path | None:
    """The warehouse's lock file, or None where the warehouse is not on the local file system."""
    root = local_path(settings.warehouse)
    return None if root is None else root / "_locks" / "warehouse.lock"


@contextmanager
def hold_warehouse(settings: Settings, *, run_id: str) -> Iterator[None]:
    """Hold the warehouse lock shared for a writing run; waits (up to
    ``maintenance.lock_wait_s``) while ``maintain`` holds it."""
    path = warehouse_lock_path(settings)
    held = _SHARED.get()
    if path is None or (held is not None and held.path == path):
        yield  # no lock on a remote warehouse (maintain says so); or held already by this run
        return
    with _open(path) as handle:
        _acquire(
            handle,
            fcntl.LOCK_SH,
            settings.maintenance.lock_wait_s,
            lambda: f"run {run_id}: waiting for maintain ({_holder(_read(handle))}) to end",
            f"run {run_id}",
        )
        token = _SHARED.set(_Hold(path, handle))
        try:
            yield
        finally:
            _SHARED.reset(token)


@contextmanager
def hold_warehouse_exclusive(settings: Settings, *, run_id: str) -> Iterator[None]:
    """Hold the warehouse lock alone (``maintain``): waits up to ``maintenance.lock_wait_s``
    for the running writes to end, then raises."""
    path = warehouse_lock_path(settings)
    if path is None:
        _say_no_lock(settings)
        yield
        return
    held = _SHARED.get()
    if held is not None and held.path == path:
        raise PolicyrankError("maintain inside a writing run would wait for itself")
    with _open(path) as handle:
        _acquire(
            handle,
            fcntl.LOCK_EX,
            settings.maintenance.lock_wait_s,
            lambda: f"maintain: waiting for the runs writing the warehouse to end ({path})",
            f"maintain {run_id}",
        )
        _claim(handle, run_id)
        try:
            yield
        finally:
            handle.truncate(0)


@contextmanager
def try_warehouse_exclusive(settings: Settings, *, run_id: str) -> Iterator[bool]:
    """The warehouse lock alone without waiting (run-daily's own maintenance): yields whether
    it was taken. This thread's shared hold is converted, and shared again afterwards."""
    path = warehouse_lock_path(settings)
    if path is None:
        _say_no_lock(settings)
        yield True
        return
    held = _SHARED.get()
    mine = held is not None and held.path == path
    with nullcontext(held.handle) if mine else _open(path) as handle:
        alone = _try(handle, fcntl.LOCK_EX)
        if alone:
            _claim(handle, run_id)
        elif mine:  # Linux drops the shared lock before a conversion that fails: take it back
            _acquire(
                handle,
                fcntl.LOCK_SH,
                None,
                lambda: f"run {run_id}: waiting for maintain to end",
                "",
            )
        try:
            yield alone
        finally:
            if alone:
                handle.truncate(0)
                if mine:
                    fcntl.flock(handle, fcntl.LOCK_SH)  # down from alone: never waits


def _say_no_lock(settings: Settings) -> None:
    log(
        f"maintain: no lock taken on {settings.warehouse} (not on the local file system): it "
        "cannot wait for running writes, and a keep_days under 7 is refused there unless allowed"
    )


@contextmanager
def _open(path: Path) -> Iterator[IO[str]]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:  # closing it releases the lock
        yield handle


def _try(handle: IO[str], mode: int) -> bool:
    try:
        fcntl.flock(handle, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _acquire(
    handle: IO[str], mode: int, wait_s: float | None, waiting: Callable[[], str], who: str
) -> None:
    """Take ``mode``, saying once what it waits for; raise after ``wait_s`` (None: no limit)."""
    if _try(handle, mode):
        return
    if wait_s is not None and wait_s <= 0:
        raise _gave_up(handle, mode, wait_s, who)
    limit = "" if wait_s is None else f"; up to {wait_s:g} s (maintenance.lock_wait_s)"
    log(waiting() + limit)
    deadline = None if wait_s is None else time.monotonic() + wait_s
    while not _try(handle, mode):
        if deadline is not None and time.monotonic() > deadline:
            raise _gave_up(handle, mode, wait_s, who)
        time.sleep(_POLL_S)


def _gave_up(handle: IO[str], mode: int, wait_s: float | None, who: str) -> PolicyrankError:
    kind = "alone" if mode == fcntl.LOCK_EX else "shared"
    return PolicyrankError(
        f"{who} stopped after waiting {wait_s:g} s to hold {handle.name} {kind} "
        "(maintenance.lock_wait_s); nothing was changed: run it again once the other runs end"
    )


def _claim(handle: IO[str], run_id: str) -> None:
    """Name the exclusive holder in the file, for the runs that wait for it or are refused."""
    handle.seek(0)
    handle.truncate()
    holder = {"pid": os.getpid(), "run_id": run_id, "since": dt.datetime.now(dt.UTC)}
    handle.write(json.dumps(holder, default=str))
    handle.flush()


def _read(handle: IO[str]) -> str:
    handle.seek(0)
    return handle.read()
