"""Candidate blocking: block members and jobs into top-K candidate pairs, no cross product.

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

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.config.settings import CandidateSettings
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
