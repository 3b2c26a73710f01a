"""`policyrank maintain`: compact the warehouse's Delta tables and vacuum old files.

Daily ``replaceWhere`` writes add small files and keep every replaced file for time travel.
Maintenance rewrites small files into larger ones (``OPTIMIZE``, bin-packing) and deletes files
no version of the last ``maintenance.keep_days`` days still needs (``VACUUM``), so time travel
reaches back at least that far and no further. ``run-daily`` runs it after scoring on
``maintenance.weekday`` (0 = Monday ... 6 = Sunday; null: never, run it on demand).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import SparkSession

from jobs.config.settings import Settings
from jobs.runtime.errors import PolicyrankError
from jobs.runtime.runlog import log
from jobs.warehouse.tables import Warehouse
from schemas.tables import TABLES

# Delta refuses a VACUUM retention under its 7-day default unless this check is turned off; a
# shorter keep_days is a deliberate choice, so the check is lifted for that VACUUM only.
_RETENTION_CHECK = "spark.databricks.delta.retentionDurationCheck.enabled"
# VACUUM lists files with this many tasks (Spark's default, 10,000, made a one-table VACUUM take
# over a minute on 2 cores); a few tasks per core lists a daily table just as fast.
_LISTING_TASKS = "spark.sql.sources.parallelPartitionDiscovery.parallelism"


def is_due(settings: Settings, run_date: dt.date) -> bool:
    """Whether ``run-daily`` maintains the warehouse on ``run_date``."""
    weekday = settings.maintenance.weekday
    return weekday is not None and run_date.weekday() == weekday


def maintain_table(wh: Warehouse, name: str, keep_days: int) -> dict:
    """OPTIMIZE then VACUUM one table; the file counts before and after."""
    spark = wh.spark
    table = wh.delta(name)
    before = table.detail().first()["numFiles"]
    table.optimize().executeCompaction()
    compacted = wh.delta(name).detail().first()["numFiles"]
    saved = {key: spark.conf.get(key, None) for key in (_RETENTION_CHECK, _LISTING_TASKS)}
    if keep_days < 7:
        spark.conf.set(_RETENTION_CHECK, "false")
    spark.conf.set(_LISTING_TASKS, str(max(8, 4 * spark.sparkContext.defaultParallelism)))
    try:
        table.vacuum(keep_days * 24.0)
    finally:
        for key, value in saved.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
    return {"files_before": before, "files_after": compacted}


def run(spark: SparkSession, settings: Settings, *, run_id: str) -> dict:
    """Maintain every table of the warehouse that exists; returns file counts per table."""
    keep = settings.maintenance.keep_days
    if keep < 0:
        raise PolicyrankError(f"maintenance.keep_days must be >= 0, got {keep}")
    done = {}
    wh = Warehouse.of(settings, spark)
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
