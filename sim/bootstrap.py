"""The demo's inputs, made by the simulator when they are missing (``world.generate_if_missing``):
the world (``members``, ``jobs``, ``truth``), gold labels with their true grades, and the
simulated judge's folder, its error rates tuned on the validation members' gold. `policyrank
run-daily` calls this before the production steps."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from jobs.config.settings import Settings
from jobs.quality.splits import is_validation
from jobs.runtime.errors import PolicyrankError
from jobs.runtime.runlog import log
from jobs.warehouse.tables import Warehouse
from schemas.tables import TRUTH
from sim import generate, gold
from sim.judge import DEFAULT_DIR, JUDGE_FILE, JudgeProfile, tune_profile, write_judge


def prepare(spark: SparkSession, settings: Settings, run_date: dt.date, *, run_id: str) -> dict:
    summary: dict = {}
    wh = Warehouse.of(settings, spark)
    if wh.exists("truth") and wh.read("truth", hint="").columns != TRUTH.names:
        raise PolicyrankError(
            f"{wh.path('truth')} was written by an older simulator (another world and policy): "
            "start a new warehouse (remove it, or set warehouse=...) for this one"
        )
    if not all(wh.exists(t) for t in ("members", "jobs", "truth")):
        log("simulator: no members/jobs tables yet; generating the sample world")
        summary["generate"] = generate.run(spark, settings, run_id=run_id)
    if not wh.exists("gold_labels"):
        log("simulator: no gold labels yet; simulated raters grade a gold sample")
        summary["gold"] = gold.run(spark, settings, run_date, run_id=run_id)
    if settings.teacher.backend == "simulated" and not settings.teacher.model_dir:
        folder = wh.models_dir / DEFAULT_DIR
        if not (folder / JUDGE_FILE).is_file():
            profile, tuning = tuned_judge(spark, settings)
            write_judge(folder, wh.path("truth"), profile, tuning)
            log(
                f"simulator: simulated LLM judge (stand-in, reads the hidden truth) -> {folder}: "
                f"error rates x{profile.scale:.3f}, kappa {tuning['kappa']:.3f} on "
                f"{tuning['pairs']:,} validation gold pairs (target {tuning['target_kappa']})"
            )
    return summary


def tuned_judge(spark: SparkSession, settings: Settings) -> tuple[JudgeProfile, dict]:
    """The configured judge profile with its error scale tuned on the validation members' gold
    (never the held-out members': their gold reports the judge's kappa)."""
    wh = Warehouse.of(settings, spark)
    conf = vars(settings.teacher.simulated).copy()
    target = conf.pop("target_kappa")
    pairs = (
        wh.read("gold_labels", hint="")
        .where(is_validation(settings.eval))
        .select("member_id", "job_id", "gold_grade")
        .orderBy("member_id", "job_id")
        .toPandas()
    )
    ids = F.col("entity_id").isin([*pairs.member_id.unique(), *pairs.job_id.unique()])
    truth = wh.read("truth", hint="").where(ids).toPandas()
    members = _text(wh, "members", "member_id", ["headline", "summary"], pairs.member_id)
    jobs = _text(wh, "jobs", "job_id", ["title", "description"], pairs.job_id)
    profile, kappa = tune_profile(
        truth,
        members.loc[pairs.member_id].reset_index(),
        jobs.loc[pairs.job_id].reset_index(),
        pairs.gold_grade.to_numpy(np.int64),
        JudgeProfile(**conf),
        target,
    )
    tuning = {
        "target_kappa": target,
        "kappa": round(float(kappa), 4),
        "pairs": len(pairs),
        "split": "validation members",
        "base_rates": dataclasses.asdict(JudgeProfile(**conf)),
    }
    return profile, tuning


def _text(wh: Warehouse, table: str, key: str, columns: list[str], ids):
    """The free text of ``ids`` in ``table`` (where planted injections hide), one row per id."""
    frame = wh.read(table, hint="").where(F.col(key).isin(list(set(ids)))).select(key, *columns)
    return frame.toPandas().drop_duplicates(key).set_index(key)
