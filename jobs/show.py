"""`policyrank show [--date D]`: one day of the warehouse at a glance (the latest scored day
unless a date is given), for analysts.

Counts per table for the date, the quarantine by reason, the score distribution, the serving
model, and what changed: against the previous scored date (members and top-N pairs kept) and,
through Delta time travel, against this date's previous write when the day was rerun.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.config.settings import Settings
from jobs.runtime.errors import PolicyrankError
from jobs.warehouse.tables import Warehouse

DAILY = ("candidates", "sampled_pairs", "teacher_labels", "scores", "quarantine")


def score_summary(scores: DataFrame) -> dict:
    """Rows, members and score quantiles (min, p10, median, p90, max) of one day's scores."""
    row = scores.agg(
        F.count("*").alias("rows"),
        F.countDistinct("member_id").alias("members"),
        F.percentile_approx("score", [0.0, 0.1, 0.5, 0.9, 1.0], 1000).alias("q"),
        F.collect_set("model_version").alias("models"),
    ).first()
    return {"rows": row["rows"], "members": row["members"], "quantiles": row["q"] or [],
            "models": sorted(row["models"])}  # fmt: skip


def overlap(now: DataFrame, before: DataFrame) -> dict:
    """How two sets of (member, job) scores differ: pairs kept, added, dropped."""
    keys = ["member_id", "job_id"]
    kept = now.select(keys).intersect(before.select(keys)).count()
    return {"kept": kept, "added": now.count() - kept, "dropped": before.count() - kept}


def previous_write(wh: Warehouse, name: str, run_date: dt.date) -> int | None:
    """The table version just before the latest write of ``run_date``, if the day was written
    more than once (a rerun); None otherwise."""
    history = wh.delta(name).history().select("version", "operationParameters")
    needle = f"run_date = DATE'{run_date.isoformat()}'"
    versions = sorted(
        r["version"]
        for r in history.collect()
        if needle in str((r["operationParameters"] or {}).get("predicate", ""))
    )
    return versions[-1] - 1 if len(versions) > 1 else None


def show(spark: SparkSession, settings: Settings, run_date: dt.date | None = None) -> dict:
    """The summary of ``run_date`` (None: the latest date in ``scores``)."""
    wh = Warehouse.of(settings, spark)
    hint = "run `policyrank score` first"
    if not wh.exists("scores"):
        raise PolicyrankError(f"no scores table at {wh.path('scores')}: {hint}")
    if run_date is None:
        run_date = wh.read("scores", hint=hint).agg(F.max("run_date")).first()[0]
        if run_date is None:
            raise PolicyrankError(f"the scores table at {wh.path('scores')} is empty: {hint}")
    out: dict = {"date": run_date, "counts": {}}
    for name in DAILY:
        if wh.exists(name):
            out["counts"][name] = wh.day(name, run_date).count()
    if wh.exists("quarantine"):
        rows = wh.day("quarantine", run_date).groupBy("stage", "reason").count().collect()
        out["quarantine"] = {f"{r['stage']}/{r['reason']}": r["count"] for r in rows}
    today = wh.day("scores", run_date, hint=hint)
    out["scores"] = score_summary(today)
    earlier = (
        wh.read("scores", hint=hint).where(F.col("run_date") < run_date)
        .agg(F.max("run_date")).first()[0]
    )  # fmt: skip
    if earlier is not None:
        out["previous_date"] = earlier
        out["vs_previous_date"] = overlap(today, wh.day("scores", earlier))
    version = previous_write(wh, "scores", run_date)
    if version is not None:
        out["vs_previous_write"] = {"version": version} | overlap(
            today, wh.day("scores", run_date, version=version)
        )
    return out


def format_show(info: dict) -> str:
    s = info["scores"]
    q = " / ".join(f"{x:.3f}" for x in s["quantiles"])
    lines = [f"policyrank {info['date']}", ""]
    lines += [f"  {name:<15} {n:>9,} rows" for name, n in info["counts"].items()]
    for reason, n in sorted(info.get("quarantine", {}).items()):
        lines.append(f"    quarantine {reason}: {n:,}")
    lines += [
        "",
        f"scores: {s['rows']:,} rows for {s['members']:,} members, model {', '.join(s['models'])}",
        f"score min / p10 / median / p90 / max: {q}",
    ]
    if "vs_previous_date" in info:
        d = info["vs_previous_date"]
        lines.append(
            f"vs {info['previous_date']}: {d['kept']:,} (member, job) pairs kept, "
            f"{d['added']:,} new, {d['dropped']:,} dropped"
        )
    if "vs_previous_write" in info:
        d = info["vs_previous_write"]
        lines.append(
            f"rerun: vs this date as of version {d['version']} (time travel): {d['kept']:,} "
            f"pairs kept, {d['added']:,} new, {d['dropped']:,} dropped"
        )
    return "\n".join(lines)
