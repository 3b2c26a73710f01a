"""`policyrank evaluate` and `policyrank promote`: compare student, teacher and the untrained
starting model on held-out members, against gold labels and the hidden true grades; gate the
student's promotion on those figures."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import world
from jobs.errors import PolicyrankError
from jobs.eval_report import write_report
from jobs.judge import GOLD_HINT, label_pairs, teacher_config
from jobs.metrics import evaluate_by
from jobs.models import CARD, model_version, prepare_default_student
from jobs.policy import load_policy
from jobs.registry import Registry
from jobs.runlog import log
from jobs.score import attach_fields, score_candidates, scorer_config
from jobs.settings import GateSettings, Settings
from jobs.student import latest_student
from jobs.tables_io import read_table, replace_run_date
from jobs.validation import INPUTS_HINT, read_validated
from schemas.tables import CANDIDATES, EVAL_METRICS, GOLD_LABELS, TRUTH
from udfs.teacher import TeacherConfig

K = 10  # eval_metrics' columns are @10


def heldout_pairs(spark: SparkSession, settings: Settings, run_date: dt.date) -> DataFrame:
    """Candidate pairs of held-out members (gold split), at most ``eval.max_members`` of them."""
    gold = read_table(spark, settings.table_path("gold_labels"), GOLD_LABELS, hint=GOLD_HINT)
    members = (
        gold.where("split = 'heldout'")
        .select("member_id")
        .distinct()
        .orderBy(F.xxhash64("member_id"), "member_id")
        .limit(settings.eval.max_members)
    )
    candidates = read_table(
        spark,
        settings.table_path("candidates"),
        CANDIDATES,
        hint="run `policyrank candidates --date D` first",
    )
    return (
        candidates.where(F.col("run_date") == run_date)
        .join(members, "member_id")
        .select("member_id", "job_id")
    )


def graded(
    pairs: DataFrame, members: DataFrame, jobs: DataFrame, config: TeacherConfig
) -> DataFrame:
    """``member_id, job_id, score`` (expected grade), ``grade`` and ``p_ge_3`` of a grade model."""
    labelled, _ = label_pairs(pairs, members, jobs, config)
    return labelled.select(
        "member_id",
        "job_id",
        F.col("expected_grade").alias("score"),
        "grade",
        (F.col("grade_probs")[3] + F.col("grade_probs")[4]).cast("double").alias("p_ge_3"),
    )


def evaluation_frame(
    spark: SparkSession, settings: Settings, run_date: dt.date, student_dir: Path
) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """Scored held-out pairs per model, each with true grade, gold grade, teacher score, stratum."""
    policy = load_policy(settings.teacher.policy_path)
    teacher = teacher_config(settings, policy)
    student = TeacherConfig(
        "cross_encoder",
        str(student_dir),
        settings.scoring.member_template,
        settings.scoring.job_template,
        max_length=settings.student.max_length,
        token_budget=settings.scoring.token_budget,
    )
    untrained = prepare_default_student(Path(settings.warehouse) / "models")
    members, jobs = read_validated(spark, settings)
    pairs = heldout_pairs(spark, settings, run_date).cache()
    frames = {
        "untrained": score_candidates(
            attach_fields(pairs, members, jobs, settings.scoring),
            scorer_config(settings.scoring, str(untrained)),
        ).toPandas(),
        "teacher": graded(pairs, members, jobs, teacher).toPandas(),
        "student": graded(pairs, members, jobs, student).toPandas(),
    }
    versions = {
        "untrained": model_version(untrained),
        "teacher": model_version(teacher.model_dir),
        "student": model_version(student_dir),
    }
    ids = pd.concat([frames["teacher"].member_id, frames["teacher"].job_id]).unique().tolist()
    truth = (
        read_table(spark, settings.table_path("truth"), TRUTH, hint=INPUTS_HINT)
        .where(F.col("entity_id").isin(ids))
        .toPandas()
        .set_index("entity_id")
    )
    gold = read_table(spark, settings.table_path("gold_labels"), GOLD_LABELS, hint=GOLD_HINT)
    gold = gold.select("member_id", "job_id", "gold_grade").toPandas()
    from jobs.sample import member_segments

    strata = member_segments(members).toPandas()
    teacher_scores = frames["teacher"][["member_id", "job_id", "score"]].rename(
        columns={"score": "teacher_score"}
    )
    for name, frame in frames.items():
        frame["true_grade"] = world.true_grade(
            truth.loc[frame.member_id].reset_index(), truth.loc[frame.job_id].reset_index()
        )
        frame = frame.merge(gold, on=["member_id", "job_id"], how="left")
        frame = frame.merge(teacher_scores, on=["member_id", "job_id"], how="left")
        # the occupation part of the segment: strata fine enough to gate on at sample size
        frame = frame.merge(strata, on="member_id", how="left")
        frame["stratum"] = frame.stratum.str.split("|").str[0]
        frames[name] = frame
    return frames, versions


def evaluate(
    spark: SparkSession,
    settings: Settings,
    run_date: dt.date,
    *,
    run_id: str,
    student_dir: str | None = None,
) -> dict:
    student = Path(student_dir) if student_dir else latest_student(settings)
    frames, versions = evaluation_frame(spark, settings, run_date, student)
    k = K
    by_model = {name: evaluate_by(frame, by="stratum", k=k) for name, frame in frames.items()}
    rows = pd.concat(
        [table.assign(model=name, model_version=versions[name]) for name, table in by_model.items()]
    )
    rows["run_date"], rows["run_id"] = run_date, run_id
    out = spark.createDataFrame(
        rows[EVAL_METRICS.names].replace({np.nan: None}), EVAL_METRICS.spark_schema()
    )
    replace_run_date(
        out, settings.table_path("eval_metrics"), EVAL_METRICS, run_date, run_id=run_id
    )
    report_dir = Path(settings.warehouse) / "reports" / f"eval-{run_date}"
    report = write_report(by_model, frames, report_dir, f"policyrank eval {run_date}")
    overall = rows[rows.slice == "overall"].set_index("model")
    card_path = student / CARD
    card = json.loads(card_path.read_text())
    card["eval"] = {
        "run_date": str(run_date),
        "run_id": run_id,
        **{m: overall.loc[m, metric_columns(k)].to_dict() for m in overall.index},
    }
    card_path.write_text(json.dumps(card, indent=2, default=float))
    members = frames["student"].member_id.nunique()
    log(
        f"evaluate: {len(frames['student']):,} held-out pairs of {members:,} members -> "
        f"{settings.table_path('eval_metrics')}; report {report}"
    )
    return {"table": overall, "report": str(report), "student_dir": str(student)}


def metric_columns(k: int) -> list[str]:
    return [
        f"ndcg_at_{k}",
        f"poor_match_rate_at_{k}",
        "auc_grade_ge_3",
        "weighted_kappa",
        "kendall_tau_to_teacher",
        "ece",
    ]


def format_eval(overall: pd.DataFrame, k: int) -> str:
    cols = metric_columns(k)
    lines = ["| model | " + " | ".join(cols) + " |", "| --- |" + " ---: |" * len(cols)]
    for name, row in overall.iterrows():
        cells = ["n/a" if pd.isna(row[c]) else f"{row[c]:.3f}" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------- promotion gate


def gate_checks(metrics: pd.DataFrame, conf: GateSettings, k: int = K) -> list[dict]:
    """The promotion checks for the 'student' rows of ``metrics`` against the 'teacher' rows.

    ``metrics`` holds ``model, slice, members, ndcg_at_k, poor_match_rate_at_k`` (the
    ``eval_metrics`` rows of one run).
    """
    ndcg, poor = f"ndcg_at_{k}", f"poor_match_rate_at_{k}"
    by = metrics.set_index(["model", "slice"])
    student, teacher = by.loc["student"], by.loc["teacher"]
    share = student.loc["overall", ndcg] / teacher.loc["overall", ndcg]
    strata = [
        s
        for s in student.index
        if s != "overall"
        and s in teacher.index
        and student.loc[s, "members"] >= conf.min_stratum_members
    ]
    drops = {s: teacher.loc[s, ndcg] - student.loc[s, ndcg] for s in strata}
    worst = max(drops, key=drops.get) if drops else None
    checks = [
        {
            "check": "teacher NDCG share",
            "value": float(share),
            "threshold": f">= {conf.min_teacher_ndcg_share}",
            "passed": bool(share >= conf.min_teacher_ndcg_share),
        },
        {
            "check": f"largest stratum NDCG drop ({worst})",
            "value": float(drops[worst]) if worst else 0.0,
            "threshold": f"<= {conf.max_stratum_regression}",
            "passed": bool(not worst or drops[worst] <= conf.max_stratum_regression),
        },
        {
            "check": f"poor-match rate@{k}",
            "value": float(student.loc["overall", poor]),
            "threshold": f"<= {conf.max_poor_match_rate}",
            "passed": bool(student.loc["overall", poor] <= conf.max_poor_match_rate),
        },
    ]
    return checks


def promote(spark: SparkSession, settings: Settings, run_date: dt.date, *, run_id: str) -> dict:
    """Promote the evaluated student of ``run_date`` when every gate check passes."""
    metrics = (
        read_table(
            spark,
            settings.table_path("eval_metrics"),
            EVAL_METRICS,
            hint="run `policyrank evaluate --date D` first",
        )
        .where(F.col("run_date") == run_date)
        .toPandas()
    )
    if metrics.empty:
        raise PolicyrankError(f"no eval_metrics for {run_date}: run `policyrank evaluate` first")
    version = metrics[metrics.model == "student"].model_version.iloc[0]
    model_dir = Path(settings.warehouse) / "models" / "students" / version
    checks = gate_checks(metrics, settings.gate)
    registry = Registry(Path(settings.warehouse) / "registry")
    for c in checks:
        log(
            f"promote: {'PASS' if c['passed'] else 'FAIL'} {c['check']}: {c['value']:.3f} "
            f"(needs {c['threshold']})"
        )
    if not all(c["passed"] for c in checks):
        registry.record(
            {"event": "refused", "model_version": version, "checks": checks, "run_id": run_id}
        )
        failed = "; ".join(
            f"{c['check']} {c['value']:.3f} (needs {c['threshold']})"
            for c in checks
            if not c["passed"]
        )
        raise PolicyrankError(f"promotion of {version} refused: {failed}")
    entry = registry.promote(version, model_dir, checks)
    log(f"promote: {version} is now the production model ({registry.pointer})")
    return entry
