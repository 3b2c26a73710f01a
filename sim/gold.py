"""`policyrank gold` (simulator): simulated human gold labels over a gold sample.

No human raters exist here, so the synthetic world supplies them: :func:`sim.raters.rate_pairs`
applies the policy's rules to the hidden attributes (``truth``) with rater noise and
disagreement. The gold sample is drawn like the teacher's (:func:`jobs.sample.sample_pairs`:
whole candidate lists of drawn members, plus random pairs and hard negatives) with its own seed,
so held-out members' lists carry gold grades to rank against, plus a red-team slice of
injected pairs for calibration (:func:`red_team_pairs`). Besides ``gold_labels`` (what a
real warehouse would hold) it writes ``true_grades``, the hidden truth of the same pairs, which
evaluation reports beside the gold figures.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.config.policy import load_policy
from jobs.config.settings import GoldSettings, Settings
from jobs.pairs.blocking import candidate_pairs
from jobs.pairs.sampling import member_segments, pair_hash, sample_pairs, with_policy_bucket
from jobs.quality.splits import is_heldout
from jobs.runtime.runlog import log
from jobs.warehouse.tables import Warehouse
from jobs.warehouse.validation import INPUTS_HINT, Inputs
from schemas.tables import GOLD_LABELS, TRUE_GRADES
from sim import raters, render


def gold_labels(pairs: pd.DataFrame, truth: pd.DataFrame, conf: GoldSettings) -> pd.DataFrame:
    """Rater grades, gold grade, agreement and true grade for sampled ``pairs`` (pure pandas).

    ``pairs`` holds ``member_id, job_id, source, stratum, policy_bucket`` and the free text
    (``summary``, ``headline``, ``title``, ``description``) used to flag planted injections.
    """
    t = truth.set_index("entity_id")
    keys = (pairs.member_id + "|" + pairs.job_id).tolist()
    rated = raters.rate_pairs(
        t.loc[pairs.member_id].reset_index(),
        t.loc[pairs.job_id].reset_index(),
        keys,
        n_raters=conf.n_raters,
        noise=conf.rater_noise,
        disagreement=conf.rater_disagreement,
        seed=conf.sampling.seed,
        pool=conf.rater_pool,
    )
    text = pairs[["headline", "summary", "title", "description"]].fillna("")
    injected = np.array(
        [any(render.has_injection(v) for v in row) for row in text.itertuples(False)]
    )
    out = pairs[["member_id", "job_id", "source", "stratum", "policy_bucket"]].reset_index(
        drop=True
    )
    out["rater_grades"] = [list(map(int, g)) for g in rated.rater_grades]
    out["gold_grade"] = rated.gold_grade.astype("int32").to_numpy()
    out["rater_agreement"] = rated.rater_agreement.astype(float).to_numpy()
    out["true_grade"] = rated.true_grade.astype("int32").to_numpy()
    out["injected"] = injected
    return out


def injected_ids(frame: DataFrame, key: str, columns: list[str]) -> list[str]:
    """Ids of the rows whose ``columns`` carry a planted injection (the simulator knows)."""
    rows = frame.select(key, *columns).toPandas().fillna("")
    hit = rows[columns].apply(lambda row: any(render.has_injection(v) for v in row), axis=1)
    return rows.loc[hit, key].tolist()


def red_team_pairs(
    pairs: DataFrame, members: DataFrame, jobs: DataFrame, settings: Settings
) -> DataFrame:
    """Up to ``gold.red_team_pairs`` more pairs with a planted injection, source ``red_team``.

    Drawn (by pair hash) among the held-out members the gold sample already graded, paired with
    every job when the member's own text is injected, else with the injected jobs: calibration
    then shows the teacher on an injected slice big enough to read, without touching what the
    judge trains on or the members evaluation ranks.
    """
    n = settings.gold.red_team_pairs
    graded = pairs.select("member_id").distinct().join(members, "member_id")
    heldout = graded.where(is_heldout(settings.eval))
    bad_members = injected_ids(heldout, "member_id", ["headline", "summary"])
    bad_jobs = injected_ids(jobs, "job_id", ["title", "description"])
    pool = (
        heldout.select("member_id")
        .crossJoin(jobs.select("job_id"))
        .where(F.col("member_id").isin(bad_members) | F.col("job_id").isin(bad_jobs))
    )
    drawn = (
        pool.join(pairs.select("member_id", "job_id"), ["member_id", "job_id"], "left_anti")
        .orderBy(pair_hash(settings.gold.sampling.seed + 5), "member_id", "job_id")
        .limit(n)
        .join(member_segments(members), "member_id")
    )
    return with_policy_bucket(drawn.withColumn("source", F.lit("red_team")), members, jobs)


def sampled_with_text(members: DataFrame, jobs: DataFrame, settings: Settings) -> pd.DataFrame:
    """The gold sample: the candidate lists policyrank's own candidate step would give, plus the
    red-team slice."""
    candidates = candidate_pairs(members, jobs, settings.candidates)
    pairs = sample_pairs(candidates, members, jobs, settings.gold.sampling).localCheckpoint()
    if settings.gold.red_team_pairs:
        pairs = pairs.unionByName(red_team_pairs(pairs, members, jobs, settings))
    return (
        pairs.join(members.select("member_id", "headline", "summary"), "member_id")
        .join(jobs.select("job_id", "title", "description"), "job_id")
        .toPandas()
    )


def run(spark: SparkSession, settings: Settings, run_date: dt.date, *, run_id: str) -> dict:
    policy = load_policy(settings.teacher.policy_path)
    wh = Warehouse.of(settings, spark)
    # Kept once validated: the gold sample reads members and jobs many times.
    inputs = Inputs.read(wh, settings.validation).persist()
    try:
        pairs = sampled_with_text(*inputs.valid, settings)
    finally:
        inputs.unpersist()
    ids = pd.concat([pairs.member_id, pairs.job_id]).unique().tolist()
    truth = wh.read("truth", hint=INPUTS_HINT).where(F.col("entity_id").isin(ids)).toPandas()
    labels = gold_labels(pairs, truth, settings.gold)
    labels["policy_version"] = policy.version
    labels["run_id"] = run_id
    for table, frame in ((GOLD_LABELS, labels), (TRUE_GRADES, labels)):
        out = spark.createDataFrame(frame[table.names], table.spark_schema())
        wh.overwrite(out, table.name, run_id=run_id)
    log(
        f"gold (simulated raters): {len(labels):,} gold pairs of "
        f"{labels.member_id.nunique():,} members under policy {policy.version} (injected "
        f"{int(labels.injected.sum()):,}; mean rater agreement "
        f"{labels.rater_agreement.mean():.3f}) -> {wh.path('gold_labels')}"
    )
    return {"gold_pairs": len(labels), "gold_members": int(labels.member_id.nunique())}
