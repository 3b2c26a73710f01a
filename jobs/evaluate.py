"""`policyrank evaluate` and `policyrank promote`.

Evaluate: the student, the teacher, the production model and three baselines -- the ``rules``
baseline (the policy as rules over the declared fields, :mod:`udfs.policy_rules`), the candidate
``prefilter`` ordering the student re-ranks and a ``random`` ordering -- rank the candidate lists
of held-out members (:mod:`jobs.quality.splits`: never sampled or trained on), and
are scored against the held-out **gold** grades. When the simulator's ``true_grades`` table
exists, the same figures are reported against the hidden truth as well. The student is compared
with each baseline by a paired member bootstrap (``eval_comparisons``).

Promote: the gate reads the gold comparisons only, so a real warehouse (members, jobs, a policy,
human gold labels, a teacher) can evaluate and promote without the simulator.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.config.policy import load_policy
from jobs.config.settings import EvalSettings, GateSettings, Settings
from jobs.models.cards import model_version
from jobs.models.inference import grade_model, label_pairs, scored_pairs
from jobs.models.roles import (
    GOLD_HINT,
    STUDENTS,
    latest_student,
    rules_config,
    teacher_config,
    teacher_version,
)
from jobs.pairs.sampling import member_segments
from jobs.quality import metrics
from jobs.quality.report import write_report
from jobs.quality.splits import is_heldout
from jobs.runtime.errors import PolicyrankError
from jobs.runtime.runlog import log
from jobs.warehouse.tables import Warehouse
from jobs.warehouse.validation import Inputs, held_inputs
from schemas.tables import EVAL_COMPARISONS, EVAL_METRICS, TRUE_GRADES
from udfs import policy_rules
from udfs.teacher import TeacherConfig

K = 10  # eval_metrics' columns are @10
NDCG = f"ndcg_at_{K}"
BASELINES = ("rules", "prefilter", "random", "production", "teacher")


def eval_pairs(wh: Warehouse, conf: EvalSettings, run_date: dt.date) -> DataFrame:
    """Candidate pairs (with ``prefilter_score``) of held-out gold members, at most
    ``eval.max_members`` of them (by hash order)."""
    gold = wh.read("gold_labels", hint=GOLD_HINT)
    members = (
        gold.where(is_heldout(conf))
        .select("member_id")
        .distinct()
        .orderBy(F.xxhash64("member_id"), "member_id")
        .limit(conf.max_members)
    )
    candidates = wh.day("candidates", run_date, hint="run `policyrank candidates --date D` first")
    return candidates.join(members, "member_id").select("member_id", "job_id", "prefilter_score")


def graded_frame(
    pairs: DataFrame, members: DataFrame, jobs: DataFrame, config: TeacherConfig
) -> pd.DataFrame:
    """``member_id, job_id, score, grade, p_ge_3, grade_probs`` of a grade model."""
    labelled, _ = label_pairs(pairs.select("member_id", "job_id"), members, jobs, config)
    out = labelled.select(
        "member_id",
        "job_id",
        F.col("expected_grade").alias("score"),
        "grade",
        (F.col("grade_probs")[3] + F.col("grade_probs")[4]).cast("double").alias("p_ge_3"),
        "grade_probs",
    ).toPandas()
    out["grade_probs"] = out.grade_probs.map(np.asarray)
    return out


def model_frame(
    pairs: DataFrame, members: DataFrame, jobs: DataFrame, model_dir: Path, settings: Settings
) -> pd.DataFrame:
    """A student folder's scores on the pairs (with grades when it is a grade model)."""
    config = grade_model(model_dir, settings)
    if config is not None:
        return graded_frame(pairs, members, jobs, config)
    scored, _ = scored_pairs(
        pairs.select("member_id", "job_id"), members, jobs, model_dir, settings
    )
    return scored.toPandas()


def baseline_frames(pairs: pd.DataFrame, seed: int) -> dict[str, pd.DataFrame]:
    """The two orderings that cost nothing: the candidate prefilter and a seeded random one."""
    keys = pairs.member_id + "|" + pairs.job_id + f"|{seed}"
    random = pd.util.hash_pandas_object(keys, index=False).to_numpy() / float(2**64)
    return {
        "prefilter": pairs.assign(score=pairs.prefilter_score)[["member_id", "job_id", "score"]],
        "random": pairs.assign(score=random)[["member_id", "job_id", "score"]],
    }


def labels_frame(wh: Warehouse, members: DataFrame, pairs: DataFrame) -> pd.DataFrame:
    """``member_id, job_id, gold_grade, true_grade, slice`` for the evaluation pairs (the slice
    is the valid member's band); the true grade only when the simulator's ``true_grades`` table
    exists (else NaN)."""
    gold = wh.read("gold_labels", hint=GOLD_HINT)
    labelled = pairs.select("member_id", "job_id").join(
        gold.select("member_id", "job_id", "gold_grade"), ["member_id", "job_id"], "left"
    )
    if wh.exists("true_grades"):
        truth = wh.read("true_grades", hint="").select(*TRUE_GRADES.names)
        labelled = labelled.join(truth, ["member_id", "job_id"], "left")
    else:
        labelled = labelled.withColumn("true_grade", F.lit(None).cast("int"))
    band = F.concat(F.lit("band:"), F.split("stratum", r"\|").getItem(1))
    segments = member_segments(members).select("member_id", band.alias("slice"))
    out = labelled.join(segments, "member_id", "left").toPandas()
    out["slice"] = out["slice"].fillna("band:unknown")
    return out


# ---------------------------------------------------------------- pure: frames in, tables out


def metrics_table(
    frames: dict[str, pd.DataFrame],
    labels: pd.DataFrame,
    k: int = K,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """``model, label_source, slice, members, pairs, <metrics>, ndcg_at_k_ci_low/high`` for
    every model frame against each label source that has labels (gold always; truth when
    present). Teacher agreement (tau, KL) is measured against the ``teacher`` frame; the NDCG
    interval is a member bootstrap (``n_boot`` draws) of each slice."""
    teacher = frames["teacher"][["member_id", "job_id", "score", "grade_probs"]].rename(
        columns={"score": "teacher_score", "grade_probs": "teacher_probs"}
    )
    sources = {"gold": "gold_grade", "truth": "true_grade"}
    rows = []
    for name, frame in frames.items():
        data = frame.merge(labels, on=["member_id", "job_id"], how="inner").merge(
            teacher, on=["member_id", "job_id"], how="left"
        )
        for source, column in sources.items():
            if data[column].notna().sum() == 0:
                continue
            table = metrics.evaluate_by(data, by="slice", k=k, label=column)
            bounds = {
                part: metrics.bootstrap_interval(
                    metrics.ndcg_by_member(frame_part, k, column), n_boot=n_boot, seed=seed
                )
                for part, frame_part in [
                    *data.dropna(subset=[column]).groupby("slice"),
                    (metrics.OVERALL, data.dropna(subset=[column])),
                ]
            }
            low, high = zip(*(bounds[s] for s in table.slice), strict=True)
            table[f"ndcg_at_{k}_ci_low"], table[f"ndcg_at_{k}_ci_high"] = low, high
            rows.append(table.assign(model=name, label_source=source))
    return pd.concat(rows, ignore_index=True)


def comparisons_table(
    frames: dict[str, pd.DataFrame],
    labels: pd.DataFrame,
    *,
    n_boot: int,
    seed: int,
    k: int = K,
) -> pd.DataFrame:
    """The student against each baseline present: NDCG@k difference (student - baseline), and
    for the teacher also the ratio, with paired member-bootstrap 95% intervals."""
    rows = []
    for source, column in (("gold", "gold_grade"), ("truth", "true_grade")):
        if labels[column].notna().sum() == 0:
            continue
        per_member = {
            name: metrics.ndcg_by_member(
                frame.merge(labels, on=["member_id", "job_id"]).dropna(subset=[column]),
                k,
                column,
            )
            for name, frame in frames.items()
        }
        for baseline in BASELINES:
            if baseline not in per_member:
                continue
            stats = ["difference", "ratio"] if baseline == "teacher" else ["difference"]
            for statistic in stats:
                r = metrics.paired_bootstrap(
                    per_member["student"],
                    per_member[baseline],
                    statistic=statistic,
                    n_boot=n_boot,
                    seed=seed,
                )
                rows.append(
                    {
                        "baseline": baseline,
                        "label_source": source,
                        "metric": f"ndcg_at_{k}",
                        "statistic": statistic,
                        "student_value": r["a"],
                        "baseline_value": r["b"],
                        "estimate": r["estimate"],
                        "ci_low": r["ci_low"],
                        "ci_high": r["ci_high"],
                        "members": r["members"],
                    }
                )
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- the job


def evaluate(
    spark: SparkSession,
    settings: Settings,
    run_date: dt.date,
    *,
    run_id: str,
    student_dir: str | None = None,
    inputs: Inputs | None = None,
) -> dict:
    student = Path(student_dir) if student_dir else latest_student(settings)
    policy = load_policy(settings.teacher.policy_path)
    teacher = teacher_config(settings, policy)
    wh = Warehouse.of(settings, spark)
    with held_inputs(wh, settings.validation, inputs) as (members, jobs):
        pairs = eval_pairs(wh, settings.eval, run_date).cache()
        local = pairs.toPandas()
        if local.empty:
            raise PolicyrankError(
                f"no held-out gold members have candidates on {run_date}: check gold_labels "
                "and eval.heldout_share"
            )
        frames = {
            "student": model_frame(pairs, members, jobs, student, settings),
            "teacher": graded_frame(pairs, members, jobs, teacher),
            "rules": graded_frame(pairs, members, jobs, rules_config(settings)),  # declared fields
            **baseline_frames(local, settings.eval.seed),
        }
        versions = {
            "student": model_version(student),
            "teacher": teacher_version(teacher),
            "rules": policy_rules.VERSION,
            "prefilter": "prefilter",
            "random": f"random-{settings.eval.seed}",
        }
        production = wh.registry().production()
        if production and production["model_version"] != versions["student"]:
            frames["production"] = model_frame(
                pairs, members, jobs, Path(production["model_dir"]), settings
            )
            versions["production"] = production["model_version"]
        labels = labels_frame(wh, members, pairs)
        pairs.unpersist()
    table = metrics_table(
        frames, labels, n_boot=settings.eval.bootstrap_samples, seed=settings.eval.seed
    )
    table["model_version"] = table.model.map(versions)
    table["run_date"], table["run_id"] = run_date, run_id
    compared = comparisons_table(
        frames, labels, n_boot=settings.eval.bootstrap_samples, seed=settings.eval.seed
    )
    compared["model_version"] = versions["student"]
    compared["baseline_version"] = compared.baseline.map(versions)
    compared["run_date"], compared["run_id"] = run_date, run_id
    for spec, frame in ((EVAL_METRICS, table), (EVAL_COMPARISONS, compared)):
        out = spark.createDataFrame(
            frame[spec.names].astype(object).where(frame[spec.names].notna(), None),
            spec.spark_schema(),
        )
        wh.replace_day(out, spec.name, run_date, run_id=run_id)
    report = refresh_report(wh, run_date)
    log(
        f"evaluate: {len(local):,} candidate pairs of {local.member_id.nunique():,} held-out "
        f"members -> {wh.path('eval_metrics')}; report {report}"
    )
    return {"metrics": table, "comparisons": compared, "report": str(report)}


def format_eval(table: pd.DataFrame, compared: pd.DataFrame, k: int = K) -> str:
    """The overall metrics per label source and the student's comparisons, as text tables."""
    cols = [f"ndcg_at_{k}", f"poor_match_rate_at_{k}", "auc_grade_ge_3", "weighted_kappa"]
    order = ["student", "teacher", "production", "rules", "prefilter", "random"]
    lines = []
    overall = table[table.slice == metrics.OVERALL]
    for source, part in overall.groupby("label_source", sort=False):
        lines += [f"against {source} grades ({int(part.members.max())} members):"]
        lines += ["  | model | " + " | ".join(cols) + f" | {NDCG} 95% interval |"]
        lines += ["  | --- |" + " ---: |" * len(cols) + " --- |"]
        for name in [m for m in order if m in set(part.model)]:
            row = part[part.model == name].iloc[0]
            cells = ["n/a" if pd.isna(row[c]) else f"{row[c]:.3f}" for c in cols]
            low, high = row.get(f"{NDCG}_ci_low"), row.get(f"{NDCG}_ci_high")
            cells.append("n/a" if pd.isna(low) else f"[{low:.3f}, {high:.3f}]")
            lines.append(f"  | {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append("student vs baselines, NDCG@10 (paired member bootstrap, 95% interval):")
    for r in compared.itertuples():
        sign = "/" if r.statistic == "ratio" else "-"
        lines.append(
            f"  {r.label_source:<5} student {sign} {r.baseline:<10} {r.estimate:+.3f} "
            f"[{r.ci_low:+.3f}, {r.ci_high:+.3f}] ({r.members} members)"
        )
    return "\n".join(lines)


# ---------------------------------------------------------------- promotion gate


def gate_checks(
    compared: pd.DataFrame, table: pd.DataFrame, conf: GateSettings, k: int = K
) -> list[dict]:
    """The promotion checks, on held-out gold figures only (no simulator needed).

    ``compared`` holds eval_comparisons rows, ``table`` eval_metrics rows of one run.
    """
    ndcg = f"ndcg_at_{k}"
    gold = compared[(compared.label_source == "gold") & (compared.metric == ndcg)]

    def comparison(baseline: str, statistic: str = "difference") -> pd.Series | None:
        hit = gold[(gold.baseline == baseline) & (gold.statistic == statistic)]
        return hit.iloc[0] if len(hit) else None

    checks = []
    rules = comparison("rules")
    if rules is None:
        raise PolicyrankError("eval_comparisons has no gold comparison with the rules baseline")
    checks.append(
        {
            "check": "beats the rules baseline (gold NDCG@10 gain, lower 95% bound)",
            "value": float(rules.ci_low),
            "threshold": f"> {conf.min_gain_over_rules}",
            "passed": bool(rules.ci_low > conf.min_gain_over_rules),
        }
    )
    pre = comparison("prefilter")
    if pre is None:
        raise PolicyrankError("eval_comparisons has no gold comparison with the prefilter")
    checks.append(
        {
            "check": "beats the prefilter (gold NDCG@10 gain, lower 95% bound)",
            "value": float(pre.ci_low),
            "threshold": f"> {conf.min_gain_over_prefilter}",
            "passed": bool(pre.ci_low > conf.min_gain_over_prefilter),
        }
    )
    prod = comparison("production")
    if prod is not None:
        checks.append(
            {
                "check": "no regression vs production (gold NDCG@10, lower 95% bound)",
                "value": float(prod.ci_low),
                "threshold": f">= {-conf.max_regression_vs_production}",
                "passed": bool(prod.ci_low >= -conf.max_regression_vs_production),
            }
        )
    share = comparison("teacher", "ratio")
    if share is not None:
        checks.append(
            {
                "check": "teacher NDCG share (gold)",
                "value": float(share.estimate),
                "threshold": f">= {conf.min_teacher_ndcg_share}",
                "passed": bool(share.estimate >= conf.min_teacher_ndcg_share),
            }
        )
    rows = table[(table.label_source == "gold") & (table.slice != metrics.OVERALL)]
    student = rows[rows.model == "student"].set_index("slice")
    teacher = rows[rows.model == "teacher"].set_index("slice")
    drops = {
        s: teacher.loc[s, ndcg] - student.loc[s, ndcg]
        for s in student.index
        if s in teacher.index and student.loc[s, "members"] >= conf.min_stratum_members
    }
    worst = max(drops, key=drops.get) if drops else None
    checks.append(
        {
            "check": f"largest band NDCG@10 drop vs teacher ({worst or 'none large enough'})",
            "value": float(drops[worst]) if worst else 0.0,
            "threshold": f"<= {conf.max_stratum_regression}",
            "passed": bool(not worst or drops[worst] <= conf.max_stratum_regression),
        }
    )
    return checks


def promote(spark: SparkSession, settings: Settings, run_date: dt.date, *, run_id: str) -> dict:
    """Promote the evaluated student of ``run_date`` when every gate check passes."""
    hint = "run `policyrank evaluate --date D` first"
    wh = Warehouse.of(settings, spark)
    table = wh.day("eval_metrics", run_date, hint=hint).toPandas()
    compared = wh.day("eval_comparisons", run_date, hint=hint).toPandas()
    if table.empty or compared.empty:
        raise PolicyrankError(f"no evaluation for {run_date}: {hint}")
    version = compared.model_version.iloc[0]
    model_dir = wh.models_dir / STUDENTS / version
    checks = gate_checks(compared, table, settings.gate)
    registry = wh.registry()
    for c in checks:
        log(
            f"promote: {'PASS' if c['passed'] else 'FAIL'} {c['check']}: {c['value']:.3f} "
            f"(needs {c['threshold']})"
        )
    if not all(c["passed"] for c in checks):
        registry.record(
            {
                "event": "refused",
                "model_version": version,
                "checks": checks,
                "run_id": run_id,
                "run_date": run_date.isoformat(),
            }  # fmt: skip
        )
        refresh_report(wh, run_date)
        failed = "; ".join(
            f"{c['check']} {c['value']:.3f} (needs {c['threshold']})"
            for c in checks
            if not c["passed"]
        )
        raise PolicyrankError(f"promotion of {version} refused: {failed}")
    entry = registry.promote(
        version, model_dir, checks, run_id=run_id, run_date=run_date.isoformat()
    )
    refresh_report(wh, run_date)
    log(f"promote: {version} is now the production model ({registry.pointer})")
    return entry


def refresh_report(wh: Warehouse, run_date: dt.date) -> Path:
    """Write ``run_date``'s report from the Delta tables and the registry: the evaluation of the
    date, the judge's calibration (the newest on or before the date) and every evaluated date's
    history with the gate's decision. Evaluate writes it; promote writes it again with its
    decision."""
    table = wh.day("eval_metrics", run_date, hint="").toPandas()
    compared = wh.day("eval_comparisons", run_date, hint="").toPandas()
    versions = table.drop_duplicates("model").set_index("model").model_version.to_dict()
    calibration = None
    if wh.exists("judge_calibration"):
        rows = wh.read("judge_calibration", hint="").where(F.col("run_date") <= run_date)
        rows = rows.where(F.col("teacher_model_id") == versions.get("teacher", "")).toPandas()
        if not rows.empty:
            newest = rows[rows.run_date == rows.run_date.max()]
            calibration = newest.drop_duplicates("slice", keep="last")  # one prompt's rows
    history = (
        wh.read("eval_metrics", hint="")
        .where((F.col("label_source") == "gold") & (F.col("slice") == metrics.OVERALL))
        .where(F.col("run_date") <= run_date)
        .toPandas()
    )
    decisions = {
        e["run_date"]: e for e in wh.registry().history() if "run_date" in e
    }  # the newest decision of a date wins
    return write_report(
        table,
        compared,
        wh.reports_dir / f"eval-{run_date}",
        run_date,
        versions,
        calibration=calibration,
        history=history,
        decisions=decisions,
    )
