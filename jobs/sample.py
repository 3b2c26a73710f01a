"""`policyrank sample`: the (member, job) pairs the teacher labels for a date, drawn by
:func:`jobs.pairs.sampling.sample_pairs`, written to `sampled_pairs`."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.config.settings import Settings
from jobs.pairs.sampling import sample_pairs, untrained_members
from jobs.runtime.runlog import log
from jobs.warehouse.tables import Warehouse
from jobs.warehouse.validation import Inputs, held_inputs


def run(
    spark: SparkSession,
    settings: Settings,
    run_date: dt.date,
    *,
    run_id: str,
    inputs: Inputs | None = None,
) -> dict:
    hint = "run `policyrank candidates --date D` first"
    wh = Warehouse.of(settings, spark)
    candidates = wh.day("candidates", run_date, hint=hint)
    with held_inputs(wh, settings.validation, inputs) as (members, jobs):
        pairs = sample_pairs(
            candidates,
            members,
            jobs,
            settings.sampling,
            salt=run_date.isoformat(),
            exclude=untrained_members(members, settings),
        ).select(F.lit(run_date).alias("run_date"), "*", F.lit(run_id).alias("run_id"))
        wh.replace_day(pairs, "sampled_pairs", run_date, run_id=run_id)
    written = wh.day("sampled_pairs", run_date)
    counts = {r["source"]: r["count"] for r in written.groupBy("source").count().collect()}
    log(
        f"sample: {sum(counts.values()):,} pairs for {run_date} "
        f"({', '.join(f'{k} {v:,}' for k, v in sorted(counts.items()))}) "
        f"-> {wh.path('sampled_pairs')}"
    )
    return counts
