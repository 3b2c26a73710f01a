"""`policyrank candidates`: validate the inputs, block them into the date's top-K candidate
pairs (:mod:`jobs.pairs.blocking`), write them and account for every input row."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.config.settings import Settings
from jobs.pairs.blocking import candidate_pairs, job_side, member_side
from jobs.runtime.runlog import log
from jobs.warehouse.tables import Warehouse
from jobs.warehouse.validation import Inputs


def run(
    spark: SparkSession,
    settings: Settings,
    run_date: dt.date,
    *,
    run_id: str,
    inputs: Inputs | None = None,
) -> dict:
    """Extract members and jobs (the run's ``inputs`` when given), validate, block; load
    `candidates` and `quarantine`."""
    wh = Warehouse.of(settings, spark)
    own = inputs is None
    if own:
        inputs = Inputs.read(wh, settings.validation).persist()
    members, jobs = inputs.raw_members, inputs.raw_jobs
    passed_m, passed_j = inputs.valid

    rejected = inputs.members.quarantined.unionByName(inputs.jobs.quarantined)
    wh.replace_quarantine(rejected, run_date, "candidates", run_id=run_id)

    counts = reconcile(wh, run_date, members, jobs, passed_m, passed_j)

    pairs = candidate_pairs(passed_m, passed_j, settings.candidates).select(
        F.lit(run_date).alias("run_date"), "*", F.lit(run_id).alias("run_id")
    )
    wh.replace_day(pairs, "candidates", run_date, run_id=run_id)
    written = wh.day("candidates", run_date)
    counts["candidates"] = written.count()
    counts["members_with_candidates"] = written.select("member_id").distinct().count()
    log(
        f"candidates: {counts['candidates']:,} pairs for {counts['members_with_candidates']:,} "
        f"members (top_k={settings.candidates.top_k}) -> {wh.path('candidates')}"
    )
    counts.update(without_candidates(passed_m, passed_j, written))
    missing = counts["members_without_candidates"]
    status = (
        "ok"
        if counts["members_with_candidates"] + sum(missing.values()) == counts["members_passed"]
        else "MISMATCH"
    )
    reasons = ", ".join(f"{k} {v:,}" for k, v in sorted(missing.items())) or "none"
    log(
        f"candidates: {counts['members_passed']:,} valid members = "
        f"{counts['members_with_candidates']:,} with candidates + {sum(missing.values()):,} "
        f"without ({reasons}) [{status}]; {counts['jobs_no_blocking_key']:,} valid jobs have "
        "no blocking key"
    )
    if status != "ok":
        raise RuntimeError(f"candidates: valid members do not reconcile: {counts}")
    if own:
        inputs.unpersist()
    return counts


def without_candidates(members: DataFrame, jobs: DataFrame, written: DataFrame) -> dict:
    """Valid rows that got no candidate, by reason: ``no_blocking_key`` (no skill to block on,
    e.g. skills that are only separators) or ``no_matching_job`` (keys, but no job shares one).
    Jobs are counted when they have no blocking key, since they can never be a candidate."""
    lonely = members.join(written.select("member_id").distinct(), "member_id", "left_anti")
    reason = F.when(F.size("skills") == 0, "no_blocking_key").otherwise("no_matching_job")
    rows = member_side(lonely).groupBy(reason.alias("reason")).count().collect()
    no_key_jobs = job_side(jobs).where(F.size("skills") == 0).count()
    return {
        "members_without_candidates": {r["reason"]: r["count"] for r in rows},
        "jobs_no_blocking_key": no_key_jobs,
    }


def reconcile(
    wh: Warehouse,
    run_date: dt.date,
    members: DataFrame,
    jobs: DataFrame,
    passed_m: DataFrame,
    passed_j: DataFrame,
) -> dict:
    """Count rows in, passed and quarantined per input table; fail loudly if they disagree."""
    q = (
        wh.day("quarantine", run_date)
        .where(F.col("stage") == "candidates")
        .groupBy("source_table")
        .count()
        .collect()
    )
    quarantined = {r["source_table"]: r["count"] for r in q}
    counts = {}
    for name, raw, passed in (("members", members, passed_m), ("jobs", jobs, passed_j)):
        n_in, n_ok, n_q = raw.count(), passed.count(), quarantined.get(name, 0)
        counts.update({f"{name}_in": n_in, f"{name}_passed": n_ok, f"{name}_quarantined": n_q})
        status = "ok" if n_in == n_ok + n_q else "MISMATCH"
        log(f"candidates: {name}: {n_in:,} in = {n_ok:,} passed + {n_q:,} quarantined [{status}]")
        if n_in != n_ok + n_q:
            raise RuntimeError(f"{name}: {n_in} rows in but {n_ok} passed + {n_q} quarantined")
    return counts
