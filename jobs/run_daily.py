"""`policyrank run-daily`: the whole daily run for one date, each step idempotent for that date."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs import candidates, catalog, evaluate, judge, maintain, sample, score, student
from jobs.config.settings import Settings
from jobs.models.roles import teacher_ready
from jobs.runtime.errors import PolicyrankError
from jobs.runtime.runlog import log
from jobs.warehouse.tables import Warehouse
from jobs.warehouse.validation import Inputs


def run(
    spark: SparkSession,
    settings: Settings,
    run_date: dt.date,
    *,
    run_id: str,
    retrain: bool = False,
) -> dict:
    """candidates -> sample -> label -> (train -> evaluate -> promote) -> score.

    A missing cross_encoder judge is fine-tuned first (from ``gold_labels``). The student is
    trained, evaluated and offered for promotion when ``retrain`` is set or no production model
    exists yet; a refused student leaves production as it was (before any promotion the day is
    ranked by the prefilter). Every step replaces only this date's rows.
    """
    summary: dict = {"run_id": run_id}
    wh = Warehouse.of(settings, spark)
    # One snapshot of the inputs for the whole run, validated once.
    inputs = Inputs.read(wh, settings.validation).persist()
    log(f"run-daily: inputs {inputs.describe()} for every step of this run")
    try:
        steps(spark, settings, run_date, run_id, retrain, inputs, summary)
    finally:
        inputs.unpersist()
    day = wh.day("scores", run_date)
    summary["score_stats"] = (
        day.agg(
            F.min("score").alias("min"), F.avg("score").alias("mean"), F.max("score").alias("max")
        )
        .first()
        .asDict()
    )
    if maintain.is_due(settings, run_date):  # skipped (None) while another run writes
        done = maintain.run_in_daily(spark, settings, run_id=run_id)
        summary["maintain" if done is not None else "maintain_skipped"] = done
    if settings.catalog.database:
        summary["catalog"] = catalog.ensure_registered(spark, settings)
    return summary


def steps(
    spark: SparkSession,
    settings: Settings,
    run_date: dt.date,
    run_id: str,
    retrain: bool,
    inputs: Inputs,
    summary: dict,
) -> None:
    """The run's steps on one snapshot of the inputs; each adds its counts to ``summary``."""
    given = {"run_id": run_id, "inputs": inputs}
    summary["candidates"] = candidates.run(spark, settings, run_date, **given)
    summary["sample"] = sample.run(spark, settings, run_date, **given)
    if settings.teacher.backend == "cross_encoder" and not teacher_ready(settings):
        log("run-daily: no judge yet; fine-tuning the cross_encoder judge on the gold labels")
        summary["judge"] = judge.train_judge(spark, settings, **given)
    summary["label"] = judge.label(spark, settings, run_date, **given)
    if retrain or Warehouse.of(settings).registry().production() is None:
        summary["calibrate"] = judge.calibrate(spark, settings, run_date, **given)
        trained = student.train(spark, settings, **given)
        summary["eval"] = evaluate.evaluate(
            spark, settings, run_date, student_dir=trained["model_dir"], **given
        )
        try:
            summary["promote"] = evaluate.promote(spark, settings, run_date, run_id=run_id)
        except PolicyrankError as refused:
            log(f"run-daily: {refused}")
            summary["promote"] = {"refused": str(refused)}
    summary["score"] = score.run(spark, settings, run_date, **given)


def format_summary(settings: Settings, run_date: dt.date, summary: dict) -> str:
    c, s, st = summary["candidates"], summary["score"], summary["score_stats"]
    lab = summary["label"]
    tables = (
        "members",
        "jobs",
        "truth",
        "candidates",
        "sampled_pairs",
        "gold_labels",
        "teacher_labels",
        "eval_metrics",
        "eval_comparisons",
        "scores",
        "quarantine",
    )
    wh = Warehouse.of(settings)
    lines = [
        f"policyrank run-daily {run_date} (run {summary['run_id']})",
        "",
        "Delta tables:",
        *[f"  {t:<15} {wh.path(t)}" for t in tables],
        "",
        f"members     {c['members_in']:>9,} in = {c['members_passed']:,} passed + "
        f"{c['members_quarantined']:,} quarantined",
        f"jobs        {c['jobs_in']:>9,} in = {c['jobs_passed']:,} passed + "
        f"{c['jobs_quarantined']:,} quarantined",
        f"candidates  {c['candidates']:>9,} pairs for {c['members_with_candidates']:,} members; "
        f"{sum(c['members_without_candidates'].values()):,} valid members without any ("
        + (
            ", ".join(f"{k} {v:,}" for k, v in sorted(c["members_without_candidates"].items()))
            or "none"
        )
        + f"); {c['jobs_no_blocking_key']:,} valid jobs without a blocking key",
        f"scored      {s['scored']:>9,} pairs (+ {s['quarantined']:,} quarantined), "
        f"kept {s['scores']:,} (top {settings.scoring.top_n} per member)",
        f"labelled    {lab['labelled']:>9,} pairs (+ {lab['already_labelled']:,} already) by "
        f"{lab['teacher_model_id']}",
        f"days        candidates {c['mode']}; score {s['mode']}",
        f"model       {s['model_version']}"
        + (
            "  (no student has passed the gate yet: prefilter ordering)"
            if s["model_version"] == score.PREFILTER
            else ""
        ),
        f"score       min {st['min']:.4f}  mean {st['mean']:.4f}  max {st['max']:.4f}",
        maintenance_line(settings, summary),
        *([catalog.format_catalog(summary["catalog"])] if "catalog" in summary else []),
        "",
        *eval_lines(summary),
        *by_name_lines(summary, run_date),
        "Query them by path in any Spark session:",
        f"  SELECT * FROM delta.`{wh.path('scores')}` WHERE run_date = '{run_date}'",
        "or without Spark:",
        f'  python -c "from deltalake import DeltaTable; '
        f"print(DeltaTable('{wh.path('scores')}')"
        '.to_pyarrow_dataset().to_table().to_pandas().head())"',
    ]
    return "\n".join(lines)


def by_name_lines(summary: dict, run_date: dt.date) -> list[str]:
    result = summary.get("catalog", {})
    if not result or "error" in result:
        return []
    query = f"SELECT * FROM {result['database']}.scores WHERE run_date = '{run_date}' LIMIT 5"
    return [
        "Query them by name with spark-sql (pyspark's, from the activated venv):",
        "  " + catalog.spark_sql_command(result, query),
    ]


def maintenance_line(settings: Settings, summary: dict) -> str:
    keep = settings.maintenance.keep_days
    if "maintain_skipped" in summary:
        return "maintained  skipped today: another run was writing the warehouse"
    if "maintain" in summary:
        files = sum(t["files_after"] for t in summary["maintain"].values())
        return (
            f"maintained  {len(summary['maintain'])} tables compacted ({files:,} live files), "
            f"files older than {keep} days vacuumed"
        )
    weekday = settings.maintenance.weekday
    when = "never (run `policyrank maintain`)" if weekday is None else f"weekday {weekday}"
    return f"maintained  not today (runs on {when}; time travel keeps {keep} days)"


def eval_lines(summary: dict) -> list[str]:
    if "eval" not in summary:
        return []
    promoted = summary["promote"]
    verdict = (
        f"promoted {promoted['model_version']}"
        if "model_version" in promoted
        else promoted["refused"]
    )
    calibration = summary["calibrate"]
    return [
        f"Teacher {calibration['teacher_model_id']} against held-out gold labels:",
        judge.format_calibration(calibration["table"]),
        "",
        "Held-out evaluation (candidate lists of held-out members):",
        evaluate.format_eval(summary["eval"]["metrics"], summary["eval"]["comparisons"]),
        f"report: {summary['eval']['report']}",
        f"gate: {verdict}",
        "",
    ]
