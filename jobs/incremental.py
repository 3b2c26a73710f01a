"""Incremental days: what changed in the inputs since the latest earlier day, from Delta's change
data feed.

``candidates`` and ``score`` record, per date, the Delta versions of ``members`` and ``jobs`` they
read and a fingerprint of everything else their output depends on (``step_inputs``). A later date
starts from the latest earlier date of the same step when

- ``incremental.enabled`` is set,
- the fingerprint is the same (settings, model: a promotion means a full run),
- that date's output is still the one the record describes (same run id),
- the inputs are not older than the versions it read, and
- the change data feed between those versions and today's can be read (on for the input tables
  policyrank creates; a start version that VACUUM or the log retention removed cannot).

Else the step runs full and logs why. The changes are the ids of every member and job row
inserted, updated or deleted since: the steps redo exactly what those ids touch
(:func:`jobs.pairs.blocking.incremental_pairs`, :mod:`jobs.score`), so an incremental day writes
what a full run would (tests/test_incremental.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.config.settings import IncrementalSettings
from jobs.warehouse.tables import Warehouse
from schemas.tables import STEP_INPUTS

KEYS = {"members": "member_id", "jobs": "job_id"}


def fingerprint(**parts: object) -> str:
    """``name=hash`` of each part, ``;``-joined, so a mismatch can name what changed.

    >>> fingerprint(model="m1", cities=["oslo"])
    'cities=ab1ac0d9b89c;model=1f39ecf72d9e'
    """
    return ";".join(f"{name}={_digest(value)}" for name, value in sorted(parts.items()))


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _differs(old: str, new: str) -> str:
    a, b = (dict(p.split("=", 1) for p in f.split(";") if "=" in p) for f in (old, new))
    return ", ".join(sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))) or "it"


@dataclass(frozen=True)
class Changes:
    """The ids changed since ``since`` (the day this one starts from, written by ``run_id``)."""

    since: dt.date
    run_id: str
    members: DataFrame  # member_id
    jobs: DataFrame  # job_id
    counts: dict[str, int]

    def describe(self) -> str:
        return (
            f"since {self.since}: {self.counts['members']:,} members and {self.counts['jobs']:,} "
            "jobs changed"
        )

    def release(self) -> None:
        self.members.unpersist()
        self.jobs.unpersist()


def changes_since_last_day(
    wh: Warehouse,
    step: str,
    run_date: dt.date,
    versions: dict[str, int],
    fingerprint_: str,
    conf: IncrementalSettings,
    *,
    output: str,
) -> tuple[Changes | None, str]:
    """The changes since the latest earlier date of ``step`` whose ``output`` table still holds
    what it recorded, or None and why the step must run full."""
    if not conf.enabled:
        return None, "incremental.enabled is false"
    if not wh.exists("step_inputs") or not wh.exists(output):
        return None, "no earlier day is recorded"
    last = (
        wh.read("step_inputs", hint="")
        .where((F.col("step") == step) & (F.col("run_date") < run_date))
        .orderBy(F.desc("run_date"))
        .limit(1)
        .collect()
    )
    if not last:
        return None, "no earlier day is recorded"
    row = last[0]
    if row.fingerprint != fingerprint_:
        return None, f"{_differs(row.fingerprint, fingerprint_)} changed since {row.run_date}"
    written = wh.day(output, row.run_date).select("run_id").distinct().collect()
    if [r.run_id for r in written] != [row.run_id]:
        return None, f"{output} of {row.run_date} was rewritten after its record"
    ids, counts = {}, {}
    for table, key in KEYS.items():
        start, end = row[f"{table}_version"], versions[table]
        if end < start:
            return None, f"{table} is at version {end}, older than the {start} {row.run_date} read"
        try:
            ids[table] = _changed_ids(wh, table, key, start + 1, end)
        except Exception as error:  # noqa: BLE001 (any failure to read the feed: run full)
            for frame in ids.values():
                frame.unpersist()
            first = str(error).strip().splitlines()[0][:200] if str(error).strip() else repr(error)
            return None, (
                f"the change data feed of {table} cannot be read from version {start + 1} ({first})"
            )
        counts[table] = ids[table].count()
    return Changes(row.run_date, row.run_id, ids["members"], ids["jobs"], counts), ""


def _changed_ids(wh: Warehouse, table: str, key: str, start: int, end: int) -> DataFrame:
    """Distinct ids of the rows inserted, updated or deleted in versions ``start..end``, kept:
    read (and any error raised) here, once."""
    spark = wh.spark
    if start > end:
        return spark.createDataFrame([], f"{key} string").persist()
    feed = (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", start)
        .option("endingVersion", end)
        .load(wh.path(table))
    )
    ids = feed.select(key).distinct().persist()
    ids.count()  # raises here when the feed is missing or its files are gone
    return ids


def record(
    wh: Warehouse,
    step: str,
    run_date: dt.date,
    versions: dict[str, int],
    fingerprint_: str,
    *,
    changes: Changes | None,
    reason: str,
    run_id: str,
) -> None:
    """Replace ``step``'s lineage row of ``run_date``: written after the step's output, so a
    kill between the two leaves a record that no longer matches it (the next day runs full)."""
    row = {
        "run_date": run_date,
        "step": step,
        "members_version": versions["members"],
        "jobs_version": versions["jobs"],
        "fingerprint": fingerprint_,
        "mode": "incremental" if changes else "full",
        "reason": f"since {changes.since}" if changes else reason,
        "changed_members": changes.counts["members"] if changes else None,
        "changed_jobs": changes.counts["jobs"] if changes else None,
        "run_id": run_id,
    }
    frame = wh.spark.createDataFrame([row], STEP_INPUTS.spark_schema())
    wh.replace_day(frame, "step_inputs", run_date, run_id=run_id, where=f"step = '{step}'")
