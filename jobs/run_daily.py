"""`policyrank run-daily`: the whole daily run for one date, each step idempotent for that date."""

from __future__ import annotations

import datetime as dt
import sys

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import candidates, generate, score
from jobs.runlog import log
from jobs.settings import Settings
from jobs.tables_io import table_exists


def run(spark: SparkSession, settings: Settings, run_date: dt.date, *, run_id: str) -> dict:
    summary: dict = {"run_id": run_id}
    inputs = [settings.table_path(t) for t in ("members", "jobs")]
    if settings.world.generate_if_missing and not all(table_exists(spark, p) for p in inputs):
        log("run-daily: no members/jobs tables yet; generating the sample world")
        summary["generate"] = generate.run(spark, settings, run_id=run_id)
    summary["candidates"] = candidates.run(spark, settings, run_date, run_id=run_id)
    summary["score"] = score.run(spark, settings, run_date, run_id=run_id)
    day = (
        spark.read.format("delta")
        .load(settings.table_path("scores"))
        .where(F.col("run_date") == run_date)
    )
    summary["score_stats"] = (
        day.agg(
            F.min("score").alias("min"), F.avg("score").alias("mean"), F.max("score").alias("max")
        )
        .first()
        .asDict()
    )
    return summary


def format_summary(settings: Settings, run_date: dt.date, summary: dict) -> str:
    c, s, st = summary["candidates"], summary["score"], summary["score_stats"]
    lines = [
        f"policyrank run-daily {run_date} (run {summary['run_id']})",
        "",
        "Delta tables:",
        *[
            f"  {t:<11} {settings.table_path(t)}"
            for t in ("members", "jobs", "truth", "candidates", "scores", "quarantine")
        ],
        "",
        f"members     {c['members_in']:>9,} in = {c['members_passed']:,} passed + "
        f"{c['members_quarantined']:,} quarantined",
        f"jobs        {c['jobs_in']:>9,} in = {c['jobs_passed']:,} passed + "
        f"{c['jobs_quarantined']:,} quarantined",
        f"candidates  {c['candidates']:>9,} pairs for {c['members_with_candidates']:,} members",
        f"scored      {s['scored']:>9,} pairs (+ {s['quarantined']:,} quarantined), "
        f"kept {s['scores']:,} (top {settings.scoring.top_n} per member)",
        f"model       {s['model_version']}",
        f"score       min {st['min']:.4f}  mean {st['mean']:.4f}  max {st['max']:.4f}",
        "",
        "Query them with Spark SQL:",
        f"  SELECT * FROM delta.`{settings.table_path('scores')}` WHERE run_date = '{run_date}'",
        "or without Spark:",
        f'  python -c "from deltalake import DeltaTable; '
        f"print(DeltaTable('{settings.table_path('scores')}')"
        '.to_pyarrow_dataset().to_table().to_pandas().head())"',
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    from jobs.cli import main

    main(["run-daily", *sys.argv[1:]])
