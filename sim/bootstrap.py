"""The demo's inputs, made by the simulator when they are missing (``world.generate_if_missing``):
the world (``members``, ``jobs``, ``truth``), gold labels with their true grades, and the
simulated judge's folder. `policyrank run-daily` calls this before the production steps."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import SparkSession

from jobs.config.settings import Settings
from jobs.runtime.runlog import log
from jobs.warehouse.tables import Warehouse
from sim import generate, gold
from sim.judge import DEFAULT_DIR, JudgeProfile, write_judge


def prepare(spark: SparkSession, settings: Settings, run_date: dt.date, *, run_id: str) -> dict:
    summary: dict = {}
    wh = Warehouse.of(settings, spark)
    if not all(wh.exists(t) for t in ("members", "jobs", "truth")):
        log("simulator: no members/jobs tables yet; generating the sample world")
        summary["generate"] = generate.run(spark, settings, run_id=run_id)
    if not wh.exists("gold_labels"):
        log("simulator: no gold labels yet; simulated raters grade a gold sample")
        summary["gold"] = gold.run(spark, settings, run_date, run_id=run_id)
    if settings.teacher.backend == "simulated" and not settings.teacher.model_dir:
        folder = wh.models_dir / DEFAULT_DIR
        if not (folder / "judge.json").is_file():
            profile = JudgeProfile(**vars(settings.teacher.simulated))
            write_judge(folder, wh.path("truth"), profile)
            log(f"simulator: simulated LLM judge (stand-in, reads the hidden truth) -> {folder}")
    return summary
