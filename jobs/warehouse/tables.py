"""Delta I/O at the edges of every job: read a table, replace one run date, overwrite a snapshot."""

from __future__ import annotations

import datetime as dt
import os

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.runtime.errors import PolicyrankError
from jobs.runtime.faults import inject_write_fault
from schemas.tables import QUARANTINE, Table


def table_exists(spark: SparkSession, path: str) -> bool:
    if "://" not in path and not os.path.isdir(os.path.join(path, "_delta_log")):
        return False
    return DeltaTable.isDeltaTable(spark, path)


def read_table(spark: SparkSession, path: str, table: Table, *, hint: str) -> DataFrame:
    """Read a Delta table, or fail with one line saying how to create it."""
    if not table_exists(spark, path):
        raise PolicyrankError(f"input table '{table.name}' not found at {path}: {hint}")
    return spark.read.format("delta").load(path)


def overwrite_snapshot(df: DataFrame, path: str, table: Table, *, run_id: str) -> None:
    """Replace a whole snapshot table (inputs of the synthetic world) atomically."""
    (
        df.select(*table.names)
        .write.format("delta")
        .mode("overwrite")
        .option("overwriteSchema", "true")
        .option("userMetadata", run_id)
        .save(path)
    )


def replace_run_date(
    df: DataFrame, path: str, table: Table, run_date: dt.date, *, run_id: str, where: str = ""
) -> None:
    """Atomically replace the rows of one run date (and ``where``), leaving other dates untouched.

    ``replaceWhere`` makes Delta check that every written row matches the predicate, so a rerun of
    a date can neither duplicate rows nor touch another date.
    """
    predicate = f"run_date = DATE'{run_date.isoformat()}'" + (f" AND {where}" if where else "")
    (
        inject_write_fault(df.select(*table.names), table.name)
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", predicate)
        .option("userMetadata", run_id)
        .partitionBy(*table.partition_by)
        .save(path)
    )


def replace_quarantine(
    rows: DataFrame, path: str, run_date: dt.date, stage: str, *, run_id: str
) -> DataFrame:
    """Replace ``stage``'s quarantine rows of ``run_date`` with ``rows`` (``source_table,
    entity_id, reason, record``); returns what was written, for counting."""
    out = rows.select(
        F.lit(run_date).alias("run_date"),
        F.lit(stage).alias("stage"),
        "*",
        F.lit(run_id).alias("run_id"),
    )
    replace_run_date(out, path, QUARANTINE, run_date, run_id=run_id, where=f"stage = '{stage}'")
    return out
