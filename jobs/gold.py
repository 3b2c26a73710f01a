"""`policyrank gold`: simulated human gold labels over a stratified gold sample.

No human raters exist here, so the synthetic world supplies them: :func:`jobs.raters.rate_pairs`
applies the policy's rules to the hidden attributes (``truth``) with rater noise and
disagreement. The gold sample is drawn like the teacher's sample (:func:`jobs.sample.sample_pairs`)
with its own seed, and split into a selection half and a held-out half by member.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs import raters, world
from jobs.policy import load_policy
from jobs.runlog import log
from jobs.sample import sample_pairs
from jobs.settings import GoldSettings, Settings
from jobs.tables_io import overwrite_snapshot, read_table
from jobs.validation import INPUTS_HINT, read_validated
from schemas.tables import CANDIDATES, GOLD_LABELS, TRUTH


def gold_labels(pairs: pd.DataFrame, truth: pd.DataFrame, conf: GoldSettings) -> pd.DataFrame:
    """Rater grades, gold grade, agreement and split for sampled ``pairs`` (pure pandas).

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
    )
    text = pairs[["headline", "summary", "title", "description"]].fillna("")
    injected = np.array(
        [any(world.has_injection(v) for v in row) for row in text.itertuples(False)]
    )
    out = pairs[["member_id", "job_id", "source", "stratum", "policy_bucket"]].reset_index(
        drop=True
    )
    out["rater_grades"] = [list(map(int, g)) for g in rated.rater_grades]
    out["gold_grade"] = rated.gold_grade.astype("int32").to_numpy()
    out["rater_agreement"] = rated.rater_agreement.astype(float).to_numpy()
    out["injected"] = injected
    out["split"] = raters.split_by_member(out.member_id, conf.sampling.seed, conf.heldout_share)
    return out


def sampled_with_text(
    candidates: DataFrame, members: DataFrame, jobs: DataFrame, conf: GoldSettings
) -> pd.DataFrame:
    pairs = sample_pairs(candidates, members, jobs, conf.sampling)
    return (
        pairs.join(members.select("member_id", "headline", "summary"), "member_id")
        .join(jobs.select("job_id", "title", "description"), "job_id")
        .toPandas()
    )


def run(spark: SparkSession, settings: Settings, run_date: dt.date, *, run_id: str) -> dict:
    policy = load_policy(settings.teacher.policy_path)
    hint = "run `policyrank candidates --date D` first"
    candidates = read_table(spark, settings.table_path("candidates"), CANDIDATES, hint=hint).where(
        F.col("run_date") == run_date
    )
    members, jobs = read_validated(spark, settings)
    pairs = sampled_with_text(candidates, members, jobs, settings.gold)
    ids = pd.concat([pairs.member_id, pairs.job_id]).unique().tolist()
    truth = (
        read_table(spark, settings.table_path("truth"), TRUTH, hint=INPUTS_HINT)
        .where(F.col("entity_id").isin(ids))
        .toPandas()
    )
    labels = gold_labels(pairs, truth, settings.gold)
    labels["policy_version"] = policy.version
    labels["run_id"] = run_id
    path = settings.table_path("gold_labels")
    frame = spark.createDataFrame(labels[GOLD_LABELS.names], GOLD_LABELS.spark_schema())
    overwrite_snapshot(frame, path, GOLD_LABELS, run_id=run_id)
    split = labels.split.value_counts().to_dict()
    log(
        f"gold: {len(labels):,} gold pairs under policy {policy.version} "
        f"(selection {split.get('selection', 0):,}, heldout {split.get('heldout', 0):,}, "
        f"injected {int(labels.injected.sum()):,}; mean rater agreement "
        f"{labels.rater_agreement.mean():.3f}) -> {path}"
    )
    return {"gold_pairs": len(labels), **split}


if __name__ == "__main__":
    import sys

    from jobs.cli import main

    main(["gold", *sys.argv[1:]])
