"""`policyrank score`: score a date's candidates with the student and keep the top-N per member."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.errors import PolicyrankError
from jobs.models import check_model_dir, model_version, prepare_default_student
from jobs.registry import Registry
from jobs.runlog import log
from jobs.settings import ScoringSettings, Settings
from jobs.tables_io import read_table, replace_quarantine, replace_run_date
from jobs.validation import read_validated
from schemas.tables import CANDIDATES, SCORES
from udfs.cross_encoder import ScorerConfig
from udfs.pair_text import template_fields
from udfs.score_udf import score_pairs_udf


def scorer_config(conf: ScoringSettings, model_dir: str) -> ScorerConfig:
    return ScorerConfig(
        model_dir=model_dir,
        member_template=conf.member_template,
        job_template=conf.job_template,
        max_length=conf.max_length,
        token_budget=conf.token_budget,
        cpu_threads=conf.cpu_threads,
    )


def attach_fields(
    candidates: DataFrame, members: DataFrame, jobs: DataFrame, config: ScorerConfig
) -> DataFrame:
    """Candidate pairs with ``member`` and ``job`` structs of the fields the templates use;
    a struct is null when its member or job is no longer among the validated rows.

    The result is spread over every task slot: adaptive execution would otherwise coalesce a
    small day's pairs into one partition, and model inference would run on a single core/GPU.
    """
    m_fields = [f for f in template_fields(config.member_template) if f in members.columns]
    j_fields = [f for f in template_fields(config.job_template) if f in jobs.columns]
    slots = candidates.sparkSession.sparkContext.defaultParallelism
    return (
        candidates.select("member_id", "job_id")
        .join(members.select("member_id", F.struct(*m_fields).alias("member")), "member_id", "left")
        .join(jobs.select("job_id", F.struct(*j_fields).alias("job")), "job_id", "left")
        .repartition(max(slots, 1))
    )


def score_candidates(pairs: DataFrame, config: ScorerConfig) -> DataFrame:
    """``member_id, job_id, score`` for pairs from :func:`attach_fields` whose fields exist."""
    score = score_pairs_udf(config)
    return pairs.where(F.col("member").isNotNull() & F.col("job").isNotNull()).select(
        "member_id", "job_id", score("member", "job").alias("score")
    )


def unscorable(pairs: DataFrame) -> DataFrame:
    """Pairs whose member or job did not pass validation, in the quarantine's shape."""
    return pairs.where(F.col("member").isNull() | F.col("job").isNull()).select(
        F.lit("candidates").alias("source_table"),
        F.concat_ws("|", "member_id", "job_id").alias("entity_id"),
        F.when(F.col("member").isNull(), "member_not_valid")
        .otherwise("job_not_valid")
        .alias("reason"),
        F.to_json(F.struct("member_id", "job_id")).alias("record"),
    )


def top_n_per_member(scored: DataFrame, top_n: int) -> DataFrame:
    best_first = Window.partitionBy("member_id").orderBy(F.desc("score"), "job_id")
    return scored.withColumn("rank", F.row_number().over(best_first).cast("int")).where(
        F.col("rank") <= top_n
    )


def resolve_model_dir(settings: Settings) -> Path:
    """``scoring.model_dir`` when set, else the registry's production model, else the untrained
    default student."""
    if settings.scoring.model_dir:
        return check_model_dir(settings.scoring.model_dir)
    production = Registry(Path(settings.warehouse) / "registry").production()
    if production:
        return check_model_dir(production["model_dir"])
    if "://" in settings.warehouse:
        raise PolicyrankError("scoring.model_dir must be set when the warehouse is remote")
    return prepare_default_student(Path(settings.warehouse) / "models")


def run(spark: SparkSession, settings: Settings, run_date: dt.date, *, run_id: str) -> dict:
    model_dir = resolve_model_dir(settings)
    version = model_version(model_dir)
    hint = "run `policyrank candidates --date D` first"
    cands = read_table(spark, settings.table_path("candidates"), CANDIDATES, hint=hint).where(
        F.col("run_date") == run_date
    )
    passed_m, passed_j = read_validated(spark, settings)

    n_candidates = cands.count()
    if n_candidates == 0:
        raise PolicyrankError(f"no candidates for {run_date}: {hint}")
    log(f"score: {n_candidates:,} candidate pairs with model {version} ({model_dir})")
    config = scorer_config(settings.scoring, str(model_dir))
    pairs = attach_fields(cands, passed_m, passed_j, config)
    quarantine = replace_quarantine(
        unscorable(pairs),
        settings.table_path("quarantine"),
        run_date,
        "score",
        run_id=run_id,
    )
    n_quarantined = quarantine.count()
    # Scores are cached: scoring is the expensive step and both the count and the top-N need it.
    scored = score_candidates(pairs, config).persist(StorageLevel.MEMORY_AND_DISK)
    n_scored = scored.count()
    status = "ok" if n_candidates == n_scored + n_quarantined else "MISMATCH"
    log(
        f"score: {n_candidates:,} in = {n_scored:,} scored + {n_quarantined:,} quarantined "
        f"[{status}]"
    )
    if status != "ok":
        raise RuntimeError(
            f"score: {n_candidates} candidates but {n_scored} scored + {n_quarantined} quarantined"
        )
    kept = top_n_per_member(scored, settings.scoring.top_n).select(
        F.lit(run_date).alias("run_date"),
        "member_id",
        "job_id",
        "score",
        "rank",
        F.lit(version).alias("model_version"),
        F.lit(run_id).alias("run_id"),
    )
    path = settings.table_path("scores")
    replace_run_date(kept, path, SCORES, run_date, run_id=run_id)
    written = spark.read.format("delta").load(path).where(F.col("run_date") == run_date)
    scored.unpersist()
    counts = {
        "candidates_in": n_candidates,
        "scored": n_scored,
        "quarantined": n_quarantined,
        "scores": written.count(),
        "model_version": version,
        "members_scored": written.select("member_id").distinct().count(),
    }
    log(
        f"score: kept top {settings.scoring.top_n} of {n_candidates:,} scored pairs: "
        f"{counts['scores']:,} rows for {counts['members_scored']:,} members -> {path}"
    )
    return counts


if __name__ == "__main__":
    import sys

    from jobs.cli import main

    main(["score", *sys.argv[1:]])
