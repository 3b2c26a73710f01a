"""`policyrank score`: rank a date's candidates and keep the top-N per member.

The ranking comes from the production student (the registry), or ``scoring.model_dir`` when it
is set. Until a student has been promoted, the day is ranked by the candidate prefilter and its
rows say so (``model_version = 'prefilter'``): a model that has not passed the gate is never
served.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs import incremental
from jobs.config.settings import Settings
from jobs.models.cards import check_model_dir, model_version
from jobs.models.inference import attach_fields, scored_pairs, unscorable
from jobs.runtime.errors import PolicyrankError
from jobs.runtime.runlog import log
from jobs.warehouse.tables import Warehouse
from jobs.warehouse.tally import count_rows
from jobs.warehouse.validation import Inputs, held

PREFILTER = "prefilter"


def top_n_per_member(scored: DataFrame, top_n: int) -> DataFrame:
    best_first = Window.partitionBy("member_id").orderBy(F.desc("score"), "job_id")
    return scored.withColumn("rank", F.row_number().over(best_first).cast("int")).where(
        F.col("rank") <= top_n
    )


def resolve_model_dir(settings: Settings) -> Path | None:
    """``scoring.model_dir`` when set, else the registry's production model, else None (rank
    by the prefilter)."""
    if settings.scoring.model_dir:
        return check_model_dir(settings.scoring.model_dir)
    production = Warehouse.of(settings).registry().production()
    return check_model_dir(production["model_dir"]) if production else None


def prefilter_scores(
    candidates: DataFrame, members: DataFrame, jobs: DataFrame
) -> tuple[DataFrame, DataFrame]:
    """The candidate ordering itself as scores, for pairs whose member and job are valid."""
    with_fields = attach_fields(candidates, members, jobs, [], [])
    valid = with_fields.where(F.col("member").isNotNull() & F.col("job").isNotNull())
    scored = valid.select("member_id", "job_id").join(
        candidates.select("member_id", "job_id", F.col("prefilter_score").alias("score")),
        ["member_id", "job_id"],
    )
    return scored, unscorable(with_fields)


def score_fingerprint(settings: Settings, version: str) -> str:
    """What a pair's score depends on besides its member and job: the model, what it is served
    (templates, batching), the row rules and the prefilter (the score before a promotion)."""
    return incremental.fingerprint(
        model=version,
        # the model by its content-derived version, not where its folder is
        scoring={
            k: v for k, v in vars(settings.scoring).items() if k not in ("top_n", "model_dir")
        },
        inference=vars(settings.inference_for("scoring")),
        validation=vars(settings.validation),
        candidates=vars(settings.candidates),
    )


def carried_scores(
    wh: Warehouse, candidates: DataFrame, changes: incremental.Changes | None
) -> tuple[DataFrame | None, DataFrame]:
    """(``member_id, job_id, score`` carried over from the day ``changes`` start from, the
    candidates left to score): a pair's score carries over when neither its member nor its job
    changed since and that day scored it (with the same model: the fingerprint says so)."""
    if changes is None:
        return None, candidates
    before = wh.day("candidate_scores", changes.since).select("member_id", "job_id", "score")
    carried = (
        candidates.select("member_id", "job_id")
        .join(changes.members, "member_id", "left_anti")
        .join(changes.jobs, "job_id", "left_anti")
        .join(before, ["member_id", "job_id"])
    ).persist(StorageLevel.MEMORY_AND_DISK)
    return carried, candidates.join(
        carried.select("member_id", "job_id"), ["member_id", "job_id"], "left_anti"
    )


def run(
    spark: SparkSession,
    settings: Settings,
    run_date: dt.date,
    *,
    run_id: str,
    inputs: Inputs | None = None,
) -> dict:
    model_dir = resolve_model_dir(settings)
    version = model_version(model_dir) if model_dir else PREFILTER
    hint = "run `policyrank candidates --date D` first"
    wh = Warehouse.of(settings, spark)
    cands = wh.day("candidates", run_date, hint=hint)
    with held(wh, settings.validation, inputs) as held_in:
        passed_m, passed_j = held_in.valid
        n_candidates = cands.count()
        if n_candidates == 0:
            raise PolicyrankError(f"no candidates for {run_date}: {hint}")
        fingerprint = score_fingerprint(settings, version)
        changes, why = incremental.changes_since_last_day(
            wh, "score", run_date, held_in.versions, fingerprint, settings.incremental,
            output="candidate_scores",
        )  # fmt: skip
        carried, todo = carried_scores(wh, cands, changes)
        mode = f"incremental since {changes.since}" if changes else f"full ({why})"
        if model_dir:
            log(f"score: {n_candidates:,} candidate pairs with model {version} ({model_dir})")
        else:
            log(
                f"score: no production model yet (nothing has passed the gate): ranking "
                f"{n_candidates:,} candidate pairs by the prefilter (model_version '{PREFILTER}')"
            )
        if changes:
            n_carried = carried.count()
            log(
                f"score: incremental {changes.describe()}: {n_carried:,} scores carried over, "
                f"{n_candidates - n_carried:,} pairs to score"
            )
        else:
            log(f"score: full run ({why})")
        if model_dir:
            fresh, bad = scored_pairs(todo, passed_m, passed_j, model_dir, settings)
        else:
            fresh, bad = prefilter_scores(todo, passed_m, passed_j)
        # One type for carried and fresh scores (the table's float): ranks compare alike.
        scored = fresh.select("member_id", "job_id", F.col("score").cast("float"))
        if carried is not None:
            scored = scored.unionByName(carried)
        # Scores are cached: scoring is the expensive step and the count, the top-N and the
        # candidate_scores write all need it.
        scored = scored.persist(StorageLevel.MEMORY_AND_DISK)
        try:
            # Counted before anything is written: a mismatch leaves the day as it was.
            tally = count_rows({"scored": scored, "quarantined": bad})
            n_scored, n_quarantined = tally["scored"], tally["quarantined"]
            status = "ok" if n_candidates == n_scored + n_quarantined else "MISMATCH"
            log(
                f"score: {n_candidates:,} in = {n_scored:,} scored + {n_quarantined:,} "
                f"quarantined [{status}]"
            )
            if status != "ok":
                raise RuntimeError(
                    f"score: {n_candidates} candidates but {n_scored} scored + "
                    f"{n_quarantined} quarantined; nothing written"
                )
            wh.replace_quarantine(bad, run_date, "score", run_id=run_id)
            stamp = [F.lit(version).alias("model_version"), F.lit(run_id).alias("run_id")]
            every = scored.select(F.lit(run_date).alias("run_date"), "*", *stamp)
            wh.replace_day(every, "candidate_scores", run_date, run_id=run_id)
            kept = top_n_per_member(scored, settings.scoring.top_n).select(
                F.lit(run_date).alias("run_date"),
                "member_id",
                "job_id",
                "score",
                "rank",
                *stamp,
            )
            wh.replace_day(kept, "scores", run_date, run_id=run_id)
            incremental.record(
                wh, "score", run_date, held_in.versions, fingerprint,
                changes=changes, reason=why, run_id=run_id,
            )  # fmt: skip
        finally:
            scored.unpersist()
            if changes:
                carried.unpersist()
                changes.release()
    written = wh.day("scores", run_date)
    counts = {
        "candidates_in": n_candidates,
        "scored": n_scored,
        "quarantined": n_quarantined,
        **count_rows({"scores": written, "members_scored": written.select("member_id").distinct()}),
        "model_version": version,
        "mode": mode,
    }
    log(
        f"score: kept top {settings.scoring.top_n} of {n_candidates:,} scored pairs: "
        f"{counts['scores']:,} rows for {counts['members_scored']:,} members -> {wh.path('scores')}"
    )
    return counts
