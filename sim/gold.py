"""`policyrank gold` (simulator): simulated human gold labels over a gold sample.

No human raters exist here, so the synthetic world supplies them: :func:`sim.raters.rate_pairs`
applies the policy's rules to the hidden attributes (``truth``) with rater noise and
disagreement. The gold sample is drawn like the teacher's (:func:`jobs.sample.sample_pairs`:
whole candidate lists of drawn members, plus random pairs and hard negatives) with its own seed,
so held-out members' lists carry gold grades to rank against. Besides ``gold_labels`` (what a
real warehouse would hold) it writes ``true_grades``, the hidden truth of the same pairs, which
evaluation reports beside the gold figures.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.candidates import candidate_pairs
from jobs.policy import load_policy
from jobs.runlog import log
from jobs.sample import sample_pairs
from jobs.settings import GoldSettings, Settings
from jobs.tables_io import overwrite_snapshot, read_table
from jobs.validation import INPUTS_HINT, read_validated
from schemas.tables import GOLD_LABELS, TRUE_GRADES, TRUTH
from sim import raters, world


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
        seed=conf.seed,
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
    out["true_grade"] = rated.true_grade.astype("int32").to_numpy()
    out["injected"] = injected
    return out


def sampled_with_text(members: DataFrame, jobs: DataFrame, settings: Settings) -> pd.DataFrame:
    """The gold sample: the candidate lists policyrank's own candidate step would give."""
    candidates = candidate_pairs(members, jobs, settings.candidates)
    pairs = sample_pairs(candidates, members, jobs, settings.gold.sampling)
    return (
        pairs.join(members.select("member_id", "headline", "summary"), "member_id")
        .join(jobs.select("job_id", "title", "description"), "job_id")
        .toPandas()
    )


def run(spark: SparkSession, settings: Settings, run_date: dt.date, *, run_id: str) -> dict:
    policy = load_policy(settings.teacher.policy_path)
    members, jobs = read_validated(spark, settings)
    pairs = sampled_with_text(members, jobs, settings)
    ids = pd.concat([pairs.member_id, pairs.job_id]).unique().tolist()
    truth = (
        read_table(spark, settings.table_path("truth"), TRUTH, hint=INPUTS_HINT)
        .where(F.col("entity_id").isin(ids))
        .toPandas()
    )
    labels = gold_labels(pairs, truth, settings.gold)
    labels["policy_version"] = policy.version
    labels["run_id"] = run_id
    for table, frame in ((GOLD_LABELS, labels), (TRUE_GRADES, labels)):
        out = spark.createDataFrame(frame[table.names], table.spark_schema())
        overwrite_snapshot(out, settings.table_path(table.name), table, run_id=run_id)
    log(
        f"gold (simulated raters): {len(labels):,} gold pairs of "
        f"{labels.member_id.nunique():,} members under policy {policy.version} (injected "
        f"{int(labels.injected.sum()):,}; mean rater agreement "
        f"{labels.rater_agreement.mean():.3f}) -> {settings.table_path('gold_labels')}"
    )
    return {"gold_pairs": len(labels), "gold_members": int(labels.member_id.nunique())}


if __name__ == "__main__":
    import sys

    from jobs.cli import main

    main(["gold", *sys.argv[1:]])
