"""`policyrank candidates`: block members and jobs into top-K candidate pairs, no cross product.

Blocking key = (skill, location key). A member's location keys are its own city plus ``REMOTE``
(only ``REMOTE`` when the member wants remote work only); a job has ``REMOTE`` when it is remote,
else its city. Exploding both sides on those keys and joining on equality means only pairs that
share a skill *and* are location-compatible are ever formed (an equi-join, never a cartesian).

Cost: the join emits ``sum over keys of members(key) * jobs(key)`` rows, roughly
``M * J * s_m * s_j * l / (V * L)`` for M members, J jobs, s skills per member/job, V distinct
skills, L location keys and l location keys per member; aggregation and the top-K window then
cost ``O(P log K)`` for those P rows. See docs/candidates.md for figures.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.runlog import log
from jobs.settings import CandidateSettings, Settings
from jobs.tables_io import replace_quarantine, replace_run_date
from jobs.validation import JOB_RULES, MEMBER_RULES, read_input, validate_rows
from schemas.tables import CANDIDATES, JOBS, MEMBERS
from schemas.vocab import SENIORITY_LEVELS

REMOTE = "REMOTE"


def skill_keys(col: str) -> Column:
    """Normalised, distinct, non-empty skills of a comma-separated list."""
    skills = F.transform(F.split(F.lower(F.col(col)), ","), lambda s: F.trim(s))
    return F.array_distinct(F.filter(skills, lambda s: s != ""))


def seniority_index(col: str) -> Column:
    return F.array_position(F.array(*[F.lit(s) for s in SENIORITY_LEVELS]), F.col(col)) - 1


def member_side(members: DataFrame) -> DataFrame:
    """``member_id, skills, m_level, loc_keys`` (own city + REMOTE; REMOTE only if remote-only)."""
    return members.select(
        "member_id",
        skill_keys("skills").alias("skills"),
        seniority_index("seniority").alias("m_level"),
        F.when(F.col("remote_preference") == "remote", F.array(F.lit(REMOTE)))
        .otherwise(F.array(F.lower("location"), F.lit(REMOTE)))
        .alias("loc_keys"),
    )


def job_side(jobs: DataFrame) -> DataFrame:
    """``job_id, skills, j_level, loc_key`` (REMOTE for remote jobs, else the city)."""
    return jobs.select(
        "job_id",
        skill_keys("skills").alias("skills"),
        seniority_index("seniority").alias("j_level"),
        F.when(F.col("workplace_type") == "remote", F.lit(REMOTE))
        .otherwise(F.lower("location"))
        .alias("loc_key"),
    )


def blocked_rows(m: DataFrame, j: DataFrame) -> DataFrame:
    """The equi-join on (skill, location key): one row per shared key of a compatible pair."""
    m_keys = m.select("member_id", "skills", F.explode("loc_keys").alias("loc_key")).select(
        "member_id", F.explode("skills").alias("skill"), "loc_key"
    )
    j_keys = j.select("job_id", F.explode("skills").alias("skill"), "loc_key")
    return m_keys.join(j_keys, ["skill", "loc_key"])


def candidate_pairs(members: DataFrame, jobs: DataFrame, conf: CandidateSettings) -> DataFrame:
    """Top-``conf.top_k`` jobs per member by a cheap prefilter, from validated members and jobs.

    Returns ``member_id, job_id, shared_keys, prefilter_score, prefilter_rank``. The prefilter is
    ``skill_weight * (shared skills / job's skills) + (1 - skill_weight) * seniority fit`` where
    seniority fit is ``1 - |level gap| / 4``; ties break on job_id so the result is deterministic.
    """
    m, j = member_side(members), job_side(jobs)
    shared = (
        blocked_rows(m, j)
        .groupBy("member_id", "job_id")
        .agg(F.count("*").cast("int").alias("shared_keys"))
    )
    scored = (
        shared.join(m.select("member_id", "m_level"), "member_id")
        .join(j.select("job_id", "j_level", F.size("skills").alias("j_skills")), "job_id")
        .withColumn(
            "prefilter_score",
            conf.skill_weight * F.col("shared_keys") / F.col("j_skills")
            + (1 - conf.skill_weight) * (1 - F.abs(F.col("m_level") - F.col("j_level")) / 4),
        )
    )
    best_first = Window.partitionBy("member_id").orderBy(F.desc("prefilter_score"), "job_id")
    return (
        scored.withColumn("prefilter_rank", F.row_number().over(best_first).cast("int"))
        .where(F.col("prefilter_rank") <= conf.top_k)
        .select("member_id", "job_id", "shared_keys", "prefilter_score", "prefilter_rank")
    )


def run(spark: SparkSession, settings: Settings, run_date: dt.date, *, run_id: str) -> dict:
    """Extract members and jobs, validate, block; load `candidates` and `quarantine`."""
    members = read_input(spark, settings, MEMBERS)
    jobs = read_input(spark, settings, JOBS)

    limit = settings.validation.max_text_chars
    vm = validate_rows(members, MEMBER_RULES, max_text_chars=limit)
    vj = validate_rows(jobs, JOB_RULES, max_text_chars=limit)
    passed_m, passed_j = vm.passed.cache(), vj.passed.cache()

    rejected = vm.quarantined.unionByName(vj.quarantined)
    path = settings.table_path("quarantine")
    replace_quarantine(rejected, path, run_date, "candidates", run_id=run_id)

    counts = reconcile(spark, settings, run_date, members, jobs, passed_m, passed_j)

    pairs = candidate_pairs(passed_m, passed_j, settings.candidates).select(
        F.lit(run_date).alias("run_date"), "*", F.lit(run_id).alias("run_id")
    )
    path = settings.table_path("candidates")
    replace_run_date(pairs, path, CANDIDATES, run_date, run_id=run_id)
    written = spark.read.format("delta").load(path).where(F.col("run_date") == run_date)
    counts["candidates"] = written.count()
    counts["members_with_candidates"] = written.select("member_id").distinct().count()
    log(
        f"candidates: {counts['candidates']:,} pairs for {counts['members_with_candidates']:,} "
        f"members (top_k={settings.candidates.top_k}) -> {path}"
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
    passed_m.unpersist()
    passed_j.unpersist()
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


def reconcile(spark, settings, run_date, members, jobs, passed_m, passed_j) -> dict:
    """Count rows in, passed and quarantined per input table; fail loudly if they disagree."""
    q = (
        spark.read.format("delta")
        .load(settings.table_path("quarantine"))
        .where((F.col("run_date") == run_date) & (F.col("stage") == "candidates"))
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


if __name__ == "__main__":
    import sys

    from jobs.cli import main

    main(["candidates", *sys.argv[1:]])
