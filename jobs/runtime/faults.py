"""Test-only fault injection for the fault tests; inert unless ``POLICYRANK_FAULT`` is set.

``POLICYRANK_FAULT=<action>:<table>:<partition>[:<seconds>]`` acts on one task of the Delta write
of ``<table>`` (``Warehouse.replace_day`` and ``Warehouse.append`` in
:mod:`jobs.warehouse.tables`):

- ``stall``: the task waits ``<seconds>`` before passing its rows on, while the write's other
  tasks finish their files, so a test can SIGKILL the driver with files written and nothing
  committed (the write needs more than one task: turn off AQE's partition coalescing), or hold
  a write open while another run commits; the wait ends early once the file
  ``POLICYRANK_FAULT_RELEASE`` names exists;
- ``fail``: the task's first attempt raises in the Python worker; Spark retries it (with
  ``local[N,F]`` or a cluster's ``spark.task.maxFailures``) and the output must not change.

Each fault that fires appends a line to the file ``POLICYRANK_FAULT_LOG`` names (if set): the
workers' own output goes to the JVM's stderr, which a test in the driver's process cannot read.

``POLICYRANK_FAULT=kill:<point>`` instead crashes the process at a driver-side write point
(:func:`crash_point`): SIGKILL, so no ``finally``, ``atexit`` or buffered flush runs, as in a
real crash. The points: ``student-publish`` (a model folder written, not renamed into place),
``promote-pointer`` (the new pointer written to its temp file, not swapped in),
``promote-history`` (the pointer swapped, its history line not appended) and
``catalog-register`` (one table registered in the metastore, the rest and ``registered.json``
not).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pyarrow as pa
from pyspark import TaskContext
from pyspark.sql import DataFrame

from jobs.runtime.runlog import log

ENV = "POLICYRANK_FAULT"
LOG_ENV = "POLICYRANK_FAULT_LOG"
RELEASE_ENV = "POLICYRANK_FAULT_RELEASE"


def inject_write_fault(df: DataFrame, table: str) -> DataFrame:
    """``df`` unchanged, or with the fault ``POLICYRANK_FAULT`` names for ``table``'s write."""
    spec = os.environ.get(ENV, "")
    if not spec or spec.startswith("kill:"):  # a crash point's, not a write's
        return df
    action, target, partition, *rest = spec.split(":")
    if target != table:
        return df
    if action not in ("stall", "fail"):
        raise ValueError(f"{ENV}={spec!r}: action must be stall or fail")
    log(f"TEST FAULT {ENV}={spec}: injected into the write of {table}")
    seconds = float(rest[0]) if rest else 0.0
    record = os.environ.get(LOG_ENV, "")
    release = os.environ.get(RELEASE_ENV, "")

    def fired(what: str, attempt: int) -> None:
        if record:
            with open(record, "a") as out:
                out.write(f"{what} partition {partition} attempt {attempt}\n")

    def faulty(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        task = TaskContext.get()
        hit = task is not None and task.partitionId() == int(partition)
        if hit and action == "fail" and task.attemptNumber() == 0:
            fired("fail", task.attemptNumber())
            raise RuntimeError(f"{ENV}: first attempt of partition {partition} fails (test)")
        if hit and action == "stall":
            fired("stall", task.attemptNumber())
            end = time.monotonic() + seconds
            while time.monotonic() < end and not (release and os.path.exists(release)):
                time.sleep(0.1)
        yield from batches

    return df.mapInArrow(faulty, df.schema)


def crash_point(name: str, *also: int) -> None:
    """SIGKILL this process (and first the processes ``also`` names, e.g. the JVM this driver
    started) when ``POLICYRANK_FAULT=kill:<name>``; nothing otherwise."""
    spec = os.environ.get(ENV, "")
    if spec != f"kill:{name}":
        return
    log(f"TEST FAULT {ENV}={spec}: SIGKILL at {name}")
    if record := os.environ.get(LOG_ENV, ""):
        with open(record, "a") as out:
            out.write(f"kill {name} pid {os.getpid()}\n")
    for pid in also:
        os.kill(pid, signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)
