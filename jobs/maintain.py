"""`policyrank maintain`: compact the warehouse's Delta tables and vacuum old files.

Daily ``replaceWhere`` writes add small files and keep every replaced file for time travel.
Maintenance rewrites small files into larger ones (``OPTIMIZE``, bin-packing) and deletes files
no version of the last ``maintenance.keep_days`` days still needs (``VACUUM``), so time travel
reaches back at least that far and no further. ``run-daily`` runs it after scoring on
``maintenance.weekday`` (0 = Monday ... 6 = Sunday; null: never, run it on demand).

A VACUUM also deletes files a write under way has written but not committed yet, once they are
older than the retention: Delta's 7-day default keeps them, a shorter ``keep_days`` needs
``--allow-short-retention`` (run-daily: ``maintenance.allow_short_retention``). Either way
``maintain`` holds the warehouse lock alone (:mod:`jobs.warehouse.day_lock`): it waits up to
``maintenance.lock_wait_s`` for the writing runs to end, and new writes wait for it. run-daily's
own maintenance does not wait: while another run writes, it skips, saying so. A warehouse that is
not on the local file system has no lock: a short retention there is the operator's word that
nothing writes. The VACUUM's settings go to a session of its own (``spark.newSession()``: same
SparkContext, its own SQL conf), never to the session other threads write with.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from pyspark.sql import SparkSession

from jobs.config.settings import MaintenanceSettings, Settings
from jobs.runtime.errors import PolicyrankError
from jobs.runtime.runlog import log
from jobs.runtime.spark_session import session_like
from jobs.warehouse.day_lock import hold_warehouse_exclusive, try_warehouse_exclusive
from jobs.warehouse.tables import Warehouse
from schemas.tables import TABLES

# Delta refuses a VACUUM retention under its 7-day default while this check is on; VACUUM reads
# it from the session that runs it, so it is turned off in the maintenance session only.
_RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
DELTA_DEFAULT_DAYS = 7
# VACUUM lists files with this many tasks (Spark's default, 10,000, made a one-table VACUUM take
# over a minute on 2 cores); a few tasks per core lists a daily table just as fast.
_LISTING_TASKS = "spark.sql.sources.parallelPartitionDiscovery.parallelism"


def is_due(settings: Settings, run_date: dt.date) -> bool:
    """Whether ``run-daily`` maintains the warehouse on ``run_date``."""
    weekday = settings.maintenance.weekday
    return weekday is not None and run_date.weekday() == weekday


def checked_keep_days(conf: MaintenanceSettings, allow_short: bool, flag: str) -> int:
    """``keep_days``, or one line naming ``flag`` when it is under Delta's default unasked."""
    keep = conf.keep_days
    if keep < 0:
        raise PolicyrankError(f"maintenance.keep_days must be >= 0, got {keep}")
    if keep < DELTA_DEFAULT_DAYS and not allow_short:
        raise PolicyrankError(
            f"maintenance.keep_days={keep} is under Delta's {DELTA_DEFAULT_DAYS}-day default, "
            "short enough to delete files a running write has not committed yet: nothing vacuumed; "
            f"use {flag} to vacuum that short"
        )
    return keep


def maintenance_session(spark: SparkSession, keep_days: int) -> SparkSession:
    """A session for the VACUUM alone: it shares ``spark``'s SparkContext, not its SQL conf."""
    own = session_like(spark)  # the caller's SQL settings, changed below in `own` only
    own.conf.set(_LISTING_TASKS, str(max(8, 4 * spark.sparkContext.defaultParallelism)))
    if keep_days < DELTA_DEFAULT_DAYS:  # allowed by the caller: checked_keep_days
        own.conf.set(_RETENTION_CHECK, "false")
    return own


def maintain_table(wh: Warehouse, name: str, keep_days: int) -> dict:
    """OPTIMIZE then VACUUM one table (``wh`` on the maintenance session); the file counts."""
    table = wh.delta(name)
    before = table.detail().first()["numFiles"]
    # OPTIMIZE's own counts: a second detail() would rebuild the table's state again
    done = table.optimize().executeCompaction().first()["metrics"]
    compacted = before - done["numFilesRemoved"] + done["numFilesAdded"]
    wh.delta(name).vacuum(keep_days * 24.0)
    return {"files_before": before, "files_after": compacted}


def run(
    spark: SparkSession, settings: Settings, *, run_id: str, allow_short_retention: bool = False
) -> dict:
    """Maintain every table that exists, holding the warehouse lock alone; file counts per table."""
    keep = checked_keep_days(settings.maintenance, allow_short_retention, "--allow-short-retention")
    with hold_warehouse_exclusive(settings, run_id=run_id):
        return _maintain(spark, settings, keep, run_id)


def run_in_daily(spark: SparkSession, settings: Settings, *, run_id: str) -> dict | None:
    """run-daily's maintenance, inside a run holding the warehouse lock shared: it runs when no
    other run holds the lock, else it is skipped (None) with a line saying why."""
    keep = checked_keep_days(
        settings.maintenance,
        settings.maintenance.allow_short_retention,
        "maintenance.allow_short_retention=true",
    )
    with try_warehouse_exclusive(settings, run_id=run_id) as alone:
        if not alone:
            log(
                "maintain: skipped: another run is writing the warehouse (it holds the "
                "warehouse lock); run `policyrank maintain`, which waits for it, or wait a week"
            )
            return None
        return _maintain(spark, settings, keep, run_id)


def _maintain(spark: SparkSession, settings: Settings, keep: int, run_id: str) -> dict:
    done = {}
    wh = dataclasses.replace(Warehouse.of(settings), spark=maintenance_session(spark, keep))
    for name in TABLES:
        if not wh.exists(name):
            continue
        done[name] = maintain_table(wh, name, keep)
        log(
            f"maintain: {name}: {done[name]['files_before']:,} -> "
            f"{done[name]['files_after']:,} live files; vacuumed files older than {keep} days"
        )
    log(f"maintain: {len(done)} tables compacted and vacuumed (run {run_id})")
    return done
