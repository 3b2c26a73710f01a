"""`policyrank sample`: the (member, job) pairs the teacher labels for a date, drawn by
:func:`jobs.pairs.sampling.sample_pairs`, written to `sampled_pairs`."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.config.settings import Settings
from jobs.pairs.sampling import heldout_members, sample_pairs
from jobs.runtime.runlog import log
from jobs.warehouse.tables import read_table, replace_run_date
from jobs.warehouse.validation import read_validated
from schemas.tables import CANDIDATES, SAMPLED_PAIRS


def run(spark: SparkSession, settings: Settings, run_date: dt.date, *, run_id: str) -> dict:
    hint = "run `policyrank candidates --date D` first"
    candidates = read_table(spark, settings.table_path("candidates"), CANDIDATES, hint=hint).where(
        F.col("run_date") == run_date
    )
    members, jobs = read_validated(spark, settings)
    pairs = sample_pairs(
        candidates,
        members,
        jobs,
        settings.sampling,
        salt=run_date.isoformat(),
        exclude=heldout_members(members, settings),
    ).select(F.lit(run_date).alias("run_date"), "*", F.lit(run_id).alias("run_id"))
    path = settings.table_path("sampled_pairs")
    replace_run_date(pairs, path, SAMPLED_PAIRS, run_date, run_id=run_id)
    written = spark.read.format("delta").load(path).where(F.col("run_date") == run_date)
    counts = {r["source"]: r["count"] for r in written.groupBy("source").count().collect()}
    log(
        f"sample: {sum(counts.values()):,} pairs for {run_date} "
        f"({', '.join(f'{k} {v:,}' for k, v in sorted(counts.items()))}) -> {path}"
    )
    return counts
