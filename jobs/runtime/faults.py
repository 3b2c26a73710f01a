"""Test-only fault injection for the fault tests; inert unless ``POLICYRANK_FAULT`` is set.

``POLICYRANK_FAULT=<action>:<table>:<partition>[:<seconds>]`` acts on one task of the Delta write
of ``<table>`` (see ``Warehouse.replace_day`` in :mod:`jobs.warehouse.tables`):

- ``stall``: the task waits ``<seconds>`` before passing its rows on, while the write's other
  tasks finish their files, so a test can SIGKILL the driver with files written and nothing
  committed (the write needs more than one task: turn off AQE's partition coalescing);
- ``fail``: the task's first attempt raises in the Python worker; Spark retries it (with
  ``local[N,F]`` or a cluster's ``spark.task.maxFailures``) and the output must not change.

Each fault that fires appends a line to the file ``POLICYRANK_FAULT_LOG`` names (if set): the
workers' own output goes to the JVM's stderr, which a test in the driver's process cannot read.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pyarrow as pa
from pyspark import TaskContext
from pyspark.sql import DataFrame

from jobs.runtime.runlog import log

ENV = "POLICYRANK_FAULT"
LOG_ENV = "POLICYRANK_FAULT_LOG"


def inject_write_fault(df: DataFrame, table: str) -> DataFrame:
    """``df`` unchanged, or with the fault ``POLICYRANK_FAULT`` names for ``table``'s write."""
    spec = os.environ.get(ENV, "")
    if not spec:
        return df
    action, target, partition, *rest = spec.split(":")
    if target != table:
        return df
    if action not in ("stall", "fail"):
        raise ValueError(f"{ENV}={spec!r}: action must be stall or fail")
    log(f"TEST FAULT {ENV}={spec}: injected into the write of {table}")
    seconds = float(rest[0]) if rest else 0.0
    record = os.environ.get(LOG_ENV, "")

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
            time.sleep(seconds)
        yield from batches

    return df.mapInArrow(faulty, df.schema)
